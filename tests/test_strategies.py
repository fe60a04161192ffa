"""The builtin strategies: random, sobol and grid, driven through the Tuner and directly."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Hashable, Mapping
from typing import Any

import anyio
import numpy as np
import pytest
from common import tune
from scipy.stats import qmc

import hpt_async as hpt
from hpt_async.space import Space
from hpt_async.study import StudyView

pytestmark = pytest.mark.anyio

MIXED = {
    "lr": hpt.Float(1e-5, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "units": hpt.Int(16, 256, when={"layers": [3, 4]}),
    "optimizer": hpt.Choice(["adam", "sgd", ("sgd", "nesterov")]),
    "momentum": hpt.Float(0.0, 0.99, when={"optimizer": ["sgd"]}),
}


async def instant(trial: hpt.Trial) -> float:
    """An objective that returns at once."""
    return float(trial.number)


async def jittery(trial: hpt.Trial) -> float:
    """An objective that sleeps a random short while, so trials finish out of order."""
    await anyio.sleep(random.random() * 0.004)
    return float(trial.number)


async def run(
    space: Mapping[str, Any] | Space,
    strategy: str | hpt.Strategy,
    *,
    seed: int = 0,
    concurrency: int = 1,
    max_trials: int | None = None,
    objective: Any = instant,
    storage: str | hpt.Storage = "memory",
    study: str | None = None,
) -> hpt.StudyResult:
    """One silent tuning run, guarded against hangs."""
    return await tune(
        objective, space, strategy, seed=seed, max_trials=max_trials, concurrency=concurrency, storage=storage,
        study=study,
    )  # fmt: skip


def by_number(result: hpt.StudyResult) -> dict[int, dict[str, Any]]:
    """Each trial's configuration, by trial number."""
    return {t.number: dict(t.params) for t in result.trials}


def key_of(params: Mapping[str, Any]) -> Hashable:
    """A hashable, type-aware key of a configuration."""
    return frozenset((k, type(v), v) for k, v in params.items())


def view(space: Mapping[str, Any], seed: int) -> StudyView:
    """A bare study view for calling a strategy directly."""
    return StudyView("direct", "minimize", hpt.space.as_space(space), seed)


# -- random and sobol ------------------------------------------------------------------


@pytest.mark.parametrize("strategy", ["random", "sobol"])
async def test_same_seed_gives_identical_params_across_runs(strategy: str) -> None:
    first = await run(MIXED, strategy, seed=123, max_trials=30)
    second = await run(MIXED, strategy, seed=123, max_trials=30)
    assert by_number(first) == by_number(second)
    assert sorted(by_number(first)) == list(range(30))
    assert first.count(hpt.TrialState.COMPLETE) == 30
    # Values and types are identical, tuples included.
    for a, b in zip(first.trials, second.trials, strict=True):
        assert [(k, type(v)) for k, v in a.params.items()] == [(k, type(v)) for k, v in b.params.items()]


@pytest.mark.parametrize("strategy", ["random", "sobol"])
async def test_trial_params_depend_only_on_seed_and_number_not_concurrency(strategy: str) -> None:
    serial = await run(MIXED, strategy, seed=5, max_trials=40, concurrency=1)
    parallel = await run(MIXED, strategy, seed=5, max_trials=40, concurrency=8, objective=jittery)
    assert parallel.count(hpt.TrialState.COMPLETE) == 40
    assert by_number(parallel) == by_number(serial)


@pytest.mark.parametrize("strategy", ["random", "sobol"])
async def test_different_seeds_give_different_params(strategy: str) -> None:
    a = by_number(await run(MIXED, strategy, seed=1, max_trials=10))
    b = by_number(await run(MIXED, strategy, seed=2, max_trials=10))
    assert sum(a[n] != b[n] for n in range(10)) >= 9


@pytest.mark.parametrize("strategy", ["random", "sobol"])
async def test_conditional_space_gives_valid_configurations(strategy: str) -> None:
    result = await run(MIXED, strategy, seed=9, max_trials=64)
    space = hpt.Space(MIXED)
    assert result.count(hpt.TrialState.COMPLETE) == 64
    layers_seen, optimizers_seen = set(), set()
    for t in result.trials:
        params = dict(t.params)
        assert space.validate(params) == params
        assert ("units" in params) == (params["layers"] in (3, 4))
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
        layers_seen.add(params["layers"])
        optimizers_seen.add(params["optimizer"])
    assert layers_seen == {1, 2, 3, 4}
    assert optimizers_seen == {"adam", "sgd", ("sgd", "nesterov")}


