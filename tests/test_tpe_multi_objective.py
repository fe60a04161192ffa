"""``tpe`` with several objectives (MOTPE) and with constraints: the good/bad split, and runs through the Tuner."""

from __future__ import annotations

import itertools
import math
from typing import Any

import numpy as np
import pytest
from common import SQUARE, tune
from hypothesis import given, settings
from hypothesis import strategies as st

import hpt_async as hpt
from hpt_async._pareto import default_reference_point, front_ranks, nondominated_ranks
from hpt_async.strategies.tpe import TPEStrategy, greedy_hypervolume_subset, split_order

pytestmark = pytest.mark.anyio

# -- the split -------------------------------------------------------------------------------


def test_one_objective_with_constraints_puts_infeasible_trials_last_by_violation() -> None:
    losses = np.array([[3.0], [0.5], [2.0], [-1.0], [1.0]])
    violations = np.array([0.0, 0.2, 0.0, 0.05, 0.0])
    # feasible by loss (4: 1.0, 2: 2.0, 0: 3.0), then infeasible by violation (3: 0.05, 1: 0.2)
    assert split_order(losses, violations, 2).tolist() == [4, 2, 0, 3, 1]


def test_with_too_few_feasible_trials_the_least_violating_join_the_good_group() -> None:
    losses = np.array([[0.0, 0.0], [5.0, 5.0], [1.0, 1.0], [2.0, 0.5]])
    violations = np.array([3.0, 0.0, 1.0, 2.0])
    order = split_order(losses, violations, 2).tolist()
    assert order == [1, 2, 3, 0]


@st.composite
def clouds(draw: Any) -> tuple[np.ndarray, np.ndarray, int]:
    m = draw(st.integers(2, 3))
    n = draw(st.integers(1, 30))
    grid = st.integers(0, 6)  # coarse values: ties and duplicates happen
    losses = np.array([[draw(grid) for _ in range(m)] for _ in range(n)], dtype=float)
    violations = np.array([draw(st.sampled_from([0.0, 0.0, 0.0, 0.5, 1.0])) for _ in range(n)])
    return losses, violations, draw(st.integers(1, n))


@settings(max_examples=150, deadline=None)
@given(clouds())
def test_the_good_group_is_whole_fronts_then_a_greedy_hypervolume_pick(case: tuple[Any, Any, int]) -> None:
    losses, violations, n_good = case
    order = split_order(losses, violations, n_good)
    assert sorted(order.tolist()) == list(range(len(losses)))  # a permutation
    ranks = nondominated_ranks(losses.tolist(), violations.tolist())  # constrained domination, brute force
    good, bad = order[:n_good], order[n_good:]
    # No trial left out of the good group ranks better than one in it.
    assert max(ranks[i] for i in good) <= min((ranks[i] for i in bad), default=math.inf)
    cut = max(ranks[i] for i in good)
    tie = [i for i in range(len(losses)) if ranks[i] == cut]
    if violations[tie[0]] <= 0.0 and len(tie) > sum(ranks[i] == cut for i in good):
        # The cut front: the chosen members are the greedy hypervolume choice among them.
        room = sum(ranks[i] == cut for i in good)
        picked = greedy_hypervolume_subset(losses[tie], room)
        assert sorted(np.array(tie)[picked].tolist()) == sorted(i for i in good if ranks[i] == cut)


@pytest.mark.parametrize("m", [2, 3])
def test_large_sets_split_as_their_full_non_dominated_sorting_says(m: int) -> None:
    """Past a few dozen trials the split counts domination against leaders only; it must still be exact."""
    rng = np.random.default_rng(m)
    for n, n_good in ((300, 25), (1000, 10), (500, 1)):
        losses = np.round(rng.random((n, m)), 2)  # rounded: ties happen
        if m == 2:
            losses[:, 1] += 1.0 - losses[:, 0]  # a correlated pair: deep fronts
        order = split_order(losses, np.zeros(n), n_good)
        ranks = front_ranks(losses.tolist())
        good, bad = order[:n_good], order[n_good:]
        assert sorted(order.tolist()) == list(range(n))
        assert max(ranks[i] for i in good) <= min(ranks[i] for i in bad)


def _greedy_by_brute_force(front: np.ndarray, k: int) -> float:
    rows = [tuple(r) for r in front]
    ref = default_reference_point(rows)
    chosen: list[int] = []
    for _ in range(k):
        gains = {i: hpt.hypervolume([rows[j] for j in [*chosen, i]], ref) for i in range(len(rows)) if i not in chosen}
        chosen.append(max(gains, key=lambda i: gains[i]))
    return hpt.hypervolume([rows[j] for j in chosen], ref)


