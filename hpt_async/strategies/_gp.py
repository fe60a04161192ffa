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
from scipy.linalg import lapack

__all__ = ["GP", "fit_theta", "log_h", "neg_log_posterior", "standardise"]

_SQRT5 = math.sqrt(5.0)
_LOG_2PI_HALF = 0.5 * math.log(2.0 * math.pi)
_LOG_PI_2_HALF = 0.5 * math.log(math.pi / 2.0)
_INV_SQRT_EPS = 1.0 / math.sqrt(np.finfo(float).eps)
# Scaled distances are capped here: the kernel is below 1e-255 anyway, and exp() of large
# negative numbers (denormal or zero results) is many times slower than in the normal range.
_R_MAX = 600.0
_BLOCK = 16384  # kernel entries per block when scoring many points

LOG_LS_BOUNDS = (math.log(5e-3), math.log(1e3))
LOG_S2_BOUNDS = (math.log(1e-2), math.log(1e2))
LOG_NOISE_BOUNDS = (math.log(1e-6), math.log(1.0))
_NOISE_PRIOR = (math.log(1e-3), 2.0)  # mean and sd of log noise variance
_S2_PRIOR = (0.0, 1.5)  # mean and sd of log output scale


LS_QUAD = 0.0


def ls_prior(dim: int) -> tuple[float, float]:
    """Mean and sd of the log-normal prior on length scales (in log space), whatever the dimension.

    The median is the width of the unit cube, and 95% of the prior lies
    between 0.14 and 7.  A prior that grows with the dimension (median
    ``exp(sqrt(2)) sqrt(d)``, 10 in six dimensions) lets the first fits, made
    from a handful of points, set a dimension's length scale far beyond the
    box: the model then treats it as irrelevant, the acquisition is flat
    along it and the search stops exploring it.
    """
    return 0.0, 1.0


# -- the kernel -------------------------------------------------------------------------


def _sqdist_scaled(a: np.ndarray, a_sq: np.ndarray, b: np.ndarray, b_sq: np.ndarray) -> np.ndarray:
    """Squared distances between rows of already scaled ``a`` and ``b`` (``*_sq``: their squared norms)."""
    d2 = a @ b.T
    d2 *= -2.0
    d2 += a_sq[:, None]
    d2 += b_sq[None, :]
    return np.maximum(d2, 0.0, out=d2)


def _sqdist(a: np.ndarray, b: np.ndarray, inv_ls: np.ndarray) -> np.ndarray:
    """Squared scaled distances between the rows of ``a`` and ``b``."""
    a = a * inv_ls
    b = b * inv_ls
    return _sqdist_scaled(a, np.einsum("ij,ij->i", a, a), b, np.einsum("ij,ij->i", b, b))


def _matern_k(d2: np.ndarray, s2: float) -> np.ndarray:
    """Kernel values ``s2 (1 + sqrt5 r + 5/3 r^2) exp(-sqrt5 r)``, computed in the buffer ``d2``."""
    r = np.sqrt(d2, out=d2)
    r *= _SQRT5  # r is now sqrt5 * distance
    np.minimum(r, _R_MAX, out=r)
    e = np.exp(-r)
    k = r * r
    k *= 1.0 / 3.0
    k += r
    k += 1.0
    k *= e
    if s2 != 1.0:
        k *= s2
    return k


def _matern(d2: np.ndarray, s2: float) -> tuple[np.ndarray, np.ndarray]:
    """Kernel values and ``s2 * 5/3 * (1 + sqrt5 r) exp(-sqrt5 r)`` (the factor of every derivative)."""
    r5 = np.sqrt(d2)
    r5 *= _SQRT5
    np.minimum(r5, _R_MAX, out=r5)
    e = np.exp(-r5)
    e *= s2
    poly = r5 + 1.0
    g = poly * e
    k = r5 * r5
    k *= 1.0 / 3.0
    k += poly
    k *= e
    g *= 5.0 / 3.0
    return k, g


def _potrf(k: np.ndarray) -> np.ndarray | None:
    """Lower Cholesky factor of ``k``, or None when it is not numerically positive definite."""
    c, info = lapack.dpotrf(k, lower=1, clean=1)
    return c if info == 0 else None


