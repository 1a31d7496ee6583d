"""Level robustness of a trained network: triplet accuracy on the same test triplets with their
mixtures fed three ways (`csn bench-level`).

- `as_fed`: the mixtures as the benchmark feeds them (stems summed at their rendered level);
- `levelled`: each mixture brought to a loudness target (-23 LUFS by default) as
  `csn_model.inference.Embedder` levels a waveform (`csn_model.loudness.fit_gain`: BS.1770 as
  played, a mono clip as dual-mono, peak held under -1 dBFS, left alone within 0.1 LU);
- `gain`: each mixture times its own random gain, uniform in dB over a range (-12..+6 by default)
  from a seeded generator, the three mixtures of a triplet drawn independently. Samples are
  not clipped: the log-mel sees the scaled waveform as it is.

Noise: the modes score the same triplets with the same network, so they are compared paired,
triplet by triplet, clustered by anchor piece (csn_model.evaluation.compare_to_reference:
the sign-flip test over pieces, Holm within each instrument's family of two comparisons).
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from csn_model import CONDITIONS
from csn_model.evaluation import (
    OTHERS_COLUMN,
    OUTCOME_COLUMNS,
    TIE_COLUMNS,
    accuracy_table,
    compare_to_reference,
    triplet_outcomes,
)
from csn_model.loudness import DEFAULT_TARGET_LUFS, fit_gain

MODES = ("as_fed", "levelled", "gain")
GAIN_RANGE_DB = (-12.0, 6.0)


def mode_gains(
    mixes: np.ndarray,
    sample_rate: int,
    mode: str,
    rng: np.random.Generator,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    gain_range_db: tuple[float, float] = GAIN_RANGE_DB,
) -> np.ndarray:
    """Linear gain per mixture (N,) for mixes (N, T) under `mode` (see the module docstring);
    `rng` is drawn from only by the gain mode."""
    if mode == "as_fed":
        return np.ones(len(mixes))
    if mode == "levelled":
        return np.array([fit_gain(m, sample_rate, target_lufs) for m in mixes])
    if mode == "gain":
        low, high = gain_range_db
        return 10 ** (rng.uniform(low, high, size=len(mixes)) / 20)
    raise ValueError(f"mode {mode!r}: expected one of {', '.join(MODES)}")


def level_outcomes(
    ds,
    triplets: list,
    nets: dict,
    frames: int,
    kind: str,
    seed: int = 0,
    target_lufs: float = DEFAULT_TARGET_LUFS,
    gain_range_db: tuple[float, float] = GAIN_RANGE_DB,
    batch: int = 16,
) -> pd.DataFrame:
    """Outcomes (csn_model.evaluation's columns) of each network in `nets` ({name:
    csn_model.bench_score._Net of a mixture-input network}) on every triplet in every mode;
    `system` is the mode, or "name:mode" for more than one network. Every network gets the same
    gains: those of the gain mode come from one generator seeded with `seed`, drawn in triplet
    order (anchor, positive, negative), so a rerun gives the same gains."""
    from csn_model.data.triplets import render_stems

    rng = np.random.default_rng(seed)
    rows = []
    for lo in range(0, len(triplets), batch):
        chunk = triplets[lo : lo + batch]
        cache: dict = {}
        mixes = np.stack(
            [
                np.stack([render_stems(ds, s, frames, cache).sum(0) for s in _roles(t)])
                for t in chunk
            ]
        )  # (n, 3, T)
        flat = mixes.reshape(3 * len(chunk), -1)  # (3n, T)
        for mode in MODES:
            gains = mode_gains(flat, ds.sample_rate, mode, rng, target_lufs, gain_range_db)
            waves = (flat * gains[:, None]).astype(np.float32)  # (3n, T)
            for name, net in nets.items():
                system = mode if len(nets) == 1 else f"{name}:{mode}"
                rows += _rows(net, net.embed(waves), chunk, lo, system, kind)
    return pd.DataFrame(rows, columns=[*OUTCOME_COLUMNS, *TIE_COLUMNS, OTHERS_COLUMN])


def _roles(t) -> tuple:
    return (t.anchor, t.positive, t.negative)


def _rows(net, emb, chunk: list, lo: int, system: str, kind: str) -> list[tuple]:
    """Outcome rows of the triplets in chunk from their (3n, D) embeddings."""
    rows = []
    for i, t in enumerate(chunk):
        sub = net.subspace(emb[3 * i : 3 * i + 3], t.condition)  # (3, d)
        out = triplet_outcomes(sub[:1], sub[1:2], sub[2:])
        flags = (int(out[c][0]) for c in ("correct", *TIE_COLUMNS))
        piece = t.anchor.part(t.condition).track
        rows.append((system, kind, t.condition, lo + i, piece, *flags, "|".join(t.other_pieces())))
    return rows


def level_tables(outcomes: pd.DataFrame, n_boot: int = 1000) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(accuracy per system (mode, or network:mode), kind and instrument with bootstrap CIs over
    pieces; paired comparison of every other system with the first network's as_fed:
    estimate = reference - system)."""
    reference = outcomes["system"].iloc[0]  # as_fed of the first network
    return accuracy_table(outcomes, n_boot=n_boot), compare_to_reference(outcomes, reference)


def summary_lines(accuracy: pd.DataFrame, comparisons: pd.DataFrame) -> list[str]:
    """One line per kind and system: accuracy per instrument and mean; then the paired
    differences from the reference with their p over pieces (Holm-adjusted)."""
    terms = [*CONDITIONS, "mean"]
    width = max(9, *(len(s) for s in accuracy["system"]))
    lines = [f"{'kind':8} {'system':{width}} " + " ".join(f"{t:>7}" for t in terms)]
    for (kind, mode), part in accuracy.groupby(["kind", "system"], sort=False):
        est = part.set_index("term")["estimate"]
        cells = " ".join(f"{est.get(t, np.nan):7.3f}" for t in terms)
        lines.append(f"{kind:8} {mode:{width}} {cells}")
    reference = comparisons["reference"].iloc[0] if len(comparisons) else "as_fed"
    lines.append(f"paired difference {reference} - system over pieces (p_adj: sign-flip, Holm)")
    for (kind, mode), part in comparisons.groupby(["kind", "system"], sort=False):
        by = part.set_index("term")
        cells = " ".join(
            f"{by.loc[t, 'estimate']:+.3f} (p {by.loc[t, 'p_adj']:.3f})"
            for t in terms
            if t in by.index
        )
        lines.append(f"{kind:8} {mode:{width}} {cells}")
    return lines
