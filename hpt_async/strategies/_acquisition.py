"""Maximising log expected improvement over a (mixed, conditional) search space.

Candidates are scored in one vectorised pass: uniform points over the unit
cube plus perturbations of the best observed points (numeric coordinates
jittered at several scales, Choice values occasionally switched).  The best
few start a batched L-BFGS-B over their active numeric features (Choice and
inactive features held fixed), with the analytic gradient of log EI.  Every
point is rounded to the space's values (Int, stepped Float, Choice) before
its final score, so what is returned is exactly what will be evaluated.

:func:`select_batch` chooses several points at once (one per free worker)
with a kriging believer over a candidate pool: the pool is scored once,
the best few are refined, and points are then taken greedily, each one
conditioning the model on its believed value (the posterior mean there,
never better than the incumbent) before the next is chosen.  The
conditioning is a rank-one update of the pool's posterior mean and
variance (a pivoted partial Cholesky of the pool's joint covariance), so a
batch of ``k`` points from a pool of ``m`` costs ``O(m^2 n + m k^2)`` rather
than ``k`` acquisitions.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import numpy as np
from scipy import optimize

from ._encoding import Encoder
from ._gp import GP, _cholesky, _tri_solve, log_h_dense

__all__ = ["ascend", "maximise_log_ei", "select_batch"]

_LOCAL_SCALES = np.array([0.01, 0.05, 0.15])


def _local_candidates(enc: Encoder, anchors: np.ndarray, count: int, rng: np.random.Generator) -> np.ndarray:
    """Unit points near ``anchors`` (unit coordinates, NaN for inactive)."""
    if count <= 0 or len(anchors) == 0:
        return np.empty((0, enc.n_params))
    rows = anchors[rng.integers(0, len(anchors), count)]
    rows = np.where(np.isnan(rows), rng.random(rows.shape), rows)
    scales = _LOCAL_SCALES[rng.integers(0, len(_LOCAL_SCALES), count)][:, None]
    moved = rows + rng.normal(0.0, 1.0, rows.shape) * scales
    out = np.clip(moved, 0.0, 1.0)
    # Choice values: switch each to a random value with probability 1 / params.
    for p in enc.params:
        if p.kind == "choice":
            flip = rng.random(count) < 1.0 / max(enc.n_params, 2)
            out[:, p.index] = np.where(flip, rng.random(count), rows[:, p.index])
    return out


def _refine(gp: GP, enc: Encoder, z0: np.ndarray, s0: np.ndarray, best: float, maxiter: int) -> np.ndarray:
    """Local ascent of log EI from the feature rows ``z0`` (snapped unit rows ``s0``); returns features."""
    return ascend(lambda z: gp.log_ei_grad(z, best), enc, z0, s0, maxiter)


def ascend(
    value_grad: Callable[[np.ndarray], tuple[np.ndarray, np.ndarray]],
    enc: Encoder,
    z0: np.ndarray,
    s0: np.ndarray,
    maxiter: int,
    ftol: float = 1e-3,
) -> np.ndarray:
    """Local ascent (L-BFGS-B) of an acquisition from the feature rows ``z0`` (snapped unit rows ``s0``).

    ``value_grad(z)`` gives the acquisition of each row of ``z`` and its
    gradient in the features; the rows climb together (their sum is
    maximised) over their active numeric features, Choice and inactive
    features held fixed, for at most ``maxiter`` iterations or until a step
    gains less than ``ftol`` of the sum (relative).  Returns the features
    reached.
    """
    if len(enc.numeric_cols) == 0:
        return z0
    free = np.zeros_like(z0, dtype=bool)
    cols = enc.numeric_cols
    params_of_cols = enc.col_param[cols]
    free[:, cols] = ~np.isnan(s0[:, params_of_cols])
    if not free.any():
        return z0

    def objective(v: np.ndarray) -> tuple[float, np.ndarray]:
        z = z0.copy()
        z[free] = v
        value, grad = value_grad(z)
        return -float(np.sum(value)), -grad[free]

    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        res = optimize.minimize(
            objective,
            z0[free],
            jac=True,
            method="L-BFGS-B",
            bounds=[(0.0, 1.0)] * int(free.sum()),
            # By default, stop once the summed log EI gains less than 1e-3 of itself in a step (a few
            # thousandths per start): finer precision changes nothing worth the evaluations, except in
            # the end game of one constrained objective (``_ehvi.select``'s ``warm`` start).
            options={"maxiter": maxiter, "ftol": ftol},
        )
    z = z0.copy()
    z[free] = np.clip(res.x, 0.0, 1.0) if np.all(np.isfinite(res.x)) else z0[free]
    return z


def _distinct(z: np.ndarray, order: np.ndarray, count: int) -> np.ndarray:
    """The first ``count`` indices of ``order`` whose feature rows differ (discrete spaces repeat rows)."""
    if count <= 0 or len(order) == 0:
        return order[:0]
    _, first = np.unique(z[order], axis=0, return_index=True)
    return order[np.sort(first)][:count]


def maximise_log_ei(
    gp: GP,
    enc: Encoder,
    best: float,
    anchors: np.ndarray,
    rng: np.random.Generator,
    *,
    candidates: int = 1024,
    local: int = 256,
    starts: int = 5,
    maxiter: int = 50,
) -> tuple[np.ndarray, float]:
    """The snapped unit point (NaN for inactive) with the highest log EI found, and that value."""
    u = np.vstack([rng.random((candidates, enc.n_params)), _local_candidates(enc, anchors, local, rng)])
    s, _ = enc.snap(u)
    z = enc.features(s)
    scores = gp.log_ei(z, best)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    # Only the head of the ranking is needed: partition, then sort the head.
    head = min(len(scores), max(4 * starts, 1))
    part = np.argpartition(-scores, head - 1)[:head] if head < len(scores) else np.arange(len(scores))
    order = part[np.lexsort((part, -scores[part]))]
    top = _distinct(z, order, starts)
    if len(top) == 0:
        return s[order[0]], float(scores[order[0]])
    refined = _refine(gp, enc, z[top], s[top], best, maxiter)
    s_ref, _ = enc.snap(enc.unit_of_features(refined))
    z_ref = enc.features(s_ref)
    ref_scores = gp.log_ei(z_ref, best)
    ref_scores = np.where(np.isfinite(ref_scores), ref_scores, -np.inf)
    i = int(np.argmax(ref_scores))
    j = int(order[0])
    if ref_scores[i] >= scores[j]:
        return s_ref[i], float(ref_scores[i])
    return s[j], float(scores[j])


def take_best(acq: np.ndarray, chosen: np.ndarray, picks: list[int], p: int, spares: int) -> int:
    """Choose the best candidate of ``acq`` not ``chosen`` yet: mark it, append its pool index to ``picks``.

    ``acq`` scores the ``p`` pending points, then the pool; with ``spares``,
    that many next best pool candidates are appended to ``picks`` too.
    Returns the chosen index into ``acq``.
    """
    acq[chosen] = -np.inf
    j = int(np.argmax(acq))
    if chosen[j]:  # every candidate left scores -inf: the first pool candidate not chosen yet, not a repeat
        j = p + int(np.argmax(~chosen[p:]))
    chosen[j] = True
    picks.append(j - p)
    if spares:
        acq[j] = -np.inf
        after = np.argsort(-acq, kind="stable")[:spares]
        picks.extend(int(i) - p for i in after if np.isfinite(acq[i]))
    return j


def _condition_on_pending(
    mean: np.ndarray, cov: np.ndarray, p: int, noise: float, best: float
) -> tuple[np.ndarray, np.ndarray]:
    """The pool's posterior (the rows after the first ``p``) once the ``p`` pending points are believed.

    Each pending point, in order, is observed (with the model's noise) at
    its believed value: the mean there given the pending points before it,
    never better than ``best``.  This is the greedy loop's rank-one
    conditioning applied to the pending points in one block: ``L``, the
    Cholesky factor of their covariance plus noise, gives the whitened
    cross-covariance ``A = L^-1 cov[P, pool]``; the believed residuals
    ``r`` follow from ``L`` row by row; the pool's mean moves by ``A^T r``
    and its covariance by ``-A^T A``.  The same result as ``p`` rank-one
    steps, in a few matrix products.
    """
    chol = _cholesky(cov[:p, :p] + noise * np.eye(p))
    a = _tri_solve(chol, np.ascontiguousarray(cov[:p, p:]))
    r = np.zeros(p)
    mp = mean[:p]
    diag = np.diag(chol)
    for t in range(p):
        mt = float(mp[t]) + float(chol[t, :t] @ r[:t])
        if mt < best:  # believed at the incumbent: the residual moves the mean elsewhere
            r[t] = (best - mt) / diag[t]
    pool_mean = mean[p:] + a.T @ r
    pool_cov = cov[p:, p:] - a.T @ a
    return pool_mean, pool_cov


def select_batch(
    gp: GP,
    enc: Encoder,
    best: float,
    anchors: np.ndarray,
    rng: np.random.Generator,
    count: int,
    *,
    pending: np.ndarray | None = None,
    spares: int = 0,
    believer: bool = True,
    candidates: int = 1024,
    local: int = 256,
    starts: int = 5,
    maxiter: int = 50,
) -> np.ndarray:
    """``count`` snapped unit points (rows) chosen jointly by a kriging believer (see the module docstring).

    The points differ from each other while the space has that many
    distinct configurations among the candidates; past that, the rest are
    drawn at random.  With ``spares``, up to that many more rows follow:
    the pool's next best points by the acquisition once the batch is
    conditioned on, then the candidates past the pool by their own score
    (not chosen jointly with each other; a stop-gap for when the batch runs
    out before the next one is chosen).  ``believer=False``
    conditions on nothing (the best points by the acquisition alone; for
    comparison).
    """
    u = np.vstack([rng.random((candidates, enc.n_params)), _local_candidates(enc, anchors, local, rng)])
    s, _ = enc.snap(u)
    z = enc.features(s)
    scores = gp.log_ei(z, best)
    scores = np.where(np.isfinite(scores), scores, -np.inf)
    order = np.lexsort((np.arange(len(scores)), -scores))
    ranked = _distinct(z, order, count + spares + 64)
    pool, rest = ranked[: count + 64], ranked[count + 64 :]  # chosen among jointly; spares past the pool
    if starts > 0 and len(pool):
        top = pool[:starts]
        refined = _refine(gp, enc, z[top], s[top], best, maxiter)
        s_ref, _ = enc.snap(enc.unit_of_features(refined))
        s_pool = np.vstack([s_ref, s[pool]])
    else:
        s_pool = s[pool]
    z_pool = enc.features(s_pool)
    _, first = np.unique(z_pool, axis=0, return_index=True)
    keep = np.sort(first)
    s_pool, z_pool = s_pool[keep], z_pool[keep]
    if pending is not None and len(pending):
        # A point already running is never suggested again (a refinement may converge onto it).
        taken_rows = {r.tobytes() for r in np.round(enc.features(pending), 12)}
        fresh = np.array([r.tobytes() not in taken_rows for r in np.round(z_pool, 12)], dtype=bool)
        s_pool, z_pool = s_pool[fresh], z_pool[fresh]
        rest = rest[[r.tobytes() not in taken_rows for r in np.round(z[rest], 12)]] if len(rest) else rest
    m = len(z_pool)
    p = 0 if pending is None else len(pending)
    mean, cov = gp.joint(z_pool if not p else np.vstack([enc.features(pending), z_pool]))
    noise = float(gp.noise)
    if p:
        mean, cov = _condition_on_pending(mean, cov, p, noise, best)
    var = np.maximum(np.diag(cov).copy(), 1e-12)
    taken = min(count, m)
    w = np.empty((m, taken))
    chosen = np.zeros(m, dtype=bool)
    picks: list[int] = []
    for t in range(taken):
        sd = np.sqrt(var)
        acq = log_h_dense((best - mean) / sd) + np.log(sd)
        acq = np.where(np.isfinite(acq), acq, -np.inf)
        last = t == taken - 1
        j = take_best(acq, chosen, picks, 0, spares if last else 0)
        if last or not believer:
            continue
        # Condition on the believed value at j: the mean there, never better than the incumbent.
        col = cov[:, j] - w[:, :t] @ w[j, :t]
        root = np.sqrt(max(float(var[j]), 1e-12) + noise)
        w[:, t] = col / root
        mean += w[:, t] * ((max(float(mean[j]), best) - float(mean[j])) / root)
        var -= w[:, t] ** 2
        np.maximum(var, 1e-12, out=var)
    out = s_pool[picks]
    if spares and len(picks) - taken < spares and len(rest):
        # More spares: the candidates past the pool, by their score before any conditioning.
        out = np.vstack([out, s[rest[: spares - (len(picks) - taken)]]])
    if taken < count:  # spares only come with a full batch
        extra, _ = enc.snap(rng.random((count - taken, enc.n_params)))
        out = np.vstack([out, extra])
    return out
