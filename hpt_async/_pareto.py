"""Several objectives: Pareto fronts, non-dominated sorting, crowding and hypervolume.

Everything here works on *losses*: each objective turned into one to
minimise (a maximised value is negated, see :func:`losses`).  Constraints
follow Deb's rule ("constrained domination"): a feasible point beats an
infeasible one, two infeasible points are compared by their total
violation (the sum of the positive constraint values), and two feasible
points by Pareto dominance.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

from .trial import TrialRecord, TrialState

__all__ = [
    "best_record",
    "crowding_distance",
    "default_reference_point",
    "dominates",
    "front_ranks",
    "hypervolume",
    "losses",
    "nondominated_ranks",
    "pareto_front",
    "violation",
]


def _signs(directions: Sequence[str]) -> list[float]:
    return [1.0 if d == "minimize" else -1.0 for d in directions]


def losses(record: TrialRecord, directions: Sequence[str]) -> tuple[float, ...] | None:
    """The record's values as losses (maximised ones negated), or ``None`` when it has not one per direction."""
    values = record.values if record.values is not None else (None if record.value is None else (record.value,))
    if values is None or len(values) != len(directions):
        return None
    return tuple(s * v for s, v in zip(_signs(directions), values, strict=True))


def violation(constraints: Sequence[float] | None) -> float:
    """The total violation of ``constraints``: the sum of their positive parts (0 when feasible or none)."""
    if not constraints:
        return 0.0
    return sum(c for c in constraints if c > 0.0)


def dominates(a: Sequence[float], b: Sequence[float]) -> bool:
    """True when loss vector ``a`` is at least as good as ``b`` everywhere and better somewhere."""
    better = False
    for x, y in zip(a, b, strict=True):
        if x > y:
            return False
        if x < y:
            better = True
    return better


def pareto_front(records: Iterable[TrialRecord], directions: Sequence[str]) -> list[TrialRecord]:
    """The feasible COMPLETE records that no other feasible COMPLETE record dominates, in number order.

    A record dominates another when it is at least as good in every
    objective of ``directions`` and better in one (``values``, else
    ``(value,)``).  Records with equal values are all kept.  Infeasible
    records (a constraint above 0) are never on the front; with none
    feasible the front is empty.
    """
    points: list[tuple[tuple[float, ...], TrialRecord]] = []
    for r in records:
        if r.state is TrialState.COMPLETE and r.feasible:
            loss = losses(r, directions)
            if loss is not None:
                points.append((loss, r))
    # Sorted lexicographically, a point can only be dominated by one before it.
    points.sort(key=lambda p: p[0])
    front: list[tuple[tuple[float, ...], TrialRecord]] = []
    for loss, r in points:
        if not any(all(a <= b for a, b in zip(kept, loss, strict=True)) and kept != loss for kept, _ in front):
            front.append((loss, r))
    return sorted((r for _, r in front), key=lambda r: r.number)


def best_record(records: Iterable[TrialRecord], direction: str) -> TrialRecord | None:
    """The best feasible COMPLETE record for one objective (the lowest number among equals), or ``None``."""
    sign = 1.0 if direction == "minimize" else -1.0
    best: TrialRecord | None = None
    for r in records:
        if r.state is TrialState.COMPLETE and r.value is not None and r.feasible:
            if (
                best is None
                or sign * r.value < sign * best.value
                or (  # type: ignore[operator]
                    r.value == best.value and r.number < best.number
                )
            ):
                best = r
    return best


def nondominated_ranks(points: Sequence[Sequence[float]], violations: Sequence[float] | None = None) -> list[int]:
    """The front each loss vector of ``points`` belongs to (0: not dominated), by constrained domination.

    ``violations`` (one total violation per point, 0 for feasible ones)
    applies Deb's rule: feasible points come first, then infeasible ones
    ranked by their violation alone (each distinct violation a front of its
    own, after every feasible front).  Non-finite losses are taken as they
    compare (``inf`` is worst; a NaN point is dominated by every other).
    """
    n = len(points)
    if n == 0:
        return []
    viol = [0.0] * n if violations is None else [float(v) for v in violations]
    feasible = [i for i in range(n) if viol[i] <= 0.0]
    ranks = [0] * n
    # Feasible points: fast non-dominated sorting (Deb et al. 2002).
    pts = [tuple(math.inf if math.isnan(x) else x for x in points[i]) for i in feasible]
    m = len(pts)
    dominated_by_count = [0] * m
    beats: list[list[int]] = [[] for _ in range(m)]
    for i in range(m):
        pi = pts[i]
        for j in range(i + 1, m):
            pj = pts[j]
            if dominates(pi, pj):
                beats[i].append(j)
                dominated_by_count[j] += 1
            elif dominates(pj, pi):
                beats[j].append(i)
                dominated_by_count[i] += 1
    current = [i for i in range(m) if dominated_by_count[i] == 0]
    level = 0
    top = -1
    while current:
        following = []
        for i in current:
            ranks[feasible[i]] = level
            top = level
            for j in beats[i]:
                dominated_by_count[j] -= 1
                if dominated_by_count[j] == 0:
                    following.append(j)
        current = following
        level += 1
    # Infeasible points: after every feasible front, by increasing violation.
    infeasible = sorted({viol[i] for i in range(n) if viol[i] > 0.0})
    order = {v: top + 1 + k for k, v in enumerate(infeasible)}
    for i in range(n):
        if viol[i] > 0.0:
            ranks[i] = order[viol[i]]
    return ranks


