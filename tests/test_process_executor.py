"""``executor="process"``: worker processes, reports and pruning across them, faults, devices.

Objectives are module-level functions so that they cross to the workers by
name with plain pickle as well as with cloudpickle; a worker imports this
module to find them.
"""

from __future__ import annotations

import ctypes
import os
import resource
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import StopAtStep

import hpt_async as hpt
from hpt_async.executors import ProcessExecutor
from hpt_async.executors.remote import PICKLER

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(0.0, 1.0), "k": hpt.Int(1, 8)}
# Bound on any run; only reached when something hangs.
HANG_GUARD = 30.0
# Bound on waits inside objectives; only reached when something is wrong.
WORKER_WAIT = 10.0


def make(objective: Callable[..., Any], executor: Any = "process", **kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE on the process executor."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, kwargs.pop("space", SPACE), executor=executor, **kwargs)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def alive(pid: int) -> bool:
    """True while ``pid`` is a live process (a zombie counts as dead)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc: trust kill(0)
    return stat.rsplit(")", 1)[1].split()[0] != "Z"


async def wait_dead(pids: list[int], within: float = 5.0) -> list[int]:
    """The pids still alive after waiting up to ``within`` seconds for all of them to end."""
    with anyio.move_on_after(within):
        while any(alive(p) for p in pids):
            await anyio.sleep(0.02)
    return [p for p in pids if alive(p)]


def wait_for_files(folder: Path, count: int) -> bool:
    """In a worker: wait until ``folder`` holds ``count`` files."""
    deadline = time.monotonic() + WORKER_WAIT
    while time.monotonic() < deadline:
        if len(list(folder.iterdir())) >= count:
            return True
        time.sleep(0.01)
    return False


# -- objectives (run in worker processes) ---------------------------------------------


def reporting(trial: hpt.SyncTrial) -> float:
    trial.set_user_attr("pid", os.getpid())
    trial.set_user_attr("handle", type(trial).__mro__[1].__name__)
    x = trial.params["x"]
    for step in range(3):
        trial.report(x * step, step=step)
    return x * trial.params["k"]


def meeting(trial: hpt.SyncTrial) -> float:
    folder = Path(trial.params["folder"])
    (folder / str(trial.number)).touch()
    met = wait_for_files(folder, 2)
    trial.set_user_attr("pid", os.getpid())
    return 1.0 if met else 0.0


def prunable(trial: hpt.SyncTrial) -> float:
    try:
        for step in range(10):
            trial.report(float(step), step=step)
    except hpt.TrialPruned as exc:
        trial.set_user_attr("saw", f"{type(exc).__name__} in {os.getpid()}")
        raise
    return 0.0


class TwoArgError(Exception):
    """Pickles, but does not unpickle (its ``__init__`` wants two arguments)."""

    def __init__(self, message: str, code: int) -> None:
        super().__init__(message)
        self.code = code


def _lookup(table: dict[str, int], key: str) -> int:
    return table[key]


def raising(trial: hpt.SyncTrial) -> float:
    trial.set_user_attr("before", trial.number)
    if trial.number == 0:
        _lookup({}, "missing-thing")
    if trial.number == 1:
        raise TwoArgError("odd one", 2)
    if trial.number == 2:
        sys.exit(4)
    return float(os.getpid())


def crashing(trial: hpt.SyncTrial) -> float:
    trial.report(os.getpid(), step=0)
    if trial.number == 0:
        os._exit(3)
    if trial.number == 1:
        ctypes.string_at(0)  # reads address 0: SIGSEGV
    if trial.number == 2:
        os.kill(os.getpid(), signal.SIGKILL)  # what the out-of-memory killer does
    return float(os.getpid())


def hungry(trial: hpt.SyncTrial) -> float:
    limit = resource.getrlimit(resource.RLIMIT_AS)[0]
    trial.set_user_attr("limit", limit)
    trial.report(os.getpid(), step=0)
    if trial.number == 0:
        hoard = bytearray(2 * limit)  # twice the address space the worker may have
        return float(len(hoard))
    return float(os.getpid())


def address_space() -> int:
    """This process's virtual memory size in bytes (a worker's is of the same order)."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("VmSize:"):
            return int(line.split()[1]) * 1024
    return 0


