"""``executor="dask"``: objectives run as tasks on a Dask ``distributed`` cluster."""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import anyio
from distributed import Client, Queue
from hpt_async.exceptions import HptError
from hpt_async.executors import Executor
from hpt_async.executors.inloop import is_async_callable
from hpt_async.executors.remote import answer_report, answer_request, dumps, outcome_result, params_blob, pickled
from hpt_async.trial import Trial

from .task import close_queues, run_trial

__all__ = ["SCHEDULER_ENV", "DaskExecutor", "WorkerLost"]

SCHEDULER_ENV = "HPT_ASYNC_DASK_SCHEDULER"
"""The scheduler address ``executor="dask"`` connects to when none is given."""

_ABANDON_WAIT = 5.0  # bound on telling the cluster to drop a trial that was stopped


class WorkerLost(HptError, RuntimeError):
    """The Dask worker running a trial was lost mid-trial (the trial is FAILED with this error)."""


class DaskExecutor(Executor):
    """Runs synchronous objectives as tasks on a Dask cluster, through its asyncio client.

    Give the scheduler's ``address`` (``"tcp://host:8786"``; default
    ``$HPT_ASYNC_DASK_SCHEDULER``), or a ``client`` made with
    ``Client(..., asynchronous=True)`` on the tuner's event loop (it is left
    open).  Each trial is one task; ``resources`` (e.g. ``{"GPU": 1}``) are
    the worker resources it claims.  Every worker needs hpt-async,
    hpt-async-dask and whatever the objective imports.

    * The objective gets a :class:`~hpt_async.SyncTrial`; its ``report``
      goes through two distributed queues per trial to the tuner, which
      stores the value, lets the pruner decide, and answers; STOP raises
      :class:`~hpt_async.TrialPruned` on the worker.
    * Exceptions come back with their traceback text; user attributes with
      the reports and the result.
    * A worker lost mid-trial: Dask starts the task again elsewhere; a
      trial's reports cannot start over, so the trial is FAILED with
      :class:`WorkerLost` and the new attempt is stopped.  Dask's own
      ``KilledWorker`` fails the trial the same way.
    * Cancellation and ``trial_timeout`` cancel the task; the objective, which
      a thread of the worker runs, stops at its next ``report`` (with
      :class:`~hpt_async.TrialCancelled`) and its result is discarded.

    Needs anyio's asyncio backend (distributed runs on asyncio).
    """

    name = "dask"

    def __init__(
        self,
        address: str | Any | None = None,
        *,
        client: Client | None = None,
        resources: Mapping[str, float] | None = None,
    ) -> None:
        if client is not None and address is not None:
            raise ValueError("give DaskExecutor a scheduler address or a client, not both")
        if client is None and address is None:
            address = os.environ.get(SCHEDULER_ENV) or None
            if address is None:
                raise ValueError(
                    f"executor 'dask' needs a scheduler: set {SCHEDULER_ENV}=tcp://host:8786, "
                    "or pass DaskExecutor(address=...) or DaskExecutor(client=Client(..., asynchronous=True))"
                )
        self.address = address
        self.client = client
        self.resources = dict(resources) if resources else None
        self._client: Client | None = None
        self._owns_client = False
        self._token = ""
        self._objective: tuple[Callable[..., Any], str, bytes] | None = None

    def check(self, objective: Callable[..., Any]) -> None:
        if is_async_callable(objective):
            raise TypeError("executor 'dask' runs plain def objectives; an async def objective runs on 'async'")
        self._payload(objective)

    async def open(self, concurrency: int) -> None:
        try:
            asyncio.get_running_loop()
        except RuntimeError:
            raise RuntimeError("executor 'dask' needs anyio's asyncio backend") from None
        if self._client is not None:
            raise RuntimeError("this DaskExecutor is already open; give each running Tuner its own")
        if self.client is not None:
            if not getattr(self.client, "asynchronous", False):
                raise TypeError("DaskExecutor needs a Client(..., asynchronous=True) made on the tuner's event loop")
            self._client, self._owns_client = self.client, False
        else:
            try:
                self._client = await Client(self.address, asynchronous=True)
            except Exception as exc:
                raise ConnectionError(
                    f"executor 'dask' could not connect to the scheduler at {self.address!r}: "
                    f"{type(exc).__name__}: {exc}"
                ) from exc
            self._owns_client = True
        self._token = uuid.uuid4().hex[:12]

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and self._owns_client:
            with anyio.CancelScope(shield=True):
                await client.close()

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        if self._client is None:
            await self.open(1)
        client = self._client
        assert client is not None
        token, blob = self._payload(objective)
        params = params_blob(trial)
        channel = f"hpt-{self._token}-{trial.number}"
        up = await Queue(f"{channel}-up", client=client)
        down = await Queue(f"{channel}-down", client=client)
        try:
            future = client.submit(
                run_trial,
                token,
                blob,
                trial.number,
                params,
                trial.started,
                channel,
                trial.should_restore,
                trial.objectives,
                key=f"hpt-trial-{trial.number}-{self._token}",
                pure=False,
                resources=self.resources,
            )
            try:
                outcome = await self._follow(future, up, down, trial)
            except BaseException:
                await self._abandon(client, future, down, trial)
                raise
        finally:
            close_queues(up, down)
        return outcome_result(trial, outcome)

    # -- internals -----------------------------------------------------------------------

    def _payload(self, objective: Callable[..., Any]) -> tuple[str, bytes]:
        cached = self._objective
        if cached is not None and cached[0] is objective:
            return cached[1], cached[2]
        advice = " Objectives for executor 'dask' must be picklable: create clients and locks inside the objective."
        blob = pickled(objective, "the objective", advice)
        token = uuid.uuid4().hex
        self._objective = (objective, token, blob)
        return token, blob

    @staticmethod
    async def _follow(future: Any, up: Queue, down: Queue, trial: Trial) -> dict[str, Any]:
        """Answer the trial's reports until its task ends; return the outcome."""
        done: dict[str, Any] = {}
        async with anyio.create_task_group() as tg:

            async def wait_for_result() -> None:
                try:
                    done["outcome"] = await future
                except Exception as exc:
                    done["error"] = exc
                tg.cancel_scope.cancel()

            tg.start_soon(wait_for_result)
            first: dict[str, Any] | None = None
            while True:
                message = await up.get()
                if message["kind"] == "start":
                    if first is None:
                        first = message
                        continue
                    done["lost"] = (first, message)  # Dask started the task again: the first worker is gone
                    tg.cancel_scope.cancel()
                    break
                if first is not None and message["attempt"] != first["attempt"]:
                    continue
                if message["kind"] in ("checkpoint", "restore"):
                    await down.put(dumps(await answer_request(trial, message["kind"], message["data"])))
                    continue
                decision = await answer_report(trial, message["step"], message["value"], message["attrs"])
                await down.put(dumps(decision))
        if "lost" in done:
            first, again = done["lost"]
            raise WorkerLost(
                f"the Dask worker {first['worker']} (pid {first['pid']}) running trial {trial.number} was lost; "
                f"Dask started the trial again on {again['worker']}, where it was stopped: "
                "a trial that has begun cannot start over"
            )
        if "error" in done:
            raise done["error"]
        return done["outcome"]

    @staticmethod
    async def _abandon(client: Client, future: Any, down: Queue, trial: Trial) -> None:
        """Tell a running attempt to stop at its next report, and cancel the task."""
        with anyio.CancelScope(shield=True), anyio.move_on_after(_ABANDON_WAIT):
            try:
                await down.put(dumps(("cancelled", f"trial {trial.number} was stopped by the study")))
            except Exception:
                pass
            try:
                await client.cancel([future], force=True)
            except Exception:
                pass

    def __repr__(self) -> str:
        where = self.address if self.client is None else self.client
        return f"DaskExecutor({where!r})"
