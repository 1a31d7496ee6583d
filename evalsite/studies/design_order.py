"""Server-side design, the pure part: the order of a participant's trials and which canonical
candidate each shows in position A. Plain functions of trial-like objects and a seed, with no
database: `design.assign` applies them to the trials it chose, and tests check them on hand-made
trials over many seeds.

Rules (docs/site.md, "Design rules"):
- Order: seeded Fisher-Yates; catch trials spread, one per equal block of the sequence; no trial
  follows one whose reference is of the same piece (`reference_piece`, the clip's `Clip.piece_key`:
  the same clip or another clip of its piece; the first one after the practice included); a repeat
  comes after its original with at least one other trial between. The first of `attempts` shuffles
  meeting every rule is kept (else the one with the fewest violations): deterministic for a seed.
- Positions: within a participant and instrument, half the trials show their key candidate in
  position A (odd counts: the extra one by the seed), repeats counted; a repeat shows its
  original's candidates swapped.
"""

from __future__ import annotations

import random
from collections import defaultdict


def fisher_yates(items: list, rng: random.Random) -> list:
    """A uniformly random permutation (Durstenfeld's in-place Fisher-Yates on a copy)."""
    out = list(items)
    for i in range(len(out) - 1, 0, -1):
        j = rng.randint(0, i)
        out[i], out[j] = out[j], out[i]
    return out


def violations(seq: list, before=None) -> int:
    """Count of broken order rules: references of one piece back to back, repeat not after
    original+1. `before`: the trial shown just before the sequence (the last practice trial)."""
    shown = [before, *seq] if before is not None else seq
    bad = sum(1 for x, y in zip(shown, shown[1:]) if same_piece(x, y))
    where = {t.id: i for i, t in enumerate(seq)}
    for i, t in enumerate(seq):
        original = getattr(t, "repeat_of_id", None)
        if original in where and i - where[original] < 2:
            bad += 1
    return bad


def same_piece(x, y) -> bool:
    """Whether two trials' references are of one piece. Where every piece has one clip, this is
    reference clip equality, so a seed's order is the one it was when the rule compared clips."""
    return x.reference_piece == y.reference_piece


def spread_catch(main: list, catch: list, rng: random.Random) -> list:
    """Interleave: the sequence is cut into len(catch) equal blocks, one catch trial in each."""
    n, k = len(main) + len(catch), len(catch)
    slots = {rng.randrange(i * n // k, (i + 1) * n // k) for i in range(k)} if k else set()
    seq, mains, catches = [], iter(main), iter(catch)
    for pos in range(n):
        seq.append(next(catches) if pos in slots else next(mains))
    return seq


def order_trials(trials: list, seed: int, attempts: int = 200, before=None) -> list:
    """Order main and catch trials under the rules above (trials: objects with id,
    reference_piece, is_catch, repeat_of_id, as `design.TrialRef`). `before`: the trial shown
    just before them (the last practice trial): the first of them must not have its reference's
    piece either."""
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


def repair_order(seq: list, before=None, adjacent: set | None = None) -> list:
    """`seq` with as few broken order rules as single swaps give, changed as little as that
    allows: where a trial breaks a rule (its reference of one piece with the one before it, or a
    repeat too close to its original), it is swapped with the nearest later trial that lowers
    the count, of its own kind first (main with main, catch with catch: the catch positions
    stay), else of any. For a list that lost trials (`design_return`): its order was chosen by
    `order_trials`, and only the places where a trial was taken out can break a rule of its own
    making. `adjacent`, when given: the (id before, id) pairs of the order before trials were
    taken out (`before` included); a break between such a pair is the seed's own (`order_trials`
    keeps the fewest it found, not always none) and stays, so the first trial stays where its
    pair with `before` is as it was."""
    seq = list(seq)
    bad = violations(seq, before)
    for i in range(len(seq)):
        if not bad:
            break
        if not _breaks_rule_at(seq, i, before) or _as_placed(seq, i, before, adjacent):
            continue
        later = range(i + 1, len(seq))
        same_kind = [j for j in later if seq[j].is_catch == seq[i].is_catch]
        for j in [*same_kind, *(j for j in later if j not in same_kind)]:
            seq[i], seq[j] = seq[j], seq[i]
            fewer = violations(seq, before)
            if fewer < bad:
                bad = fewer
                break
            seq[i], seq[j] = seq[j], seq[i]
    return seq


def _breaks_rule_at(seq: list, i: int, before) -> bool:
    previous = seq[i - 1] if i else before
    if previous is not None and same_piece(previous, seq[i]):
        return True
    return i > 0 and seq[i - 1].id == getattr(seq[i], "repeat_of_id", None)


def _as_placed(seq: list, i: int, before, adjacent: set | None) -> bool:
    previous = seq[i - 1] if i else before
    return adjacent is not None and previous is not None and (previous.id, seq[i].id) in adjacent


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
