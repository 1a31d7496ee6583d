"""The "model" design strategy: trials chosen with the model's instrument subspaces, and the
model's choice and margin on any trial.

Model choice (every trial, catch trials too): the candidate closer to the reference in the
trial's instrument subspace, d(x, y; m_c) = ||m_c * (x - y)||; ties go to "a". The margin is
d(reference, other) - d(reference, chosen) >= 0, in the subspace's distance units. Neither is
ever shown to participants (only the experimenter's pages and the export carry them).

Main trials (plan_trials, a plain function on arrays): for each instrument, a reference clip, its
nearest neighbour in the instrument subspace, and one other candidate picked by the strategy:
  nearest_random     a random clip
  nearest_farthest   the farthest clip
  margin_easy        margin in the top third of the instrument's margins (model sure)
  margin_borderline  margin in the bottom third (nearly equidistant)
  margin_confidently_wrong  margin in the top third, but the whole embedding (all five
                     subspaces) puts the other candidate closer: a listener judging the whole
                     mix instead of the instrument would disagree with the model. [choice]
  margin_stratified  the three margin bins in turn
Margins are pooled over every (reference, nearest neighbour, other) of the instrument to set the
thirds. No candidate comes from the reference's piece and the two candidates come from different
pieces. Balance: references go to the pieces used least as the instrument's reference, then
as any reference so far (counts differ by at most one when every piece can serve), then least
used overall, so a reference recurs within an instrument only once every piece that can serve
has served (two such trials share the model's choice: the assignment gives them to different
participants, design.select_trials); the strategy's other candidate goes to the least-used
piece of its bin (ties by the seeded generator). The nearest neighbour is
what the model says it is, so a "hub" piece can appear more often in that role; the design
records the min/max usage per piece. The nearest neighbour lands in canonical "a" or "b" by a
seeded coin.
Catch and practice trials are those of the random design (evalsite/studies/random_design.py):
identical, attention (stem-built clips: only the judged instrument's stem vs only the other
stems changed), repeat; practice with no candidate of an identical or attention catch trial,
with Study.design["practice_notes"] saying what the catalogue could not give. Same seed, same
catalogue and embeddings -> the same trials.
"""

from __future__ import annotations

import builtins
import numbers
import random
from collections import Counter
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from typing import Any, NamedTuple

import numpy as np
from django.db import transaction

from evalsite.stimuli.models import Catalogue, Clip
from evalsite.studies import random_design as rd
from evalsite.studies.models import MAX_PRACTICE_TRIALS, Study, Trial

STRATEGIES = (
    "nearest_random",
    "nearest_farthest",
    "margin_easy",
    "margin_borderline",
    "margin_confidently_wrong",
    "margin_stratified",
)
BINS = ("easy", "borderline", "confidently_wrong")
LEAST = {"per_instrument": 1, "catch_per_kind": 0, "practice": 0}  # smallest value of each count
MOST = {"practice": MAX_PRACTICE_TRIALS}  # largest, where one makes sense


class DesignError(rd.DesignError):
    pass


class StudyNotEmpty(DesignError):
    """The study has trials already: a design never adds to them."""


class StudyClosed(DesignError):
    """The study was closed after the design was queued: a closed study never changes."""


def check_counts(**counts) -> None:
    """Refuse (DesignError, a ValueError) the first count that is not an integer from its LEAST
    to its MOST value: 0 trials per instrument designs nothing; a negative count breaks sampling;
    more practice trials than a study can show (MAX_PRACTICE_TRIALS) are never seen."""
    for name, value in counts.items():
        least, most = LEAST[name], MOST.get(name)
        whole = isinstance(value, numbers.Integral) and not isinstance(value, bool)
        if not whole or not least <= int(value) <= (most if most is not None else int(value)):
            expected = f"from {least} to {most}" if most is not None else f">= {least}"
            raise DesignError(f"{name}={value!r}: expected an integer {expected}")


def choose(ref: np.ndarray, a: np.ndarray, b: np.ndarray) -> tuple[str, float]:
    """("a"|"b", margin) from subspace vectors of reference and candidates (d,)."""
    da, db = float(np.linalg.norm(ref - a)), float(np.linalg.norm(ref - b))
    return ("a", db - da) if da <= db else ("b", da - db)


