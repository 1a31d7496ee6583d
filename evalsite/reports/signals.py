"""A change of a study's trials queues its report's recomputation once it commits, where the
latest report was computed before it. Settings edits queue theirs in the settings view
(experimenter.study_edit: where the report settings changed, or design_main_trials, which
trials_per_participant caps), answers theirs as they are saved.

Every page and job that changes a study's trials records the change in the study's history, in
the same transaction, and the receiver listens to that entry, one per change, rather than to
each Trial saved (a design saves hundreds in one transaction):
- `trials` (the Trials page's form, CSV, random draw and repeats, a design from the model,
  deleting a draft's trials, a trial added or edited in the Django admin, `trial_saving`):
  queued when the report's config changed with them (ReportConfig.design_main_trials, the power
  plan's main trials per participant: `study_config.recompute_if_out_of_date`), and where an
  edit (the admin's) changed a column the answers read of a trial with answers (the entry's
  `answers`, `trial_saving`): answers.csv reads the trial's columns live;
- `model_choices` of an answered study (the researcher confirmed it): the answers' model_choice
  and agree columns, which the report reads, changed.
The report page shows the report as out of date after either entry with answers, until a
recomputation reads them (`study_config.changes_since`). A trial changed outside these (a
shell, a deletion in the admin) records none: the report page shows that report as out of date
all the same where its config changed (reports.views.report_page reads `changes_since`).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from evalsite.reports.models import ReportSnapshot
from evalsite.reports.study_config import recompute_if_out_of_date
from evalsite.reports.tasks import schedule_report
from evalsite.studies.models import StudyEvent

Kind = StudyEvent.Kind


def _recompute_if_reported(study_id: int) -> bool:
    """Queue a recomputation where a report was computed (none yet: answers queue the first)."""
    if not ReportSnapshot.objects.filter(study_id=study_id).exists():
        return False
    return schedule_report(study_id, countdown=0)


@receiver(post_save, sender=StudyEvent, dispatch_uid="reports_trials_changed")
def trials_changed(sender, instance: StudyEvent, created: bool, **kwargs) -> None:
    if not created or kwargs.get("raw"):
        return
    study_id, changes = instance.study_id, instance.changes or {}
    if instance.kind == Kind.TRIALS and not changes.get("answers"):
        check = recompute_if_out_of_date
    elif instance.kind in (Kind.TRIALS, Kind.MODEL_CHOICES) and changes.get("answers"):
        check = _recompute_if_reported
    else:
        return

    def committed() -> None:  # not a lambda: robust's error log reads __qualname__
        check(study_id)

    # After the commit, outside the change's locks (the study's, taken before the report's by a
    # draw); discarded if it is rolled back. robust: a failure is logged, never fails the change.
    transaction.on_commit(committed, robust=True)
