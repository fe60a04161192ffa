"""``executor="thread"``: plain ``def`` objectives in worker threads."""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any, Literal

import anyio
import anyio.from_thread
import anyio.lowlevel

from ..contracts import Executor
from ..hookspecs import hookimpl
from ..trial import SyncTrial, Trial
from .inloop import is_async_callable, objective_failure

__all__ = ["ThreadExecutor"]


def _usable_cores() -> int:
    """The cores this process may run on (its CPU affinity where the system has one)."""
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


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
    :class:`~hpt_async.TrialCancelled`.  Each trial's thread is a daemon
    thread, so an abandoned objective never keeps the process alive once
    the study has closed (after Ctrl-C, say).  Objectives that hold the GIL gain
    nothing from more threads; the process executor is for them.  A
    ``BaseException`` other than ``KeyboardInterrupt`` raised by the
    objective (``sys.exit()``, ``GeneratorExit``) is raised as an
    :class:`~hpt_async.ObjectiveError`, failing only its trial.

    While open, BLAS and OpenMP thread pools (NumPy, SciPy, scikit-learn)
    are limited with threadpoolctl so that concurrent trials do not each
    start a thread per core: ``blas_threads="auto"`` gives each pool
    ``max(1, cores // workers)`` threads when two or more workers run, an
    int sets the number, ``None`` leaves the pools alone.  The limit is
    process-wide (every thread of the process gets it) and applies to the
    libraries loaded when the executor opens; :meth:`close` restores the
    previous limits.
    """

    name = "thread"

    def __init__(self, max_workers: int | None = None, *, blas_threads: int | Literal["auto"] | None = "auto") -> None:
        if max_workers is not None and (
            isinstance(max_workers, bool) or not isinstance(max_workers, int) or max_workers < 1
        ):
            raise ValueError(f"max_workers must be an int >= 1, got {max_workers!r}")
        if (
            blas_threads is not None
            and blas_threads != "auto"
            and (isinstance(blas_threads, bool) or not isinstance(blas_threads, int) or blas_threads < 1)
        ):
            raise ValueError(f"blas_threads must be 'auto', an int >= 1 or None, got {blas_threads!r}")
        self.max_workers = max_workers
        self.blas_threads = blas_threads
        self._limiter: anyio.CapacityLimiter | None = None
        self._blas_limits: Any = None

    def blas_limit(self, workers: int) -> int | None:
        """Threads each BLAS/OpenMP pool gets while ``workers`` trials run at once, or ``None`` to leave them.

        ``"auto"`` shares the usable cores: ``max(1, cores // workers)`` when
        there are two workers or more, no limit for one.
        """
        if self.blas_threads is None:
            return None
        if self.blas_threads != "auto":
            return int(self.blas_threads)
        if workers < 2:
            return None
        return max(1, _usable_cores() // workers)

    def check(self, objective: Callable[..., Any]) -> None:
        if is_async_callable(objective):
            raise TypeError("executor 'thread' runs plain def objectives; an async def objective runs on 'async'")

    async def open(self, concurrency: int) -> None:
        self.capacity = self.max_workers or concurrency
        self._limiter = anyio.CapacityLimiter(self.capacity)
        self._restore_blas()
        limit = self.blas_limit(self.capacity)
        if limit is not None:
            from threadpoolctl import threadpool_limits

            self._blas_limits = threadpool_limits(limits=limit)

    async def close(self) -> None:
        self._restore_blas()

    def _restore_blas(self) -> None:
        limits, self._blas_limits = self._blas_limits, None
        if limits is not None:
            limits.restore_original_limits()

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        token = anyio.lowlevel.current_token()

        def call_in_loop(fn: Callable[..., Any], *args: Any) -> Any:
            return anyio.from_thread.run(fn, *args, token=token)

        sync_trial = SyncTrial(trial, call_in_loop)
        done = anyio.Event()
        outcome: list[tuple[bool, Any]] = []

        def work() -> None:
            try:
                outcome.append((True, _call(objective, sync_trial)))
            except BaseException as exc:
                outcome.append((False, exc))
            try:
                anyio.from_thread.run_sync(done.set, token=token)
            except Exception:
                pass  # the event loop has closed: the study no longer waits for this trial

        assert self._limiter is not None, "the executor is not open"
        async with self._limiter:
            threading.Thread(target=work, name=f"hpt-async trial {trial.number}", daemon=True).start()
            await done.wait()
        ok, result = outcome[0]
        if ok:
            return result
        raise result


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``thread``."""
    register("executor", "thread", ThreadExecutor)
