"""Power planner from pilot data: observed agreement, the intra-class correlation of agreement
within participants, and time per trial give the participants and trials needed per instrument
for a target interval half-width or for a power against chance, with Kish's design effect
1 + (m - 1) * ICC for m repeated trials per participant.
"""

from __future__ import annotations

import math

import numpy as np
import pandas as pd
from scipy import stats

from .consent import scored
from .inputs import instruments_present


def icc_oneway(values: np.ndarray, groups: np.ndarray) -> float:
    """ICC(1) from one-way ANOVA (Shrout & Fleiss 1979, case 1), unbalanced groups allowed via
    n0 = (N - sum n_i^2 / N) / (k - 1); truncated at 0."""
    frame = pd.DataFrame({"y": np.asarray(values, float), "g": np.asarray(groups)})
    g = frame.groupby("g")["y"]
    n_i, means = g.size().to_numpy(float), g.mean().to_numpy()
    k, n = len(n_i), n_i.sum()
    if k < 2 or n - k < 1:
        return np.nan
    grand = frame["y"].mean()
    msb = float((n_i * (means - grand) ** 2).sum() / (k - 1))
    msw = float(((frame["y"] - g.transform("mean")) ** 2).sum() / (n - k))
    n0 = (n - (n_i**2).sum() / n) / (k - 1)
    denom = msb + (n0 - 1) * msw
    return max(0.0, (msb - msw) / denom) if denom > 0 else np.nan


def design_effect(m: float, icc: float) -> float:
    return 1 + (m - 1) * icc


def n_for_half_width(p: float, half_width: float, confidence: float = 0.95) -> float:
    """Independent answers for a Wald interval of the given half-width (Cochran 1977)."""
    z = stats.norm.ppf(0.5 + confidence / 2)
    return float(z * z * p * (1 - p) / half_width**2)


def n_for_power(p: float, p0: float = 0.5, alpha: float = 0.05, power: float = 0.8) -> float:
    """Independent answers for a two-sided one-sample test of a proportion against p0 (normal
    approximation, e.g. Chow, Shao & Wang, Sample Size Calculations, eq. 4.1.2)."""
    if p == p0:
        return np.inf
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return float(((za * math.sqrt(p0 * (1 - p0)) + zb * math.sqrt(p * (1 - p))) / (p - p0)) ** 2)


def pilot_inputs(df: pd.DataFrame) -> pd.DataFrame:
    data = scored(df)
    rows = []
    for term in instruments_present(data):
        part = data[data["instrument"] == term]
        m = part.groupby("participant").size()
        rt = part["response_ms"].dropna()
        rows.append(
            {
                "term": term,
                "estimate": float(part["agree"].mean()),
                "icc": icc_oneway(part["agree"].to_numpy(), part["participant"].to_numpy()),
                "trials_per_participant": float(m.mean()),
                "seconds_per_trial": float(rt.median() / 1000) if len(rt) else np.nan,
                "n": len(part),
                "n_participants": int(len(m)),
            }
        )
    return pd.DataFrame(rows)


def plan(
    inputs: pd.DataFrame,
    trials_grid=(5, 10, 20, 40),
    half_width: float = 0.05,
    power: float = 0.8,
    alpha: float = 0.05,
    confidence: float = 0.95,
) -> pd.DataFrame:
    """Participants needed per instrument for each number of trials per participant."""
    rows = []
    n_inst = max(len(inputs), 1)
    for _, r in inputs.iterrows():
        icc = 0.0 if np.isnan(r["icc"]) else r["icc"]
        for m in trials_grid:
            de = design_effect(m, icc)
            n_w = n_for_half_width(r["estimate"], half_width, confidence) * de
            n_p = n_for_power(r["estimate"], 0.5, alpha, power) * de
            minutes = m * n_inst * r["seconds_per_trial"] / 60
            rows.append(
                {
                    "term": r["term"],
                    "trials_per_participant": m,
                    "design_effect": de,
                    "answers_for_width": n_w,
                    "participants_for_width": math.ceil(n_w / m),
                    "answers_for_power": n_p,
                    "participants_for_power": math.ceil(n_p / m) if np.isfinite(n_p) else None,
                    "minutes_per_participant": minutes,
                    "half_width": half_width,
                    "power": power,
                }
            )
    return pd.DataFrame(rows)
