"""Which main trials on one reference piece go to one participant together (docs/site.md, Design
rules): at most one per instrument, and no two that share a candidate piece where the model chose
either's candidates (Trial.model_designed). Per piece the choice is a small maximum independent
set among its instruments (a study has a handful), so it is searched exactly: a participant gets
as many as can go together, not the fewer a first pick down the least-filled order can leave
(guitar sharing a candidate with drums and with bass keeps out both where taken first).

`design.one_per_reference` takes the trials of each piece's plan (`piece_plan`) least-filled
first; `design.most_main_total` counts the most with `most_on_one_reference`.
"""

from __future__ import annotations

from collections import Counter, defaultdict


def trial_keys(t) -> set[tuple]:
    """What choosing `t` (a design.TrialRef) takes from the participant's other main trials: its
    instrument on its reference piece, and each of its candidate pieces on its reference piece,
    marked with whether the model chose its candidates (`blocked` reads the mark)."""
    return {("instrument", t.instrument, t.reference_piece),
            *(("candidate", t.reference_piece, c, t.model_designed)
              for c in t.candidate_pieces)}  # fmt: skip


def blocked(t, taken: set) -> bool:
    """Whether a chosen trial's keys in `taken` keep `t` from the participant: one of its
    instrument and reference piece, or one on its reference piece sharing a candidate piece
    where the model chose the candidates of either (Trial.model_designed). A random or hand-made
    trial's recurring candidate tells nothing, so two such trials sharing one still go
    together; where one is the model's, the recurring candidate can be its choice."""
    if ("instrument", t.instrument, t.reference_piece) in taken:
        return True
    marks = (True, False) if t.model_designed else (True,)
    return any(("candidate", t.reference_piece, c, m) in taken
               for c in t.candidate_pieces for m in marks)  # fmt: skip


def most_on_one_reference(
    options: list[set[tuple[frozenset, bool]]],
    anyone: frozenset = frozenset(),
    model: frozenset = frozenset(),
) -> int:
    """The most instruments that can each take one of their options (a trial's candidate
    pieces, and whether the model chose them) with no piece taken twice where the model chose
    either's, beside the candidate pieces already taken (`anyone`; `model`: those a
    model-designed trial took): a depth-first search over the instruments, cut where the
    instruments left cannot beat the best found."""
    best = 0

    def visit(i: int, anyone: frozenset, model: frozenset, got: int) -> None:
        nonlocal best
        if got + len(options) - i <= best:
            return
        if i == len(options):
            best = got
            return
        for candidates, by_model in options[i]:
            if not candidates & (anyone if by_model else model):
                taken = (model | candidates) if by_model else model
                visit(i + 1, anyone | candidates, taken, got + 1)
        visit(i + 1, anyone, model, got)

    visit(0, anyone, model, 0)
    return best


def _most_beside(keys: set, trials: list) -> int:
    """The most of `trials` (one reference piece's) that can still go together beside the
    chosen ones' `keys`."""
    piece = trials[0].reference_piece
    anyone = frozenset(k[2] for k in keys if k[0] == "candidate" and k[1] == piece)
    model = frozenset(k[2] for k in keys if k[0] == "candidate" and k[1] == piece and k[3])
    options: dict = defaultdict(set)  # instrument -> its trials' (candidate pieces, by model)
    for t in trials:
        if not blocked(t, keys):
            options[t.instrument].add((t.candidate_pieces, t.model_designed))
    return most_on_one_reference(list(options.values()), anyone, model)


def piece_plan(trials: list, counts: Counter, taken: set) -> list:
    """The trials of `trials` (main trials on one reference piece, in the participant's order:
    least-filled first, ties by the seed) that go to the participant beside the keys in
    `taken`: as many as can go together, one of the least filled among them (so the least
    filled of all is always taken and every trial reaches its target: one that no maximal
    choice holds waits until it is the least filled of its piece), and of such choices the
    one taking the earliest in the order (a first pick down the order wherever that reaches
    the most, as on a fresh study's piece whose trials do not compete)."""
    free = [t for t in trials if not blocked(t, taken)]
    if not free:
        return []
    low = min(counts[t.id] for t in free)
    target = max(1 + _most_beside(taken | trial_keys(t), free)
                 for t in free if counts[t.id] == low)  # fmt: skip
    chosen: list = []
    keys = set(taken)
    for t in free:
        if blocked(t, keys) or (not chosen and counts[t.id] != low):
            continue
        if len(chosen) + 1 + _most_beside(keys | trial_keys(t), free) == target:
            chosen.append(t)
            keys |= trial_keys(t)
    return chosen
