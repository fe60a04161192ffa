"""What runs on a Dask worker for one trial.

:func:`run_trial` is the task the executor submits.  It talks to the tuner
through two distributed queues named after the trial (``<channel>-up``:
worker to tuner, ``<channel>-down``: tuner to worker).  Up: ``{"kind":
"start", ...}`` once, then ``{"kind": "report", ...}`` per report and
``{"kind": "checkpoint" | "restore", "data": ...}`` per checkpoint request.
Down: one pickled decision per report, one pickled reply per request.  It returns the outcome dict of
:func:`hpt_async.executors.remote.run_objective`.
"""

from __future__ import annotations

import os
import uuid
from typing import Any

from hpt_async.executors.remote import RemoteTrial, Reply, loads, raised_outcome, run_objective

__all__ = ["DECISION_POLL", "run_trial"]

DECISION_POLL = 2.0
"""Seconds a report waits for its decision before checking that the trial is still wanted."""

_loaded: dict[str, Any] = {}  # token -> objective, in this worker process


def close_queues(*queues: Any) -> None:
    """Close a trial's report queues; one that is already gone is no error."""
    for queue in queues:
        try:
            queue.close()
        except Exception:
            pass


def _load(token: str, blob: bytes) -> Any:
    objective = _loaded.get(token)
    if objective is None:
        objective = loads(blob)
        _loaded.clear()  # keep one objective: a worker serves one study at a time in practice
        _loaded[token] = objective
    return objective


def _no_longer_wanted(worker: Any) -> bool:
    """True once the scheduler cancelled this task (the tuner abandoned it or went away)."""
    try:
        from distributed.worker import thread_state

        task = worker.state.tasks.get(thread_state.key)
    except Exception:
        return False
    return task is None or task.state in ("cancelled", "released", "forgotten")


def run_trial(
    token: str,
    blob: bytes,
    number: int,
    params_blob: bytes,
    started: float,
    channel: str,
    should_restore: bool = False,
    objectives: int | None = None,
) -> dict[str, Any]:
    """Run one trial of the objective pickled in ``blob`` on this worker."""
    from distributed import Queue, get_worker

    worker = get_worker()
    up = Queue(f"{channel}-up")
    down = Queue(f"{channel}-down")
    attempt = uuid.uuid4().hex

    def exchange(step: int, value: float, attrs: bytes | None) -> Reply:
        up.put({"kind": "report", "attempt": attempt, "step": step, "value": value, "attrs": attrs})
        return wait_reply()

    def request(kind: str, data: Any) -> Reply:
        up.put({"kind": kind, "attempt": attempt, "data": data})
        return wait_reply()

    def wait_reply() -> Reply:
        while True:
            try:
                reply = down.get(timeout=DECISION_POLL)
            except TimeoutError:
                if _no_longer_wanted(worker):
                    return "cancelled", f"trial {number}: the study no longer runs this trial"
                continue
            return loads(reply)

    try:
        up.put({"kind": "start", "attempt": attempt, "worker": worker.address, "pid": os.getpid()})
        try:
            objective = _load(token, blob)
            params = loads(params_blob)
        except BaseException as exc:
            return raised_outcome(exc, "The objective or its parameters could not be unpickled on the Dask worker:")
        outcome = run_objective(
            objective, RemoteTrial(number, params, exchange, started, request, should_restore, objectives)
        )
        outcome["attempt"] = attempt
        return outcome
    finally:
        close_queues(up, down)