@dataclass(frozen=True)
class Planned:
    instrument: str
    reference: int  # row index into the arrays given to plan_trials
    nearest: int
    other: int
    nearest_is_a: bool
    margin: float
    bin: str  # "random", "farthest", or one of BINS


def _pairwise(x: np.ndarray) -> np.ndarray:
    sq = (x.astype(np.float64) ** 2).sum(1)
    d2 = sq[:, None] - 2.0 * x.astype(np.float64) @ x.astype(np.float64).T + sq[None, :]
    return np.sqrt(np.maximum(d2, 0.0))  # (N, N)


def _bins(sub: np.ndarray, full: np.ndarray, pieces: np.ndarray) -> dict:
    """For each reference: nearest other-piece neighbour, candidate margins and bin masks."""
    n = len(pieces)
    same = pieces[:, None] == pieces[None, :]  # (N, N)
    nn = np.where(same, np.inf, sub).argmin(1)  # (N,)
    margin = sub - sub[np.arange(n), nn][:, None]  # (N, N) d(ref, j) - d(ref, nn)
    allowed = ~same & (pieces[None, :] != pieces[nn][:, None])  # not ref's or nn's piece
    pooled = margin[allowed]
    lo, hi = np.quantile(pooled, [1 / 3, 2 / 3]) if pooled.size else (0.0, 0.0)
    wrong = full < full[np.arange(n), nn][:, None]  # whole embedding prefers j over nn
    return {
        "nn": nn,
        "margin": margin,
        "allowed": allowed,
        "easy": allowed & (margin >= hi),
        "borderline": allowed & (margin <= lo),
        "confidently_wrong": allowed & (margin >= hi) & wrong,
        "thresholds": (float(lo), float(hi)),
    }


def _pick(mask_row: np.ndarray, pieces, usage: Counter, rng: random.Random, key=None) -> int:
    idx = np.flatnonzero(mask_row)
    if key is not None:  # a deterministic target (farthest): take it
        return int(idx[np.argmax(key[idx])])
    least = min(usage[pieces[i]] for i in idx)
    return rng.choice([int(i) for i in idx if usage[pieces[i]] == least])


def plan_trials(
    pieces: Sequence[Hashable],
    subspaces: dict[str, np.ndarray],
    full: np.ndarray,
    strategy: str,
    per_instrument: int,
    seed: int,
) -> tuple[list[Planned], dict]:
    """Plan main trials. pieces: (N,) piece of each clip (a label per piece); subspaces:
    instrument -> (N, d); full: (N, D) whole embeddings. Returns (trials, info with thresholds
    and shortfalls)."""
    if strategy not in STRATEGIES:
        raise DesignError(f"strategy {strategy!r}: expected one of {', '.join(STRATEGIES)}")
    check_counts(per_instrument=per_instrument)
    pieces_arr = np.asarray(pieces, dtype=object)
    if len(set(pieces)) < 3:
        raise DesignError(f"{len(set(pieces))} pieces with embeddings; expected at least 3")
    rng = random.Random(seed)
    usage: Counter = Counter()  # appearances in any role
    as_ref: Counter = Counter()  # appearances as the reference
    full_d = _pairwise(full)
    planned = []
    info: dict[str, dict[str, Any]] = {"thresholds": {}, "shortfall": {}}
    for instrument, x in subspaces.items():
        sub = _pairwise(x)
        b = _bins(sub, full_d, pieces_arr)
        info["thresholds"][instrument] = b["thresholds"]
        used = np.zeros_like(b["allowed"])  # (N, N) (reference, other) pairs already planned
        here: Counter = Counter()  # pieces used as this instrument's reference
        made, slot = 0, 0
        empty: set[str] = set()  # kinds with no feasible trial left
        kinds = BINS if strategy == "margin_stratified" else (_kind(strategy, 0),)
        while made < per_instrument and len(empty) < len(kinds):
            kind = _kind(strategy, slot)
            slot += 1
            if kind in empty:
                continue
            masks = (b["allowed"] if kind in ("random", "farthest") else b[kind]) & ~used
            feasible = masks.any(1)  # (N,) references that still have a candidate of this kind
            if not feasible.any():
                empty.add(kind)
                continue
            ref = _reference(pieces_arr, (here, as_ref, usage), rng, feasible)
            nn = int(b["nn"][ref])
            key = sub[ref] if kind == "farthest" else None
            other = _pick(masks[ref], pieces_arr, usage, rng, key)
            used[ref, other] = True
            as_ref[pieces_arr[ref]] += 1
            here[pieces_arr[ref]] += 1
            for i in (ref, nn, other):
                usage[pieces_arr[i]] += 1
            planned.append(
                Planned(instrument, ref, nn, other, rng.random() < 0.5,
                        float(b["margin"][ref, other]), kind)
            )  # fmt: skip
            made += 1
        if empty:
            info.setdefault("empty_bins", {})[instrument] = sorted(empty)
        if made < per_instrument:
            info["shortfall"][instrument] = per_instrument - made
    info["piece_usage"] = {"min": int(min(usage.values(), default=0)),
                           "max": int(max(usage.values(), default=0))}  # fmt: skip
    return planned, info


