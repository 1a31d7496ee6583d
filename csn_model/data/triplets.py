"""Triplets for condition-wise metric learning (METHOD.md "Training" and "Evaluation").

Pseudo-mixed triplet for condition c (figure 1 of the paper), with pieces A, B, C, D:
    anchor   = A^c_B : segment s1 of A's c stem + every other stem of B at segment sB
    positive = A^c_C : segment s2 of A's c stem (|s2 - s1| >= one segment) + C's other stems
    negative = D^c_B : a c stem from D != A + the same B stems at sB as the anchor; when D = B,
               B's own c stem at sB: the original piece B, as METHOD.md says
Interchanged (figure 2): for k != c, (anchor, negative, positive) is a valid triplet when B's k
stem is audible at sB and C's k stem is audible at sC, because anchor and negative share B's k
stem and the positive carries C's. `Triplet.interchanged` lists those k.
Natural triplet: two segments of one piece's full mix vs a segment of another piece (no
interchanged conditions). Isolated-stem triplet (kind "stem"): the c stem alone, for
pre-training and the individual-network baselines.

Segments start on a grid of `hop` frames (half a segment by default) where the relevant stems are
audible (Track.active_segments' energy threshold). Pieces without an instrument never supply it.
"""

from __future__ import annotations

import json
import os
import warnings
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from csn_model import CONDITIONS
from csn_model.data.slakh import DataError, SlakhDataset

K = len(CONDITIONS)
KINDS = ("pseudo", "natural", "stem")
FORMAT = "csn-triplets"
FORMAT_VERSION = 1
# What TripletSampler draws from a seed, recorded in csn bench's test triplet files: bump when it
# changes. 2 (2026-12-06): a pseudo negative with D = B is piece B's own mix; 1 (unrecorded): D's
# segment was drawn apart from B's.
SAMPLER_VERSION = 2


@dataclass(frozen=True)
class Segment:
    track: str  # Track.name
    start: int  # frame


@dataclass(frozen=True)
class MixSpec:
    parts: tuple[Segment | None, ...]  # len K, CONDITIONS order; None = absent

    def part(self, condition: str) -> Segment | None:
        return self.parts[CONDITIONS.index(condition)]

    def stem(self, condition: str) -> Segment:
        """The part of a condition that the mix must hold (a triplet's own condition)."""
        seg = self.part(condition)
        if seg is None:
            raise DataError(f"mix {self}: no {condition} part; expected one for this condition")
        return seg


@dataclass(frozen=True)
class Triplet:
    condition: str
    anchor: MixSpec
    positive: MixSpec
    negative: MixSpec
    kind: str  # "pseudo" | "natural" | "stem"
    interchanged: tuple[str, ...] = ()  # k != condition with (anchor, negative, positive) valid

    def other_pieces(self) -> tuple[str, ...]:
        """The pieces whose audio the triplet uses besides its anchor piece, one per role: the
        anchor mix's other stems (piece B of a pseudo triplet), the positive's (C), the
        negative's condition stem (D); a role played by the anchor piece (a natural triplet's
        anchor and positive) or with no audio (C lacking every other stem) is left out."""
        k = CONDITIONS.index(self.condition)
        rest = [
            sorted({s.track for j, s in enumerate(m.parts) if s is not None and j != k})
            for m in (self.anchor, self.positive)
        ]
        own = self.anchor.stem(self.condition).track
        roles = [*rest[0], *rest[1], self.negative.stem(self.condition).track]
        return tuple(r for r in roles if r != own)

    def to_json(self) -> dict:
        def spec(m: MixSpec) -> list:
            return [None if s is None else [s.track, s.start] for s in m.parts]

        return {
            "condition": self.condition,
            "kind": self.kind,
            "interchanged": list(self.interchanged),
            "anchor": spec(self.anchor),
            "positive": spec(self.positive),
            "negative": spec(self.negative),
        }

    @classmethod
    def from_json(cls, d: dict) -> Triplet:
        def spec(parts: list) -> MixSpec:
            if len(parts) != K:
                raise ValueError(f"expected {K} parts, got {len(parts)}")
            return MixSpec(
                tuple(None if p is None else Segment(str(p[0]), int(p[1])) for p in parts)
            )

        if d["condition"] not in CONDITIONS or d["kind"] not in KINDS:
            raise ValueError(f"condition {d['condition']!r} or kind {d['kind']!r} unknown")
        inter = d.get("interchanged", [])
        others = [c for c in CONDITIONS if c != d["condition"]]
        if not isinstance(inter, list) or not all(c in others for c in inter):
            raise ValueError(
                f"field interchanged is {inter!r}; expected a list of conditions other than "
                f"{d['condition']} ({', '.join(others)})"
            )
        return cls(
            condition=d["condition"],
            anchor=spec(d["anchor"]),
            positive=spec(d["positive"]),
            negative=spec(d["negative"]),
            kind=d["kind"],
            interchanged=tuple(inter),
        )


