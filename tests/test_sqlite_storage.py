"""What is SQLite's own: URLs, files, locks, JSON of odd attributes, load_study, flushes.

What every storage must do (sessions, leases, LOST trials, exactness, readers, administration) is
in the conformance suite, hpt_async.testing.storage, run against SQLite by tests/test_storage_conformance.py.
"""

from __future__ import annotations

import enum
import hashlib
import json
import logging
import math
import os
import sqlite3
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.contracts.storage import StudyNotFound
from hpt_async.exceptions import HptError
from hpt_async.storage.sqlite import SCHEMA_VERSION, SQLiteStorage, StorageFileError, parse_sqlite_url
from hpt_async.studies import load_study, load_study_async

pytestmark = pytest.mark.anyio

HANG_GUARD = 20.0


class Color(enum.Enum):
    RED = 1
    BLUE = 2


SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-4, 1e-1, log=True),
        "layers": hpt.Int(1, 4),
        "kind": hpt.Choice([(1, 2), None, Color.RED, "x", 0, False, 1.5]),
    }
)


def url(tmp_path: Path, name: str = "t.db", query: str = "") -> str:
    return f"sqlite:///{tmp_path / name}" + (f"?{query}" if query else "")


def digest(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def tuner(objective: Any, storage: Any, study: str, **kwargs: Any) -> hpt.Tuner:
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, kwargs.pop("space", SPACE), storage=storage, study=study, **kwargs)


async def run(t: hpt.Tuner) -> hpt.StudyResult:
    with anyio.fail_after(HANG_GUARD):
        return await t.run()


async def quick(trial: hpt.Trial) -> float:
    return trial.params["lr"] * trial.params["layers"]


# -- URLs and options ----------------------------------------------------------------


def test_urls_give_a_path_and_options(tmp_path: Path) -> None:
    assert parse_sqlite_url("sqlite:///rel/x.db") == ("rel/x.db", {})
    assert parse_sqlite_url("sqlite:////abs/x.db?synchronous=full&lease=30") == (
        "/abs/x.db",
        {"synchronous": "full", "lease": "30"},
    )
    assert parse_sqlite_url("sqlite:///with%20space.db") == ("with space.db", {})
    s = SQLiteStorage(url(tmp_path, query="synchronous=full&lease=30&sync=2&timeout=9"))
    assert (s.synchronous, s.lease, s.sync_interval, s.timeout) == ("FULL", 30.0, 2.0, 9.0)
    assert s.path == str(tmp_path / "t.db")
    d = SQLiteStorage(url(tmp_path))
    assert (d.synchronous, d.lease, d.sync_interval) == ("NORMAL", 5.0, 1.0)
    # A short lease alone brings the sync interval down with it.
    short = SQLiteStorage(url(tmp_path, query="lease=0.6"))
    assert short.lease == 0.6 and short.sync_interval == pytest.approx(0.2)
    assert SQLiteStorage(url(tmp_path), lease=12).lease == 12


def test_a_relative_path_is_resolved_when_the_storage_is_made(tmp_path: Path, monkeypatch: Any) -> None:
    monkeypatch.chdir(tmp_path)
    assert SQLiteStorage("sqlite:///sub.db").path == str(tmp_path / "sub.db")


