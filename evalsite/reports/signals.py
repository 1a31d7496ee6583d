"""A change of a study's trials queues its report's recomputation once it commits, when the
report was computed with what the trials gave before (ReportConfig.design_main_trials, the power
plan's main trials per participant: `study_config.recompute_if_out_of_date`). Settings edits queue
theirs in the settings view (experimenter.study_edit), answers theirs as they are saved.

Every page and job that changes a study's trials records the change in the study's history, in
the same transaction (history.Kind.TRIALS): the Trials page's form, CSV, random draw and repeats,
a design from the model, deleting a draft's trials. The receiver listens to that entry, one per
change, rather than to each Trial saved (a design saves hundreds in one transaction). A trial
changed in the Django admin records none: the report page shows that report as out of date all
the same (reports.views.report_page reads `study_config.changes_since`).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_save
from django.dispatch import receiver

from evalsite.reports.study_config import recompute_if_out_of_date
from evalsite.studies.models import StudyEvent


@receiver(post_save, sender=StudyEvent, dispatch_uid="reports_trials_changed")
def trials_changed(sender, instance: StudyEvent, created: bool, **kwargs) -> None:
    if not created or kwargs.get("raw") or instance.kind != StudyEvent.Kind.TRIALS:
        return
    study_id = instance.study_id

    def committed() -> None:  # not a lambda: robust's error log reads __qualname__
        recompute_if_out_of_date(study_id)

    # After the commit, outside the change's locks (the study's, taken before the report's by a
    # draw); discarded if it is rolled back. robust: a failure is logged, never fails the change.
    transaction.on_commit(committed, robust=True)
