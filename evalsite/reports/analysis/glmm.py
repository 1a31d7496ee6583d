"""A fast logistic mixed model with crossed random intercepts, fitted by the Laplace
approximation (the approach of lme4's glmer, Bates et al. 2015, JSS 67(1)): for given random-effect
SDs, penalised IRLS finds the joint mode of the fixed effects and the random effects; the SDs
maximise the Laplace-approximated marginal likelihood.

statsmodels' BinomialBayesMixedGLM fits the same model by variational Bayes, but costs about 14
microseconds per answer per gradient over some 160 gradients, i.e. minutes at 100,000 answers,
and its mean-field posterior sd is far below the sampling se, so the report gives it no tests
(mixed.py). This fit takes seconds there, agrees with its estimates on smaller data (tested), and
carries the report's model-based tests.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from scipy import linalg, optimize, sparse, special

# Where the optimiser looks for each log SD: SDs from exp(-7) = 0.0009 to exp(3) = 20 (logit scale).
LOG_SD_BOUNDS = (-7.0, 3.0)


@dataclass
class LaplaceFit:
    beta: np.ndarray  # (p,) fixed effects
    beta_se: np.ndarray  # (p,)
    beta_cov: np.ndarray  # (p, p) covariance of the fixed effects (inverse curvature at the mode)
    sds: np.ndarray  # (G,) random-intercept SD per grouping factor
    log_sds_se: np.ndarray  # (G,) Wald SE of log(SD); NaN where the SD sits at its bound
    loglik: float
    converged: bool

    def sds_interval(self, z: float = 1.96) -> np.ndarray:
        """(G, 2) Wald interval of each SD at normal quantile `z`, built on the log-SD scale and
        mapped back: never below 0; its upper end is inf where the likelihood is so flat in the SD
        that exp overflows (no upper bound), NaN where the SD sits at its bound."""
        log_sds = np.log(self.sds)
        with np.errstate(over="ignore"):
            return np.exp(np.column_stack([log_sds - z * self.log_sds_se,
                                           log_sds + z * self.log_sds_se]))  # fmt: skip


def _indicator(codes: np.ndarray, n_levels: int) -> sparse.csr_matrix:
    n = len(codes)
    return sparse.csr_matrix((np.ones(n), (np.arange(n), codes)), shape=(n, n_levels))


class CrossedLogit:
    """y ~ Bernoulli(expit(X beta + u[g1] + v[g2])), u ~ N(0, s1^2), v ~ N(0, s2^2).

    The Newton systems are solved by eliminating the larger factor's effects, whose block of the
    Hessian is diagonal (Schur complement): the dense work is (p + levels of the smaller factor)^2
    times the larger factor's levels, not (p + all levels)^3.

    `restricted` maximises the restricted (REML-type) Laplace likelihood instead: the fixed
    effects integrated out under a flat prior as well, i.e. log|H| over the fixed and the random
    effects (the "integrated likelihood" REML of Maestrini, Hui & Welsh 2024, arXiv 2402.12719;
    glmmTMB's REML = TRUE, spaMM's "REML"). It lengthens the trial SD that maximum likelihood
    leaves short with few trials, but measured it overshoots the contrasts' level
    (docs/statistics.md), so the report keeps maximum likelihood, as lme4's glmer does.
    """

    def __init__(
        self, y: np.ndarray, X: np.ndarray, groups: list[np.ndarray], restricted: bool = False
    ):
        if len(groups) != 2:
            raise ValueError("CrossedLogit handles exactly two crossed grouping factors")
        self.y, self.X = np.asarray(y, float), np.asarray(X, float)
        codes = [np.unique(g, return_inverse=True)[1] for g in groups]
        sizes = [int(c.max()) + 1 for c in codes]
        # Factor "a" (fewer levels) stays dense; factor "t" (more levels) is eliminated.
        self.swap = sizes[0] > sizes[1]
        (ca, cb), (na, nb) = (codes[::-1], sizes[::-1]) if self.swap else (codes, sizes)
        self.ca, self.cb, self.na, self.nb = ca, cb, na, nb
        self.Za, self.Zb = _indicator(ca, na), _indicator(cb, nb)
        self.ZaT, self.ZbT = self.Za.T.tocsr(), self.Zb.T.tocsr()
        self.p = self.X.shape[1]
        self.restricted = restricted
        self.state = np.zeros(self.p + na + nb)

    def _blocks(self, w: np.ndarray, prec_a: float, prec_b: float):
        """Hessian of the negative penalised log-likelihood as (A, B, D): A dense over
        (beta, a-effects), B coupling to b-effects, D the diagonal of the b-block."""
        p, na = self.p, self.na
        XW = self.X * w[:, None]  # (n, p)
        A = np.empty((p + na, p + na))
        A[:p, :p] = self.X.T @ XW
        ZaWX = self.ZaT @ XW  # (na, p)
        A[p:, :p], A[:p, p:] = ZaWX, ZaWX.T
        A[p:, p:] = np.diag(np.bincount(self.ca, w, na) + prec_a)
        B = np.empty((p + na, self.nb))
        B[:p] = (self.ZbT @ XW).T
        B[p:] = (self.ZaT @ sparse.diags(w) @ self.Zb).toarray()
        D = np.bincount(self.cb, w, self.nb) + prec_b
        return A, B, D

    def _mode(self, log_sds: np.ndarray, iters: int = 50):
        """Penalised IRLS at the given SDs; returns (state, penalised loglik, loglik, logdet)."""
        sd = np.exp(log_sds[::-1] if self.swap else log_sds)
        prec_a, prec_b = sd[0] ** -2, sd[1] ** -2
        p, na = self.p, self.na
        x = self.state.copy()
        for _ in range(iters + 1):
            eta = self.X @ x[:p] + x[p : p + na][self.ca] + x[p + na :][self.cb]
            mu = special.expit(eta)
            A, B, D = self._blocks(mu * (1 - mu), prec_a, prec_b)
            r = self.y - mu
            g_a = np.r_[self.X.T @ r, np.bincount(self.ca, r, na) - prec_a * x[p : p + na]]
            g_b = np.bincount(self.cb, r, self.nb) - prec_b * x[p + na :]
            BD = B / D  # (p + na, nb)
            S = A - BD @ B.T
            chol = linalg.cho_factor(S)
            step_a = linalg.cho_solve(chol, g_a - BD @ g_b)
            step_b = (g_b - B.T @ step_a) / D
            if _ == iters or max(np.max(np.abs(step_a)), np.max(np.abs(step_b))) < 1e-9:
                break
            x = x + np.r_[step_a, step_b]
        self.state = x
        loglik = float(np.sum(self.y * eta - np.logaddexp(0, eta)))
        u, v = x[p : p + na], x[p + na :]
        penal = loglik - 0.5 * (prec_a * float(u @ u) + prec_b * float(v @ v))
        # log|H| over the random effects only = log|D| + log|S_aa| (Schur on the b-block); for
        # the restricted likelihood over the fixed effects too = log|D| + log|S|, whose Cholesky
        # factor is the last Newton step's, taken at this very mode.
        factor = chol[0] if self.restricted else linalg.cholesky(A[p:, p:] - BD[p:] @ B[p:].T)
        logdet = float(np.sum(np.log(D))) + 2 * float(np.sum(np.log(np.diag(factor))))
        logprec = na * np.log(prec_a) + self.nb * np.log(prec_b)
        return x, penal, loglik, logdet, logprec, (A, B, D)

    def laplace(self, log_sds: np.ndarray) -> float:
        """Laplace approximation of the marginal log-likelihood (fixed effects at the joint mode,
        random effects integrated out), or of the restricted one (both integrated out, up to a
        constant)."""
        _, penal, _, logdet, logprec, _ = self._mode(np.asarray(log_sds, float))
        return penal + 0.5 * logprec - 0.5 * logdet

    def fit(self) -> LaplaceFit:
        f = lambda t: -self.laplace(t)  # noqa: E731
        res = optimize.minimize(
            f, np.full(2, np.log(0.5)), method="L-BFGS-B", bounds=[LOG_SD_BOUNDS] * 2
        )
        theta = res.x
        x, _, loglik, _, _, (A, B, D) = self._mode(theta)
        # Fixed-effect covariance: the beta block of the inverse Hessian = inverse of the Schur
        # complement of everything else, computed from S = A - B D^-1 B^T.
        S = A - (B / D) @ B.T
        beta_cov = linalg.inv(S)[: self.p, : self.p]
        return LaplaceFit(
            beta=x[: self.p],
            beta_se=np.sqrt(np.diag(beta_cov)),
            beta_cov=beta_cov,
            sds=np.exp(theta),
            log_sds_se=_log_sd_se(f, theta),
            loglik=loglik,
            converged=bool(res.success),
        )


def _log_sd_se(f, theta: np.ndarray, h: float = 1e-3) -> np.ndarray:
    """Wald SEs on the log-SD scale from a central-difference Hessian of -log L (2 x 2)."""
    e = np.eye(2) * h
    f0 = f(theta)
    H = np.empty((2, 2))
    for i in range(2):
        H[i, i] = (f(theta + e[i]) - 2 * f0 + f(theta - e[i])) / h**2
    H[0, 1] = H[1, 0] = (
        f(theta + e[0] + e[1])
        - f(theta + e[0] - e[1])
        - f(theta - e[0] + e[1])
        + f(theta - e[0] - e[1])
    ) / (4 * h * h)
    try:
        with np.errstate(invalid="ignore"):  # an SD at its bound has no curvature: NaN interval
            return np.sqrt(np.diag(linalg.inv(H)))
    except (linalg.LinAlgError, ValueError):
        return np.full(2, np.nan)
