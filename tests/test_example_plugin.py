"""The example plugin distribution (plugins/hpt-async-example), installed for real.

These tests need the distribution installed (``pip install -e
plugins/hpt-async-example``; CI does it).  Without it they fail rather than
skip: a skipped test would hide a broken install or a broken entry point.
"""

from __future__ import annotations

import csv
import enum
import importlib
import json
import statistics
from importlib.metadata import PackageNotFoundError, distribution
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.plugins import AUTOLOAD_ENV, ENTRY_POINT_GROUP, Registry

INSTALL = "pip install -e plugins/hpt-async-example"
OWNER = "example (hpt_async_example.plugin)"  # how the registry names an entry-point plugin: "name (value)"
HANG_GUARD = 30.0  # seconds; only reached when a run hangs

QUADRATIC_SPACE: dict[str, hpt.Domain] = {
    "x": hpt.Float(-5.0, 5.0),
    "y": hpt.Float(-5.0, 5.0),
    "z": hpt.Float(-5.0, 5.0),
}


async def quadratic(trial: hpt.Trial) -> float:
    """A bowl with its minimum 0 away from the centre of the space."""
    p = trial.params
    return (p["x"] - 1.3) ** 2 + (p["y"] + 0.7) ** 2 + (p["z"] - 2.1) ** 2


def installed() -> ModuleType:
    """The installed ``hpt_async_example`` package; the calling test fails (never skips) when it is missing."""
    try:
        dist = distribution("hpt-async-example")
    except PackageNotFoundError:
        pytest.fail(f"the example plugin distribution is not installed; run `{INSTALL}` from the repository root")
    points = [ep for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if [(ep.name, ep.value) for ep in points] != [("example", "hpt_async_example.plugin")]:
        pytest.fail(
            f"hpt-async-example is installed without its entry point (found {points}); reinstall it with `{INSTALL}`"
        )
    return importlib.import_module("hpt_async_example")


def autoloaded() -> Registry:
    """The process-wide registry, which must have loaded the entry point."""
    installed()
    registry = hpt.get_registry()
    if "local-search" not in registry.names("strategy"):
        pytest.fail(
            f"hpt-async-example is installed but the process-wide registry lacks its names: it was built with "
            f"{AUTOLOAD_ENV} set, or the entry point is broken (reinstall with `{INSTALL}`)"
        )
    return registry


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def read_csv(path: Path) -> list[list[str]]:
    """Every row of ``path``, header included."""
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


# -- discovery -------------------------------------------------------------------


def test_entry_point_loads_the_plugin_module() -> None:
    installed()
    (ep,) = [ep for ep in distribution("hpt-async-example").entry_points if ep.group == ENTRY_POINT_GROUP]
    module = ep.load()
    assert module is importlib.import_module("hpt_async_example.plugin")
    assert callable(module.hpt_register)


def test_process_registry_names_the_entry_point_as_owner() -> None:
    example = installed()
    registry = autoloaded()
    assert registry.owner("strategy", "local-search") == OWNER
    assert registry.owner("logger", "csv") == OWNER
    assert registry.get("strategy", "local-search") is example.LocalSearchStrategy
    assert registry.get("logger", "csv") is example.CsvLogger
    # Builtins are registered by their module, never by the example.
    assert registry.owner("strategy", "random") == "hpt_async.strategies.random"


@pytest.mark.anyio
async def test_tuner_finds_both_names_and_csv_gets_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    example = installed()
    autoloaded()  # the names below come from the process-wide registry
    path = tmp_path / "trials.csv"
    monkeypatch.setenv(example.csv_logger.PATH_ENV, str(path))

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 3:
            raise RuntimeError("boom")
        return await quadratic(trial)

    tuner = hpt.Tuner(
        objective, QUADRATIC_SPACE, strategy="local-search", loggers=["csv"], max_trials=25, seed=7, concurrency=3
    )
    assert isinstance(tuner.strategy, example.LocalSearchStrategy)
    assert [type(lg) for lg in tuner.loggers] == [example.CsvLogger]
    result = await run(tuner)

    rows = read_csv(path)
    assert rows[0] == list(example.csv_logger.COLUMNS)
    body = rows[1:]
    assert len(body) == len(result.trials) == 25
    by_number = {int(row[1]): row for row in body}
    assert sorted(by_number) == list(range(25))
    for record in result.trials:
        study, _, state, value, params, duration = by_number[record.number]
        assert study == result.study
        assert state == record.state.value
        assert json.loads(params) == dict(record.params)
        assert float(duration) == pytest.approx(record.duration)
        if record.state is hpt.TrialState.COMPLETE:
            assert float(value) == record.value
        else:
            assert value == ""
    assert by_number[3][2] == "failed"
    assert result.count(hpt.TrialState.COMPLETE) == 24


def test_autoload_disabled_leaves_the_names_out(monkeypatch: pytest.MonkeyPatch) -> None:
    installed()
    monkeypatch.setenv(AUTOLOAD_ENV, "1")
    registry = Registry()
    assert "local-search" not in registry.names("strategy")
    assert "csv" not in registry.names("logger")
    assert "random" in registry.names("strategy")  # builtins do not depend on autoload
    with pytest.raises(hpt.PluginNotFound, match="registered strategy names: ") as info:
        registry.get("strategy", "local-search")
    listed = str(info.value).split("registered strategy names: ")[1].split(", ")
    assert listed == registry.names("strategy") and "local-search" not in listed
    with pytest.raises(hpt.PluginNotFound, match="unknown strategy 'local-search'"):
        hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy="local-search", loggers=[], registry=registry)

    # The same construction without the variable loads the entry point: the variable made the difference.
    monkeypatch.delenv(AUTOLOAD_ENV)
    assert Registry().owner("strategy", "local-search") == OWNER


