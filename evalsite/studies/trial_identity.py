"""When a trial added by form or CSV is one the study already has: refused, since a double click
on "Add trial" or "Upload CSV" (or a second tab) would otherwise add it twice to a running study,
whose trials can no longer be deleted.

Two trials are the same trial when they judge the same instrument on the same reference and the
same two candidates (in either order: each participant's positions are balanced when assigned,
design_order) as the same kind (main, practice, or one catch kind). The design never needs such a
pair: a second look at the same clips is a repeat catch trial (`random_design.add_repeats`), which
names its original and is analysed as a repeat; an unflagged copy would be given to a participant
as an unplanned, unanalysed repeat, and split the answers its clips are meant to collect.
"""

from __future__ import annotations

from collections.abc import Iterable

from evalsite.studies.models import Study, Trial

SECOND_LOOK = "for a second look at the same clips, add a repeat"


def key(trial: Trial) -> tuple:
    """What makes two trials the same trial."""
    pair = frozenset((trial.candidate_a_id, trial.candidate_b_id))
    return (trial.instrument, trial.reference_id, pair, trial.is_practice, trial.catch_kind)


def describe(trial: Trial) -> str:
    kind = "practice" if trial.is_practice else (trial.catch_kind or "main")
    return (
        f"reference {trial.reference_id}, candidates {trial.candidate_a_id} and "
        f"{trial.candidate_b_id}, {trial.instrument}, {kind}"
    )


def existing(study: Study, other_than: int | None = None) -> dict[tuple, int]:
    """The study's trials (but the one with id `other_than`: a trial being edited): key -> the
    id of the first with it. Read under the study's lock (experimenter.lock_editable), so that a
    trial sent twice at once is found the second time."""
    found: dict[tuple, int] = {}
    trials = study.trials.all() if other_than is None else study.trials.exclude(pk=other_than)
    for trial in trials.order_by("id").only(
        "instrument", "reference", "candidate_a", "candidate_b", "is_practice", "catch_kind"
    ):
        found.setdefault(key(trial), trial.pk)
    return found


def repeated_rows(rows: Iterable[tuple[str, Trial]]) -> list[str]:
    """One message for each row (where it is, e.g. 't.csv, line 3'; its trial) that repeats an
    earlier row."""
    seen: dict[tuple, str] = {}
    errors = []
    for where, trial in rows:
        if (first := seen.setdefault(key(trial), where)) != where:
            line = first.rsplit(", ", 1)[-1]
            errors.append(
                f"{where}: the same trial as {line} ({describe(trial)}); expected each trial "
                f"once ({SECOND_LOOK})"
            )
    return errors


def already_there(study: Study, rows: Iterable[tuple[str, Trial]]) -> list[str]:
    """One message for each row (where, trial) whose trial the study already has."""
    have = existing(study)
    return [
        f"{where}: the same trial as trial {have[key(trial)]} ({describe(trial)}); expected "
        f"each trial once ({SECOND_LOOK})"
        for where, trial in rows
        if key(trial) in have
    ]
