"""Several objectives and constraints for ``bayes``: log expected hypervolume improvement times feasibility.

The model is one GP per objective and one per constraint, independent of
each other, all on the same inputs (see ``bayes``).  The acquisition of a
point is, in logs,

* ``log EHVI + sum_k log P(c_k <= 0)`` once some observation is feasible
  (Gardner et al. 2014: the improvement, weighted by the probability that
  the point is feasible), and
* ``sum_k log P(c_k <= 0)`` while none is (the most probably feasible
  point first).

Expected hypervolume improvement is exact for independent Gaussian
objectives.  The region that the feasible front does not dominate, up to
the reference point, is cut into disjoint axis-aligned boxes
(:func:`box_decomposition`: slices along the last objective, a 2-D strip
decomposition inside each slice, recursively).  The improvement a point
``y`` brings is the sum over boxes of the volume of the part of the box
that ``y`` dominates, a product over objectives of ``(u - max(y, l))^+``;
with independent objectives its expectation is a product of
one-dimensional expectations, each
``E[(u - max(y, l))^+] = sd (h(z_u) - h(z_l))`` with ``h(z) = phi(z) +
z Phi(z)`` and ``z_b = (b - mean) / sd``.  Everything is formed in logs
(``log h`` from ``_gp``, ``log(h(a) - h(b))`` through ``log1mexp``, a
log-sum-exp over boxes), so the acquisition keeps its ranking far from the
front where EHVI itself underflows to zero (the log-EI idea of Ament et al.
2023 applied to EHVI).  With one objective there is one box below the best
feasible value and log EHVI is log EI.

Pending points (running trials) are conditioned on as a kriging believer:
each objective's GP is conditioned on its own mean there (which leaves its
mean everywhere unchanged and collapses its variance around the point),
and the believed objective values join the front the improvement is
measured against when the constraints' means there are feasible (so the
improvement at a pending point is nil, and small around it).  Each
constraint is believed at its mean, or, while no observation is feasible,
never better than a little past its threshold (so the most probably
feasible region is not proposed over and over).  :func:`select` chooses a
batch greedily in this way over a candidate pool, with rank-one updates of
every model's posterior over the pool.  (Moving the believed objective
values behind the front instead, the analogue of the single-objective
floor at the incumbent, bends a smooth model far from the pending point:
every objective's mean rises over a length scale, and the next points pile
up beside the first.)

With exactly two objectives, ``bayes`` may floor the boxes
(:class:`MultiModel`'s ``floor``): an objective whose best feasible value
two different configurations reach (:func:`reached_floors`) is taken to be
bounded there, and no improvement is counted past that value.
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Hashable, Sequence

import numpy as np
from scipy import special

from ._acquisition import _distinct, _local_candidates, ascend, take_best
from ._encoding import Encoder
from ._gp import _LOG_2PI_HALF, GP, _log1mexp, log_h

__all__ = [
    "MultiModel",
    "box_decomposition",
    "log_ehvi",
    "log_ehvi_grad",
    "nondominated_mask",
    "reached_floors",
    "select",
]

_BOX_BLOCK = 1 << 18  # (points x boxes x objectives) entries per block when scoring
# A ``warm`` start of :func:`select` climbs on its own to this relative tolerance, for at most this many iterations.
_END_GAME_FTOL = 1e-7
_END_GAME_ITERS = 100
_INFEASIBLE_MARGIN = 0.25  # how far past the threshold a pending point's constraint is believed (standardised)


def nondominated_mask(points: np.ndarray) -> np.ndarray:
    """True for the rows of ``points`` (losses) that no other row dominates; of equal rows, the first only."""
    n = len(points)
    if n == 0:
        return np.zeros(0, dtype=bool)
    le = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    lt = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dominated = (le & lt).any(axis=0)
    same = le & le.T
    earlier_twin = np.triu(same, 1).any(axis=0)  # an equal row comes before
    return ~dominated & ~earlier_twin


def reached_floors(losses: np.ndarray, tol: float = 1e-9, configs: Sequence[Hashable] | None = None) -> np.ndarray:
    """For each objective (column of ``losses``), whether two or more rows reach its best value.

    Within ``tol`` of the column's range.  A best value that different
    configurations reach alike (an error of zero, a size at its smallest,
    ``cos(pi / 2)`` times anything) is most likely a bound of the objective
    rather than a point on a slope: the acquisition of ``bayes`` with two
    objectives counts no improvement past it.  ``configs`` (optional, one
    key per row) names each row's configuration: rows of the same
    configuration then count once.
    """
    losses = np.asarray(losses, dtype=float)
    if losses.ndim != 2 or len(losses) < 2:
        return np.zeros(losses.shape[-1] if losses.ndim == 2 else 0, dtype=bool)
    best = losses.min(axis=0)
    span = np.maximum(losses.max(axis=0) - best, np.finfo(float).tiny)
    at_best = losses <= best + tol * span
    if configs is None:
        return np.sum(at_best, axis=0) >= 2
    return np.array([len({configs[i] for i in np.flatnonzero(col)}) >= 2 for col in at_best.T], dtype=bool)


def box_decomposition(front: np.ndarray, ref: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Disjoint boxes ``(lower, upper)`` covering what ``front`` (losses) does not dominate, below ``ref``.

    Lower bounds may be ``-inf``.  A point of ``front`` not strictly below
    ``ref`` in every objective is left out (it dominates nothing there).
    One objective: the one box below the best value.  Two: ``K + 1`` strips
    for a front of ``K`` points.  More: slices between the sorted values of
    the last objective, each cut up by the front of the points below it
    (``O(K^(m-1))`` boxes at most).
    """
    front = np.asarray(front, dtype=float).reshape(-1, len(ref))
    ref = np.asarray(ref, dtype=float)
    front = front[np.all(front < ref, axis=1)]
    m = len(ref)
    if m == 1:
        top = float(np.min(front[:, 0])) if len(front) else float(ref[0])
        return np.array([[-np.inf]]), np.array([[top]])
    if len(front):
        front = front[nondominated_mask(front)]
    cuts = np.unique(front[:, -1]) if len(front) else np.empty(0)
    edges = np.concatenate([[-np.inf], cuts, [ref[-1]]])
    lowers, uppers = [], []
    for lo, hi in itertools.pairwise(edges):
        if not lo < hi:
            continue
        below = front[front[:, -1] <= lo]
        sub_lo, sub_hi = box_decomposition(below[:, :-1], ref[:-1])
        keep = np.all(sub_lo < sub_hi, axis=1)
        sub_lo, sub_hi = sub_lo[keep], sub_hi[keep]
        lowers.append(np.hstack([sub_lo, np.full((len(sub_lo), 1), lo)]))
        uppers.append(np.hstack([sub_hi, np.full((len(sub_hi), 1), hi)]))
    if not lowers:
        return np.empty((0, m)), np.empty((0, m))
    return np.vstack(lowers), np.vstack(uppers)


