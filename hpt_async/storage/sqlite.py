"""``storage="sqlite:///tuning.db"``: studies in one SQLite file, shared by processes.

URLs: ``sqlite:///relative/path.db`` (relative to the working directory when
the storage is made), ``sqlite:////absolute/path.db``; options as a query
string, e.g. ``sqlite:///tuning.db?synchronous=full&lease=30``:

``synchronous``
    ``normal`` (default) or ``full``.  The file is always in WAL mode.
    With ``normal`` a committed trial survives the death of the process
    (SIGKILL included); with ``full`` the commit of each trial's end is
    also flushed to the disk (one fsync, which flushes every earlier commit
    with it) before the tuner hears of it, so finished trials survive a
    power loss too.
``sync``
    Seconds between the tuner's maintenance calls (heartbeat, recovery of
    lost trials, refresh of other processes' trials); default 1.
``lease``
    Seconds after its last heartbeat that a session is presumed dead and its
    running trials LOST; default 5 (at least twice ``sync``).  Given alone,
    ``sync`` becomes a third of it when the default would not fit.
``timeout``
    Seconds an operation keeps retrying while other processes hold the
    database locked before it fails; default 60.

Every session (one per running tuner) has its own aiosqlite connection.
Writes are single statements or short ``BEGIN IMMEDIATE`` transactions;
"database is locked" answers are retried with back-off within ``timeout``.
The short statements of a trial's path (its number, its RUNNING record, its
reports, its end) run on the event loop's own thread, on that connection,
when nothing else of it is queued: handing each to the connection's thread
and back cost more than running it.  What may take long (reading many
trials, checkpoint blobs, the fsync of ``synchronous=full``, checkpoints of
the WAL) runs in the connection's thread.
Values, configurations, schedules and user attributes are stored as JSON
(never pickled); checkpoints are BLOBs of the ``checkpoints`` table, one per
trial; a Choice is stored as its index into the space's values, and the
study keeps the space's description so that readers without the space can
still show what each index means.  The storage needs the asyncio backend of
anyio (aiosqlite does).
"""

from __future__ import annotations

import json
import logging
import math
import os
import random
import socket
import sqlite3
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, quote, unquote

import anyio

from ..contracts.storage import (
    SUMMARY_ERROR_CHARS,
    Direction,
    Storage,
    StudyNotFound,
    StudyReader,
    StudySession,
    StudySummary,
    TrialSummary,
    check_direction,
    merge_settings,
)
from ..exceptions import MAX_STEP, HptError, ReportStepError
from ..hookspecs import hookimpl
from ..space import Space
from ..trial import TrialRecord
from . import migrations
from ._rows import (
    _COLUMNS,
    _LOST_ERROR,
    _STUDY_SUMMARY,
    _Codec,
    _dump_direction,
    _dump_values,
    _dumps,
    _group_reports,
    _load_direction,
    _loads,
    _record,
    _records,
    _report_rows,
    _Reports,
    _study_summaries,
    _timing,
    _trial_row,
    _trial_summaries,
    _warn_end_not_stored,
    _warn_malformed,
)
from .migrations import chain

if TYPE_CHECKING:  # aiosqlite is imported when the first connection opens
    import aiosqlite

__all__ = [
    "MIGRATIONS",
    "READABLE_FROM",
    "SCHEMA_VERSION",
    "ReadOnlyStorageError",
    "SQLiteStorage",
    "StorageBusyError",
    "StorageFileError",
    "parse_sqlite_url",
]

log = logging.getLogger("hpt_async")

T = TypeVar("T")

_MAGIC = b"SQLite format 3\x00"
_OPTIONS = ("synchronous", "sync", "lease", "timeout")
# Placeholders per IN (...) list, well below SQLite's limit on bound parameters.
_CHUNK = 500
# Writes of a connection between two checkpoints of the WAL, its own in place of SQLite's automatic ones:
# about 1,000 pages, as SQLite's (a write of a trial's path changes about three), so that what a power loss
# may take with synchronous=normal (the commits since the last checkpoint) stays what it was.
_CHECKPOINT_EVERY = 350

# The states whose trials use up a unit of a study's budget (StudySession.reserve_within), as an SQL list.
_UNIT_STATES = "('running', 'complete', 'pruned', 'failed', 'paused')"
# The reservation of the trial a trigger on trials sees (by the session that created it).
_RESERVED_NEW = (
    "SELECT 1 FROM reservations r WHERE r.study_id = NEW.study_id AND r.session = NEW.session AND r.number = NEW.number"
)
# Give back the units of a session's reservations never used (no trial has their number), then drop its rows.
_RECLAIM = (
    "UPDATE studies SET used = used - (SELECT COUNT(*) FROM reservations r WHERE r.study_id = ? AND r.session = ?"
    " AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.study_id = r.study_id AND t.number = r.number)) WHERE id = ?"
)
_DROP_RESERVATIONS = "DELETE FROM reservations WHERE study_id = ? AND session = ?"

# The schema: SQLite's statements for each step of the one migration chain (hpt_async.storage.migrations);
# version 0 is a new, empty file.  A file is brought to the latest version by running the steps after its
# own, in order, in one transaction.  A change of the layout appends a step there and here (and never edits
# an earlier one: files that ran it exist).
_STEPS: dict[int, tuple[str, ...]] = {
    # 1: the first layout: studies, the sessions holding leases, trials, their reports.
    1: (
        """
        CREATE TABLE schema_version (
            version INTEGER NOT NULL,
            written_by TEXT NOT NULL,
            created REAL NOT NULL
        )
        """,
        """
        CREATE TABLE studies (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            name TEXT NOT NULL UNIQUE,
            direction TEXT NOT NULL CHECK (direction IN ('minimize', 'maximize')),
            space TEXT NOT NULL,
            created REAL NOT NULL,
            next_number INTEGER NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE sessions (
            id INTEGER PRIMARY KEY AUTOINCREMENT,
            study_id INTEGER NOT NULL,
            host TEXT NOT NULL,
            pid INTEGER NOT NULL,
            started REAL NOT NULL,
            heartbeat REAL NOT NULL,
            expires REAL NOT NULL
        )
        """,
        """
        CREATE TABLE trials (
            study_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            state TEXT NOT NULL,
            params TEXT NOT NULL,
            value REAL,
            user_attrs TEXT,
            error TEXT,
            traceback TEXT,
            started REAL NOT NULL,
            ended REAL,
            retry_of INTEGER,
            session INTEGER NOT NULL,
            writer INTEGER NOT NULL,
            seq INTEGER NOT NULL,
            PRIMARY KEY (study_id, number)
        ) WITHOUT ROWID
        """,
        # seq: the study's change counter, raised on every write of a trial or of its reports.
        "CREATE INDEX trials_by_seq ON trials (study_id, seq)",
        "CREATE INDEX trials_running ON trials (study_id, session) WHERE state = 'running'",
        """
        CREATE TABLE reports (
            study_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            step INTEGER NOT NULL,
            value REAL,
            PRIMARY KEY (study_id, number, step)
        ) WITHOUT ROWID
        """,
        """
        CREATE TRIGGER reports_touch_trial AFTER INSERT ON reports BEGIN
            UPDATE trials
               SET seq = (SELECT MAX(seq) + 1 FROM trials WHERE study_id = NEW.study_id), writer = session
             WHERE study_id = NEW.study_id AND number = NEW.number;
        END
        """,
    ),
    # 2: schedules of hyperparameters that change while a trial runs, and checkpoints.
    2: (
        "ALTER TABLE trials ADD COLUMN schedule TEXT",
        """
        CREATE TABLE checkpoints (
            study_id INTEGER NOT NULL,
            number INTEGER NOT NULL,
            data BLOB NOT NULL,
            written REAL NOT NULL,
            PRIMARY KEY (study_id, number)
        ) WITHOUT ROWID
        """,
    ),
    # 3: a study's settings (JSON), the directions of a study with several objectives (JSON list;
    # studies.direction then holds the first), and every objective's value of a trial and of a report
    # that gave several (JSON lists).
    3: (
        "ALTER TABLE studies ADD COLUMN settings TEXT",
        "ALTER TABLE studies ADD COLUMN directions TEXT",
        "ALTER TABLE trials ADD COLUMN objective_values TEXT",
        "ALTER TABLE reports ADD COLUMN objective_values TEXT",
    ),
    # 4: a trial's constraint values (JSON list; NULL when it set none).
    4: ("ALTER TABLE trials ADD COLUMN constraints TEXT",),
    # 5: exactness of a shared study.  studies.used counts the units of the study's budget in use: trials
    # running, complete, pruned, failed or paused, and numbers reserved and not yet created.  A reservation
    # adds its unit when it is handed out (with the number, in one statement) and leaves a row in
    # reservations, by session; the trial created with that number then changes nothing (the triggers below
    # fire only when the count changes, so the hot path writes no extra page), and the session clears its
    # rows of created trials at its heartbeats.  The unit of a reservation never used goes back when it is
    # released, when its session closes, or when another session finds the session dead.  trials.claim is
    # the key of a configuration that runs once in the study (grid points); retries are found by retry_of.
    5: (
        "ALTER TABLE studies ADD COLUMN used INTEGER NOT NULL DEFAULT 0",
        "ALTER TABLE studies ADD COLUMN reserver INTEGER",
        "ALTER TABLE studies ADD COLUMN budget INTEGER",
        "ALTER TABLE trials ADD COLUMN claim TEXT",
        """
        CREATE TABLE reservations (
            study_id INTEGER NOT NULL,
            session INTEGER NOT NULL,
            number INTEGER NOT NULL,
            PRIMARY KEY (study_id, session, number)
        ) WITHOUT ROWID
        """,
        "CREATE INDEX trials_by_claim ON trials (study_id, claim) WHERE claim IS NOT NULL",
        "CREATE INDEX trials_by_retry ON trials (study_id, retry_of) WHERE retry_of IS NOT NULL",
        f"""
        UPDATE studies SET used = (SELECT COUNT(*) FROM trials t WHERE t.study_id = studies.id
                                   AND t.state IN {_UNIT_STATES})
        """,
        f"""
        CREATE TRIGGER trials_use_insert AFTER INSERT ON trials
        WHEN (NEW.state IN {_UNIT_STATES}) != EXISTS ({_RESERVED_NEW}) BEGIN
            UPDATE studies SET used = used + (NEW.state IN {_UNIT_STATES}) - EXISTS ({_RESERVED_NEW})
             WHERE id = NEW.study_id;
        END
        """,
        # A session taken for dead (its lease ran out while it was alive) lost its reservations, whose units
        # others may have taken since: a trial it then creates without one is not stored while the budget is
        # used up, so that the study never exceeds it.
        f"""
        CREATE TRIGGER trials_within_budget BEFORE INSERT ON trials
        WHEN NEW.state IN {_UNIT_STATES} AND NOT EXISTS ({_RESERVED_NEW})
         AND NOT EXISTS (SELECT 1 FROM trials t WHERE t.study_id = NEW.study_id AND t.number = NEW.number)
         AND (SELECT budget IS NOT NULL AND used >= budget FROM studies WHERE id = NEW.study_id) BEGIN
            SELECT RAISE(IGNORE);
        END
        """,
        f"""
        CREATE TRIGGER trials_use_update AFTER UPDATE OF state ON trials
        WHEN (OLD.state IN {_UNIT_STATES}) != (NEW.state IN {_UNIT_STATES}) BEGIN
            UPDATE studies SET used = used + (NEW.state IN {_UNIT_STATES}) - (OLD.state IN {_UNIT_STATES})
             WHERE id = NEW.study_id;
        END
        """,
        """
        CREATE TRIGGER studies_reserve AFTER UPDATE OF next_number ON studies
        WHEN NEW.reserver IS NOT NULL AND NEW.next_number = OLD.next_number + 1 BEGIN
            INSERT OR REPLACE INTO reservations (study_id, session, number)
            VALUES (NEW.id, NEW.reserver, OLD.next_number);
        END
        """,
    ),
    # 6, 7 and 8 changed PostgreSQL's layout only.
    6: (),
    7: (),
    8: (),
}
MIGRATIONS: tuple[tuple[str, ...], ...] = chain("SQLite", _STEPS)

