"""``executor="async"``: ``async def`` objectives awaited on the event loop."""

from __future__ import annotations

import inspect
from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from ..trial import Trial
from .base import Executor

__all__ = ["AsyncExecutor"]


def is_async_callable(fn: Callable[..., Any]) -> bool:
    """True for ``async def`` functions and objects whose ``__call__`` is one."""
    while hasattr(fn, "func") and not inspect.isfunction(fn):  # functools.partial
        fn = fn.func  # type: ignore[attr-defined]
    return inspect.iscoroutinefunction(fn) or inspect.iscoroutinefunction(
        type(fn).__call__ if not inspect.isroutine(fn) else None
    )


class AsyncExecutor(Executor):
    """Awaits the objective in the trial's own task: no thread, no extra task.

    The default for ``async def`` objectives.  Cancellation and
    ``trial_timeout`` interrupt the objective at its next ``await``.
    """

    name = "async"

    def check(self, objective: Callable[..., Any]) -> None:
        if not is_async_callable(objective):
            raise TypeError(
                "executor 'async' needs an async def objective; "
                "a plain def objective runs on executor 'thread' (the default for it)"
            )

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        return await objective(trial)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``async``."""
    register("executor", "async", AsyncExecutor)
