"""The ``cmaes`` strategy: CMA-ES with IPOP restarts, pending-aware and resumable from storage."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import MIXED, tune

import hpt_async as hpt
from hpt_async.strategies.cmaes import CmaEsStrategy, cmaes_dimensions

pytestmark = pytest.mark.anyio

BOX = {f"x{i}": hpt.Float(-5.0, 5.0) for i in range(4)}


def sphere(trial: hpt.SyncTrial) -> float:
    return sum((trial.params[f"x{i}"] - 1.0) ** 2 for i in range(4))


def params_of(result: hpt.StudyResult) -> list[dict[str, Any]]:
    return [t.params for t in result.trials]


async def test_a_seeded_run_repeats_itself_at_concurrency_one() -> None:
    first = await tune(sphere, BOX, "cmaes", seed=5, max_trials=40)
    second = await tune(sphere, BOX, "cmaes", seed=5, max_trials=40)
    other = await tune(sphere, BOX, "cmaes", seed=6, max_trials=40)
    assert params_of(first) == params_of(second)
    assert params_of(first) != params_of(other)


async def test_it_searches_better_than_random_on_a_sphere() -> None:
    cma = await tune(sphere, BOX, "cmaes", seed=1, max_trials=120)
    rnd = await tune(sphere, BOX, "random", seed=1, max_trials=120)
    assert cma.best.value < rnd.best.value / 10


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
async def test_a_resumed_study_continues_as_if_never_interrupted(storage: str, tmp_path: Path) -> None:
    """30 trials, then a new tuner resumes the stored study to 70: the same trials as one run of 70."""
    store: Any = hpt.MemoryStorage() if storage == "memory" else f"sqlite:///{tmp_path / 'c.db'}"
    await tune(sphere, BOX, "cmaes", seed=3, max_trials=30, storage=store, study="s")
    resumed = await tune(sphere, BOX, "cmaes", seed=3, max_trials=70, storage=store, study="s")
    whole = await tune(sphere, BOX, "cmaes", seed=3, max_trials=70)
    assert len(resumed.trials) == 70
    assert params_of(resumed) == params_of(whole)


async def test_the_state_rebuilt_from_history_has_learnt_its_generations() -> None:
    store = hpt.MemoryStorage()
    await tune(sphere, BOX, "cmaes", seed=3, max_trials=40, storage=store, study="s")
    strategy = CmaEsStrategy()
    tuner = hpt.Tuner(sphere, BOX, strategy=strategy, storage=store, study="s", max_trials=40, loggers=[])
    await tuner.run()  # nothing left to run: it opens, rebuilds, and closes
    popsize = 4 + 4  # 4 + floor(3 ln 4)
    assert strategy.generation == 40 // popsize
    assert abs(strategy._optimizer.mean - 0.5).max() > 0.01  # the mean moved from the centre


async def test_free_workers_get_points_of_the_current_generation_and_results_update_it() -> None:
    """At concurrency 12 with a population of 4, no worker waits for a generation to end."""
    strategy = CmaEsStrategy(popsize=4)

    async def slow_sphere(trial: hpt.Trial) -> float:
        await anyio.sleep(0.001 * (trial.number % 5))
        return sum((trial.params[f"x{i}"] - 1.0) ** 2 for i in range(4))

    result = await tune(slow_sphere, BOX, strategy, max_trials=96, concurrency=12)
    assert result.count("complete") == 96
    assert strategy.generation >= 5
    assert len({tuple(p.values()) for p in params_of(result)}) == 96


async def test_ipop_restarts_with_a_larger_population_once_it_converges() -> None:
    strategy = CmaEsStrategy(popsize=4, sigma0=0.3)

    def flat(trial: hpt.SyncTrial) -> float:
        return 1.0  # no spread of values: cmaes stops once its history of values is long enough (40 generations)

    await tune(flat, BOX, strategy, max_trials=200)
    assert strategy.restart_count >= 1
    assert strategy._optimizer.population_size == 4 * 2**strategy.restart_count


async def test_no_restart_when_restarts_are_off() -> None:
    strategy = CmaEsStrategy(popsize=4, restarts=None)
    await tune(lambda t: 1.0, BOX, strategy, max_trials=200)
    assert strategy.restart_count == 0


async def test_integers_stay_integers() -> None:
    space = {"a": hpt.Int(0, 100), "b": hpt.Int(1, 1000, log=True), "c": hpt.Float(0, 1)}
    result = await tune(lambda t: abs(t.params["a"] - 30) + abs(t.params["b"] - 50) / 10, space, "cmaes", max_trials=60)
    assert all(isinstance(t.params["a"], int) and isinstance(t.params["b"], int) for t in result.trials)
    assert result.best.value < 10


async def test_choice_and_conditional_parameters_are_refused_by_default() -> None:
    with pytest.raises(hpt.StudyError, match=r"cannot search \['units', 'optimizer'\]|cannot search") as info:
        await tune(lambda t: 0.0, MIXED, "cmaes", max_trials=5)
    assert isinstance(info.value.__cause__, hpt.SpaceError)
    assert "others': 'random'" in str(info.value)


async def test_others_random_draws_them_at_random() -> None:
    result = await tune(
        lambda t: (t.params["dropout"] - 0.2) ** 2, MIXED, {"name": "cmaes", "others": "random"}, max_trials=40
    )
    assert len({t.params["optimizer"] for t in result.trials}) > 1
    assert any("units" in t.params for t in result.trials) and any("units" not in t.params for t in result.trials)


def test_which_parameters_it_searches() -> None:
    space = hpt.Space(
        {
            "a": hpt.Float(0, 1),
            "k": hpt.Int(1, 4),
            "u": hpt.Int(1, 9, when={"k": [3, 4]}),
            "c": hpt.Choice(["x", "y"]),
            "one": hpt.Choice(["only"]),
        }
    )
    assert cmaes_dimensions(space) == (["a"], ["k", "u", "c"])


async def test_one_numeric_parameter_is_too_few() -> None:
    with pytest.raises(hpt.StudyError, match="at least two numeric parameters"):
        await tune(lambda t: 0.0, {"x": hpt.Float(0, 1)}, "cmaes", max_trials=3)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"sigma0": 0}, "sigma0"),
        ({"popsize": 1}, "popsize"),
        ({"inc_popsize": 0}, "inc_popsize"),
        ({"restarts": "bipop"}, "restarts"),
        ({"others": "drop"}, "others"),
    ],
)
def test_bad_options_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hpt.Tuner(sphere, BOX, strategy={"name": "cmaes", **options}, loggers=[])


async def test_without_the_package_it_says_what_to_install(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setitem(sys.modules, "cmaes", None)
    with pytest.raises(hpt.StudyError, match=r"pip install 'hpt-async\[cmaes\]'") as info:
        await tune(sphere, BOX, "cmaes", max_trials=3)
    assert isinstance(info.value.__cause__, hpt.MissingDependency)


async def test_maximise_is_searched_as_minimising_the_negation() -> None:
    result = await tune(lambda t: -sphere(t), BOX, "cmaes", max_trials=120, direction="maximize")
    assert result.best.value > -0.5