@settings(max_examples=100, deadline=None)
@given(st.integers(2, 3), st.integers(2, 12), st.integers(0, 10_000))
def test_greedy_hypervolume_subset_matches_the_plain_greedy_choice(m: int, n: int, seed: int) -> None:
    rng = np.random.default_rng(seed)
    # Points on a sphere's positive part: mutually non-dominated.
    x = np.abs(rng.normal(size=(n, m)))
    front = 1.0 - x / np.linalg.norm(x, axis=1, keepdims=True)
    k = int(rng.integers(1, n + 1))
    picked = greedy_hypervolume_subset(front, k)
    assert len(set(picked)) == k
    ref = default_reference_point([tuple(r) for r in front])
    got = hpt.hypervolume([tuple(front[i]) for i in picked], ref)
    assert got == pytest.approx(_greedy_by_brute_force(front, k), rel=1e-9)


def test_greedy_hypervolume_subset_keeps_the_spread_of_a_front() -> None:
    # Five points on a line, reference point (4.4, 4.4): the middle one dominates the most alone.
    front = np.array([[0.0, 4.0], [1.0, 3.0], [2.0, 2.0], [3.0, 1.0], [4.0, 0.0]])
    ref = default_reference_point([tuple(r) for r in front])
    best = max(itertools.combinations(range(5), 2), key=lambda c: hpt.hypervolume([tuple(front[i]) for i in c], ref))
    assert greedy_hypervolume_subset(front, 1) == [2]
    assert sorted(greedy_hypervolume_subset(front, 2)) in ([1, 2], [2, 3])  # greedy: the middle, then a neighbour
    assert sorted(best) == [1, 3]  # (the best pair is not greedy's: greedy is an approximation)
    # A front far larger than the room left is cut by crowding distance: the extremes first.
    many = np.column_stack([np.linspace(0, 1, 2000), 1 - np.linspace(0, 1, 2000)])
    assert {0, 1999} <= set(greedy_hypervolume_subset(many, 3))


# -- through the Tuner -------------------------------------------------------------------------------


def _zdt1(params: dict[str, Any]) -> tuple[float, float]:
    x = [params[f"x{i}"] for i in range(4)]
    g = 1 + 9 * sum(x[1:]) / 3
    return x[0], g * (1 - math.sqrt(x[0] / g))


ZDT_SPACE = {f"x{i}": hpt.Float(0.0, 1.0) for i in range(4)}


def _zdt1_objective(trial: hpt.Trial) -> tuple[float, float]:
    return _zdt1(trial.params)


async def _zdt_hv(strategy: str, seed: int, **options: Any) -> float:
    both = ["minimize"] * 2
    result = await tune(_zdt1_objective, ZDT_SPACE, strategy, seed=seed, max_trials=60, directions=both, **options)
    assert len(result.trials) == 60
    return result.hypervolume(reference_point=(1.1, 11.0))


async def test_tpe_with_two_objectives_beats_random_search() -> None:
    tpe = [await _zdt_hv("tpe", seed) for seed in range(3)]
    rand = [await _zdt_hv("random", seed) for seed in range(3)]
    assert all(t > r for t, r in zip(tpe, rand, strict=True)), (tpe, rand)


async def test_several_objectives_under_concurrency_and_maximised_objectives() -> None:
    def objective(trial: hpt.Trial) -> tuple[float, float]:
        a, b = _zdt1(trial.params)
        return -a, b  # the first objective maximised

    result = await tune(
        objective, ZDT_SPACE, "tpe", seed=3, max_trials=40, concurrency=4, directions=["maximize", "minimize"]
    )
    assert len(result.trials) == 40 and result.best_trials
    hv = result.hypervolume(reference_point=(-1.1, 11.0))
    assert hv > 0


async def test_a_seeded_multi_objective_run_repeats_at_concurrency_one() -> None:
    a = await tune(_zdt1_objective, ZDT_SPACE, "tpe", seed=9, max_trials=30, directions=["minimize"] * 2)
    b = await tune(_zdt1_objective, ZDT_SPACE, "tpe", seed=9, max_trials=30, directions=["minimize"] * 2)
    assert [t.params for t in a.trials] == [t.params for t in b.trials]


def test_the_default_good_fraction_depends_on_the_number_of_objectives() -> None:
    strategy = TPEStrategy()
    assert strategy._n_good(100) == 15
    strategy._several = True
    assert strategy._n_good(100) == 10
    assert TPEStrategy(gamma=0.3)._n_good(100) == 25  # max_good caps it


def _constrained(trial: hpt.Trial) -> float:
    x, y = trial.params["x"], trial.params["y"]
    trial.set_constraints([x + y - 1.0])  # the unconstrained optimum (0.9, 0.9) is infeasible
    return (x - 0.9) ** 2 + (y - 0.9) ** 2


