"""``executor="process"``: plain ``def`` objectives in a pool of worker processes.

For CPU-bound objectives that hold the GIL, which threads cannot run in
parallel.  Each worker is a fresh Python interpreter (never a ``fork`` of
the tuner) started with anyio's process API; the tuner talks to it over its
standard input and output (see :mod:`hpt_async.executors._worker`), so no
thread of the tuner ever blocks on a pipe.
"""

from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import uuid
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import anyio
from anyio.abc import Process
from anyio.streams.buffered import BufferedByteReceiveStream

from ..contracts import Executor
from ..exceptions import HptError
from ..hookspecs import hookimpl
from ..trial import Trial
from ._worker import BOOTSTRAP, CONFIG_ENV, HEADER
from .inloop import is_async_callable
from .remote import (
    PICKLER,
    RemoteTraceback,
    answer_report,
    answer_request,
    apply_user_attrs,
    outcome_result,
    params_blob,
    pickled,
)

__all__ = ["ProcessExecutor", "WorkerCrashed", "WorkerStartError"]

_EXIT_GRACE = 5.0  # seconds a closing worker gets to exit before it is killed
_REAP_WAIT = 10.0  # bound on waiting for a killed process to be reaped
_POSIX = os.name == "posix"


class WorkerCrashed(HptError, RuntimeError):
    """A worker process died while running a trial (the trial is FAILED with this error)."""


class WorkerStartError(HptError, RuntimeError):
    """A worker process could not be started."""


def _exit_description(returncode: int | None) -> str:
    if returncode is None:
        return "its pipe closed while it was still running"
    if returncode < 0:
        number = -returncode
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = f"signal {number}"
        text = f"killed by signal {number} ({name}: {signal.strsignal(number) or 'unknown'})"
        if number == signal.SIGKILL:
            text += "; SIGKILL is what the kernel's out-of-memory killer sends"
        return text
    return (
        f"exited with code {returncode} without returning a result (os._exit, or a native library ending the process)"
    )


