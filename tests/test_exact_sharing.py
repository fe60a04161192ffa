"""Exactness of a shared study: the budget, configurations that run once, retries that happen once.

The storage calls (``reserve_within``, ``release``, ``trial_created_once``,
``trial_created_retry``) are checked for every storage by the conformance
suite (hpt_async.testing.storage); here: their defaults for third-party
storages, and the tuner's use of them (pending retries found from storage,
the retry policy of failed trials) on memory and SQLite.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.contracts.storage import StudySession
from hpt_async.retry import RetryPolicy, RetryPolicyError, retries_so_far
from hpt_async.storage.memory import MemoryStorage
from hpt_async.storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.anyio

SPACE = hpt.Space({"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["a", "b"])})
R, C, L, F = hpt.TrialState.RUNNING, hpt.TrialState.COMPLETE, hpt.TrialState.LOST, hpt.TrialState.FAILED


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: pytest.FixtureRequest, tmp_path: Path) -> Any:
    if request.param == "memory":
        return MemoryStorage()
    return SQLiteStorage(f"sqlite:///{tmp_path / 'exact.db'}?lease=0.4&sync=0.1")


@pytest.fixture
async def sessions(storage: Any) -> AsyncIterator[tuple[StudySession, StudySession]]:
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        yield a, b
    finally:
        await a.close()
        await b.close()


def running(number: int, retry_of: int | None = None, x: float = 0.5) -> hpt.TrialRecord:
    return hpt.TrialRecord(number=number, state=R, params={"x": x, "k": "a"}, started=time.time(), retry_of=retry_of)


def ended(record: hpt.TrialRecord, state: hpt.TrialState, value: float | None = None, error: str | None = None):
    from dataclasses import replace

    return replace(record, state=state, value=value, ended=time.time(), error=error)


async def test_both_storages_declare_exact(sessions: tuple[StudySession, StudySession]) -> None:
    assert all(s.exact for s in sessions)
    assert StudySession.exact is False


async def test_the_default_contract_keeps_third_party_storages_working() -> None:
    class Minimal(StudySession):
        def __init__(self) -> None:
            super().__init__([])
            self.n = 0
            self.created: list[hpt.TrialRecord] = []

        async def reserve(self) -> int:
            self.n += 1
            return self.n - 1

        async def trial_created(self, record: hpt.TrialRecord) -> None:
            self.created.append(record)

    s = Minimal()
    assert await s.reserve_within(1) == 0 and await s.reserve_within(1) == 1  # no check: the tuner's view does it
    await s.release(1)
    assert await s.trial_created_once(running(0), "k")
    await s.put_checkpoint(0, b"c")
    assert await s.trial_created_retry(running(1, retry_of=0))
    assert await s.get_checkpoint(1) == b"c" and await s.get_checkpoint(0) is None
    assert [r.number for r in s.created] == [0, 1]


# -- the tuner ------------------------------------------------------------------------------


async def test_a_lost_trial_whose_claimer_died_is_still_retried(tmp_path: Path) -> None:
    """The session that marked a trial LOST closed before retrying it: the next tuner retries it."""
    url = f"sqlite:///{tmp_path / 'lost.db'}?lease=0.3&sync=0.1"
    storage = SQLiteStorage(url)
    dead = await storage.open("s", direction="minimize", space=SPACE)
    await dead.trial_created(running(await dead.reserve(), x=0.25))
    await anyio.sleep(0.5)  # `dead` stops renewing its lease
    claimer = await storage.open("s", direction="minimize", space=SPACE)
    lost = await claimer.claim_lost()
    assert [r.number for r in lost] == [0]
    await claimer.close()  # dies before creating the retry
    await dead.close()

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    tuner = hpt.Tuner(objective, SPACE, storage=url, study="s", max_trials=3, loggers=[], seed=1, strategy="random")
    with anyio.fail_after(30):
        result = await tuner.run()
    retries = [t for t in result.trials if t.retry_of == 0]
    assert len(retries) == 1 and retries[0].params["x"] == 0.25 and retries[0].state is C
    assert sum(t.state.counted for t in result.trials) == 3


async def test_retry_lost_false_leaves_a_lost_trial_alone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'lost.db'}?lease=0.3&sync=0.1"
    storage = SQLiteStorage(url)
    dead = await storage.open("s", direction="minimize", space=SPACE)
    await dead.trial_created(running(await dead.reserve(), x=0.25))
    await anyio.sleep(0.5)

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    tuner = hpt.Tuner(
        objective, SPACE, storage=url, study="s", max_trials=2, loggers=[], seed=1, retry_lost=False, strategy="random"
    )
    with anyio.fail_after(30):
        result = await tuner.run()
    await dead.close()
    assert not [t for t in result.trials if t.retry_of is not None]


@pytest.mark.parametrize("url", ["memory", "sqlite"])
async def test_retry_failed_runs_a_matching_failure_again_at_most_n_times(tmp_path: Path, url: str) -> None:
    storage = MemoryStorage() if url == "memory" else SQLiteStorage(f"sqlite:///{tmp_path / 'f.db'}")
    preempted: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        x = trial.params["x"]
        if x == 0.125:
            raise MemoryError("CUDA out of memory")  # every attempt of this configuration fails
        if x == 0.25:
            raise ValueError("a bug of the configuration")  # never retried
        if x == 0.375 and not preempted:
            preempted.append(trial.number)
            raise RuntimeError("node preempted")  # its retry succeeds
        return x

    policy = hpt.RetryPolicy(match=(MemoryError, "preempted"), max_retries=2)
    tuner = hpt.Tuner(objective, SPACE, storage=storage, study="s", max_trials=8, loggers=[], seed=3,
                      retry_failed=policy, fail_fast=False, strategy="random")  # fmt: skip
    for x in (0.125, 0.25, 0.375):
        tuner.enqueue({"x": x, "k": "a"})
    result = await tuner.run()
    chain = [t for t in result.trials if t.params["x"] == 0.125]
    assert [t.state for t in chain] == [F, F, F]  # the first run and two retries
    assert [t.retry_of for t in chain] == [None, chain[0].number, chain[1].number]
    bug = [t for t in result.trials if t.params["x"] == 0.25]
    assert len(bug) == 1 and bug[0].state is F
    again = [t for t in result.trials if t.params["x"] == 0.375]
    assert [(t.state, t.retry_of) for t in again] == [(F, None), (C, again[0].number)]
    assert sum(t.state.counted for t in result.trials) == 8


async def test_a_retried_failure_continues_from_its_checkpoint() -> None:
    seen: list[Any] = []

    async def objective(trial: hpt.Trial) -> float:
        if trial.should_restore:
            seen.append(await trial.restore())
            return 1.0
        await trial.checkpoint({"epoch": 3})
        raise MemoryError("out of memory")

    policy = hpt.RetryPolicy(MemoryError)
    tuner = hpt.Tuner(objective, SPACE, max_trials=2, loggers=[], seed=3, retry_failed=policy, strategy="random")
    result = await tuner.run()
    assert result.trials[1].retry_of == 0 and seen == [{"epoch": 3}]


def test_retry_policy_matching_and_errors() -> None:
    policy = RetryPolicy((MemoryError, "preempted"), max_retries=1)
    assert policy.matches("MemoryError: CUDA out of memory")
    assert policy.matches("builtins.MemoryError: x")
    assert policy.matches("RuntimeError: the node was preempted")
    assert not policy.matches("ValueError: bad lr")
    assert not policy.matches(None)
    assert RetryPolicy("KilledWorker").matches("KilledWorker: ('f', <Worker>)")
    for bad in ((), (3,), ("",)):
        with pytest.raises(RetryPolicyError):
            RetryPolicy(bad)  # type: ignore[arg-type]
    with pytest.raises(RetryPolicyError):
        RetryPolicy(MemoryError, max_retries=0)
    with pytest.raises(hpt.HptError):
        hpt.Tuner(lambda t: 0.0, SPACE, retry_failed="MemoryError", strategy="random")  # type: ignore[arg-type]
    a = hpt.TrialRecord(number=0, state=F, params={}, started=0.0, error="MemoryError")
    b = hpt.TrialRecord(number=1, state=L, params={}, started=0.0, retry_of=0)
    c = hpt.TrialRecord(number=2, state=F, params={}, started=0.0, retry_of=1, error="MemoryError")
    trials = {0: a, 1: b, 2: c}
    assert retries_so_far(c, trials) == 1  # the LOST link does not count
    assert not policy.retries(c, trials) and policy.retries(a, trials)


@pytest.mark.parametrize("url", ["memory", "sqlite"])
async def test_a_step_beyond_64_bits_is_refused_at_report(tmp_path: Path, url: str) -> None:
    from hpt_async.exceptions import MAX_STEP, ReportStepError

    storage = MemoryStorage() if url == "memory" else SQLiteStorage(f"sqlite:///{tmp_path / 's.db'}")
    refused: list[str] = []

    async def objective(trial: hpt.Trial) -> float:
        for step in (2**63, -1):
            try:
                await trial.report(1.0, step=step)
            except ReportStepError as exc:
                refused.append(str(exc))
        await trial.report(2.0, step=MAX_STEP)
        return 0.5

    result = await hpt.Tuner(
        objective, SPACE, storage=storage, study="s", max_trials=1, loggers=[], strategy="random"
    ).run()
    assert len(refused) == 2 and "2**63 - 1" in refused[0]
    assert result.trials[0].state is C
    loaded = await storage.load("s")
    assert dict(loaded[0].reports) == {MAX_STEP: 2.0}
    assert issubclass(ReportStepError, ValueError) and issubclass(ReportStepError, hpt.HptError)
