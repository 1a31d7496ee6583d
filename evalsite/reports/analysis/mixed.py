"""Mixed-effects logistic regression of agreement with crossed random intercepts (participant,
trial) by statsmodels' BinomialBayesMixedGLM (variational Bayes) and by the Laplace approximation
(glmm.CrossedLogit), and a GEE check clustered by participant.

Fixed effects: one log-odds per instrument (no global intercept, so each coefficient reads
directly as that instrument's log-odds of agreeing), plus covariates centred within instrument:
the model's margin, whether the model's choice was displayed first (position), and the trial
index per 100 trials. Each instrument term is that instrument's log-odds (for an average
participant and trial) at the instrument's population mean covariates, estimated at its answers'
means: the conditional counterpart of its consent. Its variance adds the sampling of those means
over the instrument's trials (`_mean_covariates_sampled`). The covariates' slopes are shared by
the instruments.
The random-effect design is built sparse: a dense one would not fit in memory at 100k answers.

The Laplace fit (`laplace_model`) and the GEE are the report's model-based tests of consent that
allow for answers clustering by participant and by trial (the GEE by participant only): each
instrument term is a Wald test of log-odds 0, i.e. consent 0.5, Holm-adjusted across the
instrument terms of its table (`p_adj`; covariates are not adjusted). `wald_contrasts` compares
instruments pairwise on the Laplace fit. The variational fit (`mixed_model`) is descriptive only:
its mean-field posterior sd ignores the dependence between the fixed and the random effects and
comes out several times smaller than the sampling se (39-55 % false positives at consent 0.5 when
it was used as one), so it carries no se, test or p-value, and its intervals are posterior
intervals known to be too narrow. An instrument whose
answers all agree (or none does) has no finite log-odds (complete separation): it is left out of
every fit here, with a warning, and the other instruments' rows stand; its untested term and
pairs count as p = 1 in the others' Holm families (csn_model.multiple_testing.holm).
"""

from __future__ import annotations

import itertools
import warnings

import numpy as np
import pandas as pd
from scipy import sparse, special, stats

from csn_model.multiple_testing import holm

from .consent import scored
from .inputs import instruments_present


class ModelFitError(RuntimeError):
    """The data cannot support the model (the message says why)."""


Note = tuple[str, str]  # (level, text) for the report's messages

NOT_ESTIMABLE = (
    "every answer agrees (or none does): its log-odds is not estimable; see the crossed/Wilson "
    "interval (the crossed table's where it has one; consent's Wilson and Clopper-Pearson "
    "intervals, which assume independent answers, always bound it). It is left out of the "
    "mixed-model and GEE fits, whose other rows stand"
)
# Beyond this a log-odds (odds above 22,000 to 1) comes from (near) separation, not the data's
# signal: the fit's estimate and se for it are not to be read.
IMPLAUSIBLE_LOG_ODDS = 10.0
# A Laplace SD below this counts as at the optimiser's lower bound (exp(-7) = 0.0009): the
# likelihood is so flat there that the optimiser stops anywhere up to about 0.003 (seen on 8
# simulated participants), and an SD of 0.01 moves a probability near 0.5 by under 0.3
# percentage points. Such an SD has no interval worth printing, whatever the curvature says.
NEGLIGIBLE_SD = 0.01


def separated_instruments(df: pd.DataFrame) -> list[str]:
    """Instruments whose scored answers all agree or all disagree (a single answer included):
    their maximum-likelihood log-odds is infinite."""
    data = scored(df)
    spread = data.groupby("instrument")["agree"].agg(["min", "max"])
    return [i for i in instruments_present(data) if spread.loc[i, "min"] == spread.loc[i, "max"]]


