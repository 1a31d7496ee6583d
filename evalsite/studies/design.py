"""Server-side design: trial order, A/B positions, and balanced assignment of trials.

Rules (docs/site.md):
- Order: seeded Fisher-Yates; catch trials spread, one per equal block of the sequence; no trial
  follows one with the same reference (the first one after the practice included); a repeat
  comes after its original with at least one other trial between. The first of `attempts`
  shuffles meeting every rule is kept (else the one with the fewest violations): deterministic
  for a seed.
- Positions: within a participant and instrument, half the trials show their key candidate in
  position A (odd counts: the extra one by the seed), repeats counted; a repeat shows its
  original's candidates swapped.
- Assignment: main trials least-filled first (answers stored + live reservations), below-target
  trials before the others; the study is full when every main trial reached its target. A slot's
  reservation lasts at least 90 % of `reservation_timeout_s` after the participant's latest trial
  page (renewed to the full timeout once less is left); expired slots of unfinished participants
  no longer count, so their trials go to the next participants. Entries that arrive together
  share one count for a few seconds (`entry_fill`); none is turned away on a shared count.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta

import pandas as pd
from django.db import transaction
from django.db.models import Count, Exists, OuterRef

from evalsite.studies import participant_sql
from evalsite.studies.models import (
    Answer,
    Assignment,
    FoldedParticipant,
    Participant,
    Study,
    StudyFold,
    Trial,
)


def fisher_yates(items: list, rng: random.Random) -> list:
    """A uniformly random permutation (Durstenfeld's in-place Fisher-Yates on a copy)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.randint(0, i)
        out[i], out[j] = out[j], out[i]
    return out


def violations(seq: list, before=None) -> int:
    """Count of broken order rules: same reference back to back, repeat not after original+1.
    `before`: the trial shown just before the sequence (the last practice trial), if any."""
    shown = [before, *seq] if before is not None else seq
    bad = sum(1 for x, y in zip(shown, shown[1:]) if x.reference_id == y.reference_id)
    where = {t.id: i for i, t in enumerate(seq)}
    for i, t in enumerate(seq):
        original = getattr(t, "repeat_of_id", None)
        if original in where and i - where[original] < 2:
            bad += 1
    return bad


def spread_catch(main: list, catch: list, rng: random.Random) -> list:
    """Interleave: the sequence is cut into len(catch) equal blocks, one catch trial in each."""
    n, k = len(main) + len(catch), len(catch)
    slots = {rng.randrange(i * n // k, (i + 1) * n // k) for i in range(k)} if k else set()
    seq, mains, catches = [], iter(main), iter(catch)
    for pos in range(n):
        seq.append(next(catches) if pos in slots else next(mains))
    return seq


def order_trials(trials: list, seed: int, attempts: int = 200, before=None) -> list:
    """Order main and catch trials under the rules above (trials: objects with id, reference_id,
    is_catch, repeat_of_id). `before`: the trial shown just before them (the last practice
    trial): the first of them must not have its reference either."""
    rng = random.Random(seed)
    main = [t for t in trials if not t.is_catch]
    catch = [t for t in trials if t.is_catch]
    best, best_bad = list(trials), None
    for _ in range(attempts):
        seq = spread_catch(fisher_yates(main, rng), fisher_yates(catch, rng), rng)
        bad = violations(seq, before)
        if best_bad is None or bad < best_bad:
            best, best_bad = seq, bad
        if bad == 0:
            break
    return best


FLIP = {"a": "b", "b": "a"}
# The groups whose positions are balanced on their own, per instrument, in this order.
POSITION_GROUPS = ("main", "practice", "identical", "attention")


def _position_group(t) -> str:
    if getattr(t, "is_practice", False):
        return "practice"
    return getattr(t, "catch_kind", "") or "main"


def balance_positions(trials: list, seed: int) -> dict[int, str]:
    """trial id -> canonical candidate shown in position A ("a"/"b").

    Balanced within the participant, per instrument, and within each of the instrument's groups
    (main trials, practice, identical and attention checks) on its own, so that mixing in
    practice and catch trials does not unbalance the main ones. What is balanced is where a
    trial's key candidate appears: the expected answer of a check or practice trial (the right
    answer is in A as often as in B), canonical "a" otherwise. A repeat shows its original's
    candidates the other way round, so an original and its repeat show the key once on each
    side whatever the original's side: a group's repeated originals are balanced among
    themselves and the rest of the group among itself. Where that rest has an odd size, its
    extra side alternates over the instrument's groups, so the instrument as a whole, repeats
    included, stays within one; the repeated originals' extra side (odd count) is the other one
    of the rest's, so the group's originals stay within one too. A repeat whose original is not
    in `trials` is balanced with the other trials of its catch kind."""
    rng = random.Random(seed)
    ids = {t.id for t in trials}
    repeated = {t.repeat_of_id for t in trials if getattr(t, "repeat_of_id", None) in ids}
    groups = defaultdict(list)
    for t in trials:
        if getattr(t, "repeat_of_id", None) not in ids:
            groups[(t.instrument, _position_group(t))].append(t)
    shown: dict[int, str] = {}
    for instrument in sorted({instrument for instrument, _ in groups}):
        extra = rng.choice("ab")
        names = {name for i, name in groups if i == instrument}
        for name in [*POSITION_GROUPS, *sorted(names - set(POSITION_GROUPS))]:
            group = groups.get((instrument, name), [])
            rest = [t for t in group if t.id not in repeated]
            paired = [t for t in group if t.id in repeated]
            _place(rest, _sides(len(rest), extra), rng, shown)
            if paired:
                paired_extra = FLIP[extra] if len(rest) % 2 else rng.choice("ab")
                _place(paired, _sides(len(paired), paired_extra), rng, shown)
            if len(rest) % 2:
                extra = FLIP[extra]
    for t in trials:
        if getattr(t, "repeat_of_id", None) in ids:
            shown[t.id] = FLIP[shown[t.repeat_of_id]]
    return shown


def _sides(n: int, extra: str) -> list[str]:
    """n sides, half "a" (the key candidate is shown in A) and half "b"; an odd one is `extra`."""
    return ["a", "b"] * (n // 2) + [extra] * (n % 2)


def _place(group: list, sides: list[str], rng: random.Random, shown: dict[int, str]) -> None:
    """Deal the sides to the group's trials at random, as the canonical candidate shown in A."""
    for t, side in zip(fisher_yates(group, rng), fisher_yates(sides, rng)):
        key = t.expected if getattr(t, "expected", None) in FLIP else "a"
        shown[t.id] = key if side == "a" else FLIP[key]


def lock_study(study_id: int) -> None:
    """Take the study's lock (its row, FOR UPDATE) until the transaction ends: the fill, the fold
    and trials added to it change only under it."""
    list(Study.objects.select_for_update().filter(pk=study_id).values_list("pk"))


def lock_participants(ids) -> None:
    """Lock these participants' rows (FOR UPDATE, in id order) until the transaction ends. Taken
    before a study's report lock by whatever deletes participants, as a withdrawal takes them
    (its step's UPDATE, then `flow._forget`)."""
    rows = Participant.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    list(rows.values_list("pk", flat=True))


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


def known_full(study: Study) -> bool:
    """Whether the answers of the study's finished participants alone (its fold) already give
    every main trial its target: then it is full for good, since stored answers stay. Read at
    entry, without the study's lock, so that a newcomer is told before consent and screening,
    not after (assignment at the instructions still decides every other case). A fold that no
    longer matches its participants (one was deleted) is not trusted."""
    fold = StudyFold.objects.filter(study_id=study.pk).values("participants", "answers").first()
    if not fold or not fold["participants"]:
        return False
    if FoldedParticipant.objects.filter(study_id=study.pk).count() != fold["participants"]:
        return False
    target = int(study.setting("target_answers_per_trial"))
    main = study.trials.filter(is_practice=False, is_catch=False).values_list("id", flat=True)
    answered = fold["answers"]
    return bool(main) and all(answered.get(str(t), 0) >= target for t in main)


def _least_filled(trials: list, counts: Counter, rng: random.Random, n: int) -> list:
    keyed = sorted(trials, key=lambda t: (counts[t.id], rng.random()))
    return keyed[:n]


@dataclass(frozen=True, slots=True)
class TrialRef:
    """What assigning reads of a trial (choice, order, positions): read as plain values under
    the study's lock, where model instances cost a millisecond per entry at 60 trials."""

    id: int
    instrument: str
    reference_id: int
    is_practice: bool
    is_catch: bool
    catch_kind: str
    expected: str
    repeat_of_id: int | None


TRIAL_REF_FIELDS = tuple(TrialRef.__dataclass_fields__)  # in declaration order


def trial_refs(trials) -> list[TrialRef]:
    """A Trial queryset as TrialRefs, in its order."""
    return [TrialRef(*row) for row in trials.values_list(*TRIAL_REF_FIELDS)]


def select_trials(study: Study, seed: int, counts: Counter) -> list[TrialRef] | None:
    """Main + catch trials for one new participant by the fill `counts`, or None when the study
    is full."""
    rng = random.Random(seed)
    target = int(study.setting("target_answers_per_trial"))
    trials = trial_refs(study.trials.filter(is_practice=False))
    main = [t for t in trials if not t.is_catch]
    if not main or all(counts[t.id] >= target for t in main):
        return None
    n = study.setting("trials_per_participant") or len(main)
    below = [t for t in main if counts[t.id] < target]
    chosen = _least_filled(below, counts, rng, n)
    if len(chosen) < n:  # top up a short session with the least-filled of the rest
        rest = [t for t in main if counts[t.id] >= target]
        chosen += _least_filled(rest, counts, rng, n - len(chosen))
    chosen_ids = {t.id for t in chosen}
    per_kind = study.setting("catch")
    for kind in ("identical", "attention", "repeat"):
        pool = [t for t in trials if t.catch_kind == kind]
        if kind == "repeat":
            pool = [t for t in pool if t.repeat_of_id in chosen_ids]
        chosen += _least_filled(pool, counts, rng, int(per_kind.get(kind, 0) or 0))
    return chosen


# How long entries reuse a count of the fill (plus the slots they assigned since) before one
# counts again. Counting grows with the participants under way (`fill_counts`) and is done under
# the study's lock, so entries arriving together (a study's launch) queued behind one count
# each: in-process, an entry took 87 ms with 600 participants under way, 72 of them counting
# (docs/load-benchmark-log.md, "Figures (2026-12-04, a third machine)"). What a reused count
# misses is at most this old: reservations that expired or were released (the count is high:
# those trials wait a few seconds longer) and expired slots answered or renewed by a returning
# participant (the count is low: a trial may get an answer more than its target). Seconds,
# against reservations of minutes (`reservation_timeout_s`).
FILL_REUSE = timedelta(seconds=5)


def entry_fill(study: Study, now: datetime) -> tuple[Counter, bool]:
    """The fill an entry assigns by, and whether it was counted now (False: reused, see
    FILL_REUSE). Under the study's lock, as its update by `assign`. An entry's `now` may be
    before the count it finds (it was taken before waiting for the lock, and another entry's
    count came first): that count is no older than the entry, and is reused too."""
    kept = StudyFold.objects.filter(study_id=study.pk).values("fill", "fill_at").first()
    counted_at = kept["fill_at"] if kept else None
    if counted_at is not None and now - FILL_REUSE < counted_at < now + FILL_REUSE:
        return Counter({int(trial): n for trial, n in kept["fill"].items()}), False
    return count_fill(study, now), True


def count_fill(study: Study, now: datetime) -> Counter:
    """`fill_counts`, kept with the study for the entries of the next FILL_REUSE."""
    counts = fill_counts(study, now)  # also makes the StudyFold row
    _keep_fill(study, counts, now)
    return counts


def _keep_fill(study: Study, counts: Counter, counted_at: datetime | None = None) -> None:
    fields = {"fill": {str(trial): n for trial, n in counts.items() if n}}
    if counted_at is not None:
        fields["fill_at"] = counted_at
    StudyFold.objects.filter(study_id=study.pk).update(**fields)


def assign(participant: Participant, now: datetime) -> bool:
    """Store the participant's ordered slots (practice first). False when the study is full.

    Idempotent: a participant who already has slots keeps them. The study row is locked so
    concurrent participants see each other's reservations (counted, or added to a reused count).
    """
    with transaction.atomic():
        study = Study.objects.select_for_update().get(pk=participant.study_id)
        if participant.slots.exists():
            return True
        counts, counted = entry_fill(study, now)
        chosen = select_trials(study, participant.seed, counts)
        if chosen is None and not counted:  # no one is turned away on a reused count
            counts = count_fill(study, now)
            chosen = select_trials(study, participant.seed, counts)
        if chosen is None:
            return False
        n_practice = int(study.setting("practice_trials") or 0)
        practice = []
        if n_practice:  # the study's first practice trials
            practice = trial_refs(study.trials.filter(is_practice=True))[:n_practice]
        last = practice[-1] if practice else None
        ordered = practice + order_trials(chosen, participant.seed, before=last)
        counts.update(t.id for t in ordered)  # the next entries see these slots
        _keep_fill(study, counts)
        shown = balance_positions(ordered, participant.seed)
        until = now + timedelta(seconds=int(study.setting("reservation_timeout_s")))
        # Without a listening check every slot may be answered from the start; with one, only
        # once its page was shown (its first view sets the time, flow.touch).
        answerable = None if float(study.setting("min_listen_share") or 0) > 0 else 0
        participant_sql.insert_slots(
            participant.pk, [(t.id, shown[t.id]) for t in ordered], until, answerable
        )
    return True


# A trial page renews the reservation only once less than this share of the timeout is left, so
# an active participant's slots stay reserved for at least 90 % of the timeout after their latest
# trial page while costing one UPDATE per timeout/10 instead of one per page.
RENEW_BELOW_SHARE = 0.9


def _timeout(participant: Participant) -> timedelta:
    return timedelta(seconds=int(participant.study.setting("reservation_timeout_s")))


def reservation_due(participant: Participant, slot: Assignment, now: datetime) -> bool:
    """Whether the reservation needs renewing (the current slot's shows all unanswered ones':
    they are always written together)."""
    return slot.reserved_until < now + RENEW_BELOW_SHARE * _timeout(participant)


def extend_reservations(participant: Participant, now: datetime) -> None:
    """Keep the participant's unanswered slots reserved for the full timeout from `now`."""
    answer = Answer.objects.filter(participant=participant, trial=OuterRef("trial"))
    participant.slots.exclude(Exists(answer)).update(reserved_until=now + _timeout(participant))


def release_finished(participant: Participant) -> None:
    """A finished participant's slots are all answered and counted by their answers: none needs
    a reservation. Releasing them keeps `fill_counts`' live slots to participants under way."""
    participant.slots.filter(reserved_until__gt=participant.started_at).update(
        reserved_until=participant.started_at
    )


def release_reservations(participant: Participant) -> None:
    """Give back every unanswered slot at once (participant left, screened out, withdrew)."""
    answer = Answer.objects.filter(participant=participant, trial=OuterRef("trial"))
    participant.slots.exclude(Exists(answer)).update(reserved_until=participant.started_at)


def realised_design(study: Study) -> pd.DataFrame:
    """One row per stored slot: who saw which trial, where, in which positions, answered or not."""
    answered = set(
        Answer.objects.filter(trial__study=study).values_list("participant_id", "trial_id")
    )
    rows = []
    slots = Assignment.objects.filter(trial__study=study).select_related("trial", "participant")
    for s in slots.order_by("participant_id", "index"):
        t = s.trial
        rows.append(
            {
                "study": study.pk,
                "participant": s.participant_id,
                "session": s.participant.session,
                "trial": t.pk,
                "trial_index": s.index,
                "instrument": t.instrument,
                "reference": t.reference_id,
                "candidate_a": t.candidate_a_id,
                "candidate_b": t.candidate_b_id,
                "displayed_first": s.displayed_first,
                "is_practice": t.is_practice,
                "is_catch": t.is_catch,
                "catch_kind": t.catch_kind,
                "repeat_of": t.repeat_of_id,
                "seed": s.participant.seed,
                "answered": (s.participant_id, t.pk) in answered,
            }
        )
    return pd.DataFrame(rows, columns=REALISED_COLUMNS)


REALISED_COLUMNS = [
    "study", "participant", "session", "trial", "trial_index", "instrument", "reference",
    "candidate_a", "candidate_b", "displayed_first", "is_practice", "is_catch", "catch_kind",
    "repeat_of", "seed", "answered",
]  # fmt: skip
