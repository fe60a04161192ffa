"""A small Gaussian-process regressor for Bayesian optimisation (numpy/scipy only).

* Kernel: Matern 5/2 with one length scale per input dimension (ARD), an
  output scale and a Gaussian noise variance.  Hyperparameters live in log
  space, ``theta = [log l_1 .. log l_D, log s2, log noise]``, and are fitted
  by maximising the log marginal likelihood plus weak log-normal priors
  (analytic gradients, L-BFGS-B, warm starts and random restarts).
* Inputs are features in (roughly) ``[0, 1]^D``; outputs are expected to be
  standardised by the caller (:func:`standardise`).
* :func:`log_h` is ``log(phi(z) + z Phi(z))`` computed without cancellation
  or underflow, so log expected improvement stays finite and informative
  far from the data; :meth:`GP.log_ei` returns it with its gradient.
"""

from __future__ import annotations

import math
import warnings

import numpy as np
from scipy import linalg, optimize, special

__all__ = ["GP", "fit_theta", "log_h", "neg_log_posterior", "standardise"]

_SQRT5 = math.sqrt(5.0)
_LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)
_LOG_PI_2_HALF = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT_EPS = 1.0 / math.sqrt(np.finfo(float).eps)

LOG_LS_BOUNDS = (math.log(5e-3), math.log(1e3))
LOG_S2_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
_NOISE_PRIOR = (math.log(1e-3), 2.0)  # mean and sd of log noise variance
_S2_PRIOR = (0.0, 1.5)  # mean and sd of log output scale


LS_QUAD = 0.0


def ls_prior(dim: int) -> tuple[float, float]:
    """Mean and sd of the log-normal prior on length scales: wider spaces get longer scales."""
    return math.sqrt(2.0) + 0.5 * math.log(dim), math.sqrt(3.0)


# -- the kernel -------------------------------------------------------------------------


def _sqdist(a: np.ndarray, b: np.ndarray, inv_ls: np.ndarray) -> np.ndarray:
    """Squared scaled distances between the rows of ``a`` and ``b``."""
    a = a * inv_ls
    b = b * inv_ls
    d2 = np.sum(a * a, axis=1)[:, None] + np.sum(b * b, axis=1)[None, :] - 2.0 * (a @ b.T)
    return np.maximum(d2, 0.0)


