"""Plain ``def`` objectives: worker threads, a synchronous trial, cooperative cancellation."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import anyio
import anyio.to_thread
import pytest
from common import StopAtStep

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(0.0, 1.0), "k": hpt.Int(1, 8)}
HANG_GUARD = 10.0
# Bound on any wait inside a worker thread; only reached when something is wrong.
THREAD_WAIT = 5.0


def make(objective: Callable[..., Any], **kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, SPACE, **kwargs)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


@pytest.fixture
def release() -> Iterator[threading.Event]:
    """An event blocked objectives wait on; always set at teardown so no thread is left waiting."""
    event = threading.Event()
    yield event
    event.set()


async def wait_in_thread(event: threading.Event) -> bool:
    """Wait for a threading.Event without blocking the loop."""
    return await anyio.to_thread.run_sync(event.wait, THREAD_WAIT)


async def test_a_def_objective_runs_in_a_worker_thread_with_a_sync_trial() -> None:
    loop_thread = threading.get_ident()
    seen: list[tuple[int, type, int]] = []

    def objective(trial: hpt.SyncTrial) -> float:
        seen.append((threading.get_ident(), type(trial), trial.number))
        trial.set_user_attr("thread", True)
        trial.report(trial.params["x"], step=0)
        trial.report(trial.params["x"] / 2, step=1)
        assert dict(trial.reports) == {0: trial.params["x"], 1: trial.params["x"] / 2}
        return trial.params["x"] * trial.params["k"]

    result = await run(make(objective, max_trials=4, concurrency=2))
    assert result.count("complete") == 4
    assert all(ident != loop_thread for ident, _, _ in seen)
    assert all(cls is hpt.SyncTrial for _, cls, _ in seen)
    for record in result.trials:
        assert record.value == pytest.approx(record.params["x"] * record.params["k"])
        assert sorted(record.reports) == [0, 1]
        assert dict(record.user_attrs) == {"thread": True}


async def test_sync_objectives_do_not_block_the_event_loop(release: threading.Event) -> None:
    # Both objectives block until a task on the loop has ticked; if the loop were
    # blocked by them, the ticker could never release them.
    entered = threading.Semaphore(0)
    ticks = 0
    outcomes: list[bool] = []

    def objective(trial: hpt.SyncTrial) -> float:
        entered.release()
        outcomes.append(release.wait(THREAD_WAIT))
        return 1.0

    async def ticker() -> None:
        nonlocal ticks
        for _ in range(2):
            await anyio.to_thread.run_sync(entered.acquire, True, THREAD_WAIT)
        for _ in range(5):
            await anyio.sleep(0.001)
            ticks += 1
        release.set()

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(ticker)
            result = await make(objective, max_trials=2, concurrency=2).run()
    assert outcomes == [True, True]
    assert ticks == 5
    assert result.count("complete") == 2


async def test_sync_report_prunes() -> None:
    raised: list[type[BaseException]] = []

    def objective(trial: hpt.SyncTrial) -> float:
        for step in range(10):
            try:
                trial.report(float(step), step=step)
            except BaseException as exc:
                raised.append(type(exc))
                raise
        return 0.0

    result = await run(make(objective, pruner=StopAtStep(2), max_trials=2))
    assert raised == [hpt.TrialPruned, hpt.TrialPruned]
    for record in result.trials:
        assert record.state is hpt.TrialState.PRUNED
        assert record.value == 2.0
        assert dict(record.reports) == {0: 0.0, 1: 1.0, 2: 2.0}


async def test_sync_report_checks_its_arguments() -> None:
    errors: list[type[BaseException]] = []

    def objective(trial: hpt.SyncTrial) -> float:
        trial.report(1.0, step=0)
        for bad in (
            lambda: trial.report(2.0, step=0),  # duplicate step
            lambda: trial.report(2.0, 1),  # type: ignore[misc]  # step is keyword-only
            lambda: trial.report("high", step=2),  # type: ignore[arg-type]
        ):
            try:
                bad()
            except Exception as exc:
                errors.append(type(exc))
        return 1.0

    result = await run(make(objective, max_trials=1))
    assert errors == [ValueError, TypeError, TypeError]
    assert dict(result.trials[0].reports) == {0: 1.0}


async def test_a_raising_sync_objective_fails_with_its_traceback() -> None:
    def objective(trial: hpt.SyncTrial) -> float:
        if trial.number == 0:
            raise KeyError("missing-thing")
        return 1.0

    result = await run(make(objective, max_trials=3))
    failed = result.trials[0]
    assert failed.state is hpt.TrialState.FAILED
    assert failed.error is not None and "missing-thing" in failed.error
    assert failed.traceback is not None and "KeyError" in failed.traceback
    assert result.count("complete") == 2


async def test_a_sync_objective_raising_trial_pruned_ends_pruned() -> None:
    def objective(trial: hpt.SyncTrial) -> float:
        trial.report(0.75, step=0)
        raise hpt.TrialPruned()

    result = await run(make(objective, max_trials=1))
    assert result.trials[0].state is hpt.TrialState.PRUNED
    assert result.trials[0].value == 0.75


async def test_study_timeout_abandons_the_thread_and_its_next_report_raises(release: threading.Event) -> None:
    entered = threading.Event()
    finished = threading.Event()
    after: list[type[BaseException] | None] = []

    def objective(trial: hpt.SyncTrial) -> float:
        trial.report(1.0, step=0)
        entered.set()
        release.wait(THREAD_WAIT)
        try:
            trial.report(2.0, step=1)
            after.append(None)
        except BaseException as exc:
            after.append(type(exc))
            raise
        finally:
            finished.set()
        return 2.0

    storage = hpt.MemoryStorage()
    # Long enough for the thread to start and report once, even on a busy machine.
    result = await run(make(objective, storage=storage, study="threads", timeout=0.3))

    # run() returned while the thread was still blocked: the trial was recorded at once.
    assert entered.is_set()
    assert not finished.is_set()
    assert result.reason == "timeout"
    assert [t.state for t in result.trials] == [hpt.TrialState.CANCELLED]
    assert [t.state for t in await storage.load("threads")] == [hpt.TrialState.CANCELLED]

    release.set()
    assert await wait_in_thread(finished)
    assert after == [hpt.TrialCancelled]
    # The abandoned thread changed nothing.
    assert dict(result.trials[0].reports) == {0: 1.0}
    assert [t.state for t in await storage.load("threads")] == [hpt.TrialState.CANCELLED]


async def test_trial_timeout_fails_a_slow_thread_and_the_study_goes_on(release: threading.Event) -> None:
    finished = threading.Event()
    after: list[type[BaseException] | None] = []

    def objective(trial: hpt.SyncTrial) -> float:
        if trial.number == 0:
            release.wait(THREAD_WAIT)
            try:
                trial.report(1.0, step=0)
                after.append(None)
            except BaseException as exc:
                after.append(type(exc))
                raise
            finally:
                finished.set()
        return 1.0

    result = await run(make(objective, trial_timeout=0.05, max_trials=4))
    assert not finished.is_set()
    assert [t.state for t in result.trials] == [hpt.TrialState.FAILED] + [hpt.TrialState.COMPLETE] * 3
    assert result.trials[0].error is not None and "trial_timeout" in result.trials[0].error
    assert result.reason == "max_trials"

    release.set()
    assert await wait_in_thread(finished)
    assert after == [hpt.TrialCancelled]


async def test_cancelling_a_run_with_blocked_threads_returns_promptly(release: threading.Event) -> None:
    entered = threading.Semaphore(0)
    left = threading.Semaphore(0)
    recorder: list[hpt.TrialRecord] = []

    class Recorder:
        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            recorder.append(event.record)

    def objective(trial: hpt.SyncTrial) -> float:
        entered.release()
        try:
            release.wait(THREAD_WAIT)
            return 1.0
        finally:
            left.release()

    tuner = make(objective, concurrency=2, plugins=[Recorder()])
    reached = False
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            scope = anyio.CancelScope()

            async def runner() -> None:
                nonlocal reached
                with scope:
                    await tuner.run()
                    reached = True

            tg.start_soon(runner)
            for _ in range(2):
                await anyio.to_thread.run_sync(entered.acquire, True, THREAD_WAIT)
            scope.cancel()
    assert not reached
    assert scope.cancelled_caught
    # Both threads are still blocked, yet both trials are recorded.
    assert not release.is_set()
    assert sorted(r.number for r in recorder) == [0, 1]
    assert all(r.state is hpt.TrialState.CANCELLED for r in recorder)
    # Let the abandoned threads finish; what they return is ignored.
    release.set()
    for _ in range(2):
        assert await anyio.to_thread.run_sync(left.acquire, True, THREAD_WAIT)
    assert [r.state for r in recorder] == [hpt.TrialState.CANCELLED] * 2


async def test_max_workers_bounds_the_threads() -> None:
    lock = threading.Lock()
    running = 0
    peak = 0

    def objective(trial: hpt.SyncTrial) -> float:
        nonlocal running, peak
        with lock:
            running += 1
            peak = max(peak, running)
        try:
            threading.Event().wait(0.005)
            return 1.0
        finally:
            with lock:
                running -= 1

    result = await run(make(objective, executor=hpt.ThreadExecutor(max_workers=2), concurrency=6, max_trials=12))
    assert result.count("complete") == 12
    assert 1 <= peak <= 2


def test_the_tuner_runs_no_more_trials_than_the_executor_can_hold() -> None:
    """With max_workers=2 and concurrency 8, no trial waits as RUNNING for a free thread."""
    most_running = 0

    class Watch:
        @hpt.hookimpl
        def hpt_trial_started(self, study: hpt.StudyView) -> None:
            nonlocal most_running
            most_running = max(most_running, len(study.running))

    def objective(trial: hpt.SyncTrial) -> float:
        time.sleep(0.01)
        return 0.0

    tuner = hpt.Tuner(
        objective,
        {"x": hpt.Float(0, 1)},
        executor=hpt.ThreadExecutor(max_workers=2),
        concurrency=8,
        max_trials=10,
        plugins=[Watch()],
        loggers=[],
        strategy="random",
    )
    result = anyio.run(tuner.run)
    assert result.count(hpt.TrialState.COMPLETE) == 10
    assert most_running == 2
