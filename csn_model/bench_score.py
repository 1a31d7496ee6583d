"""Scoring the benchmark's systems: the fixed test triplets (made once, saved, and reused only
for the dataset, its content and the settings in their meta, and only while every triplet's own
instrument is audible where it says) and every system's outcome on each of them (csn_model.bench
runs it and summarises the outcomes).
"""

from __future__ import annotations

import logging
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

from csn_model import CONDITIONS
from csn_model.bench_config import BenchConfig
from csn_model.evaluation import (
    OTHERS_COLUMN,
    OUTCOME_COLUMNS,
    TIE_COLUMNS,
    NonFiniteEmbedding,
    triplet_outcomes,
)

log = logging.getLogger("csn.bench")


# -- evaluation triplets ---------------------------------------------------------------------
META_SOURCES = {  # field of a triplet file's meta -> where this run's value comes from
    "dataset": "--data",
    "fingerprint": "the dataset's content (csn_model.data.fingerprint)",
    "split": "the test split",
    "kind": "bench.kinds",
    "per_condition": "bench.per_condition",
    "seed": "bench.eval_seed",
    "segment_frames": "features.segment_seconds",
    "sample_rate": "the dataset's sample rate",
    "sampler": "this code's triplet sampler (csn_model.data.triplets.SAMPLER_VERSION)",
}


def new_triplets(ds, cfg: BenchConfig) -> dict:
    """{kind: triplets} made in memory, nothing saved: a run folder checks with it that the test
    split gives every kind's triplets (DataError otherwise) before it records anything."""
    return {kind: _make(ds, kind, cfg) for kind in cfg.bench.kinds}


def _make(ds, kind: str, cfg: BenchConfig) -> list:
    from csn_model.data.slakh import DataError
    from csn_model.data.triplets import make_eval_set

    triplets = make_eval_set(
        ds, "test", kind, cfg.bench.per_condition, cfg.bench.eval_seed, cfg.features.segment_frames
    )
    if not triplets:
        raise DataError(f"{_no_triplets(ds, kind, cfg)}; nothing written")
    return triplets


def eval_triplets(ds, folder: Path, cfg: BenchConfig, made: dict | None = None) -> dict:
    """{kind: (triplets, path)}; made once with make_eval_set (or taken from `made`, new_triplets'
    result) and saved, then reused as long as every field of their meta matches this run's
    (ValueError otherwise) and each triplet's own instrument is audible where it says (DataError
    otherwise). An empty set would score nothing: it is refused (DataError) and never saved."""
    from csn_model.data.slakh import DataError
    from csn_model.data.triplets import SAMPLER_VERSION, load_triplets, save_triplets

    out = {}
    frames = cfg.features.segment_frames
    for kind in cfg.bench.kinds:
        path = folder / f"test_{kind}.json"
        meta = {
            "dataset": str(Path(ds.root).resolve()),
            "fingerprint": ds.fingerprint,
            "split": "test",
            "kind": kind,
            "per_condition": cfg.bench.per_condition,
            "seed": cfg.bench.eval_seed,
            "segment_frames": frames,
            "sample_rate": ds.sample_rate,
            "sampler": SAMPLER_VERSION,
        }
        if not path.exists():
            made_here = (made or {}).get(kind)
            save_triplets(path, made_here or _make(ds, kind, cfg), meta)
        triplets, saved = load_triplets(path)
        _check_meta(path, saved, meta)
        if not triplets:  # written by earlier versions, which saved empty sets
            raise DataError(f"{path}: holds {_no_triplets(ds, kind, cfg)}; delete it")
        check_audible(ds, triplets, path, frames)
        out[kind] = (triplets, path)
    return out


def _no_triplets(ds, kind: str, cfg: BenchConfig) -> str:
    from csn_model.data.triplets import no_triplets_reason

    frames = cfg.features.segment_frames
    return no_triplets_reason(ds, "test", kind, frames, "features.segment_seconds")


