"""Checkpoints: encoding, the trial API on every executor, storage, cleanup and LOST retries."""

from __future__ import annotations

import os
import sqlite3
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest

import hpt_async as hpt
from hpt_async.checkpoints import (
    CheckpointError,
    decode_state,
    encode_state,
    pack_arrays,
    state_kind,
    unpack_arrays,
)
from hpt_async.storage.sqlite import SCHEMA_VERSION, SQLiteStorage

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}


def sqlite_url(tmp_path: Path, name: str = "ck.db", query: str = "") -> str:
    return f"sqlite:///{tmp_path / name}" + (f"?{query}" if query else "")


# -- encoding -------------------------------------------------------------------------


def test_bytes_round_trip_as_bytes() -> None:
    for raw in (b"", b"\x00weights\xff", bytearray(b"abc"), memoryview(b"xyz")):
        data = encode_state(raw)
        assert state_kind(data) == "bytes"
        back = decode_state(data)
        assert type(back) is bytes and back == bytes(raw)


def test_arrays_round_trip_without_pickle() -> None:
    state = {"w": np.arange(6, dtype=np.float32).reshape(2, 3), "step": 7, "lr": np.float64(0.5)}
    data = encode_state(state)
    assert state_kind(data) == "arrays"
    back = decode_state(data)
    assert set(back) == {"w", "step", "lr"}
    assert back["w"].dtype == np.float32 and np.array_equal(back["w"], state["w"])
    assert int(back["step"]) == 7 and float(back["lr"]) == 0.5
    # The public helpers round-trip on their own, and the payload is a plain .npz without pickles.
    assert set(unpack_arrays(pack_arrays({"a": np.ones(3)}))) == {"a"}
    with pytest.raises(CheckpointError, match="object"):
        pack_arrays({"a": np.array([object()], dtype=object)})
    with pytest.raises(CheckpointError, match="strings"):
        pack_arrays({1: np.ones(2)})  # type: ignore[dict-item]


def test_other_objects_need_pickle_on_both_sides() -> None:
    state = {"model": [1, 2, {"k": "v"}], "name": "net"}
    with pytest.raises(CheckpointError, match="pickle=True"):
        encode_state(state)
    with pytest.raises(CheckpointError, match="pickle=True"):
        encode_state(object())
    data = encode_state(state, pickle=True)
    assert state_kind(data) == "pickle"
    with pytest.raises(CheckpointError, match="pickle=True"):
        decode_state(data)
    assert decode_state(data, pickle=True) == state
    with pytest.raises(CheckpointError, match="header"):
        decode_state(b"not a checkpoint")


# -- the trial API, on each executor and storage ---------------------------------------------


async def _async_objective(trial: hpt.Trial) -> float:
    assert await trial.restore() is None
    await trial.checkpoint(b"first")
    await trial.checkpoint({"w": np.full(4, trial.number, dtype=np.int64)})
    state = await trial.restore()
    assert int(state["w"][0]) == trial.number
    await trial.checkpoint({"obj": ("t", trial.number)}, pickle=True)
    with pytest.raises(CheckpointError):
        await trial.restore()
    back = await trial.restore(pickle=True)
    assert back == {"obj": ("t", trial.number)}
    return float(trial.number)


def sync_objective(trial: Any) -> float:
    """A plain def objective for the thread and process executors (module level: picklable)."""
    assert trial.restore() is None and trial.should_restore is False
    trial.checkpoint({"w": np.full(3, trial.number, dtype=np.float64)})
    trial.report(0.5, step=0)
    state = trial.restore()
    if int(state["w"][0]) != trial.number:
        raise AssertionError(f"restored {state!r}")
    try:
        trial.checkpoint([1, 2])
    except CheckpointError:
        pass
    else:
        raise AssertionError("a list was checkpointed without pickle=True")
    trial.checkpoint(b"final-%d" % trial.number)
    if trial.restore() != b"final-%d" % trial.number:
        raise AssertionError("bytes did not round-trip")
    return float(trial.number)


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
async def test_async_objective_checkpoints(tmp_path: Path, storage: str) -> None:
    url = "memory" if storage == "memory" else sqlite_url(tmp_path)
    tuner = hpt.Tuner(
        _async_objective,
        SPACE,
        storage=url,
        study="s",
        max_trials=3,
        concurrency=2,
        loggers=[],
        seed=1,
        strategy="random",
    )
    result = await tuner.run()
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE] * 3, [t.error for t in result.trials]