def _prepared(df: pd.DataFrame) -> tuple[pd.DataFrame, np.ndarray, pd.DataFrame, list[Note]]:
    """design() on the answers less the separated instruments, with a warning naming each."""
    data = scored(df)
    left_out = separated_instruments(data)
    if left_out and data["agree"].nunique() > 1 and len(left_out) == data["instrument"].nunique():
        raise ModelFitError(
            "no instrument's log-odds is estimable: within each, every answer agrees or none does"
        )
    family = instruments_present(data)
    notes: list[Note] = [
        ("warning", f"{inst}: {NOT_ESTIMABLE}{_holm_families(len(family), len(left_out))}")
        for inst in left_out
    ]
    if data["agree"].nunique() > 1:  # else design() says every answer is the same
        data = data[~data["instrument"].isin(left_out)]
    data, y, X, info = design(data)
    return data, y, X, notes + [("info", text) for text in info]


def _holm_families(answered: int, left_out: int) -> str:
    """What the warning of an instrument left out of the fits adds: the Holm families it still
    counts in, with their sizes, so that p_adj can be recomputed from the rows shown (review r2
    F4; `_checked` and `wald_contrasts` adjust so)."""
    pairs = _pairs(answered)
    return (
        ", and counts in their Holm families as p = 1: its term among the "
        f"{answered} instrument terms of mixed_laplace and gee (p_adj), its {answered - 1} pairs "
        f"among the {pairs} pairs of instrument_contrasts ({_pairs(answered - left_out)} shown)"
    )


def implausible_terms(table: pd.DataFrame) -> list[str]:
    """Fixed-effect terms whose estimate or se is NaN, or whose |log-odds| exceeds 10."""
    fixed = table[~table["term"].str.startswith("sd(")]
    # The variational table's spread is its posterior sd (it has no se).
    spread = fixed["posterior_sd"] if "posterior_sd" in fixed else fixed["se"]
    bad = (
        fixed["estimate"].isna() | spread.isna() | (fixed["estimate"].abs() > IMPLAUSIBLE_LOG_ODDS)
    )
    return list(fixed.loc[bad, "term"])


def _checked(name: str, table: pd.DataFrame, family: list[str]) -> tuple[pd.DataFrame, list[Note]]:
    """Holm across the instrument terms, in the family of every instrument answered (`family`):
    one left out of the fit (separated) has no test, and its undefined p counts as 1, as
    everywhere in the project (csn_model.multiple_testing.holm). A warning naming terms the fit
    could not estimate."""
    inst = table["term"].isin(family)
    p_val = table.loc[inst].set_index("term")["p_val"].reindex(family)  # left out: NaN
    adjusted = dict(zip(family, holm(p_val.to_numpy())))
    table.loc[inst, "p_adj"] = table.loc[inst, "term"].map(adjusted)
    return table, _implausible_note(name, table)


def _implausible_note(name: str, table: pd.DataFrame) -> list[Note]:
    bad = implausible_terms(table)
    if not bad:
        return []
    return [
        (
            "warning",
            f"{name}: {', '.join(bad)}: estimate or se NaN, or |log-odds| above "
            f"{IMPLAUSIBLE_LOG_ODDS:g} (odds beyond 22,000 to 1), as when the answers (nearly) "
            "separate a term: do not read these rows' estimate, se or p",
        )
    ]


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
            notes.append(
                f"covariate {name}: {int(x.isna().sum())} missing values set to their "
                "instrument's mean"
            )
        # Centred within instrument, so each instrument term is its log-odds at its population
        # mean margin (position, trial index), estimated at its answers' means: margins are
        # per-instrument distances, and centred on all instruments' mean a term was its consent
        # at a margin its trials may not have.
        centred = (x - x.groupby(data["instrument"]).transform("mean")).fillna(0.0)
        if not (centred.abs() > 1e-12).any():
            notes.append(f"covariate {name} left out: it does not vary within any instrument")
            continue
        X[name] = centred
    y = data["agree"].to_numpy(float)
    if np.all(y == y[0]):
        raise ModelFitError("every answer has the same agreement value; nothing to model")
    return data, y, X, notes


