"""Server-side design: which trials a participant gets, stored as their slots, and how long
those slots stay reserved.

Rules (docs/site.md):
- Assignment: main trials least-filled first (answers stored + live reservations, counted in
  `design_fill`), below-target trials before the others; the study is full when every main trial
  reached its target. The chosen trials are ordered and their positions balanced by
  `design_order`. A slot's reservation lasts at least 90 % of `reservation_timeout_s` after the
  participant's latest trial page (renewed to the full timeout once less is left).
- The realised design (`realised_design`) is read back from the stored slots, for the export.

The participants' lock (`lock_participants`) is here; the study's lock, which guards the fill,
is `design_fill.lock_study`.
"""

from __future__ import annotations

import random
from collections import Counter, defaultdict
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import TYPE_CHECKING

from django.db import transaction
from django.db.models import Exists, OuterRef

from evalsite.stimuli.models import piece_key
from evalsite.studies import participant_writes
from evalsite.studies.design_fill import count_fill, entry_fill, full_by, keep_fill
from evalsite.studies.design_order import balance_positions, order_trials
from evalsite.studies.design_pieces import most_on_one_reference, piece_plan, trial_keys
from evalsite.studies.models import Answer, Assignment, Participant, Study

if TYPE_CHECKING:
    import pandas as pd


def lock_participants(ids) -> None:
    """Lock these participants' rows (FOR UPDATE, in id order) until the transaction ends. Taken
    before a study's report lock by whatever deletes participants, as a withdrawal takes them
    (its step's UPDATE, then `flow_withdraw._forget`)."""
    rows = Participant.objects.select_for_update().filter(pk__in=ids).order_by("pk")
    list(rows.values_list("pk", flat=True))


def least_filled(trials: list, counts: Counter, rng: random.Random, n: int) -> list:
    keyed = sorted(trials, key=lambda t: (counts[t.id], rng.random()))
    return keyed[:n]


def one_per_reference(
    trials: list, counts: Counter, rng: random.Random, n: int, taken: set, originals: set
) -> list:
    """Up to n main trials, least-filled first (ties by the seed, drawn as `least_filled`
    draws them), none of which `design_pieces.blocked` keeps out by the keys (`trial_keys`) in
    `taken` or another chosen one's, which the chosen ones join: at most one per (instrument,
    reference piece),
    and no two on one reference piece that share a candidate piece where the model chose either's
    candidates. Two main trials of one instrument and reference share a candidate and differ in
    the other (a model design's shared one is the model's choice: model_design.plan_trials), so
    one participant given both could tell which candidate the model chose (in a random design
    they share the song and link the two trials); so can one given two of different instruments
    on that reference whose subspaces agree on its nearest neighbour (the design pairs each
    reference with the nearest neighbour in each instrument's subspace). A random draw's
    candidates are random: across instruments, one that recurs tells nothing, and such trials go
    together, as do trials on one reference that share no candidate piece. Pieces, not clips (an
    upload names one piece for all its files): clips of one piece share their nearest neighbour
    of another piece, and the designs balance references by piece, taking the piece's other clip
    where it recurs. Of equally filled trials of one instrument and reference piece, one with a
    repeat check (its id in `originals`) goes first where its candidates are free, so that the
    rule costs no repeat check where it need not. Per reference piece, the trials taken are
    as many as can go together (`design_pieces.piece_plan`: an exact search), one of its least
    filled among them, the earliest in that order where several choices give as many."""
    pair = lambda t: (t.instrument, t.reference_piece)  # noqa: E731
    order = sorted(trials, key=lambda t: (counts[t.id], rng.random()))
    first: dict = {}  # (pair, fill) -> where its first trial is in the order
    for i, t in enumerate(order):
        first.setdefault((pair(t), counts[t.id]), i)
    # a repeat check's original moves to the front of its pair's equally filled trials
    ranked = [t for _, _, _, t in sorted(
        (first[pair(t), counts[t.id]], 0, i, t) if t.id in originals else (i, 1, i, t)
        for i, t in enumerate(order))]  # fmt: skip
    pieces: dict = defaultdict(list)
    for t in ranked:
        pieces[t.reference_piece].append(t)
    planned = {t.id for ts in pieces.values() for t in piece_plan(ts, counts, taken)}
    chosen = [t for t in ranked if t.id in planned][:n]
    for t in chosen:
        taken |= trial_keys(t)
    return chosen


def most_main_trials(study: Study) -> dict[str, int]:
    """Per instrument (the study's order), the most main trials of it one participant can get:
    one per reference piece (`select_trials`). The rule on shared candidates takes none of
    these (one instrument's trials of distinct reference pieces share no reference), but it can
    keep one participant from having them all at once: the most in all is `most_main_total`."""
    main = study.trials.filter(is_practice=False, is_catch=False)
    # order_by(): the default ordering's column (id) would make DISTINCT count trials
    rows = main.order_by().values_list("instrument", "reference_id", *PIECE_FIELDS).distinct()
    pairs = {(i, piece_key(*clip)) for i, *clip in rows}
    per = Counter(i for i, _ in pairs)
    order = [i for i in study.instruments if i in per] + sorted(set(per) - set(study.instruments))
    return {i: per[i] for i in order}


def most_main_total(study: Study) -> int:
    """The most main trials one participant can get in all under `select_trials`' rules (before
    `trials_per_participant`): per reference piece, the most trials of distinct instruments of
    which no two share a candidate piece where the model chose either's candidates."""
    options: dict = defaultdict(lambda: defaultdict(set))  # piece -> instrument -> options
    for t in trial_refs(study.trials.filter(is_practice=False, is_catch=False)):
        options[t.reference_piece][t.instrument].add((t.candidate_pieces, t.model_designed))
    return sum(most_on_one_reference(list(per.values())) for per in options.values())