def _kind(strategy: str, i: int) -> str:
    if strategy == "nearest_random":
        return "random"
    if strategy == "nearest_farthest":
        return "farthest"
    if strategy == "margin_stratified":
        return BINS[i % len(BINS)]
    return strategy.removeprefix("margin_")


def _reference(pieces, counts: tuple[Counter, ...], rng: random.Random, feasible) -> int:
    """A feasible clip of the pieces least used by `counts` in turn: as this instrument's
    reference (a reference recurs within an instrument only once every feasible piece served:
    such trials share the model's choice, so design.select_trials gives them to different
    participants, and each recurrence costs every participant a trial), as any reference, in
    any role."""
    idx = np.flatnonzero(feasible)
    key = lambda i: tuple(c[pieces[i]] for c in counts)  # noqa: E731
    least = min(key(i) for i in idx)
    return rng.choice([int(i) for i in idx if key(i) == least])


class Assigned(NamedTuple):
    set: int  # trials given this version's choice
    cleared: int  # trials whose earlier choice was removed: this version cannot recompute it
    missing: builtins.set[int]  # ids of clips without an embedding under the version


def assign_model_choices(trials, version) -> Assigned:
    """Store model_choice and model_margin on trials whose three clips are embedded under
    version; clear them on the other trials, so that no study mixes two checkpoints' choices."""
    from evalsite.retrieval.ingest import vectors_for

    trials = list(trials)
    ids = {c for t in trials for c in (t.reference_id, t.candidate_a_id, t.candidate_b_id)}
    vectors = vectors_for(version, list(ids))
    missing = ids - set(vectors)
    changed, cleared = [], 0
    for t in trials:
        trio = (t.reference_id, t.candidate_a_id, t.candidate_b_id)
        if any(c not in vectors for c in trio):
            if t.model_choice is not None or t.model_margin is not None:
                t.model_choice = t.model_margin = None
                changed.append(t)
                cleared += 1
            continue
        ref, a, b = version.subspace(np.stack([vectors[c] for c in trio]), t.instrument)
        t.model_choice, t.model_margin = choose(ref, a, b)
        changed.append(t)
    Trial.objects.bulk_update(changed, ["model_choice", "model_margin"])
    return Assigned(len(changed) - cleared, cleared, missing)


def catalogue_clip_ids(catalogue: Catalogue) -> list[int]:
    """Every ready clip of the catalogue (mixes and stem-built catch clips): what to embed."""
    return list(
        catalogue.clips.filter(status=Clip.Status.READY).order_by("id").values_list("id", flat=True)
    )