def _cholesky(k: np.ndarray) -> np.ndarray:
    """Lower Cholesky factor, adding jitter when ``k`` is numerically singular."""
    c = _potrf(k)
    if c is not None:
        return c
    scale = float(np.mean(np.diag(k)))
    eye = np.eye(len(k))
    jitter = scale * 1e-9
    for _ in range(8):
        c = _potrf(k + jitter * eye)
        if c is not None:
            return c
        jitter *= 10.0
    raise linalg.LinAlgError("kernel matrix is not positive definite even with jitter")


def _chol_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``K^-1 b`` from the lower Cholesky factor of ``K``."""
    x, info = lapack.dpotrs(chol, b, lower=1)
    if info != 0:  # pragma: no cover - only for malformed arguments
        raise linalg.LinAlgError(f"dpotrs failed ({info})")
    return x


def _tri_solve(chol: np.ndarray, b: np.ndarray) -> np.ndarray:
    """``L^-1 b`` for the lower triangular ``L``."""
    x, info = lapack.dtrtrs(chol, b, lower=1)
    if info != 0:  # pragma: no cover - only for malformed arguments
        raise linalg.LinAlgError(f"dtrtrs failed ({info})")
    return x


def extend_cholesky(chol: np.ndarray, k12: np.ndarray, k22: np.ndarray) -> np.ndarray | None:
    """The Cholesky factor of ``[[K11, K12], [K12^T, K22]]`` from that of ``K11``, in O(n^2 m).

    Returns None when the new block is not numerically positive definite
    (the caller then factors the whole matrix, with jitter if need be).
    """
    n, m = chol.shape[0], k22.shape[0]
    l21t = _tri_solve(chol, k12)  # L11^-1 K12, n x m
    schur = k22 - l21t.T @ l21t
    l22 = _potrf(schur)
    if l22 is None:
        return None
    out = np.zeros((n + m, n + m))
    out[:n, :n] = chol
    out[n:, :n] = l21t.T
    out[n:, n:] = l22
    return out


# -- fitting -------------------------------------------------------------------------------


def neg_log_posterior(theta: np.ndarray, x: np.ndarray, y: np.ndarray) -> tuple[float, np.ndarray]:
    """Negative log marginal likelihood plus negative log prior, and its gradient in ``theta``."""
    n, dim = x.shape
    log_ls, log_s2, log_noise = theta[:dim], theta[dim], theta[dim + 1]
    inv_ls = np.exp(-log_ls)
    s2, noise = math.exp(log_s2), math.exp(log_noise)
    xs = x * inv_ls
    xs_sq = np.einsum("ij,ij->i", xs, xs)
    kf, g = _matern(_sqdist_scaled(xs, xs_sq, xs, xs_sq), s2)
    k = kf.copy()
    k.flat[:: n + 1] += noise
    chol = _potrf(k)
    if chol is None:
        return 1e25, np.zeros_like(theta)
    alpha = _chol_solve(chol, y)
    nll = 0.5 * float(y @ alpha) + float(np.sum(np.log(np.diag(chol)))) + n * _LOG_2PI_HALF
    k_inv, info = lapack.dpotri(chol, lower=1)  # the lower triangle of K^-1 (the upper one stays zero)
    if info != 0:
        return 1e25, np.zeros_like(theta)
    k_inv += np.tril(k_inv, -1).T
    w = np.outer(alpha, alpha)
    w -= k_inv
    # d nll / d log l_j = -1/2 sum_ab W_ab g_ab (x_aj - x_bj)^2 / l_j^2
    m = w * g
    rows = m.sum(axis=1)
    quad = 2.0 * (rows @ (xs * xs)) - 2.0 * np.einsum("ij,ij->j", xs, m @ xs)
    grad = np.empty_like(theta)
    grad[:dim] = -0.5 * quad
    grad[dim] = -0.5 * float(np.vdot(w, kf))
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
    the basin of its first fit forever; ``runs=1`` with a warm start is the
    cheap local refresh (the pool is then not scored).
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
    starts = [np.clip(warm, lo, hi)] if warm is not None else []
    if runs > len(starts):
        scores = [neg_log_posterior(t, x, y)[0] for t in pool]
        order = np.argsort(scores, kind="stable")
        starts += [pool[i] for i in order[: runs - len(starts)]]
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
                # Hyperparameters to six digits of the log posterior: enough for a model of the losses.
                options={"maxiter": maxiter, "ftol": 1e-6},
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
    upper = z > -1.0
    if upper.all():  # the usual case near an optimum of EI: the direct formula only
        return np.log(np.exp(-0.5 * z * z - _LOG_2PI_HALF) + z * special.ndtr(z))
    out = np.empty_like(z)
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


def log_h_dense(z: np.ndarray) -> np.ndarray:
    """:func:`log_h` computed over the whole array, each regime's formula on every element (no masking).

    The same values as :func:`log_h` (the same formula in each regime); it
    costs fewer array operations when most of a small array lies below
    ``-1``, as in a greedy batch's loop, where the chosen points' neighbours
    have lost most of their variance.
    """
    z = np.asarray(z, dtype=float)
    with np.errstate(all="ignore"):
        zu = np.maximum(z, -1.0)
        upper = np.log(np.exp(-0.5 * zu * zu - _LOG_2PI_HALF) + zu * special.ndtr(zu))
        zm = np.minimum(z, -1.0)
        inner = np.log(special.erfcx(-zm / math.sqrt(2.0)) * -zm) + _LOG_PI_2_HALF
        out = np.where(z > -1.0, upper, -0.5 * zm * zm - _LOG_2PI_HALF + _log1mexp(inner))
        tail = z < -_INV_SQRT_EPS
        if tail.any():
            zt = z[tail]
            out[tail] = -0.5 * zt * zt - _LOG_2PI_HALF - 2.0 * np.log(np.abs(zt))
    return out


def _dlog_h(z: np.ndarray, lh: np.ndarray) -> np.ndarray:
    """d log_h / dz = Phi(z) / h(z), formed in logs."""
    return np.exp(special.log_ndtr(z) - lh)


# -- the model ------------------------------------------------------------------------------


class GP:
    """A fitted GP: posterior mean and variance of the latent function, log EI and its gradient.

    ``chol`` may pass the Cholesky factor of the kernel matrix of ``x`` under
    ``theta`` (noise included) when the caller already has it;
    :meth:`update` and :meth:`with_points` obtain it incrementally.
    """

    def __init__(self, x: np.ndarray, y: np.ndarray, theta: np.ndarray, *, chol: np.ndarray | None = None) -> None:
        self.x = np.asarray(x, dtype=float)
        self.y = np.asarray(y, dtype=float)
        self.theta = np.asarray(theta, dtype=float)
        dim = self.x.shape[1]
        self.inv_ls = np.exp(-self.theta[:dim])
        self.s2 = math.exp(self.theta[dim])
        self.noise = math.exp(self.theta[dim + 1])
        self._xs = self.x * self.inv_ls
        self._xs_sq = np.einsum("ij,ij->i", self._xs, self._xs)
        if chol is None:
            k = self._cross(self.x)
            k.flat[:: len(k) + 1] += self.noise
            chol = _cholesky(k)
        self.chol = chol
        self.alpha = _chol_solve(self.chol, self.y)
        self._chol_inv: np.ndarray | None = None  # L^-1 (and its transpose), made at the first prediction
        self._chol_inv_t: np.ndarray | None = None

    def _cross(self, z: np.ndarray) -> np.ndarray:
        """Kernel values between the rows of ``z`` and the training inputs."""
        zs = z * self.inv_ls
        return _matern_k(_sqdist_scaled(zs, np.einsum("ij,ij->i", zs, zs), self._xs, self._xs_sq), self.s2)

    def update(self, x: np.ndarray, y: np.ndarray) -> GP:
        """This GP's hyperparameters on the data ``x``, ``y``.

        When the rows of ``x`` begin with this GP's inputs, the Cholesky
        factor is extended by the new rows (O(n^2 m) rather than a fresh
        O(n^3) factorisation); otherwise it is computed afresh.  Either way
        the result equals ``GP(x, y, self.theta)``.
        """
        x = np.asarray(x, dtype=float)
        n = len(self.x)
        if len(x) >= n and x.shape[1] == self.x.shape[1] and np.array_equal(x[:n], self.x):
            if len(x) == n:
                return GP(x, y, self.theta, chol=self.chol)
            new = x[n:]
            k12 = self._cross(new).T
            new_s = new * self.inv_ls
            sq = np.einsum("ij,ij->i", new_s, new_s)
            k22 = _matern_k(_sqdist_scaled(new_s, sq, new_s, sq), self.s2)
            k22.flat[:: len(new) + 1] += self.noise
            chol = extend_cholesky(self.chol, k12, k22)
            if chol is not None:
                return GP(x, y, self.theta, chol=chol)
        return GP(x, y, self.theta)

    def with_points(self, x_new: np.ndarray, y_new: np.ndarray) -> GP:
        """The same hyperparameters conditioned on extra (e.g. fantasised) observations."""
        if len(x_new) == 0:
            return self
        return self.update(np.vstack([self.x, x_new]), np.concatenate([self.y, y_new]))

    def _whitened(self, k: np.ndarray) -> np.ndarray:
        """The rows of ``L^-1 k^T``, one per row of the cross-kernel ``k`` (``L^-1`` made at the first call)."""
        if self._chol_inv is None:
            inv, info = lapack.dtrtri(self.chol, lower=1)
            self._chol_inv_t = np.ascontiguousarray(inv.T) if info == 0 else None
            self._chol_inv = inv if info == 0 else np.empty(0)
        if self._chol_inv_t is not None:
            return k @ self._chol_inv_t  # a matrix product beats a triangular solve here
        return _tri_solve(self.chol, k.T).T  # pragma: no cover - dtrtri fails only on a singular factor

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance (without noise) at the rows of ``z``."""
        k = self._cross(z)
        mean = k @ self.alpha
        v = self._whitened(k)
        var = np.einsum("ij,ij->i", v, v)
        np.subtract(self.s2, var, out=var)
        return mean, np.maximum(var, 1e-12, out=var)

    def joint(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean at the rows of ``z`` and their joint covariance (without noise)."""
        k = self._cross(z)
        mean = k @ self.alpha
        v = self._whitened(k)
        zs = z * self.inv_ls
        sq = np.einsum("ij,ij->i", zs, zs)
        cov = _matern_k(_sqdist_scaled(zs, sq, zs, sq), self.s2)
        cov -= v @ v.T
        return mean, cov

    def log_ei(self, z: np.ndarray, best: float) -> np.ndarray:
        """Log expected improvement below ``best`` (a minimisation) at the rows of ``z``.

        Many rows are scored in blocks, so that the temporaries stay small
        (cache-sized and reused by the allocator instead of fresh pages).
        """
        rows = max(64, _BLOCK // max(len(self.x), 1))
        if len(z) <= rows:
            mean, var = self.predict(z)
            sd = np.sqrt(var)
            return log_h((best - mean) / sd) + np.log(sd)
        return np.concatenate([self.log_ei(z[i : i + rows], best) for i in range(0, len(z), rows)])

    def predict_grad(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Posterior mean and variance at the rows of ``z`` and their gradients with respect to each row.

        Returns ``mean`` and ``var`` (one value per row, the variance floored
        at 1e-12 as in :meth:`predict`) and ``dmean``, ``dvar`` (one row of
        partial derivatives per row of ``z``; ``dvar`` is zero where the
        floor applies).
        """
        zs = z * self.inv_ls
        k, g = _matern(_sqdist_scaled(zs, np.einsum("ij,ij->i", zs, zs), self._xs, self._xs_sq), self.s2)
        mean = k @ self.alpha
        beta = _chol_solve(self.chol, k.T)  # K^-1 k*, one column per point
        var_raw = self.s2 - np.einsum("ij,ji->i", k, beta)
        # dk/dz_j = -g (z_j - x_j) / l_j^2
        both = np.concatenate([g * self.alpha, -2.0 * (g * beta.T)])  # (2m) x n
        proj = both @ self.x
        sums = both.sum(axis=1)
        il2 = self.inv_ls * self.inv_ls
        m = len(z)
        dmean = -(z * sums[:m, None] - proj[:m]) * il2
        dvar = -(z * sums[m:, None] - proj[m:]) * il2
        dvar[var_raw <= 1e-12] = 0.0
        return mean, np.maximum(var_raw, 1e-12), dmean, dvar

    def log_ei_grad(self, z: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
        """Log EI and its gradient with respect to each row of ``z``."""
        mean, var, dmean, dvar = self.predict_grad(z)
        sd = np.sqrt(var)
        dsd = dvar / (2.0 * sd[:, None])
        u = (best - mean) / sd
        lh = log_h(u)
        value = lh + np.log(sd)
        r = _dlog_h(u, lh)
        du = -(dmean + u[:, None] * dsd) / sd[:, None]
        grad = r[:, None] * du + dsd / sd[:, None]
        return value, grad