def hanging(trial: hpt.SyncTrial) -> float:
    trial.report(os.getpid(), step=0)
    if trial.number == 0:
        time.sleep(60)
    return float(os.getpid())


def sleeping_with_a_child(trial: hpt.SyncTrial) -> float:
    child = subprocess.Popen(["sleep", "60"])
    trial.report(os.getpid(), step=0)
    trial.report(child.pid, step=1)
    time.sleep(60)
    return 0.0


def device_bound(trial: hpt.SyncTrial) -> float:
    trial.set_user_attr("devices", os.environ.get("CUDA_VISIBLE_DEVICES"))
    trial.set_user_attr("start", time.time())
    time.sleep(0.15)
    trial.set_user_attr("end", time.time())
    return 0.0


class LockHolder:
    """A callable objective that carries something unpicklable."""

    def __init__(self) -> None:
        self.scale = 2.0
        self.lock = threading.Lock()

    def __call__(self, trial: hpt.SyncTrial) -> float:
        with self.lock:
            return self.scale


# -- tests -----------------------------------------------------------------------------


async def test_process_is_a_registered_executor_for_def_objectives_only() -> None:
    assert "process" in hpt.get_registry().names("executor")
    assert isinstance(make(reporting).executor, ProcessExecutor)

    async def coroutine_objective(trial: hpt.Trial) -> float:
        return 0.0

    with pytest.raises(TypeError, match="plain def objectives"):
        make(coroutine_objective)
    for bad in ({"max_workers": 0}, {"gpus_per_trial": 0}, {"memory_limit": -1}, {"devices": ["0", "0"]}):
        with pytest.raises(ValueError):
            ProcessExecutor(**bad)
    with pytest.raises(ValueError, match="gpus_per_trial=2"):
        ProcessExecutor(devices=["0"], gpus_per_trial=2)


async def test_results_reports_and_user_attributes_come_back_from_worker_processes() -> None:
    result = await run(make(reporting, max_trials=6, concurrency=2))
    assert result.count("complete") == 6
    pids = {record.user_attrs["pid"] for record in result.trials}
    assert os.getpid() not in pids
    assert 1 <= len(pids) <= 2  # a pool of two reused workers
    for record in result.trials:
        x = record.params["x"]
        assert record.value == pytest.approx(x * record.params["k"])
        assert dict(record.reports) == pytest.approx({0: 0.0, 1: x, 2: 2 * x})
        assert record.user_attrs["handle"] == "SyncTrial"
    # Closing the study ended the workers.
    assert await wait_dead(sorted(pids)) == []


async def test_trials_run_at_once_in_separate_processes(tmp_path: Path) -> None:
    space = {"folder": hpt.Choice([str(tmp_path)])}
    result = await run(make(meeting, space=space, max_trials=2, concurrency=2))
    # Each objective waited until the other had started: both ran at the same time.
    assert [record.value for record in result.trials] == [1.0, 1.0]
    assert len({record.user_attrs["pid"] for record in result.trials}) == 2


async def test_a_closure_crosses_by_value_with_cloudpickle_or_is_refused_with_plain_pickle() -> None:
    offset = 0.25

    def closure(trial: hpt.SyncTrial) -> float:
        return trial.params["x"] + offset

    if PICKLER == "cloudpickle":
        result = await run(make(closure, max_trials=2))
        assert [r.value for r in result.trials] == pytest.approx([r.params["x"] + 0.25 for r in result.trials])
    else:
        with pytest.raises(TypeError, match="install cloudpickle"):
            make(closure)


async def test_a_pruner_stops_an_objective_running_in_a_worker_process() -> None:
    result = await run(make(prunable, pruner=StopAtStep(2), max_trials=3, concurrency=2))
    for record in result.trials:
        assert record.state is hpt.TrialState.PRUNED
        assert record.value == 2.0
        assert dict(record.reports) == {0: 0.0, 1: 1.0, 2: 2.0}
        saw, pid = record.user_attrs["saw"].split(" in ")
        assert saw == "TrialPruned" and int(pid) != os.getpid()


