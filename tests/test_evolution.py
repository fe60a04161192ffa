"""The ``evolution`` strategy: mutation, tournament, aging, resumption, and end-to-end runs."""

from __future__ import annotations

import random
import statistics
from collections.abc import Mapping
from typing import Any

import anyio
import pytest
from common import tune

import hpt_async as hpt
from hpt_async.space import Space, as_space
from hpt_async.strategies.evolution import EvolutionStrategy, budget_sizes, mutate
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState

pytestmark = pytest.mark.anyio

# An architecture-like space: a layer's settings exist only when the layer does.
ARCH = {
    "n_layers": hpt.Int(1, 3),
    "units_1": hpt.Int(8, 128, log=True),
    "act_1": hpt.Choice(["relu", "tanh"]),
    "units_2": hpt.Int(8, 128, log=True, when={"n_layers": [2, 3]}),
    "act_2": hpt.Choice(["relu", "tanh"], when={"n_layers": [2, 3]}),
    "units_3": hpt.Int(8, 128, log=True, when={"n_layers": [3]}),
    "act_3": hpt.Choice(["relu", "tanh"], when={"n_layers": [3]}),
    "lr": hpt.Float(1e-4, 1e-1, log=True),
    "dropout": hpt.Float(0.0, 0.5, step=0.1),
    "fixed": hpt.Choice(["only"]),
}


def view(
    space: Mapping[str, Any] | Space, seed: int = 0, direction: str = "minimize", max_trials: int | None = None
) -> StudyView:
    """A bare study view for calling the strategy directly."""
    return StudyView("direct", direction, as_space(space), seed, max_trials)


def complete(number: int, params: Mapping[str, Any], value: float) -> TrialRecord:
    """A COMPLETE record."""
    return TrialRecord(number, TrialState.COMPLETE, dict(params), value=value)


def depends_on(space: Space, name: str, root: str) -> bool:
    """True when ``name``'s condition names ``root``, directly or through its parents."""
    parents = list(space[name].when)
    return root in parents or any(depends_on(space, p, root) for p in parents)


def test_mutation_changes_one_active_parameter_and_keeps_configurations_valid() -> None:
    space = as_space(ARCH)
    mutated: set[str] = set()
    activity_changes = 0
    for i in range(600):
        parent = space.sample(7, i)
        child = mutate(space, parent, random.Random(i))
        assert space.validate(child) == child
        changed = [n for n in parent if n in child and parent[n] != child[n]]
        assert len(changed) == 1, (parent, child)
        (name,) = changed
        assert name != "fixed"  # a single-valued parameter cannot change
        mutated.add(name)
        appeared = set(child) - set(parent)
        vanished = set(parent) - set(child)
        # Only the mutated parameter's dependants may come or go.
        assert all(depends_on(space, n, name) for n in appeared | vanished), (name, appeared, vanished)
        activity_changes += bool(appeared or vanished)
    assert mutated == set(space) - {"fixed"}  # every mutable parameter gets mutated sometimes
    assert activity_changes > 0


def test_numeric_mutation_is_a_local_step_and_a_space_of_constants_is_copied() -> None:
    space = as_space({"x": hpt.Float(0.0, 1.0)})
    steps = [abs(mutate(space, {"x": 0.5}, random.Random(i), scale=0.05)["x"] - 0.5) for i in range(200)]
    assert 0 < statistics.median(steps) < 0.1
    redraws = [abs(mutate(space, {"x": 0.5}, random.Random(i), scale=None)["x"] - 0.5) for i in range(200)]
    assert statistics.median(redraws) > 0.15
    constant = as_space({"c": hpt.Choice(["a"]), "n": hpt.Int(3, 3)})
    assert mutate(constant, {"c": "a", "n": 3}, random.Random(0)) == {"c": "a", "n": 3}