#: The layout this version writes (the chain's last step); files with a higher number are refused.
SCHEMA_VERSION = migrations.SCHEMA_VERSION

#: The oldest layout a read-only storage reads as it is (reads use nothing that later migrations added).
READABLE_FROM = 4

# The tables a file of each schema version has.
_TABLES_V1 = frozenset({"schema_version", "studies", "sessions", "trials", "reports"})
_TABLES_V2 = _TABLES_V1 | {"checkpoints"}
_TABLES = _TABLES_V2 | {"reservations"}


def _tables_of(version: int) -> frozenset[str]:
    return _TABLES_V1 if version < 2 else _TABLES_V2 if version < 5 else _TABLES


_NEXT_SEQ = "(SELECT COALESCE(MAX(seq), 0) + 1 FROM trials WHERE study_id = ?)"
_INSERT_TRIAL = (
    "INSERT INTO trials (study_id, number, state, params, value, user_attrs, error, traceback, started, ended,"
    f" retry_of, schedule, objective_values, constraints, session, writer, seq)"
    f" VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, {_NEXT_SEQ})"
)
_UPSERT_TRIAL = (
    _INSERT_TRIAL + " ON CONFLICT (study_id, number) DO UPDATE SET state = excluded.state,"
    " params = excluded.params, value = excluded.value, user_attrs = excluded.user_attrs,"
    " error = excluded.error, traceback = excluded.traceback, started = excluded.started,"
    " ended = excluded.ended, retry_of = excluded.retry_of, schedule = excluded.schedule,"
    " objective_values = excluded.objective_values, constraints = excluded.constraints,"
    " writer = excluded.writer, seq = excluded.seq"
    # A trial another session marked LOST stays LOST (its retry runs it): a late end would count it twice.
    " WHERE trials.state != 'lost' RETURNING 1"
)
_INSERT_REPORT = (
    "INSERT OR REPLACE INTO reports (study_id, number, step, value, objective_values) VALUES (?, ?, ?, ?, ?)"
)
_SELECT_REPORTS = "SELECT number, step, value, objective_values FROM reports"
# RUNNING trials of this study whose session is gone or whose lease ran out (not the caller's own).
_ORPHANED = (
    "study_id = ? AND state = 'running' AND session != ? AND NOT EXISTS "
    "(SELECT 1 FROM sessions s WHERE s.id = trials.session AND s.expires >= ?)"
)


class StorageFileError(HptError, ValueError):
    """The database file cannot be used: it is not SQLite, not hpt-async's,
    written by a newer hpt-async, or it cannot be created.  The file is left
    exactly as it was."""


class ReadOnlyStorageError(HptError, PermissionError):
    """A storage opened read-only was asked to write (open a study to tune it, delete or rename one)."""


class StorageBusyError(HptError, RuntimeError):
    """Other processes kept the database locked for longer than ``timeout``."""


# -- URLs -----------------------------------------------------------------------