def log_ehvi(mean: np.ndarray, sd: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> np.ndarray:
    """Log expected hypervolume improvement of independent Gaussians ``N(mean, sd^2)`` (rows) over the boxes."""
    n, m = mean.shape
    if len(lower) == 0:
        return np.full(n, -np.inf)
    rows = max(1, _BOX_BLOCK // (len(lower) * m))
    if n > rows:
        return np.concatenate([log_ehvi(mean[i : i + rows], sd[i : i + rows], lower, upper) for i in range(0, n, rows)])
    mu, s = mean[:, None, :], sd[:, None, :]
    lh_up = log_h((upper[None, :, :] - mu) / s)
    with np.errstate(invalid="ignore"):
        lh_lo = log_h((lower[None, :, :] - mu) / s)  # -inf for an unbounded side
        gap = lh_lo - lh_up  # <= 0: h is increasing
    gap = np.where(np.isnan(gap), -np.inf, np.minimum(gap, 0.0))
    with np.errstate(divide="ignore"):
        per_box = np.sum(np.log(s) + lh_up + _log1mexp(gap), axis=2)
    return special.logsumexp(per_box, axis=1)


def log_ehvi_grad(
    mean: np.ndarray, sd: np.ndarray, lower: np.ndarray, upper: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """:func:`log_ehvi` and its partial derivatives with respect to ``mean`` and ``sd`` (same shapes as those).

    For one box and one objective the factor is ``E = sd (h(z_u) - h(z_l))``,
    whose derivatives are ``dE/dmean = -(Phi(z_u) - Phi(z_l))`` and
    ``dE/dsd = phi(z_u) - phi(z_l)``; the log of a box's term is a sum of
    ``log E`` over objectives, and the log-sum-exp over boxes weighs each
    box's derivatives by its share of the total.  Everything is a ratio
    to ``E`` formed in logs.  Meant for a few points at a time (no blocks).
    """
    n, m = mean.shape
    if len(lower) == 0:
        return np.full(n, -np.inf), np.zeros((n, m)), np.zeros((n, m))
    mu, s = mean[:, None, :], sd[:, None, :]
    with np.errstate(invalid="ignore", divide="ignore", over="ignore"):
        z_up = (upper[None, :, :] - mu) / s
        z_lo = (lower[None, :, :] - mu) / s
        lh_up = log_h(z_up)
        lh_lo = log_h(z_lo)
        gap = lh_lo - lh_up
        gap = np.where(np.isnan(gap), -np.inf, np.minimum(gap, 0.0))
        terms = np.log(s) + lh_up + _log1mexp(gap)  # log E per point, box and objective
        per_box = np.sum(terms, axis=2)
        value = special.logsumexp(per_box, axis=1)
        weight = np.exp(per_box - value[:, None])[:, :, None]
        lcdf_up, lcdf_lo = special.log_ndtr(z_up), special.log_ndtr(z_lo)
        d_mean = -np.exp(lcdf_up - terms) * -np.expm1(np.minimum(lcdf_lo - lcdf_up, 0.0))
        lpdf_up = -0.5 * z_up * z_up - _LOG_2PI_HALF
        lpdf_lo = -0.5 * z_lo * z_lo - _LOG_2PI_HALF
        d_sd = np.exp(lpdf_up - terms) - np.exp(lpdf_lo - terms)
        d_mean = np.where(weight > 0, weight * d_mean, 0.0)
        d_sd = np.where(weight > 0, weight * d_sd, 0.0)
    d_mean = np.nan_to_num(d_mean.sum(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    d_sd = np.nan_to_num(d_sd.sum(axis=1), nan=0.0, posinf=0.0, neginf=0.0)
    return value, d_mean, d_sd


class MultiModel:
    """GPs of the (standardised) objectives and constraints, the feasible front, and the acquisition.

    ``gps`` holds the objectives' GPs then the constraints'; ``thresholds``
    are the constraints' feasibility thresholds in the GPs' standardised
    units; ``front`` the feasible non-dominated standardised losses (empty
    while no observation is feasible) and ``ref`` the reference point.
    ``floor`` (optional, one value per objective, ``-inf`` for none) is a
    value below which an objective is taken not to go: the boxes' lower
    bounds are raised to it, so no improvement is counted past it (see
    :func:`reached_floors`), unless that would leave no box at all (the
    front on every floor at once), when the boxes stay open.
    """

    def __init__(
        self,
        gps: list[GP],
        n_objectives: int,
        thresholds: np.ndarray,
        front: np.ndarray,
        ref: np.ndarray | None,
        floor: np.ndarray | None = None,
    ) -> None:
        self.gps = gps
        self.m = n_objectives
        self.thresholds = np.asarray(thresholds, dtype=float)
        self.front = front
        self.feasible = len(front) > 0
        self.ref = ref
        self.floor = floor
        self.lower, self.upper = box_decomposition(front, ref) if self.feasible and ref is not None else (None, None)
        if floor is not None and self.lower is not None and self.upper is not None:
            # No improvement is counted below an objective's floor: the boxes start there.
            lower = np.maximum(self.lower, np.asarray(floor, dtype=float)[None, :])
            keep = np.all(lower < self.upper, axis=1)
            if keep.any():
                self.lower, self.upper = lower[keep], self.upper[keep]
            # else the front sits on every floor (one point at the best of each objective): floored, no box
            # would be left and every point would score -inf alike; the open boxes are kept instead.

    def moments(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior means and variances at the rows of ``z``, one column per model."""
        pairs = [gp.predict(z) for gp in self.gps]
        return np.column_stack([p[0] for p in pairs]), np.column_stack([p[1] for p in pairs])

    def score(self, mean: np.ndarray, var: np.ndarray) -> np.ndarray:
        """The log acquisition of points with these moments (see the module docstring)."""
        sd = np.sqrt(np.maximum(var, 1e-12))
        out = np.zeros(len(mean))
        if len(self.thresholds):
            m = self.m
            out += np.sum(special.log_ndtr((self.thresholds - mean[:, m:]) / sd[:, m:]), axis=1)
        if self.feasible:
            assert self.lower is not None and self.upper is not None
            out += log_ehvi(mean[:, : self.m], sd[:, : self.m], self.lower, self.upper)
        return np.where(np.isnan(out), -np.inf, out)

    def score_grad(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """The log acquisition at the rows of the features ``z`` and its gradient with respect to each row.

        The chain rule through every model's posterior mean and variance
        (:meth:`GP.predict_grad`): ``d log Phi((t - mean) / sd)`` for each
        constraint and :func:`log_ehvi_grad` for the objectives.  Where the
        value is not finite the gradient is zero.
        """
        parts = [gp.predict_grad(z) for gp in self.gps]
        mean = np.column_stack([p[0] for p in parts])
        var = np.column_stack([p[1] for p in parts])
        sd = np.sqrt(np.maximum(var, 1e-12))
        d_mean = np.zeros_like(mean)
        d_sd = np.zeros_like(mean)
        m = self.m
        value = np.zeros(len(mean))  # summed in the order of :meth:`score` (equal to its values up to rounding)
        if len(self.thresholds):
            w = (self.thresholds - mean[:, m:]) / sd[:, m:]
            log_cdf = special.log_ndtr(w)
            value += np.sum(log_cdf, axis=1)
            with np.errstate(over="ignore", invalid="ignore"):
                ratio = np.exp(-0.5 * w * w - _LOG_2PI_HALF - log_cdf)  # phi(w) / Phi(w)
            d_mean[:, m:] = -ratio / sd[:, m:]
            d_sd[:, m:] = -ratio * w / sd[:, m:]
        if self.feasible:
            assert self.lower is not None and self.upper is not None
            ehvi, d_mean[:, :m], d_sd[:, :m] = log_ehvi_grad(mean[:, :m], sd[:, :m], self.lower, self.upper)
            value += ehvi
        value = np.where(np.isnan(value), -np.inf, value)
        grad = np.zeros_like(z, dtype=float)
        for k, (_, _, dm, dv) in enumerate(parts):
            grad += d_mean[:, k, None] * dm + (d_sd[:, k] / (2.0 * sd[:, k]))[:, None] * dv
        grad = np.where(np.isfinite(value)[:, None] & np.isfinite(grad), grad, 0.0)
        return value, grad

    def believe(self, mean: np.ndarray) -> np.ndarray:
        """The values believed at a pending point whose posterior means are ``mean`` (one per model)."""
        out = np.array(mean, dtype=float)
        if not self.feasible and len(self.thresholds):
            out[self.m :] = np.maximum(out[self.m :], self.thresholds + _INFEASIBLE_MARGIN)
        return out

    def with_believed(self, believed: np.ndarray) -> MultiModel:
        """This model with a pending point's believed objectives on its front (if they look feasible and add to it)."""
        if not self.feasible or np.any(believed[self.m :] > self.thresholds):
            return self
        y = believed[: self.m]
        if np.any(np.all(self.front <= y, axis=1)):
            return self  # weakly dominated: the front and the boxes stay
        front = np.vstack([self.front, y])
        return MultiModel(self.gps, self.m, self.thresholds, front[nondominated_mask(front)], self.ref, self.floor)


def select(
    model: MultiModel,
    enc: Encoder,
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
    refine: int = 0,
    maxiter: int = 20,
    warm: np.ndarray | None = None,
) -> tuple[np.ndarray, float]:
    """``count`` snapped unit points chosen greedily by the acquisition, each conditioned on the ones before.

    Candidates are uniform points and perturbations of ``anchors``, then a
    second round of perturbations of the best ``starts``; then the best
    ``refine`` distinct candidates climb the acquisition by L-BFGS-B on its
    analytic gradient (:meth:`MultiModel.score_grad`, at most ``maxiter``
    iterations) and join the pool.  With ``refine``, the ``warm`` unit rows
    (e.g. the best feasible observation), if any, climb too, apart from the
    candidates and further (relative tolerance ``_END_GAME_FTOL``, at most
    ``_END_GAME_ITERS`` iterations, instead of 1e-3 and ``maxiter``): a precise
    local step next to the incumbent, which the candidates' coarser climb
    does not reach.  The running trials' points (``pending``, unit rows)
    are conditioned on first.  With ``spares``, up
    to that many more rows follow (the next best of the pool once the batch
    is conditioned on, then the candidates past it).  ``believer=False``
    conditions on nothing (for comparison).

    Returns the rows and the acquisition of the first point chosen (once
    the pending points are conditioned on; ``-inf`` without a pool).
    """
    u = np.vstack([rng.random((candidates, enc.n_params)), _local_candidates(enc, anchors, local, rng)])
    s, _ = enc.snap(u)
    z = enc.features(s)
    scores = model.score(*model.moments(z))
    if starts > 0 and local > 0:
        order = np.lexsort((np.arange(len(scores)), -scores))
        top = _distinct(z, order, starts)
        if len(top):
            s2, _ = enc.snap(_local_candidates(enc, s[top], local, rng))
            z2 = enc.features(s2)
            s, z = np.vstack([s, s2]), np.vstack([z, z2])
            scores = np.concatenate([scores, model.score(*model.moments(z2))])
    if refine > 0:
        order = np.lexsort((np.arange(len(scores)), -scores))
        top = _distinct(z, order, refine)
        top = top[np.isfinite(scores[top])]
        reached = [ascend(model.score_grad, enc, z[top], s[top], maxiter)] if len(top) else []
        if warm is not None and len(warm):
            s_warm, _ = enc.snap(warm)
            reached.append(ascend(model.score_grad, enc, enc.features(s_warm), s_warm, _END_GAME_ITERS, _END_GAME_FTOL))
        if reached:
            s3, _ = enc.snap(enc.unit_of_features(np.vstack(reached)))
            z3 = enc.features(s3)
            s, z = np.vstack([s3, s]), np.vstack([z3, z])  # first: a tie goes to the refined point
            scores = np.concatenate([model.score(*model.moments(z3)), scores])
    order = np.lexsort((np.arange(len(scores)), -scores))
    held_x = model.gps[0].x[:, : z.shape[1]] if model.gps else np.empty((0, z.shape[1]))
    ranked = _distinct(z, order, count + spares + 64 + len(held_x))
    if len(held_x):
        # A point the models already hold (an observation, or a corner of the box reached again) is not
        # proposed again: with the observation's noise its acquisition need not be nil.
        held = {r.tobytes() for r in np.round(held_x, 12)}
        fresh = np.array([r.tobytes() not in held for r in np.round(z[ranked], 12)], dtype=bool)
        if fresh.any():
            ranked = ranked[fresh]
    ranked = ranked[: count + spares + 64]
    pool, rest = ranked[: count + 64], ranked[count + 64 :]
    s_pool, z_pool = s[pool], z[pool]
    p = 0
    z_pending = np.empty((0, z.shape[1]))
    if pending is not None and len(pending):
        z_pending = enc.features(pending)
        taken_rows = {r.tobytes() for r in np.round(z_pending, 12)}
        fresh = np.array([r.tobytes() not in taken_rows for r in np.round(z_pool, 12)], dtype=bool)
        s_pool, z_pool = s_pool[fresh], z_pool[fresh]
        if len(rest):
            rest = rest[[r.tobytes() not in taken_rows for r in np.round(z[rest], 12)]]
        p = len(z_pending)
    mpool = len(z_pool)
    taken = min(count, mpool)
    zz = np.vstack([z_pending, z_pool])
    joints = [gp.joint(zz) for gp in model.gps]
    mean = np.column_stack([j[0] for j in joints])
    covs = [j[1] for j in joints]
    var = np.maximum(np.column_stack([np.diag(c) for c in covs]), 1e-12)
    noises = [float(gp.noise) for gp in model.gps]
    ws = [np.empty((p + mpool, p + taken)) for _ in model.gps]
    chosen = np.zeros(p + mpool, dtype=bool)
    chosen[:p] = True
    picks: list[int] = []
    value = -math.inf
    current = model  # its front grows with the points believed
    for t in range(p + taken):
        if t < p:
            j = t
        else:
            acq = np.full(p + mpool, -np.inf)
            acq[p:] = current.score(mean[p:], var[p:])
            if t == p:
                value = float(np.max(acq[p:][~chosen[p:]])) if mpool else -math.inf
            j = take_best(acq, chosen, picks, p, spares if t == p + taken - 1 else 0)
            if t == p + taken - 1:
                break
            if not believer:
                continue
        believed = current.believe(mean[j])
        current = current.with_believed(believed)
        for k, (cov, w) in enumerate(zip(covs, ws, strict=True)):
            col = cov[:, j] - w[:, :t] @ w[j, :t]
            root = math.sqrt(max(float(var[j, k]), 1e-12) + noises[k])
            w[:, t] = col / root
            mean[:, k] += w[:, t] * ((believed[k] - float(mean[j, k])) / root)
            var[:, k] -= w[:, t] ** 2
        np.maximum(var, 1e-12, out=var)
    out = s_pool[picks] if picks else np.empty((0, enc.n_params))
    if spares and len(picks) - taken < spares and len(rest):
        out = np.vstack([out, s[rest[: spares - (len(picks) - taken)]]])
    if taken < count:
        extra, _ = enc.snap(rng.random((count - taken, enc.n_params)))
        out = np.vstack([out, extra])
    return out, value