async def test_exceptions_come_back_with_their_remote_traceback() -> None:
    result = await run(make(raising, max_trials=5, concurrency=1))
    by_number = {record.number: record for record in result.trials}

    lookup = by_number[0]
    assert lookup.state is hpt.TrialState.FAILED
    assert lookup.error == "KeyError: 'missing-thing'"
    assert lookup.traceback is not None
    assert "RemoteTraceback" in lookup.traceback
    assert "_lookup" in lookup.traceback and "return table[key]" in lookup.traceback
    assert lookup.user_attrs == {"before": 0}

    # An exception that does not unpickle, and SystemExit, arrive as RemoteError.
    odd = by_number[1]
    assert odd.state is hpt.TrialState.FAILED
    assert odd.error is not None and odd.error.startswith("RemoteError: ")
    assert odd.error.endswith("TwoArgError: odd one")
    assert odd.traceback is not None and "raise TwoArgError" in odd.traceback
    exited = by_number[2]
    assert exited.error == "RemoteError: SystemExit: 4"

    # The worker survived all three: the study went on in the same process.
    assert [by_number[n].state for n in (3, 4)] == [hpt.TrialState.COMPLETE] * 2
    assert by_number[3].value == by_number[4].value


async def test_an_unpicklable_objective_is_refused_naming_what_could_not_be_pickled() -> None:
    with pytest.raises(TypeError) as info:
        make(LockHolder())
    message = str(info.value)
    assert "the objective cannot be pickled" in message
    assert "LockHolder" in message and "attribute 'lock'" in message and "_thread.lock" in message
    assert "executor='thread'" in message
    # The same objective is fine in a thread.
    result = await run(make(LockHolder(), executor="thread", max_trials=1))
    assert result.trials[0].value == 2.0


async def test_an_unpicklable_parameter_fails_its_trial_naming_the_parameter() -> None:
    space = {"x": hpt.Float(0.0, 1.0), "guard": hpt.Choice([threading.Lock()])}
    result = await run(make(reporting, space=space, max_trials=2))
    for record in result.trials:
        assert record.state is hpt.TrialState.FAILED
        assert record.error is not None
        assert "parameter 'guard' of trial" in record.error and "_thread.lock" in record.error


async def test_a_worker_that_dies_fails_its_trial_and_is_replaced() -> None:
    result = await run(make(crashing, max_trials=5, concurrency=1))
    by_number = {record.number: record for record in result.trials}
    errors = [by_number[n].error or "" for n in range(3)]
    assert all(error.startswith("WorkerCrashed: worker process ") for error in errors)
    assert "exited with code 3" in errors[0]
    assert "SIGSEGV" in errors[1]
    assert "SIGKILL" in errors[2] and "out-of-memory killer" in errors[2]
    assert [by_number[n].state for n in (3, 4)] == [hpt.TrialState.COMPLETE] * 2
    # Each crash cost one worker; a new one took its place.
    pids = [int(by_number[n].reports[0]) for n in range(5)]
    assert len(set(pids[:3])) == 3 and pids[3] == pids[4] and pids[3] not in pids[:3]
    assert await wait_dead(pids) == []


async def test_running_out_of_memory_under_a_memory_limit_fails_the_trial_and_replaces_the_worker() -> None:
    limit = max(2**30, address_space() + 2**29)
    executor = ProcessExecutor(memory_limit=limit)
    result = await run(make(hungry, executor=executor, max_trials=3, concurrency=1))
    first, *rest = sorted(result.trials, key=lambda r: r.number)
    assert first.state is hpt.TrialState.FAILED
    assert first.error is not None and first.error.startswith("MemoryError: trial 0 ran out of memory")
    assert f"memory_limit={limit} bytes" in first.error
    assert first.traceback is not None and "bytearray(2 * limit)" in first.traceback
    assert first.user_attrs["limit"] == limit
    assert [r.state for r in rest] == [hpt.TrialState.COMPLETE] * 2
    # The worker that ran out of memory was replaced.
    assert int(first.reports[0]) not in {int(r.reports[0]) for r in rest}


async def test_a_hung_trial_is_killed_at_trial_timeout_and_the_pool_recovers() -> None:
    result = await run(make(hanging, max_trials=4, concurrency=2, trial_timeout=2.0))
    by_number = {record.number: record for record in result.trials}
    hung = by_number[0]
    assert hung.state is hpt.TrialState.FAILED
    assert hung.error is not None and "trial_timeout" in hung.error
    hung_pid = int(hung.reports[0])
    assert not alive(hung_pid)  # killed and reaped before the trial was recorded
    others = [by_number[n] for n in (1, 2, 3)]
    assert [r.state for r in others] == [hpt.TrialState.COMPLETE] * 3
    assert hung_pid not in {int(r.reports[0]) for r in others}


