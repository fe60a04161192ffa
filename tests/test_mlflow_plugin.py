"""The MLflow logger (plugins/hpt-async-mlflow) against a real local tracking store, read back with MLflow's client.

These tests need the distribution installed (``pip install -e
plugins/hpt-async-mlflow``; CI does it).  Without it they fail
rather than skip: a skipped test would hide a broken install.

A new MLflow SQLite database takes seconds to create (MLflow runs its schema
migrations), so one is made per test session and copied for each test.
"""

from __future__ import annotations

import importlib
import logging
import math
import shutil
import socket
import threading
from pathlib import Path
from types import ModuleType
from typing import Any

import anyio
import numpy as np
import pytest
from common import installed_plugin

import hpt_async as hpt
from hpt_async.plugins import Registry

INSTALL = "pip install -e plugins/hpt-async-mlflow"
OWNER = "mlflow (hpt_async_mlflow.plugin)"
HANG_GUARD = 120.0  # seconds; only reached when something hangs (the first MLflow import is slow on a busy machine)
SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(0.0, 1.0), "opt": hpt.Choice(["adam", "sgd"])}
STEPS = 5
FAILING = 3  # the trial number whose objective raises

# MLflow 3's SQLite store on SQLAlchemy 2.1 warns about an option of its own when this module's client opens it.
pytestmark = pytest.mark.filterwarnings("ignore:.*``noload`` loader strategy:DeprecationWarning")


def plugin() -> ModuleType:
    """The installed ``hpt_async_mlflow`` package; the calling test fails (never skips) when it is missing."""
    return installed_plugin("hpt-async-mlflow", "mlflow", "hpt_async_mlflow", needs=("sqlalchemy", "alembic"))


@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """An empty MLflow SQLite database with its schema, made once."""
    plugin()
    from mlflow import MlflowClient

    path = tmp_path_factory.mktemp("mlflow-template") / "mlflow.db"
    MlflowClient(tracking_uri=f"sqlite:///{path}").search_experiments()
    return path


