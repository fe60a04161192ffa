"""``executor="dask"`` (plugins/hpt-async-dask) against a real LocalCluster of worker processes.

These tests need the plugin distribution installed (``pip install -e
plugins/hpt-async-dask``, which brings ``distributed``).  Without it they
fail rather than skip: a skipped test would hide a broken install.
"""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Callable, Iterator
from types import ModuleType
from typing import Any

import anyio
import pytest
from common import StopAtStep, installed_plugin

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(0.0, 1.0), "k": hpt.Int(1, 8)}
# Bound on any run; only reached when something hangs.
HANG_GUARD = 30.0


def plugin() -> ModuleType:
    """The installed ``hpt_async_dask`` package; the calling test fails (never skips) when it is missing."""
    return installed_plugin("hpt-async-dask", "dask", "hpt_async_dask")


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded worker processes, shared by this module's tests."""
    plugin()
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as local:
        yield local


@pytest.fixture
def address(cluster: Any) -> str:
    """The scheduler address, once both workers are up (a previous test may have killed one)."""
    from distributed import Client

    with Client(cluster.scheduler_address, timeout=HANG_GUARD) as client:
        client.wait_for_workers(2, timeout=HANG_GUARD)
    return str(cluster.scheduler_address)


def make(objective: Callable[..., Any], executor: Any, **kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, SPACE, executor=executor, **kwargs)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


async def pids_of_workers(address: str) -> set[int]:
    """The process ids of the cluster's workers."""
    from distributed import Client

    async with Client(address, asynchronous=True) as client:
        return set((await client.run(os.getpid)).values())


# -- objectives (run on the Dask workers) -----------------------------------------------


def reporting(trial: hpt.SyncTrial) -> float:
    trial.set_user_attr("pid", os.getpid())
    x = trial.params["x"]
    for step in range(3):
        trial.report(x * step, step=step)
    return x * trial.params["k"]


def prunable(trial: hpt.SyncTrial) -> float:
    try:
        for step in range(10):
            trial.report(float(step), step=step)
    except hpt.TrialPruned as exc:
        trial.set_user_attr("saw", type(exc).__name__)
        raise
    return 0.0


def _lookup(table: dict[str, int], key: str) -> int:
    return table[key]


def raising(trial: hpt.SyncTrial) -> float:
    if trial.number == 0:
        _lookup({}, "missing-thing")
    return 1.0


def long_reporting(trial: hpt.SyncTrial) -> float:
    """Trial 0 reports its pid every 50 ms for a long time; the others finish at once."""
    if trial.number != 0:
        return float(os.getpid())
    for step in range(600):
        trial.report(os.getpid(), step=step)
        time.sleep(0.05)
    return 0.0


# -- tests ---------------------------------------------------------------------------------


async def test_the_plugin_registers_executor_dask(monkeypatch: pytest.MonkeyPatch) -> None:
    module = plugin()
    registry = hpt.get_registry()
    monkeypatch.setenv(module.SCHEDULER_ENV, "tcp://127.0.0.1:8786")
    assert isinstance(registry.create("executor", "dask"), module.DaskExecutor)
    assert registry.owner("executor", "dask") == "dask (hpt_async_dask.plugin)"


def test_having_the_plugin_installed_does_not_import_distributed() -> None:
    import subprocess
    import sys

    code = "import sys, hpt_async as hpt; hpt.get_registry(); print('distributed' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "False"


async def test_results_reports_and_user_attributes_come_back_from_the_workers(address: str) -> None:
    module = plugin()
    result = await run(make(reporting, module.DaskExecutor(address), max_trials=6, concurrency=2))
    assert result.count("complete") == 6
    for record in result.trials:
        x = record.params["x"]
        assert record.value == pytest.approx(x * record.params["k"])
        assert dict(record.reports) == pytest.approx({0: 0.0, 1: x, 2: 2 * x})
    worker_pids = await pids_of_workers(address)
    assert {record.user_attrs["pid"] for record in result.trials} <= worker_pids
    assert os.getpid() not in worker_pids


