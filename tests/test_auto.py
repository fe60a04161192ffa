"""``strategy="auto"``, the default: its rule, and a choice printed, stored and kept by a resumed study."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from common import MIXED, tune

import hpt_async as hpt
from hpt_async.contracts.storage import merge_settings
from hpt_async.strategies import auto
from hpt_async.strategies.auto import ASSUMED_BUDGET, AutoStrategy, choose

pytestmark = pytest.mark.anyio


def box(d: int) -> hpt.Space:
    return hpt.Space({f"x{i}": hpt.Float(0, 1) for i in range(d)})


def chosen(space: Any, max_trials: int | None, concurrency: int = 1, objectives: int = 1) -> str:
    return choose(hpt.Space(space), max_trials, concurrency, objectives)[0]["name"]


# -- the rule, space by space -------------------------------------------------------------


@pytest.mark.parametrize(
    ("budget", "objectives", "expected", "said"),
    [
        (50, 2, "tpe", "2 objectives, budget 50 <= 300"),
        (300, 3, "tpe", "3 objectives, budget 300 <= 300"),
        (None, 2, "tpe", "2 objectives, budget 200 (assumed: no max_trials) <= 300"),
        (301, 2, "evolution", "2 objectives, budget 301 > 300"),
        (50, 4, "evolution", "4 objectives (more than 3)"),
    ],
)
def test_several_objectives_in_conditional_or_categorical_spaces(
    budget: int | None, objectives: int, expected: str, said: str
) -> None:
    for space, shape in (
        (MIXED, "conditional parameters"),
        ({"c": hpt.Choice(list("abcdefghijklmn"))}, "1 of 1 parameters are categorical"),
    ):
        spec, reason = choose(hpt.Space(space), budget, 1, objectives)
        assert spec == {"name": expected}
        assert reason == (said + f" ({shape})" if expected == "tpe" else said)
        assert hpt.get_registry().create("strategy", spec).multi_objective


@pytest.mark.parametrize(
    ("d", "budget", "concurrency", "objectives", "expected", "said"),
    [
        (3, 50, 1, 2, "bayes", "2 objectives, 3 parameters, budget 50 <= 100, concurrency 1"),
        (10, 100, 8, 3, "bayes", "3 objectives, 10 parameters, budget 100 <= 100, concurrency 8"),
        (3, 101, 1, 2, "tpe", "2 objectives, budget 101 <= 300"),
        (11, 50, 1, 2, "tpe", "2 objectives, budget 50 <= 300 (11 parameters)"),
        (3, 50, 9, 2, "tpe", "2 objectives, budget 50 <= 300 (concurrency 9)"),
        (3, None, 1, 2, "tpe", "2 objectives, budget 200 (assumed: no max_trials) <= 300"),
        (3, 301, 1, 3, "evolution", "3 objectives, budget 301 > 300"),
        (3, 50, 1, 4, "evolution", "4 objectives (more than 3)"),
    ],
)
def test_several_objectives_in_numeric_spaces(
    d: int, budget: int | None, concurrency: int, objectives: int, expected: str, said: str
) -> None:
    spec, reason = choose(box(d), budget, concurrency, objectives)
    assert spec == {"name": expected} and reason == said
    assert hpt.get_registry().create("strategy", spec).multi_objective


def test_the_bayes_budget_for_several_objectives_is_the_constant() -> None:
    limit = auto.MO_BAYES_MAX_BUDGET
    assert chosen(box(2), limit, objectives=2) == "bayes"
    assert chosen(box(2), limit + 1, objectives=2) == "tpe"
    assert chosen(box(auto.MO_BAYES_MAX_DIM + 1), limit, objectives=2) == "tpe"


def test_conditional_spaces_get_tpe() -> None:
    assert chosen(MIXED, 50) == "tpe"
    assert choose(hpt.Space(MIXED), 50)[1] == "conditional parameters"


def test_mostly_categorical_spaces_get_tpe() -> None:
    space = {"a": hpt.Choice(["x", "y"]), "b": hpt.Choice([1, 2, 3]), "c": hpt.Float(0, 1)}
    spec, reason = choose(hpt.Space(space), 50)
    assert spec["name"] == "tpe" and "2 of 3 parameters are categorical" in reason


def test_a_categorical_parameter_with_many_values_gets_tpe() -> None:
    space = {"a": hpt.Choice(list(range(auto.MANY_VALUES + 1))), **{f"x{i}": hpt.Float(0, 1) for i in range(3)}}
    assert chosen(space, 50) == "tpe"


def test_high_dimensional_numeric_spaces_with_a_large_budget_get_cmaes() -> None:
    assert chosen(box(10), 200) == "cmaes"
    assert chosen(box(20), 400, concurrency=64) == "cmaes"
    mixed = {**{f"x{i}": hpt.Float(0, 1) for i in range(9)}, "n": hpt.Int(1, 100)}
    assert chosen(mixed, 200) == "cmaes"


def test_cmaes_needs_enough_generations() -> None:
    # 10 parameters: a population of 10, so 15 generations are 150 trials.
    assert chosen(box(10), 149) == "tpe"
    assert chosen(box(10), 150) == "cmaes"


def test_one_categorical_parameter_keeps_a_high_dimensional_space_from_cmaes() -> None:
    space = {**{f"x{i}": hpt.Float(0, 1) for i in range(10)}, "c": hpt.Choice(["a", "b"])}
    assert chosen(space, 400) == "tpe"


def test_small_budgets_in_low_dimension_get_bayes_unless_concurrency_is_high() -> None:
    assert chosen(box(3), 50) == "bayes"
    assert chosen(box(auto.BAYES_MAX_DIM), auto.BAYES_MAX_BUDGET) == "bayes"
    assert chosen(box(3), auto.BAYES_MAX_BUDGET + 1) == "tpe"
    assert chosen(box(auto.BAYES_MAX_DIM + 1), 50) == "tpe"
    assert chosen(box(3), 50, concurrency=auto.BAYES_MAX_CONCURRENCY + 1) == "tpe"


def test_without_max_trials_the_rule_assumes_a_budget_and_says_so() -> None:
    spec, reason = choose(box(3), None)
    assert f"budget {ASSUMED_BUDGET} (assumed: no max_trials)" in reason
    assert spec == choose(box(3), ASSUMED_BUDGET)[0]


def test_without_the_cmaes_package_the_rule_falls_back(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(auto, "_cmaes_installed", lambda: False)
    spec, reason = choose(box(10), 400)
    assert spec == {"name": "tpe"} and "'cmaes' package is not installed" in reason


# -- through the Tuner --------------------------------------------------------------------


def test_auto_is_the_default_and_random_one_word_away() -> None:
    assert isinstance(hpt.Tuner(lambda t: 0.0, box(2), loggers=[]).strategy, AutoStrategy)
    assert isinstance(hpt.Tuner(lambda t: 0.0, box(2), strategy="random", loggers=[]).strategy, hpt.RandomStrategy)


async def test_the_choice_is_printed_when_the_study_starts(capsys: pytest.CaptureFixture[str]) -> None:
    tuner = hpt.Tuner(lambda t: t.params["x0"], box(10), max_trials=150, seed=0, study="p")
    await tuner.run()
    err = capsys.readouterr().err
    assert "[p] strategy auto: cmaes (10 numeric parameters, budget 150 >= 15 generations of 10)" in err
    assert isinstance(tuner.strategy.delegate, hpt.CmaEsStrategy)


async def test_the_choice_runs_exactly_as_the_chosen_strategy() -> None:
    def f(t: Any) -> float:
        return sum((v - 0.3) ** 2 for v in t.params.values())

    via_auto = await tune(f, box(3), "auto", seed=4, max_trials=15)
    direct = await tune(f, box(3), "bayes", seed=4, max_trials=15)
    assert [t.params for t in via_auto.trials] == [t.params for t in direct.trials]


async def test_the_choice_is_stored_and_a_resumed_study_keeps_it(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    first = hpt.Tuner(lambda t: t.params["x0"], box(3), storage=url, study="s", max_trials=12, loggers=[])
    await first.run()
    assert first.strategy.choice == {"name": "bayes"} and not first.strategy.resumed
    summary = next(s for s in await hpt.SQLiteStorage(url).studies() if s.name == "s")
    stored = summary.settings["strategy"]
    assert stored["name"] == "auto" and stored["choice"]["strategy"] == {"name": "bayes"}
    second = hpt.Tuner(lambda t: t.params["x0"], box(3), storage=url, study="s", max_trials=14, loggers=[])
    await second.run()
    assert second.strategy.choice == {"name": "bayes"} and len(second.study.trials) == 14


async def test_a_resumed_study_with_another_budget_keeps_the_stored_choice(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'b.db'}"
    await tune(lambda t: t.params["x0"], box(3), "auto", max_trials=10, storage=url, study="s")
    tuner = hpt.Tuner(lambda t: t.params["x0"], box(3), storage=url, study="s", max_trials=400, loggers=[],
                      converged=hpt.Convergence(patience=1, min_trials=1, noise=1e9))  # fmt: skip
    result = await tuner.run()  # the rule would choose tpe for 400 trials; converged stops it after one more
    assert result.reason == "converged"
    assert tuner.strategy.choice == {"name": "bayes"} and tuner.strategy.resumed
    assert "kept from the stored study" in tuner.strategy.describe()


async def test_several_objectives_run_under_the_default() -> None:
    def two(t: Any) -> tuple[float, float]:
        return t.params["x0"], 1 - t.params["x0"]

    tuner = hpt.Tuner(two, box(2), direction=("minimize", "minimize"), max_trials=8, loggers=[])
    result = await tuner.run()
    assert len(result.best_trials) >= 1 and tuner.strategy.choice == {"name": "bayes"}


def test_merge_settings_keeps_a_stored_choice_for_the_same_strategy() -> None:
    stored = {"seed": 1, "strategy": {"name": "auto", "choice": {"strategy": {"name": "bayes"}}}}
    given = {"seed": 2, "strategy": {"name": "auto", "choice": {"strategy": {"name": "tpe"}}}}
    assert merge_settings(stored, given)["strategy"]["choice"] == {"strategy": {"name": "bayes"}}
    other = {"seed": 2, "strategy": {"name": "random"}}
    assert merge_settings(stored, other)["strategy"] == {"name": "random"}


def test_a_choice_naming_auto_itself_is_refused() -> None:
    with pytest.raises(ValueError, match="names another strategy"):
        AutoStrategy().adopt({"strategy": {"name": "auto"}})


async def test_the_chosen_strategy_comes_from_the_tuners_registry() -> None:
    """A registry of the Tuner's own decides what a chosen name means; disabled plugins stay hidden."""
    from hpt_async.plugins import Registry

    class Marked(hpt.RandomStrategy):
        name = "sobol"

    class Plugin:
        @hpt.hookimpl
        def hpt_register(self, register: Any) -> None:
            register("strategy", "marked-sobol", Marked)

    registry = Registry(autoload=False)
    registry.register_plugin(Plugin(), "marked")
    tuner = hpt.Tuner(lambda t: 0.0, box(2), direction=("minimize", "maximize"), registry=registry, loggers=[])
    strategy = tuner.strategy
    assert isinstance(strategy, AutoStrategy)
    strategy.adopt({"strategy": {"name": "marked-sobol"}, "reason": "test"})
    assert isinstance(strategy.delegate, Marked)  # a name only this registry knows
    hidden = hpt.Tuner(lambda t: 0.0, box(2), disable_plugins=["hpt_async.strategies.bayes"], loggers=[])
    with pytest.raises(hpt.PluginNotFound):
        hidden.strategy.adopt({"strategy": {"name": "bayes"}, "reason": "test"})