@pytest.mark.parametrize(("executor", "storage"), [("thread", "memory"), ("thread", "sqlite"), ("process", "memory")])
async def test_sync_objective_checkpoints_on_thread_and_process(tmp_path: Path, executor: str, storage: str) -> None:
    url = "memory" if storage == "memory" else sqlite_url(tmp_path)
    ex: Any = hpt.ProcessExecutor(max_workers=1) if executor == "process" else executor
    tuner = hpt.Tuner(
        sync_objective, SPACE, storage=url, study="s", executor=ex, max_trials=2, loggers=[], seed=2, strategy="random"
    )
    with anyio.fail_after(60):
        result = await tuner.run()
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE] * 2, [t.traceback for t in result.trials]


# -- cleanup ---------------------------------------------------------------------------------------


async def test_finished_checkpoints_are_dropped_but_the_best_is_kept() -> None:
    storage = hpt.MemoryStorage()

    async def objective(trial: hpt.Trial) -> float:
        await trial.checkpoint(b"state-%d" % trial.number)
        return trial.params["x"]

    result = await hpt.Tuner(
        objective, SPACE, storage=storage, study="c", max_trials=6, loggers=[], seed=3, strategy="random"
    ).run()
    best = result.best
    assert best is not None
    kept = {t.number: await storage.checkpoint("c", t.number) for t in result.trials}
    assert kept.pop(best.number) == encode_state(b"state-%d" % best.number)
    assert set(kept.values()) == {None}
    assert decode_state(await storage.checkpoint("c", best.number)) == b"state-%d" % best.number  # type: ignore[arg-type]


async def test_overlapping_trial_ends_release_checkpoints_once(monkeypatch: pytest.MonkeyPatch) -> None:
    # Two trial ends whose releases overlap (a drop that awaits, a strategy that awaits in tell) must not drop
    # the same checkpoint twice.
    from hpt_async.storage import memory

    plain_drop = memory._MemorySession.drop_checkpoint
    drops: list[int] = []

    async def slow_drop(self: Any, number: int) -> None:
        drops.append(number)
        await anyio.sleep(0.002)
        await plain_drop(self, number)

    monkeypatch.setattr(memory._MemorySession, "drop_checkpoint", slow_drop)

    class SlowTell(hpt.RandomStrategy):
        async def tell(self, study: Any, record: Any) -> None:
            await anyio.sleep(0.001 * (record.number % 3))
            await super().tell(study, record)

    async def objective(trial: hpt.Trial) -> float:
        await trial.checkpoint(b"w")
        await anyio.sleep(0.001 * (trial.number % 4))
        if trial.number % 2:
            raise RuntimeError("a failing member")
        return trial.params["x"]

    storage = hpt.MemoryStorage()
    tuner = hpt.Tuner(objective, SPACE, strategy=SlowTell(), storage=storage, study="race", concurrency=8,
                      max_trials=80, max_failures=1000, loggers=[], seed=0)  # fmt: skip
    with anyio.fail_after(60):
        result = await tuner.run()
    assert len(result.trials) == 80
    assert len(drops) == len(set(drops))  # each dropped once
    best = result.best
    assert best is not None and best.number not in drops
    assert await storage.checkpoint("race", best.number) == encode_state(b"w")


async def test_failed_trials_leave_no_checkpoint_on_sqlite(tmp_path: Path) -> None:
    async def objective(trial: hpt.Trial) -> float:
        await trial.checkpoint(b"x" * 100)
        raise RuntimeError("boom")

    url = sqlite_url(tmp_path)
    result = await hpt.Tuner(
        objective, SPACE, storage=url, study="f", max_trials=3, loggers=[], seed=4, strategy="random"
    ).run()
    assert result.count(hpt.TrialState.FAILED) == 3
    con = sqlite3.connect(tmp_path / "ck.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM checkpoints").fetchone() == (0,)
    finally:
        con.close()