async def test_executor_dask_by_name_takes_the_scheduler_from_the_environment(
    address: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    module = plugin()
    monkeypatch.delenv(module.SCHEDULER_ENV, raising=False)
    with pytest.raises(ValueError, match=module.SCHEDULER_ENV):
        make(reporting, "dask")
    monkeypatch.setenv(module.SCHEDULER_ENV, address)
    result = await run(make(reporting, "dask", max_trials=2, concurrency=2))
    assert result.count("complete") == 2


async def test_a_given_asynchronous_client_is_used_and_left_open(address: str) -> None:
    module = plugin()
    from distributed import Client

    async with Client(address, asynchronous=True) as client:
        result = await run(make(reporting, module.DaskExecutor(client=client), max_trials=2))
        assert result.count("complete") == 2
        assert client.status == "running"
    with Client(address) as blocking:
        with pytest.raises(TypeError, match="asynchronous=True"):
            await run(make(reporting, module.DaskExecutor(client=blocking), max_trials=1))


async def test_the_pruner_stops_trials_on_remote_workers(address: str) -> None:
    module = plugin()
    result = await run(make(prunable, module.DaskExecutor(address), pruner=StopAtStep(2), max_trials=3, concurrency=2))
    for record in result.trials:
        assert record.state is hpt.TrialState.PRUNED
        assert record.value == 2.0
        assert dict(record.reports) == {0: 0.0, 1: 1.0, 2: 2.0}
        assert record.user_attrs["saw"] == "TrialPruned"


async def test_exceptions_come_back_with_their_remote_traceback(address: str) -> None:
    module = plugin()
    result = await run(make(raising, module.DaskExecutor(address), max_trials=3, concurrency=2))
    failed = next(r for r in result.trials if r.number == 0)
    assert failed.state is hpt.TrialState.FAILED
    assert failed.error == "KeyError: 'missing-thing'"
    assert failed.traceback is not None and "_lookup" in failed.traceback and "RemoteTraceback" in failed.traceback
    assert result.count("complete") == 2


async def test_an_unpicklable_objective_is_refused(address: str) -> None:
    module = plugin()
    import threading

    lock = threading.Lock()

    def objective(trial: hpt.SyncTrial) -> float:
        with lock:
            return 0.0

    with pytest.raises(TypeError, match="closure variable 'lock'"):
        make(objective, module.DaskExecutor(address))


async def test_a_trial_timeout_stops_the_remote_trial_at_its_next_report(address: str) -> None:
    module = plugin()
    from distributed import Client

    result = await run(make(long_reporting, module.DaskExecutor(address), max_trials=3, concurrency=2, trial_timeout=2))
    hung = next(r for r in result.trials if r.number == 0)
    assert hung.state is hpt.TrialState.FAILED and "trial_timeout" in (hung.error or "")
    assert result.count("complete") == 2
    # The abandoned task stopped at its next report: nothing is left running on the cluster.
    async with Client(address, asynchronous=True) as client:
        with anyio.fail_after(HANG_GUARD):
            while any((await client.processing()).values()):
                await anyio.sleep(0.05)


class KillOnReport:
    """Kills the worker process of trial 0 when its first report arrives."""

    def __init__(self) -> None:
        self.killed: int | None = None

    @hpt.hookimpl
    def hpt_trial_reported(self, event: hpt.TrialReported) -> None:
        if event.number == 0 and self.killed is None:
            self.killed = int(event.value)
            os.kill(self.killed, signal.SIGKILL)


async def test_a_worker_killed_mid_trial_fails_that_trial_and_the_study_goes_on(address: str) -> None:
    module = plugin()
    killer = KillOnReport()
    tuner = make(long_reporting, module.DaskExecutor(address), max_trials=5, concurrency=2, plugins=[killer])
    result = await run(tuner)
    lost = next(r for r in result.trials if r.number == 0)
    assert lost.state is hpt.TrialState.FAILED
    assert lost.error is not None
    assert lost.error.startswith(("WorkerLost: ", "KilledWorker: ")), lost.error
    assert str(killer.killed) in lost.error or "KilledWorker" in lost.error
    # The other trials are intact.
    others = [r for r in result.trials if r.number != 0]
    assert [r.state for r in others] == [hpt.TrialState.COMPLETE] * 4
