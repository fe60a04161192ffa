"""Pareto fronts, non-dominated sorting, crowding and hypervolume, against brute force."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpt_async as hpt
from hpt_async._pareto import (
    crowding_distance,
    default_reference_point,
    dominates,
    nondominated_ranks,
    pareto_front,
)

# Small integers make ties and duplicates frequent, where Pareto code goes wrong.
_coord = st.integers(min_value=0, max_value=6).map(float)


def _clouds(dims: int) -> st.SearchStrategy[list[tuple[float, ...]]]:
    return st.lists(st.tuples(*[_coord] * dims), min_size=0, max_size=25)


def _record(number: int, values: tuple[float, ...], constraints: tuple[float, ...] | None = None) -> hpt.TrialRecord:
    return hpt.TrialRecord(number, hpt.TrialState.COMPLETE, {}, value=values[0], values=values, constraints=constraints)


def _brute_front(points: list[tuple[float, ...]]) -> set[int]:
    """Indices of the points no other point dominates, by the definition."""
    out = set()
    for i, p in enumerate(points):
        if not any(all(a <= b for a, b in zip(q, p, strict=True)) and q != p for q in points):
            out.add(i)
    return out


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=4).flatmap(_clouds), st.sampled_from(["minimize", "maximize"]))
def test_the_pareto_front_of_records_is_the_brute_force_one(points: list[tuple[float, ...]], second: str) -> None:
    directions = ["minimize", second] + ["minimize"] * (len(points[0]) - 2 if points else 0)
    records = [_record(i, p) for i, p in enumerate(points)]
    signs = [1.0 if d == "minimize" else -1.0 for d in directions]
    losses = [tuple(s * x for s, x in zip(signs, p, strict=True)) for p in points]
    assert {r.number for r in pareto_front(records, directions)} == _brute_front(losses)


@settings(max_examples=150, deadline=None)
@given(st.integers(min_value=2, max_value=3).flatmap(_clouds))
def test_non_dominated_ranks_peel_fronts_as_brute_force_does(points: list[tuple[float, ...]]) -> None:
    ranks = nondominated_ranks(points)
    left = set(range(len(points)))
    level = 0
    while left:
        front = {i for i in left if not any(dominates(points[j], points[i]) for j in left)}
        assert {i for i in left if ranks[i] == level} == front
        left -= front
        level += 1


def test_constrained_domination_puts_feasible_fronts_first_then_less_violation() -> None:
    points = [(1.0, 1.0), (0.0, 0.0), (2.0, 2.0), (5.0, 5.0), (0.5, 3.0)]
    violations = [0.0, 2.0, 0.0, 0.0, 0.5]
    # Feasible: (1,1) rank 0, (2,2) rank 1, (5,5) rank 2; then violation 0.5 (rank 3), then 2.0 (rank 4).
    assert nondominated_ranks(points, violations) == [0, 4, 1, 2, 3]


def test_infeasible_records_are_never_on_the_front_and_none_feasible_means_an_empty_front() -> None:
    records = [_record(0, (0.0, 0.0), (1.0,)), _record(1, (1.0, 1.0), (0.0,)), _record(2, (2.0, 0.5), (-1.0,))]
    assert [r.number for r in pareto_front(records, ["minimize", "minimize"])] == [1, 2]
    assert pareto_front(records[:1], ["minimize", "minimize"]) == []


def test_crowding_distance_is_infinite_at_the_extremes_and_sums_normalised_gaps() -> None:
    points = [(0.0, 4.0), (1.0, 2.0), (3.0, 1.0), (4.0, 0.0)]
    d = crowding_distance(points)
    assert d[0] == d[3] == math.inf
    assert d[1] == pytest.approx((3 - 0) / 4 + (4 - 1) / 4)
    assert d[2] == pytest.approx((4 - 1) / 4 + (2 - 0) / 4)


# -- hypervolume -----------------------------------------------------------------------------


def _hv_inclusion_exclusion(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """The union of the boxes [p, ref] by inclusion-exclusion over every subset (exponential; small cases)."""
    boxes = [p for p in points if all(a < b for a, b in zip(p, ref, strict=True))]
    total = 0.0
    for k in range(1, len(boxes) + 1):
        for subset in itertools.combinations(boxes, k):
            corner = [max(c) for c in zip(*subset, strict=True)]
            volume = math.prod(r - c for r, c in zip(ref, corner, strict=True))
            total += (-1) ** (k + 1) * volume
    return total


def _hv_grid(points: list[tuple[float, ...]], ref: tuple[float, ...]) -> float:
    """Count the unit cells of the integer grid below ``ref`` that some point dominates (integer points only)."""
    ranges = [range(0, int(r)) for r in ref]
    return float(
        sum(
            1
            for cell in itertools.product(*ranges)
            if any(all(p_k <= c for p_k, c in zip(p, cell, strict=True)) for p in points)
        )
    )


@settings(max_examples=120, deadline=None)
@given(st.integers(min_value=1, max_value=4).flatmap(lambda d: st.lists(st.tuples(*[_coord] * d), max_size=9)))
def test_hypervolume_matches_inclusion_exclusion(points: list[tuple[float, ...]]) -> None:
    if not points:
        return
    ref = tuple([7.0] * len(points[0]))
    assert hpt.hypervolume(points, ref) == pytest.approx(_hv_inclusion_exclusion(points, ref))


@settings(max_examples=60, deadline=None)
@given(st.integers(min_value=2, max_value=3).flatmap(lambda d: st.lists(st.tuples(*[_coord] * d), max_size=20)))
def test_hypervolume_matches_counting_grid_cells(points: list[tuple[float, ...]]) -> None:
    if not points:
        return
    ref = tuple([7.0] * len(points[0]))
    assert hpt.hypervolume(points, ref) == pytest.approx(_hv_grid(points, ref))


def test_hypervolume_on_hand_made_cases() -> None:
    assert hpt.hypervolume([(1.0, 2.0), (2.0, 1.0)], (3.0, 3.0)) == pytest.approx(3.0)
    assert hpt.hypervolume([(1.0, 1.0, 1.0)], (2.0, 3.0, 4.0)) == pytest.approx(6.0)
    # Maximised objectives: the same boxes mirrored.
    assert hpt.hypervolume([(-1.0, 2.0)], (0.0, 0.0), directions=["minimize", "maximize"]) == pytest.approx(2.0)
    # A point not strictly inside the reference point adds nothing.
    assert hpt.hypervolume([(3.0, 0.0)], (3.0, 3.0)) == 0.0


def test_the_default_reference_point_is_the_worst_plus_ten_percent_of_the_range() -> None:
    front = [(0.0, 10.0), (10.0, 0.0)]
    assert default_reference_point(front) == pytest.approx((11.0, 11.0))
    # Dominated points do not move it: only the front counts.
    assert hpt.hypervolume([*front, (20.0, 20.0)]) == pytest.approx(hpt.hypervolume(front, (11.0, 11.0)))


def test_hypervolume_agrees_with_optuna_when_it_is_installed() -> None:
    optuna_hv = pytest.importorskip("optuna._hypervolume").compute_hypervolume
    import numpy as np

    rng = random.Random(3)
    for dims in (2, 3, 4):
        points = [tuple(rng.random() for _ in range(dims)) for _ in range(30)]
        ref = tuple([1.1] * dims)
        ours = hpt.hypervolume(points, ref)
        theirs = optuna_hv(np.array(points), np.array(ref))
        assert ours == pytest.approx(theirs, rel=1e-9)


@pytest.mark.parametrize(
    ("points", "ref", "message"),
    [
        ([(1.0, 2.0), (1.0,)], None, "equal"),
        ([(1.0, math.nan)], None, "finite"),
        ([(1.0, 2.0)], (1.0,), "reference point has 1"),
        ([], None, "needs points"),
    ],
)
def test_hypervolume_refuses_bad_input(points, ref, message) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(ValueError, match=message):
        hpt.hypervolume(points, ref)


@settings(max_examples=40, deadline=None)
@given(
    st.integers(min_value=2, max_value=3).flatmap(
        lambda d: st.lists(st.tuples(*[_coord] * d), min_size=33, max_size=80)
    )
)
def test_the_vectorised_front_ranks_equal_the_plain_ones(points: list[tuple[float, ...]]) -> None:
    from hpt_async._pareto import front_ranks

    assert front_ranks(points) == nondominated_ranks(points)