def test_the_registry_knows_sqlite_and_it_is_durable(tmp_path: Path) -> None:
    assert "sqlite" in hpt.get_registry().names("storage")
    t = tuner(quick, url(tmp_path), "s")
    assert isinstance(t.storage, SQLiteStorage) and t.storage.durable
    with pytest.raises(ValueError, match="study="):
        hpt.Tuner(quick, SPACE, storage=url(tmp_path), loggers=[], strategy="random")


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("sqlite://host/x.db", "malformed"),
        ("sqlite:/x.db", "malformed"),
        ("sqlite:///", "names no database"),
        ("sqlite:///dir/", "names no database"),
        ("sqlite:///:memory:", "in-memory"),
        ("sqlite:///x.db?foo=1", "unknown sqlite option 'foo'"),
        ("sqlite:///x.db?lease=abc", "not a number"),
        ("sqlite:///x.db?lease=-1", "> 0"),
        ("sqlite:///x.db?lease=nan", "> 0"),
        ("sqlite:///x.db?synchronous=off", "'normal' or 'full'"),
        ("sqlite:///x.db?lease=1&sync=1", "at least twice"),
        ("sqlite:///x.db?lease=1&lease=2", "twice"),
        ("sqlite:///x.db?lease", "malformed query"),
    ],
)
def test_bad_urls_fail_with_a_clear_message(bad: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        SQLiteStorage(bad)


def test_a_wrong_scheme_names_the_registered_storages() -> None:
    with pytest.raises(hpt.PluginNotFound, match="sqlite"):
        hpt.Tuner(quick, SPACE, storage="sqlit:///x.db", study="s", loggers=[], strategy="random")
    with pytest.raises(ValueError, match="no scheme"):
        hpt.Tuner(quick, SPACE, storage="/just/a/path.db", study="s", loggers=[], strategy="random")


async def test_a_missing_directory_is_a_clear_error_and_nothing_is_created(tmp_path: Path) -> None:
    t = tuner(quick, f"sqlite:///{tmp_path}/no/such/dir/x.db", "s", max_trials=1)
    with pytest.raises(StorageFileError, match="does not exist"):
        await run(t)
    assert not (tmp_path / "no").exists()


@pytest.mark.skipif(hasattr(os, "geteuid") and os.geteuid() == 0, reason="root ignores file permissions")
async def test_an_unwritable_directory_is_a_clear_error(tmp_path: Path) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        with pytest.raises(StorageFileError, match="not writable"):
            await run(tuner(quick, f"sqlite:///{locked}/x.db", "s", max_trials=1))
    finally:
        locked.chmod(0o700)


@pytest.mark.skipif(not os.path.isdir("/proc/self"), reason="needs Linux /proc")
async def test_a_path_where_no_file_can_be_made_is_a_clear_error() -> None:
    # /proc takes no new files, even from root.
    with pytest.raises(StorageFileError, match=r"cannot (open|create) /proc/hpt-async-test\.db"):
        await run(tuner(quick, "sqlite:////proc/hpt-async-test.db", "s", max_trials=1))


async def test_a_directory_in_place_of_the_file_is_refused(tmp_path: Path) -> None:
    (tmp_path / "d.db").mkdir()
    with pytest.raises(StorageFileError, match="is a directory"):
        await run(tuner(quick, url(tmp_path, "d.db"), "s", max_trials=1))


# -- files that must never be modified -------------------------------------------------


async def test_a_file_that_is_not_a_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "notes.db"
    path.write_bytes(b"these are my notes, not a database\n" * 50)
    before = digest(path)
    storage = SQLiteStorage(url(tmp_path, "notes.db"))
    with pytest.raises(StorageFileError, match="not an SQLite database"):
        await run(tuner(quick, storage, "s", max_trials=1))
    for call in (storage.studies(), storage.load("s"), storage.delete("s"), storage.rename("s", "t")):
        with pytest.raises(StorageFileError):
            await call
    assert digest(path) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.db"]


async def test_a_corrupt_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "corrupt.db"
    path.write_bytes(b"SQLite format 3\x00" + bytes(range(256)) * 16)
    before = digest(path)
    with pytest.raises(StorageFileError, match="not a usable SQLite database"):
        await run(tuner(quick, url(tmp_path, "corrupt.db"), "s", max_trials=1))
    assert digest(path) == before


def _foreign_db(path: Path, version: int | None) -> None:
    con = sqlite3.connect(path)
    if version is None:
        con.execute("CREATE TABLE customers (id INTEGER PRIMARY KEY, name TEXT)")
        con.execute("INSERT INTO customers (name) VALUES ('alice')")
    else:
        con.execute("CREATE TABLE schema_version (version INTEGER, written_by TEXT, created REAL)")
        con.execute("INSERT INTO schema_version VALUES (?, 'hpt-async 99.0', 0)", (version,))
        con.execute("CREATE TABLE studies (id INTEGER PRIMARY KEY, name TEXT, layout_of_the_future BLOB)")
    con.commit()
    con.close()


async def test_a_newer_schema_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    _foreign_db(path, SCHEMA_VERSION + 1)
    before = digest(path)
    storage = SQLiteStorage(url(tmp_path, "future.db"))
    with pytest.raises(
        StorageFileError,
        match=rf"newer hpt-async .*schema version {SCHEMA_VERSION + 1}.*reads schema version "
        rf"{SCHEMA_VERSION} at most.*upgrade",
    ) as caught:
        await run(tuner(quick, storage, "s", max_trials=1))
    assert isinstance(caught.value, HptError)
    for call in (
        storage.studies(),
        storage.load("s"),
        storage.delete("s"),
        storage.rename("s", "t"),
        storage.watch("s"),
    ):
        with pytest.raises(StorageFileError, match="newer"):
            await call
    assert digest(path) == before
    con = sqlite3.connect(path)
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "delete"
    con.close()


async def test_another_applications_database_is_refused_and_left_untouched(tmp_path: Path) -> None:
    path = tmp_path / "shop.db"
    _foreign_db(path, None)
    before = digest(path)
    with pytest.raises(StorageFileError, match=r"did not write.*customers"):
        await run(tuner(quick, url(tmp_path, "shop.db"), "s", max_trials=1))
    assert digest(path) == before


async def test_an_empty_file_becomes_a_database(tmp_path: Path) -> None:
    (tmp_path / "empty.db").write_bytes(b"")
    result = await run(tuner(quick, url(tmp_path, "empty.db"), "s", max_trials=2))
    assert len(result.trials) == 2
    con = sqlite3.connect(tmp_path / "empty.db")
    assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    assert con.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    con.close()


# -- persistence of every field ----------------------------------------------------------


class StopAt(hpt.Pruner):
    """Stops a trial reporting ``step`` when its layer count is 4."""

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        return hpt.Decision.STOP if step >= 1 and trial.params["layers"] == 4 else hpt.Decision.CONTINUE


async def persisted(trial: hpt.Trial) -> float:
    p = trial.params
    trial.set_user_attr("quote'; DROP TABLE trials; --", 'é "ü" 研究')
    trial.set_user_attr("nested", {"list": [1, 2.5, None, True], "n": trial.number})
    await trial.report(float(trial.number), step=0)
    await trial.report(math.inf, step=1)
    if p["layers"] == 1:
        raise RuntimeError(f"boom in trial {trial.number}")
    await trial.report(math.nan, step=2)
    return p["lr"] * 100 + p["layers"]


def same_record(a: hpt.TrialRecord, b: hpt.TrialRecord) -> None:
    """Field-by-field equality, NaN reports included."""
    assert (a.number, a.state, a.value, a.error, a.traceback) == (b.number, b.state, b.value, b.error, b.traceback)
    assert (a.started, a.ended, a.retry_of) == (b.started, b.ended, b.retry_of)
    assert dict(a.params) == dict(b.params)
    assert [type(v) for v in a.params.values()] == [type(v) for v in b.params.values()]
    assert dict(a.user_attrs) == dict(b.user_attrs)
    assert sorted(a.reports) == sorted(b.reports)
    for step in a.reports:
        x, y = a.reports[step], b.reports[step]
        assert x == y or (math.isnan(x) and math.isnan(y))


async def test_every_field_of_every_trial_survives_a_run_and_load_study(tmp_path: Path) -> None:
    storage = url(tmp_path)
    t = tuner(persisted, storage, "fields", max_trials=16, pruner=StopAt(), concurrency=3)
    result = await run(t)
    states = {r.state for r in result.trials}
    assert {hpt.TrialState.COMPLETE, hpt.TrialState.FAILED, hpt.TrialState.PRUNED} <= states

    loaded = await load_study_async(storage, "fields", SPACE)
    assert loaded.direction == "minimize"
    assert len(loaded.trials) == len(result.trials) == 16
    for mine, stored in zip(result.trials, loaded.trials, strict=True):
        same_record(mine, stored)
    assert loaded.best is not None and result.best is not None
    assert loaded.best.number == result.best.number
    failed = next(r for r in loaded.trials if r.state is hpt.TrialState.FAILED)
    assert failed.error == f"RuntimeError: boom in trial {failed.number}"
    assert failed.traceback is not None and "boom in trial" in failed.traceback and "Traceback" in failed.traceback
    pruned = next(r for r in loaded.trials if r.state is hpt.TrialState.PRUNED)
    assert pruned.reports[1] == math.inf and pruned.value is None  # the last report was not finite
    complete = next(r for r in loaded.trials if r.state is hpt.TrialState.COMPLETE)
    assert math.isnan(complete.reports[2])
    assert complete.user_attrs["nested"] == {"list": [1, 2.5, None, True], "n": complete.number}


async def test_choice_values_round_trip_exactly_with_the_space(tmp_path: Path) -> None:
    storage = SQLiteStorage(url(tmp_path))
    t = tuner(quick, storage, "choices", strategy=hpt.GridStrategy(points=1))
    result = await run(t)
    kinds = [r.params["kind"] for r in result.trials]
    assert len(kinds) == 7
    loaded = await storage.load("choices", space=SPACE)
    for original, back in zip(kinds, (r.params["kind"] for r in loaded), strict=True):
        assert back == original and type(back) is type(original)
        if original is Color.RED or original is None:
            assert back is original
    # Without the space, each value is its JSON description.
    described = [r.params["kind"] for r in await storage.load("choices")]
    assert described == [{"repr": "(1, 2)"}, None, {"repr": "<Color.RED: 1>"}, "x", 0, False, 1.5]
    assert [type(v) for v in described[4:]] == [int, bool, float]
    with pytest.raises(ValueError, match="another space"):
        await storage.load("choices", space=hpt.Space({"lr": hpt.Float(0, 1)}))


# -- records for direct session calls ---------------------------------------------------------


def running(number: int) -> hpt.TrialRecord:
    return hpt.TrialRecord(
        number=number, state=hpt.TrialState.RUNNING, params={"lr": 0.01, "layers": 2, "kind": None}, started=1.0
    )


def done(number: int, value: float) -> hpt.TrialRecord:
    return hpt.TrialRecord(
        number=number,
        state=hpt.TrialState.COMPLETE,
        params={"lr": 0.01, "layers": 2, "kind": None},
        value=value,
        started=1.0,
        ended=2.0,
    )


# -- locks -------------------------------------------------------------------------------------


async def test_a_write_waits_for_a_lock_held_by_another_process(tmp_path: Path) -> None:
    storage = SQLiteStorage(url(tmp_path))
    session = await storage.open("locked", direction="minimize", space=SPACE)
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")  # holds the write lock, as a busy process would
        released = anyio.Event()

        async def release() -> None:
            await anyio.sleep(0.3)
            other.execute("COMMIT")
            released.set()

        async with anyio.create_task_group() as tg:
            tg.start_soon(release)
            number = await session.reserve()
            assert released.is_set()  # the write went through only after the lock was released
        await session.trial_created(running(number))
    finally:
        await session.close()
        other.close()
    assert [r.number for r in await storage.load("locked")] == [number]


async def test_a_lock_held_beyond_the_timeout_is_a_clear_error(tmp_path: Path) -> None:
    from hpt_async.storage.sqlite import StorageBusyError

    storage = SQLiteStorage(url(tmp_path, query="timeout=0.2"))
    session = await storage.open("stuck", direction="minimize", space=SPACE)
    other = sqlite3.connect(tmp_path / "t.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StorageBusyError, match=r"stayed locked .* 0\.2 s while trying to reserve a trial number"):
            await session.reserve()
        other.execute("ROLLBACK")
        assert await session.reserve() == 0
    finally:
        await session.close()
        other.close()


# -- names and attributes ----------------------------------------------------------------------


class Opaque:
    def __repr__(self) -> str:
        return "Opaque('x')"


async def test_an_attribute_that_is_not_json_is_stored_as_its_repr(tmp_path: Path, caplog: Any) -> None:
    import numpy as np

    async def objective(trial: hpt.Trial) -> float:
        trial.set_user_attr("obj", Opaque())  # not serialisable
        trial.set_user_attr("np", np.float32(0.5))
        trial.set_user_attr("arr", np.arange(3))
        trial.set_user_attr("tuple", (1, "a"))
        return 1.0

    caplog.set_level(logging.WARNING, "hpt_async")
    storage = SQLiteStorage(url(tmp_path))
    result = await run(tuner(objective, storage, "attrs", max_trials=1))
    assert result.trials[0].state is hpt.TrialState.COMPLETE
    (back,) = await storage.load("attrs")
    assert back.user_attrs["obj"] == "Opaque('x')"
    assert back.user_attrs["np"] == 0.5 and back.user_attrs["arr"] == [0, 1, 2]
    assert back.user_attrs["tuple"] == [1, "a"]
    assert "not JSON-serialisable" in caplog.text


# -- administration, on both backends ---------------------------------------------------------


async def test_admin_reads_of_a_missing_file_create_nothing(tmp_path: Path) -> None:
    storage = SQLiteStorage(url(tmp_path, "absent.db"))
    with pytest.raises(FileNotFoundError, match=r"absent\.db"):
        await storage.studies()
    with pytest.raises(StudyNotFound, match="no database file"):
        await storage.delete("s")
    with pytest.raises(StudyNotFound):
        await load_study_async(storage, "s")
    assert await storage.load("s") == []
    assert list(tmp_path.iterdir()) == []


# -- load_study ----------------------------------------------------------------------------------


async def test_load_study_exports_rows_csv_and_json(tmp_path: Path) -> None:
    storage = url(tmp_path)
    await run(tuner(persisted, storage, "export", max_trials=6, pruner=StopAt()))
    study = await load_study_async(storage, "export", SPACE)
    rows = study.to_rows()
    assert [r["number"] for r in rows] == list(range(6))
    assert {"number", "state", "value", "params_lr", "params_layers", "params_kind", "reports", "error"} <= set(rows[0])
    assert rows[0]["user_attrs_quote'; DROP TABLE trials; --"] == 'é "ü" 研究'
    study.to_csv(tmp_path / "out.csv")
    study.to_json(tmp_path / "out.json")
    import csv

    with open(tmp_path / "out.csv", encoding="utf-8", newline="") as f:
        csv_rows = list(csv.DictReader(f))
    assert [int(r["number"]) for r in csv_rows] == list(range(6))
    assert [r["state"] for r in csv_rows] == [r["state"] for r in rows]
    data = json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))
    assert [d["number"] for d in data] == list(range(6))
    complete = [d for d in data if d["state"] == "complete"]
    assert complete and all(d["reports"]["2"] is None for d in complete)  # NaN is null
    assert all(d["value"] == r["value"] for d, r in zip(data, rows, strict=True))