def test_in_process_registration_of_the_plugin_module() -> None:
    installed()
    registry = Registry(autoload=False)
    plugin = importlib.import_module("hpt_async_example.plugin")
    registry.register_plugin(plugin)
    assert registry.owner("strategy", "local-search") == "hpt_async_example.plugin"
    registry.register_plugin(plugin)  # registering the same module again changes nothing
    assert registry.names("logger") == ["console", "csv", "jsonl", "tensorboard", "wandb"]


# -- the local-search strategy ---------------------------------------------------------


async def best_value(strategy: str | hpt.Strategy, seed: int, max_trials: int) -> float:
    """Best value found on the quadratic."""
    result = await run(
        hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=strategy, max_trials=max_trials, seed=seed, loggers=[])
    )
    assert result.best is not None and result.best.value is not None
    return result.best.value


@pytest.mark.anyio
async def test_local_search_beats_random_on_a_quadratic() -> None:
    autoloaded()
    seeds = range(7)
    local = [await best_value("local-search", seed, 60) for seed in seeds]
    rand = [await best_value("random", seed, 60) for seed in seeds]
    # Measured: medians about 0.09 against 2.2; a factor of 5 leaves room and still needs a working search.
    assert statistics.median(local) < statistics.median(rand) / 5
    assert sum(a < b for a, b in zip(local, rand, strict=True)) >= 6


@pytest.mark.anyio
async def test_local_search_start_up_is_the_random_sequence() -> None:
    example = installed()
    n_startup = 6
    strategy = example.LocalSearchStrategy(n_startup=n_startup)
    result = await run(hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=strategy, max_trials=12, seed=3, loggers=[]))
    space = hpt.Space(QUADRATIC_SPACE)
    params = [dict(t.params) for t in result.trials]
    assert params[:n_startup] == [space.sample(3, n) for n in range(n_startup)]
    assert params[n_startup:] != [space.sample(3, n) for n in range(n_startup, 12)]


@pytest.mark.anyio
async def test_local_search_reproduces_from_its_seed() -> None:
    example = installed()

    async def suggestions(seed: int) -> list[dict[str, Any]]:
        strategy = example.LocalSearchStrategy()
        tuner = hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=strategy, max_trials=40, seed=seed, loggers=[])
        return [dict(t.params) for t in (await run(tuner)).trials]

    first = await suggestions(11)
    assert await suggestions(11) == first
    assert await suggestions(12) != first
    # Every seed the Tuner accepts works, up to the edges of its range.
    assert len(await suggestions(0)) == len(await suggestions(2**64 - 1)) == 40


