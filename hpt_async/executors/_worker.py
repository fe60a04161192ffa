"""The program a worker process of ``executor="process"`` runs.

Started by :class:`~hpt_async.executors.process.ProcessExecutor` as a fresh
interpreter.  It talks to the tuner over its standard input and output with
length-prefixed pickled messages; the objective's own prints go to standard
error.  Tuner to worker: ``("objective", token, blob)``, ``("trial", number,
params_blob, started, token, should_restore, objectives)``, ``("decision", code,
payload)``, ``("reply", code, payload)``, ``("exit",)``.  Worker to tuner:
``("ready", pid)``, ``("report", step, value or values, attrs_blob)`` (answered by a
decision), ``("checkpoint", data)`` and ``("restore", None)`` (answered by a
reply), ``("outcome", outcome)``.
"""

from __future__ import annotations

import faulthandler
import json
import os
import pickle
import signal
import struct
import sys
import threading
import time
from typing import Any, BinaryIO

CONFIG_ENV = "HPT_ASYNC_PROCESS_WORKER"
"""The environment variable carrying the worker's settings (JSON); removed once read."""

BOOTSTRAP = (
    "import json, os, sys; "
    f"sys.path[:] = json.loads(os.environ[{CONFIG_ENV!r}])['sys_path']; "
    "from hpt_async.executors._worker import main; main()"
)
"""The ``python -c`` program that starts a worker with the tuner's ``sys.path``."""

HEADER = struct.Struct("!Q")
"""Every message is an 8-byte big-endian length followed by that many bytes of pickle."""

_PARENT_POLL = 0.5


class _Channel:
    """Blocking, length-prefixed pickled messages over two file descriptors."""

    def __init__(self, fd_in: int, fd_out: int) -> None:
        self._in: BinaryIO = os.fdopen(fd_in, "rb")
        self._out: BinaryIO = os.fdopen(fd_out, "wb")

    def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        self._out.write(HEADER.pack(len(data)))
        self._out.write(data)
        self._out.flush()

    def recv(self) -> tuple[Any, ...] | None:
        """The next message, or ``None`` when the tuner closed the channel."""
        header = self._in.read(HEADER.size)
        if len(header) < HEADER.size:
            return None
        (size,) = HEADER.unpack(header)
        data = self._in.read(size)
        if len(data) < size:
            return None
        return pickle.loads(data)


def _watch_parent(parent: int) -> None:
    # The tuner died without closing us: end this worker and whatever it started.
    while True:
        time.sleep(_PARENT_POLL)
        if os.getppid() != parent:
            if hasattr(os, "killpg") and os.getpgrp() == os.getpid():
                os.killpg(os.getpgrp(), signal.SIGKILL)
            os._exit(1)


def _limit_memory(limit: int) -> None:
    import resource

    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def main() -> None:
    """Serve trials until the tuner says exit or closes standard input."""
    config = json.loads(os.environ.pop(CONFIG_ENV))
    # Keep the protocol on private copies of fds 0 and 1; the objective's
    # stdout goes to stderr and its stdin reads nothing.
    channel = _Channel(os.dup(0), os.dup(1))
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    os.dup2(2, 1)
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    faulthandler.enable()
    threading.Thread(target=_watch_parent, args=(config["parent"],), daemon=True, name="hpt-parent-watch").start()
    if config.get("memory_limit"):
        _limit_memory(int(config["memory_limit"]))

    from .remote import RemoteTrial, loads, raised_outcome, run_objective

    lock = threading.Lock()

    def exchange(step: int, value: float, attrs: bytes | None) -> tuple[str, Any]:
        with lock:
            channel.send(("report", step, value, attrs))
            reply = channel.recv()
        if reply is None:  # the tuner is gone
            os._exit(0)
        return reply[1], reply[2]

    def request(kind: str, payload: Any) -> tuple[str, Any]:
        with lock:
            channel.send((kind, payload))
            reply = channel.recv()
        if reply is None:  # the tuner is gone
            os._exit(0)
        return reply[1], reply[2]

    objectives: dict[str, Any] = {}
    channel.send(("ready", os.getpid()))
    while True:
        message = channel.recv()
        if message is None or message[0] == "exit":
            break
        if message[0] == "objective":
            _, token, blob = message
            try:
                objectives = {token: loads(blob)}
            except BaseException as exc:
                note = "The objective could not be unpickled in the worker process:"
                objectives = {token: raised_outcome(exc, note)}
            continue
        _, number, params_blob, started, token, restore, n_objectives = message
        objective = objectives.get(token)
        if isinstance(objective, dict):
            outcome = objective
        elif objective is None:
            outcome = raised_outcome(RuntimeError(f"the worker has no objective {token!r}"))
        else:
            try:
                params = loads(params_blob)
            except BaseException as exc:
                outcome = raised_outcome(exc, "The parameters could not be unpickled in the worker process:")
            else:
                trial = RemoteTrial(number, params, exchange, started, request, restore, objectives=n_objectives)
                outcome = run_objective(objective, trial)
        channel.send(("outcome", outcome))