def test_to_dataframe_without_pandas_says_how_to_get_it(tmp_path: Path, monkeypatch: Any) -> None:
    study = hpt_loaded(tmp_path)
    monkeypatch.setitem(__import__("sys").modules, "pandas", None)
    with pytest.raises(ImportError, match="pip install pandas"):
        study.to_dataframe()


def test_to_dataframe_hands_the_rows_to_pandas(tmp_path: Path, monkeypatch: Any) -> None:
    import sys
    import types

    calls: dict[str, Any] = {}

    class Frame:
        def __init__(self, rows: list[dict[str, Any]], columns: list[str]) -> None:
            calls["rows"], calls["columns"] = rows, columns

        def set_index(self, key: str) -> Frame:
            calls["index"] = key
            return self

    study = hpt_loaded(tmp_path)
    monkeypatch.setitem(sys.modules, "pandas", types.SimpleNamespace(DataFrame=Frame))
    assert isinstance(study.to_dataframe(), Frame)
    assert calls["rows"] == study.to_rows() and calls["columns"] == list(study.to_rows()[0])
    assert calls["index"] == "number"


def test_to_dataframe_with_pandas(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    df = hpt_loaded(tmp_path).to_dataframe()
    assert list(df.index) == [0, 1] and "params_lr" in df.columns


def hpt_loaded(tmp_path: Path) -> Any:
    storage = url(tmp_path)
    anyio.run(run, tuner(quick, storage, "df", max_trials=2), backend="asyncio")
    return load_study(storage, "df")


def test_load_study_outside_a_loop_and_its_errors(tmp_path: Path) -> None:
    storage = url(tmp_path)
    anyio.run(run, tuner(quick, storage, "sync", max_trials=3, direction="maximize"), backend="asyncio")
    study = load_study(storage, "sync")
    assert study.direction == "maximize" and len(study.trials) == 3
    assert study.best is not None and study.best.value == max(t.value for t in study.trials)  # type: ignore[type-var]
    assert study.count("complete") == 3
    with pytest.raises(StudyNotFound, match="'nope'"):
        load_study(storage, "nope")
    with pytest.raises(ValueError, match="another space"):
        load_study(storage, "sync", {"x": hpt.Int(0, 1)})


async def test_load_study_inside_a_loop_points_to_the_async_form(tmp_path: Path) -> None:
    with pytest.raises(RuntimeError, match="load_study_async"):
        load_study(url(tmp_path), "s")


async def trace(session: Any) -> list[str]:
    """Every statement the session's connection runs from now on, once each (not again for its triggers)."""
    statements: list[str] = []

    def keep(sql: str) -> None:
        # Python's trace callback reports the statement again for each statement one of its triggers runs.
        if not statements or statements[-1] != sql:
            statements.append(sql)

    await session._conn.db.set_trace_callback(keep)
    return statements


@pytest.mark.parametrize("mode", ["normal", "full"])
async def test_synchronous_full_flushes_each_trial_end(tmp_path: Path, mode: str) -> None:
    storage = SQLiteStorage(url(tmp_path, query=f"synchronous={mode}"))
    session = await storage.open("sync", direction="minimize", space=SPACE)
    try:
        statements = await trace(session)
        n = await session.reserve()
        await session.trial_created(running(n))
        await session.trial_reported(n, 0, 1.0)
        await session.trial_ended(done(n, 1.0))
        assert (await session._conn.fetch("PRAGMA synchronous"))[0][0] == 1  # NORMAL between ends
    finally:
        await session.close()
    end = next(i for i, sql in enumerate(statements) if sql.startswith("INSERT INTO trials") and "ON CONFLICT" in sql)
    flushes = [i for i, sql in enumerate(statements) if sql == "PRAGMA synchronous = FULL"]
    if mode == "full":
        assert flushes == [end - 1] and statements[end + 1] == "PRAGMA synchronous = NORMAL"
    else:
        assert flushes == []
    assert (await storage.load("sync"))[0].value == 1.0


async def test_no_statement_of_other_tasks_lands_inside_a_transaction(tmp_path: Path) -> None:
    storage = SQLiteStorage(url(tmp_path))
    session: Any = await storage.open("gate", direction="minimize", space=SPACE)
    try:
        statements = await trace(session)

        async def slow(db: Any) -> None:
            await db.execute("SELECT COUNT(*) FROM trials")
            await anyio.sleep(0.05)
            await db.execute("SELECT COUNT(*) FROM reports")

        numbers: list[int] = []

        async def reserve() -> None:
            numbers.append(await session.reserve())

        async with anyio.create_task_group() as tg:
            tg.start_soon(session._conn.transaction, slow, "test")
            await anyio.sleep(0.01)
            for _ in range(5):
                tg.start_soon(reserve)
        begin, commit = statements.index("BEGIN IMMEDIATE"), statements.index("COMMIT")
        assert not [sql for sql in statements[begin:commit] if "UPDATE studies" in sql]
        # All five ran after the commit (the trace shows identical statements in a row once, see trace()).
        assert any("UPDATE studies" in sql for sql in statements[commit:])
        assert sorted(numbers) == [0, 1, 2, 3, 4]
    finally:
        await session.close()


# -- where statements run: the event loop's thread or the connection's ------------------------------


async def trace_threads(session: Any) -> list[tuple[str, int]]:
    """Every statement the session's connection runs from now on, with the id of the thread that ran it."""
    import threading

    statements: list[tuple[str, int]] = []

    def keep(sql: str) -> None:
        if not statements or statements[-1][0] != sql:
            statements.append((sql, threading.get_ident()))

    await session._conn.db.set_trace_callback(keep)
    return statements


async def test_a_trials_statements_run_on_the_event_loops_thread(tmp_path: Path) -> None:
    import threading

    storage = SQLiteStorage(url(tmp_path))
    session: Any = await storage.open("inline", direction="minimize", space=SPACE)
    loop = threading.get_ident()
    try:
        statements = await trace_threads(session)
        n = await session.reserve()
        await session.trial_created(running(n))
        await session.trial_reported(n, 0, 1.0)
        await session.trial_ended(done(n, 1.0))
        m = await session.reserve()
        await session.release(m)
        await session.put_checkpoint(n, b"blob")
        await session.heartbeat()
        await session.refresh()
    finally:
        await session.close()
    on_loop = [sql for sql, ident in statements if ident == loop]
    # The reservation, the RUNNING trial, the report, the end, and the release of a number (a transaction).
    for start in (
        "UPDATE studies SET next_number",
        "INSERT INTO trials",
        "INSERT OR REPLACE INTO reports",
        "BEGIN IMMEDIATE",
    ):
        assert any(sql.startswith(start) for sql in on_loop), start
    assert any(sql.startswith("DELETE FROM reservations") and " AND number = " in sql for sql in on_loop)
    assert any(sql.startswith("INSERT INTO trials") and "ON CONFLICT" in sql for sql in on_loop)
    # Blobs, maintenance and reads of other sessions' trials stay in the connection's thread.
    elsewhere = [sql for sql, ident in statements if ident != loop]
    assert any(sql.startswith("INSERT OR REPLACE INTO checkpoints") for sql in elsewhere)
    assert any(sql.startswith("INSERT INTO sessions") for sql in elsewhere)
    assert any(sql.startswith("SELECT MAX(seq)") for sql in elsewhere)
    assert (await storage.load("inline"))[0].value == 1.0


async def test_wal_checkpoints_run_in_the_connections_thread(tmp_path: Path) -> None:
    import threading

    from hpt_async.storage import sqlite as module

    storage = SQLiteStorage(url(tmp_path))
    session: Any = await storage.open("ckpt", direction="minimize", space=SPACE)
    loop = threading.get_ident()
    try:
        # SQLite's own checkpoints (which fsync) would run on the thread of the commit: they are off.
        assert (await session._conn.fetch("PRAGMA wal_autocheckpoint"))[0][0] == 0
        statements = await trace_threads(session)
        for _ in range(module._CHECKPOINT_EVERY // 3 + 2):
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_ended(done(n, 0.5))
    finally:
        await session.close()
    checkpoints = [ident for sql, ident in statements if sql.startswith("PRAGMA wal_checkpoint")]
    assert checkpoints and loop not in checkpoints
    # The first write after each checkpoint may start the log over and sync its header: it runs in the
    # connection's thread too; the writes after it run on the event loop's thread again.
    for i, (sql, _) in enumerate(statements):
        if sql.startswith("PRAGMA wal_checkpoint"):
            writes = [(s, t) for s, t in statements[i + 1 :] if not s.startswith(("SELECT", "PRAGMA"))]
            assert writes[0][1] != loop, writes[0]
            assert any(t == loop for _, t in writes[1:4]), writes[:4]
    assert len(await storage.load("ckpt")) == module._CHECKPOINT_EVERY // 3 + 2


async def test_a_short_statement_waits_for_what_is_queued_to_the_connections_thread(tmp_path: Path) -> None:
    storage = SQLiteStorage(url(tmp_path))
    session: Any = await storage.open("order", direction="minimize", space=SPACE)
    try:
        statements = await trace(session)
        # How many calls were still out in the connection's thread when each statement started: a statement
        # run inline beside a queued one (blocking the loop on the connection's lock) starts while that one
        # is still counted, since only the event loop can take its answer back.
        queued_at: dict[str, int] = {}

        def note(sql: str) -> None:
            if not statements or statements[-1] != sql:
                statements.append(sql)
            queued_at.setdefault(sql, session._conn._queued)

        await session._conn.db.set_trace_callback(note)
        slow = "WITH RECURSIVE c(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM c WHERE i < 300000) SELECT COUNT(*) FROM c"
        numbers: list[int] = []

        async def reserve() -> None:
            numbers.append(await session.reserve())

        async with anyio.create_task_group() as tg:
            tg.start_soon(session._conn.fetch, slow)
            await anyio.sleep(0)
            assert session._conn._queued == 1
            tg.start_soon(reserve)
        # The reservation ran after the statement queued before it had been answered, not beside it.
        update = next(sql for sql in statements if "UPDATE studies" in sql)
        assert statements.index(slow) < statements.index(update)
        assert queued_at[slow] == 1 and queued_at[update] == 0
        assert numbers == [0]
    finally:
        await session.close()


async def test_without_aiosqlites_connection_every_statement_goes_through_its_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    import threading

    from hpt_async.storage import sqlite as module

    monkeypatch.setattr(module, "_raw_connection", lambda db: None)
    storage = SQLiteStorage(url(tmp_path))
    session: Any = await storage.open("fallback", direction="minimize", space=SPACE)
    try:
        assert session._conn.raw is None
        statements = await trace_threads(session)
        n = await session.reserve()
        await session.trial_created(running(n))
        await session.trial_ended(done(n, 2.0))
    finally:
        await session.close()
    assert statements and threading.get_ident() not in {ident for _, ident in statements}
    assert (await storage.load("fallback"))[0].value == 2.0


async def test_with_synchronous_full_a_trials_end_and_its_fsync_run_in_the_connections_thread(
    tmp_path: Path,
) -> None:
    import threading

    storage = SQLiteStorage(url(tmp_path, query="synchronous=full"))
    session: Any = await storage.open("full", direction="minimize", space=SPACE)
    try:
        statements = await trace_threads(session)
        n = await session.reserve()
        await session.trial_created(running(n))
        await session.trial_ended(done(n, 3.0))
    finally:
        await session.close()
    end = next(i for i, (sql, _) in enumerate(statements) if "ON CONFLICT" in sql)
    flush = statements[end - 1 : end + 2]
    assert [sql for sql, _ in flush] == [
        "PRAGMA synchronous = FULL",
        statements[end][0],
        "PRAGMA synchronous = NORMAL",
    ]
    # In the connection's thread, not the event loop's (the fsync must not hold the loop).
    assert len({ident for _, ident in flush}) == 1 and threading.get_ident() not in {ident for _, ident in flush}
    # The RUNNING trial before it was stored from the event loop's thread.
    assert any(sql.startswith("INSERT INTO trials") and i == threading.get_ident() for sql, i in statements[:end])
