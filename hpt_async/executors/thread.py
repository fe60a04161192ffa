"""``executor="thread"``: plain ``def`` objectives in worker threads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import anyio
import anyio.from_thread
import anyio.to_thread

from ..hookspecs import hookimpl
from ..trial import SyncTrial, Trial
from .base import Executor
from .inloop import is_async_callable, objective_failure

__all__ = ["ThreadExecutor"]


def _call(objective: Callable[..., Any], trial: SyncTrial) -> Any:
    """Run ``objective(trial)`` in the worker thread, raising a BaseException it raises as an ObjectiveError."""
    try:
        return objective(trial)
    except BaseException as exc:
        failure = objective_failure(exc, in_task=False)
        if failure is None:
            raise
        raise failure from exc


class ThreadExecutor(Executor):
    """Runs a synchronous objective in a worker thread, off the event loop.

    The objective gets a :class:`~hpt_async.SyncTrial`; its ``report`` hops
    back to the loop to be stored and decided.  At most ``concurrency``
    trials run objectives at once (``max_workers`` lowers that).  Threads
    cannot be interrupted: on cancellation or timeout the trial is recorded at
    once and the thread is abandoned, giving its slot to the next trial while
    it winds down; its next ``report`` raises
    :class:`~hpt_async.TrialCancelled`.  Objectives that hold the GIL gain
    nothing from more threads; the process executor is for them.  A
    ``BaseException`` other than ``KeyboardInterrupt`` raised by the
    objective (``sys.exit()``, ``GeneratorExit``) is raised as an
    :class:`~hpt_async.ObjectiveError`, failing only its trial.
    """

    name = "thread"

    def __init__(self, max_workers: int | None = None) -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        self.max_workers = max_workers
        self._limiter: anyio.CapacityLimiter | None = None

    def check(self, objective: Callable[..., Any]) -> None:
        if is_async_callable(objective):
            raise TypeError("executor 'thread' runs plain def objectives; an async def objective runs on 'async'")

    async def open(self, concurrency: int) -> None:
        self.capacity = self.max_workers or concurrency
        self._limiter = anyio.CapacityLimiter(self.capacity)

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        sync_trial = SyncTrial(trial, anyio.from_thread.run)
        return await anyio.to_thread.run_sync(
            _call, objective, sync_trial, abandon_on_cancel=True, limiter=self._limiter
        )


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``thread``."""
    register("executor", "thread", ThreadExecutor)
