"""Consent: the share of answers agreeing with the model's choice, per instrument and overall.

Answer level: Wilson and Clopper-Pearson intervals and an exact binomial test against 0.5, Holm
across instruments. Participant level: each participant's agreement rate, then a one-sample t test
of those rates against 0.5, its interval built on the logit scale (proportions.logit_interval)
so that it stays within (0, 1).

Both tests are descriptive, not the confirmatory result: the binomial test assumes independent
answers, and the t test allows for participants but treats the trials as fixed, ignoring the
variance between trials (the language-as-fixed-effect fallacy, Clark 1973). Answers cluster by
participant and by trial, so both give p-values that are too small: in a simulation at true
consent 0.5 with trial SD 1 on the logit scale (20 participants x 20 trials), about a third of
each test's results fell below 0.05. The tests that allow for participants and trials crossed are
the mixed models' instrument terms (mixed.py) and the crossed table.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from csn_model.multiple_testing import holm

from .inputs import instruments_present
from .proportions import logit_interval, proportion_row

COLUMNS = [
    "term",
    "estimate",
    "se",
    "ci_low",
    "ci_high",
    "cp_low",
    "cp_high",
    "stat",
    "df",
    "p_val",
    "p_adj",
    "n",
    "k",
]


def scored(df: pd.DataFrame) -> pd.DataFrame:
    """The answers consent is computed on: non-catch trials where the model made a choice."""
    return df[~df["is_catch"] & df["agree"].notna()]


def consent_table(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    data = scored(df)
    rows = []
    for inst in instruments_present(data):
        a = data.loc[data["instrument"] == inst, "agree"]
        rows.append(proportion_row(inst, int(a.sum()), len(a), confidence))
    out = pd.DataFrame(rows, columns=COLUMNS)
    out["p_adj"] = holm(out["p_val"].to_numpy())
    overall = proportion_row("overall", int(data["agree"].sum()), len(data), confidence)
    return pd.concat([out, pd.DataFrame([overall], columns=COLUMNS)], ignore_index=True)


def one_sample_t(values: np.ndarray, term: str, mu: float, confidence: float) -> dict:
    """t test of the mean of `values` (rates in [0, 1]) against mu; interval on the logit scale."""
    values = np.asarray(values, dtype=float)
    n = len(values)
    mean = float(values.mean()) if n else np.nan
    if n < 2:
        return {
            "term": term,
            "estimate": mean,
            "se": np.nan,
            "ci_low": np.nan,
            "ci_high": np.nan,
            "stat": np.nan,
            "df": np.nan,
            "p_val": np.nan,
            "p_adj": np.nan,
            "n": n,
        }
    se = float(values.std(ddof=1) / np.sqrt(n))
    df_ = n - 1
    q = float(stats.t.ppf(0.5 + confidence / 2, df_))
    # Rates that do not vary (se 0) leave t undefined: NaN, not t = inf, p = 0 and a zero-width
    # interval; the report warns about each such term (undefined_t_terms).
    t = (mean - mu) / se if se > 0 else np.nan
    p = float(2 * stats.t.sf(abs(t), df_)) if se > 0 else np.nan
    # The values are agreement rates in [0, 1]: the interval on the logit scale (t quantile), so
    # it stays within (0, 1); the t test on the rates' own scale.
    ci_low, ci_high = logit_interval(mean, se, q)
    return {
        "term": term,
        "estimate": mean,
        "se": se,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "stat": t,
        "df": float(df_),
        "p_val": p,
        "p_adj": np.nan,
        "n": n,
    }


def participant_rates(df: pd.DataFrame) -> pd.DataFrame:
    """Agreement rate of each participant per instrument and overall (tidy, long)."""
    data = scored(df)
    per = data.groupby(["participant", "instrument"])["agree"].agg(["mean", "size"]).reset_index()
    overall = data.groupby("participant")["agree"].agg(["mean", "size"]).reset_index()
    overall["instrument"] = "overall"
    out = pd.concat([per, overall], ignore_index=True)
    return out.rename(columns={"mean": "estimate", "size": "n"})[
        ["participant", "instrument", "estimate", "n"]
    ]


def undefined_t_terms(table: pd.DataFrame) -> pd.DataFrame:
    """Rows of participant_consent_table whose t test is undefined: a single participant, or two
    or more all with the same rate (no spread). Each counts in the Holm family as p = 1."""
    return table[(table["n"] >= 1) & table["p_val"].isna()]


def participant_consent_table(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    rates = participant_rates(df)
    terms = [*instruments_present(scored(df)), "overall"]
    rows = [
        one_sample_t(rates.loc[rates["instrument"] == t, "estimate"].to_numpy(), t, 0.5, confidence)
        for t in terms
    ]
    out = pd.DataFrame(rows)
    inst = out["term"] != "overall"
    out.loc[inst, "p_adj"] = holm(out.loc[inst, "p_val"].to_numpy())
    return out