@pytest.mark.anyio
async def test_local_search_moves_towards_the_best_and_adapts_sigma() -> None:
    example = installed()
    strategy = example.LocalSearchStrategy(n_startup=5, scale=0.2)
    result = await run(hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=strategy, max_trials=80, seed=1, loggers=[]))
    assert strategy.sigma < 0.2  # misses outnumber successes near the optimum, so sigma shrank
    assert result.best is not None and result.best.number >= 5  # the search, not the start-up, found the best
    space = hpt.Space(QUADRATIC_SPACE)
    late = [space.to_unit(t.params) for t in result.trials[-20:]]
    centre = space.to_unit(result.best.params)
    # Late proposals stay close to the best point (a random one would be ~0.4 away per coordinate).
    assert statistics.median(max(abs(a - b) for a, b in zip(u, centre, strict=True)) for u in late) < 0.15


class Act(enum.Enum):
    """Non-string Choice values."""

    RELU = "relu"
    TANH = "tanh"


@pytest.mark.anyio
async def test_local_search_handles_conditional_choice_and_int_parameters() -> None:
    example = installed()
    space = hpt.Space(
        {
            "layers": hpt.Int(1, 3),
            "units_3": hpt.Int(8, 64, when={"layers": [3]}),
            "act": hpt.Choice([Act.RELU, Act.TANH]),
            "shape": hpt.Choice([(1, 2), (3, 4), None]),
            "lr": hpt.Float(1e-4, 1e-1, log=True),
        }
    )

    async def objective(trial: hpt.Trial) -> float:
        p = trial.params
        bonus = abs(p["units_3"] - 40) / 10 if "units_3" in p else 5.0
        return bonus + (p["act"] is Act.TANH) + (p["shape"] is None) + abs(p["lr"] - 0.01) * 10

    strategy = example.LocalSearchStrategy(n_startup=5)
    # An invalid suggestion would end the run with StudyError; 60 COMPLETE trials prove every one was valid.
    result = await run(hpt.Tuner(objective, space, strategy=strategy, max_trials=60, seed=2, loggers=[], concurrency=4))
    assert result.count(hpt.TrialState.COMPLETE) == 60
    local = result.trials[5:]
    assert any("units_3" in t.params for t in local)
    assert any("units_3" not in t.params for t in local)
    assert {t.params["act"] for t in local} == {Act.RELU, Act.TANH}
    assert result.best is not None and result.best.value is not None and result.best.value < 3.0


@pytest.mark.anyio
async def test_local_search_never_sticks_on_a_tiny_discrete_space() -> None:
    example = installed()
    space = {"a": hpt.Int(0, 1), "b": hpt.Choice(["x", "y"])}

    async def objective(trial: hpt.Trial) -> float:
        return float(trial.params["a"])

    strategy = example.LocalSearchStrategy(n_startup=2, scale=0.001)
    result = await run(hpt.Tuner(objective, space, strategy=strategy, max_trials=30, seed=0, loggers=[]))
    assert result.count(hpt.TrialState.COMPLETE) == 30
    # With sigma at its floor no move leaves the best point, so the strategy jumps elsewhere instead of repeating it.
    best = dict(result.best.params) if result.best else None
    assert any(dict(t.params) != best for t in result.trials[2:])


@pytest.mark.anyio
async def test_local_search_rebuilds_sigma_on_resume() -> None:
    example = installed()
    storage = hpt.MemoryStorage()
    first = example.LocalSearchStrategy(n_startup=5)
    common: dict[str, Any] = {"storage": storage, "study": "resumed", "seed": 4, "loggers": []}
    await run(hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=first, max_trials=30, **common))
    assert first.sigma != first.scale
    second = example.LocalSearchStrategy(n_startup=5)
    await run(hpt.Tuner(quadratic, QUADRATIC_SPACE, strategy=second, max_trials=30, **common))
    assert second.sigma == first.sigma


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"n_startup": 0}, "n_startup"),
        ({"scale": 0.9}, "scale"),
        ({"scale": 0.1, "min_scale": 0.2}, "min_scale"),
    ],
)
def test_local_search_rejects_bad_settings(kwargs: dict[str, Any], message: str) -> None:
    example = installed()
    with pytest.raises(ValueError, match=message):
        example.LocalSearchStrategy(**kwargs)


