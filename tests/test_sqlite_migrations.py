"""SQLite files of every earlier schema version open with the current code, migrated to the latest."""

from __future__ import annotations

import json
import sqlite3
from pathlib import Path

import pytest

import hpt_async as hpt
from hpt_async.exceptions import HptError
from hpt_async.storage.sqlite import MIGRATIONS, SCHEMA_VERSION, SQLiteStorage, StorageFileError

pytestmark = pytest.mark.anyio

SPACE = hpt.Space({"x": hpt.Float(0.0, 1.0), "kind": hpt.Choice(["a", "b"])})

# The layouts exactly as each released version created a new file (not as the migrations build them).
_V1 = [
    "CREATE TABLE IF NOT EXISTS schema_version (version INTEGER NOT NULL, written_by TEXT NOT NULL,"
    " created REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS studies (id INTEGER PRIMARY KEY AUTOINCREMENT, name TEXT NOT NULL UNIQUE,"
    " direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')), space TEXT NOT NULL,"
    " created REAL NOT NULL, next_number INTEGER NOT NULL DEFAULT 0)",
    "CREATE TABLE IF NOT EXISTS sessions (id INTEGER PRIMARY KEY AUTOINCREMENT, study_id INTEGER NOT NULL,"
    " host TEXT NOT NULL, pid INTEGER NOT NULL, started REAL NOT NULL, heartbeat REAL NOT NULL,"
    " expires REAL NOT NULL)",
    "CREATE TABLE IF NOT EXISTS trials (study_id INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL,"
    " params TEXT NOT NULL, value REAL, user_attrs TEXT, error TEXT, traceback TEXT, started REAL NOT NULL,"
    " ended REAL, retry_of INTEGER, session INTEGER NOT NULL, writer INTEGER NOT NULL, seq INTEGER NOT NULL,"
    " PRIMARY KEY (study_id, number)) WITHOUT ROWID",
    "CREATE INDEX IF NOT EXISTS trials_by_seq ON trials (study_id, seq)",
    "CREATE INDEX IF NOT EXISTS trials_running ON trials (study_id, session) WHERE state = 'running'",
    "CREATE TABLE IF NOT EXISTS reports (study_id INTEGER NOT NULL, number INTEGER NOT NULL,"
    " step INTEGER NOT NULL, value REAL, PRIMARY KEY (study_id, number, step)) WITHOUT ROWID",
    "CREATE TRIGGER IF NOT EXISTS reports_touch_trial AFTER INSERT ON reports BEGIN UPDATE trials"
    " SET seq = (SELECT MAX(seq) + 1 FROM trials WHERE study_id = NEW.study_id), writer = session"
    " WHERE study_id = NEW.study_id AND number = NEW.number; END;",
]
# Version 2 made trials with the schedule column before session, and added checkpoints.
_V2 = [
    *_V1[:3],
    "CREATE TABLE IF NOT EXISTS trials (study_id INTEGER NOT NULL, number INTEGER NOT NULL, state TEXT NOT NULL,"
    " params TEXT NOT NULL, value REAL, user_attrs TEXT, error TEXT, traceback TEXT, started REAL NOT NULL,"
    " ended REAL, retry_of INTEGER, schedule TEXT, session INTEGER NOT NULL, writer INTEGER NOT NULL,"
    " seq INTEGER NOT NULL, PRIMARY KEY (study_id, number)) WITHOUT ROWID",
    *_V1[4:7],
    "CREATE TABLE IF NOT EXISTS checkpoints (study_id INTEGER NOT NULL, number INTEGER NOT NULL,"
    " data BLOB NOT NULL, written REAL NOT NULL, PRIMARY KEY (study_id, number)) WITHOUT ROWID",
    _V1[7],
]
# Version 3 (the first release with several objectives) made a new file by running the migrations in order.
_V3 = [
    *_V1,
    "ALTER TABLE trials ADD COLUMN schedule TEXT",
    _V2[-2],
    "ALTER TABLE studies ADD COLUMN settings TEXT",
    "ALTER TABLE studies ADD COLUMN directions TEXT",
    "ALTER TABLE trials ADD COLUMN objective_values TEXT",
    "ALTER TABLE reports ADD COLUMN objective_values TEXT",
]
# Version 4 (constraints) made a new file by running the first four migrations, version 5 (exactness of a
# shared study) the first five; versions 6 and 7 (PostgreSQL's first layout and its budget guard) made the same
# file as version 5.
_V4 = [statement for step in MIGRATIONS[:4] for statement in step]
_V5 = [statement for step in MIGRATIONS[:5] for statement in step]
HISTORY = {1: _V1, 2: _V2, 3: _V3, 4: _V4, 5: _V5, 6: _V5, 7: _V5}
# A file that hpt-async of schema version 3 wrote itself: study "mo" (minimize, maximize; three trials, each with
# a report of both values) and study "one" (minimize; two trials).
SCHEMA3_FILE = Path(__file__).parent / "data" / "schema3.db"


