"""Ctrl-C and SIGTERM during a run: the first stops the study gracefully, a second aborts.

:func:`graceful_interrupts` is entered by :meth:`Tuner.run
<hpt_async.Tuner.run>`.  In the main thread it listens for SIGINT and
SIGTERM on the event loop (anyio's signal receiver, so the handler runs as
an ordinary task and never in the middle of the loop's own code).  The
first signal calls ``on_signal`` and stops listening, which puts the
default handlers back: a second Ctrl-C raises ``KeyboardInterrupt`` at
once, a second SIGTERM ends the process.  When the run ends, the handlers
that were installed before it (an event loop's own, a notebook kernel's)
are restored.  In any other thread nothing is installed: signals are only
delivered to the main thread.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import anyio
from anyio.abc import TaskStatus

__all__ = ["graceful_interrupts"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)


@asynccontextmanager
async def graceful_interrupts(on_signal: Callable[[str], None]) -> AsyncIterator[None]:
    """While open, the first SIGINT or SIGTERM calls ``on_signal(name)`` (see the module docstring)."""
    if threading.current_thread() is not threading.main_thread() or not _SIGNALS:
        yield
        return
    saved = {sig: signal.getsignal(sig) for sig in _SIGNALS}
    try:
        async with anyio.create_task_group() as tg:
            await tg.start(_listen, on_signal)
            try:
                yield
            finally:
                tg.cancel_scope.cancel()
    finally:
        for sig, handler in saved.items():
            if handler is not None:
                signal.signal(sig, handler)


async def _listen(on_signal: Callable[[str], None], *, task_status: TaskStatus[None]) -> None:
    with anyio.open_signal_receiver(*_SIGNALS) as received:
        task_status.started()
        async for signum in received:
            on_signal(signal.Signals(signum).name)
            break