def parse_sqlite_url(url: str) -> tuple[str, dict[str, str]]:
    """``(path, options)`` of a ``sqlite:///...`` URL; ``ValueError`` says what is wrong."""
    if not isinstance(url, str) or not url.startswith("sqlite:"):
        raise ValueError(f"an SQLite storage URL starts with 'sqlite:///', got {url!r}")
    rest = url[len("sqlite:") :]
    if not rest.startswith("///"):
        raise ValueError(
            f"malformed SQLite URL {url!r}: use 'sqlite:///relative/path.db' or 'sqlite:////absolute/path.db'"
        )
    rest, _, query = rest[3:].partition("?")
    path = unquote(rest)
    if not path or path.endswith("/"):
        raise ValueError(f"SQLite URL {url!r} names no database file")
    if path == ":memory:" or path.startswith("file:"):
        raise ValueError(
            f"SQLite URL {url!r}: an in-memory or URI database cannot be shared by sessions; "
            "use storage='memory' for trials kept in this process only"
        )
    options: dict[str, str] = {}
    if query:
        try:
            pairs = parse_qsl(query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError(f"SQLite URL {url!r} has a malformed query string {query!r}") from None
        for key, value in pairs:
            if key not in _OPTIONS:
                raise ValueError(f"unknown sqlite option {key!r} in {url!r}; options are {', '.join(_OPTIONS)}")
            if key in options:
                raise ValueError(f"sqlite option {key!r} is given twice in {url!r}")
            options[key] = value
    return path, options


def _is_busy(exc: BaseException) -> bool:
    code = getattr(exc, "sqlite_errorcode", None)
    if isinstance(code, int):
        return code & 0xFF in (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
    text = str(exc)
    return "locked" in text or "busy" in text


async def _open_connection(path: str, *, uri: bool = False) -> aiosqlite.Connection:
    """An aiosqlite connection whose worker thread does not keep the interpreter alive.

    aiosqlite runs each connection in a thread that the interpreter waits
    for at exit; a session whose ``close()`` is never awaited (a task
    abandoned mid-run, an exception that skipped the cleanup) would then
    keep the process alive forever.  Its thread is made a daemon, so the
    process can exit (an unclosed connection is then like a killed
    process: SQLite keeps every committed write, and the session's lease
    expires).  The connect itself is shielded from cancellation, so that a
    cancelled open never leaves a started thread behind without a handle
    to close it.
    """
    import aiosqlite

    db = aiosqlite.connect(path, timeout=0, isolation_level=None, uri=uri, check_same_thread=False)
    thread = getattr(db, "_thread", None)
    if thread is not None and not thread.is_alive():
        thread.daemon = True
    with anyio.CancelScope(shield=True):
        return await db


# -- the connection -------------------------------------------------------------------


def _stamp(path: str) -> tuple[int, int, int] | None:
    """The (mtime, size, inode) of the file at ``path``, or ``None`` when it is gone."""
    try:
        st = os.stat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def _raw_connection(db: aiosqlite.Connection) -> sqlite3.Connection | None:
    """The sqlite3 connection under aiosqlite's ``db`` when its thread can also run our functions, else None.

    Both are aiosqlite's own (``_conn``, ``_execute``, in every version
    since 0.16): should a later version lack them, statements all go
    through its thread as they did before.
    """
    raw = getattr(db, "_conn", None)
    if not isinstance(raw, sqlite3.Connection) or not callable(getattr(db, "_execute", None)):
        return None
    return raw


class _Inline:
    """What transaction bodies call on a connection (``execute``, ``execute_fetchall``,
    ``executemany``, as aiosqlite's), run at once on the caller's thread."""

    __slots__ = ("_raw",)

    def __init__(self, raw: sqlite3.Connection) -> None:
        self._raw = raw

    async def execute(self, sql: str, params: Sequence[Any] = ()) -> sqlite3.Cursor:
        return self._raw.execute(sql, params)

    async def execute_fetchall(self, sql: str, params: Sequence[Any] = ()) -> list[Any]:
        return self._raw.execute(sql, params).fetchall()

    async def executemany(self, sql: str, rows: Iterable[Sequence[Any]]) -> sqlite3.Cursor:
        return self._raw.executemany(sql, rows)


class _Connection:
    """One aiosqlite connection: retries on lock contention, exclusive sections, short statements inline.

    The connection's thread runs statements in the order they are queued,
    and the tasks of one tuner queue them concurrently.  A transaction (or a
    commit flushed with ``synchronous=FULL``) is an *exclusive section*:
    while it runs, other statements of this connection wait at a gate, so
    that none lands inside it (to be committed late, or rolled back with it).
    Statements queued before the section starts run before it.

    Once :meth:`enable_inline` has run (a writable connection in WAL mode),
    the short statements of a trial's path (``inline=True``: a handful of
    rows found by key) run on the event loop's own thread, on the same
    SQLite connection, when nothing is queued to the connection's thread
    and no section is open; otherwise they wait for both, so that the order
    of statements is kept.  Handing a statement to the thread and back
    costs more than running it (two thread switches, each a wait for the
    scheduler on a busy machine).  Such a statement never waits for a lock
    (the connection has no busy handler: "locked" is retried with back-off
    here) nor for the disk: commits in WAL mode with ``synchronous=NORMAL``
    do not fsync, and the connection's automatic checkpoints (which do) are
    turned off and run instead in the connection's thread after every
    :data:`_CHECKPOINT_EVERY` writes.
    """

    def __init__(self, db: aiosqlite.Connection, path: str, timeout: float, *, flush_ends: bool = False) -> None:
        self.db = db
        self.path = path
        self.timeout = timeout
        #: Commit trial ends with an fsync (``synchronous=FULL`` for that commit only).
        self.flush_ends = flush_ends
        self._section: anyio.Event | None = None
        self._sections = anyio.Lock()
        #: Opened read-only as immutable (no writer had the file open): blind to later writes.
        self.immutable = False
        #: The file's (mtime, size, inode) when an immutable connection was opened, to see that it changed.
        self.stamp: tuple[int, int, int] | None = None
        #: The sqlite3 connection under ``db``, used from the event loop's thread (None: never).
        self.raw: sqlite3.Connection | None = None
        # Calls handed to the connection's thread and not answered yet, and an event set when none is left.
        self._queued = 0
        self._drained: anyio.Event | None = None
        # Writes since the last checkpoint (counted once automatic checkpoints are off).
        self._writes = 0
        self._restart = False  # a checkpoint ran: the next write goes to the thread (see _runs_inline)

    async def enable_inline(self) -> bool:
        """Run short statements on the event loop's thread from now on, and checkpoint in the connection's.

        Needs aiosqlite's underlying sqlite3 connection (opened with
        ``check_same_thread=False``) and its call queue; without them (a
        future aiosqlite), every statement keeps going through the thread.
        """
        raw = _raw_connection(self.db)
        if raw is None:
            return False
        await self.fetch("PRAGMA wal_autocheckpoint = 0")
        self.raw = raw
        return True

    async def _gate(self) -> None:
        while self._section is not None:
            await self._section.wait()

    async def _drain(self) -> None:
        """Wait until nothing is queued to the connection's thread."""
        while self._queued:
            if self._drained is None:
                self._drained = anyio.Event()
            await self._drained.wait()

    async def _queue(self, call: Callable[[], Awaitable[T]]) -> T:
        """Await ``call()``, a call of the connection's thread, counted while it is queued.

        Shielded, so that the count is right (a cancelled caller's call
        still runs in the thread); the cancellation takes effect after it.
        """
        self._queued += 1
        try:
            with anyio.CancelScope(shield=True):
                result = await call()
        finally:
            self._queued -= 1
            if not self._queued and self._drained is not None:
                self._drained.set()
                self._drained = None
        await anyio.lowlevel.checkpoint_if_cancelled()
        return result

    async def _wrote(self) -> None:
        """Count a write; after every :data:`_CHECKPOINT_EVERY`, checkpoint the WAL in the connection's thread."""
        if self.raw is None:
            return
        self._writes += 1
        if self._writes >= _CHECKPOINT_EVERY:
            await self._checkpoint()

    async def _checkpoint(self) -> None:
        self._writes = 0
        await self._gate()
        try:
            # PASSIVE, as SQLite's automatic checkpoints: it waits for no reader or writer of other processes.
            await self._queue(lambda: self.db.execute_fetchall("PRAGMA wal_checkpoint(PASSIVE)"))
        except sqlite3.Error as exc:  # the next one tries again; until then the log only grows
            log.debug("study storage %s: WAL checkpoint failed: %s", self.path, exc)
        else:
            # The first write after a checkpoint may start the log over, which syncs its header to disk:
            # that write goes to the connection's thread, not the event loop's.
            self._restart = True

    def _runs_inline(self, sql: str | None = None) -> bool:
        """Whether an ``inline`` call may run on the event loop's thread now (see the class).

        Not the first write after a checkpoint, which may sync the log's
        header: that one goes to the thread, and the next ones inline again.
        """
        if self.raw is None:
            return False
        if self._restart and (sql is None or not sql.lstrip().upper().startswith("SELECT")):
            self._restart = False
            return False
        return True

    async def _retry(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        # The connection has no SQLite busy handler (whose waits start at 1 ms and hold the
        # connection's thread): a locked database is retried here, from 0.1 ms with jittered
        # back-off up to 10 ms, which shares the write lock well between processes.
        deadline: float | None = None
        delay = 0.0002
        while True:
            try:
                return await op()
            except sqlite3.OperationalError as exc:
                if not _is_busy(exc):
                    raise
                now = time.monotonic()
                if deadline is None:
                    deadline = now + self.timeout
                elif now >= deadline:
                    raise StorageBusyError(
                        f"the database {self.path} stayed locked by other processes for more than "
                        f"{self.timeout:g} s while trying to {what} (raise the 'timeout' option?)"
                    ) from exc
                await anyio.sleep(delay * (0.5 + random.random()))
                delay = min(delay * 1.5, 0.01)

    async def fetch(
        self, sql: str, params: Sequence[Any] = (), what: str = "read", *, inline: bool = False
    ) -> list[Any]:
        """All rows of one statement, which is its own transaction when it writes.

        With ``inline``, a short statement (see the class) runs on the event
        loop's thread when the connection allows it, without suspending when
        nothing is queued.  A caller cancelled before the statement ran
        leaves nothing done; one cancelled while the thread runs it is told
        after the statement took effect (a statement is atomic, and the
        thread runs the connection's statements in order).
        """
        raw = self.raw
        if inline and raw is not None and self._runs_inline(sql):
            # No suspension point when the statement runs at once (as with memory storage): the tuner's
            # workers yield when the event loop's heartbeat goes stale.
            if self._section is None and not self._queued:
                try:
                    rows = raw.execute(sql, params).fetchall()
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise
                else:
                    self._writes += 1
                    if self._writes >= _CHECKPOINT_EVERY:
                        await self._checkpoint()
                    return rows

            async def here() -> list[Any]:
                while self._section is not None or self._queued:
                    await self._gate()
                    await self._drain()
                return raw.execute(sql, params).fetchall()

            rows = await self._retry(here, what)
            await self._wrote()
            return rows
        db = self.db
        try:
            if self._section is None:
                try:
                    return await self._queue(lambda: db.execute_fetchall(sql, params))  # type: ignore[arg-type,return-value]
                except sqlite3.OperationalError as exc:
                    if not _is_busy(exc):
                        raise

            async def gated() -> list[Any]:
                await self._gate()
                return await self._queue(lambda: db.execute_fetchall(sql, params))  # type: ignore[arg-type,return-value]

            return await self._retry(gated, what)
        finally:
            await self._wrote()

    async def exclusive(self, op: Callable[[], Awaitable[T]], what: str) -> T:
        """Await ``op()`` alone on this connection, retried while the database is locked.

        Shielded from cancellation, so that a transaction is never left open
        (each attempt is short, and the retries are bounded by ``timeout``).
        """
        with anyio.CancelScope(shield=True):
            async with self._sections:
                self._section = anyio.Event()
                try:
                    return await self._retry(op, what)
                finally:
                    done, self._section = self._section, None
                    done.set()

    async def transaction(
        self,
        body: Callable[[Any], Awaitable[T]],
        what: str,
        *,
        write: bool = True,
        flush: bool = False,
        inline: bool = False,
    ) -> T:
        """Run ``body(db)`` in one transaction (``BEGIN IMMEDIATE`` when it writes), retried as a whole.

        With ``flush`` and :attr:`flush_ends`, the commit waits for an fsync.
        With ``inline`` (a short transaction: a few rows found by key), it
        runs on the event loop's thread when the connection allows it (see
        the class), once the statements queued to the thread have run;
        ``db`` then has the same ``execute``, ``execute_fetchall`` and
        ``executemany`` as an aiosqlite connection.
        """
        db = self.db
        begin = "BEGIN IMMEDIATE" if write else "BEGIN"
        flush = flush and self.flush_ends
        raw = self.raw
        if inline and raw is not None and not flush and (not write or self._runs_inline()):
            here = _Inline(raw)

            async def at_once() -> T:
                await self._drain()
                raw.execute(begin)
                try:
                    result = await body(here)
                    raw.execute("COMMIT")
                except BaseException:
                    try:
                        raw.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise
                return result

            try:
                return await self.exclusive(at_once, what)
            finally:
                if write:
                    await self._wrote()

        async def attempt() -> T:
            if flush:
                await db.execute("PRAGMA synchronous = FULL")
            try:
                await db.execute(begin)
                try:
                    result = await body(db)
                    await db.execute("COMMIT")
                except BaseException:
                    try:
                        await db.execute("ROLLBACK")
                    except sqlite3.Error:
                        pass
                    raise
            finally:
                if flush:
                    await db.execute("PRAGMA synchronous = NORMAL")
            return result

        async def queued() -> T:
            return await self._queue(attempt)

        try:
            return await self.exclusive(queued, what)
        finally:
            if write:
                await self._wrote()

    async def commit(self, sql: str, params: Sequence[Any], what: str) -> list[Any]:
        """One writing statement (its rows returned); with :attr:`flush_ends`, committed with an fsync first.

        The flushed commit is one call of the connection's thread (the
        fsync must not hold the event loop): ``synchronous`` raised to
        FULL, the statement, ``synchronous`` back to NORMAL.
        """
        if not self.flush_ends:
            return await self.fetch(sql, params, what, inline=True)
        db, raw = self.db, self.raw

        def flush_in_thread() -> list[Any]:
            assert raw is not None
            raw.execute("PRAGMA synchronous = FULL")
            try:
                return raw.execute(sql, params).fetchall()
            finally:
                raw.execute("PRAGMA synchronous = NORMAL")

        async def flushed() -> list[Any]:
            if raw is not None:
                return await self._queue(lambda: db._execute(flush_in_thread))  # type: ignore[attr-defined]
            await db.execute("PRAGMA synchronous = FULL")
            try:
                return list(await db.execute_fetchall(sql, params))
            finally:
                await db.execute("PRAGMA synchronous = NORMAL")

        try:
            return await self.exclusive(flushed, what)
        finally:
            await self._wrote()

    async def close(self) -> None:
        """Close the connection (its worker thread ends)."""
        self.raw = None
        with anyio.CancelScope(shield=True):
            await self.db.close()


# -- sessions ------------------------------------------------------------------------


class _SQLiteSession(StudySession):
    """One tuner's connection to one study in the file."""

    exact = True

    def __init__(
        self,
        conn: _Connection,
        study_id: int,
        sid: int,
        codec: _Codec,
        history: list[TrialRecord],
        cursor: int,
        sync_interval: float,
        lease: float,
    ) -> None:
        super().__init__(history)
        self.sync_interval = sync_interval
        self._conn = conn
        self._study_id = study_id
        self._sid = sid
        self._codec = codec
        self._cursor = cursor
        self._lease = lease
        self._reserved: set[int] = set()
        self._reported: dict[int, int] = {}
        self._closed = False

    @property
    def session_id(self) -> int:
        """This session's id in the file's ``sessions`` table."""
        return self._sid

    def _row(self, record: TrialRecord) -> tuple[Any, ...]:
        # The study id once more, for the change counter's subquery (_NEXT_SEQ).
        return (*_trial_row(self._study_id, self._sid, record, self._codec), self._study_id)

    async def reserve(self) -> int:
        number = await self.reserve_within(None)
        assert number is not None
        return number

    async def reserve_within(self, budget: int | None) -> int | None:
        # One statement: the budget check, the next number and its unit, and (by the studies_reserve trigger)
        # the reservation row of this session.
        study_id = self._study_id
        rows = await self._conn.fetch(
            "UPDATE studies SET next_number = next_number + 1, used = used + 1, reserver = ?, budget = ?"
            " WHERE id = ? AND (? IS NULL OR used < ?) RETURNING next_number - 1",
            (self._sid, budget, study_id, budget, budget),
            "reserve a trial number",
            inline=True,
        )
        if not rows:
            if budget is not None and await self._conn.fetch(
                "SELECT 1 FROM studies WHERE id = ?", (study_id,), inline=True
            ):
                return None
            raise StudyNotFound(f"the study was deleted from {self._conn.path} while this tuner ran")
        number = int(rows[0][0])
        self._reserved.add(number)
        return number

    async def release(self, number: int) -> None:
        if number not in self._reserved:
            return
        study_id, sid = self._study_id, self._sid

        async def body(db: aiosqlite.Connection) -> None:
            gone = await db.execute_fetchall(
                "DELETE FROM reservations WHERE study_id = ? AND session = ? AND number = ? AND NOT EXISTS"
                " (SELECT 1 FROM trials t WHERE t.study_id = ? AND t.number = ?) RETURNING number",
                (study_id, sid, number, study_id, number),
            )
            if gone:
                await db.execute("UPDATE studies SET used = used - 1 WHERE id = ?", (study_id,))

        await self._conn.transaction(body, "release a trial number", inline=True)
        self._reserved.discard(number)

    async def trial_created(self, record: TrialRecord) -> None:
        await self._conn.fetch(_INSERT_TRIAL, self._row(record), f"store trial {record.number}", inline=True)
        self._reserved.discard(record.number)

    async def trial_created_once(self, record: TrialRecord, key: str) -> bool:
        study_id, row = self._study_id, self._row(record)

        async def body(db: aiosqlite.Connection) -> bool:
            held = await db.execute_fetchall(
                "SELECT 1 FROM trials WHERE study_id = ? AND claim = ? AND state != 'cancelled' LIMIT 1",
                (study_id, key),
            )
            if held:
                return False
            await db.execute(_INSERT_TRIAL, row)
            await db.execute("UPDATE trials SET claim = ? WHERE study_id = ? AND number = ?", (key, study_id, row[1]))
            return True

        created = await self._conn.transaction(body, f"store trial {record.number}", inline=True)
        if created:
            self._reserved.discard(record.number)
        return created

    async def trial_created_retry(self, record: TrialRecord) -> bool:
        study_id, row, of, number = self._study_id, self._row(record), record.retry_of, record.number
        if of is None:
            raise ValueError(f"trial {number} retries no trial (its retry_of is None)")

        async def body(db: aiosqlite.Connection) -> bool:
            rows = await db.execute_fetchall(
                "SELECT state, claim FROM trials WHERE study_id = ? AND number = ?", (study_id, of)
            )
            if not rows or rows[0][0] not in ("lost", "failed"):
                return False
            if await db.execute_fetchall(
                "SELECT 1 FROM trials WHERE study_id = ? AND retry_of = ? LIMIT 1", (study_id, of)
            ):
                return False
            await db.execute(_INSERT_TRIAL, row)
            if rows[0][1] is not None:
                # The key moves to the retry: should the retry end CANCELLED, the configuration is free again.
                await db.execute(
                    "UPDATE trials SET claim = ? WHERE study_id = ? AND number = ?", (rows[0][1], study_id, number)
                )
                await db.execute("UPDATE trials SET claim = NULL WHERE study_id = ? AND number = ?", (study_id, of))
            await db.execute(
                "UPDATE OR REPLACE checkpoints SET number = ? WHERE study_id = ? AND number = ?",
                (number, study_id, of),
            )
            return True

        created = await self._conn.transaction(body, f"store trial {number}, the retry of trial {of}")
        if created:
            self._reserved.discard(number)
        return created

    async def trial_reported(
        self, number: int, step: int, value: float, values: tuple[float, ...] | None = None
    ) -> None:
        if not 0 <= step <= MAX_STEP:
            raise ReportStepError(f"trial {number}: report step {step} does not fit a signed 64-bit integer")
        stored = None if math.isnan(value) else value
        row = (self._study_id, number, step, stored, _dump_values(values))
        await self._conn.fetch(_INSERT_REPORT, row, "store a report", inline=True)
        self._reported[number] = self._reported.get(number, 0) + 1

    async def trial_ended(self, record: TrialRecord) -> None:
        row = self._row(record)
        number = record.number
        if len(record.reports) > self._reported.get(number, 0):
            # Reports that did not go through trial_reported: write them with the final record.
            reports = _report_rows(self._study_id, record)

            async def body(db: aiosqlite.Connection) -> list[Any]:
                await db.executemany(_INSERT_REPORT, reports)
                return list(await db.execute_fetchall(_UPSERT_TRIAL, row))

            stored = await self._conn.transaction(body, f"commit trial {number}", flush=True)
        else:
            stored = await self._conn.commit(_UPSERT_TRIAL, row, f"commit trial {number}")
        self._reserved.discard(number)
        self._reported.pop(number, None)
        if not stored:
            _warn_end_not_stored(self._conn.path, record)

    async def trial_resumed(self, record: TrialRecord) -> bool | TrialRecord:
        number, sid, study_id = record.number, self._sid, self._study_id
        # A trial that starts over (no checkpoint, so no reports kept) drops its stored reports.  One
        # resumed from a checkpoint keeps all of them: the record may be older than the stored rows
        # (another session sharing the study may have run it further since).
        starts_over = not record.reports

        async def body(db: aiosqlite.Connection) -> TrialRecord | None:
            # Only a PAUSED row is taken: two sessions resuming one trial, one wins.
            rows = await db.execute_fetchall(
                f"UPDATE trials SET state = 'running', value = NULL, ended = NULL, session = ?, writer = ?,"
                f" seq = {_NEXT_SEQ} WHERE study_id = ? AND number = ? AND state = 'paused' RETURNING {_COLUMNS}",
                (sid, sid, study_id, study_id, number),
            )
            if not rows:
                return None
            if starts_over:
                await db.execute("DELETE FROM reports WHERE study_id = ? AND number = ?", (study_id, number))
            reports = await _load_reports(db, study_id, [number])
            return _record(rows[0], reports.get(number), self._codec)

        stored = await self._conn.transaction(body, f"resume trial {number}")
        if stored is None:
            return False
        self._reported[number] = len(stored.reports)
        return stored

    async def put_checkpoint(self, number: int, data: bytes) -> None:
        await self._conn.fetch(
            "INSERT OR REPLACE INTO checkpoints (study_id, number, data, written) VALUES (?, ?, ?, ?)",
            (self._study_id, number, bytes(data), time.time()),
            f"store a checkpoint of trial {number}",
        )

    async def get_checkpoint(self, number: int) -> bytes | None:
        rows = await self._conn.fetch(
            "SELECT data FROM checkpoints WHERE study_id = ? AND number = ?",
            (self._study_id, number),
            f"read the checkpoint of trial {number}",
        )
        return bytes(rows[0][0]) if rows else None

    async def drop_checkpoint(self, number: int) -> None:
        await self._conn.fetch(
            "DELETE FROM checkpoints WHERE study_id = ? AND number = ?",
            (self._study_id, number),
            f"drop the checkpoint of trial {number}",
        )

    async def heartbeat(self) -> None:
        now = time.time()
        await self._conn.fetch(
            "INSERT INTO sessions (id, study_id, host, pid, started, heartbeat, expires) VALUES (?, ?, ?, ?, ?, ?, ?)"
            " ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat, expires = excluded.expires",
            (self._sid, self._study_id, socket.gethostname(), os.getpid(), now, now, now + self._lease),
            "renew the session's lease",
        )
        # The reservation rows of numbers this session has since used (their units now belong to the trials).
        await self._conn.fetch(
            "DELETE FROM reservations WHERE study_id = ? AND session = ? AND EXISTS"
            " (SELECT 1 FROM trials t WHERE t.study_id = reservations.study_id AND t.number = reservations.number)",
            (self._study_id, self._sid),
            "clear used reservations",
        )

    async def claim_lost(self) -> list[TrialRecord]:
        conn, study_id, sid = self._conn, self._study_id, self._sid
        now = time.time()
        # A cheap read first: most calls find nothing and take no write lock.
        if not await conn.fetch(
            f"SELECT 1 FROM trials WHERE {_ORPHANED} UNION ALL SELECT 1 FROM reservations r WHERE r.study_id = ?"
            " AND NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session AND s.expires >= ?) LIMIT 1",
            (study_id, sid, now, study_id, now),
        ):
            return []

        async def body(db: aiosqlite.Connection) -> list[TrialRecord]:
            now = time.time()
            rows = await db.execute_fetchall(
                f"UPDATE trials SET state = 'lost', error = ?, writer = ?, seq = {_NEXT_SEQ},"
                # The session's last heartbeat, never before the trial started (its lease may predate it).
                " ended = MAX(started, COALESCE((SELECT heartbeat FROM sessions s WHERE s.id = trials.session), ?))"
                f" WHERE {_ORPHANED} RETURNING {_COLUMNS}",
                (_LOST_ERROR, sid, study_id, now, study_id, sid, now),
            )
            # The units of reservations a dead session never used go back to the budget.
            dead = await db.execute_fetchall(
                "SELECT DISTINCT r.session FROM reservations r WHERE r.study_id = ? AND NOT EXISTS"
                " (SELECT 1 FROM sessions s WHERE s.id = r.session AND s.expires >= ?)",
                (study_id, now),
            )
            for (gone,) in dead:
                await db.execute(_RECLAIM, (study_id, gone, study_id))
                await db.execute(_DROP_RESERVATIONS, (study_id, gone))
            await db.execute("DELETE FROM sessions WHERE study_id = ? AND expires < ?", (study_id, now))
            numbers = sorted(int(r[0]) for r in rows)
            reports = await _load_reports(db, study_id, numbers)
            return [_record(r, reports.get(r[0]), self._codec) for r in sorted(rows, key=lambda r: r[0])]

        lost = await conn.transaction(body, "mark lost trials")
        if lost:
            log.warning(
                "study storage %s: %d trial(s) of a dead process marked LOST: %s",
                conn.path,
                len(lost),
                ", ".join(str(r.number) for r in lost),
            )
        return lost

    async def refresh(self) -> list[TrialRecord]:
        study_id, sid, cursor, codec = self._study_id, self._sid, self._cursor, self._codec

        async def body(db: aiosqlite.Connection) -> tuple[int, list[TrialRecord]]:
            # Not this session's own trials either: while it is alive to ask, it knows them best
            # (another session may have taken it for dead and marked one LOST).
            return await _changes(db, study_id, cursor, codec, but=sid)

        self._cursor, records = await self._conn.transaction(body, "read other sessions' trials", write=False)
        return records

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        study_id, sid = self._study_id, self._sid
        unused = sorted(self._reserved, reverse=True)

        async def body(db: aiosqlite.Connection) -> None:
            # Numbers reserved but never used go back when they are the last ones handed out.
            for number in unused:
                await db.execute(
                    "UPDATE studies SET next_number = ? WHERE id = ? AND next_number = ?",
                    (number, study_id, number + 1),
                )
            await db.execute(_RECLAIM, (study_id, sid, study_id))
            await db.execute(_DROP_RESERVATIONS, (study_id, sid))
            await db.execute("DELETE FROM sessions WHERE id = ?", (sid,))

        try:
            await self._conn.transaction(body, "close the session")
        finally:
            await self._conn.close()


#: Above this many rows, records are decoded in a worker thread, so that the event loop stays free.
_DECODE_IN_THREAD = 1000


async def _decode(
    rows: Sequence[Any], rep: Iterable[Sequence[Any]], codec: _Codec, bad: list[str]
) -> list[TrialRecord]:
    """The records of trial rows and their report rows; many are decoded off the event loop."""
    if len(rows) <= _DECODE_IN_THREAD:
        return _records(rows, _group_reports(rep, bad), codec, bad)

    def work() -> list[TrialRecord]:
        return _records(rows, _group_reports(rep, bad), codec, bad)

    return await anyio.to_thread.run_sync(work)


async def _load_reports(db: aiosqlite.Connection, study_id: int, numbers: list[int]) -> dict[int, _Reports]:
    rows: list[Any] = []
    for i in range(0, len(numbers), _CHUNK):
        chunk = numbers[i : i + _CHUNK]
        marks = ",".join("?" * len(chunk))
        rows.extend(
            await db.execute_fetchall(
                f"{_SELECT_REPORTS} WHERE study_id = ? AND number IN ({marks}) ORDER BY number, step",
                (study_id, *chunk),
            )
        )
    return _group_reports(rows)


async def _changes(
    db: aiosqlite.Connection, study_id: int, cursor: int, codec: _Codec, but: int | None = None
) -> tuple[int, list[TrialRecord]]:
    """``(new cursor, records)``: the study's trials written since change counter ``cursor``.

    Every write of a trial or of its reports raises the trial's ``seq`` above
    the study's highest, so the trials with ``seq > cursor`` are those that
    changed; asking costs one index lookup when none did.  With ``but``, the
    trials that session created or wrote last are left out.
    """
    top = (await db.execute_fetchall("SELECT MAX(seq) FROM trials WHERE study_id = ?", (study_id,)))[0][0]
    if top is None or top <= cursor:
        return cursor, []
    where = "study_id = ? AND seq > ? AND seq <= ?"
    args: tuple[Any, ...] = (study_id, cursor, top)
    if but is not None:
        where += " AND writer != ? AND session != ?"
        args += (but, but)
    rows = await db.execute_fetchall(f"SELECT {_COLUMNS} FROM trials WHERE {where} ORDER BY number", args)
    if not rows:
        return top, []
    rep = await db.execute_fetchall(
        f"{_SELECT_REPORTS} WHERE study_id = ? AND number IN "
        f"(SELECT number FROM trials WHERE {where}) ORDER BY number, step",
        (study_id, *args),
    )
    bad: list[str] = []
    records = await _decode(rows, rep, codec, bad)
    _warn_malformed(study_id, bad)
    return top, records


# Every trial's summary: its scalar columns and its configuration; the reports are counted by a second query.
_SELECT_SUMMARIES = (
    "SELECT number, state, value, objective_values, started, ended, constraints, params,"
    f" substr(error, 1, {SUMMARY_ERROR_CHARS}), retry_of FROM trials WHERE study_id = ? ORDER BY number"
)
# What a brief summary holds.
_SELECT_BRIEF = (
    "SELECT number, state, value, objective_values, started, ended, constraints FROM trials WHERE study_id = ?"
    " ORDER BY number"
)
_COUNT_REPORTS = "SELECT number, COUNT(*), MAX(step) FROM reports WHERE study_id = ? GROUP BY number"


def _decode_rows(rows: list[Any], rep: list[Any], codec: _Codec, bad: list[str]) -> list[TrialRecord]:
    """Records of trial rows and their report rows, ordered by number (run in a worker thread)."""
    rows.sort(key=lambda r: r[0])
    return _records(rows, _group_reports(rep, bad), codec, bad)


class _SQLiteReader(StudyReader):
    """Reads a study's changes through its own connection, by the trials' change counter."""

    def __init__(self, storage: SQLiteStorage, name: str, conn: _Connection, study_id: int, codec: _Codec) -> None:
        super().__init__(storage, name)
        self._conn: _Connection | None = conn
        self._study_id = study_id
        self._codec = codec
        self._cursor = 0

    async def _connection(self) -> _Connection:
        conn = self._conn
        if conn is None:
            raise RuntimeError("this study reader is closed")
        if conn.immutable and (os.path.exists(conn.path + "-wal") or _stamp(conn.path) != conn.stamp):
            # Opened read-only while no process had the file; one writes to it now, or wrote to it and closed
            # it since (its last close folded the log into the file): open it afresh to see those writes.
            fresh = await self._storage._reader()  # type: ignore[attr-defined]
            await conn.close()
            if fresh is None:
                self._conn = None
                raise StudyNotFound(f"the database file {conn.path} is gone")
            self._conn = conn = fresh
        return conn

    brief_summaries = True

    async def read_summaries(self, *, brief: bool = False) -> list[TrialSummary]:
        """Every trial's summary, read with a query of its columns alone and decoded in a worker thread."""
        conn = await self._connection()
        study_id = self._study_id

        async def body(db: aiosqlite.Connection) -> tuple[int, list[Any], list[Any] | None]:
            top = await db.execute_fetchall("SELECT COALESCE(MAX(seq), 0) FROM trials WHERE study_id = ?", (study_id,))
            rows = await db.execute_fetchall(_SELECT_BRIEF if brief else _SELECT_SUMMARIES, (study_id,))
            counts = None if brief else list(await db.execute_fetchall(_COUNT_REPORTS, (study_id,)))
            return int(top[0][0]), list(rows), counts

        cursor, rows, counts = await conn.transaction(body, f"summarise study {self._study!r}", write=False)
        bad: list[str] = []
        summaries = await anyio.to_thread.run_sync(_trial_summaries, rows, counts, self._codec, bad)
        _warn_malformed(study_id, bad)
        self._cursor = cursor
        return summaries

    async def read_trials(self, numbers: Iterable[int]) -> list[TrialRecord]:
        """The records of trials ``numbers``, read by number and decoded in a worker thread."""
        wanted = sorted(set(numbers))
        if not wanted:
            return []
        conn = await self._connection()
        study_id = self._study_id

        async def body(db: aiosqlite.Connection) -> tuple[list[Any], list[Any]]:
            rows: list[Any] = []
            rep: list[Any] = []
            for i in range(0, len(wanted), _CHUNK):
                chunk = wanted[i : i + _CHUNK]
                marks = ",".join("?" * len(chunk))
                rows.extend(
                    await db.execute_fetchall(
                        f"SELECT {_COLUMNS} FROM trials WHERE study_id = ? AND number IN ({marks})", (study_id, *chunk)
                    )
                )
                rep.extend(
                    await db.execute_fetchall(
                        f"{_SELECT_REPORTS} WHERE study_id = ? AND number IN ({marks}) ORDER BY number, step",
                        (study_id, *chunk),
                    )
                )
            return rows, rep

        rows, rep = await conn.transaction(body, f"read trials of study {self._study!r}", write=False)
        bad: list[str] = []
        records = await anyio.to_thread.run_sync(_decode_rows, rows, rep, self._codec, bad)
        _warn_malformed(study_id, bad)
        return records

    async def read(self) -> list[TrialRecord]:
        conn = await self._connection()
        study_id, cursor, codec = self._study_id, self._cursor, self._codec

        async def body(db: aiosqlite.Connection) -> tuple[int, list[TrialRecord]]:
            return await _changes(db, study_id, cursor, codec)

        self._cursor, records = await conn.transaction(body, f"read the changes of study {self._study!r}", write=False)
        return records

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            await conn.close()


async def _load_all(db: aiosqlite.Connection, study_id: int, codec: _Codec) -> tuple[int, list[TrialRecord]]:
    """``(max seq, every trial)`` of a study, read in the caller's transaction."""
    top = await db.execute_fetchall("SELECT COALESCE(MAX(seq), 0) FROM trials WHERE study_id = ?", (study_id,))
    rows = await db.execute_fetchall(f"SELECT {_COLUMNS} FROM trials WHERE study_id = ? ORDER BY number", (study_id,))
    rep = await db.execute_fetchall(f"{_SELECT_REPORTS} WHERE study_id = ? ORDER BY number, step", (study_id,))
    bad: list[str] = []
    records = await _decode(rows, rep, codec, bad)
    _warn_malformed(study_id, bad)
    return int(top[0][0]), records


# -- the storage ---------------------------------------------------------------------


class SQLiteStorage(Storage):
    """Studies in one SQLite file, durable and shared by processes on one machine.

    ``url`` is ``sqlite:///path.db`` with options in its query string (see
    the module docstring); keyword arguments override them.  Making the
    storage touches nothing: the file is checked, created or opened when a
    study is opened or an admin method runs.
    """

    name = "sqlite"
    durable = True

    def __init__(
        self,
        url: str,
        *,
        synchronous: str | None = None,
        sync: float | None = None,
        lease: float | None = None,
        timeout: float | None = None,
        read_only: bool = False,
    ) -> None:
        path, options = parse_sqlite_url(url)
        self.url = url
        self.read_only = bool(read_only)
        self.path = os.path.abspath(path)
        sync_text = options.get("synchronous", "normal") if synchronous is None else synchronous
        if not isinstance(sync_text, str) or sync_text.lower() not in ("normal", "full"):
            raise ValueError(f"sqlite option synchronous must be 'normal' or 'full', got {sync_text!r}")
        self.synchronous = sync_text.upper()
        self.sync_interval, self.lease, self.timeout = _timing("sqlite", options, sync, lease, timeout)

    def __repr__(self) -> str:
        return f"SQLiteStorage({self.url!r}{', read_only=True' if self.read_only else ''})"

    def as_read_only(self) -> SQLiteStorage:
        """This storage opened read-only (see :meth:`Storage.as_read_only`).

        It opens the file with SQLite's ``mode=ro`` and writes nothing: no
        ``-wal`` or ``-shm`` file is created (when the file has no ``-wal``
        beside it, no process has it open, and it is read as immutable;
        otherwise the running writers' ``-wal`` and ``-shm`` are read as
        they are), no journal mode is set, and the file is never migrated.
        A file of schema version 3 or later is read as it is; an older one
        is refused with :class:`StorageFileError` saying to open it once
        writable (any tuner on it, or ``hpt-async migrate``) to bring it
        up to date.  It works on a read-only file in a read-only directory.
        :meth:`open`, :meth:`delete` and :meth:`rename` raise
        :class:`ReadOnlyStorageError`.
        """
        if self.read_only:
            return self
        return SQLiteStorage(
            self.url, synchronous=self.synchronous, sync=self.sync_interval, lease=self.lease,
            timeout=self.timeout, read_only=True,
        )  # fmt: skip

    def _refuse_writes(self, what: str) -> None:
        if self.read_only:
            raise ReadOnlyStorageError(f"{self.path} is opened read-only: cannot {what}")

    # -- connecting --------------------------------------------------------------

    def _inspect(self, create: bool) -> str:
        """``"missing"``, ``"empty"`` or ``"sqlite"``; raises for files that must not be touched."""
        path = self.path
        if os.path.isdir(path):
            raise StorageFileError(f"{path} is a directory, not an SQLite database file")
        try:
            with open(path, "rb") as f:
                head = f.read(len(_MAGIC))
        except FileNotFoundError:
            if not create:
                return "missing"
            parent = os.path.dirname(path) or "."
            if not os.path.isdir(parent):
                raise StorageFileError(f"cannot create {path}: the directory {parent} does not exist") from None
            if not os.access(parent, os.W_OK | os.X_OK):
                raise StorageFileError(f"cannot create {path}: the directory {parent} is not writable") from None
            # Create the (empty) file here, so that a path SQLite could not open fails with a clear message.
            try:
                with open(path, "xb"):
                    pass
            except FileExistsError:
                pass  # another process made it meanwhile
            except OSError as exc:
                raise StorageFileError(f"cannot create {path}: {exc.strerror or exc}") from None
            return "empty"
        except PermissionError:
            raise StorageFileError(f"cannot read {path}: permission denied") from None
        if not head:
            return "empty"
        if head != _MAGIC:
            raise StorageFileError(f"{path} is not an SQLite database (it was left untouched)")
        if create and not os.access(path, os.W_OK):
            raise StorageFileError(f"{path} is not writable")
        return "sqlite"

    async def _connect(self, *, create: bool) -> _Connection | None:
        """A checked connection, or ``None`` when the file does not exist and ``create`` is false.

        With ``create``, a new or empty file gets the schema and WAL mode.
        A file that is not hpt-async's, or that a newer version wrote, is
        refused before anything is written to it.
        """
        kind = await anyio.to_thread.run_sync(self._inspect, create)
        if kind == "missing" and not create:
            return None
        if self.read_only:
            return await self._connect_read_only(kind)
        try:
            db = await _open_connection(self.path)
        except sqlite3.Error as exc:
            raise StorageFileError(f"cannot open {self.path}: {exc}") from exc
        conn = _Connection(db, self.path, self.timeout, flush_ends=self.synchronous == "FULL")
        try:
            tables = await self._tables(conn)
            version = await self._check_version(conn, tables) if tables else 0
            if create:
                # Commits wait for no fsync; with synchronous=full, trial ends are flushed one by one.
                await conn.fetch("PRAGMA synchronous = NORMAL")
                mode = await conn.fetch("PRAGMA journal_mode")
                if str(mode[0][0]).lower() != "wal":
                    mode = await conn.fetch("PRAGMA journal_mode = WAL", what="switch the database to WAL mode")
                if str(mode[0][0]).lower() == "wal":
                    await conn.enable_inline()
            if version < SCHEMA_VERSION and (tables or create):
                await self._migrate(conn)
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _connect_read_only(self, kind: str) -> _Connection | None:
        """A connection that writes nothing: ``mode=ro``, immutable when no process has the file open."""
        if kind == "empty":
            return None
        immutable = not os.path.exists(self.path + "-wal")
        uri = "file:" + quote(self.path) + "?mode=ro" + ("&immutable=1" if immutable else "")
        try:
            db = await _open_connection(uri, uri=True)
        except sqlite3.Error as exc:
            raise StorageFileError(f"cannot open {self.path} read-only: {exc}") from exc
        conn = _Connection(db, self.path, self.timeout)
        conn.immutable = immutable
        conn.stamp = _stamp(self.path) if immutable else None
        try:
            tables = await self._tables(conn)
            version = await self._check_version(conn, tables) if tables else SCHEMA_VERSION
            if version < READABLE_FROM:
                raise StorageFileError(
                    f"{self.path} has schema version {version}, older than this hpt-async reads without migrating "
                    f"({READABLE_FROM} to {SCHEMA_VERSION}); read-only commands never migrate a file: open it once "
                    "writable to bring it up to date (run any tuner on it, or 'hpt-async migrate'). "
                    "It was left untouched"
                )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def _tables(self, conn: _Connection) -> set[str]:
        try:
            rows = await conn.fetch("SELECT name FROM sqlite_master WHERE type = 'table'")
        except sqlite3.DatabaseError as exc:
            if isinstance(exc, sqlite3.OperationalError) and _is_busy(exc):
                raise
            raise StorageFileError(
                f"{self.path} is not a usable SQLite database ({exc}); it was left untouched"
            ) from exc
        return {r[0] for r in rows} - {"sqlite_sequence"}

    async def _check_version(self, conn: _Connection, tables: set[str]) -> int:
        if "schema_version" not in tables:
            raise StorageFileError(
                f"{self.path} is an SQLite database that hpt-async did not write "
                f"(tables: {', '.join(sorted(tables))}); it was left untouched"
            )
        rows = await conn.fetch("SELECT MAX(version), MAX(written_by) FROM schema_version")
        version, writer = rows[0]
        if not isinstance(version, int):
            raise StorageFileError(f"{self.path} has no schema version; it was left untouched")
        if version > SCHEMA_VERSION:
            raise StorageFileError(
                f"{self.path} was written by a newer hpt-async ({writer}, schema version {version}); this one "
                f"reads schema version {SCHEMA_VERSION} at most: upgrade hpt-async (the file was left untouched)"
            )
        missing = _tables_of(version) - tables
        if missing:
            raise StorageFileError(
                f"{self.path} lacks the table(s) {', '.join(sorted(missing))}; it was left untouched"
            )
        return version

    async def _migrate(self, conn: _Connection) -> None:
        """Run the migrations the file lacks, in order, in one transaction.

        Another process may be creating or migrating the file at the same
        time: the version is read again inside the (write-locked)
        transaction, so that each step runs once.
        """
        from .. import __version__

        async def body(db: aiosqlite.Connection) -> tuple[int, int]:
            known = await db.execute_fetchall(
                "SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'schema_version'"
            )
            version = 0
            if known:
                rows = await db.execute_fetchall("SELECT MAX(version), MAX(written_by) FROM schema_version")
                version = rows[0][0] if isinstance(rows[0][0], int) else 0
                if version > SCHEMA_VERSION:
                    raise StorageFileError(
                        f"{self.path} was just upgraded by a newer hpt-async ({rows[0][1]}, schema version "
                        f"{version}); this one reads schema version {SCHEMA_VERSION} at most: upgrade hpt-async"
                    )
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await db.execute(statement)
            writer = f"hpt-async {__version__}"
            if version == 0:
                await db.execute(
                    "INSERT INTO schema_version (version, written_by, created) VALUES (?, ?, ?)",
                    (SCHEMA_VERSION, writer, time.time()),
                )
            elif version < SCHEMA_VERSION:
                await db.execute("UPDATE schema_version SET version = ?, written_by = ?", (SCHEMA_VERSION, writer))
            return version, SCHEMA_VERSION

        old, new = await conn.transaction(body, f"bring the schema to version {SCHEMA_VERSION}")
        if 0 < old < new:
            log.info("study storage %s: migrated from schema version %d to %d", self.path, old, new)

    async def _reader(self) -> _Connection | None:
        return await self._connect(create=False)

    async def migrate(self) -> tuple[int, int]:
        """Bring the file's schema up to date: ``(version before, version now)``.

        ``FileNotFoundError`` when there is no file; a read-only storage
        raises :class:`ReadOnlyStorageError`.  A tuner opening a study does
        the same on its way.
        """
        self._refuse_writes("migrate its schema")
        kind = await anyio.to_thread.run_sync(self._inspect, False)
        if kind == "missing":
            raise FileNotFoundError(f"no database file at {self.path}")
        before = 0
        if kind == "sqlite":
            probe = await _open_connection(self.path)
            try:
                tables = await self._tables(_Connection(probe, self.path, self.timeout))
                if tables:
                    before = await self._check_version(_Connection(probe, self.path, self.timeout), tables)
            finally:
                await probe.close()
        conn = await self._connect(create=True)
        assert conn is not None
        await conn.close()
        return before, SCHEMA_VERSION

    # -- the contract ------------------------------------------------------------

    async def open(
        self,
        study: str,
        *,
        direction: Direction | Sequence[str],
        space: Space,
        settings: Mapping[str, Any] | None = None,
    ) -> StudySession:
        self._refuse_writes(f"open study {study!r} to tune it")
        if not isinstance(study, str) or not study:
            raise ValueError(f"a study name is a non-empty string, got {study!r}")
        direction = check_direction(direction)
        merge_settings(None, settings)  # a bad mapping fails before the file is touched
        conn = await self._connect(create=True)
        assert conn is not None
        try:
            description = space.describe()
            space_text = _dumps(description)
            lease = self.lease

            first, directions = _dump_direction(direction)

            async def register(db: aiosqlite.Connection) -> tuple[int, int, dict[str, Any]]:
                now = time.time()
                rows = await db.execute_fetchall(
                    "SELECT id, direction, directions, space, settings FROM studies WHERE name = ?", (study,)
                )
                if rows:
                    study_id, stored_first, stored_directions, stored_space, stored_settings = rows[0]
                    stored_direction = _load_direction(stored_first, stored_directions)
                    if stored_direction != direction:
                        raise ValueError(
                            f"study {study!r} in {self.path} was created with direction {stored_direction!r}, "
                            f"not {direction!r}"
                        )
                    diffs = space.differences(json.loads(stored_space))
                    if diffs:
                        raise ValueError(
                            f"study {study!r} in {self.path} was created with another space: " + "; ".join(diffs)
                        )
                    old = _loads(stored_settings) if stored_settings else {}
                    kept = merge_settings(old, settings)
                    if kept != old:
                        await db.execute("UPDATE studies SET settings = ? WHERE id = ?", (_dumps(kept), study_id))
                else:
                    kept = merge_settings(None, settings)
                    cur = await db.execute(
                        "INSERT INTO studies (name, direction, directions, space, created, settings)"
                        " VALUES (?, ?, ?, ?, ?, ?)",
                        (study, first, directions, space_text, now, _dumps(kept) if kept else None),
                    )
                    study_id = cur.lastrowid
                cur = await db.execute(
                    "INSERT INTO sessions (study_id, host, pid, started, heartbeat, expires) VALUES (?, ?, ?, ?, ?, ?)",
                    (study_id, socket.gethostname(), os.getpid(), now, now, now + lease),
                )
                return int(study_id), int(cur.lastrowid), kept  # type: ignore[arg-type]

            study_id, sid, kept = await conn.transaction(register, f"open study {study!r}")
            codec = _Codec(space, description)

            async def read(db: aiosqlite.Connection) -> tuple[int, list[TrialRecord]]:
                return await _load_all(db, study_id, codec)

            cursor, history = await conn.transaction(read, f"read study {study!r}", write=False)
        except BaseException:
            await conn.close()
            raise
        session = _SQLiteSession(conn, study_id, sid, codec, history, cursor, self.sync_interval, self.lease)
        session.settings = MappingProxyType(kept)
        return session

    async def load(self, study: str, *, space: Space | None = None) -> list[TrialRecord]:
        conn = await self._reader()
        if conn is None:
            return []
        try:

            async def read(db: aiosqlite.Connection) -> list[TrialRecord]:
                if not await self._has_schema(db):
                    return []
                rows = await db.execute_fetchall("SELECT id, space FROM studies WHERE name = ?", (study,))
                if not rows:
                    return []
                study_id, space_text = rows[0]
                description = json.loads(space_text)
                if space is not None:
                    diffs = space.differences(description)
                    if diffs:
                        raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
                return (await _load_all(db, study_id, _Codec(space, description)))[1]

            return await conn.transaction(read, f"read study {study!r}", write=False)
        finally:
            await conn.close()

    async def watch(self, study: str, *, space: Space | None = None) -> StudyReader:
        """A reader of what changed in ``study``, with a connection of its own.

        :class:`StudyNotFound` when there is no such study (or no file).
        """
        conn = await self._reader()
        if conn is None:
            raise StudyNotFound(f"no study named {study!r}: there is no database file at {self.path}")
        try:

            async def find(db: aiosqlite.Connection) -> tuple[int, str]:
                rows = []
                if await self._has_schema(db):
                    rows = await db.execute_fetchall("SELECT id, space FROM studies WHERE name = ?", (study,))
                if not rows:
                    raise StudyNotFound(f"no study named {study!r} in {self.path}")
                return int(rows[0][0]), rows[0][1]

            study_id, space_text = await conn.transaction(find, f"find study {study!r}", write=False)
            description = json.loads(space_text)
            if space is not None:
                diffs = space.differences(description)
                if diffs:
                    raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        except BaseException:
            await conn.close()
            raise
        return _SQLiteReader(self, study, conn, study_id, _Codec(space, description))

    async def checkpoint(self, study: str, number: int) -> bytes | None:
        """The checkpoint the study still keeps for trial ``number``, or ``None``."""
        conn = await self._reader()
        if conn is None:
            return None
        try:
            rows = await conn.fetch(
                "SELECT c.data FROM checkpoints c JOIN studies s ON s.id = c.study_id"
                " WHERE s.name = ? AND c.number = ?",
                (study, number),
                "read a checkpoint",
            )
        finally:
            await conn.close()
        return bytes(rows[0][0]) if rows else None

    @staticmethod
    async def _has_schema(db: aiosqlite.Connection) -> bool:
        rows = await db.execute_fetchall("SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = 'studies'")
        return bool(rows)

    # -- administration ----------------------------------------------------------

    async def _summaries(self, name: str | None) -> list[StudySummary]:
        conn = await self._reader()
        if conn is None:
            raise FileNotFoundError(f"no database file at {self.path}")
        try:

            async def read(db: aiosqlite.Connection) -> list[StudySummary]:
                if not await self._has_schema(db):
                    return []
                where, args = ("WHERE s.name = ?", (name,)) if name is not None else ("", ())
                rows = await db.execute_fetchall(
                    f"{_STUDY_SUMMARY} {where} GROUP BY s.id, t.state ORDER BY s.name",
                    args,
                )
                return _study_summaries(rows)

            return await conn.transaction(read, "list studies", write=False)
        finally:
            await conn.close()

    async def studies(self) -> list[StudySummary]:
        """Every study in the file (``FileNotFoundError`` when there is no file)."""
        return await self._summaries(None)

    async def summary(self, study: str) -> StudySummary:
        try:
            found = await self._summaries(study)
        except FileNotFoundError:
            found = []
        if not found:
            raise StudyNotFound(f"no study named {study!r} in {self.path}")
        return found[0]

    async def _write(self, body: Callable[[aiosqlite.Connection], Awaitable[T]], what: str, study: str) -> T:
        self._refuse_writes(what)
        conn = await self._reader()
        if conn is None:
            raise StudyNotFound(f"no study named {study!r}: there is no database file at {self.path}")
        try:

            async def guarded(db: aiosqlite.Connection) -> T:
                if not await self._has_schema(db):
                    raise StudyNotFound(f"no study named {study!r} in {self.path}")
                return await body(db)

            return await conn.transaction(guarded, what)
        finally:
            await conn.close()

    async def delete(self, study: str) -> None:
        """Remove ``study`` with its trials; refused while a live tuner has it open."""

        async def body(db: aiosqlite.Connection) -> None:
            rows = await db.execute_fetchall("SELECT id FROM studies WHERE name = ?", (study,))
            if not rows:
                raise StudyNotFound(f"no study named {study!r} in {self.path}")
            study_id = rows[0][0]
            live = await db.execute_fetchall(
                "SELECT host, pid FROM sessions WHERE study_id = ? AND expires >= ?", (study_id, time.time())
            )
            if live:
                who = ", ".join(f"pid {pid} on {host}" for host, pid in live)
                raise ValueError(f"study {study!r} is open in a running tuner ({who}); stop it before deleting")
            for table in ("reports", "checkpoints", "reservations", "trials", "sessions"):
                await db.execute(f"DELETE FROM {table} WHERE study_id = ?", (study_id,))
            await db.execute("DELETE FROM studies WHERE id = ?", (study_id,))

        await self._write(body, f"delete study {study!r}", study)

    async def rename(self, old: str, new: str) -> None:
        if not isinstance(new, str) or not new:
            raise ValueError(f"a study name is a non-empty string, got {new!r}")

        async def body(db: aiosqlite.Connection) -> None:
            if await db.execute_fetchall("SELECT 1 FROM studies WHERE name = ?", (new,)):
                raise ValueError(f"a study named {new!r} exists already in {self.path}")
            cur = await db.execute("UPDATE studies SET name = ? WHERE name = ?", (new, old))
            if cur.rowcount != 1:
                raise StudyNotFound(f"no study named {old!r} in {self.path}")

        await self._write(body, f"rename study {old!r}", old)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``sqlite``."""
    register("storage", "sqlite", SQLiteStorage)
