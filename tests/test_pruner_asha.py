"""``asha``: rung decisions on hand-made report sequences, arrival orders, inferred budgets, options."""

from __future__ import annotations

import itertools
import math
import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import hpt_async as hpt
from hpt_async.pruners import ASHAPruner
from hpt_async.pruners._replay import Ended, Reported, replay

pytestmark = pytest.mark.anyio

C, S = hpt.Decision.CONTINUE, hpt.Decision.STOP


def study(direction: str = "minimize", records: tuple[hpt.TrialRecord, ...] = ()) -> hpt.StudyView:
    """An open study view holding ``records``."""
    view = hpt.StudyView("s", direction, hpt.Space({"x": hpt.Float(0.0, 1.0)}), 0)
    for r in records:
        view._put(r)
    return view


def record(number: int, reports: dict[int, float], state: str = "running") -> hpt.TrialRecord:
    """A trial record with ``reports``."""
    return hpt.TrialRecord(number, hpt.TrialState(state), {}, reports=reports)


async def feed(pruner: hpt.Pruner, reports: list[tuple[int, int, float]], direction: str = "minimize") -> list:
    """Start ``pruner`` on an empty study and feed ``(trial, step, value)`` in order; the decisions."""
    events = [Reported(n, s, v, C) for n, s, v in reports]
    return [r.decision for r in await replay(pruner, events, direction)]


# -- one rung, by hand ----------------------------------------------------------------


async def test_first_rung_keeps_the_top_third_of_what_it_has_seen() -> None:
    # eta=3: with n values at the rung, the new one goes on when fewer than max(1, n // 3) are better.
    values = [5.0, 4.0, 6.0, 5.0, 1.0, 4.0, 7.0, 3.0, 2.0]
    decisions = await feed(ASHAPruner(), [(n, 1, v) for n, v in enumerate(values)])
    # 5 first; 4 best; 6 worst of 3 (k=1); 5 has 4 better (k=1); 1 best; 4 ties 4 with one better (k=2);
    # 7 worst; 3 has one better (k=2); 2 has one better (k=3).
    assert decisions == [C, C, S, S, C, C, S, C, C]


async def test_small_rungs_keep_the_top_floor_n_over_eta() -> None:
    # Until a rung holds 2 * eta values only its best so far goes on: the fifth value, second best, stops
    # (top floor(5/3) = 1); the sixth, second best, goes on (top 2).
    assert await feed(ASHAPruner(), [(n, 1, v) for n, v in enumerate([1.0, 5.0, 6.0, 7.0, 2.0])]) == [C, S, S, S, S]
    six = [(n, 1, v) for n, v in enumerate([1.0, 5.0, 6.0, 7.0, 8.0, 2.0])]
    assert await feed(ASHAPruner(), six) == [C, S, S, S, S, C]
    # eta=2: the second of three stops (top 1), the second of four goes on (top 2).
    assert await feed(ASHAPruner(eta=2), [(0, 1, 1.0), (1, 1, 3.0), (2, 1, 2.0)]) == [C, S, S]
    assert await feed(ASHAPruner(eta=2), [(0, 1, 1.0), (1, 1, 3.0), (2, 1, 4.0), (3, 1, 2.0)]) == [C, S, S, C]