async def test_a_checkpoint_after_the_trial_ended_is_refused() -> None:
    kept: list[hpt.Trial] = []

    async def objective(trial: hpt.Trial) -> float:
        kept.append(trial)
        return 1.0

    await hpt.Tuner(objective, SPACE, max_trials=1, loggers=[], seed=5, strategy="random").run()
    with pytest.raises(hpt.TrialCancelled):
        await kept[0].checkpoint(b"late")


# -- LOST trials resume from their checkpoint ----------------------------------------------------


async def test_a_lost_trials_retry_restores_its_checkpoint(tmp_path: Path) -> None:
    url = sqlite_url(tmp_path, query="lease=0.3")
    storage = SQLiteStorage(url)
    space = hpt.Space(SPACE)
    dead = await storage.open("lost", direction="minimize", space=space)
    number = await dead.reserve()
    await dead.trial_created(hpt.TrialRecord(number, hpt.TrialState.RUNNING, {"x": 0.25}, started=1.0))
    await dead.trial_reported(number, 4, 0.7)
    await dead.put_checkpoint(number, encode_state({"epoch": np.int64(5)}))
    await anyio.sleep(0.45)  # the dead session's lease runs out
    seen: list[tuple[int | None, bool, Any]] = []

    def objective(trial: Any) -> float:
        restore = trial.should_restore
        state = trial.restore()
        seen.append((trial._trial.retry_of, restore, None if state is None else int(state["epoch"])))
        return trial.params["x"]

    try:
        tuner = hpt.Tuner(
            objective, SPACE, storage=url, study="lost", max_trials=2, loggers=[], seed=6, strategy="random"
        )
        result = await tuner.run()
    finally:
        await dead.close()
    records = {t.number: t for t in result.trials}
    assert records[number].state is hpt.TrialState.LOST
    retry = next(t for t in result.trials if t.retry_of == number)
    assert retry.params["x"] == 0.25 and retry.state is hpt.TrialState.COMPLETE
    assert seen[0] == (number, True, 5)  # the retry ran first, from the checkpoint
    assert seen[1][1:] == (False, None)  # a fresh trial starts from nothing
    # The LOST trial's checkpoint moved to its retry: nothing is left under the old number.
    assert await storage.checkpoint("lost", number) is None