# -- the csv logger ------------------------------------------------------------------


def test_csv_path_comes_from_the_argument_the_env_var_or_the_default(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    example = installed()
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv(example.csv_logger.PATH_ENV, raising=False)
    assert example.CsvLogger().path == tmp_path / "hpt-async-trials.csv"
    monkeypatch.setenv(example.csv_logger.PATH_ENV, "from-env.csv")
    assert example.CsvLogger().path == tmp_path / "from-env.csv"
    assert example.CsvLogger(tmp_path / "given.csv").path == tmp_path / "given.csv"


class RowCounter:
    """A plugin that reads the CSV file from disk each time a trial ends."""

    name = "row-counter"

    def __init__(self, path: Path) -> None:
        self.path = path
        self.seen: list[tuple[int, int]] = []  # (trials ended so far, data rows on disk)

    @hpt.hookimpl
    def hpt_trial_ended(self, study: hpt.StudyView) -> None:
        self.seen.append((len(study.finished()), len(read_csv(self.path)) - 1))


@pytest.mark.anyio
async def test_csv_rows_are_on_disk_as_each_trial_ends(tmp_path: Path) -> None:
    example = installed()
    path = tmp_path / "rows.csv"
    counter = RowCounter(path)
    tuner = hpt.Tuner(
        quadratic,
        QUADRATIC_SPACE,
        loggers=[example.CsvLogger(path)],
        plugins=[counter],
        max_trials=8,
        strategy="random",
    )
    await run(tuner)
    # The order in which objects hear of an end is not promised: the counter may run just before or just after
    # the logger.  Either way every earlier row is already on disk while the file is still open (unflushed rows
    # would sit in the file's buffer until it closes at the end of the study).
    assert [n for n, _ in counter.seen] == list(range(1, 9))
    assert all(rows in (n - 1, n) for n, rows in counter.seen)
    assert len(read_csv(path)) - 1 == 8


@pytest.mark.anyio
async def test_csv_appends_across_studies_with_one_header(tmp_path: Path) -> None:
    example = installed()
    path = tmp_path / "runs.csv"
    for study in ("first", "second"):
        tuner = hpt.Tuner(
            quadratic, QUADRATIC_SPACE, study=study, loggers=[example.CsvLogger(path)], max_trials=4, strategy="random"
        )
        await run(tuner)
    rows = read_csv(path)
    assert rows[0] == list(example.csv_logger.COLUMNS)
    assert [row[0] for row in rows[1:]] == ["first"] * 4 + ["second"] * 4
    assert rows.count(rows[0]) == 1


@pytest.mark.anyio
async def test_csv_params_keep_non_json_values_as_repr(tmp_path: Path) -> None:
    example = installed()
    path = tmp_path / "values.csv"
    space = {"act": hpt.Choice([Act.RELU]), "shape": hpt.Choice([(1, 2)]), "none": hpt.Choice([None])}

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    await run(hpt.Tuner(objective, space, loggers=[example.CsvLogger(path)], max_trials=1, strategy="random"))
    (row,) = read_csv(path)[1:]
    assert json.loads(row[4]) == {"act": repr(Act.RELU), "shape": [1, 2], "none": None}


@pytest.mark.anyio
async def test_a_broken_csv_path_is_isolated_and_the_study_goes_on(tmp_path: Path) -> None:
    example = installed()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("")
    logger = example.CsvLogger(blocker / "trials.csv")
    result = await run(hpt.Tuner(quadratic, QUADRATIC_SPACE, loggers=[logger], max_trials=5, strategy="random"))
    assert result.count(hpt.TrialState.COMPLETE) == 5
    assert result.plugin_errors == {"csv.hpt_study_started": 1, "csv.hpt_trial_ended": 5}