async def test_random_is_space_sample_of_seed_and_number() -> None:
    space = hpt.Space(MIXED)
    strategy = hpt.RandomStrategy()
    study = view(MIXED, 77)
    for n in (0, 3, 1000, 5):
        assert await strategy.ask(study, n) == space.sample(77, n)


async def test_sobol_asked_out_of_order_gives_the_same_points() -> None:
    in_order = hpt.SobolStrategy()
    study = view(MIXED, 4)
    forward = [await in_order.ask(study, n) for n in range(40)]
    backward_strategy = hpt.SobolStrategy()
    backward = {n: await backward_strategy.ask(study, n) for n in reversed(range(40))}
    assert [backward[n] for n in range(40)] == forward
    # A longer study keeps the prefix of a shorter one.
    long_run = by_number(await run(MIXED, "sobol", seed=4, max_trials=40))
    short_run = by_number(await run(MIXED, "sobol", seed=4, max_trials=17))
    assert {n: long_run[n] for n in range(17)} == short_run
    assert [long_run[n] for n in range(40)] == forward


async def test_sobol_imports_its_sequence_maker_in_a_worker_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """scipy.stats is slow to import: a first ask must not block the event loop (and the lease) with it."""
    import sys
    import threading

    from hpt_async.strategies import sobol

    loop_thread = threading.get_ident()
    imported_in: list[int] = []

    def fake_import() -> None:
        imported_in.append(threading.get_ident())
        sys.modules["hpt_async_test_sobol_maker"] = sys.modules["scipy.stats.qmc"]

    monkeypatch.setattr(sobol, "_QMC", "hpt_async_test_sobol_maker")
    monkeypatch.setattr(sobol, "_import_qmc", fake_import)
    monkeypatch.delitem(sys.modules, "hpt_async_test_sobol_maker", raising=False)
    strategy = hpt.SobolStrategy()
    study = view(MIXED, 4)
    first = [await strategy.ask(study, n) for n in range(5)]
    assert len(imported_in) == 1 and imported_in[0] != loop_thread  # once, and not on the loop's thread
    assert first == [await hpt.SobolStrategy().ask(study, n) for n in range(5)]


async def test_sobol_accepts_any_seed_the_tuner_accepts() -> None:
    """Tuner takes seeds in [0, 2**64); sobol must work (and reproduce) at both ends of that range."""
    space = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)}
    for seed in (0, 2**40, 2**64 - 1):
        a = await run(space, "sobol", seed=seed, max_trials=8)
        b = await run(space, "sobol", seed=seed, max_trials=8)
        assert a.count(hpt.TrialState.COMPLETE) == 8
        assert by_number(a) == by_number(b)
    for bad in (-1, 2**64, 2**70):
        with pytest.raises(ValueError, match="seed"):
            hpt.Tuner(lambda t: 0.0, space, strategy="sobol", seed=bad, loggers=[])


UNIT_SQUARE = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)}


def unit_points(result: hpt.StudyResult) -> np.ndarray:
    """The trials' configurations encoded onto the unit square, in trial order."""
    space = hpt.Space(UNIT_SQUARE)
    return np.array([space.to_unit(t.params) for t in result.trials])


def every_cell_once(points: np.ndarray, cells: int) -> bool:
    """True when each of the ``cells x cells`` squares holds exactly one point."""
    idx = np.minimum((points * cells).astype(int), cells - 1)
    counts = Counter(map(tuple, idx))
    return len(counts) == cells * cells and set(counts.values()) == {1}


def every_stratum_once(column: np.ndarray) -> bool:
    """True when the n values fall one in each of n equal intervals."""
    n = len(column)
    return sorted(np.minimum((column * n).astype(int), n - 1)) == list(range(n))