async def test_schema_version_1_files_are_migrated(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    url = f"sqlite:///{path}"

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    await hpt.Tuner(
        objective, SPACE, storage=url, study="old", max_trials=2, loggers=[], seed=7, strategy="random"
    ).run()
    # Make the file look like a version 1 file: no schedule column, no checkpoints table.
    con = sqlite3.connect(path)
    for trigger in ("trials_use_insert", "trials_within_budget", "trials_use_update", "studies_reserve"):
        con.execute(f"DROP TRIGGER {trigger}")  # added by version 4, as the table, indexes and columns below
    con.execute("DROP TABLE reservations")
    con.execute("DROP INDEX trials_by_claim")
    con.execute("DROP INDEX trials_by_retry")
    for table, column in (("studies", "used"), ("studies", "reserver"), ("studies", "budget"), ("trials", "claim")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")
    con.execute("DROP TABLE checkpoints")
    con.execute("ALTER TABLE trials DROP COLUMN schedule")
    dropped = (("trials", "objective_values"), ("reports", "objective_values"), ("studies", "settings"))
    dropped = (*dropped, ("trials", "constraints"))
    for table, column in (*dropped, ("studies", "directions")):
        con.execute(f"ALTER TABLE {table} DROP COLUMN {column}")  # added by later versions
    con.execute("UPDATE schema_version SET version = 1")
    con.commit()
    con.close()
    loaded = await SQLiteStorage(url).load("old")
    assert len(loaded) == 2 and all(r.schedule == () for r in loaded)

    async def checkpointing(trial: hpt.Trial) -> float:
        await trial.checkpoint(b"new")
        return trial.params["x"]

    result = await hpt.Tuner(
        checkpointing, SPACE, storage=url, study="old", max_trials=3, loggers=[], seed=7, strategy="random"
    ).run()
    assert len(result.trials) == 3
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        con.close()


def _meet(folder: str, number: int, members: int, timeout: float = 30.0) -> None:
    """Wait until ``members`` trials have called this with ``folder`` (files as a barrier across processes)."""
    Path(folder, f"started-{number}").touch()
    deadline = time.monotonic() + timeout
    while len(list(Path(folder).glob("started-*"))) < members and time.monotonic() < deadline:
        time.sleep(0.01)


def exploited_objective(trial: Any) -> float:
    """Reports ten steps; a member that is told to restore checks it got its donor's state.

    With ``HPT_ASYNC_TEST_BARRIER`` set to a folder, the members start together and pause between steps, so
    that they run side by side (a member that ran alone from start to end would have nobody to copy).
    """
    barrier = os.environ.get("HPT_ASYNC_TEST_BARRIER")
    if barrier:
        _meet(barrier, trial.number, 2)
    state = trial.restore()
    x = 0.0 if state is None else float(state["x"])
    for step in range(10):
        if barrier:
            time.sleep(0.05)
        x += trial.params["x"]
        trial.checkpoint({"x": np.float64(x), "owner": np.int64(trial.number)})
        trial.report(x, step=step)
        if trial.should_restore:
            restored = trial.restore()
            if int(restored["owner"]) == trial.number:
                raise AssertionError("restored its own state after an EXPLOIT")
            x = float(restored["x"])
            trial.set_user_attr("restored", trial.user_attrs.get("restored", 0) + 1)
    return x


async def test_checkpoints_and_exploits_travel_from_a_dask_worker(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from distributed import LocalCluster
    from hpt_async_dask import DaskExecutor

    monkeypatch.setenv("HPT_ASYNC_TEST_BARRIER", str(tmp_path))  # the worker processes inherit it
    with LocalCluster(n_workers=2, threads_per_worker=1, processes=True, dashboard_address=":0", silence_logs=40) as lc:
        strategy = hpt.PBTStrategy(perturbation_interval=2, quantile=0.5)
        tuner = hpt.Tuner(
            exploited_objective, SPACE, strategy=strategy, executor=DaskExecutor(lc.scheduler_address),
            direction="maximize", concurrency=2, max_trials=2, loggers=[], seed=8,
        )  # fmt: skip
        with anyio.fail_after(60):
            result = await tuner.run()
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE] * 2, [t.traceback for t in result.trials]
    assert sorted(p.name for p in tmp_path.glob("started-*")) == ["started-0", "started-1"]  # they met
    assert strategy.events
    for t in result.trials:
        assert t.user_attrs.get("restored", 0) == max(len(t.schedule) - 1, 0)


class _PlainSession(hpt.StudySession):
    """A third-party session that implements only the trial methods: checkpoints use the defaults."""

    def __init__(self) -> None:  # deliberately not calling StudySession.__init__
        self.history = []
        self.next = 0

    async def reserve(self) -> int:
        self.next += 1
        return self.next - 1

    async def trial_created(self, record: hpt.TrialRecord) -> None:
        pass

    async def trial_reported(self, number: int, step: int, value: float) -> None:
        pass

    async def trial_ended(self, record: hpt.TrialRecord) -> None:
        pass


class _PlainStorage(hpt.Storage):
    name = "plain"

    async def open(self, study: str, *, direction: str, space: hpt.Space) -> hpt.StudySession:
        return _PlainSession()


async def test_a_backend_without_checkpoint_methods_keeps_them_in_its_session() -> None:
    result = await hpt.Tuner(
        _async_objective, SPACE, storage=_PlainStorage(), max_trials=2, loggers=[], seed=9, strategy="random"
    ).run()
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE] * 2, [t.error for t in result.trials]