async def test_aging_retires_the_oldest_and_only_complete_trials_join() -> None:
    study = view({"x": hpt.Float(0.0, 1.0)})
    strategy = EvolutionStrategy(population=3, sample_size=2)
    await strategy.start(study)
    for n in range(5):
        await strategy.tell(study, complete(n, {"x": n / 10}, value=-float(n) if n else -100.0))
    assert strategy.members == [2, 3, 4]  # 0 was the best, but aging retired it anyway
    await strategy.tell(study, TrialRecord(5, TrialState.FAILED, {"x": 0.1}))
    await strategy.tell(study, TrialRecord(6, TrialState.PRUNED, {"x": 0.1}, value=-1e9))
    await strategy.tell(study, TrialRecord(7, TrialState.LOST, {"x": 0.1}))
    await strategy.tell(study, complete(8, {"x": 0.2}, value=float("nan")))
    assert strategy.members == [2, 3, 4]
    await strategy.tell(study, complete(1, {"x": 0.1}, value=-1e9))  # older than every member
    assert strategy.members == [2, 3, 4]
    await strategy.tell(study, complete(9, {"x": 0.9}, value=5.0))
    assert strategy.members == [3, 4, 9]


async def test_warm_up_is_random_sampling_until_the_population_is_full() -> None:
    space = as_space(ARCH)
    study = view(space, seed=3)
    strategy = EvolutionStrategy(population=4, sample_size=2)
    await strategy.start(study)
    for n in range(4):
        assert await strategy.ask(study, n) == space.sample(3, n)
        await strategy.tell(study, complete(n, space.sample(3, n), value=float(n)))
    children = [await strategy.ask(study, n) for n in range(4, 40)]
    assert all(c != space.sample(3, n) for n, c in zip(range(4, 40), children, strict=True))
    members = [space.sample(3, n) for n in range(4)]
    for child in children:  # each child is one mutation away from some member
        assert any(sum(p.get(k) != child.get(k) for k in set(p) & set(child)) == 1 for p in members)


@pytest.mark.parametrize("direction", ["minimize", "maximize"])
async def test_tournament_picks_the_best_of_its_sample(direction: str) -> None:
    study = view({"x": hpt.Float(0.0, 1.0)}, direction=direction)
    values = [3.0, -2.0, 7.0, 0.5, 1.0, 4.0]
    strategy = EvolutionStrategy(population=6, sample_size=6)
    await strategy.start(study)
    for n, v in enumerate(values):
        await strategy.tell(study, complete(n, {"x": n / 10}, value=v))
    best = values.index(min(values) if direction == "minimize" else max(values))
    worst = values.index(max(values) if direction == "minimize" else min(values))
    assert {strategy.select(random.Random(i)) for i in range(50)} == {best}  # the whole population competes
    strategy.sample_size = 2
    winners = [strategy.select(random.Random(i)) for i in range(300)]
    assert worst not in winners  # the worst loses every pairing
    assert len(set(winners)) >= 3  # but smaller tournaments let others breed
    # The child of a full tournament is the best member, mutated.
    strategy.sample_size = 6
    child = await strategy.ask(study, 6)
    assert child["x"] != best / 10 and abs(child["x"] - best / 10) < 0.9


def sphere(params: Mapping[str, Any]) -> float:
    """A fixed test function: a bowl in five parameters, plus a categorical penalty."""
    x = [params[f"x{i}"] for i in range(5)]
    return sum((v - 0.7) ** 2 for v in x) + (0.0 if params["kind"] == "c" else 0.3)


SPHERE = {**{f"x{i}": hpt.Float(0.0, 1.0) for i in range(5)}, "kind": hpt.Choice(["a", "b", "c", "d"])}


async def best_of(strategy: hpt.Strategy, seed: int, trials: int) -> float:
    """Drive ``strategy`` directly, one trial at a time; the best value found."""
    study = view(SPHERE, seed=seed)
    await strategy.start(study)
    best = float("inf")
    for n in range(trials):
        params = await strategy.ask(study, n)
        assert params is not None
        value = sphere(params)
        best = min(best, value)
        await strategy.tell(study, complete(n, params, value))
    return best


async def test_beats_random_search_on_a_fixed_function() -> None:
    seeds = range(7)
    evo = [await best_of(EvolutionStrategy(population=20, sample_size=5, scale=0.1), s, 200) for s in seeds]
    rnd = [await best_of(hpt.RandomStrategy(), s, 200) for s in seeds]
    assert statistics.median(evo) < 0.5 * statistics.median(rnd), (evo, rnd)