def _z_row(term, est, se, n, z, df: float | None = None, confidence: float = 0.95) -> dict:
    """A Wald row: against the normal (quantile z), or against t(df) where df is given."""
    stat = est / se if se > 0 else np.nan
    q = z if df is None else float(stats.t.ppf(0.5 + confidence / 2, df))
    ref = stats.norm() if df is None else stats.t(df)
    return {
        "term": term,
        "estimate": est,
        "se": se,
        "ci_low": est - q * se,
        "ci_high": est + q * se,
        "stat": stat,
        "df": np.nan if df is None else float(df),
        "p_val": float(2 * ref.sf(abs(stat))) if stat == stat else np.nan,
        "p_adj": np.nan,
        "n": n,
    }


def _trial_dfs(data: pd.DataFrame, names: list[str]) -> list[float]:
    """Containment df of each fixed effect of the Laplace fit: an instrument term, a between-trial
    effect, on that instrument's trials - 1 (the trial variance is estimated from that many
    trials, as in the crossed table's t reference); a covariate on all trials less the fixed
    effects (at least 1)."""
    per_inst = data.groupby("instrument")["trial"].nunique()
    rest = max(data["trial"].nunique() - len(names), 1)
    return [float(max(per_inst[t] - 1, 1)) if t in per_inst.index else float(rest) for t in names]


def mixed_model(
    df: pd.DataFrame, confidence: float = 0.95, seed: int = 0
) -> tuple[pd.DataFrame, list[Note]]:
    """Fixed effects (log-odds, posterior mean and sd) and random-intercept SDs, tidy.

    Separated instruments are left out here too: the N(0, 2^2) prior on the fixed effects would
    keep their log-odds finite, but then the prior, not the answers, sets it."""
    from statsmodels.genmod.bayes_mixed_glm import BinomialBayesMixedGLM

    data, y, X_df, notes = _prepared(df)
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
        _posterior_row(name, float(m), float(s), n, z)
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
    table = pd.DataFrame(out, columns=[*_z_row("", 0.0, 1.0, 0, z), "posterior_sd"])
    return table, notes + [("info", VARIATIONAL_NOTE), *_implausible_note("mixed", table)]


VARIATIONAL_NOTE = (
    "mixed (variational Bayes) is descriptive: its intervals are mean-field posterior intervals, "
    "known to be too narrow (the posterior sd of an instrument term came out about 2.8 times "
    "below the sampling se in simulation), so it gives no se, test or p-value. The tests of "
    "consent are mixed_laplace's and the crossed table's"
)


def _posterior_row(term, mean, sd, n, z) -> dict:
    """A descriptive row: posterior mean, sd and mean +- z sd; no se, statistic or p-value."""
    row = _z_row(term, mean, np.nan, n, z)
    row.update(ci_low=mean - z * sd, ci_high=mean + z * sd, posterior_sd=sd)
    return row