@pytest.mark.parametrize("seed", [0, 1, 2])
async def test_sobol_covers_the_cube_more_evenly_than_random(seed: int) -> None:
    sobol = unit_points(await run(UNIT_SQUARE, "sobol", seed=seed, max_trials=64))
    rand = unit_points(await run(UNIT_SQUARE, "random", seed=seed, max_trials=64))
    assert sobol.shape == rand.shape == (64, 2)
    # 64 scrambled Sobol' points: one in each 8x8 cell, one in each 1/64 strip per axis.
    assert every_cell_once(sobol, 8)
    assert every_stratum_once(sobol[:, 0]) and every_stratum_once(sobol[:, 1])
    assert not every_cell_once(rand, 8)
    assert not every_stratum_once(rand[:, 0])
    assert qmc.discrepancy(sobol) < qmc.discrepancy(rand) / 2


# -- grid -----------------------------------------------------------------------------


GRID_SPACE = {
    "a": hpt.Int(0, 2),
    "b": hpt.Choice(["x", "y", None]),
    "c": hpt.Float(0.0, 1.0),
}


def grid_keys(space: Mapping[str, Any], points: int) -> set[Hashable]:
    """Every point of the space's grid."""
    return {key_of(p) for p in hpt.Space(space).grid(points)}


async def test_grid_visits_every_point_once_then_reports_exhausted() -> None:
    result = await run(GRID_SPACE, hpt.GridStrategy(points=3))
    keys = [key_of(t.params) for t in result.trials]
    assert len(keys) == 3 * 3 * 3
    assert len(set(keys)) == len(keys)
    assert set(keys) == grid_keys(GRID_SPACE, 3)
    assert result.reason == hpt.StopReason.EXHAUSTED == "exhausted"
    assert result.count(hpt.TrialState.COMPLETE) == 27


async def test_grid_by_name_uses_five_points_per_numeric_parameter() -> None:
    space = {"lr": hpt.Float(1e-4, 1e0, log=True), "opt": hpt.Choice(["adam", "sgd"])}
    result = await run(space, "grid")
    assert result.reason == "exhausted"
    assert len(result.trials) == 10
    lrs = sorted({t.params["lr"] for t in result.trials})
    assert lrs == pytest.approx([1e-4, 1e-3, 1e-2, 1e-1, 1e0])


class Overlap:
    """A jittery objective that records how many trials ran at once."""

    def __init__(self) -> None:
        self.now = 0
        self.peak = 0

    async def __call__(self, trial: hpt.Trial) -> float:
        self.now += 1
        self.peak = max(self.peak, self.now)
        try:
            await anyio.sleep(random.random() * 0.004)
        finally:
            self.now -= 1
        return float(trial.number)


async def test_grid_never_repeats_under_concurrency() -> None:
    space = {**GRID_SPACE, "d": hpt.Int(1, 1000, log=True)}
    objective = Overlap()
    result = await run(space, hpt.GridStrategy(points=3), concurrency=8, objective=objective)
    assert objective.peak == 8
    keys = [key_of(t.params) for t in result.trials]
    assert len(keys) == 81
    assert len(set(keys)) == 81
    assert set(keys) == grid_keys(space, 3)
    assert result.reason == "exhausted"
    assert result.count(hpt.TrialState.COMPLETE) == 81


async def test_grid_order_does_not_depend_on_concurrency() -> None:
    serial = by_number(await run(GRID_SPACE, hpt.GridStrategy(points=2)))
    parallel = by_number(await run(GRID_SPACE, hpt.GridStrategy(points=2), concurrency=8, objective=jittery))
    assert parallel == serial
    assert [serial[n] for n in sorted(serial)] == list(hpt.Space(GRID_SPACE).grid(2))


async def test_grid_handles_conditional_spaces() -> None:
    space = {
        "layers": hpt.Int(1, 4),
        "units": hpt.Choice([32, 64], when={"layers": [3, 4]}),
        "optimizer": hpt.Choice(["adam", "sgd"]),
        "momentum": hpt.Float(0.0, 0.9, when={"optimizer": "sgd"}),
    }
    result = await run(space, hpt.GridStrategy(points=4), concurrency=3, objective=jittery)
    keys = [key_of(t.params) for t in result.trials]
    # layers: 1, 2, 3x2 units, 4x2 units = 6; optimizer: adam, sgd x 4 momenta = 5.
    assert len(keys) == 30 == len(set(keys))
    assert set(keys) == grid_keys(space, 4)
    for t in result.trials:
        assert ("units" in t.params) == (t.params["layers"] >= 3)
        assert ("momentum" in t.params) == (t.params["optimizer"] == "sgd")
    assert result.reason == "exhausted"


