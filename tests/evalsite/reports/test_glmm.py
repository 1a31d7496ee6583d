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
