"""A returning participant's list refilled: where its return (`design_return`) took main trials
out because others took them to their target while it was away, trials still below their target
take their place, under the study's lock, as an entry's are chosen. The choice and the placing
are plain functions of trial-like objects and a seed (`choose`, `place`); `refill` stores them.

Rules (docs/site.md, "Coming back after the timeout"):
- Main trials below their target only (one at its target would be taken out at the next return),
  least-filled first, ties by the seed, as many as were taken out: what the participant was
  given, whatever the study's settings now (an edit after its entry is for those to come). None
  it held, and none that `design.one_per_reference` keeps out beside every main trial it held,
  taken out ones included, at this return or an earlier one (`TakenOutTrial`; the page of one
  may have been heard): one main trial per instrument and reference piece, no shared candidate
  piece on one reference piece where either trial is model-designed.
- Repeat checks of the new main trials, at most as many as were taken out. No other check or
  practice trial is added: a return keeps those, and takes them out only when no main trial is
  left and none can be refilled.
- The new slots come after every slot it holds, ordered by `design_order.order_trials` after the
  last one (the order rules hold across the join), so no slot it holds moves for them. A new
  repeat check that order puts next to its original or before it is left out (`spaced`): only
  a new trial can sit between them, and there may be none (one main trial refilled). Their
  positions balance each instrument's main trials, those it holds included: the key candidate in
  A as often as in B, within one (the odd one's side by the seed); a repeat shows its original's
  candidates swapped.
- Nothing to refill (no main trial below target that the rules allow): the return goes on as
  before, with a shorter list or at the study-full step.
"""

from __future__ import annotations

import random
from collections import Counter
from datetime import datetime

from evalsite.studies import participant_writes
from evalsite.studies.design import (
    TrialRef,
    answerable,
    least_filled,
    one_per_reference,
    trial_keys,
    trial_refs,
)
from evalsite.studies.design_order import FLIP, fisher_yates, order_trials
from evalsite.studies.models import Study, TakenOutTrial


def _is_main(t) -> bool:
    return not (t.is_practice or t.is_catch)


def choose(
    trials: list, held: list, counts: Counter, target: int, mains: int, repeats: int, seed: int
) -> list:
    """The trials (main ones, then their repeat checks) that refill a list. `trials`: the study's
    main and catch trials; `held`: every trial of the participant's list before its return, and
    those taken out at its earlier returns; `mains` and `repeats`: how many main trials and
    repeat checks its return took out, the most that take their place."""
    rng = random.Random(seed)
    held_ids = {t.id for t in held}
    below = [t for t in trials if _is_main(t) and t.id not in held_ids and counts[t.id] < target]
    taken: set[tuple] = set().union(*(trial_keys(t) for t in held if _is_main(t)))
    originals = {t.repeat_of_id for t in trials if t.catch_kind == "repeat"}
    chosen = one_per_reference(below, counts, rng, mains, taken, originals)
    ids = {t.id for t in chosen}
    pool = [t for t in trials if t.catch_kind == "repeat" and t.repeat_of_id in ids]
    return chosen + least_filled(pool, counts, rng, repeats)


def place(new: list, kept: list[tuple], last, seed: int) -> list[tuple]:
    """(trial, canonical candidate shown in A) for each of `new` that `spaced` keeps, in the
    order they follow `last` (the list's last slot). `kept`: the (main trial, shown in A) the
    participant holds."""
    rng = random.Random(seed)
    ordered = spaced(new, last, seed)
    shown: dict[int, str] = {}
    mains = [t for t in new if _is_main(t)]
    for instrument in sorted({t.instrument for t in mains}):
        group = [t for t in mains if t.instrument == instrument]
        held_in_a = sum(1 for t, a in kept if t.instrument == instrument and a == "a")
        total = sum(1 for t, _ in kept if t.instrument == instrument) + len(group)
        want = total // 2 + (rng.random() < 0.5 if total % 2 else 0)
        in_a = min(max(want - held_in_a, 0), len(group))
        sides = ["a"] * in_a + ["b"] * (len(group) - in_a)
        shown |= dict(zip((t.id for t in fisher_yates(group, rng)), fisher_yates(sides, rng)))
    for t in ordered:
        if not _is_main(t):
            shown[t.id] = FLIP[shown[t.repeat_of_id]]
    return [(t, shown[t.id]) for t in ordered]


def spaced(new: list, last, seed: int) -> list:
    """`new` in the order `order_trials` gives after `last`, less each repeat check that order
    puts next to its original or before it, ordered again without it until none is: a repeat
    needs a new trial between (the slots the participant holds all come before the new ones),
    and one heard right after, or before, its original measures nothing."""
    trials = list(new)
    while True:
        ordered = order_trials(trials, seed, before=last)
        where = {t.id: i for i, t in enumerate(ordered)}
        close = [t for i, t in enumerate(ordered)
                 if t.repeat_of_id in where and i - where[t.repeat_of_id] < 2]  # fmt: skip
        if not close:
            return ordered
        trials.remove(close[0])


def refill(
    study: Study, participant_id: int, seed: int, new: list, kept: list[dict], until: datetime
) -> list:
    """Store `new` (`choose`) after the participant's `kept` slots (its list as the return left
    it, in order: dicts with `trial` and `displayed_first`), reserved until `until`; the trials
    stored (`place` leaves out a repeat check it cannot space from its original)."""
    last = kept[-1]["trial"] if kept else None
    mains = [(s["trial"], s["displayed_first"]) for s in kept if _is_main(s["trial"])]
    placed = place(new, mains, last, seed)
    rows = [(t.id, side) for t, side in placed]
    participant_writes.insert_slots(participant_id, rows, until, answerable(study), len(kept))
    return [t for t, _ in placed]


def choose_for(
    study: Study, participant_id: int, seed: int, slots: list[dict], dropped: list[dict], counts
) -> list:
    """`choose` for a participant's `slots` (`design_return._slots`) of which `dropped` go, as
    many main trials and repeat checks as go: what it was given, not the study's settings now
    (an edit after its entry does not change its session). The trials taken out of its list at
    its earlier returns (`TakenOutTrial`) count as held."""
    mains = sum(1 for s in dropped if _is_main(s["trial"]))
    if not mains:
        return []
    repeats = sum(1 for s in dropped if s["trial"].catch_kind == "repeat")
    trials = trial_refs(study.trials.filter(is_practice=False))
    target = int(study.setting("target_answers_per_trial"))
    held: list[TrialRef] = [s["trial"] for s in slots]
    rows = TakenOutTrial.objects.filter(participant_id=participant_id)
    taken_out = set(rows.values_list("trial_id", flat=True))
    held += [t for t in trials if t.id in taken_out]
    return choose(trials, held, counts, target, mains, repeats, seed)
