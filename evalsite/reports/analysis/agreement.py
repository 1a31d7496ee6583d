"""Agreement among people, coded by the chosen candidate's identity (never its screen position):
Fleiss' kappa, Krippendorff's alpha (nominal), and a leave-one-rater-out noise ceiling per
instrument against which the model's agreement is expressed.

Intervals come from a bootstrap over trials (the units rated), vectorised over replicates.
Where every replicate gives the same value (every rater of every trial agrees, say) the interval
is left empty (NaN) with a note, not reported as [x, x].
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd

from .inputs import instruments_present


def counts_from_ratings(matrix) -> np.ndarray:
    """Units x categories counts from a raters x units (or units x raters) matrix with NaN gaps.

    `matrix` rows are units; values are category labels; NaN = not rated.
    """
    m = np.asarray(matrix, dtype=float)
    cats = np.unique(m[~np.isnan(m)])
    return np.stack([(m == c).sum(axis=1) for c in cats], axis=1).astype(float)


def fleiss_kappa(counts, weights=None) -> float:
    """Fleiss (1971) kappa from units x categories counts; units may have different numbers of
    raters (each unit's agreement uses its own n_i); units with fewer than 2 ratings are skipped.
    `weights` (units,) or (B, units) give bootstrap multiplicities."""
    c = np.asarray(counts, dtype=float)
    n_i = c.sum(axis=1)
    keep = n_i >= 2
    c, n_i = c[keep], n_i[keep]
    w = np.ones(len(c)) if weights is None else np.asarray(weights, dtype=float)[..., keep]
    p_i = ((c**2).sum(axis=1) - n_i) / (n_i * (n_i - 1))  # (U,)
    p_bar = (w @ p_i) / w.sum(axis=-1)
    p_j = (w @ c) / (w @ n_i)[..., None]  # (..., C)
    p_e = (p_j**2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return (p_bar - p_e) / (1 - p_e)


def krippendorff_alpha_nominal(counts, weights=None) -> float:
    """Krippendorff's alpha for nominal data from units x categories counts (pairable units only:
    m_u >= 2), via the coincidence matrix (Krippendorff 2011, "Computing Krippendorff's alpha")."""
    c = np.asarray(counts, dtype=float)
    m_u = c.sum(axis=1)
    keep = m_u >= 2
    c, m_u = c[keep], m_u[keep]
    w = np.ones(len(c)) if weights is None else np.asarray(weights, dtype=float)[..., keep]
    # Observed disagreement per unit: sum over ordered pairs c != k of n_uc n_uk / (m_u - 1).
    disagree_u = (m_u**2 - (c**2).sum(axis=1)) / (m_u - 1)  # (U,)
    n_c = w @ c  # (..., C): coincidence marginals equal the value totals of pairable units
    n = n_c.sum(axis=-1)
    expected = n**2 - (n_c**2).sum(axis=-1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return 1 - (n - 1) * (w @ disagree_u) / expected


def _trial_counts(df: pd.DataFrame) -> pd.DataFrame:
    """Per trial: ratings for canonical candidate a and b (identities), and model-agreement sums."""
    data = df[~df["is_catch"]]
    g = data.assign(is_a=(data["chosen"] == "a").astype(float)).groupby("trial")
    out = pd.DataFrame(
        {
            "instrument": g["instrument"].first(),
            "n_a": g["is_a"].sum(),
            "n": g.size().astype(float),
            "model_choice": g["model_choice"].first(),
        }
    )
    out["n_b"] = out["n"] - out["n_a"]
    return out.reset_index()


def _ceiling_parts(tc: pd.DataFrame) -> pd.DataFrame:
    """Per trial: summed leave-one-rater-out credit, model agreement and answers counted."""
    tc = tc[tc["n"] >= 2].copy()
    others = tc["n"] - 1

    # A rater who chose a sees n_a - 1 other a votes among n - 1; ties give half credit.
    def credit(own_votes_others):
        return np.where(
            own_votes_others * 2 > others, 1.0, np.where(own_votes_others * 2 == others, 0.5, 0.0)
        )

    tc["credit"] = tc["n_a"] * credit(tc["n_a"] - 1) + tc["n_b"] * credit(tc["n_b"] - 1)
    has_model = tc["model_choice"].isin(["a", "b"])
    tc["model_n"] = np.where(has_model, tc["n"], 0.0)
    tc["model_agree"] = np.where(
        tc["model_choice"] == "a", tc["n_a"], np.where(tc["model_choice"] == "b", tc["n_b"], 0.0)
    )
    tc["credit_m"] = np.where(has_model, tc["credit"], 0.0)
    return tc


def boot_interval(boot: np.ndarray, lo: float, hi: float) -> tuple[float, float, float]:
    """(se, ci_low, ci_high) of bootstrap replicates (NaN replicates ignored); all NaN where the
    replicates are all identical (or all NaN): a zero-width interval would claim certainty."""
    known = boot[~np.isnan(boot)]
    if len(known) == 0 or known.min() == known.max():
        return (np.nan, np.nan, np.nan)
    return (
        float(np.nanstd(boot, ddof=1)),
        float(np.nanpercentile(boot, lo)),
        float(np.nanpercentile(boot, hi)),
    )


def _empty_note(table: str, term: str, measure: str, boot: np.ndarray, reason: str) -> str | None:
    """A note where every bootstrap replicate is the same value, so the interval is left empty."""
    known = boot[~np.isnan(boot)]
    if len(known) == 0 or known.min() != known.max():
        return None
    return (
        f"{table} interval for {term} ({measure}) left empty: every bootstrap replicate gives "
        f"{known[0]:.3g} ({reason})"
    )


def _reliability_note(term: str, measure: str, counts: np.ndarray, estimate: float, boot):
    """Why a reliability estimate or interval is empty, where it is."""
    if np.isnan(estimate) and (counts.sum(axis=0) == 0).any():
        return (
            f"reliability for {term} ({measure}) left empty: every rater of every trial chose "
            "the same candidate, so chance agreement is 1 and the measure is 0/0 (undefined)"
        )
    reason = (
        "the raters of its trials never disagree"
        if np.nanmax(boot, initial=0) == 1
        else "every trial has the same split of choices"
    )
    return _empty_note("reliability", term, measure, boot, reason)


# Below this many trials the trial bootstrap's percentile interval of kappa and alpha covers
# clearly less than its nominal level (see FEW_TRIALS_NOTE).
FEW_TRIALS = 40
FEW_TRIALS_NOTE = (
    "reliability interval for {term} rests on {n} trials: with few trials the trial-bootstrap "
    "percentile interval is too narrow and its estimate low. In simulation (population kappa "
    "0.2, 500 datasets each, 8 or 30 raters) the nominal 95 % interval covered kappa and alpha "
    "in 77-82 % of datasets at 10 trials and 90-91 % at 30 (`python -m "
    "evalsite.reports.analysis.calibration reliability`); read it as a rough range"
)


def agreement_tables(df: pd.DataFrame, n_boot: int, seed: int, confidence: float = 0.95):
    """(reliability, noise_ceiling, notes): tidy tables per instrument and overall, and a note
    for each interval left empty."""
    tc = _ceiling_parts(_trial_counts(df))
    rng = np.random.default_rng(seed)
    lo, hi = 50 * (1 - confidence), 50 * (1 + confidence)
    rel_rows, ceil_rows, notes = [], [], []
    for term in [*instruments_present(tc), "overall"]:
        part = tc if term == "overall" else tc[tc["instrument"] == term]
        if len(part) < 2:
            continue
        counts = part[["n_a", "n_b"]].to_numpy()
        if len(part) < FEW_TRIALS:
            notes.append(FEW_TRIALS_NOTE.format(term=term, n=len(part)))
        w = rng.multinomial(len(part), np.full(len(part), 1 / len(part)), size=n_boot)  # (B, U)
        for measure, fn in (
            ("fleiss_kappa", fleiss_kappa),
            ("krippendorff_alpha", krippendorff_alpha_nominal),
        ):
            boot = np.asarray(fn(counts, w), dtype=float)
            se, ci_low, ci_high = boot_interval(boot, lo, hi)
            estimate = float(fn(counts))
            rel_rows.append(
                {
                    "term": term,
                    "measure": measure,
                    "estimate": estimate,
                    "se": se,
                    "ci_low": ci_low,
                    "ci_high": ci_high,
                    "n": int(part["n"].sum()),
                    "n_items": len(part),
                }
            )
            notes.append(_reliability_note(term, measure, counts, estimate, boot))
        with warnings.catch_warnings():  # no model choices: the model columns are all NaN
            warnings.simplefilter("ignore", RuntimeWarning)
            ceil_rows.append(_ceiling_row(term, part, w, lo, hi, notes))
    return pd.DataFrame(rel_rows), pd.DataFrame(ceil_rows), [n for n in notes if n]


def _ceiling_row(
    term: str, part: pd.DataFrame, w: np.ndarray, lo: float, hi: float, notes: list
) -> dict:
    """The ceiling over every rated trial (`estimate`), and on the trials with a model choice
    (`model_ceiling`), which `relative` = model_agreement / model_ceiling divides by."""
    credit, n = part["credit"].to_numpy(), part["n"].to_numpy()
    cm, mn, ma = (part[c].to_numpy() for c in ("credit_m", "model_n", "model_agree"))
    with np.errstate(invalid="ignore", divide="ignore"):
        ceiling, model, model_ceiling = (
            credit.sum() / n.sum(),
            ma.sum() / mn.sum(),
            cm.sum() / mn.sum(),
        )
        b_ceiling = (w @ credit) / (w @ n)
        b_model_ceiling = (w @ cm) / (w @ mn)
        # A ceiling of 0 (every trial an even split) leaves relative undefined, not inf.
        relative = model / model_ceiling if model_ceiling > 0 else np.nan
        b_relative = np.where(b_model_ceiling > 0, ((w @ ma) / (w @ mn)) / b_model_ceiling, np.nan)
    se, ci_low, ci_high = boot_interval(b_ceiling, lo, hi)
    _, mc_low, mc_high = boot_interval(b_model_ceiling, lo, hi)
    _, rel_low, rel_high = boot_interval(b_relative, lo, hi)
    notes.append(
        _empty_note("noise_ceiling", term, "ceiling", b_ceiling, _ceiling_reason(b_ceiling))
    )
    notes.append(_relative_note(term, part, model, model_ceiling, b_relative))
    return {
        "term": term,
        "estimate": float(ceiling),
        "se": se,
        "ci_low": ci_low,
        "ci_high": ci_high,
        "model_ceiling": float(model_ceiling),
        "model_ceiling_ci_low": mc_low,
        "model_ceiling_ci_high": mc_high,
        "model_agreement": float(model),
        "relative": float(relative),
        "relative_ci_low": rel_low,
        "relative_ci_high": rel_high,
        "n": int(n.sum()),
        "model_n": int(mn.sum()),
        "n_items": len(part),
    }


def _ceiling_reason(boot: np.ndarray) -> str:
    """Why every replicate of the leave-one-rater-out ceiling is one value (1 and 0 have one
    cause each: a rater scores 1 only with the others unanimous, 0 only outvoted by them)."""
    value = np.nanmax(boot, initial=np.nan)
    if value == 1:
        return "the raters of its trials never disagree"
    if value == 0:
        return "every trial is an even split, so each rater is outvoted by the others"
    return "every trial gives the same share"


def _relative_note(term: str, part: pd.DataFrame, model: float, model_ceiling: float, boot):
    if model_ceiling == 0:
        return (
            f"noise_ceiling relative for {term} left empty (undefined): its ceiling on the trials "
            f"with a model choice is 0 (every trial an even split), against model agreement "
            f"{model:.3g}"
        )
    return _empty_note("noise_ceiling", term, "relative", boot, _relative_reason(part, boot))


def _relative_reason(part: pd.DataFrame, boot: np.ndarray) -> str:
    """Why every replicate of relative is one value, read from the trials with a model choice.

    A trial gives relative 1 when the model agrees with as many raters as the ceiling credits:
    the model with a majority two or more votes ahead (each rater in it credited 1), or, of 3 raters
    split 2-1, with the lone one (the two others credited half each, the lone one 0)."""
    has = part["model_n"].to_numpy() > 0
    agree, credit, n = (part[c].to_numpy()[has] for c in ("model_agree", "credit_m", "n"))
    if (agree == credit).all():
        majority = int((2 * agree - n >= 2).sum())
        lone = int(((n == 3) & (agree == 1)).sum())
        sides = [
            f"on {majority} trials with a majority two or more votes ahead" if majority else "",
            f"on {lone} trials with the lone rater of a 2-1 split, where the ceiling credits "
            "the two others half each, 1 in all"
            if lone
            else "",
        ]
        return (
            "on every trial with a model choice the model agrees with as many raters as the "
            "ceiling credits: it sides " + " and ".join(s for s in sides if s)
        )
    with np.errstate(invalid="ignore", divide="ignore"):
        ratios = agree / credit
    if (credit > 0).all() and np.allclose(ratios, ratios[0]):
        return "every trial gives the same ratio"
    return f"the trials' ratios differ; the bootstrap drew one value by chance ({len(boot)} draws)"


def above_ceiling_note(ceiling: pd.DataFrame) -> str | None:
    """A note naming each term whose model agreement exceeds its noise ceiling (relative > 1).

    With few raters per trial the leave-one-rater-out ceiling is biased low (a 4-4 split of 8
    raters scores 0, though the model, on either side, scores 0.5), so relative > 1 is expected
    there and says nothing about the model beating people."""
    if ceiling.empty:
        return None
    above = ceiling[ceiling["relative"] > 1]
    if above.empty:
        return None
    terms = ", ".join(f"{r.term} ({r.relative:.3g})" for r in above.itertuples())
    return (
        f"noise_ceiling relative above 1 for {terms}: the ceiling is a lower bound with few "
        "raters per trial; relative > 1 does not mean the model beats people"
    )