@pytest.fixture
def store(template_db: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """The tracking URI of a fresh copy of the template database, for this test alone."""
    monkeypatch.chdir(tmp_path)  # nothing MLflow might write by default lands in the checkout
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    monkeypatch.delenv("MLFLOW_EXPERIMENT_NAME", raising=False)
    path = tmp_path / "mlflow.db"
    shutil.copyfile(template_db, path)
    return f"sqlite:///{path}"


def client(uri: str) -> Any:
    from mlflow import MlflowClient

    return MlflowClient(tracking_uri=uri)


def runs_of(uri: str, experiment: str, study: str | None = None) -> tuple[Any, dict[int, Any]]:
    """The study's run and its trial runs by number, read back through MLflow's client."""
    c = client(uri)
    found = c.get_experiment_by_name(experiment)
    assert found is not None, f"no experiment {experiment!r}"
    runs = c.search_runs([found.experiment_id], max_results=1000)
    if study is not None:
        runs = [r for r in runs if r.data.tags.get("hpt.study") == study]
    parents = [r for r in runs if r.data.tags.get("hpt.role") == "study"]
    assert len(parents) == 1, [r.info.run_name for r in runs]
    trials = {int(r.data.tags["hpt.trial"]): r for r in runs if r.data.tags.get("hpt.role") == "trial"}
    assert len(trials) + 1 == len(runs)
    return parents[0], trials


async def reporting(trial: hpt.Trial) -> float:
    """Reports a falling curve scaled by ``x``; trial FAILING raises after two reports."""
    x = trial.params["x"]
    for step in range(STEPS):
        if trial.number == FAILING and step == 2:
            raise RuntimeError("the objective broke")
        await trial.report(x * (STEPS - step), step=step)
    return x


class SparingMedian(hpt.MedianPruner):
    """The median pruner, except that it lets trial FAILING run until it breaks."""

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        if trial.number == FAILING:
            return hpt.Decision.CONTINUE
        return await super().decide(study, trial, step, value)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


# -- installation ----------------------------------------------------------------------


def test_installed_and_registered_by_name(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    mod = plugin()
    registry = hpt.get_registry()
    assert "mlflow" in registry.names("logger"), f"the process-wide registry lacks 'mlflow'; reinstall: `{INSTALL}`"
    assert registry.owner("logger", "mlflow") == OWNER
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-env")
    tuner = hpt.Tuner(reporting, SPACE, loggers=["mlflow"], max_trials=1, strategy="random")
    (logger,) = tuner.loggers
    assert isinstance(logger, mod.MlflowLogger)
    assert (logger.tracking_uri, logger.experiment, logger.metric) == (store, "from-env", "value")
    fresh = Registry(autoload=False)
    assert "mlflow" not in fresh.names("logger")
    fresh.register_plugin(importlib.import_module("hpt_async_mlflow.plugin"))
    assert fresh.get("logger", "mlflow") is mod.MlflowLogger


def test_bad_options_are_refused() -> None:
    mod = plugin()
    with pytest.raises(ValueError, match="metric"):
        mod.MlflowLogger(metric="loss:val")
    with pytest.raises(ValueError, match="intermediate_metric"):
        mod.MlflowLogger(intermediate_metric="")
    with pytest.raises(ValueError, match="drain_timeout"):
        mod.MlflowLogger(drain_timeout=0)


# -- a study read back ---------------------------------------------------------------------


@pytest.mark.anyio
async def test_study_trials_reports_and_states_read_back(store: str) -> None:
    mod = plugin()
    logger = mod.MlflowLogger(store, "tuning", metric="loss")
    tuner = hpt.Tuner(
        reporting,
        SPACE,
        study="nested",
        pruner=SparingMedian(min_trials=2),
        loggers=[logger],
        max_trials=12,
        concurrency=2,
        seed=1,
        strategy="random",
    )
    result = await run(tuner)
    assert result.plugin_errors == {}
    states = {r.number: r.state for r in result.trials}
    assert states[FAILING] is hpt.TrialState.FAILED
    assert hpt.TrialState.PRUNED in states.values() and hpt.TrialState.COMPLETE in states.values()

    # Everything is written when run() returns: no waiting here.
    c = client(store)
    parent, trials = runs_of(store, "tuning")
    assert parent.info.run_name == "nested"
    assert parent.info.status == "FINISHED"
    expected_params = {"study": "nested", "direction": "minimize", "seed": "1"}
    expected_params |= {"strategy": "random", "pruner": "median", "max_trials": "12"}
    best = result.best
    assert best is not None
    expected_params |= {f"best.{k}": str(v) for k, v in best.params.items()}
    assert parent.data.params == expected_params
    assert parent.data.tags["hpt.reason"] == "max_trials"
    assert parent.data.tags["hpt.best_trial"] == str(best.number)
    assert parent.data.metrics["best_loss"] == best.value
    for state in ("complete", "pruned", "failed"):
        assert parent.data.metrics[f"trials_{state}"] == result.count(state)
    history = [(m.step, m.value) for m in c.get_metric_history(parent.info.run_id, "loss")]
    complete = [r for r in result.trials if r.state is hpt.TrialState.COMPLETE]
    assert sorted(history) == [(r.number, r.value) for r in complete]

    assert sorted(trials) == [r.number for r in result.trials]
    for record in result.trials:
        mlrun = trials[record.number]
        label = f"trial {record.number} ({record.state.value})"
        assert mlrun.info.run_name == f"trial-{record.number}", label
        assert mlrun.data.tags["mlflow.parentRunId"] == parent.info.run_id, label
        assert mlrun.data.tags["hpt.study"] == "nested", label
        assert mlrun.data.tags["hpt.state"] == record.state.value, label
        assert mlrun.info.status == mod.STATUS[record.state], label
        assert mlrun.data.params == {k: str(v) for k, v in record.params.items()}, label
        assert mlrun.info.start_time == int(record.started * 1000), label
        assert record.ended is not None
        assert mlrun.info.end_time == int(record.ended * 1000), label
        reports = [(m.step, m.value) for m in c.get_metric_history(mlrun.info.run_id, "intermediate_loss")]
        assert sorted(reports) == sorted(record.reports.items()), label
        assert reports, label  # every trial reported at least once before it ended
        if record.state is hpt.TrialState.FAILED:
            assert "loss" not in mlrun.data.metrics, label
            assert mlrun.data.tags["hpt.error"] == record.error, label
            assert "the objective broke" in mlrun.data.tags["hpt.error"]
        else:
            assert "hpt.error" not in mlrun.data.tags, label
            (final,) = c.get_metric_history(mlrun.info.run_id, "loss")
            assert final.value == record.value, label
            assert final.step == max(record.reports), label
    assert {trials[n].info.status for n, s in states.items() if s is hpt.TrialState.PRUNED} == {"KILLED"}
    assert trials[FAILING].info.status == "FAILED"


@pytest.mark.anyio
async def test_a_study_stopped_by_failures_loses_nothing_and_a_second_study_reuses_the_logger(store: str) -> None:
    mod = plugin()
    logger = mod.MlflowLogger(store, "failing")

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(float(trial.number), step=0)
        if trial.number >= 2:
            raise ValueError(f"trial {trial.number} cannot train")
        return float(trial.number)

    tuner = hpt.Tuner(
        objective, SPACE, study="first", loggers=[logger], max_trials=10, max_failures=1, seed=0, strategy="random"
    )
    with pytest.raises(hpt.StudyFailed) as caught:
        await run(tuner)
    result = caught.value.result
    assert result.plugin_errors == {}
    parent, trials = runs_of(store, "failing")
    assert parent.info.run_name == "first"
    assert parent.info.status == "FAILED"
    assert parent.data.tags["hpt.reason"] == "max_failures"
    assert {n: (r.info.status, r.data.tags["hpt.state"]) for n, r in trials.items()} == {
        0: ("FINISHED", "complete"),
        1: ("FINISHED", "complete"),
        2: ("FAILED", "failed"),
    }
    assert trials[2].data.tags["hpt.error"] == "ValueError: trial 2 cannot train"
    assert [
        (m.step, m.value) for m in client(store).get_metric_history(trials[2].info.run_id, "intermediate_value")
    ] == [(0, 2.0)]

    # The worker thread of the first study has ended; the same logger object serves the next study.
    second = hpt.Tuner(reporting, SPACE, study="second", loggers=[logger], max_trials=2, seed=5, strategy="random")
    result = await run(second)
    assert result.plugin_errors == {}
    parent, trials = runs_of(store, "failing", "second")
    assert parent.info.status == "FINISHED"
    assert sorted(trials) == [0, 1]
    assert all(r.data.tags["mlflow.parentRunId"] == parent.info.run_id for r in trials.values())


@pytest.mark.anyio
async def test_experiment_defaults_to_the_study_name_and_runs_appear_per_study(store: str) -> None:
    mod = plugin()
    logger = mod.MlflowLogger(store)
    for name in ("alpha", "beta"):
        result = await run(
            hpt.Tuner(reporting, SPACE, study=name, loggers=[logger], max_trials=2, seed=3, strategy="random")
        )
        assert result.plugin_errors == {}
    for name in ("alpha", "beta"):
        parent, trials = runs_of(store, name)
        assert parent.info.run_name == name and parent.info.status == "FINISHED"
        assert sorted(trials) == [0, 1]


@pytest.mark.anyio
async def test_cancelled_study_marks_its_runs_killed(store: str) -> None:
    mod = plugin()
    logger = mod.MlflowLogger(store, "cancelled")
    started = anyio.Event()
    reported: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        reported.append(trial.number)
        if len(reported) == 2:
            started.set()
        await anyio.sleep_forever()
        return 0.0

    tuner = hpt.Tuner(
        objective, SPACE, study="c", loggers=[logger], concurrency=2, max_trials=5, seed=0, strategy="random"
    )
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(tuner.run)
            await started.wait()
            tg.cancel_scope.cancel()
    parent, trials = runs_of(store, "cancelled")
    assert parent.info.status == "KILLED"
    assert parent.data.tags["hpt.reason"] == "cancelled"
    assert len(trials) == 2
    c = client(store)
    for mlrun in trials.values():
        assert (mlrun.info.status, mlrun.data.tags["hpt.state"]) == ("KILLED", "cancelled")
        assert [(m.step, m.value) for m in c.get_metric_history(mlrun.info.run_id, "intermediate_value")] == [(0, 0.5)]


# -- never in the event loop's way --------------------------------------------------------------


@pytest.mark.anyio
async def test_hooks_never_wait_for_mlflow(store: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """Every write to MLflow is held back until the last trial has ended: the study must still get there."""
    mod = plugin()
    from mlflow import MlflowClient

    gate = threading.Event()
    passed: list[bool] = []
    real_log_batch = MlflowClient.log_batch

    def held_log_batch(self: Any, *args: Any, **kwargs: Any) -> Any:
        ok = gate.wait(HANG_GUARD / 2)  # False only if the study could not get on while writes were held
        passed.append(ok)
        if not ok:
            gate.set()  # a failure already: let the rest through rather than wait again
        return real_log_batch(self, *args, **kwargs)

    monkeypatch.setattr(MlflowClient, "log_batch", held_log_batch)
    n_trials = 8

    class OpenGate:
        name = "open-gate"

        @hpt.hookimpl
        def hpt_trial_ended(self, study: hpt.StudyView) -> None:
            if study.n_counted == n_trials:
                gate.set()

    logger = mod.MlflowLogger(store, "held")
    tuner = hpt.Tuner(
        reporting, SPACE, loggers=[logger, OpenGate()], max_trials=n_trials, concurrency=2, seed=2, strategy="random"
    )
    result = await run(tuner)
    assert result.plugin_errors == {}
    assert passed and all(passed)
    parent, trials = runs_of(store, "held")
    assert sorted(trials) == list(range(n_trials))
    assert parent.info.status == "FINISHED"


# -- a store that cannot be written -----------------------------------------------------------


@pytest.mark.anyio
async def test_unwritable_store_is_reported_and_the_study_goes_on(
    tmp_path: Path, store: str, caplog: pytest.LogCaptureFixture
) -> None:
    mod = plugin()
    blocker = tmp_path / "not-a-directory"
    blocker.write_text("a file where the database's folder should be\n")
    uri = f"sqlite:///{blocker}/mlflow.db"
    logger = mod.MlflowLogger(uri, "nowhere")
    tuner = hpt.Tuner(reporting, SPACE, loggers=[logger], max_trials=4, seed=0, strategy="random")
    with caplog.at_level(logging.ERROR):
        result = await run(tuner)
    assert [r.state for r in result.trials if r.number != FAILING] == [hpt.TrialState.COMPLETE] * 3
    # The study-end hook raises; the tuner isolates it, counts it and logs it.  No other hook failed.
    assert result.plugin_errors == {"mlflow.hpt_study_ended": 1}
    ours = [r for r in caplog.records if r.name == "hpt_async_mlflow"]
    assert len(ours) == 1, [r.getMessage() for r in ours]  # said once, with its traceback, however many events follow
    assert "opening the study's run" in ours[0].getMessage() and str(blocker) in ours[0].getMessage()
    assert ours[0].exc_info is not None
    summary = [r for r in caplog.records if r.name == "hpt_async" and "mlflow.hpt_study_ended" in r.getMessage()]
    assert len(summary) == 1
    assert summary[0].exc_info is not None
    error = summary[0].exc_info[1]
    assert isinstance(error, mod.MlflowLoggingError)
    assert "failed 1 time(s)" in str(error) and str(blocker) in str(error)


@pytest.mark.anyio
async def test_values_mlflow_is_strict_about_are_adapted(store: str, caplog: pytest.LogCaptureFixture) -> None:
    """Names MLflow refuses, values too long for a param, tuples, and non-finite reports."""
    mod = plugin()
    long = "w" * 7000
    space: dict[str, hpt.Domain] = {
        "lr:head": hpt.Float(0.0, 1.0),
        "block": hpt.Choice([("conv", 3), long]),
    }

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(float("nan"), step=0)
        await trial.report(float("inf"), step=1)
        await trial.report(-1.5, step=2)
        return trial.params["lr:head"]

    tuner = hpt.Tuner(
        objective, space, loggers=[mod.MlflowLogger(store, "strict")], max_trials=6, seed=0, strategy="random"
    )
    tuner.enqueue({"block": long})
    tuner.enqueue({"block": ("conv", 3)})
    with caplog.at_level(logging.ERROR):
        result = await run(tuner)
    assert result.plugin_errors == {}
    assert not [r for r in caplog.records if r.name.startswith("hpt_async")], caplog.text
    _, trials = runs_of(store, "strict")
    assert set(trials) == set(range(6))
    c = client(store)
    for record in result.trials:
        params = trials[record.number].data.params
        assert set(params) == {"lr_head", "block"}
        assert params["lr_head"] == str(record.params["lr:head"])
        block = record.params["block"]
        if block == long:
            assert len(params["block"]) == 6000 and params["block"].endswith("...")
        else:
            assert params["block"] == repr(("conv", 3))
        history = sorted(
            (m.step, m.value) for m in c.get_metric_history(trials[record.number].info.run_id, "intermediate_value")
        )
        assert [s for s, _ in history] == [0, 1, 2]
        assert math.isnan(history[0][1]) and history[1][1] > 1e300 and history[2][1] == -1.5


@pytest.mark.anyio
async def test_a_tracking_server_that_does_not_answer_holds_the_end_only_until_drain_timeout(
    caplog: pytest.LogCaptureFixture,
) -> None:
    mod = plugin()
    with socket.socket() as listener:  # accepts connections and never answers
        listener.bind(("127.0.0.1", 0))
        listener.listen(16)
        uri = f"http://127.0.0.1:{listener.getsockname()[1]}"
        logger = mod.MlflowLogger(uri, "silent", drain_timeout=1.0)
        tuner = hpt.Tuner(reporting, SPACE, loggers=[logger], max_trials=2, seed=0, strategy="random")
        with caplog.at_level(logging.ERROR):
            result = await run(tuner)  # under the hang guard: MLflow's own retries would take minutes
    assert result.plugin_errors == {"mlflow.hpt_study_ended": 1}
    ended = [r for r in caplog.records if r.name == "hpt_async" and "mlflow.hpt_study_ended" in r.getMessage()]
    assert len(ended) == 1 and ended[0].exc_info is not None
    assert "did not finish within 1.0 s" in str(ended[0].exc_info[1])


async def curve_with_checkpoints(trial: hpt.Trial) -> float:
    """Nine epochs, checkpointed before each report, so that promotion mode can pause and resume it."""
    first = 1
    if trial.should_restore:
        first = int((await trial.restore())["epoch"]) + 1
    value = math.inf
    for epoch in range(first, 10):
        value = trial.params["x"] + 1.0 / epoch
        await trial.checkpoint({"epoch": np.array(epoch)})
        await trial.report(value, step=epoch)
    return value


@pytest.mark.anyio
async def test_a_paused_and_resumed_trial_keeps_one_run(store: str) -> None:
    mod = plugin()
    logger = mod.MlflowLogger(store, "promotion")
    pruner = hpt.ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion")
    tuner = hpt.Tuner(
        curve_with_checkpoints, SPACE, pruner=pruner, loggers=[logger], max_trials=10, seed=0, strategy="random"
    )
    result = await run(tuner)
    assert result.plugin_errors == {}
    _, trials = runs_of(store, "promotion")
    assert sorted(trials) == [t.number for t in result.trials]  # one run per trial, resumed or not
    c = client(store)
    resumed = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE and len(t.reports) == 9]
    assert any(t.state is hpt.TrialState.PAUSED for t in result.trials) and resumed
    for t in result.trials:
        r = trials[t.number]
        assert r.data.tags["hpt.state"] == t.state.value
        assert r.info.status == ("FINISHED" if t.state is hpt.TrialState.COMPLETE else "KILLED")
        steps = [m.step for m in c.get_metric_history(r.info.run_id, "intermediate_value")]
        assert sorted(steps) == sorted(t.reports)  # the reports after a resume went to the same run


@pytest.mark.anyio
async def test_several_objectives_log_each_metric_by_name_with_constraints(store: str) -> None:
    mod = plugin()

    async def two(trial: hpt.Trial) -> tuple[float, float]:
        x = trial.params["x"]
        trial.set_constraints([x - 0.6])
        return x, 1.0 - x

    named = hpt.Tuner(two, SPACE, directions=["minimize", "minimize"], metric_names=["error", "latency ms"],
                      study="named", loggers=[mod.MlflowLogger(store, "mo")], max_trials=6, seed=2,
                      strategy="random")  # fmt: skip
    result = await run(named)
    assert result.plugin_errors == {}
    c = client(store)
    parent, trials = runs_of(store, "mo", "named")
    front = result.best_trials
    assert parent.data.tags["hpt.best_trials"] == ",".join(str(t.number) for t in front)
    assert "best_value" not in parent.data.metrics and "hpt.best_trial" not in parent.data.tags
    for name, i in (("error", 0), ("latency ms", 1)):
        history = sorted((m.step, m.value) for m in c.get_metric_history(parent.info.run_id, name))
        assert history == [(t.number, t.values[i]) for t in result.trials]
    for t in result.trials:
        data = trials[t.number].data
        assert data.metrics["error"] == t.values[0] and data.metrics["latency ms"] == t.values[1]
        assert data.metrics["constraint_0"] == t.constraints[0]
        assert data.tags["hpt.feasible"] == str(t.feasible).lower()

    plain = hpt.Tuner(two, SPACE, directions=["minimize", "maximize"], study="plain",
                      loggers=[mod.MlflowLogger(store, "mo")], max_trials=2, seed=2, strategy="random")  # fmt: skip
    result = await run(plain)
    _, trials = runs_of(store, "mo", "plain")
    assert trials[0].data.metrics["value_0"] == result.trials[0].values[0]
    assert trials[0].data.metrics["value_1"] == result.trials[0].values[1]