async def run(
    strategy: hpt.Strategy | str,
    *,
    seed: int = 0,
    max_trials: int = 40,
    concurrency: int = 1,
    storage: hpt.Storage | str = "memory",
    study: str | None = None,
    objective: Any = None,
) -> hpt.StudyResult:
    """One silent tuning run on the architecture space, guarded against hangs."""

    async def loss(trial: hpt.Trial) -> float:
        p = trial.params
        units = [p[f"units_{i}"] for i in range(1, p["n_layers"] + 1)]
        return abs(sum(units) - 150) / 100 + abs(p["lr"] - 0.01) + p["dropout"]

    return await tune(
        objective or loss, ARCH, strategy, seed=seed, max_trials=max_trials, concurrency=concurrency,
        storage=storage, study=study,
    )  # fmt: skip


def configs(result: hpt.StudyResult) -> list[dict[str, Any]]:
    """Every trial's configuration, by trial number."""
    return [dict(t.params) for t in sorted(result.trials, key=lambda t: t.number)]


async def test_a_seeded_run_reproduces_at_concurrency_one() -> None:
    first = await run(EvolutionStrategy(population=8, sample_size=3), seed=11)
    again = await run(EvolutionStrategy(population=8, sample_size=3), seed=11)
    other = await run(EvolutionStrategy(population=8, sample_size=3), seed=12)
    assert configs(first) == configs(again)
    assert configs(first)[8:] != configs(other)[8:]


async def test_a_resumed_study_rebuilds_the_population_and_goes_on_as_if_uninterrupted() -> None:
    whole = await run(EvolutionStrategy(population=8, sample_size=3), seed=5, max_trials=40)
    storage = hpt.MemoryStorage()
    await run(EvolutionStrategy(population=8, sample_size=3), seed=5, max_trials=20, storage=storage, study="evo")
    resumed_strategy = EvolutionStrategy(population=8, sample_size=3)
    resumed = await run(resumed_strategy, seed=5, max_trials=40, storage=storage, study="evo")
    assert len(resumed.trials) == 40
    assert configs(resumed) == configs(whole)
    complete_numbers = sorted(t.number for t in resumed.trials if t.state is TrialState.COMPLETE)
    assert resumed_strategy.members == complete_numbers[-8:]


async def test_start_rebuilds_the_population_from_history() -> None:
    space = as_space(ARCH)
    told = EvolutionStrategy(population=5, sample_size=2)
    live = view(space, seed=1)
    await told.start(live)
    history = view(space, seed=1)
    for n in range(12):
        params = space.sample(1, n)
        state = TrialState.FAILED if n % 4 == 3 else TrialState.COMPLETE
        record = TrialRecord(n, state, params, value=None if state is TrialState.FAILED else float(n % 5))
        await told.tell(live, record)
        history._put(record)
    rebuilt = EvolutionStrategy(population=5, sample_size=2)
    await rebuilt.start(history)
    assert rebuilt.members == told.members == [5, 6, 8, 9, 10]
    assert await rebuilt.ask(history, 12) == await told.ask(live, 12)


async def test_works_end_to_end_on_a_conditional_space_with_concurrent_failing_trials() -> None:
    space = as_space(ARCH)

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(random.random() * 0.003)
        if trial.params["lr"] > 0.03:
            raise RuntimeError("diverged")
        p = trial.params
        return abs(sum(p[f"units_{i}"] for i in range(1, p["n_layers"] + 1)) - 150) / 100

    result = await run("evolution", max_trials=120, concurrency=4, seed=2, objective=objective)
    assert result.reason == "max_trials"
    assert len(result.trials) == 120
    assert result.count("failed") > 0
    for t in result.trials:
        assert space.validate(t.params) == dict(t.params)
    # The default population follows the budget (30 of 120), so about 80 trials are children
    # (failed ones do not join, which prolongs the random start); a population of 50 would allow 70 at most.
    children = [t for t in result.trials if dict(t.params) != space.sample(2, t.number)]
    assert len(children) >= 75
    assert {dict(t.params)["n_layers"] for t in result.trials} == {1, 2, 3}