def front_ranks(points: Sequence[Sequence[float]]) -> list[int]:
    """The non-dominated front of each loss vector (0: not dominated), vectorised for large sets.

    The same answer as :func:`nondominated_ranks` without violations (NaN
    taken as ``inf``); numpy does the pairwise comparisons, O(n^2) memory.
    """
    n = len(points)
    if n <= 32:
        return nondominated_ranks(points)
    import numpy as np

    p = np.asarray(points, dtype=float)
    p = np.where(np.isnan(p), np.inf, p)
    le = (p[:, None, :] <= p[None, :, :]).all(axis=2)
    lt = (p[:, None, :] < p[None, :, :]).any(axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    ranks = np.full(n, -1)
    level = 0
    left = np.ones(n, dtype=bool)
    while left.any():
        front = left & (count == 0)
        ranks[front] = level
        left &= ~front
        count = count - dom[front].sum(axis=0)
        level += 1
    return ranks.tolist()


def crowding_distance(points: Sequence[Sequence[float]]) -> list[float]:
    """NSGA-II's crowding distance of each point within one front (``inf`` at each objective's extremes)."""
    n = len(points)
    if n == 0:
        return []
    if n <= 2:
        return [math.inf] * n
    distance = [0.0] * n
    for k in range(len(points[0])):
        order = sorted(range(n), key=lambda i: points[i][k])
        lo, hi = points[order[0]][k], points[order[-1]][k]
        distance[order[0]] = distance[order[-1]] = math.inf
        span = hi - lo
        if not math.isfinite(span) or span <= 0.0:
            continue
        for a, i, b in zip(order, order[1:], order[2:], strict=False):
            distance[i] += (points[b][k] - points[a][k]) / span
    return distance


def _front_of(points: list[tuple[float, ...]]) -> list[tuple[float, ...]]:
    points = sorted(set(points))
    front: list[tuple[float, ...]] = []
    for p in points:
        if not any(all(a <= b for a, b in zip(q, p, strict=True)) for q in front):
            front.append(p)
    return front


def default_reference_point(front: Sequence[Sequence[float]]) -> tuple[float, ...]:
    """The worst loss of each objective on ``front`` plus 10% of the front's range in it (1e-9 at least)."""
    if not front:
        raise ValueError("a reference point is made from a non-empty front")
    dims = len(front[0])
    out = []
    for k in range(dims):
        column = [p[k] for p in front]
        lo, hi = min(column), max(column)
        out.append(hi + max(0.1 * (hi - lo), 1e-9 * max(1.0, abs(hi))))
    return tuple(out)


def _hv2(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    # Points sorted by the first loss; the front's second loss falls as the first rises.
    volume = 0.0
    best_y = ref[1]
    for x, y in sorted(points):
        if y < best_y:
            volume += (ref[0] - x) * (best_y - y)
            best_y = y
    return volume


def _hv(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    d = len(ref)
    if not points:
        return 0.0
    if d == 1:
        return ref[0] - min(p[0] for p in points)
    if d == 2:
        return _hv2(points, ref)
    # Slice along the last objective: between consecutive values of it, the dominated region is the
    # (d-1)-dimensional hypervolume of the points at or below the slice.
    ordered = sorted(points, key=lambda p: p[-1])
    volume = 0.0
    below: list[tuple[float, ...]] = []
    for i, p in enumerate(ordered):
        below.append(p[:-1])
        top = ordered[i + 1][-1] if i + 1 < len(ordered) else ref[-1]
        height = top - p[-1]
        if height > 0.0:
            below = _front_of(below)
            volume += height * _hv(below, ref[:-1])
    return volume


def hypervolume(
    points: Iterable[Sequence[float]],
    reference_point: Sequence[float] | None = None,
    *,
    directions: Sequence[str] | None = None,
) -> float:
    """The hypervolume that ``points`` dominate up to ``reference_point`` (exact, any number of objectives).

    ``points`` are objective values, one sequence per point; every
    objective is minimised unless ``directions`` (one ``"minimize"`` or
    ``"maximize"`` each) says otherwise, and ``reference_point`` is given
    in the same terms.  A point that is not strictly better than the
    reference point in every objective adds nothing.  Without a reference
    point, the worst value of each objective on the points' Pareto front
    plus 10% of the front's range in it is used (the hypervolume then
    grows only as the front improves if the reference point is kept fixed:
    pass one to compare runs).  The computation slices along one objective
    after another: fast for two and three objectives, exponential in the
    number of objectives beyond.  ``ValueError`` for points of unequal
    length, non-finite values or no points without a reference point.
    """
    rows = [tuple(float(x) for x in p) for p in points]
    dims = None
    for row in rows:
        if dims is None:
            dims = len(row)
        if len(row) != dims or not row:
            raise ValueError("hypervolume takes points of equal, non-zero length")
        if not all(math.isfinite(x) for x in row):
            raise ValueError(f"hypervolume takes finite values, got {row!r}")
    if directions is not None:
        signs = _signs(directions)
        if dims is not None and len(signs) != dims:
            raise ValueError(f"{len(signs)} directions for points of {dims} objectives")
    else:
        signs = [1.0] * (dims or (len(reference_point) if reference_point is not None else 0))
    loss_rows = [tuple(s * x for s, x in zip(signs, row, strict=True)) for row in rows]
    if reference_point is None:
        if not loss_rows:
            raise ValueError("hypervolume needs points or a reference point")
        ref = default_reference_point(_front_of(loss_rows))
    else:
        ref_values = tuple(float(x) for x in reference_point)
        if dims is not None and len(ref_values) != dims:
            raise ValueError(f"the reference point has {len(ref_values)} values; the points have {dims}")
        if not all(math.isfinite(x) for x in ref_values):
            raise ValueError(f"the reference point must be finite, got {ref_values!r}")
        ref = tuple(s * x for s, x in zip(signs, ref_values, strict=True))
    inside = [p for p in loss_rows if all(a < b for a, b in zip(p, ref, strict=True))]
    return _hv(_front_of(inside), ref)