@dataclass(frozen=True, slots=True)
class TrialRef:
    """What assigning reads of a trial (choice, order, positions): read as plain values under
    the study's lock, where model instances cost a millisecond per entry at 60 trials. Built
    from a row of `TRIAL_REF_FIELDS` by `trial_ref`."""

    id: int
    instrument: str
    reference_id: int
    is_practice: bool
    is_catch: bool
    catch_kind: str
    expected: str
    repeat_of_id: int | None
    model_designed: bool  # its candidates are the model design's (Trial.model_designed)
    reference_piece: tuple  # the reference's Clip.piece_key
    candidate_pieces: frozenset  # the candidates' Clip.piece_keys (one where they share a piece)


# A Trial's columns that make its piece key (stimuli.models.piece_key, after the clip's id)
PIECE_FIELDS = ("reference__catalogue_id", "reference__dataset", "reference__piece")
# A candidate's id and piece columns, as piece_key takes them
CANDIDATE_FIELDS = tuple(
    f"candidate_{x}{column}"
    for x in "ab"
    for column in ("_id", "__catalogue_id", "__dataset", "__piece")
)
_OWN_FIELDS = tuple(TrialRef.__dataclass_fields__)[:-2]  # TrialRef's Trial columns
# What `trial_ref` reads: TrialRef's Trial columns, its reference's piece columns, then its
# candidates' (CANDIDATE_FIELDS)
TRIAL_REF_FIELDS = (*_OWN_FIELDS, *PIECE_FIELDS, *CANDIDATE_FIELDS)


def trial_ref(row: tuple) -> TrialRef:
    """A TrialRef from a row of TRIAL_REF_FIELDS (read in the query that reads the trial)."""
    n, m = len(_OWN_FIELDS), len(_OWN_FIELDS) + len(PIECE_FIELDS)
    own = dict(zip(_OWN_FIELDS, row[:n], strict=True))
    piece = piece_key(own["reference_id"], *row[n:m])
    a, b = row[m : m + 4], row[m + 4 : m + 8]
    return TrialRef(**own, reference_piece=piece, candidate_pieces=frozenset(
        (piece_key(*a), piece_key(*b))))  # fmt: skip


def trial_refs(trials) -> list[TrialRef]:
    """A Trial queryset as TrialRefs, in its order."""
    return [trial_ref(row) for row in trials.values_list(*TRIAL_REF_FIELDS)]


def select_trials(study: Study, seed: int, counts: Counter) -> list[TrialRef] | None:
    """Main + catch trials for one new participant by the fill `counts`, or None when the study
    is full. At most one main trial per (instrument, reference piece), and no two on one
    reference piece that share a candidate piece where the model chose either's candidates
    (`one_per_reference`): where they recur, the participant gets fewer main trials than asked
    (`most_main_total`), and the others go to the next participants."""
    rng = random.Random(seed)
    target = int(study.setting("target_answers_per_trial"))
    trials = trial_refs(study.trials.filter(is_practice=False))
    main = [t for t in trials if not t.is_catch]
    if full_by(counts, [t.id for t in main], target):
        return None
    n = study.setting("trials_per_participant") or len(main)
    below = [t for t in main if counts[t.id] < target]
    taken: set[tuple] = set()  # the chosen ones' keys (`trial_keys`)
    originals = {t.repeat_of_id for t in trials if t.catch_kind == "repeat"}
    chosen = one_per_reference(below, counts, rng, n, taken, originals)
    if len(chosen) < n:  # top up a short session with the least-filled of the rest
        rest = [t for t in main if counts[t.id] >= target]
        chosen += one_per_reference(rest, counts, rng, n - len(chosen), taken, originals)
    chosen_ids = {t.id for t in chosen}
    per_kind = study.setting("catch")
    for kind in ("identical", "attention", "repeat"):
        pool = [t for t in trials if t.catch_kind == kind]
        if kind == "repeat":
            pool = [t for t in pool if t.repeat_of_id in chosen_ids]
        chosen += least_filled(pool, counts, rng, int(per_kind.get(kind, 0) or 0))
    return chosen


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
        keep_fill(study, counts)
        shown = balance_positions(ordered, participant.seed)
        until = now + timedelta(seconds=int(study.setting("reservation_timeout_s")))
        participant_writes.insert_slots(
            participant.pk, [(t.id, shown[t.id]) for t in ordered], until, answerable(study)
        )
    return True


def answerable(study: Study) -> int | None:
    """A new slot's `answerable_ms`: without a listening check every slot may be answered from
    the start (0); with one, only once its page was shown (None: its first view sets the time,
    flow_trials.touch)."""
    return None if float(study.setting("min_listen_share") or 0) > 0 else 0


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
    import pandas as pd  # loaded here, not by every process that starts the site

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
                "model_designed": t.model_designed,
                "seed": s.participant.seed,
                "answered": (s.participant_id, t.pk) in answered,
            }
        )
    return pd.DataFrame(rows, columns=REALISED_COLUMNS)


REALISED_COLUMNS = [
    "study", "participant", "session", "trial", "trial_index", "instrument", "reference",
    "candidate_a", "candidate_b", "displayed_first", "is_practice", "is_catch", "catch_kind",
    "repeat_of", "model_designed", "seed", "answered",
]  # fmt: skip