class CancelWhenReported:
    """Cancels ``scope`` once ``count`` reports at ``step`` have arrived; keeps the reported values."""

    def __init__(self, scope: anyio.CancelScope, count: int, step: int) -> None:
        self.scope = scope
        self.count = count
        self.step = step
        self.values: dict[tuple[int, int], float] = {}

    @hpt.hookimpl
    def hpt_trial_reported(self, event: hpt.TrialReported) -> None:
        self.values[(event.number, event.step)] = event.value
        if sum(1 for _, step in self.values if step == self.step) >= self.count:
            self.scope.cancel()


async def test_cancelling_the_study_kills_running_workers_and_what_they_started() -> None:
    with anyio.fail_after(HANG_GUARD):
        with anyio.CancelScope() as scope:
            watcher = CancelWhenReported(scope, count=2, step=1)
            tuner = make(sleeping_with_a_child, max_trials=2, concurrency=2, plugins=[watcher])
            await tuner.run()
    assert scope.cancelled_caught
    assert [r.state for r in tuner.study.trials.values()] == [hpt.TrialState.CANCELLED] * 2
    workers = [int(v) for (_, step), v in watcher.values.items() if step == 0]
    children = [int(v) for (_, step), v in watcher.values.items() if step == 1]
    assert len(workers) == 2 and len(children) == 2
    assert not any(alive(pid) for pid in workers)  # reaped before run() returned
    assert await wait_dead(children) == []


async def test_each_running_trial_gets_its_own_devices_and_devices_bound_concurrency() -> None:
    executor = ProcessExecutor(devices=["0", "1", "2", "3", "4"], gpus_per_trial=2)
    result = await run(make(device_bound, executor=executor, max_trials=6, concurrency=4))
    assert result.count("complete") == 6
    seen = [(r.user_attrs["devices"], r.user_attrs["start"], r.user_attrs["end"]) for r in result.trials]
    assert {devices for devices, _, _ in seen} <= {"0,1", "2,3"}  # device 4 alone is not a pair
    for _, moment, _ in seen:
        # Every trial running when one started: at most two (two pairs), never sharing a device.
        running = [devices for devices, start, end in seen if start <= moment < end]
        assert 1 <= len(running) <= 2
        assert len(set(running)) == len(running)


async def test_devices_default_to_the_visible_ones(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "5,7")
    result = await run(make(device_bound, executor=ProcessExecutor(gpus_per_trial=1), max_trials=4, concurrency=3))
    assert {r.user_attrs["devices"] for r in result.trials} <= {"5", "7"}
    monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
    with pytest.raises(ValueError, match="pass devices="):
        await run(make(device_bound, executor=ProcessExecutor(gpus_per_trial=1), max_trials=1))


ORPHAN_OBJECTIVE = """
import os, time

def objective(trial):
    path = os.path.join(os.environ["PID_FOLDER"], str(os.getpid()))
    with open(path, "w") as f:
        f.write("")
    time.sleep(60)
    return 0.0
"""

ORPHAN_TUNER = """
import anyio, hpt_async as hpt
from orphan_objective import objective

tuner = hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, executor="process", concurrency=2, max_trials=2,
                  loggers=[], strategy="random")
anyio.run(tuner.run)
"""


async def test_workers_end_when_the_tuner_process_is_killed(tmp_path: Path) -> None:
    (tmp_path / "orphan_objective.py").write_text(ORPHAN_OBJECTIVE)
    (tmp_path / "tuner.py").write_text(ORPHAN_TUNER)
    pids = tmp_path / "pids"
    pids.mkdir()
    env = {**os.environ, "PID_FOLDER": str(pids), "HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD": "1"}
    tuner = subprocess.Popen([sys.executable, str(tmp_path / "tuner.py")], env=env, cwd=tmp_path)
    try:
        with anyio.fail_after(HANG_GUARD):
            while len(list(pids.iterdir())) < 2:
                await anyio.sleep(0.02)
    finally:
        tuner.kill()
        tuner.wait()
    workers = [int(p.name) for p in pids.iterdir()]
    # Orphaned, each worker notices its parent is gone and ends itself.
    assert await wait_dead(workers, within=10.0) == []