async def test_sizes_follow_the_budget_unless_given() -> None:
    assert budget_sizes(None) == (50, 10)
    assert budget_sizes(80) == (20, 10)
    assert budget_sizes(10) == (8, 4)  # never below 8
    assert budget_sizes(10_000) == (50, 25)  # never above 50
    space = {"x": hpt.Float(0.0, 1.0)}
    auto = EvolutionStrategy()
    assert (auto.population, auto.sample_size) == (50, 10)  # before a study tells the budget
    await auto.start(view(space, max_trials=80))
    assert (auto.population, auto.sample_size) == (20, 10)
    await auto.start(view(space))  # the same object on a study without a budget
    assert (auto.population, auto.sample_size) == (50, 10)
    given = EvolutionStrategy(population=30, sample_size=7)
    await given.start(view(space, max_trials=80))
    assert (given.population, given.sample_size) == (30, 7)
    only_population = EvolutionStrategy(population=30)
    await only_population.start(view(space, max_trials=80))
    assert (only_population.population, only_population.sample_size) == (30, 6)
    only_sample = EvolutionStrategy(sample_size=12)
    await only_sample.start(view(space, max_trials=40))
    assert (only_sample.population, only_sample.sample_size) == (12, 12)  # the population holds a tournament
    # Through the tuner: with 40 trials the population is 10, so trial 10 onwards are children.
    result = await run("evolution", max_trials=40, seed=4)
    arch = as_space(ARCH)
    bred = sorted(t.number for t in result.trials if dict(t.params) != arch.sample(4, t.number))
    assert bred and bred[0] == 10


async def test_children_do_not_repeat_tried_or_running_configurations() -> None:
    space = as_space({"a": hpt.Choice(["p", "q", "r"]), "b": hpt.Choice([1, 2, 3]), "c": hpt.Choice([True, 1])})

    def key(params: Mapping[str, Any]) -> tuple[Any, ...]:
        return tuple((type(v), v) for v in params.values())  # True and 1 are different values of "c"

    plain_repeats = 0
    for seed in range(5):
        study = view(space, seed=seed)
        strategy = EvolutionStrategy(population=3, sample_size=2)
        await strategy.start(study)
        tried: set[tuple[Any, ...]] = set()
        for n in range(12):  # 18 configurations in all
            params = await strategy.ask(study, n)
            if n >= 3:  # a child: new, though a plain mutation of a member often is not
                assert key(params) not in tried, (seed, n, params)
                rng = random.Random(n)
                members = [study.trials[m].params for m in strategy.members]
                plain_repeats += sum(key(mutate(space, p, rng)) in tried for p in members)
            tried.add(key(params))
            record = complete(n, params, value=float((7 * n) % 5))
            study._put(record)
            await strategy.tell(study, record)
    assert plain_repeats > 20  # out of 135 plain mutations: the check above is not vacuous
    await strategy.ask(study, 12)
    for n in range(13, 40):  # far more trials than configurations: repeats, rather than a hang or an error
        record = complete(n, await strategy.ask(study, n), value=1.0)
        study._put(record)
        await strategy.tell(study, record)

    # A running trial's configuration is taken too: with "a" and "b" tried and "c" running, only "d" is new.
    line = as_space({"k": hpt.Choice(["a", "b", "c", "d"])})
    for seed in range(10):
        study = view(line, seed=seed)
        strategy = EvolutionStrategy(population=2, sample_size=2)
        await strategy.start(study)
        for n, (k, v) in enumerate([("a", 0.0), ("b", 1.0)]):
            study._put(complete(n, {"k": k}, v))
            await strategy.tell(study, complete(n, {"k": k}, v))
        study._put(TrialRecord(2, TrialState.RUNNING, {"k": "c"}))
        assert await strategy.ask(study, 3) == {"k": "d"}


def test_options_are_checked_and_the_name_is_registered() -> None:
    assert hpt.get_registry().get("strategy", "evolution") is EvolutionStrategy
    for bad in ({"population": 1}, {"population": 4, "sample_size": 5}, {"sample_size": 0}, {"scale": 0.0}):
        with pytest.raises(ValueError):
            EvolutionStrategy(**bad)
    assert EvolutionStrategy(scale=None).scale is None
