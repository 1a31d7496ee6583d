"""Saving one trial by hand: from the Trials page's "Add trial" form (`experimenter_trials`) and
from the Django admin's trial page (`admin.TrialAdmin`), the same way. Under the study's row lock
(`experimenter.locked_study`, which a Close takes too) the trial is refused where the study
already has the same trial (`trial_identity`), else saved and recorded in the study's history as
a change of its trials (`history.Kind.TRIALS`). That entry is what queues the work a change of
trials needs once it commits (`reports.signals`: the report's recomputation where its config
changed with the trials, e.g. the main trials per participant, or where an edit changed a column
the answers read of a trial that has answers: the entry then says which and how many answers).

Why one path: a trial added or edited in the admin once saved nothing but the row, so it queued
nothing, left no history, and could repeat a trial the study had.
"""

from __future__ import annotations

from evalsite.studies import history, trial_identity
from evalsite.studies.models import Answer, Trial


def repeated(trial: Trial) -> int | None:
    """The id of the study's trial that `trial` is the same as (itself left out: a trial saved
    as it is repeats nothing); None when there is none. Read under the study's lock."""
    return trial_identity.existing(trial.study, other_than=trial.pk).get(trial_identity.key(trial))


def refusal(trial: Trial, same: int, verb: str) -> str:
    """What the page says when `trial` was refused as the same as the study's trial `same`."""
    return (
        f"This trial is already in the study as trial {same} ({trial_identity.describe(trial)}); "
        f"nothing was {verb}. For a second look at the same clips, add a repeat (Add repeats "
        "with A/B swapped)."
    )


def save(trial: Trial, user, how: str) -> None:
    """Save `trial` (new, or changed) and record it in its study's history, under the study's
    lock after `repeated` found nothing."""
    added = trial.pk is None
    what = {"added": 1, "how": how} if added else {"changed": trial.pk, "how": how}
    if not added:
        what |= _read_by_answers(trial)
    trial.save()
    history.record(trial.study, user, history.Kind.TRIALS, what)


def _read_by_answers(trial: Trial) -> dict:
    """For an edit of a stored trial: the columns the answers read (`TRIAL_COLUMNS_READ`) that it
    changes, and how many answers the trial has where it has any and they change: the report's
    input changed with them (its answers.csv reads them live), which its config does not show."""
    # The answers' export module loads pandas: imported on an edit, not with the site.
    from evalsite.studies.export_answers import TRIAL_COLUMNS_READ

    before = Trial.objects.filter(pk=trial.pk).values(*TRIAL_COLUMNS_READ).first() or {}
    fields = [f for f in TRIAL_COLUMNS_READ if f in before and before[f] != getattr(trial, f)]
    answers = Answer.objects.filter(trial_id=trial.pk).count() if fields else 0
    return {"fields": fields, "answers": answers} if answers else {"fields": fields}
