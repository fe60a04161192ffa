"""directions= and metric_names=, constraints, feasibility first, and the errors that fail one trial only."""

from __future__ import annotations

import csv
import io
import math
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import cli

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}
BOTH = ["minimize", "maximize"]


# -- directions= and metric_names= -----------------------------------------------------------


def test_directions_takes_one_direction_per_objective_and_one_entry_means_one_objective() -> None:
    several = hpt.Tuner(None, SPACE, directions=BOTH, loggers=[], strategy="random")
    assert several.direction == ("minimize", "maximize")
    assert (
        hpt.Tuner(None, SPACE, direction=BOTH, loggers=[], strategy="random").direction == several.direction
    )  # the tuple form
    one = hpt.Tuner(None, SPACE, directions=["maximize"], loggers=[], strategy="random")
    assert one.direction == "maximize"


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"direction": "minimize", "directions": BOTH}, "not both"),
        ({"directions": "minimize"}, "takes a sequence"),
        ({"directions": ["minimize", "up"]}, "direction must be"),
        ({"directions": BOTH, "metric_names": ["error"]}, "1 names for 2 objective"),
        ({"directions": BOTH, "metric_names": ["a", "a"]}, "distinct"),
        ({"directions": BOTH, "metric_names": ["a", ""]}, "non-empty strings"),
        ({"metric_names": ["a", "b"]}, "2 names for 1 objective"),
    ],
)
def test_bad_directions_and_metric_names_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hpt.Tuner(None, SPACE, loggers=[], **options)


# -- constraints ------------------------------------------------------------------------------


def _constrained_one(trial: hpt.SyncTrial) -> float:
    x = trial.params["x"]
    trial.set_constraints([0.5 - x])  # feasible when x >= 0.5
    return x  # minimised: the best feasible x is the smallest one >= 0.5


async def test_one_objective_the_best_is_the_best_feasible_trial() -> None:
    result = await hpt.Tuner(_constrained_one, SPACE, max_trials=30, seed=1, loggers=[], strategy="random").run()
    feasible = [t for t in result.trials if t.feasible]
    assert feasible and len(feasible) < len(result.trials)  # both kinds occurred
    assert min(t.value for t in result.trials) < 0.5  # an infeasible trial had the lower value
    assert result.best is not None and result.best.feasible
    assert result.best.value == min(t.value for t in feasible)
    assert result.best_trials == [result.best]
    assert all(t.constraints == (pytest.approx(0.5 - t.params["x"]),) for t in result.trials)
    assert result.n_feasible == len(feasible)


async def test_no_feasible_trial_means_no_best_and_the_summary_says_so(capsys: pytest.CaptureFixture[str]) -> None:
    def never(trial: hpt.SyncTrial) -> tuple[float, float]:
        trial.set_constraints([1.0, -1.0])
        return trial.params["x"], trial.params["x"]

    def never_one(trial: hpt.SyncTrial) -> float:
        return never(trial)[0]

    result = await hpt.Tuner(never_one, SPACE, max_trials=4, loggers=["console"], seed=0, strategy="random").run()
    assert result.count("complete") == 4 and result.best is None and result.best_trials == []
    err = capsys.readouterr().err
    assert "no feasible trial (every constraint <= 0) completed" in err
    assert "best none feasible yet" in err  # the progress line
    several = await hpt.Tuner(never, SPACE, directions=BOTH, max_trials=4, loggers=[], seed=0, strategy="random").run()
    assert several.best_trials == [] and several.hypervolume() == 0.0


async def test_several_objectives_the_front_holds_feasible_trials_only() -> None:
    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        x = trial.params["x"]
        trial.set_constraints([x - 0.7])  # feasible when x <= 0.7
        return x, x**0.5  # every trial is on the unconstrained front

    result = await hpt.Tuner(
        objective, SPACE, directions=BOTH, max_trials=20, seed=2, loggers=[], strategy="random"
    ).run()
    front = result.best_trials
    assert front == [t for t in result.trials if t.params["x"] <= 0.7]
    assert len(front) < 20
    with pytest.raises(hpt.SeveralObjectivesError, match="best_trials"):
        _ = result.best_params
    assert result.hypervolume() > 0.0


async def test_constraints_in_a_worker_process_reach_the_record() -> None:
    from hpt_async.executors import ProcessExecutor

    result = await hpt.Tuner(
        _constrained_one, SPACE, max_trials=3, executor=ProcessExecutor(1), loggers=[], seed=3, strategy="random"
    ).run()
    assert [t.constraints for t in result.trials] == [(pytest.approx(0.5 - t.params["x"]),) for t in result.trials]


async def test_ask_and_tell_takes_constraints_set_before_tell() -> None:
    tuner = hpt.Tuner(None, SPACE, loggers=[], seed=0, strategy="random")
    trial = await tuner.ask()
    trial.set_constraints([2.0])
    record = await tuner.tell(trial, 0.1)
    assert record.constraints == (2.0,) and not record.feasible
    result = await tuner.close()
    assert result.best is None


# -- errors: the trial FAILS with a clear message, the study goes on ---------------------------


