"""Two-way cluster bootstrap of consent: participants and trials resampled independently, each
answer weighted by the product of its participant's and its trial's multiplicities (Owen 2007,
"The pigeonhole bootstrap"). Per instrument the weighted sums reduce to cp @ Y @ ct.T on
participants x trials matrices, so 1,000 replicates of 100k answers take seconds.

Conservative: Owen (2007) shows that the product-weight bootstrap overestimates the answer-level
(error) variance term, by about 3x when participants and trials are many. Where answer-level
noise dominates, as with independent yes/no answers, its se is about 1.7x too large (measured
1.66x on 20 x 20 coin flips in tests/evalsite/reports/test_bootstrap.py), so a "95%" interval
spans about +-3.3 true SDs and covers about 99.9%. The `crossed` table (crossed.py: moment
estimates of the variance components) is the recommended interval; this one is kept for
comparison.

Where an instrument's answers are all equal, or come from fewer than 2 participants or 2 trials,
every replicate is the same (or nearly so) and the interval would have zero width: se, ci_low and
ci_high are left empty (NaN) and a note says why.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from .consent import scored
from .inputs import instruments_present


def cluster_bootstrap(
    df: pd.DataFrame, n_boot: int, seed: int, confidence: float = 0.95
) -> tuple[pd.DataFrame, list[str]]:
    """The table (per instrument and overall) and a note for each row left without interval."""
    data = scored(df)
    p_codes, p_levels = pd.factorize(data["participant"])
    t_codes, t_levels = pd.factorize(data["trial"])
    rng = np.random.default_rng(seed)
    n_p, n_t = len(p_levels), len(t_levels)
    cp = rng.multinomial(n_p, np.full(n_p, 1 / n_p), size=n_boot).astype(float)  # (B, P)
    ct = rng.multinomial(n_t, np.full(n_t, 1 / n_t), size=n_boot).astype(float)  # (B, T)
    y = data["agree"].to_numpy(float)
    lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)
    rows: list[dict] = []
    notes: list[str] = []
    total_s: np.ndarray | float = 0.0  # (B,) once a term is added
    total_n: np.ndarray | float = 0.0
    for term in instruments_present(data):
        mask = (data["instrument"] == term).to_numpy()
        s, m = _weighted_sums(p_codes[mask], t_codes[mask], y[mask], cp, ct)
        total_s, total_n = total_s + s, total_n + m
        rows.append(_row(term, y[mask], s, m, lo, hi, n_boot))
        _empty_if_degenerate(rows[-1], p_codes[mask], t_codes[mask], y[mask], notes)
    rows.append(_row("overall", y, total_s, total_n, lo, hi, n_boot))
    _empty_if_degenerate(rows[-1], p_codes, t_codes, y, notes)
    return pd.DataFrame(rows), notes


def _empty_if_degenerate(row: dict, p, t, y, notes: list[str]) -> None:
    """No interval where resampling cannot vary the mean (or barely can): not [x, x]."""
    if len(np.unique(p)) < 2:
        reason = "its answers come from fewer than 2 participants"
    elif len(np.unique(t)) < 2:
        reason = "its answers are to fewer than 2 trials"
    elif y.min() == y.max():
        reason = f"all {len(y)} of its answers are equal (agree = {y[0]:g})"
    else:
        return
    row.update(se=np.nan, ci_low=np.nan, ci_high=np.nan)
    notes.append(f"cluster bootstrap interval for {row['term']} left empty: {reason}")


def _weighted_sums(p, t, y, cp, ct) -> tuple[np.ndarray, np.ndarray]:
    """Per replicate: sum of w*y and of w, w = cp[p] * ct[t]; via dense P x T' cell matrices."""
    t_used, t_local = np.unique(t, return_inverse=True)
    cells_y = np.zeros((cp.shape[1], len(t_used)))  # (P, T')
    cells_n = np.zeros_like(cells_y)
    np.add.at(cells_y, (p, t_local), y)
    np.add.at(cells_n, (p, t_local), 1.0)
    ct_used = ct[:, t_used]  # (B, T')
    s = ((cp @ cells_y) * ct_used).sum(axis=1)  # (B,)
    m = ((cp @ cells_n) * ct_used).sum(axis=1)  # (B,)
    return s, m


def _row(term, y, s, m, lo, hi, n_boot) -> dict:
    with np.errstate(invalid="ignore", divide="ignore"):
        boot = s / m
    return {
        "term": term,
        "estimate": float(y.mean()) if len(y) else np.nan,
        "se": float(np.nanstd(boot, ddof=1)),
        "ci_low": float(np.nanpercentile(boot, lo)),
        "ci_high": float(np.nanpercentile(boot, hi)),
        "n": len(y),
        "n_boot": n_boot,
    }