def laplace_model(
    df: pd.DataFrame, confidence: float = 0.95, restricted: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame, list[Note]]:
    """The same model fitted by the Laplace approximation (glmm.CrossedLogit): seconds at 100k
    answers, where the variational fit takes minutes. Returns (fixed, contrasts, notes):
    contrasts are the pairwise differences of the instruments' log-odds (wald_contrasts). The
    instrument terms' variances include the sampling of their mean covariates
    (_mean_covariates_sampled). `restricted`: the SDs by the restricted Laplace likelihood, which
    only the calibration uses (it overshot the level: docs/statistics.md)."""
    from .glmm import CrossedLogit

    data, y, X_df, notes = _prepared(df)
    names = list(X_df.columns)
    groups = [data["participant"].to_numpy(), data["trial"].to_numpy()]
    fit = CrossedLogit(y, X_df.to_numpy(float), groups, restricted).fit()
    if not fit.converged:
        notes.append(
            ("info", "Laplace fit: the optimiser of the random-effect SDs did not converge")
        )
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    dfs = _trial_dfs(data, names)
    insts = instruments_present(data)
    cov = _mean_covariates_sampled(data, X_df, fit.beta, fit.beta_cov, insts)
    out = [
        _z_row(name, float(b), float(s), len(y), z, df, confidence)
        for name, b, s, df in zip(names, fit.beta, np.sqrt(np.diag(cov)), dfs)
    ]
    levels = (data["participant"].nunique(), data["trial"].nunique())
    intervals = fit.sds_interval(z)
    for name, sd, ci, k in zip(["participant", "trial"], fit.sds, intervals, levels):
        if not _sd_determined(sd, ci):
            ci = np.full(2, np.nan)
            notes.append(
                (
                    "info",
                    f"Laplace fit: sd({name}) = {sd:.3g} has no usable Wald interval (it sits "
                    "at or near its bound, or the likelihood is so flat in it that the interval "
                    f"is unbounded or reaches above {IMPLAUSIBLE_LOG_ODDS:g} on the logit scale): "
                    "read it as poorly determined",
                )
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
    family = instruments_present(scored(df))  # the separated ones too
    fixed, more = _checked("mixed_laplace", pd.DataFrame(out), family)
    at = [names.index(i) for i in insts]
    untested = _pairs(len(family)) - _pairs(len(insts))  # with a separated instrument
    contrasts = wald_contrasts(
        insts,
        fit.beta[at],
        cov[np.ix_(at, at)],
        len(y),
        confidence,
        [dfs[i] for i in at],
        untested,
    )
    return fixed, contrasts, notes + more


def _mean_covariates_sampled(
    data: pd.DataFrame, X_df: pd.DataFrame, beta: np.ndarray, cov: np.ndarray, insts: list[str]
) -> np.ndarray:
    """The fit's covariance of the fixed effects with each instrument term's variance widened by
    the sampling of its answers' mean covariates. The term is estimated at those means (the
    covariates are centred within instrument), and it and a test of consent 0.5 are about the
    instrument's population of trials, whose mean margin the trials' mean only estimates: with
    the margin case's slope 3 and 12 trials it moves each term by about 0.1 (sd), which the fit's
    covariance, conditional on the margins, leaves out (docs/statistics.md). The term's error
    about the log-odds at the population mean is (beta_i - its value at the mean) - b'(population
    mean - mean), of variance V_ii + b'Cb; C is the trial-clustered variance of the mean
    covariates, T / (T - 1) sum_j (n_j d_j)(n_j d_j)' / N^2 over the instrument's T trials (d_j a
    trial's mean centred covariates, n_j its answers, N all of them), and b'Cb is estimated
    without bias by b^'Cb^ - trace(V_b C), truncated at 0 (b^'Cb^ alone, with a slope as noisy as
    an index on 5 trials, took the Laplace test of a true 0.5 from 0.050 to 0.005 rejections).
    Different instruments have different trials, so no covariance is added between them."""
    names = list(X_df.columns)
    slopes = [k for k, name in enumerate(names) if name not in insts]
    out = np.array(cov, dtype=float)
    if not slopes:
        return out
    b, v_b = beta[slopes], out[np.ix_(slopes, slopes)]
    for inst, part in X_df.iloc[:, slopes].groupby(data["instrument"].to_numpy()):
        by_trial = part.groupby(data.loc[part.index, "trial"].to_numpy())
        n_j, d = by_trial.size().to_numpy(float), by_trial.mean().to_numpy(float)  # (T,), (T, K)
        if len(n_j) < 2 or inst not in names:
            continue  # one trial: no spread between trials to estimate it from
        w = n_j[:, None] * d / n_j.sum()  # (T, K)
        c = len(n_j) / (len(n_j) - 1) * w.T @ w  # (K, K)
        k = names.index(inst)
        out[k, k] += max(float(b @ c @ b - np.trace(v_b @ c)), 0.0)
    return out


def _sd_determined(sd: float, ci: np.ndarray) -> bool:
    """Whether the Laplace Wald interval `ci` of random-intercept SD `sd` is worth printing: not
    at or near either bound of the optimiser (glmm.LOG_SD_BOUNDS), finite, and with an upper end
    of at most IMPLAUSIBLE_LOG_ODDS. An SD of 10 would put a participant one SD above average at
    odds 22,000 times theirs; an interval reaching past it says only that the data do not bound
    the SD (a finite curvature at the bound gave "0.001 [0.000, 3.01e+134]")."""
    from .glmm import LOG_SD_BOUNDS

    near_bound = sd < NEGLIGIBLE_SD or np.log(sd) > LOG_SD_BOUNDS[1] - 1e-3
    return not near_bound and bool(np.isfinite(ci).all()) and ci[1] <= IMPLAUSIBLE_LOG_ODDS


def _pairs(k: int) -> int:
    return k * (k - 1) // 2


def wald_contrasts(
    terms: list[str],
    beta: np.ndarray,
    cov: np.ndarray,
    n: int,
    confidence: float = 0.95,
    dfs: list[float] | None = None,
    untested: int = 0,
) -> pd.DataFrame:
    """Every pairwise difference beta[i] - beta[j] (i before j), its se sqrt(c' V c) from the
    covariance V of the estimates, a Wald test of 0 and Holm across the pairs: against the
    normal, or, given each term's df, against t on Welch's (1947) df from the two terms'
    variances, (V_ii + V_jj)^2 / (V_ii^2 / df_i + V_jj^2 / df_j). `untested`: pairs with an
    instrument left out of the fit, which have no row but count in the Holm family as p = 1."""
    beta, cov = np.asarray(beta, float), np.asarray(cov, float)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    rows = []
    for i, j in itertools.combinations(range(len(terms)), 2):
        c = np.zeros(len(terms))
        c[i], c[j] = 1.0, -1.0
        se = float(np.sqrt(c @ cov @ c))
        df = None
        if dfs is not None:
            v = np.array([cov[i, i], cov[j, j]])
            df = float(v.sum() ** 2 / (v**2 / np.array([dfs[i], dfs[j]])).sum())
        row = _z_row(f"{terms[i]} - {terms[j]}", float(c @ beta), se, n, z, df, confidence)
        rows.append(row)
    out = pd.DataFrame(rows, columns=list(_z_row("", 0.0, 1.0, 0, z)))
    undefined = np.full(untested, np.nan)  # counted as p = 1 (csn_model.multiple_testing.holm)
    out["p_adj"] = holm(np.concatenate([out["p_val"].to_numpy(), undefined]))[: len(out)]
    return out


def instrument_probabilities(fixed: pd.DataFrame, instruments: list[str]) -> pd.DataFrame:
    """Instrument log-odds mapped to probabilities (for an average participant and trial)."""
    part = fixed[fixed["term"].isin(instruments)].copy()
    for col in ("estimate", "ci_low", "ci_high"):
        part[col] = special.expit(part[col])
    part["se"] = np.nan
    return part.reset_index(drop=True)


def gee_check(df: pd.DataFrame, confidence: float = 0.95) -> tuple[pd.DataFrame, list[Note]]:
    """Population-averaged logistic GEE, exchangeable within participant: a cross-check of the
    crossed and Laplace tests, clustered by participant only (trials are crossed with
    participants, and between-trial variation is not in its se: docs/statistics.md).

    The se is Mancl & DeRouen's (2001, Biometrics 57(1)) bias-reduced sandwich (statsmodels'
    cov_type="bias_reduced") and the reference t on participants - 1 df: with the 20-40
    participants of a listening study the plain sandwich is too small and the normal too liberal
    (0.073 at 20 x 10 against 0.05: `calibration gee`)."""
    import statsmodels.api as sm

    data, y, X_df, notes = _prepared(df)
    names, X = list(X_df.columns), X_df.to_numpy(float)
    groups = pd.factorize(data["participant"])[0]
    model = sm.GEE(
        y,
        X,
        groups=groups,
        family=sm.families.Binomial(),
        cov_struct=sm.cov_struct.Exchangeable(),
    )
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a degenerate covariate's robust variance can be < 0:
        result = model.fit(cov_type="bias_reduced")  # its se is then NaN, which _checked names
        params, bse = np.asarray(result.params), np.asarray(result.bse)
    z = float(stats.norm.ppf(0.5 + confidence / 2))
    df_t = float(groups.max())  # the participants (clusters), less 1
    rows = [
        _z_row(name, float(b), float(s), len(y), z, df_t, confidence)
        for name, b, s in zip(names, params, bse)
    ]
    table, more = _checked("gee", pd.DataFrame(rows), instruments_present(scored(df)))
    return table, notes + more
