"""Ctrl-C and SIGTERM during a run: the first stops every running study gracefully, a second aborts.

:func:`graceful_interrupts` is entered by :meth:`Tuner.run
<hpt_async.Tuner.run>`.  In the main thread, while at least one run is
open, one process-wide Python handler is installed for SIGINT and SIGTERM.
It does nothing in the middle of whatever the interpreter was running: it
schedules each open run's ``on_signal`` onto that run's own event loop
(the loop's thread-safe "call soon"), where it stops the run as an ordinary
callback.  The first signal also puts the default handlers in place, so
that a second Ctrl-C raises ``KeyboardInterrupt`` at once and a second
SIGTERM ends the process.  When the last open run ends, the handlers that
were installed before the first one (an event loop runner's, a notebook
kernel's) are put back.

Handlers an event loop registered itself (``loop.add_signal_handler``) are
left alone: such a loop is woken through its wakeup file descriptor, which
this module never touches, and its own handler still runs.  In a thread
other than the main one nothing is installed: signals are only delivered
to the main thread.
"""

from __future__ import annotations

import itertools
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import anyio.lowlevel

__all__ = ["graceful_interrupts"]

_SIGNALS = tuple(s for s in (getattr(signal, "SIGINT", None), getattr(signal, "SIGTERM", None)) if s is not None)

# The open runs (key -> their loop's token and what to call there), and the handlers found before the first.
_runs: dict[int, tuple[anyio.lowlevel.EventLoopToken, Callable[[str], None]]] = {}
_saved: dict[int, Any] = {}
_keys = itertools.count()


@contextmanager
def graceful_interrupts(on_signal: Callable[[str], None]) -> Iterator[None]:
    """While open, the first SIGINT or SIGTERM calls ``on_signal(name)`` on this run's loop (see the module)."""
    if threading.current_thread() is not threading.main_thread() or not _SIGNALS:
        yield
        return
    key = next(_keys)
    if not _runs:
        for sig in _SIGNALS:
            _saved[sig] = signal.getsignal(sig)
            signal.signal(sig, _handle)
    _runs[key] = (anyio.lowlevel.current_token(), on_signal)
    try:
        yield
    finally:
        del _runs[key]
        if not _runs:
            for sig, handler in _saved.items():
                # None: a handler not set from Python, which cannot be put back; the default is the nearest.
                signal.signal(sig, signal.SIG_DFL if handler is None else handler)
            _saved.clear()


def _handle(signum: int, frame: object) -> None:
    name = signal.Signals(signum).name
    # A second signal aborts: the defaults take over until the last open run ends and restores the first ones.
    for sig in _SIGNALS:
        signal.signal(sig, signal.default_int_handler if sig == signal.SIGINT else signal.SIG_DFL)
    for token, on_signal in list(_runs.values()):
        try:
            token.backend_class.run_sync_soon(on_signal, (name,), token.native_token)
        except Exception:
            pass  # that run's loop has already closed
