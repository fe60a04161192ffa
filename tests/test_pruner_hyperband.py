"""``hyperband``: the budget split, reproducible bracket assignment, per-bracket rungs, options."""

from __future__ import annotations

import math
import random
from collections import Counter

import pytest

import hpt_async as hpt
from hpt_async.pruners import HyperbandPruner
from hpt_async.pruners._replay import Reported, replay

pytestmark = pytest.mark.anyio

C, S = hpt.Decision.CONTINUE, hpt.Decision.STOP


def test_brackets_follow_the_resource_range() -> None:
    assert HyperbandPruner(max_resource=27).brackets == 4
    assert HyperbandPruner(max_resource=26).brackets == 3
    assert HyperbandPruner(min_resource=2, max_resource=16, eta=2).brackets == 4
    assert HyperbandPruner(max_resource=1).brackets == 1
    assert HyperbandPruner().brackets == 4
    assert HyperbandPruner(brackets=2, max_resource=81).brackets == 2


def test_each_cycle_deals_hyperbands_split_exactly() -> None:
    pruner = HyperbandPruner(max_resource=27)
    # B=4, eta=3: bracket b starts ceil(4 * 3**s / (s + 1)) configurations, s = 3 - b halvings.
    assert pruner.shares() == [27, 12, 6, 4]
    for cycle in range(3):
        numbers = range(49 * cycle, 49 * (cycle + 1))
        assert Counter(pruner.bracket_of(n) for n in numbers) == {0: 27, 1: 12, 2: 6, 3: 4}
    assert HyperbandPruner(max_resource=8, eta=2).shares() == [8, 6, 4, 4]


def test_the_split_gives_every_bracket_about_the_same_budget() -> None:
    # Expected epochs per configuration in a bracket with s halvings from r: r * (1 + s * (eta - 1) / eta).
    pruner = HyperbandPruner(max_resource=81)
    budgets = []
    for b, share in enumerate(pruner.shares()):
        r, s = 3**b, pruner.brackets - 1 - b
        budgets.append(share * r * (1 + s * 2 / 3))
    assert max(budgets) / min(budgets) < 1.5


def test_assignment_depends_on_number_and_seed_only() -> None:
    a, b = HyperbandPruner(max_resource=27), HyperbandPruner(max_resource=27)
    numbers = [5, 400, 3, 77, 2000, 48, 49]
    assert [a.bracket_of(n) for n in numbers] == [b.bracket_of(n) for n in reversed(numbers)][::-1]
    assert [a.bracket_of(n) for n in range(200)] == [b.bracket_of(n) for n in range(200)]
    other = HyperbandPruner(max_resource=27, seed=1)
    assert [a.bracket_of(n) for n in range(49)] != [other.bracket_of(n) for n in range(49)]
    # Not simply round robin: two cycles are ordered differently.
    assert [a.bracket_of(n) for n in range(49)] != [a.bracket_of(n) for n in range(49, 98)]


async def test_each_bracket_has_its_own_rungs() -> None:
    pruner = HyperbandPruner(max_resource=27)
    by_bracket: dict[int, list[int]] = {}
    for n in range(200):
        by_bracket.setdefault(pruner.bracket_of(n), []).append(n)
    reports = [(n, s, float(n)) for n in range(60) for s in range(1, 28)]
    decisions = await replay(pruner, [Reported(n, s, v, C) for n, s, v in reports])
    for b in range(4):
        rungs = pruner.rungs(b)
        assert [r.level for r in rungs] == [3**k for k in range(b, 4)]
        assert set(rungs[0].values) == {n for n in by_bracket[b] if n < 60}
    # Bracket b decides nothing before its first rung, and nothing at 27 (the full budget).
    stops = {(r.number, r.step) for r in decisions if r.decision is S}
    assert stops
    for n, step in stops:
        assert step in (3 ** pruner.bracket_of(n), 3 ** (pruner.bracket_of(n) + 1), 9) and step < 27
    # Values grow with the trial number, so in each bracket the first trial to arrive is never stopped.
    for b in range(3):
        first = by_bracket[b][0]
        assert all(n != first for n, _ in stops)


def test_each_decision_follows_the_rule_within_its_bracket() -> None:
    # 150 trials interleave their epochs with random values, each stopping when told: at every deciding
    # rung a trial goes on iff it is in the top floor(n / 3) (at least 1) of the values its own bracket's
    # rung received so far, its own included; other brackets' values at the same level do not count.
    rng = random.Random(7)
    pruner = HyperbandPruner(max_resource=27)
    seen: dict[tuple[int, int], list[float]] = {}
    stopped: set[int] = set()
    judged = 0
    for s in range(1, 28):
        for n in range(150):
            if n in stopped:
                continue
            v = rng.random()
            decision = pruner.observe(n, s, v)
            b = pruner.bracket_of(n)
            if s in [3**k for k in range(b, 3)]:
                before = seen.setdefault((b, s), [])
                rank, size = 1 + sum(1 for x in before if x < v), len(before) + 1
                assert decision is (C if rank <= max(1, size // 3) else S), (n, s)
                before.append(v)
                judged += 1
            else:
                assert decision is C
            if decision is S:
                stopped.add(n)
    assert judged > 150 and len(stopped) > 50
    # Every bracket that decides (0, 1 and 2) stopped some of its trials.
    assert {pruner.bracket_of(n) for n in stopped} == {0, 1, 2}


async def test_rungs_are_rebuilt_from_history_per_bracket() -> None:
    view = hpt.StudyView("s", "maximize", hpt.Space({"x": hpt.Float(0.0, 1.0)}), 0)
    live = HyperbandPruner(max_resource=9)
    await live.start(view)
    for n in range(30):
        reports = {}
        for step in range(1, 10):
            reports[step] = math.sin(n * 7 + step)
            record = hpt.TrialRecord(n, hpt.TrialState.RUNNING, {}, reports=reports)
            if await live.decide(view, record, step, reports[step]) is S:
                break
        view._put(hpt.TrialRecord(n, hpt.TrialState.PRUNED, {}, reports=dict(reports)))
    rebuilt = HyperbandPruner(max_resource=9)
    await rebuilt.start(view)
    for b in range(live.brackets):
        assert [(r.level, dict(r.values)) for r in rebuilt.rungs(b)] == [
            (r.level, dict(r.values)) for r in live.rungs(b)
        ]
    with pytest.raises(ValueError, match="brackets 0 to 2"):
        rebuilt.rungs(3)


def test_options_are_checked() -> None:
    with pytest.raises(TypeError, match=r"'bracket'.*did you mean 'brackets'"):
        HyperbandPruner(bracket=3)
    with pytest.raises(ValueError, match="brackets must be an int >= 1"):
        HyperbandPruner(brackets=0)
    with pytest.raises(ValueError, match="seed"):
        HyperbandPruner(seed=-1)
    with pytest.raises(ValueError, match="seed must be below"):
        HyperbandPruner(seed=2**64)
    assert isinstance(hpt.get_registry().create("pruner", "hyperband"), HyperbandPruner)