def build_model_trials(
    study: Study,
    catalogue: Catalogue,
    version,
    strategy: str,
    per_instrument: int,
    seed: int = 0,
    practice: int = 2,
    catch_per_kind: int = 2,
) -> list[Trial]:
    """Create the study's trials from the model (call on a study without trials that is not
    closed, with the catalogue embedded under version). Stores strategy, seed and checkpoint on
    Study.design."""
    from evalsite.retrieval.ingest import vectors_for

    check_counts(per_instrument=per_instrument, catch_per_kind=catch_per_kind, practice=practice)
    _refuse_trials(study)
    unknown = [i for i in study.instruments if i not in version.conditions]
    if unknown:
        raise DesignError(f"study {study.pk}: instruments {unknown} not in {version.conditions}")
    mixes = rd._mixes(catalogue)
    vectors = vectors_for(version, [c.pk for c in mixes])
    mixes = [c for c in mixes if c.pk in vectors]
    if not mixes:
        raise DesignError(f"catalogue {catalogue.name!r}: no embedded mix clips; ingest it first")
    full = np.stack([vectors[c.pk] for c in mixes])  # (N, D)
    subspaces = {i: version.subspace(full, i) for i in study.instruments}
    # a number per piece (Clip.piece_key: two datasets may both have a Track00001)
    codes: dict[tuple, int] = {}
    pieces = [codes.setdefault(c.piece_key, len(codes)) for c in mixes]
    plan, info = plan_trials(pieces, subspaces, full, strategy, per_instrument, seed)
    rng = random.Random(seed + 1)  # catch trials: their own stream, same seed
    with transaction.atomic():
        # Two design jobs for one study can both pass the check above; the row lock makes the
        # second wait for the first's commit, and the check again then sees its trials.
        # Closing takes the same lock (experimenter.study_status), so no design lands after it.
        if Study.objects.select_for_update().get(pk=study.pk).status == Study.Status.CLOSED:
            raise StudyClosed(f"study {study.name!r} is closed; nothing designed")
        _refuse_trials(study)
        made = [_main_trial(study, mixes, p) for p in plan]
        made += _catch_trials(study, catalogue, mixes, made, rng, catch_per_kind)
        practised, notes = rd._practice(study, catalogue, mixes, practice, rng, made)
        made += practised
        assign_model_choices([t for t in made if t.model_choice is None], version)
        study.design = {
            "strategy": strategy, "seed": seed, "by": "model_design",
            "checkpoint_id": version.checkpoint_id, "per_instrument": per_instrument,
            "catalogue": catalogue.pk, "catch_per_kind": catch_per_kind, **info,
            "practice_notes": notes,
        }  # fmt: skip
        study.catalogue = catalogue
        study.save(update_fields=["design", "catalogue", "updated_at"])
    return made


def _refuse_trials(study: Study) -> None:
    if study.trials.exists():
        raise StudyNotEmpty(f"study {study.pk}: already has trials; expected an empty study")


def _main_trial(study: Study, mixes: list[Clip], p: Planned) -> Trial:
    nn, other = mixes[p.nearest], mixes[p.other]
    a, b = (nn, other) if p.nearest_is_a else (other, nn)
    return Trial.objects.create(
        study=study, instrument=p.instrument, reference=mixes[p.reference],
        candidate_a=a, candidate_b=b, model_choice="a" if p.nearest_is_a else "b",
        model_margin=p.margin, model_designed=True,
    )  # fmt: skip


def _catch_trials(study, catalogue, mixes, main, rng, per_kind) -> list[Trial]:
    made = []
    for instrument in study.instruments:
        own = [t for t in main if t.instrument == instrument]
        for original in rng.sample(own, min(per_kind, len(own))):
            made.append(
                Trial.objects.create(
                    study=study, instrument=instrument, reference=original.reference,
                    candidate_a=original.candidate_a, candidate_b=original.candidate_b,
                    is_catch=True, catch_kind="repeat", repeat_of=original,
                    model_choice=original.model_choice, model_margin=original.model_margin,
                )
            )  # fmt: skip
        sets = rd._attention_sets(catalogue, instrument)
        rng.shuffle(sets)
        for triple in sets[:per_kind]:
            made.append(rd._catch_attention(study, instrument, triple, rng, is_catch=True,
                                            catch_kind="attention"))  # fmt: skip
        for _ in range(per_kind):
            ref, other, _ = rd._three_pieces(mixes, rng)
            made.append(rd._catch_identical(study, instrument, ref, other, rng, is_catch=True,
                                            catch_kind="identical"))  # fmt: skip
    return made