def test_every_earlier_version_has_its_historical_layout_here() -> None:
    assert sorted(HISTORY) == list(range(1, SCHEMA_VERSION))
    assert len(MIGRATIONS) == SCHEMA_VERSION


def make_old_file(path: Path, version: int) -> None:
    """A file as hpt-async of schema ``version`` left it: a study, two trials, reports and a checkpoint."""
    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")
    for statement in HISTORY[version]:
        con.execute(statement)
    con.execute("INSERT INTO schema_version VALUES (?, 'hpt-async 0.old', 100.0)", (version,))
    con.execute(
        "INSERT INTO studies (name, direction, space, created, next_number) VALUES ('old', 'minimize', ?, 50.0, 2)",
        (json.dumps(SPACE.describe()),),
    )
    columns = "study_id, number, state, params, value, user_attrs, error, traceback, started, ended, retry_of"
    columns += ", session, writer, seq"
    con.execute(
        f"INSERT INTO trials ({columns}) VALUES (1, 0, 'complete', ?, 0.25, ?, NULL, NULL, 1.0, 2.0, NULL, 1, 1, 1)",
        (json.dumps({"x": 0.25, "kind": 1}), json.dumps({"note": "kept"})),
    )
    con.execute(
        f"INSERT INTO trials ({columns}) VALUES (1, 1, 'paused', ?, 0.75, NULL, NULL, NULL, 3.0, 4.0, 0, 1, 1, 2)",
        (json.dumps({"x": 0.75, "kind": 0}),),
    )
    con.executemany(
        "INSERT INTO reports (study_id, number, step, value) VALUES (1, ?, ?, ?)",
        [(0, 0, 0.5), (0, 1, 0.25), (1, 0, 0.75)],
    )
    if version >= 2:
        con.execute(
            "UPDATE trials SET schedule = ? WHERE number = 1", (json.dumps([[None, {"x": 0.75, "kind": 0}, None]]),)
        )
        con.execute("INSERT INTO checkpoints VALUES (1, 1, ?, 5.0)", (b"state",))
    con.commit()
    con.close()


@pytest.mark.parametrize("version", sorted(HISTORY))
async def test_a_file_of_an_earlier_version_is_migrated_and_its_study_comes_through(
    tmp_path: Path, version: int
) -> None:
    path = tmp_path / f"v{version}.db"
    make_old_file(path, version)
    storage = SQLiteStorage(f"sqlite:///{path}")

    summary = await storage.summary("old")
    assert (summary.direction, summary.created, dict(summary.settings)) == ("minimize", 50.0, {})
    assert summary.counts == {"complete": 1, "paused": 1}
    records = await storage.load("old", space=SPACE)
    assert [(r.number, r.state, r.value, r.values) for r in records] == [
        (0, hpt.TrialState.COMPLETE, 0.25, None),
        (1, hpt.TrialState.PAUSED, 0.75, None),
    ]
    assert dict(records[0].params) == {"x": 0.25, "kind": "b"} and dict(records[0].user_attrs) == {"note": "kept"}
    assert dict(records[0].reports) == {0: 0.5, 1: 0.25} and dict(records[1].reports) == {0: 0.75}
    assert records[1].retry_of == 0
    if version >= 2:
        assert records[1].schedule[0].params == {"x": 0.75, "kind": "a"}
        assert await storage.checkpoint("old", 1) == b"state"
    else:
        assert records[1].schedule == () and await storage.checkpoint("old", 1) is None

    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        con.close()

    # The migrated file takes the new fields: settings on reopen, every objective's value.
    session = await storage.open("old", direction="minimize", space=SPACE, settings={"seed": 5})
    assert [r.number for r in session.history] == [0, 1]
    assert dict(session.settings) == {"seed": 5}
    number = await session.reserve()
    assert number == 2
    record = hpt.TrialRecord(number, hpt.TrialState.RUNNING, {"x": 0.5, "kind": "a"}, started=6.0)
    await session.trial_created(record)
    await session.trial_reported(number, 0, 1.0)
    await session.trial_ended(
        hpt.TrialRecord(
            number, hpt.TrialState.COMPLETE, record.params, value=1.0, values=(1.0,), started=6.0, ended=7.0
        )
    )
    await session.close()
    loaded = await storage.load("old", space=SPACE)
    assert loaded[2].values == (1.0,) and dict(loaded[2].reports) == {0: 1.0}
    assert dict((await storage.summary("old")).settings) == {"seed": 5}