def _ignoring(trial: hpt.Trial) -> float:
    x, y = trial.params["x"], trial.params["y"]
    return (x - 0.9) ** 2 + (y - 0.9) ** 2


@pytest.mark.parametrize("concurrency", [1, 4])
async def test_constrained_tpe_searches_the_feasible_region(concurrency: int) -> None:
    """The feasible optimum is (0.5, 0.5), value 0.32; TPE that ignores the constraint crowds at (0.9, 0.9)."""
    for seed in range(2):
        result = await tune(_constrained, SQUARE, "tpe", seed=seed, max_trials=60, concurrency=concurrency)
        late = result.trials[-30:]
        assert sum(t.feasible for t in late) >= 15
        # At concurrency 1 the run repeats exactly; at 4 the order of results (and so the points) depends on
        # timing, so only a looser bound is certain there (0.365 was seen on a loaded machine).
        bound = 0.35 if concurrency == 1 else 0.4
        assert result.best is not None and result.best.feasible and result.best.value < bound
        blind = await tune(_ignoring, SQUARE, "tpe", seed=seed, max_trials=60, concurrency=concurrency)
        assert sum(t.params["x"] + t.params["y"] <= 1.0 for t in blind.trials[-30:]) < 15


async def test_constraints_with_several_objectives() -> None:
    def objective(trial: hpt.Trial) -> tuple[float, float]:
        f1, f2 = _zdt1(trial.params)
        trial.set_constraints([0.3 - f1])  # f1 >= 0.3
        return f1, f2

    result = await tune(objective, ZDT_SPACE, "tpe", seed=1, max_trials=50, directions=["minimize"] * 2)
    assert result.best_trials and all(t.values[0] >= 0.3 for t in result.best_trials)
    assert sum(t.feasible for t in result.trials[-25:]) >= 15


async def test_a_resumed_study_relearns_values_and_constraints(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 's.db'}"
    await tune(_constrained, SQUARE, "tpe", seed=4, max_trials=20, storage=url, study="c")
    strategy = TPEStrategy()
    tuner = hpt.Tuner(_constrained, SQUARE, strategy=strategy, seed=4, max_trials=40, storage=url, study="c",
                      loggers=[])  # fmt: skip
    result = await tuner.run()
    assert len(result.trials) == 40
    assert strategy._constrained == 40 and len(strategy._values) == 40
    assert sum(t.feasible for t in result.trials[20:]) >= 10


class _StepWatch(TPEStrategy):
    """Records every step the model moves to (``None``: final values)."""

    def __init__(self) -> None:
        super().__init__()
        self.steps: list[int | None] = []

    def _level_changed(self) -> None:
        self.steps.append(self.fidelity_step)


async def test_several_objectives_with_mo_asha_and_a_mixed_space_learn_from_final_values() -> None:
    """Reports feed MO-ASHA; tpe itself models final values only there (and handles Choice/conditional)."""
    space = {
        "kind": hpt.Choice(["wide", "deep"]),
        "x": hpt.Float(0.0, 1.0),
        "y": hpt.Float(0.0, 1.0, when={"kind": "deep"}),
    }

    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        p = trial.params
        a = p["x"] + (0.3 if p["kind"] == "wide" else p["y"])
        b = 1.0 - p["x"]
        for step in range(1, 10):
            await trial.report((a + 1.0 / step, b), step=step)
        return a, b

    strategy = _StepWatch()
    result = await tune(
        objective, space, strategy, seed=2, max_trials=40, directions=["minimize"] * 2,
        pruner={"name": "asha", "max_resource": 9},
    )  # fmt: skip
    states = {t.state for t in result.trials}
    assert hpt.TrialState.PRUNED in states and result.best_trials
    assert strategy.steps == []  # several objectives: never modelled at a reported step


@pytest.mark.parametrize("constrained", [True, False])
async def test_constraints_keep_a_single_objective_study_on_final_values(constrained: bool) -> None:
    async def objective(trial: hpt.Trial) -> float:
        x, y = trial.params["x"], trial.params["y"]
        for step in range(1, 10):
            await trial.report((x - 0.9) ** 2 + (y - 0.9) ** 2 + 1.0 / step, step=step)
        if constrained:
            trial.set_constraints([x + y - 1.0])
        return (x - 0.9) ** 2 + (y - 0.9) ** 2

    strategy = _StepWatch()
    pruner = {"name": "asha", "max_resource": 9}
    result = await tune(objective, SQUARE, strategy, seed=1, max_trials=30, pruner=pruner, concurrency=4)
    assert result.best is not None and result.best.feasible
    if constrained:
        assert strategy.steps == [] and strategy._constrained > 0
    else:  # the control: without constraints the same study is modelled at a reported step for a while
        assert any(step is not None for step in strategy.steps)
