"""A forked process for a model's heavy work, so that it never holds the event loop's GIL.

At high concurrency the model-based strategies choose their points in a
background thread while the event loop keeps serving workers.  A thread
shares the interpreter lock with the loop, though: the Python-level parts
of a fit or an acquisition (the optimiser's glue, the greedy loop of a
batch) make the loop wait for the lock, and every trial's bookkeeping
waits with it.  :class:`ModelProcess` moves that work to a child process
forked from the strategy: the child starts with a copy of the strategy
(its fitted model included, and every module it needs already imported,
so it is ready within milliseconds) and runs the methods the parent names,
one at a time, on arguments sent through a pipe.  The parent's thread that
waits for the answer releases the lock while it waits.

Only where ``fork`` is safe and cheap (Linux); elsewhere, or when the fork
fails, :func:`start` returns ``None`` and the caller keeps its threads.
The child exits when the pipe closes: when the strategy that owns it is
garbage collected, when :meth:`ModelProcess.close` is called, or with the
parent.
"""

from __future__ import annotations

import os
import sys
import threading
import weakref
from typing import Any

from ..exceptions import HptError

__all__ = ["PROCESS_MIN", "ModelProcess", "RemoteError", "start", "supported"]


class RemoteError(HptError, RuntimeError):
    """The model process could not answer (it died, or its answer could not be sent back)."""


#: Seconds :meth:`ModelProcess.call` waits for an answer before it stops the child and raises RemoteError.
CALL_TIMEOUT = 300.0


class ModelProcess:
    """A child process holding a forked copy of ``target``; :meth:`call` runs one of its methods there."""

    def __init__(self, target: Any) -> None:
        import multiprocessing

        ctx = multiprocessing.get_context("fork")
        parent, child = ctx.Pipe()
        self._process = ctx.Process(target=_serve, args=(child, parent, target), name="hpt-async-model", daemon=True)
        self._process.start()
        child.close()
        self._conn = parent
        _CONNECTIONS.add(parent)
        self._lock = threading.Lock()
        self.alive = True
        self._finalizer = weakref.finalize(self, _stop, parent, self._process)

    def call(self, method: str, *args: Any, **kwargs: Any) -> Any:
        """``target.method(*args, **kwargs)`` in the child (blocking; call it from a worker thread).

        Raises what the method raised, or :class:`RemoteError` when the child
        is gone (the caller then does the work itself).
        """
        with self._lock:
            if not self.alive:
                raise RemoteError("the model process has stopped")
            try:
                self._conn.send((method, args, kwargs))
                if not self._conn.poll(CALL_TIMEOUT):
                    # A child that never answers (stuck on a lock a thread of the parent held when it was
                    # forked, say) is stopped: the work goes back to this process's threads.
                    self.alive = False
                    self._process.kill()
                    raise RemoteError(f"the model process gave no answer to {method} within {CALL_TIMEOUT:g} s")
                ok, value = self._conn.recv()
            except (EOFError, OSError) as exc:
                self.alive = False
                raise RemoteError(f"the model process stopped: {exc!r}") from exc
        if not ok:
            raise value
        return value

    def close(self) -> None:
        """Stop the child (it ends the call it is in first)."""
        self.alive = False
        self._finalizer()


def _stop(conn: Any, process: Any) -> None:
    try:
        conn.close()
    except OSError:  # pragma: no cover - already closed
        pass
    process.join(timeout=1.0)
    if process.is_alive():  # pragma: no cover - stuck in a long call
        process.terminate()


_CONNECTIONS: weakref.WeakSet[Any] = weakref.WeakSet()  # the parent's ends of the model processes' pipes


def _serve(conn: Any, theirs: Any, target: Any) -> None:
    """The child's loop: one call at a time until the parent closes its end (``theirs``) of the pipe."""
    import signal

    theirs.close()
    # The parent's handlers and its event loop's wake-up descriptor are not the child's: it ends with its pipe.
    signal.set_wakeup_fd(-1)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    for other in list(_CONNECTIONS):  # other model processes' pipes stay open only in their owner
        try:
            other.close()
        except OSError:  # pragma: no cover
            pass
    try:
        from threadpoolctl import threadpool_limits

        threadpool_limits(1)  # the child is one more process on the cores: one BLAS thread each
    except Exception:  # pragma: no cover - threadpoolctl missing or unusable
        pass
    while True:
        try:
            message = conn.recv()
        except (EOFError, OSError):
            return
        method, args, kwargs = message
        try:
            answer: tuple[bool, Any] = (True, getattr(target, method)(*args, **kwargs))
        except BaseException as exc:
            answer = (False, exc)
        try:
            conn.send(answer)
        except (EOFError, OSError):
            return
        except Exception as exc:  # the answer does not pickle
            conn.send((False, RemoteError(f"{method}: {exc!r}")))


def supported() -> bool:
    """Whether :func:`start` can fork here (Linux, with ``os.fork``)."""
    return sys.platform.startswith("linux") and hasattr(os, "fork")


def start(target: Any) -> ModelProcess | None:
    """A :class:`ModelProcess` for ``target``, or ``None`` where forking is not supported or fails."""
    if not supported():
        return None
    try:
        return ModelProcess(target)
    except (OSError, ValueError):  # pragma: no cover - out of processes or memory
        return None


#: The fewest trials running at once for which ``bayes`` and ``tpe`` fork a model process by default.
PROCESS_MIN = 32