async def test_a_file_the_schema_3_release_wrote_keeps_its_values_and_takes_constraints(tmp_path: Path) -> None:
    path = tmp_path / "schema3.db"
    path.write_bytes(SCHEMA3_FILE.read_bytes())
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(3,)]
    finally:
        con.close()
    url = f"sqlite:///{path}"
    loaded = await hpt.load_study_async(url, "mo", SPACE)
    assert loaded.directions == ("minimize", "maximize")
    assert [t.values for t in loaded.trials] == [(0.269, 0.928), (0.342, 0.883), (0.565, 0.68)]
    assert all(t.constraints is None and t.feasible for t in loaded.trials)
    assert [len(t.report_values) for t in loaded.trials] == [1, 1, 1]
    assert [t.number for t in loaded.best_trials] == [0]  # (0.269, 0.928) dominates the other two
    assert [round(t.value, 4) for t in (await hpt.load_study_async(url, "one", SPACE)).trials] == [0.8357, 0.9006]

    # Resumed with constraints: the new column takes them, the old trials keep theirs unset.
    async def constrained(trial: hpt.Trial) -> tuple[float, float]:
        trial.set_constraints([trial.params["x"] - 0.5])
        return trial.params["x"], 1.0 - trial.params["x"]

    result = await hpt.Tuner(
        constrained,
        SPACE,
        directions=["minimize", "maximize"],
        storage=url,
        study="mo",
        max_trials=8,
        loggers=[],
        strategy="random",
    ).run()
    assert [t.constraints is None for t in result.trials] == [True] * 3 + [False] * 5
    again = await hpt.load_study_async(url, "mo", SPACE)
    assert [t.constraints for t in again.trials] == [t.constraints for t in result.trials]
    assert all(t.feasible for t in again.best_trials)
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        con.close()


async def test_migrating_twice_changes_nothing_and_a_new_file_gets_every_step(tmp_path: Path) -> None:
    path = tmp_path / "v1.db"
    make_old_file(path, 1)
    storage = SQLiteStorage(f"sqlite:///{path}")
    await storage.studies()
    await storage.studies()
    fresh = SQLiteStorage(f"sqlite:///{tmp_path / 'new.db'}")
    session = await fresh.open("s", direction="minimize", space=SPACE)
    await session.close()

    def layout(p: Path) -> dict[str, list[str]]:
        con = sqlite3.connect(p)
        try:
            tables = [r[0] for r in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
            return {t: sorted(r[1] for r in con.execute(f"PRAGMA table_info({t})")) for t in sorted(tables)}
        finally:
            con.close()

    assert layout(path) == layout(tmp_path / "new.db")
    con = sqlite3.connect(path)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        con.close()


async def test_a_file_of_a_newer_version_is_refused_with_an_hpt_error(tmp_path: Path) -> None:
    path = tmp_path / "future.db"
    make_old_file(path, 2)
    con = sqlite3.connect(path)
    con.execute("UPDATE schema_version SET version = ?, written_by = 'hpt-async 9.9'", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    before = path.read_bytes()
    storage = SQLiteStorage(f"sqlite:///{path}")
    with pytest.raises(StorageFileError, match=r"newer hpt-async \(hpt-async 9.9") as caught:
        await storage.open("old", direction="minimize", space=SPACE)
    assert isinstance(caught.value, HptError)
    with pytest.raises(HptError, match="upgrade hpt-async"):
        await storage.load("old")
    assert path.read_bytes() == before
