"""The Pareto front of a study with several objectives."""

from __future__ import annotations

from collections.abc import Iterable, Sequence

from .trial import TrialRecord, TrialState

__all__ = ["pareto_front"]


def pareto_front(records: Iterable[TrialRecord], directions: Sequence[str]) -> list[TrialRecord]:
    """The COMPLETE records that no other COMPLETE record dominates, in number order.

    A record dominates another when it is at least as good in every
    objective of ``directions`` and better in one (``values``, else
    ``(value,)``).  Records with equal values are all kept.
    """
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    points: list[tuple[tuple[float, ...], TrialRecord]] = []
    for r in records:
        values = r.values if r.values is not None else (None if r.value is None else (r.value,))
        if r.state is TrialState.COMPLETE and values is not None and len(values) == len(signs):
            points.append((tuple(s * v for s, v in zip(signs, values, strict=True)), r))
    # Sorted lexicographically, a point can only be dominated by one before it.
    points.sort(key=lambda p: p[0])
    front: list[tuple[tuple[float, ...], TrialRecord]] = []
    for loss, r in points:
        if not any(all(a <= b for a, b in zip(kept, loss, strict=True)) and kept != loss for kept, _ in front):
            front.append((loss, r))
    return sorted((r for _, r in front), key=lambda r: r.number)