def _check_meta(path: Path, saved: dict, expected: dict) -> None:
    if "fingerprint" not in saved:
        raise ValueError(
            f"{path}: predates dataset fingerprints (its meta has no fingerprint field), so "
            f"nothing tells whether {saved.get('dataset')} still holds the tracks it names; "
            "delete it to make the triplets again from this data (same seed and settings), or "
            "use a new --out"
        )
    for name, want in expected.items():
        got = saved.get(name)
        if name == "dataset" and isinstance(got, str):
            got = str(Path(got).resolve())  # older files hold the root as given, maybe relative
        if got != want and name == "sampler":
            raise ValueError(
                f"{path}: field meta.{name} is {got!r}, but this code draws version {want!r} "
                f"({META_SOURCES[name]}): these triplets were drawn by older code's sampler (for "
                f"the same data and settings); delete {path.parent} to draw them again"
            )
        if got != want:
            raise ValueError(
                f"{path}: field meta.{name} is {got!r}, but this run needs {want!r} "
                f"({META_SOURCES[name]}); these triplets were made for other data or settings: "
                "use a new --out"
            )


def check_audible(ds, triplets: list, path: Path, frames: int) -> None:
    """Every triplet's own-condition parts (anchor, positive, negative) start where the sampler's
    activity index (Track.active_segments, the sampler's hop) has that condition audible; else
    DataError naming the file, the triplet and the track: the data or the reader's rule changed
    since the file was made, and scoring would render silence (or an offset) as the instrument."""
    from csn_model.data.slakh import DataError
    from csn_model.data.triplets import default_hop

    hop = default_hop(frames)
    active: dict[tuple[str, str], np.ndarray] = {}
    for i, t in enumerate(triplets):
        for role in ("anchor", "positive", "negative"):
            seg = getattr(t, role).part(t.condition)
            if seg is not None:
                key = (seg.track, t.condition)
                if key not in active:
                    active[key] = _active(ds, seg.track, t.condition, frames, hop)
            if seg is None or seg.start not in active[key]:
                where = "none" if seg is None else f"{seg.track} at frame {seg.start}"
                raise DataError(
                    f"{path}: triplets[{i}] ({t.kind}, {t.condition}): its {role}'s "
                    f"{t.condition} part ({where}) is not an audible {t.condition} segment of "
                    f"{ds.root} (the sampler's activity index); the dataset or the reader changed "
                    "since the file was made: delete it to make the triplets again"
                )


def _active(ds, name: str, condition: str, frames: int, hop: int) -> np.ndarray:
    """Start frames where the track's condition is audible; none for a track the data lacks."""
    from csn_model.data.slakh import DataError

    try:
        track = ds.track(name)
    except DataError:
        return np.zeros(0, dtype=np.int64)
    return track.active_segments(condition, frames, hop)


# -- scoring ----------------------------------------------------------------------------------
class _Net:
    """One loaded network: waveforms -> condition subspace vectors."""

    def __init__(self, path: Path, device: torch.device):
        from csn_model.checkpoint import file_id, load_model

        self.model, payload = load_model(path, device)
        self.device, self.id, self.path = device, file_id(path), path
        seconds = payload["config"]["features"]["segment_seconds"]  # checked by load_model
        self.segment_frames = int(round(seconds * self.model.sample_rate))

    @torch.no_grad()
    def embed(self, waves: np.ndarray) -> torch.Tensor:
        x = torch.as_tensor(waves, dtype=torch.float32, device=self.device)  # (N, T)
        return self.model(x)  # (N, D)

    def subspace(self, emb: torch.Tensor, condition: str) -> np.ndarray:
        k = self.model.conditions.index(condition)
        # detach: learned masks are parameters, so their subspaces require grad
        return self.model.subspace(emb, k).detach().cpu().numpy()  # (N, d)


def _outcomes(net: _Net, waves: np.ndarray, condition: str) -> np.ndarray:
    """waves (n, 3, T) anchor/positive/negative -> correct, tie, identical: (3, n)."""
    n = waves.shape[0]
    sub = net.subspace(net.embed(waves.reshape(3 * n, -1)), condition).reshape(n, 3, -1)
    out = triplet_outcomes(sub[:, 0], sub[:, 1], sub[:, 2])
    return np.stack([out[c] for c in ("correct", *TIE_COLUMNS)])  # (3, n)


