"""``executor="async"``: ``async def`` objectives awaited on the event loop."""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import anyio

from ..contracts import Executor
from ..exceptions import ObjectiveError
from ..hookspecs import hookimpl
from ..trial import Trial

__all__ = ["AsyncExecutor", "is_async_callable", "objective_failure"]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    while hasattr(fn, "func") and not inspect.isfunction(fn):  # functools.partial
        fn = fn.func  # type: ignore[attr-defined]
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        type(fn).__call__ if not inspect.isroutine(fn) else None
    )


def _holds(exc: BaseException, kind: type[BaseException]) -> bool:
    """True when ``exc`` is a ``kind``, or a group with a ``kind`` among its leaves."""
    if isinstance(exc, kind):
        return True
    return isinstance(exc, BaseExceptionGroup) and exc.subgroup(kind) is not None


def _cancelling() -> bool:
    """True when a cancel scope around the running task was cancelled (study stopped, trial timed out).

    A ``CancelledError`` the objective raised or awaited on its own leaves
    the effective deadline where it was; the study's cancellation sets it
    to minus infinity.
    """
    return anyio.current_effective_deadline() == -math.inf


def objective_failure(exc: BaseException, *, in_task: bool = True) -> ObjectiveError | None:
    """What an objective's ``exc`` must be raised as for only its trial to fail, or ``None`` to keep it.

    ``Exception``\\ s, ``KeyboardInterrupt`` and a cancellation of the running
    task by the study are kept; any other ``BaseException`` (``SystemExit``,
    ``GeneratorExit``, a ``CancelledError`` the objective raised itself)
    becomes an :class:`~hpt_async.ObjectiveError`.  ``in_task=False`` is
    for an objective that ran in a worker thread, which nothing cancels.
    """
    if isinstance(exc, Exception) or _holds(exc, KeyboardInterrupt):
        return None
    if in_task and _holds(exc, anyio.get_cancelled_exc_class()) and _cancelling():
        return None
    return ObjectiveError.wrapping(exc)


class AsyncExecutor(Executor):
    """Awaits the objective in the trial's own task: no thread, no extra task.

    The default for ``async def`` objectives.  Cancellation and
    ``trial_timeout`` interrupt the objective at its next ``await``.  A
    ``BaseException`` the objective raises that is neither
    ``KeyboardInterrupt`` nor that cancellation is raised as an
    :class:`~hpt_async.ObjectiveError`, failing only its trial.
    """

    name = "async"

    def check(self, objective: Callable[..., Any]) -> None:
        if not is_async_callable(objective):
            raise TypeError(
                "executor 'async' needs an async def objective; "
                "a plain def objective runs on executor 'thread' (the default for it)"
            )

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        try:
            return await objective(trial)
        except BaseException as exc:
            failure = objective_failure(exc)
            if failure is None:
                raise
            raise failure from exc


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``async``."""
    register("executor", "async", AsyncExecutor)
