"""Whatever an objective raises fails that trial alone, in the thread and async executors.

Only ``KeyboardInterrupt`` and a cancellation by the study itself unwind
the study; ``SystemExit``, ``GeneratorExit``, a ``CancelledError`` the
objective raised on its own and any other ``BaseException`` are recorded as
the trial's failure (an :class:`hpt_async.ObjectiveError` naming the
original type).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.executors.inloop import objective_failure
from hpt_async.executors.thread import _call

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}
HANG_GUARD = 30.0
FAILING = 1


class Custom(BaseException):
    """A direct BaseException subclass an objective's own code might define."""


def raiser(kind: str) -> Callable[[], BaseException]:
    """What ``kind`` raises in the objective: the exception, built fresh each call."""
    return {
        "SystemExit": lambda: SystemExit(3),
        "GeneratorExit": lambda: GeneratorExit(),
        "CancelledError": lambda: asyncio.CancelledError("mine"),
        "Custom": lambda: Custom("odd"),
        "group": lambda: BaseExceptionGroup("several", [SystemExit(4), ValueError("v")]),
    }[kind]


EXPECTED = {
    "SystemExit": "ObjectiveError: SystemExit: 3",
    "GeneratorExit": "ObjectiveError: GeneratorExit",
    "CancelledError": "ObjectiveError: asyncio.exceptions.CancelledError: mine",
    "Custom": f"ObjectiveError: {__name__}.Custom: odd",
    "group": "ObjectiveError: BaseExceptionGroup: several (2 sub-exceptions)",
}


async def tune(objective: Any, **options: Any) -> hpt.StudyResult:
    options.setdefault("max_trials", 4)
    options.setdefault("strategy", "random")
    tuner = hpt.Tuner(objective, SPACE, loggers=[], seed=0, **options)
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def check_only_that_trial_failed(result: hpt.StudyResult, kind: str) -> None:
    states = {t.number: t.state for t in result.trials}
    assert states == {
        0: hpt.TrialState.COMPLETE,
        1: hpt.TrialState.FAILED,
        2: hpt.TrialState.COMPLETE,
        3: hpt.TrialState.COMPLETE,
    }
    assert result.reason == "max_trials"
    failed = result.trials[FAILING]
    assert failed.error == EXPECTED[kind]
    # The original's traceback comes first, with the objective's frame in it.
    assert failed.traceback is not None
    assert "The above exception was the direct cause" in failed.traceback
    assert "in objective" in failed.traceback.split("The above exception")[0]


@pytest.mark.parametrize("kind", list(EXPECTED))
async def test_a_thread_objective_raising_a_base_exception_fails_only_its_trial(kind: str) -> None:
    make = raiser(kind)

    def objective(trial: hpt.SyncTrial) -> float:
        if trial.number == FAILING:
            raise make()
        return trial.params["x"]

    result = await tune(objective, executor="thread")
    check_only_that_trial_failed(result, kind)


async def test_sys_exit_in_a_thread_objective_fails_only_its_trial() -> None:
    def objective(trial: hpt.SyncTrial) -> float:
        if trial.number == FAILING:
            sys.exit(3)
        return trial.params["x"]

    result = await tune(objective, executor="thread", concurrency=2)
    check_only_that_trial_failed(result, "SystemExit")


@pytest.mark.parametrize("kind", list(EXPECTED))
async def test_an_async_objective_raising_a_base_exception_fails_only_its_trial(kind: str) -> None:
    make = raiser(kind)

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0)
        if trial.number == FAILING:
            raise make()
        return trial.params["x"]

    result = await tune(objective)
    check_only_that_trial_failed(result, kind)


async def test_an_async_objective_awaiting_a_task_it_cancelled_fails_only_its_trial() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == FAILING:
            inner = asyncio.ensure_future(asyncio.sleep(60))
            await asyncio.sleep(0)
            inner.cancel("dropped")
            await inner
        return trial.params["x"]

    result = await tune(objective, concurrency=2)
    assert result.trials[FAILING].state == hpt.TrialState.FAILED
    assert result.trials[FAILING].error == "ObjectiveError: asyncio.exceptions.CancelledError: dropped"
    assert result.count(hpt.TrialState.COMPLETE) == 3


async def test_the_study_cancelling_an_async_objective_still_cancels_it() -> None:
    started = anyio.Event()
    storage = hpt.MemoryStorage()

    async def objective(trial: hpt.Trial) -> float:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    tuner = hpt.Tuner(objective, SPACE, loggers=[], seed=0, storage=storage, study="c", max_trials=1, strategy="random")
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(tuner.run)
            await started.wait()
            tg.cancel_scope.cancel()
    assert [t.state for t in await storage.load("c")] == [hpt.TrialState.CANCELLED]


async def test_a_trial_timeout_of_an_async_objective_is_still_a_timeout() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == FAILING:
            await anyio.sleep_forever()
        return trial.params["x"]

    result = await tune(objective, trial_timeout=0.05)
    assert result.trials[FAILING].state == hpt.TrialState.FAILED
    assert result.trials[FAILING].error is not None
    assert result.trials[FAILING].error.startswith("TrialTimeout")


def test_keyboard_interrupt_is_never_wrapped() -> None:
    assert objective_failure(KeyboardInterrupt(), in_task=False) is None
    assert objective_failure(BaseExceptionGroup("g", [KeyboardInterrupt(), SystemExit()]), in_task=False) is None
    assert objective_failure(ValueError("plain"), in_task=False) is None

    def objective(trial: Any) -> float:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        _call(objective, None)  # type: ignore[arg-type]


def test_an_objective_error_names_the_original_type() -> None:
    assert str(hpt.ObjectiveError.wrapping(SystemExit(3))) == "SystemExit: 3"
    assert str(hpt.ObjectiveError.wrapping(SystemExit())) == "SystemExit"
    assert isinstance(hpt.ObjectiveError.wrapping(GeneratorExit()), Exception)


async def test_an_objective_returning_an_int_too_large_for_a_float_fails_only_its_trial() -> None:
    def objective(trial: hpt.SyncTrial) -> int:
        return 10**400 if trial.number == FAILING else 1

    result = await tune(objective)
    assert result.trials[FAILING].state == hpt.TrialState.FAILED
    assert result.count(hpt.TrialState.COMPLETE) == 3


async def test_cancelling_the_asyncio_task_running_the_study_still_cancels_the_objective() -> None:
    started = anyio.Event()
    storage = hpt.MemoryStorage()

    async def objective(trial: hpt.Trial) -> float:
        started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    tuner = hpt.Tuner(objective, SPACE, loggers=[], seed=0, storage=storage, study="t", max_trials=1, strategy="random")
    with anyio.fail_after(HANG_GUARD):
        task = asyncio.ensure_future(tuner.run())
        await started.wait()
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task
    assert [t.state for t in await storage.load("t")] == [hpt.TrialState.CANCELLED]