# ---- rendering -------------------------------------------------------------------------------
def render_stems(ds: SlakhDataset, spec: MixSpec, num_frames: int, cache: dict | None = None):
    """Clean condition stems of a MixSpec, zeros for absent parts. (K, T) float32

    `cache` (optional, keyed by (track, condition, start)) avoids reading a part twice when
    several specs share it, as anchor and negative do.
    """
    out = np.zeros((K, num_frames), dtype=np.float32)  # (K, T)
    for k, seg in enumerate(spec.parts):
        if seg is None:
            continue
        key = (seg.track, k, seg.start)
        if cache is not None and key in cache:
            out[k] = cache[key]
            continue
        out[k] = ds.track(seg.track).read_condition(CONDITIONS[k], seg.start, num_frames)
        if cache is not None:
            cache[key] = out[k]
    return out


def render_mix(ds: SlakhDataset, spec: MixSpec, num_frames: int) -> np.ndarray:
    """The mixture of a MixSpec: the sum of its parts. (T,) float32"""
    return render_stems(ds, spec, num_frames).sum(axis=0)  # (K, T) -> (T,)


# ---- sampling --------------------------------------------------------------------------------
def default_hop(segment_frames: int) -> int:
    """The segment grid's step when none is given: half a segment."""
    return max(1, int(segment_frames) // 2)


MIN_TRACKS = {"pseudo": 3, "natural": 2, "stem": 2}  # TripletSampler.can_sample's minimum
WHY_TRACKS = {
    "pseudo": "the anchor's instrument, the rest of the anchor and the rest of the positive "
    "come from three different tracks",
    "natural": "the negative comes from another track than the anchor and positive",
    "stem": "the negative comes from another track than the anchor and positive",
}


def no_triplets_reason(
    ds: SlakhDataset,
    split: str,
    kind: str,
    frames: int,
    segment_option: str,
    condition: str | None = None,
) -> str:
    """Why `split` of ds gives no `kind` triplets (of `condition`, else of any) with segments of
    `frames` samples, in the order TripletSampler.can_sample checks: too few tracks, tracks
    shorter than two segments (anchor and positive are two segments of one track, a segment
    apart), else too few audible ones. segment_option: the setting that sets the segment length
    (a CLI option or config key), named in the message."""
    tracks = ds.tracks(split)
    of = f" for {condition}" if condition else ""
    head = f"no {kind} triplets{of} from the {len(tracks)} {split} tracks of {ds.root}"
    need = MIN_TRACKS.get(kind, 2)
    if len(tracks) < need:
        why = f" ({WHY_TRACKS[kind]})" if kind in WHY_TRACKS else ""
        return (
            f"{head}: {kind} triplets need at least {need} tracks{why}; "
            f"add tracks to the {split} split"
        )
    seconds = frames / ds.sample_rate
    longest = max(t.num_frames for t in tracks) / ds.sample_rate
    if longest < 2 * seconds:
        return (
            f"{head}: the longest is {longest:g} s, shorter than two {seconds:g}-s segments "
            f"(anchor and positive are two segments of one track); use shorter segments "
            f"({segment_option}) or longer tracks"
        )
    return (
        f"{head} with {seconds:g}-s segments ({segment_option}): expected "
        f"{condition or 'each instrument'} audible in at least two tracks, in one of them in two "
        "segments a segment apart"
    )


class TripletSampler:
    """Random triplets from one split. Builds an activity index once (one streamed pass over the
    stems per track), then samples with numpy only: thousands of triplets per second."""

    def __init__(
        self,
        ds: SlakhDataset,
        split: str,
        segment_frames: int,
        seed: int = 0,
        hop: int | None = None,
        segment_option: str = "features.segment_seconds",
    ):
        """segment_option: the setting that sets segment_frames, named when no triplet forms."""
        self.ds, self.split, self.seed = ds, split, seed
        self.segment_option = segment_option
        self.segment_frames = int(segment_frames)
        self.hop = int(hop or default_hop(self.segment_frames))
        self.rng = np.random.default_rng(seed)
        self.tracks = [t.name for t in ds.tracks(split)]
        # active[t][k]: grid positions (start frames) where condition k of track t is audible.
        self.active: list[list[np.ndarray]] = []
        for name in self.tracks:
            tr = ds.track(name)
            self.active.append(
                [tr.active_segments(c, self.segment_frames, self.hop) for c in CONDITIONS]
            )
        self._pairable = [self._pairable_tracks(k) for k in range(K)]
        self._has = [
            [i for i in range(len(self.tracks)) if len(self.active[i][k])] for k in range(K)
        ]

    def _pairable_tracks(self, k: int) -> list[int]:
        """Tracks whose k stem is audible in two segments at least one segment apart."""
        out = []
        for i, act in enumerate(self.active):
            a = act[k]
            if len(a) >= 2 and a[-1] - a[0] >= self.segment_frames:
                out.append(i)
        return out

    def can_sample(self, condition: str, kind: str = "pseudo") -> bool:
        k = CONDITIONS.index(condition)
        if not self._pairable[k] or len(self._has[k]) < 2:
            return False
        return len(self.tracks) >= MIN_TRACKS.get(kind, 2)

    def sample(self, condition: str | None = None, kind: str = "pseudo", rng=None) -> Triplet:
        """One random triplet; condition uniform over those possible when not given."""
        rng = self.rng if rng is None else rng
        if condition is None:
            possible = [c for c in CONDITIONS if self.can_sample(c, kind)]
            if not possible:
                raise DataError(self._no_triplets(kind))
            condition = possible[int(rng.integers(len(possible)))]
        if not self.can_sample(condition, kind):
            raise DataError(self._no_triplets(kind, condition))
        k = CONDITIONS.index(condition)
        a, s1, s2 = self._anchor_pair(k, rng)
        d = self._pick(rng, [i for i in self._has[k] if i != a])
        sd = self._pick(rng, self.active[d][k])
        if kind == "pseudo":
            return self._pseudo(k, a, s1, s2, d, sd, rng)
        if kind == "natural":
            return Triplet(
                condition,
                self._full(a, s1),
                self._full(a, s2),
                self._full(d, sd),
                "natural",
            )
        if kind == "stem":
            return Triplet(
                condition, self._only(k, a, s1), self._only(k, a, s2), self._only(k, d, sd), "stem"
            )
        raise ValueError(f"kind {kind!r}: expected one of {', '.join(KINDS)}")

    def _pseudo(self, k, a, s1, s2, d, sd, rng) -> Triplet:
        others = [j for j in range(K) if j != k]
        b = self._pick(rng, [i for i in range(len(self.tracks)) if i != a and self._any(i, others)])
        c = self._pick(rng, [i for i in range(len(self.tracks)) if i not in (a, b)])
        if b == d:  # D = B: the negative is the original piece B, so B's c stem plays at sB
            sb = self._pick(rng, self._b_segments(b, k, others))
            sd = sb
        else:
            sb = self._pick(rng, self._any_active(b, others))
        sc_pos = self._any_active(c, others)
        sc = self._pick(rng, sc_pos) if len(sc_pos) else 0  # C lacks every other condition
        anchor = [self._seg(b, j, sb, track_level=True) for j in range(K)]
        positive = [self._seg(c, j, sc, track_level=True) for j in range(K)]
        negative = list(anchor)
        anchor[k] = self._seg(a, k, s1)
        positive[k] = self._seg(a, k, s2)
        negative[k] = self._seg(d, k, sd)
        inter = tuple(
            CONDITIONS[j] for j in others if self._active_at(b, j, sb) and self._active_at(c, j, sc)
        )
        return Triplet(
            CONDITIONS[k], MixSpec(tuple(anchor)), MixSpec(tuple(positive)),
            MixSpec(tuple(negative)), "pseudo", inter,
        )  # fmt: skip

    # -- helpers ------------------------------------------------------------------------------
    def _no_triplets(self, kind: str, condition: str | None = None) -> str:
        frames, option = self.segment_frames, self.segment_option
        return no_triplets_reason(self.ds, self.split, kind, frames, option, condition)

    def _anchor_pair(self, k: int, rng) -> tuple[int, int, int]:
        a = self._pick(rng, self._pairable[k])
        act = self.active[a][k]
        while True:
            s1 = int(act[int(rng.integers(len(act)))])
            far = act[np.abs(act - s1) >= self.segment_frames]
            if len(far):
                return a, s1, int(far[int(rng.integers(len(far)))])

    def _pick(self, rng, items):
        if len(items) == 0:
            raise DataError(
                f"{self.ds.root}/{self.split}: too few tracks with audible stems to complete a "
                "triplet; expected pieces with at least two conditions each"
            )
        return int(items[int(rng.integers(len(items)))])

    def _any(self, i: int, conds: list[int]) -> bool:
        return any(len(self.active[i][j]) for j in conds)

    def _any_active(self, i: int, conds: list[int]) -> np.ndarray:
        parts = [self.active[i][j] for j in conds if len(self.active[i][j])]
        return np.unique(np.concatenate(parts)) if parts else np.zeros(0, dtype=np.int64)

    def _b_segments(self, b: int, k: int, others: list[int]) -> np.ndarray:
        """Segments of piece B where its c stem and another stem are audible; where there are
        none, those where its c stem is (the negative needs an audible c stem)."""
        both = np.intersect1d(self.active[b][k], self._any_active(b, others))
        return both if len(both) else self.active[b][k]

    def _active_at(self, i: int, k: int, start: int) -> bool:
        act = self.active[i][k]
        j = np.searchsorted(act, start)
        return bool(j < len(act) and act[j] == start)

    def _seg(self, i: int, k: int, start: int, track_level: bool = False) -> Segment | None:
        """Segment of track i for condition k, or None when the track lacks k."""
        if track_level and not len(self.active[i][k]):
            return None
        return Segment(self.tracks[i], int(start))

    def _full(self, i: int, start: int) -> MixSpec:
        return MixSpec(tuple(self._seg(i, j, start, track_level=True) for j in range(K)))

    def _only(self, k: int, i: int, start: int) -> MixSpec:
        return MixSpec(tuple(Segment(self.tracks[i], start) if j == k else None for j in range(K)))


# ---- fixed evaluation sets ---------------------------------------------------------------------
def make_eval_set(
    ds: SlakhDataset,
    split: str,
    kind: str,
    per_condition: int,
    seed: int,
    segment_frames: int,
) -> list[Triplet]:
    """A fixed, seed-defined set of distinct triplets: per_condition for each condition (fewer,
    with a warning, when the split cannot form that many distinct ones; none for a condition no
    track of the split has). Each condition draws from its own stream: SeedSequence([seed, k])."""
    if kind not in ("pseudo", "natural"):
        raise ValueError(f"kind {kind!r}: expected 'pseudo' or 'natural'")
    sampler = TripletSampler(ds, split, segment_frames, seed)
    out: list[Triplet] = []
    for k, cond in enumerate(CONDITIONS):
        if not sampler.can_sample(cond, kind):
            warnings.warn(
                f"{ds.root}/{split}: no {kind} triplets possible for {cond}", stacklevel=2
            )
            continue
        rng = np.random.default_rng(np.random.SeedSequence([seed, k]))
        seen: set[Triplet] = set()
        tries = 0
        while len(seen) < per_condition and tries < 50 * per_condition:
            t = sampler.sample(cond, kind, rng)
            tries += 1
            if t not in seen:
                seen.add(t)
                out.append(t)
        if len(seen) < per_condition:
            warnings.warn(
                f"{ds.root}/{split}: only {len(seen)} distinct {kind} triplets for {cond} "
                f"(asked {per_condition})",
                stacklevel=2,
            )
    return out


def save_triplets(path: str | Path, triplets: list[Triplet], meta: dict) -> None:
    """Write triplets and their provenance as JSON (temporary file, then rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    doc = {
        "format": FORMAT,
        "version": FORMAT_VERSION,
        "conditions": list(CONDITIONS),
        "meta": meta,
        "triplets": [t.to_json() for t in triplets],
    }
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(doc, indent=1) + "\n")
        tmp.replace(path)
    except BaseException:  # e.g. path is a folder: leave nothing half-written behind
        tmp.unlink(missing_ok=True)
        raise


def load_triplets(path: str | Path) -> tuple[list[Triplet], dict]:
    path = Path(path)
    try:
        doc = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise DataError(f"{path}: cannot read a triplet file: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != FORMAT:
        raise DataError(f"{path}: field 'format' is not {FORMAT!r}; not a csn triplet file")
    version = doc.get("version")
    if type(version) is not int or version != FORMAT_VERSION:  # not isinstance: True == 1 in Python
        raise DataError(f"{path}: field 'version' is {version!r}; expected {FORMAT_VERSION}")
    if doc.get("conditions") != list(CONDITIONS):
        raise DataError(
            f"{path}: field 'conditions' is {doc.get('conditions')}; expected {CONDITIONS}"
        )
    meta, items = doc.get("meta", {}), doc.get("triplets", [])
    if not isinstance(meta, dict):
        raise DataError(f"{path}: field 'meta' is {meta!r}; expected a mapping")
    if not isinstance(items, list):
        raise DataError(f"{path}: field 'triplets' is {items!r}; expected a list of triplets")
    triplets = []
    for i, d in enumerate(items):
        try:
            triplets.append(Triplet.from_json(d))
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise DataError(f"{path}: triplets[{i}] is malformed: {exc}") from exc
    return triplets, dict(meta)