@pytest.mark.parametrize("eta", [2, 3, 4])
async def test_every_rank_at_every_rung_size_follows_the_rule(eta: int) -> None:
    # A rung already holding n - 1 values 1..n-1; a new value ranked r among n goes on iff r <= max(1, n // eta).
    for n in range(1, 16):
        for r in range(1, n + 1):
            pruner = ASHAPruner(eta=eta)
            await feed(pruner, [(t, 1, float(t + 1)) for t in range(n - 1)])
            assert pruner.observe(n, 1, r - 0.5) is (C if r <= max(1, n // eta) else S), (n, r)


async def test_reports_between_rungs_never_stop() -> None:
    pruner = ASHAPruner(min_resource=2, eta=2)
    # Trial 0 sets a very good bar at every rung; trial 1 is far worse but only judged at 2, 4, 8.
    d0 = await feed(pruner, [(0, s, 0.0) for s in range(1, 10)])
    assert d0 == [C] * 9
    d1 = [pruner.observe(1, s, 100.0) for s in range(1, 10)]
    assert d1 == [C, S, C, S, C, C, C, S, C]
    assert [r.level for r in pruner.rungs()] == [2, 4, 8]


async def test_a_report_that_skips_rungs_enters_each_of_them() -> None:
    pruner = ASHAPruner(min_resource=1, eta=3)
    await feed(pruner, [(0, 1, 1.0), (0, 3, 1.0), (0, 9, 1.0)])
    # Trial 1 reports first at step 10: it reached rungs 1, 3 and 9 with that value, and is worse there.
    assert pruner.observe(1, 10, 2.0) is S
    both = {0: 1.0, 1: 2.0}
    assert [(r.level, dict(r.values)) for r in pruner.rungs()] == [(1, both), (3, both), (9, both)]
    # A report between the same rungs again changes nothing.
    assert pruner.observe(1, 11, 50.0) is C


async def test_steps_that_do_not_increase_are_ignored() -> None:
    pruner = ASHAPruner()
    await feed(pruner, [(0, 1, 1.0), (1, 3, 5.0)])
    assert [dict(r.values) for r in pruner.rungs()] == [{0: 1.0, 1: 5.0}, {1: 5.0}]
    assert pruner.observe(1, 2, 0.0) is C
    assert [dict(r.values) for r in pruner.rungs()] == [{0: 1.0, 1: 5.0}, {1: 5.0}]


async def test_maximize_keeps_the_largest_values() -> None:
    values = [0.5, 0.6, 0.4, 0.9]
    assert await feed(ASHAPruner(), [(n, 1, v) for n, v in enumerate(values)], "maximize") == [C, C, S, C]
    assert await feed(ASHAPruner(), [(n, 1, v) for n, v in enumerate(values)], "minimize") == [C, S, C, S]


async def test_non_finite_values_rank_last_and_stop() -> None:
    pruner = ASHAPruner()
    assert await feed(pruner, [(0, 1, math.nan)]) == [S]
    assert pruner.observe(1, 1, 10.0) is C  # the NaN counts as worst, so 10 is the best of two
    assert pruner.observe(2, 1, math.inf) is S
    assert math.isnan(pruner.rungs()[0].values[0])


# -- the budget ----------------------------------------------------------------------


async def test_no_decision_at_or_above_max_resource() -> None:
    pruner = ASHAPruner(max_resource=9)
    await feed(pruner, [(0, s, 0.0) for s in (1, 3, 9)])
    assert pruner.observe(1, 1, 0.0) is C
    assert pruner.observe(1, 3, 0.0) is C
    # Rung 9 is the full budget: trial 1 is worse there yet keeps going.
    assert pruner.observe(1, 9, 5.0) is C
    assert pruner.resource_limit() == 9


async def test_max_resource_is_inferred_from_completed_trials() -> None:
    pruner = ASHAPruner()
    assert pruner.resource_limit() is None
    # Before any completion the rung at 9 decides.
    await feed(pruner, [(0, 1, 0.0), (0, 3, 0.0), (0, 9, 0.0), (1, 1, 0.0), (1, 3, 0.0)])
    assert pruner.observe(1, 9, 1.0) is S
    # Trial 0 completes at step 9: from then on a rung at 9 or above decides nothing.
    await pruner.tell(study(), record(0, {1: 0.0, 3: 0.0, 9: 0.0}, "complete"))
    assert pruner.resource_limit() == 9
    assert pruner.observe(2, 1, 0.0) is C
    assert pruner.observe(2, 3, 0.0) is C
    assert pruner.observe(2, 9, 7.0) is C
    # Pruned trials teach nothing about the budget.
    await pruner.tell(study(), record(1, {1: 0.0, 3: 0.0, 27: 1.0}, "pruned"))
    assert pruner.resource_limit() == 9


async def test_start_infers_max_resource_from_history() -> None:
    pruner = ASHAPruner()
    await pruner.start(study(records=(record(0, {1: 0.0, 3: 0.0}, "complete"),)))
    assert pruner.resource_limit() == 3
    assert pruner.observe(1, 1, 0.0) is C
    assert pruner.observe(1, 3, 9.0) is C


# -- concurrent arrival order -----------------------------------------------------------


def rule(seen: list[float], loss: float, eta: float = 3) -> hpt.Decision:
    """The documented rule: go on when fewer than max(1, floor(n / eta)) losses are strictly better."""
    n = len(seen) + 1
    better = sum(1 for s in seen if s < loss)
    return C if better < max(1, math.floor(n / eta)) else S


async def test_every_arrival_order_follows_the_rule_and_keeps_the_best() -> None:
    values = [3.0, 1.0, 4.0, 1.5, 5.0, 9.0]
    for order in itertools.permutations(range(len(values))):
        decisions = await feed(ASHAPruner(), [(n, 1, values[n]) for n in order])
        seen: list[float] = []
        for n, d in zip(order, decisions, strict=True):
            assert d is rule(seen, values[n]), (order, n)
            seen.append(values[n])
        by_trial = dict(zip(order, decisions, strict=True))
        assert by_trial[1] is C  # the best value goes on whatever the order
        assert by_trial[5] is S or order[0] == 5  # the worst stops unless it came first


async def test_interleaved_trials_judged_at_each_rung_by_what_arrived_before() -> None:
    # Three trials run at once and interleave their epochs; the rung at 3 sees them in this order.
    arrivals = [(0, 1, 0.9), (1, 1, 0.5), (2, 1, 0.4), (1, 2, 0.45), (2, 2, 0.35), (0, 2, 0.8)]
    arrivals += [(2, 3, 0.3), (1, 3, 0.2), (0, 3, 0.7)]
    pruner = ASHAPruner(max_resource=9)
    decisions = await feed(pruner, arrivals)
    assert decisions == [C, C, C, C, C, C, C, C, S]
    # A different arrival order at rung 3 changes who stops: trial 0 first is alone, so it goes on.
    swapped = [*arrivals[:6], (0, 3, 0.7), (2, 3, 0.3), (1, 3, 0.2)]
    assert await feed(ASHAPruner(max_resource=9), swapped) == [C] * 9


@settings(max_examples=60, deadline=None)
@given(
    st.lists(st.tuples(st.integers(0, 7), st.floats(-5, 5, allow_nan=False)), min_size=1, max_size=60),
    st.sampled_from([2, 3, 4]),
)
async def test_replaying_the_same_reports_gives_the_same_decisions(stream: list[tuple[int, float]], eta: int) -> None:
    # Trials report in any interleaving; steps of each trial increase by one.
    steps: dict[int, int] = {}
    reports = []
    for n, v in stream:
        steps[n] = steps.get(n, 0) + 1
        reports.append((n, steps[n], v))
    first = await feed(ASHAPruner(eta=eta), reports)
    second = await feed(ASHAPruner(eta=eta), reports)
    assert first == second
    # And each decision at a rung follows the rule on the values that arrived at that rung before it.
    rungs: dict[float, list[float]] = {}
    levels = {eta**k for k in range(8)}
    for (_, s, v), d in zip(reports, first, strict=True):
        if s in levels:
            seen = rungs.setdefault(s, [])
            assert d is rule(seen, v, eta)
            seen.append(v)
        else:
            assert d is C


async def test_rungs_rebuilt_by_start_equal_the_live_rungs() -> None:
    rng = random.Random(4)
    reports = [(n, s, rng.random()) for s in range(1, 12) for n in range(10)]
    rng.shuffle(reports)
    reports.sort(key=lambda r: r[1])  # each trial's steps in order, trials interleaved at random
    live = ASHAPruner()
    await feed(live, reports)
    by_trial: dict[int, dict[int, float]] = {}
    for n, s, v in reports:
        by_trial.setdefault(n, {})[s] = v
    rebuilt = ASHAPruner()
    await rebuilt.start(study(records=tuple(record(n, r, "pruned") for n, r in by_trial.items())))
    assert [(r.level, dict(r.values)) for r in rebuilt.rungs()] == [(r.level, dict(r.values)) for r in live.rungs()]


async def test_ended_events_replayed_in_order_reproduce_inferred_budget_decisions() -> None:
    events = [
        Reported(0, 1, 1.0, C),
        Reported(0, 3, 1.0, C),
        Ended(record(0, {1: 1.0, 3: 1.0}, "complete")),
        Reported(1, 1, 0.5, C),
        Reported(1, 3, 2.0, C),  # at or above the inferred budget: no decision
    ]
    decisions = [r.decision for r in await replay(ASHAPruner(), events)]
    assert decisions == [C, C, C, C]
    without_end = [e for e in events if isinstance(e, Reported)]
    assert [r.decision for r in await replay(ASHAPruner(), without_end)][-1] is S


# -- options -----------------------------------------------------------------------------


def test_unknown_options_are_named_with_the_accepted_ones() -> None:
    with pytest.raises(TypeError) as info:
        ASHAPruner(etta=3)
    message = str(info.value)
    assert "'etta'" in message and "did you mean 'eta'" in message
    assert "min_resource" in message and "max_resource" in message


@pytest.mark.parametrize(
    ("kwargs", "words"),
    [
        ({"eta": 1}, "eta"),
        ({"eta": "3"}, "eta"),
        ({"min_resource": 0}, "min_resource"),
        ({"max_resource": -1}, "max_resource"),
        ({"min_resource": 10, "max_resource": 5}, "below min_resource"),
        ({"min_resource": math.nan}, "min_resource"),
    ],
)
def test_bad_option_values_are_explained(kwargs: dict, words: str) -> None:
    with pytest.raises(ValueError, match=words):
        ASHAPruner(**kwargs)


def test_registered_by_name() -> None:
    reg = hpt.get_registry()
    assert reg.owner("pruner", "asha") == "hpt_async.pruners.asha"
    assert isinstance(reg.create("pruner", "asha"), ASHAPruner)
