"""Studies with several objectives: one value per direction, kept per trial, and the Pareto front."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

import hpt_async as hpt
from hpt_async.study import pareto_front

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}
BOTH = ("minimize", "maximize")


def _trade_off(trial: hpt.SyncTrial) -> tuple[float, float]:
    # Cost grows with x, and so does accuracy: every trial is on the front.
    x = trial.params["x"]
    return x, x**0.5


def _record(number: int, values: tuple[float, ...] | None, state: hpt.TrialState = hpt.TrialState.COMPLETE) -> Any:
    value = None if values is None else values[0]
    return hpt.TrialRecord(number, state, {}, value=value, values=values)


def test_the_pareto_front_keeps_exactly_the_records_nothing_beats() -> None:
    records = [
        _record(0, (1.0, 5.0)),
        _record(1, (2.0, 6.0)),  # costs more, gains more: on the front
        _record(2, (2.0, 5.0)),  # beaten by 0 (same accuracy, higher cost)
        _record(3, (0.5, 1.0)),  # cheapest: on the front
        _record(4, (1.0, 5.0)),  # ties 0: both kept
        _record(5, (0.1, 9.0), hpt.TrialState.PRUNED),  # not COMPLETE: ignored
        _record(6, None, hpt.TrialState.FAILED),
    ]
    assert [r.number for r in pareto_front(records, BOTH)] == [0, 1, 3, 4]
    assert [r.number for r in pareto_front(records, ("maximize", "maximize"))] == [1]


async def test_an_objective_returns_one_value_per_direction() -> None:
    tuner = hpt.Tuner(_trade_off, SPACE, direction=list(BOTH), max_trials=8, loggers=[], seed=0, strategy="random")
    result = await tuner.run()
    assert result.direction == BOTH and result.directions == BOTH
    with pytest.raises(hpt.SeveralObjectivesError, match="best_trials"):
        _ = result.best  # with several objectives there is no single best
    for record in result.trials:
        assert record.values == (record.params["x"], record.params["x"] ** 0.5)
        assert record.value == record.values[0]
    assert len(result.best_trials) == 8
    assert tuner.study.best_trials() == result.best_trials


async def test_a_wrong_number_of_values_fails_the_trial() -> None:
    def objective(trial: hpt.SyncTrial) -> Any:
        return {0: (1.0,), 1: 2.0, 2: (1.0, float("nan")), 3: "ab"}.get(trial.number, (1.0, 2.0))

    result = await hpt.Tuner(
        objective, SPACE, direction=BOTH, max_trials=6, loggers=[], fail_fast=False, strategy="random"
    ).run()
    errors = [t.error for t in result.trials[:4]]
    assert all(t.state is hpt.TrialState.FAILED for t in result.trials[:4])
    assert "expected a sequence of 2 numbers" in errors[0] and "expected a sequence of 2 numbers" in errors[1]
    assert "returned nan" in errors[2] and "expected a sequence" in errors[3]
    assert result.count("complete") == 2


async def test_one_objective_studies_keep_no_values() -> None:
    result = await hpt.Tuner(lambda t: t.params["x"], SPACE, max_trials=3, loggers=[], strategy="random").run()
    assert all(t.values is None for t in result.trials)
    assert result.best_trials == [result.best]


async def test_ask_and_tell_take_several_values_and_sqlite_keeps_them(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    tuner = hpt.Tuner(None, SPACE, direction=BOTH, storage=url, study="mo", loggers=[], seed=0, strategy="random")
    for cost in (3.0, 1.0, 2.0):
        trial = await tuner.ask()
        await tuner.tell(trial, (cost, cost * 2))
    await tuner.close()
    loaded = await hpt.load_study_async(url, "mo")
    assert [t.values for t in loaded.trials] == [(3.0, 6.0), (1.0, 2.0), (2.0, 4.0)]
    again = await hpt.Tuner(
        _trade_off, SPACE, direction=BOTH, storage=url, study="mo", max_trials=5, loggers=[], strategy="random"
    ).run()
    assert again.trials[0].values == (3.0, 6.0)  # resumed with its values
    with pytest.raises(ValueError, match="direction"):
        await hpt.Tuner(_trade_off, SPACE, storage=url, study="mo", max_trials=6, loggers=[], strategy="random").run()


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"strategy": "cmaes"}, "strategy 'cmaes' optimises a single objective"),
        ({"pruner": "median"}, "pruner 'median' optimises a single objective"),
        ({"target": 0.5}, "target= stops a study with one objective"),
        ({"direction": ("minimize", "upward")}, "direction must be"),
    ],
)
def test_what_cannot_serve_several_objectives_is_refused(options: dict[str, Any], message: str) -> None:
    options.setdefault("direction", BOTH)
    with pytest.raises(ValueError, match=message):
        hpt.Tuner(_trade_off, SPACE, loggers=[], **options)


def test_a_one_element_direction_sequence_is_one_objective_with_values() -> None:
    tuner = hpt.Tuner(_trade_off, SPACE, direction=["maximize"], strategy="tpe", loggers=[])
    assert tuner.direction == ("maximize",)


async def test_the_console_summary_names_the_pareto_front(capsys: pytest.CaptureFixture[str]) -> None:
    await hpt.Tuner(
        _trade_off, SPACE, direction=BOTH, max_trials=3, loggers=["console"], seed=0, strategy="random"
    ).run()
    err = capsys.readouterr().err
    assert "3 trials on the Pareto front of minimize, maximize: [0, 1, 2]" in err
    assert "best Pareto front 3 trials" in err  # the progress line too
    assert "over 1 parameter," in err


# -- reports with one value per objective --------------------------------------------------


async def _curve(trial: hpt.Trial) -> tuple[float, float]:
    x = trial.params["x"]
    for step in range(3):
        await trial.report((x + step, -float(step)), step=step)
    return x, 1.0


def _sync_curve(trial: hpt.SyncTrial) -> tuple[float, float]:
    x = trial.params["x"]
    for step in range(3):
        trial.report((x + step, -float(step)), step=step)
    return x, 1.0


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
@pytest.mark.parametrize("executor", ["async", "thread", "process"])
async def test_reports_keep_every_objectives_value(tmp_path: Path, storage: str, executor: str) -> None:
    heard: list[tuple[int, float, Any]] = []

    class Listen:
        @hpt.hookimpl
        def hpt_trial_reported(self, event: hpt.TrialReported) -> None:
            heard.append((event.step, event.value, event.values))

    url = "memory" if storage == "memory" else f"sqlite:///{tmp_path / 'reports.db'}"
    objective = _curve if executor == "async" else _sync_curve
    tuner = hpt.Tuner(objective, SPACE, direction=BOTH, storage=url, study="r", executor=executor, max_trials=2,
                      loggers=[], plugins=[Listen()], seed=0, strategy="random")  # fmt: skip
    result = await tuner.run()
    for record in result.trials:
        x = record.params["x"]
        assert dict(record.reports) == {0: x, 1: x + 1, 2: x + 2}  # the first objective's values
        assert dict(record.report_values) == {s: (x + s, -float(s)) for s in range(3)}
    expected = [(s, t.params["x"] + s, (t.params["x"] + s, -float(s))) for t in result.trials for s in range(3)]
    assert sorted(heard) == sorted(expected)  # the event carries every value, its value the first
    if storage == "sqlite":
        loaded = await hpt.load_study_async(url, "r")
        assert [dict(t.report_values) for t in loaded.trials] == [dict(t.report_values) for t in result.trials]


async def test_a_report_of_the_wrong_length_is_refused_in_the_objective() -> None:
    raised: list[BaseException] = []

    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        for value in ((1.0, 2.0, 3.0), 1.5):
            try:
                await trial.report(value, step=0)
            except ValueError as exc:
                raised.append(exc)
        return 1.0, 2.0

    result = await hpt.Tuner(objective, SPACE, direction=BOTH, max_trials=1, loggers=[], strategy="random").run()
    assert "one value per objective (2), got 3" in str(raised[0])
    # A plain number is a report of the first objective alone (what a pruner would decide on).
    assert dict(result.trials[0].reports) == {0: 1.5} and dict(result.trials[0].report_values) == {}


async def test_running_records_in_memory_storage_show_their_reports_to_other_sessions() -> None:
    storage = hpt.MemoryStorage()
    seen: list[dict[int, float]] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        reader = await storage.watch("shared")
        seen.extend(dict(r.reports) for r in await reader.read() if r.state is hpt.TrialState.RUNNING)
        await reader.close()
        return 0.5

    await hpt.Tuner(
        objective, SPACE, storage=storage, study="shared", max_trials=1, loggers=[], strategy="random"
    ).run()
    assert seen == [{0: 0.5}]
