"""The Laplace crossed-random-intercept logit against independent fits."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import special

from evalsite.reports.analysis.glmm import CrossedLogit


def _data(sd_p: float, sd_t: float, seed: int = 0):
    rng = np.random.default_rng(seed)
    n_p, n_t = 30, 40
    p, t = np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij")
    p, t = p.ravel(), t.ravel()
    x = rng.normal(size=p.size)
    X = np.column_stack([np.ones_like(x), x])
    eta = 0.3 + 0.8 * x + rng.normal(0, sd_p, n_p)[p] + rng.normal(0, sd_t, n_t)[t]
    y = (rng.uniform(size=p.size) < special.expit(eta)).astype(float)
    return y, X, p, t


def test_it_reduces_to_ordinary_logistic_regression_without_random_effects():
    # With no between-participant or between-trial variation the estimated SDs collapse towards
    # 0 and the fixed effects equal statsmodels' GLM (an independent maximum-likelihood fit).
    y, X, p, t = _data(0.0, 0.0)
    fit = CrossedLogit(y, X, [p, t]).fit()
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    assert fit.sds.max() < 0.2
    assert fit.beta == pytest.approx(glm.params, abs=0.02)
    assert fit.beta_se == pytest.approx(glm.bse, rel=0.1)


def test_it_recovers_crossed_random_intercepts():
    y, X, p, t = _data(0.8, 0.5, seed=1)
    fit = CrossedLogit(y, X, [p, t]).fit()
    assert fit.converged
    assert fit.beta[1] == pytest.approx(0.8, abs=0.15)
    assert fit.sds[0] == pytest.approx(0.8, abs=0.3)
    assert fit.sds[1] == pytest.approx(0.5, abs=0.25)
    # The marginal (population-averaged) slope of a plain logistic fit is attenuated relative to
    # the conditional slope of the mixed model (Zeger, Liang & Albert 1988).
    glm = sm.GLM(y, X, family=sm.families.Binomial()).fit()
    assert abs(glm.params[1]) < abs(fit.beta[1])


def test_it_builds_the_sd_intervals_at_the_requested_confidence():
    y, X, p, t = _data(0.8, 0.5, seed=1)
    fit = CrossedLogit(y, X, [p, t]).fit()
    wide, narrow = fit.sds_interval(1.96), fit.sds_interval(1.645)
    assert np.isfinite(wide).all()
    assert (wide[:, 0] < narrow[:, 0]).all() and (narrow[:, 1] < wide[:, 1]).all()
    assert (narrow[:, 0] < fit.sds).all() and (fit.sds < narrow[:, 1]).all()
    # On the log scale the interval is symmetric about the estimate.
    assert np.log(narrow).mean(axis=1) == pytest.approx(np.log(fit.sds))


def test_it_reads_an_sd_the_likelihood_barely_determines_as_an_unbounded_interval():
    y, X, p, t = _data(0.8, 0.5, seed=1)
    fit = CrossedLogit(y, X, [p, t]).fit()
    fit.log_sds_se = np.array([fit.log_sds_se[0], 400.0])  # a flat likelihood in sd(trial)
    with np.errstate(over="raise"):  # no overflow warning: inf is the answer
        interval = fit.sds_interval(1.96)
    assert interval[1, 1] == np.inf and interval[1, 0] == pytest.approx(0.0, abs=1e-300)
    assert np.isfinite(interval[0]).all()


def test_it_reports_the_laplace_sds_at_the_reports_confidence():
    from evalsite.reports.analysis.mixed import laplace_model
    from evalsite.reports.analysis.simulate import SimulationSpec, simulate_answers

    answers, _ = simulate_answers(
        SimulationSpec(n_participants=20, trials_per_instrument=8, seed=3)
    )
    at_95, _, _ = laplace_model(answers, 0.95)
    at_80, _, _ = laplace_model(answers, 0.80)
    for term in ("sd(participant)", "sd(trial)"):
        wide, narrow = at_95.set_index("term").loc[term], at_80.set_index("term").loc[term]
        assert wide["estimate"] == narrow["estimate"]
        assert wide["ci_low"] < narrow["ci_low"] <= narrow["estimate"] <= narrow["ci_high"]
        assert narrow["ci_high"] < wide["ci_high"]
