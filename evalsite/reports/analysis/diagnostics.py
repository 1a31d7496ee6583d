"""Diagnostics: position bias, fatigue, the psychometric curve (consent against the model's
margin), catch-trial pass rates and test-retest consistency on repeated trials."""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import special, stats

from csn_model.multiple_testing import holm

from .consent import scored
from .crossed import COLUMNS as CROSSED_COLUMNS
from .crossed import crossed_row, holm_counted
from .inputs import instruments_present
from .proportions import proportion_row


def position_bias(df: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """Share of (non-catch) answers choosing screen position A, tested against 0.5 with answers
    clustered by participant and by trial (crossed.crossed_row: moment estimates of the variance
    components, Wald interval on the logit scale, t test on Satterthwaite df, Holm across
    instruments). Each
    participant may lean towards A or B; an answer-level binomial test would read that spread as
    a bias (about 22 % of its p-values fell below 0.05 with no bias,
    tests/evalsite/reports/test_diagnostics.py).

    Answers whose screen position is unknown (no displayed_first) are left out; none known gives
    an empty table. Returns the table and a note for each row whose interval is left empty."""
    data = df[~df["is_catch"] & df["chosen_position"].notna()]
    if data.empty:
        return pd.DataFrame(), []
    rows, notes = [], []
    family = instruments_present(data)
    for term in [*family, "overall"]:
        part = data if term == "overall" else data[data["instrument"] == term]
        y = (part["chosen_position"] == "A").astype(float)
        row, reason = crossed_row(
            term, part["participant"], part["trial"], y, confidence, "chose A"
        )
        rows.append(row)
        if reason:
            counted = "" if term == "overall" else holm_counted(len(family))
            notes.append(
                f"position_bias interval and test for {term} left empty: {reason}{counted}"
            )
    out = pd.DataFrame(rows, columns=CROSSED_COLUMNS)
    inst = out["term"] != "overall"
    out.loc[inst, "p_adj"] = holm(out.loc[inst, "p_val"].to_numpy())
    return out, notes


def _binned(data: pd.DataFrame, column: str, n_bins: int, confidence: float) -> pd.DataFrame:
    x = data[column]
    if x.notna().sum() == 0 or x.nunique() < 2:
        return pd.DataFrame()
    bins = pd.qcut(x.rank(method="first"), min(n_bins, x.nunique()), labels=False)
    rows = []
    for b, part in data.groupby(bins):
        row = proportion_row(f"bin {int(b) + 1}", int(part["agree"].sum()), len(part), confidence)
        row.update(
            bin_low=float(part[column].min()),
            bin_high=float(part[column].max()),
            bin_mean=float(part[column].mean()),
        )
        rows.append(row)
    return pd.DataFrame(rows)


def fatigue(df: pd.DataFrame, n_bins: int = 5, confidence: float = 0.95) -> pd.DataFrame:
    """Consent by trial index (equal-count bins of the position in each participant's session)."""
    return _binned(scored(df), "trial_index", n_bins, confidence)


def fatigue_left_out(df: pd.DataFrame) -> int:
    """Scored answers the fatigue table leaves out: those without a trial_index (where only some
    answers have one; where none has, inputs.normalise_answers numbers them in order)."""
    return int(scored(df)["trial_index"].isna().sum())


def psychometric(df: pd.DataFrame, n_bins: int = 5, confidence: float = 0.95):
    """(bins, fit): consent by model-margin bins, and a logistic fit agree ~ margin with a
    participant-clustered (GEE independence) sandwich interval along a grid of margins."""
    import statsmodels.api as sm

    data = scored(df)
    data = data[data["model_margin"].notna()]
    bins = _binned(data, "model_margin", n_bins, confidence)
    if bins.empty or data["participant"].nunique() < 2 or data["agree"].nunique() < 2:
        return bins, pd.DataFrame()
    X = sm.add_constant(data["model_margin"].to_numpy(float))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        fit = sm.GEE(
            data["agree"].to_numpy(float),
            X,
            groups=pd.factorize(data["participant"])[0],
            family=sm.families.Binomial(),
        ).fit()
    grid = np.linspace(data["model_margin"].min(), data["model_margin"].max(), 41)
    G = np.column_stack([np.ones_like(grid), grid])
    eta = G @ np.asarray(fit.params)
    se = np.sqrt(np.einsum("ij,jk,ik->i", G, np.asarray(fit.cov_params()), G))
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    curve = pd.DataFrame(
        {
            "term": "fit",
            "model_margin": grid,
            "estimate": special.expit(eta),
            "ci_low": special.expit(eta - z * se),
            "ci_high": special.expit(eta + z * se),
        }
    )
    curve["slope"], curve["slope_se"] = float(fit.params[1]), float(fit.bse[1])
    return bins, curve


def catch_pass_rates(df: pd.DataFrame, included: set, confidence: float = 0.95) -> pd.DataFrame:
    """Pass rate per catch kind, over all participants and over those kept after exclusions."""
    data = df[df["is_catch"] & df["catch_correct"].notna()]
    rows = []
    for sample, part in (("all", data), ("included", data[data["participant"].isin(included)])):
        for kind in sorted(part["catch_kind"].unique()):
            c = part.loc[part["catch_kind"] == kind, "catch_correct"]
            row = proportion_row(kind or "(unspecified)", int(c.sum()), len(c), confidence)
            row["sample"] = sample
            rows.append(row)
    return pd.DataFrame(rows)


def test_retest(df: pd.DataFrame, confidence: float = 0.95) -> pd.DataFrame:
    """Consistency of a participant's choice (candidate identity) across repeats of the same
    comparison: each later answer is compared with that participant's first answer."""
    key = ["participant", "instrument", "reference", "pair_lo", "pair_hi"]
    data = df[(df["candidate_a"] != "") & (df["reference"] != "")].sort_values("trial_index")
    # The same comparison may come back with its candidates in the other canonical order.
    pair = np.sort(data[["candidate_a", "candidate_b"]].to_numpy(str), axis=1)
    data = data.assign(pair_lo=pair[:, 0], pair_hi=pair[:, 1])
    first = data.groupby(key)["chosen_clip"].transform("first")
    order = data.groupby(key).cumcount()
    later = data[order > 0].assign(same=(data["chosen_clip"] == first)[order > 0])
    rows = []
    for term in [*instruments_present(later), "overall"]:
        part = later if term == "overall" else later[later["instrument"] == term]
        rows.append(proportion_row(term, int(part["same"].sum()), len(part), confidence))
    return pd.DataFrame(rows) if len(later) else pd.DataFrame()
