"""Mixed-effects logistic regression of agreement with crossed random intercepts (participant,
trial) by statsmodels' BinomialBayesMixedGLM (variational Bayes), and a GEE check clustered by
participant.

Fixed effects: one log-odds per instrument (no global intercept, so each coefficient reads
directly as that instrument's log-odds of agreeing), plus centred covariates: the model's margin,
whether the model's choice was displayed first (position), and the trial index per 100 trials.
The random-effect design is built sparse: a dense one would not fit in memory at 100k answers.
"""

from __future__ import annotations

import warnings

import numpy as np
import pandas as pd
from scipy import sparse, special, stats

from .consent import scored
from .inputs import instruments_present


class ModelFitError(RuntimeError):
    """The data cannot support the model (the message says why)."""


def design(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, list[str]]:
    """(data, y, X, notes): fixed-effect design with instrument indicators and centred covariates;
    X's column names are the terms."""
    data = scored(df).reset_index(drop=True)
    if data["participant"].nunique() < 2:
        raise ModelFitError("needs answers from at least 2 participants")
    insts = instruments_present(data)
    X = pd.DataFrame({i: (data["instrument"] == i).astype(float) for i in insts})
    notes = []
    shown_first = (data["displayed_first"] == data["model_choice"]).astype(float)
    covariates = {
        "model_margin": data["model_margin"],
        # Unknown (NaN) where the answer does not record which candidate was displayed first.
        "model_shown_first": shown_first.where(data["displayed_first"].notna()),
        "trial_index_per_100": data["trial_index"] / 100.0,
    }
    for name, x in covariates.items():
        if name == "model_shown_first" and x.isna().all():
            notes.append(f"covariate {name} left out: no answer records displayed_first")
            continue
        if x.isna().all() or x.std() == 0 or x.nunique() < 2:
            notes.append(f"covariate {name} left out: it does not vary in these answers")
            continue
        if x.isna().any():
            notes.append(f"covariate {name}: {int(x.isna().sum())} missing values set to its mean")
        X[name] = (x - x.mean()).fillna(0.0)
    y = data["agree"].to_numpy(float)
    if np.all(y == y[0]):
        raise ModelFitError("every answer has the same agreement value; nothing to model")
    return data, y, X, notes


def _z_row(term, est, se, n, z) -> dict:
    stat = est / se if se > 0 else np.nan
    return {
        "term": term,
        "estimate": est,
        "se": se,
        "ci_low": est - z * se,
        "ci_high": est + z * se,
        "stat": stat,
        "df": np.nan,
        "p_val": float(2 * stats.norm.sf(abs(stat))) if stat == stat else np.nan,
        "p_adj": np.nan,
        "n": n,
    }


def mixed_model(
    df: pd.DataFrame, confidence: float = 0.95, seed: int = 0
) -> tuple[pd.DataFrame, list[str]]:
    """Fixed effects (log-odds, posterior mean and sd) and random-intercept SDs, tidy."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    data, y, X_df, notes = design(df)
    names, X = list(X_df.columns), X_df.to_numpy(float)
    p_codes, p_levels = pd.factorize(data["participant"])
    t_codes, t_levels = pd.factorize(data["trial"])
    n = len(data)
    rows = np.arange(n)
    z_p = sparse.csr_matrix((np.ones(n), (rows, p_codes)), shape=(n, len(p_levels)))
    z_t = sparse.csr_matrix((np.ones(n), (rows, t_codes)), shape=(n, len(t_levels)))
    exog_vc = sparse.hstack([z_p, z_t]).tocsr()
    ident = np.r_[np.zeros(len(p_levels), int), np.ones(len(t_levels), int)]
    model = BinomialBayesMixedGLM(
        y,
        X,
        exog_vc,
        ident,
        vcp_p=1.0,
        fe_p=2.0,
        fep_names=names,
        vcp_names=["participant", "trial"],
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit_vb(rng=seed)  # its start values are random
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    out = [
        _z_row(name, float(m), float(s), n, z)
        for name, m, s in zip(names, result.fe_mean, result.fe_sd)
    ]
    for name, m, s in zip(["participant", "trial"], result.vcp_mean, result.vcp_sd):
        # vcp are log standard deviations: report the SD with the interval mapped through exp.
        out.append(
            {
                "term": f"sd({name})",
                "estimate": float(np.exp(m)),
                "se": np.nan,
                "ci_low": float(np.exp(m - z * s)),
                "ci_high": float(np.exp(m + z * s)),
                "stat": np.nan,
                "df": np.nan,
                "p_val": np.nan,
                "p_adj": np.nan,
                "n": len(p_levels) if name == "participant" else len(t_levels),
            }
        )
    return pd.DataFrame(out), notes


def laplace_model(df: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """The same model fitted by the Laplace approximation (glmm.CrossedLogit): seconds at 100k
    answers, where the variational fit takes minutes."""
    from .glmm import CrossedLogit

    data, y, X_df, notes = design(df)
    names = list(X_df.columns)
    fit = CrossedLogit(
        y, X_df.to_numpy(float), [data["participant"].to_numpy(), data["trial"].to_numpy()]
    ).fit()
    if not fit.converged:
        notes.append("Laplace fit: the optimiser of the random-effect SDs did not converge")
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    out = [
        _z_row(name, float(b), float(s), len(y), z)
        for name, b, s in zip(names, fit.beta, fit.beta_se)
    ]
    levels = (data["participant"].nunique(), data["trial"].nunique())
    intervals = fit.sds_interval(z)
    for name, sd, ci, k in zip(["participant", "trial"], fit.sds, intervals, levels):
        if not np.isfinite(ci).all():
            notes.append(
                f"Laplace fit: sd({name}) = {sd:.3g} has no finite Wald interval (the likelihood "
                "is flat in it, or it sits at its bound): read it as poorly determined"
            )
        out.append(
            {
                "term": f"sd({name})",
                "estimate": float(sd),
                "se": np.nan,
                "ci_low": float(ci[0]),
                "ci_high": float(ci[1]),
                "stat": np.nan,
                "df": np.nan,
                "p_val": np.nan,
                "p_adj": np.nan,
                "n": int(k),
            }
        )
    return pd.DataFrame(out), notes


def instrument_probabilities(fixed: pd.DataFrame, instruments: list[str]) -> pd.DataFrame:
    """Instrument log-odds mapped to probabilities (for an average participant and trial)."""
    part = fixed[fixed["term"].isin(instruments)].copy()
    for col in ("estimate", "ci_low", "ci_high"):
        part[col] = special.expit(part[col])
    part["se"] = np.nan
    return part.reset_index(drop=True)


def gee_check(df: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, list[str]]:
    """Population-averaged logistic GEE, exchangeable within participant, robust SEs."""
    import statsmodels.api as sm

    data, y, X_df, notes = design(df)
    names, X = list(X_df.columns), X_df.to_numpy(float)
    model = sm.GEE(
        y,
        X,
        groups=pd.factorize(data["participant"])[0],
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = model.fit()
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rows = [
        _z_row(name, float(b), float(s), len(y), z)
        for name, b, s in zip(names, np.asarray(result.params), np.asarray(result.bse))
    ]
    return pd.DataFrame(rows), notes