def score(
    ds, triplets_by_kind: dict, systems: dict, frames: int, separator=None, batch: int = 16
) -> pd.DataFrame:
    """Outcomes (system, kind, condition, triplet, piece, correct, tie, identical: see
    csn_model.evaluation) of every system on every triplet. `systems`: {name: _Net (mixture
    input) or {condition: _Net} (stem input)}; the stem system named individual_separated gets
    the separator's estimates instead of clean stems.
    `piece` is the track whose condition stem the anchor and positive share; `others` the
    tracks of its other roles joined by "|" (Triplet.other_pieces: "B|C|D", natural "D")."""
    from csn_model.data.triplets import render_stems

    rows = []
    for kind, (triplets, _path) in triplets_by_kind.items():
        t0 = time.time()
        for lo in range(0, len(triplets), batch):
            chunk = triplets[lo : lo + batch]
            cache: dict = {}
            stems = np.stack(
                [
                    np.stack(
                        [
                            render_stems(ds, spec, frames, cache)
                            for spec in (t.anchor, t.positive, t.negative)
                        ]
                    )
                    for t in chunk
                ]
            )  # (n, 3, K, T)
            mixes = stems.sum(axis=2)  # (n, 3, T)
            if "individual_separated" in systems:
                n = len(chunk)
                est = separator.separate(mixes.reshape(3 * n, -1))  # (3n, K, T)
                separated = est.reshape(n, 3, len(CONDITIONS), -1)  # (n, 3, K, T)
            conds = np.array([t.condition for t in chunk])
            for name, net in systems.items():
                scored = np.zeros((3, len(chunk)), dtype=np.int8)  # correct, tie, identical
                for cond in dict.fromkeys(conds):
                    idx, k = np.flatnonzero(conds == cond), CONDITIONS.index(cond)
                    one = net if isinstance(net, _Net) else net[cond]
                    if isinstance(net, _Net):
                        waves = mixes[idx]
                    elif name == "individual_separated":
                        waves = separated[idx, :, k]
                    else:
                        waves = stems[idx, :, k]
                    try:
                        scored[:, idx] = _outcomes(one, waves, cond)
                    except NonFiniteEmbedding as exc:
                        raise _nonfinite(exc, name, one, kind, cond, waves) from None
                for i, t in enumerate(chunk):
                    piece = t.anchor.part(t.condition).track
                    flags = (int(v) for v in scored[:, i])
                    others = "|".join(t.other_pieces())
                    rows.append((name, kind, t.condition, lo + i, piece, *flags, others))
        log.info("scored %d %s triplets in %.0f s", len(triplets), kind, time.time() - t0)
    return pd.DataFrame(rows, columns=[*OUTCOME_COLUMNS, *TIE_COLUMNS, OTHERS_COLUMN])


def _nonfinite(exc, name: str, net, kind: str, condition: str, waves: np.ndarray) -> ValueError:
    """The run stops at a system whose embedding is NaN or infinite (see triplet_outcomes),
    naming it, its checkpoint and whether its input (a separator's estimates) was already so."""
    source = ""
    if not np.isfinite(waves).all():
        given = "the separator's estimates" if name == "individual_separated" else "the audio"
        source = f"; its input ({given}) is non-finite too"
    return ValueError(
        f"system {name}: {exc} in the {kind} {condition} triplets, from {net.path}{source}; "
        "accuracy would count them wrong with no warning, so nothing is scored: check that "
        "checkpoint, or delete its folder to train it again"
    )


def load_systems(checkpoints: dict, device: torch.device) -> dict:
    nets: dict = {}
    loaded: dict[str, _Net] = {}  # teachers serve two systems: load once

    def net(path) -> _Net:
        key = str(path)
        if key not in loaded:
            loaded[key] = _Net(Path(path), device)
        return loaded[key]

    for name, ckpt in checkpoints.items():
        if name == "separator":
            continue
        nets[name] = {c: net(p) for c, p in ckpt.items()} if isinstance(ckpt, dict) else net(ckpt)
    return nets
