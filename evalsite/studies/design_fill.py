"""Counting a study's fill: per trial, the answers stored plus the unanswered slots still
reserved, which `design.assign` chooses trials by. Separate from the assignment because the
count is the costly part of an entry and has machinery of its own: the fold of finished
participants' answers (`StudyFold`, `FoldedParticipant`), a count reused by entries that arrive
together (`entry_fill`, `FILL_REUSE`) and the entry's "full" answer (`full_at_entry`).
Everything here that writes runs under the study's lock (`lock_study`).

Rules (docs/site.md, "Design rules"): expired slots of unfinished participants no longer count,
so their trials go to the next participants. Entries that arrive together share one count for a
few seconds (`entry_fill`); none is turned away on a shared count (`design.assign` counts again).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime, timedelta
from typing import Any

from django.db import transaction
from django.db.models import Count, Exists, OuterRef

from evalsite.studies.models import (
    Answer,
    Assignment,
    FoldedParticipant,
    Participant,
    Study,
    StudyFold,
    Trial,
)


def lock_study(study_id: int) -> None:
    """Take the study's lock (its row, FOR UPDATE) until the transaction ends: the fill, the fold
    and trials added to it change only under it."""
    list(Study.objects.select_for_update().filter(pk=study_id).values_list("pk"))


def fill_counts(study: Study, now: datetime) -> Counter:
    """trial id -> answers stored + unanswered slots still reserved.

    Read on every entry (under the study's lock, taken here too). The answers of participants in
    a final step never change, so they are added up once per participant (`_fold`); each entry
    counts only the answers of the others and the live slots: its work grows with the
    participants still under way, not with every answer the study holds (docs/experimenter.md,
    "Entering"). The queries name the columns (`trial_id`, `participant_id`) rather than the
    relations where they can, which keeps the ORM from joining tables it does not need."""
    with transaction.atomic():
        lock_study(study.pk)
        counts = _fold(study)
        answered = (
            Answer.objects.filter(participant__study_id=study.pk, participant__folded__isnull=True)
            .values("trial_id")
            .annotate(n=Count("id"))
        )
        for row in answered.order_by():
            counts[row["trial_id"]] += row["n"]
        trials = Trial.objects.filter(study_id=study.pk).values("id")
        answer = Answer.objects.filter(
            participant_id=OuterRef("participant_id"), trial_id=OuterRef("trial_id")
        )
        live = (
            Assignment.objects.filter(trial_id__in=trials, reserved_until__gt=now)
            .exclude(Exists(answer))
            .values("trial_id")
            .annotate(n=Count("id"))
        )
        for row in live.order_by():
            counts[row["trial_id"]] += row["n"]
    return counts


FOLD_BATCH = 500  # participant ids per query while folding (SQLite limits a statement's parameters)


def _fold(study: Study) -> Counter:
    """The answers per trial of the study's folded participants, after folding in those that
    reached a final step since the last entry (rebuilt from nothing when a folded participant
    was deleted). Under the study's lock: the only writer of the fold."""
    fold, _ = StudyFold.objects.get_or_create(study=study)
    folded = FoldedParticipant.objects.filter(study_id=study.pk)
    changed = folded.count() != fold.participants
    if changed:  # a folded participant (and its answers) was deleted: count again from nothing
        folded.delete()
        fold.participants, fold.answers = 0, {}
    counts = Counter({int(trial): n for trial, n in fold.answers.items()})
    final = Participant.objects.filter(
        study_id=study.pk, step__in=Participant.FINAL_STEPS, folded__isnull=True
    )
    new = list(final.values_list("id", flat=True))
    for start in range(0, len(new), FOLD_BATCH):
        batch = new[start : start + FOLD_BATCH]
        answered = Answer.objects.filter(participant_id__in=batch).values("trial_id")
        for row in answered.annotate(n=Count("id")).order_by():
            counts[row["trial_id"]] += row["n"]
        FoldedParticipant.objects.bulk_create(
            FoldedParticipant(participant_id=pk, study_id=study.pk) for pk in batch
        )
    if new or changed:
        fold.participants += len(new)
        fold.answers = {str(trial): n for trial, n in counts.items() if n}
        fold.save()
    return counts


def full_by(counts: Counter | dict, main: list[int], target: int) -> bool:
    """The study-full rule, on a fill (`fill_counts`, or answers alone): no main trial, or every
    one at its target. `design.select_trials` assigns by it; the entry and the full page ask it."""
    return not main or all(counts.get(t, 0) >= target for t in main)


def main_trial_ids(study: Study) -> list[int]:
    return list(study.trials.filter(is_practice=False, is_catch=False).values_list("id", flat=True))


def full_at_entry(study: Study, now: datetime) -> bool:
    """Whether a newcomer would get no trial: told at entry, before consent and screening, not
    after (`design.assign` at the instructions still decides, on the fill then). Cheap while the
    study is not full: it reads the study's kept fill (`StudyFold.fill`, the last count plus the
    slots assigned since) without the study's lock, and counts (`count_fill`, under the lock,
    keeping the count for the next entries) only when that says full, since the kept fill may
    hold reservations that have run out or were released since: as at assignment, no one is
    turned away on a kept count. First, the finished participants' answers alone (the fold), if
    they give every main trial its target: full for good, since stored answers stay (a fold that
    no longer matches its participants, one being deleted, is not trusted)."""
    kept = StudyFold.objects.filter(study_id=study.pk).values("participants", "answers", "fill")
    row = kept.first()
    if row is None:  # no entry assigned trials yet
        return False
    target = int(study.setting("target_answers_per_trial"))
    kept_fill = {int(t): n for t, n in row["fill"].items()}
    folded = {int(t): n for t, n in row["answers"].items()}
    if max([*kept_fill.values(), *folded.values(), 0]) < target:
        return False  # no trial at its target (the common case): no need to read the trials
    main = main_trial_ids(study)
    if not main:  # nothing to fill: assignment decides
        return False
    if row["participants"] and full_by(folded, main, target):
        if FoldedParticipant.objects.filter(study_id=study.pk).count() == row["participants"]:
            return True
    if not full_by(kept_fill, main, target):
        return False
    with transaction.atomic():  # the count is kept under the lock it was counted under, or an
        lock_study(study.pk)  # entry assigning meanwhile would have its slots overwritten
        return full_by(count_fill(study, now), main, target)


def answered_full(study: Study) -> bool:
    """Whether the answers alone (no reservation) give every main trial its target: the full
    page then says so; otherwise the trials still short of it are reserved by participants
    taking part now, who may not finish."""
    main = main_trial_ids(study)
    answered = (
        Answer.objects.filter(trial_id__in=main, participant__is_preview=False)
        .values("trial_id")
        .annotate(n=Count("id"))
        .order_by()
    )
    counts = {row["trial_id"]: row["n"] for row in answered}
    return full_by(counts, main, int(study.setting("target_answers_per_trial")))


# How long entries reuse a count of the fill (plus the slots they assigned since) before one
# counts again. Counting grows with the participants under way (`fill_counts`) and is done under
# the study's lock, so entries arriving together (a study's launch) queued behind one count
# each: in-process, an entry took 87 ms with 600 participants under way, 72 of them counting
# (docs/load-benchmark-log.md, "Figures (2026-12-04, a third machine)"). What a reused count
# misses is at most this old: reservations that expired or were released (the count is high:
# those trials wait a few seconds longer). Seconds, against reservations of minutes
# (`reservation_timeout_s`). A participant coming back after its slots expired does not renew
# them behind a reused count: it counts afresh and keeps the count with its slots
# (`design_return`).
FILL_REUSE = timedelta(seconds=5)


def entry_fill(study: Study, now: datetime) -> tuple[Counter, bool]:
    """The fill an entry assigns by, and whether it was counted now (False: reused, see
    FILL_REUSE). Under the study's lock, as its update by `assign`. An entry's `now` may be
    before the count it finds (it was taken before waiting for the lock, and another entry's
    count came first): that count is no older than the entry, and is reused too."""
    kept = StudyFold.objects.filter(study_id=study.pk).values("fill", "fill_at").first()
    counted_at = kept["fill_at"] if kept else None
    fresh = counted_at is not None and now - FILL_REUSE < counted_at < now + FILL_REUSE
    if kept is not None and fresh:
        return Counter({int(trial): n for trial, n in kept["fill"].items()}), False
    return count_fill(study, now), True


def count_fill(study: Study, now: datetime) -> Counter:
    """`fill_counts`, kept with the study for the entries of the next FILL_REUSE."""
    counts = fill_counts(study, now)  # also makes the StudyFold row
    keep_fill(study, counts, now)
    return counts


def keep_fill(study: Study, counts: Counter, counted_at: datetime | None = None) -> None:
    """Keep `counts` with the study (`StudyFold.fill`) for the entries of the next FILL_REUSE;
    `counted_at`, when given, is when they were counted (entries add their slots without it)."""
    fields: dict[str, Any] = {"fill": {str(trial): n for trial, n in counts.items() if n}}
    if counted_at is not None:
        fields["fill_at"] = counted_at
    StudyFold.objects.filter(study_id=study.pk).update(**fields)