def _matern(d2: np.ndarray, s2: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel values and ``s2 * 5/3 * (1 + sqrt5 r) exp(-sqrt5 r)`` (the factor of every derivative)."""
    r = np.sqrt(d2)
    e = np.exp(-_SQRT5 * r)
    poly = 1.0 + _SQRT5 * r
    k = s2 * (poly + (5.0 / 3.0) * d2) * e
    g = s2 * (5.0 / 3.0) * poly * e
    return k, g


def _cholesky(k: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding jitter when ``k`` is numerically singular."""
    jitter = 0.0
    scale = float(np.mean(np.diag(k)))
    for _ in range(8):
        try:
            return linalg.cholesky(k + jitter * np.eye(len(k)), lower=True, check_finite=False)
        except linalg.LinAlgError:
            jitter = scale * 1e-9 if jitter == 0.0 else jitter * 10.0
    raise linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


# -- fitting -------------------------------------------------------------------------------


def neg_log_posterior(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient in ``theta``."""
    n, dim = x.shape
    log_ls, log_s2, log_noise = theta[:dim], theta[dim], theta[dim + 1]
    inv_ls = np.exp(-log_ls)
    s2, noise = math.exp(log_s2), math.exp(log_noise)
    kf, g = _matern(_sqdist(x, x, inv_ls), s2)
    k = kf + noise * np.eye(n)
    try:
        chol = linalg.cholesky(k, lower=True, check_finite=False)
    except linalg.LinAlgError:
        return 1e25, np.zeros_like(theta)
    alpha = linalg.cho_solve((chol, True), y, check_finite=False)
    nll = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(chol)))) + n * _LOG_2PI_HALF
    k_inv = linalg.cho_solve((chol, True), np.eye(n), check_finite=False)
    w = np.outer(alpha, alpha) - k_inv
    # d nll / d log l_j = -1/2 sum_ab W_ab g_ab (x_aj - x_bj)^2 / l_j^2
    m = w * g
    rows = m.sum(axis=1)
    xs = x * inv_ls
    quad = 2.0 * (rows @ (xs * xs)) - 2.0 * np.sum(xs * (m @ xs), axis=0)
    grad = np.empty_like(theta)
    grad[:dim] = -0.5 * quad
    grad[dim] = -0.5 * float(np.sum(w * kf))
    grad[dim + 1] = -0.5 * noise * float(np.trace(w))
    # Priors (normal in log space).
    if LS_QUAD:
        c = LS_QUAD
        e2, em2 = np.exp(2 * log_ls), np.exp(-2 * log_ls)
        nll += c * float(np.sum(e2 + em2))
        grad[:dim] += 2 * c * (e2 - em2)
    else:
        mu, sd = ls_prior(dim)
        nll += float(np.sum((log_ls - mu) ** 2)) / (2 * sd * sd)
        grad[:dim] += (log_ls - mu) / (sd * sd)
    mu, sd = _S2_PRIOR
    nll += (log_s2 - mu) ** 2 / (2 * sd * sd)
    grad[dim] += (log_s2 - mu) / (sd * sd)
    mu, sd = _NOISE_PRIOR
    nll += (log_noise - mu) ** 2 / (2 * sd * sd)
    grad[dim + 1] += (log_noise - mu) / (sd * sd)
    return nll, grad


def default_theta(dim: int) -> np.ndarray:
    """The prior's mode: where a fit with no warm start begins."""
    return np.concatenate([np.full(dim, ls_prior(dim)[0]), [_S2_PRIOR[0], _NOISE_PRIOR[0]]])


def _bounds(dim: int) -> list[tuple[float, float]]:
    return [LOG_LS_BOUNDS] * dim + [LOG_S2_BOUNDS, LOG_NOISE_BOUNDS]


def fit_theta(
    x: np.ndarray,
    y: np.ndarray,
    warm: np.ndarray | None,
    rng: np.random.Generator,
    *,
    draws: int = 4,
    runs: int = 2,
    maxiter: int = 200,
) -> np.ndarray:
    """Hyperparameters maximising the posterior.

    The pool of starting points is the warm start (the last fit, if any),
    the prior's mode, a short-length-scale point and ``draws`` prior draws;
    each is scored with one evaluation, and L-BFGS-B runs from the warm start
    and the best others, ``runs`` in all.  A warm start alone would stay in
    the basin of its first fit forever.
    """
    dim = x.shape[1]
    bounds = _bounds(dim)
    lo = np.array([b[0] for b in bounds])
    hi = np.array([b[1] for b in bounds])
    mu, sd = ls_prior(dim)
    pool = [default_theta(dim)]
    short = default_theta(dim)
    short[:dim] = math.log(0.2)
    pool.append(short)
    for _ in range(draws):
        t = default_theta(dim)
        t[:dim] = rng.normal(mu, sd, dim)
        t[dim] += rng.normal(0.0, 0.5)
        pool.append(t)
    pool = [np.clip(t, lo, hi) for t in pool]
    scores = [neg_log_posterior(t, x, y)[0] for t in pool]
    order = np.argsort(scores, kind="stable")
    starts = [np.clip(warm, lo, hi)] if warm is not None else []
    starts += [pool[i] for i in order[: max(runs - len(starts), 0)]]
    best_theta, best_value = starts[0], math.inf
    for start in starts:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            res = optimize.minimize(
                neg_log_posterior,
                start,
                args=(x, y),
                jac=True,
                method="L-BFGS-B",
                bounds=bounds,
                options={"maxiter": maxiter},
            )
        if np.isfinite(res.fun) and res.fun < best_value:
            best_theta, best_value = res.x, float(res.fun)
    return np.clip(best_theta, lo, hi)


# -- outputs --------------------------------------------------------------------------------


# Exponents up to 1 only: a power transform may compress the tail of bad values,
# never the tail of good ones, which is where a minimiser needs resolution.
_YJ_LAMBDAS = np.linspace(-1.99, 1.0, 80)  # 0 is not on this grid


def _yeo_johnson(z: np.ndarray) -> np.ndarray:
    """Yeo-Johnson transform of ``z`` with the exponent of highest likelihood on a grid in (-2, 1]."""
    lam = _YJ_LAMBDAS[:, None]
    pos = z >= 0
    lp = np.log1p(np.abs(z))[None, :]
    t = np.where(pos, np.expm1(lam * lp) / lam, -np.expm1((2.0 - lam) * lp) / (2.0 - lam))
    var = np.var(t, axis=1)
    with np.errstate(divide="ignore"):
        ll = -0.5 * len(z) * np.log(var) + (_YJ_LAMBDAS - 1.0) * float(np.sum(np.sign(z) * lp[0]))
    ll = np.where(np.isfinite(ll) & np.all(np.isfinite(t), axis=1), ll, -np.inf)
    if not np.isfinite(ll).any():
        return z
    return t[int(np.argmax(ll))]


def standardise(y: np.ndarray) -> np.ndarray:
    """Losses made Gaussian-looking: robust centring, a Yeo-Johnson power transform, z-scores.

    The power transform (its exponent chosen by maximum likelihood) tames
    heavy tails and outliers that would otherwise flatten the model where it
    matters, near the best values.  Constant inputs give zeros.
    """
    y = np.asarray(y, dtype=float)
    if len(y) < 2:
        return np.zeros_like(y)
    med = float(np.median(y))
    q75, q25 = np.percentile(y, [75, 25])
    scale = float(q75 - q25) or float(np.std(y))
    if not scale > 0:
        return np.zeros_like(y)
    with np.errstate(over="ignore", invalid="ignore"):
        t = _yeo_johnson((y - med) / scale)
    sd = float(np.std(t))
    if not sd > 0:
        return np.zeros_like(y)
    return (t - float(np.mean(t))) / sd


# -- expected improvement ------------------------------------------------------------------


def _log1mexp(x: np.ndarray) -> np.ndarray:
    """``log(1 - exp(x))`` for ``x < 0``, accurate on both sides of ``-log 2``."""
    return np.where(x > -math.log(2.0), np.log(-np.expm1(x)), np.log1p(-np.exp(x)))


def log_h(z: np.ndarray) -> np.ndarray:
    """``log(phi(z) + z * Phi(z))``, the log of expected improvement per unit of sd.

    Three regimes: the direct formula for ``z > -1``; for moderately
    negative ``z``, ``phi(z) (1 - |z| Phi(z)/phi(z))`` with the ratio through
    ``erfcx``; and its asymptote ``phi(z) / z^2`` far in the tail.
    """
    z = np.asarray(z, dtype=float)
    out = np.empty_like(z)
    upper = z > -1.0
    tail = z < -_INV_SQRT_EPS
    mid = ~upper & ~tail
    zu = z[upper]
    out[upper] = np.log(np.exp(-0.5 * zu * zu - _LOG_2PI_HALF) + zu * special.ndtr(zu))
    zm = z[mid]
    inner = np.log(special.erfcx(-zm / math.sqrt(2.0)) * np.abs(zm)) + _LOG_PI_2_HALF
    out[mid] = -0.5 * zm * zm - _LOG_2PI_HALF + _log1mexp(inner)
    zt = z[tail]
    out[tail] = -0.5 * zt * zt - _LOG_2PI_HALF - 2.0 * np.log(np.abs(zt))
    return out


def _dlog_h(z: np.ndarray, lh: np.ndarray) -> np.ndarray:
    """d log_h / dz = Phi(z) / h(z), formed in logs."""
    return np.exp(special.log_ndtr(z) - lh)


# -- the model ------------------------------------------------------------------------------


class GP:
    """A fitted GP: posterior mean and variance of the latent function, log EI and its gradient."""

    def __init__(self, x: np.ndarray, y: np.ndarray, theta: np.ndarray) -> None:
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.theta = np.asarray(theta, dtype=float)
        dim = self.x.shape[1]
        self.inv_ls = np.exp(-self.theta[:dim])
        self.s2 = math.exp(self.theta[dim])
        self.noise = math.exp(self.theta[dim + 1])
        kf, _ = _matern(_sqdist(self.x, self.x, self.inv_ls), self.s2)
        self.chol = _cholesky(kf + self.noise * np.eye(len(self.x)))
        self.alpha = linalg.cho_solve((self.chol, True), self.y, check_finite=False)

    def with_points(self, x_new: np.ndarray, y_new: np.ndarray) -> GP:
        """The same hyperparameters conditioned on extra (e.g. fantasised) observations."""
        if len(x_new) == 0:
            return self
        return GP(np.vstack([self.x, x_new]), np.concatenate([self.y, y_new]), self.theta)

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (without noise) at the rows of ``z``."""
        k, _ = _matern(_sqdist(z, self.x, self.inv_ls), self.s2)
        mean = k @ self.alpha
        v = linalg.solve_triangular(self.chol, k.T, lower=True, check_finite=False)
        var = np.maximum(self.s2 - np.sum(v * v, axis=0), 1e-12)
        return mean, var

    def log_ei(self, z: np.ndarray, best: float) -> np.ndarray:
        """Log expected improvement below ``best`` (a minimisation) at the rows of ``z``."""
        mean, var = self.predict(z)
        sd = np.sqrt(var)
        return log_h((best - mean) / sd) + np.log(sd)

    def log_ei_grad(self, z: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
        """Log EI and its gradient with respect to each row of ``z``."""
        d2 = _sqdist(z, self.x, self.inv_ls)
        k, g = _matern(d2, self.s2)
        mean = k @ self.alpha
        beta = linalg.cho_solve((self.chol, True), k.T, check_finite=False).T  # K^-1 k*, rows per point
        var_raw = self.s2 - np.sum(k * beta, axis=1)
        var = np.maximum(var_raw, 1e-12)
        sd = np.sqrt(var)
        il2 = self.inv_ls**2
        # dk/dz_j = -g (z_j - x_j) / l_j^2
        ga = g * self.alpha[None, :]
        dmean = -(z * ga.sum(axis=1)[:, None] - ga @ self.x) * il2
        gb = g * beta
        dvar = 2.0 * (z * gb.sum(axis=1)[:, None] - gb @ self.x) * il2
        dvar[var_raw <= 1e-12] = 0.0
        dsd = dvar / (2.0 * sd[:, None])
        u = (best - mean) / sd
        lh = log_h(u)
        value = lh + np.log(sd)
        r = _dlog_h(u, lh)
        du = -(dmean + u[:, None] * dsd) / sd[:, None]
        grad = r[:, None] * du + dsd / sd[:, None]
        return value, grad
