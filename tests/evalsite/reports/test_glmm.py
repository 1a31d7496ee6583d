"""The Laplace crossed-random-intercept logit against independent fits."""

from __future__ import annotations

import numpy as np
import pytest
import statsmodels.api as sm
from scipy import optimize, special

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


def _few_trials(seed: int = 5, n_p: int = 8, n_t: int = 6):
    """A small crossed design, 8 participants x 6 trials, with a trial-level covariate: the few
    trials are what leave the maximum-likelihood trial SD short."""
    rng = np.random.default_rng(seed)
    p, t = (g.ravel() for g in np.meshgrid(np.arange(n_p), np.arange(n_t), indexing="ij"))
    x = rng.uniform(-1, 1, n_t)[t]  # one value per trial
    X = np.column_stack([np.ones_like(x), x])
    eta = 0.2 + 0.5 * x + rng.normal(0, 1.0, n_p)[p] + rng.normal(0, 1.0, n_t)[t]
    y = (rng.uniform(size=p.size) < special.expit(eta)).astype(float)
    return y, X, p, t


def _by_hand(y, X, p, t, restricted: bool, log_sds=None):
    """(sds, beta, beta_se) of the Laplace fit from its definition, with dense matrices: C = [X Z],
    H = C'WC + diag(0, 1/s_p^2, 1/s_t^2) at the joint mode of (beta, u, v) (Newton), criterion
    log p(y | mode) - u'u/2s_p^2 - v'v/2s_t^2 - P log s_p - T log s_t - log|H_R| / 2, where H_R is
    the (u, v) block of H for maximum likelihood and all of H for the restricted likelihood
    (the fixed effects integrated out under a flat prior too). beta_se from diag(H^-1)."""
    k, n_p, n_t = X.shape[1], p.max() + 1, t.max() + 1
    C = np.column_stack([X, np.eye(n_p)[p], np.eye(n_t)[t]])  # (n, k + P + T)

    def mode(theta):
        prec = np.r_[
            np.zeros(k), np.full(n_p, np.exp(-2 * theta[0])), np.full(n_t, np.exp(-2 * theta[1]))
        ]
        b = np.zeros(C.shape[1])
        for _ in range(100):
            mu = special.expit(C @ b)
            H = C.T @ (C * (mu * (1 - mu))[:, None]) + np.diag(prec)
            step = np.linalg.solve(H, C.T @ (y - mu) - prec * b)
            b = b + step
            if np.abs(step).max() < 1e-13:
                break
        eta = C @ b
        penal = np.sum(y * eta - np.logaddexp(0, eta)) - 0.5 * np.sum(prec * b * b)
        block = H if restricted else H[k:, k:]
        crit = penal - n_p * theta[0] - n_t * theta[1] - 0.5 * np.linalg.slogdet(block)[1]
        return b, H, crit

    if log_sds is None:
        options = {"xatol": 1e-9, "fatol": 1e-13, "maxiter": 4000}
        crit = lambda th: -mode(th)[2]  # noqa: E731
        log_sds = optimize.minimize(
            crit, np.log([0.5, 0.5]), method="Nelder-Mead", options=options
        ).x
    b, H, _ = mode(np.asarray(log_sds, float))
    return np.exp(log_sds), b[:k], np.sqrt(np.diag(np.linalg.inv(H))[:k])


@pytest.mark.parametrize("restricted", [False, True])
def test_it_matches_the_laplace_fit_computed_by_hand(restricted):
    y, X, p, t = _few_trials()
    fit = CrossedLogit(y, X, [p, t], restricted=restricted).fit()
    sds, _, _ = _by_hand(y, X, p, t, restricted)
    assert fit.sds == pytest.approx(sds, rel=1e-3)
    # At the fit's SDs the fixed effects and their se are those of the dense Hessian exactly.
    _, beta, se = _by_hand(y, X, p, t, restricted, np.log(fit.sds))
    assert fit.beta == pytest.approx(beta, rel=1e-8)
    assert fit.beta_se == pytest.approx(se, rel=1e-8)


def test_it_widens_the_trial_sd_and_the_se_by_the_restricted_likelihood():
    # Maximum likelihood does not allow for the fixed effects estimated from the same 6 trials,
    # so its trial SD is short (about (T - p) / T of the variance in a linear mixed model);
    # integrating the fixed effects out as well lengthens the SD and with it every se.
    y, X, p, t = _few_trials()
    ml = CrossedLogit(y, X, [p, t], restricted=False).fit()
    reml = CrossedLogit(y, X, [p, t], restricted=True).fit()
    assert reml.sds[1] > ml.sds[1] * 1.05
    assert (reml.beta_se > ml.beta_se).all()