async def in_trial_order(strategy: hpt.GridStrategy, seed: int = 0) -> list[dict[str, Any]]:
    """The configurations of a grid run, in trial-number order."""
    params = by_number(await run(GRID_SPACE, strategy, seed=seed))
    return [params[n] for n in sorted(params)]


async def test_grid_shuffle_is_a_seeded_permutation() -> None:
    plain = await in_trial_order(hpt.GridStrategy(points=3))
    shuffled_a = await in_trial_order(hpt.GridStrategy(3, shuffle=True), seed=1)
    shuffled_b = await in_trial_order(hpt.GridStrategy(3, shuffle=True), seed=1)
    shuffled_c = await in_trial_order(hpt.GridStrategy(3, shuffle=True), seed=2)
    assert shuffled_a == shuffled_b
    assert shuffled_a != plain and shuffled_c != shuffled_a
    for order in (shuffled_a, shuffled_c):
        assert sorted(map(repr, map(key_of, order))) == sorted(map(repr, map(key_of, plain)))
        assert len(order) == 27


async def test_grid_resumed_study_continues_without_repeats() -> None:
    storage = hpt.MemoryStorage()
    first = await run(GRID_SPACE, hpt.GridStrategy(points=3), storage=storage, study="g", max_trials=10, concurrency=4)
    assert first.reason == "max_trials"
    assert len(first.trials) == 10
    first_keys = {key_of(t.params) for t in first.trials}
    assert len(first_keys) == 10

    second = await run(GRID_SPACE, hpt.GridStrategy(points=3), storage=storage, study="g", concurrency=4)
    assert second.reason == "exhausted"
    assert len(second.trials) == 27  # the whole study, earlier trials included
    keys = [key_of(t.params) for t in second.trials]
    assert len(set(keys)) == 27
    assert set(keys) == grid_keys(GRID_SPACE, 3)
    new = [key_of(t.params) for t in second.trials if t.number >= 10]
    assert len(new) == 17 and first_keys.isdisjoint(new)


async def test_grid_skips_an_enqueued_point() -> None:
    tuner = hpt.Tuner(instant, GRID_SPACE, strategy=hpt.GridStrategy(points=3), loggers=[], seed=0)
    tuner.enqueue({"a": 1, "b": None, "c": 0.5})
    with anyio.fail_after(30):
        result = await tuner.run()
    assert dict(result.trials[0].params) == {"a": 1, "b": None, "c": 0.5}
    keys = [key_of(t.params) for t in result.trials]
    assert len(keys) == 27 == len(set(keys))


async def test_grid_ask_and_tell_offers_a_cancelled_point_again_and_runs_out() -> None:
    space = {"a": hpt.Int(0, 1), "b": hpt.Choice(["x"])}
    tuner = hpt.Tuner(instant, space, strategy="grid", loggers=[], seed=0)
    with anyio.fail_after(30):
        first = await tuner.ask()
        await tuner.tell(first, state=hpt.TrialState.CANCELLED)
        again = await tuner.ask()
        assert again.params == first.params and again.number != first.number
        await tuner.tell(again, 1.0)
        other = await tuner.ask()
        assert other.params != first.params
        await tuner.tell(other, 2.0)
        with pytest.raises(hpt.StrategyExhausted):
            await tuner.ask()
        result = await tuner.close()
    assert result.reason == "exhausted"
    assert result.count(hpt.TrialState.COMPLETE) == 2


async def test_grid_strategy_size_and_bad_points() -> None:
    strategy = hpt.GridStrategy(points=4)
    await strategy.start(view(GRID_SPACE, 0))
    assert strategy.size == 3 * 3 * 4
    for bad in (0, -1, 2.5, True):
        with pytest.raises(ValueError):
            hpt.GridStrategy(points=bad)  # type: ignore[arg-type]


async def test_a_plain_dict_space_is_accepted_by_the_tuner() -> None:
    tuner = hpt.Tuner(instant, {"x": hpt.Float(0.0, 1.0)}, max_trials=3, loggers=[], seed=0, strategy="random")
    assert isinstance(tuner.space, hpt.Space)
    with anyio.fail_after(30):
        result = await tuner.run()
    assert len(result.trials) == 3 and all(0.0 <= t.params["x"] <= 1.0 for t in result.trials)
