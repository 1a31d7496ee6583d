"""Mean agreement with a standard error that allows for crossed clustering: answers of the same
participant are correlated, and so are answers to the same trial.

Model: Y_ij = mu + a_i + b_j + e_ij (participant i, trial j; variances s_a^2, s_b^2, s_e^2),
observed for the answers given, in any unbalanced pattern. The variance components come from
the moment (U-statistic) method of Gao & Owen (2017), "Efficient moment calculations for
variance components in large unbalanced crossed random effects models", Electronic Journal of
Statistics 11(1), sec. 3 (also Owen 2007, "The pigeonhole bootstrap", sec. 3). With n_i answers
of participant i, m_j of trial j, c_ij of the pair (0 or 1 in the paper's design; a repeated
answer makes it 2) and N in all:

    U_a = sum_i [n_i sum_j Y_ij^2 - (sum_j Y_ij)^2]  (half the squared differences of pairs of
          one participant's answers; U_b likewise for a trial's, U_e for all pairs)
    E[U_a] = s_b^2 (sum_i n_i^2 - sum c_ij^2) + s_e^2 (sum_i n_i^2 - N)
    E[U_b] = s_a^2 (sum_j m_j^2 - sum c_ij^2) + s_e^2 (sum_j m_j^2 - N)
    E[U_e] = s_a^2 (N^2 - sum_i n_i^2) + s_b^2 (N^2 - sum_j m_j^2) + s_e^2 (N^2 - N)

(each ordered pair of distinct answers contributes E[(Y - Y')^2] / 2 = s_a^2 [i != i'] +
s_b^2 [j != j'] + s_e^2; counting the pairs gives the coefficients; with c_ij <= 1,
sum c_ij^2 = N and these are the paper's). Solving the three equations gives the components,
a negative estimate truncated at 0. Then Var(mean) = (s_a^2 sum_i n_i^2 + s_b^2 sum_j m_j^2 +
s_e^2 N) / N^2, and a test of the mean against 0.5. Cost O(N): per-level sums.

The reference distribution is t, not the normal: Var(mean) is dominated by the trial part, whose
component is estimated from only T trials (10 per instrument in the site's random design), so
treating it as known rejected a true 0.5 in 0.113 of datasets at 30 participants x 5 trials and
0.084 at 20 x 10 (a review's simulation). The df is Satterthwaite's for Var(mean) written as the
two-way ANOVA's mean squares combine on a complete design (MS_A + MS_B - MS_E) / N, with
n_p - 1, n_t - 1 and N - n_p - n_t + 1 df (mean_square_df; on unbalanced data an approximation):
near T - 1 where the trial part dominates, near n_p - 1 where the participant part does, large
where the answer part does. Figures:
`python -m evalsite.reports.analysis.calibration crossed` (docs/statistics.md).

The values are 0/1 (agreement, position A), so the mean is a proportion: its interval is built on
the logit scale by the delta method (proportions.logit_interval: se_logit = se / (p (1 - p)),
mapped back by expit), so it lies within (0, 1) where the Wald interval mean +- q se could leave
it ([0.836, 1.053] for 17 of 18 answers). Within (0, 1) the two agree to first order. The test
stays on the proportion scale, t = (mean - 0.5) / se: where the logit interval excludes 0.5 the
Wald one does too (logit is convex above 0.5 and concave below), so the test rejects wherever
the interval excludes 0.5; near the boundary of significance the test may reject while the
interval, the more cautious of the two, still holds 0.5.

Where the components are not estimable (fewer than 2 participants or 2 trials, every answer
equal, or a design that does not separate the three) se, interval and test are NaN (null in the
report) with a reason, never a zero-width interval.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from csn_model.multiple_testing import holm

from .consent import scored
from .inputs import instruments_present
from .proportions import logit_interval

COLUMNS = [
    "term",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "stat",
    "df",
    "p_val",
    "p_adj",
    "n",
    "n_participants",
    "n_trials",
    "var_participant",
    "var_trial",
    "var_answer",
]


def crossed_table(df: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """Per instrument (CONDITIONS order) and overall (all scored answers, one mean): the tidy
    table and a note for each row whose interval is left empty. Holm across instruments."""
    data = scored(df)
    rows, notes = [], []
    family = instruments_present(data)
    for term in [*family, "overall"]:
        part = data if term == "overall" else data[data["instrument"] == term]
        row, reason = crossed_row(
            term, part["participant"], part["trial"], part["agree"], confidence
        )
        rows.append(row)
        if reason:
            counted = "" if term == "overall" else holm_counted(len(family))
            notes.append(f"crossed interval and test for {term} left empty: {reason}{counted}")
    out = pd.DataFrame(rows, columns=COLUMNS)
    inst = out["term"] != "overall"
    out.loc[inst, "p_adj"] = holm(out.loc[inst, "p_val"].to_numpy())
    return out, notes


def holm_counted(instruments: int) -> str:
    """What the note of an instrument's undefined test adds: the family it counts in, so that
    p_adj can be recomputed from the table (review r2 F4)."""
    return f"; its p counts as 1 in the Holm family of the {instruments} instruments (p_adj)"


def crossed_row(
    term: str, participant, trial, y, confidence: float, value: str = "agree"
) -> tuple[dict, str | None]:
    """One row and, where the interval is left empty, the reason (naming y as `value`)."""
    p_codes, _ = pd.factorize(pd.Series(participant), sort=False)
    t_codes, _ = pd.factorize(pd.Series(trial), sort=False)
    y = np.asarray(y, dtype=float)
    n = len(y)
    n_p, n_t = (int(codes.max() + 1) if n else 0 for codes in (p_codes, t_codes))
    row: dict[str, Any] = dict.fromkeys(COLUMNS, np.nan)
    row.update(
        term=term,
        estimate=float(y.mean()) if n else np.nan,
        n=n,
        n_participants=n_p,
        n_trials=n_t,
    )
    reason = _not_estimable(n_p, n_t, y, value)
    if reason:
        return row, reason
    components = _components(p_codes, t_codes, y)
    if components is None:
        return row, (
            "the answers do not separate participant, trial and answer-level variance "
            "(e.g. no participant answered two of its trials)"
        )
    (s_a, s_b, s_e), (sum_n2, sum_m2) = components
    row.update(var_participant=s_a, var_trial=s_b, var_answer=s_e)
    parts = np.array([s_a * sum_n2, s_b * sum_m2, s_e * n]) / n**2  # Var(mean)'s three parts
    se = float(np.sqrt(parts.sum()))
    if not se > 0:
        return row, "its estimated variance is 0"
    df = mean_square_df(parts, n_p, n_t, n)
    # The interval on the logit scale, so it stays within (0, 1); the test on the proportion
    # scale (see the module docstring); both against t(df), not the normal.
    stat = (row["estimate"] - 0.5) / se
    ci_low, ci_high = logit_interval(
        row["estimate"], se, float(stats.t.ppf(0.5 + confidence / 2, df))
    )
    row.update(
        se=se,
        ci_low=ci_low,
        ci_high=ci_high,
        stat=stat,
        df=df,
        p_val=float(2 * stats.t.sf(abs(stat), df)),
    )
    return row, None


def mean_square_df(parts, n_p: int, n_t: int, n: int) -> float:
    """Satterthwaite df of Var(mean) = v_a + v_b + v_e written, as on a complete two-way design,
    through the mean squares: w_a = v_a + v_e (MS_A / N), w_b = v_b + v_e (MS_B / N) and
    w_e = v_e (MS_E / N) on n_p - 1, n_t - 1 and N - n_p - n_t + 1 df, Var(mean) = w_a + w_b - w_e
    (Satterthwaite 1946, Biometrics Bulletin 2(6); Searle, Casella & McCulloch 1992 sec. 4.7):
    (sum c w)^2 / sum (c w)^2 / df. Charging each part its share of the answer-level noise keeps
    the df near T - 1 where the trial part dominates (a plain sum of v_a, v_b, v_e on those dfs
    gave 6.3 at 30 x 5 and rejected 0.08). A component truncated at 0 is pooled into the answer
    level, as in the one-way design that remains: Var(mean) = w_b on n_t - 1 df (no participant
    part), w_a on n_p - 1 (no trial part), v_e on N - 1 (neither)."""
    v_a, v_b, v_e = (float(x) for x in parts)
    if v_a > 0 and v_b > 0:
        terms = np.array([v_a + v_e, v_b + v_e, -v_e])
        dfs = np.array([n_p - 1, n_t - 1, n - n_p - n_t + 1], dtype=float)
    elif v_b > 0:
        terms, dfs = np.array([v_b + v_e]), np.array([n_t - 1.0])
    elif v_a > 0:
        terms, dfs = np.array([v_a + v_e]), np.array([n_p - 1.0])
    else:
        terms, dfs = np.array([v_e]), np.array([n - 1.0])
    dfs = np.maximum(dfs, 1.0)
    return float(terms.sum() ** 2 / (terms**2 / dfs).sum())


def _not_estimable(n_participants: int, n_trials: int, y: np.ndarray, value: str) -> str | None:
    if n_participants < 2:
        return f"{len(y)} answer(s) from one participant (needs two or more participants)"
    if n_trials < 2:
        return f"{len(y)} answers to one trial (needs two or more trials)"
    if y.min() == y.max():
        return f"all {len(y)} answers are equal ({value} = {y[0]:g}), so no variance to estimate"
    return None


def _components(p, t, y):
    """((s_a^2, s_b^2, s_e^2) truncated at 0, (sum_i n_i^2, sum_j m_j^2)), or None where the
    moment equations are singular."""
    y = y - y.mean()  # the U statistics are shift-invariant; centring keeps their sums small
    n = float(len(y))
    n_i, m_j = np.bincount(p).astype(float), np.bincount(t).astype(float)
    u_a = float((n_i * np.bincount(p, y * y) - np.bincount(p, y) ** 2).sum())
    u_b = float((m_j * np.bincount(t, y * y) - np.bincount(t, y) ** 2).sum())
    u_e = float(n * (y * y).sum() - y.sum() ** 2)
    cells = pd.Series(p).groupby([p, t]).size().to_numpy(dtype=float)  # c_ij of observed cells
    sum_n2, sum_m2, sum_c2 = float((n_i**2).sum()), float((m_j**2).sum()), float((cells**2).sum())
    coef = np.array(
        [
            [0.0, sum_n2 - sum_c2, sum_n2 - n],
            [sum_m2 - sum_c2, 0.0, sum_m2 - n],
            [n * n - sum_n2, n * n - sum_m2, n * n - n],
        ]
    )
    scaled = coef / np.maximum(np.abs(coef).max(axis=1, keepdims=True), 1.0)
    if np.linalg.matrix_rank(scaled, tol=1e-9) < 3:
        return None
    s = np.linalg.solve(coef, np.array([u_a, u_b, u_e]))
    return tuple(float(v) for v in np.clip(s, 0.0, None)), (sum_n2, sum_m2)
