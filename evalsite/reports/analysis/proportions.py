"""Intervals and tests for a binomial proportion. (Holm's adjustment: csn_model.multiple_testing,
the one the benchmark uses too.)

Written out from their definitions (not delegated) so the tests can pin each one against an
independent source: statsmodels, published worked examples, and sums of binomial terms.
"""

from __future__ import annotations

import numpy as np
from scipy import special, stats


def z_for(confidence: float) -> float:
    return float(stats.norm.ppf(0.5 + confidence / 2))


def wilson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Wilson (1927) score interval. Clamped to hold the estimate k / n: at k = n (or 0) rounding
    can put the bound a hair inside it (0.9999999999999999 below 1.0)."""
    if n <= 0:
        return (np.nan, np.nan)
    z = z_for(confidence)
    p = k / n
    denom = 1 + z * z / n
    centre = (p + z * z / (2 * n)) / denom
    half = z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return (min(max(0.0, centre - half), p), max(min(1.0, centre + half), p))


def logit_interval(p: float, se: float, q: float) -> tuple[float, float]:
    """Interval for a proportion p with standard error se (of any design: clustered, crossed) at
    quantile q, built on the logit scale and mapped back, so it lies within (0, 1): the delta
    method gives se_logit = se / (p (1 - p)), and the ends are expit(logit(p) -+ q se_logit).
    The logit interval of survey estimation (Stata's svy: proportion; R survey's svyciprop,
    method "logit"). Within (0, 1) it is the Wald interval p -+ q se to first order, each end
    moved about (q se)^2 (1 - 2p) / (2 p (1 - p)) towards 0.5. Where the logit is undefined
    (p 0, 1 or NaN) or se is 0 or NaN there is no interval: (NaN, NaN), never a point."""
    if not (0.0 < p < 1.0 and se > 0):
        return (np.nan, np.nan)
    half = q * se / (p * (1.0 - p))
    centre = float(special.logit(p))
    return (float(special.expit(centre - half)), float(special.expit(centre + half)))


def clopper_pearson_interval(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    """Clopper-Pearson (1934) exact interval from beta quantiles."""
    if n <= 0:
        return (np.nan, np.nan)
    alpha = 1 - confidence
    low = 0.0 if k == 0 else float(stats.beta.ppf(alpha / 2, k, n - k + 1))
    high = 1.0 if k == n else float(stats.beta.ppf(1 - alpha / 2, k + 1, n - k))
    return (low, high)


def binomial_test(k: int, n: int, p0: float = 0.5) -> float:
    """Exact two-sided binomial test: total probability of outcomes no likelier than k."""
    if n <= 0:
        return np.nan
    return float(stats.binomtest(int(k), int(n), p0, alternative="two-sided").pvalue)


def proportion_row(term: str, k: int, n: int, confidence: float = 0.95, p0: float = 0.5) -> dict:
    """One tidy row: estimate, its binomial se, Wilson and Clopper-Pearson intervals, exact test."""
    est = k / n if n else np.nan
    w_low, w_high = wilson_interval(k, n, confidence)
    cp_low, cp_high = clopper_pearson_interval(k, n, confidence)
    return {
        "term": term,
        "estimate": est,
        "se": float(np.sqrt(est * (1 - est) / n)) if n else np.nan,
        "ci_low": w_low,
        "ci_high": w_high,
        "cp_low": cp_low,
        "cp_high": cp_high,
        "stat": float(k),
        "df": np.nan,
        "p_val": binomial_test(k, n, p0),
        "p_adj": np.nan,
        "n": int(n),
        "k": int(k),
    }