async def test_wrong_lengths_nan_values_and_changing_constraints_fail_one_trial_each() -> None:
    async def objective(trial: hpt.Trial) -> Any:
        n = trial.number
        if n == 1:
            return (1.0, 2.0, 3.0)  # one value too many
        if n == 2:
            return (math.nan, 1.0)  # a NaN in one value
        if n == 3:
            trial.set_constraints([0.0, 0.0])  # the study's trials give one constraint
        elif n == 4:
            pass  # no constraints at all
        elif n == 5:
            trial.set_constraints([math.nan])  # refused at once: set_constraints raises
        else:
            trial.set_constraints([-1.0])
        return (trial.params["x"], 1.0)

    result = await hpt.Tuner(
        objective, SPACE, directions=BOTH, max_trials=7, loggers=[], seed=0, strategy="random"
    ).run()
    states = [t.state for t in result.trials]
    assert states == [hpt.TrialState.COMPLETE] + [hpt.TrialState.FAILED] * 5 + [hpt.TrialState.COMPLETE]
    errors = [t.error for t in result.trials]
    assert "expected a sequence of 2 numbers" in errors[1]
    assert "ValueError: the objective returned nan" in errors[2]
    assert "set 2 constraints; the study's trials give 1" in errors[3]
    assert "set no constraints; the study's trials give 1" in errors[4]
    assert "constraint values must be finite" in errors[5]


def test_set_constraints_refuses_what_is_not_a_sequence_of_numbers() -> None:
    from hpt_async.trial import check_constraints

    with pytest.raises(TypeError, match="sequence of numbers"):
        check_constraints(0.5)
    with pytest.raises(TypeError, match="sequence of numbers"):
        check_constraints(["a"])
    with pytest.raises(ValueError, match="finite"):
        check_constraints([math.inf])
    import numpy as np

    assert check_constraints(np.array([1, -2])) == (1.0, -2.0)


async def test_a_report_of_the_wrong_length_fails_the_trial_and_the_study_goes_on() -> None:
    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        await trial.report((1.0, 2.0, 3.0) if trial.number == 0 else (1.0, 2.0), step=0)
        return 0.0, 0.0

    result = await hpt.Tuner(
        objective, SPACE, directions=BOTH, max_trials=2, loggers=[], fail_fast=False, strategy="random"
    ).run()
    assert [t.state.value for t in result.trials] == ["failed", "complete"]
    assert "a report takes one value per objective (2), got 3" in result.trials[0].error


# -- export and the command line ----------------------------------------------------------------


def _named(trial: hpt.SyncTrial) -> tuple[float, float]:
    x = trial.params["x"]
    trial.set_constraints([x - 0.8])
    return x, x**0.5


async def test_load_study_has_a_column_per_objective_and_constraint(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    await hpt.Tuner(_named, SPACE, directions=BOTH, metric_names=["error", "latency_ms"], storage=url,
                    study="named", max_trials=5, loggers=[], seed=0, strategy="random").run()  # fmt: skip
    await hpt.Tuner(_named, SPACE, directions=BOTH, storage=url, study="plain", max_trials=3, loggers=[],
                    seed=0, strategy="random").run()  # fmt: skip
    named = await hpt.load_study_async(url, "named")
    assert named.metric_names == ("error", "latency_ms")
    rows = named.to_rows()
    assert list(rows[0])[:5] == ["number", "state", "value", "values_error", "values_latency_ms"]
    assert [(r["values_error"], r["values_latency_ms"]) for r in rows] == [t.values for t in named.trials]
    assert [r["constraints_0"] for r in rows] == [t.constraints[0] for t in named.trials]
    assert [r["feasible"] for r in rows] == [t.feasible for t in named.trials]
    table = list(csv.DictReader(io.StringIO(named.to_csv())))
    assert float(table[0]["values_latency_ms"]) == pytest.approx(named.trials[0].values[1])
    plain = (await hpt.load_study_async(url, "plain")).to_rows()
    assert "values_0" in plain[0] and "values_1" in plain[0]
    assert [t.number for t in named.best_trials] == [t.number for t in named.trials if t.feasible]


def test_hpt_async_best_lists_the_front(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'mo.db'}"
    tuner = hpt.Tuner(_named, SPACE, directions=BOTH, metric_names=["error", "latency_ms"], storage=url,
                      study="named", max_trials=6, loggers=[], seed=4, strategy="random")  # fmt: skip
    result = anyio.run(tuner.run)
    code, out, _ = cli(capsys, "best", "named", "--storage", url)
    assert code == 0
    assert "error: minimize, latency_ms: maximize" in out
    assert f"Pareto front: {len(result.best_trials)} trials" in out
    lines = out.splitlines()
    head = next(i for i, line in enumerate(lines) if line.startswith("NUMBER"))
    assert lines[head].split()[:4] == ["NUMBER", "ERROR", "LATENCY_MS", "CONSTRAINTS"]
    listed = [int(line.split()[0]) for line in lines[head + 1 :] if line.strip() and line.split()[0].isdigit()]
    assert listed == [t.number for t in result.best_trials]


def test_hpt_async_best_says_when_no_trial_is_feasible(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    url = f"sqlite:///{tmp_path / 'none.db'}"

    def never(trial: hpt.SyncTrial) -> float:
        trial.set_constraints([1.0])
        return trial.params["x"]

    anyio.run(hpt.Tuner(never, SPACE, storage=url, study="none", max_trials=2, loggers=[], strategy="random").run)
    code, out, _ = cli(capsys, "best", "none", "--storage", url)
    assert code == 1 and "has no feasible trial: none of its 2 complete trials" in out


async def test_target_is_reached_only_by_a_feasible_trial() -> None:
    async def objective(trial: hpt.Trial) -> float:
        trial.set_constraints([1.0 if trial.number < 3 else -1.0])  # the first three are infeasible
        return 0.0  # every value reaches the target

    result = await hpt.Tuner(objective, SPACE, target=0.5, max_trials=10, loggers=[], seed=0, strategy="random").run()
    assert result.reason == "target"
    assert len(result.trials) == 4 and result.best is not None and result.best.number == 3