class _Worker:
    """One worker process and its framed pipes."""

    def __init__(self, process: Process, group: bool) -> None:
        self.process = process
        self.pid = process.pid
        self.group = group
        assert process.stdin is not None and process.stdout is not None
        self._stdin = process.stdin
        self._stdout = BufferedByteReceiveStream(process.stdout)
        self.loaded: str | None = None

    @property
    def alive(self) -> bool:
        return self.process.returncode is None

    async def send(self, message: tuple[Any, ...]) -> None:
        data = pickle.dumps(message, protocol=pickle.HIGHEST_PROTOCOL)
        await self._stdin.send(HEADER.pack(len(data)) + data)

    async def recv(self) -> tuple[Any, ...] | None:
        """The next message, or ``None`` when the worker's output ended (it died)."""
        try:
            (size,) = HEADER.unpack(await self._stdout.receive_exactly(HEADER.size))
            data = await self._stdout.receive_exactly(size)
        except (anyio.IncompleteRead, anyio.EndOfStream, anyio.BrokenResourceError, anyio.ClosedResourceError):
            return None
        return pickle.loads(data)

    async def returncode(self) -> int | None:
        """Wait (bounded, shielded) for the process to end and return its exit status."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_REAP_WAIT):
            await self.process.wait()
        return self.process.returncode

    async def kill(self) -> None:
        """Kill the worker and every process it started, and reap it; safe under cancellation."""
        with anyio.CancelScope(shield=True):
            if self.process.returncode is None:
                try:
                    if self.group:
                        os.killpg(self.pid, signal.SIGKILL)
                    else:
                        self.process.kill()
                except (ProcessLookupError, PermissionError):
                    pass
            with anyio.move_on_after(_REAP_WAIT):
                await self.process.aclose()

    async def stop(self) -> None:
        """Ask the worker to exit; kill it when it does not within the grace period."""
        with anyio.CancelScope(shield=True):
            if self.process.returncode is None:
                try:
                    await self.send(("exit",))
                    await self._stdin.aclose()
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    pass
                with anyio.move_on_after(_EXIT_GRACE):
                    await self.process.wait()
            await self.kill()


class _Slot:
    """A place in the pool: at most one worker, with the devices of that place."""

    __slots__ = ("env", "index", "worker")

    def __init__(self, index: int, env: dict[str, str]) -> None:
        self.index = index
        self.env = env
        self.worker: _Worker | None = None


async def _visible_devices(variable: str) -> list[str]:
    """Devices named by ``variable`` in the environment, else the GPUs ``nvidia-smi`` lists."""
    value = os.environ.get(variable)
    if value is not None:
        return [d.strip() for d in value.split(",") if d.strip() and d.strip() != "-1"]
    if shutil.which("nvidia-smi") is None:
        return []
    try:
        with anyio.fail_after(30):
            done = await anyio.run_process(
                ["nvidia-smi", "--query-gpu=index", "--format=csv,noheader"], check=False, stderr=subprocess.DEVNULL
            )
    except (OSError, TimeoutError):
        return []
    if done.returncode != 0:
        return []
    return [line.strip() for line in done.stdout.decode().splitlines() if line.strip()]


class ProcessExecutor(Executor):
    """Runs a synchronous objective in a pool of worker processes.

    * Pool size: ``max_workers``, else the study's ``concurrency``, and never
      more than the device groups (below).  Workers start when the study
      opens and are reused from trial to trial; a dead one is replaced.
    * Pickling: the objective crosses once per worker, the parameters once
      per trial, with cloudpickle when installed (lambdas and closures cross
      by value) or else pickle (functions must be importable by name).
      :meth:`check` pickles the objective when the Tuner is built and raises
      ``TypeError`` naming the part that cannot be pickled.
    * The objective gets a :class:`~hpt_async.SyncTrial`; ``report`` goes to
      the tuner and waits for the pruner's decision (``TrialPruned`` is
      raised in the worker); user attributes travel back with the reports
      and the result; exceptions come back with their traceback text.
      ``checkpoint`` encodes the state in the worker and sends the bytes to
      the tuner; ``restore`` fetches them back.
    * Faults: a worker that dies (segfault, ``os._exit``, killed) fails its
      trial with :class:`WorkerCrashed`; one that raised ``MemoryError``
      is replaced too.  ``memory_limit`` (bytes) caps each worker's address
      space (``RLIMIT_AS``, POSIX).  Cancellation and ``trial_timeout`` kill
      the worker (with every process it started, on POSIX) and a new one
      takes its place for the next trial.
    * Devices: with ``gpus_per_trial=N`` each place in the pool owns ``N``
      devices of ``devices`` (default: ``$CUDA_VISIBLE_DEVICES``, else the
      GPUs ``nvidia-smi`` lists), exported to its worker as
      ``device_variable`` (``CUDA_VISIBLE_DEVICES``), so concurrent trials
      never share one and concurrency is bounded by ``len(devices) // N``.
      Giving ``devices`` alone means one per trial.
    * ``env``: extra environment variables for the workers (e.g.
      ``{"OMP_NUM_THREADS": "1"}``); ``python``: the interpreter to start
      (default ``sys.executable``); ``start_timeout``: seconds a worker may
      take to start.

    The objective's ``print`` output appears on the tuner's standard error.
    """

    name = "process"

    def __init__(
        self,
        max_workers: int | None = None,
        *,
        gpus_per_trial: int | None = None,
        devices: Sequence[str | int] | None = None,
        device_variable: str = "CUDA_VISIBLE_DEVICES",
        memory_limit: int | None = None,
        env: Mapping[str, str] | None = None,
        python: str | None = None,
        start_timeout: float = 60.0,
    ) -> None:
        for label, value in (("max_workers", max_workers), ("gpus_per_trial", gpus_per_trial)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{label} must be an int >= 1, got {value!r}")
        if memory_limit is not None and (
            isinstance(memory_limit, bool) or not isinstance(memory_limit, int) or memory_limit < 1
        ):
            raise ValueError(f"memory_limit must be a number of bytes >= 1, got {memory_limit!r}")
        if memory_limit is not None and not _POSIX:
            raise ValueError("memory_limit needs a POSIX system (it sets RLIMIT_AS)")
        if isinstance(devices, (str, bytes)):
            raise TypeError(f"devices must be a list such as ['0', '1'], got {devices!r}")
        if devices is not None:
            devices = [str(d) for d in devices]
            if len(set(devices)) != len(devices):
                raise ValueError(f"devices must be distinct, got {devices!r}")
            if gpus_per_trial is None:
                gpus_per_trial = 1
            if len(devices) < gpus_per_trial:
                raise ValueError(f"gpus_per_trial={gpus_per_trial} needs at least that many devices, got {devices!r}")
        if not isinstance(start_timeout, (int, float)) or isinstance(start_timeout, bool) or not start_timeout > 0:
            raise ValueError(f"start_timeout must be a number > 0, got {start_timeout!r}")
        self.max_workers = max_workers
        self.gpus_per_trial = gpus_per_trial
        self.devices: list[str] | None = devices
        self.device_variable = device_variable
        self.memory_limit = memory_limit
        self.env = {str(k): str(v) for k, v in (env or {}).items()}
        self.python = python or sys.executable
        self.start_timeout = float(start_timeout)
        self._objective: tuple[Callable[..., Any], str, bytes] | None = None
        self._slots: list[_Slot] | None = None
        self._free: list[_Slot] = []
        self._semaphore: anyio.Semaphore | None = None

    # -- the contract ------------------------------------------------------------

    def check(self, objective: Callable[..., Any]) -> None:
        if is_async_callable(objective):
            raise TypeError("executor 'process' runs plain def objectives; an async def objective runs on 'async'")
        self._payload(objective)

    async def open(self, concurrency: int) -> None:
        if self._slots is not None:
            raise RuntimeError("this ProcessExecutor is already open; give each running Tuner its own")
        size = self.max_workers or concurrency
        groups: list[list[str]] = []
        if self.gpus_per_trial is not None:
            devices = self.devices if self.devices is not None else await _visible_devices(self.device_variable)
            per = self.gpus_per_trial
            groups = [devices[i : i + per] for i in range(0, len(devices) - per + 1, per)]
            if not groups:
                raise ValueError(
                    f"gpus_per_trial={per} but {len(devices)} device(s) were found "
                    f"(${self.device_variable} or nvidia-smi); pass devices=[...] to name them"
                )
            size = min(size, len(groups))
        self.capacity = size
        slots = [_Slot(i, {self.device_variable: ",".join(groups[i])} if groups else {}) for i in range(size)]
        self._slots = slots
        self._free = list(reversed(slots))
        self._semaphore = anyio.Semaphore(size)
        errors: list[BaseException] = []

        async def start(slot: _Slot) -> None:
            try:
                slot.worker = await self._spawn(slot)
            except Exception as exc:
                errors.append(exc)

        try:
            async with anyio.create_task_group() as tg:
                for slot in slots:
                    tg.start_soon(start, slot)
        except BaseException:
            await self.close()
            raise
        if errors:
            await self.close()
            raise errors[0]

    async def close(self) -> None:
        slots, self._slots = self._slots, None
        self._free = []
        self._semaphore = None
        if not slots:
            return
        with anyio.CancelScope(shield=True):
            async with anyio.create_task_group() as tg:
                for slot in slots:
                    if slot.worker is not None:
                        tg.start_soon(slot.worker.stop)
                        slot.worker = None

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        if self._slots is None:
            await self.open(1)
        token, blob = self._payload(objective)
        params = params_blob(trial)
        semaphore = self._semaphore
        assert semaphore is not None
        async with semaphore:
            slot = self._free.pop()
            try:
                return await self._run_in(slot, token, blob, params, trial)
            finally:
                if self._slots is not None:
                    self._free.append(slot)

    # -- what crosses --------------------------------------------------------------

    def _payload(self, objective: Callable[..., Any]) -> tuple[str, bytes]:
        cached = self._objective
        if cached is not None and cached[0] is objective:
            return cached[1], cached[2]
        advice = (
            " Objectives for executor 'process' must be picklable: create locks, connections and"
            " open files inside the objective, or use executor='thread'."
        )
        blob = pickled(objective, "the objective", advice)
        token = uuid.uuid4().hex
        self._objective = (objective, token, blob)
        return token, blob

    # -- workers ----------------------------------------------------------------------

    async def _spawn(self, slot: _Slot) -> _Worker:
        env = dict(os.environ)
        env.update(self.env)
        env.update(slot.env)
        config = {"sys_path": sys.path, "parent": os.getpid(), "memory_limit": self.memory_limit}
        env[CONFIG_ENV] = json.dumps(config)
        process = await anyio.open_process(
            [self.python, "-c", BOOTSTRAP],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=None,
            env=env,
            start_new_session=_POSIX,
        )
        worker = _Worker(process, group=_POSIX)
        try:
            with anyio.move_on_after(self.start_timeout):
                message = await worker.recv()
                if message is not None and message[0] == "ready":
                    return worker
                how = _exit_description(await worker.returncode())
                raise WorkerStartError(
                    f"worker process {worker.pid} ({self.python}) failed to start: {how}; "
                    "its standard error, above, says why"
                )
            raise WorkerStartError(f"worker process {worker.pid} did not start within {self.start_timeout}s")
        except BaseException:
            await worker.kill()
            raise

    async def _retire(self, slot: _Slot) -> None:
        worker, slot.worker = slot.worker, None
        if worker is not None:
            await worker.kill()

    async def _exchange(
        self, worker: _Worker, token: str, blob: bytes, params: bytes, trial: Trial
    ) -> dict[str, Any] | None:
        """Send the trial, answer its reports, and return its outcome (``None``: the worker died)."""
        try:
            if worker.loaded != token:
                await worker.send(("objective", token, blob))
                worker.loaded = token
            message = ("trial", trial.number, params, trial.started, token, trial.should_restore, trial.objectives)
            await worker.send(message)
        except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
            return None
        while True:
            message = await worker.recv()
            if message is None:
                return None
            if message[0] == "outcome":
                return message[1]
            if message[0] in ("checkpoint", "restore"):
                reply = await answer_request(trial, message[0], message[1])
                try:
                    await worker.send(("reply", *reply))
                except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                    return None
                continue
            if message[0] != "report":
                raise RuntimeError(f"worker process {worker.pid} sent an unexpected message {message[0]!r}")
            _, step, value, attrs = message
            decision = await answer_report(trial, step, value, attrs)
            try:
                await worker.send(("decision", *decision))
            except (anyio.BrokenResourceError, anyio.ClosedResourceError, OSError):
                return None

    async def _run_in(self, slot: _Slot, token: str, blob: bytes, params: bytes, trial: Trial) -> Any:
        worker = slot.worker
        if worker is not None and not worker.alive:
            await self._retire(slot)
            worker = None
        if worker is None:
            worker = slot.worker = await self._spawn(slot)
        try:
            outcome = await self._exchange(worker, token, blob, params, trial)
        except BaseException:
            # Cancelled (study stopped, trial_timeout) or broken: the worker must not go on.
            await self._retire(slot)
            raise
        if outcome is None:
            how = _exit_description(await worker.returncode())
            await self._retire(slot)
            raise WorkerCrashed(
                f"worker process {worker.pid} died while running trial {trial.number}: {how}. "
                "A new worker process takes its place."
            )
        if outcome["kind"] == "raised" and outcome.get("memory"):
            await self._retire(slot)
            apply_user_attrs(trial, outcome.get("attrs"))
            limit = f" (memory_limit={self.memory_limit} bytes)" if self.memory_limit else ""
            error = MemoryError(
                f"trial {trial.number} ran out of memory in worker process {worker.pid}{limit}; "
                "that worker was replaced"
            )
            raise error from RemoteTraceback(outcome["traceback"])
        return outcome_result(trial, outcome)

    def __repr__(self) -> str:
        return f"ProcessExecutor(max_workers={self.max_workers!r}, pickler={PICKLER!r})"


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``process``."""
    register("executor", "process", ProcessExecutor)
