"""``storage="postgresql://user@host:5432/db"``: studies on a PostgreSQL server, shared by hosts.

Needs the ``postgres`` extra (``pip install 'hpt-async[postgres]'``, which
installs asyncpg); asyncpg is imported when the first connection opens.
``postgres://`` URLs work too.  Options as a query string, e.g.
``postgresql://tuner@db:5432/tuning?lease=30&pool=8``:

``sync``
    Seconds between the tuner's maintenance calls (heartbeat, recovery of
    lost trials); default 1.  Other tuners' trials arrive sooner: each
    session LISTENs on its study's channel, and every trial created, ended,
    resumed or marked LOST sends a NOTIFY, so that a tuner refreshes at once.
``lease``
    Seconds after its last heartbeat that a session is presumed dead and
    its running trials LOST; default 5 (at least twice ``sync``).  Leases
    are timed by the server's clock, so hosts whose clocks differ agree.
``pool``
    Connections a session keeps open at most (a pool; default 8), plus
    one that listens for notifications.
``schema``
    The PostgreSQL schema (namespace) holding hpt-async's tables; default
    ``hpt_async``.  Several independent sets of studies can share one
    database under different schemas.
``timeout``
    Seconds to wait for a connection; default 60.

Every other query parameter (``sslmode``, ...) and the user, password,
host, port and database of the URL go to asyncpg as they are.

Durability: a trial's end (``trial_ended``) commits with
``synchronous_commit = on`` (the server's default): it is on disk before
the tuner hears of it.  Numbers handed out, trials created, reports and
heartbeats commit with ``synchronous_commit = off``: they are visible to
every session at once and survive the death of any client process, but a
crash of the *server* may forget the last fraction of a second of them; the
write-ahead log is sequential, so a durable end makes every earlier write
durable with it, and nothing forgotten can be half of a finished trial.

Round trips: a trial costs two on its tuner's path (storing it RUNNING, its
durable end); its number was reserved on another connection while the
previous end waited for the disk (see :class:`PostgresSession`).

The layout is made by the steps of hpt-async's one migration chain
(:mod:`hpt_async.storage.migrations`) from :data:`FIRST_STEP` on
(:data:`MIGRATIONS` holds their statements), run in one transaction under an advisory
lock, so that several processes starting at once migrate once.  Readers
(:meth:`PostgresStorage.watch` and each session's refresh) fetch only the
trials written since their previous read, in commit order: every write of
a trial stamps it with the writing transaction's id (``xid8``), a reader
keeps the snapshot of its previous read and asks for the rows whose
transaction that snapshot did not see, so that a transaction that started
early and committed late is never skipped.
"""

from __future__ import annotations

import asyncio
import logging
import math
import os
import socket
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, TypeVar
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

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
    _study_summaries,
    _timing,
    _trial_row,
    _trial_summaries,
    _warn_end_not_stored,
    _warn_malformed,
)
from .migrations import chain

if TYPE_CHECKING:  # asyncpg is imported when the first connection opens
    import asyncpg

__all__ = [
    "FIRST_STEP",
    "MIGRATIONS",
    "SCHEMA_VERSION",
    "PostgresReadOnlyError",
    "PostgresStorage",
    "PostgresStorageError",
    "parse_postgres_url",
]

log = logging.getLogger("hpt_async")

T = TypeVar("T")

DEFAULT_POOL = 8
DEFAULT_SCHEMA = "hpt_async"

_OPTIONS = ("sync", "lease", "pool", "schema", "timeout")
_SCHEMES = ("postgresql", "postgres")
_NOW = "extract(epoch FROM clock_timestamp())::float8"
# A key of pg_advisory_xact_lock for migrations (any fixed 64-bit number; "hpt-asyn" in ASCII).
_MIGRATION_LOCK = 0x6870742D6173796E


def _trial_state_function(create: str, payload: str, listeners: str = "") -> str:
    """The trigger function that counts a study's budget units and notifies listeners of a trial's change.

    ``payload`` is the SQL of the notification's text (step 6: the trial's number; step 7: the writing
    session and the number); ``listeners`` a further condition of notifying (step 8: another session
    of the study exists).
    """
    changed = "TG_OP = 'INSERT' OR OLD.state IS DISTINCT FROM NEW.state"
    if listeners:
        changed = f"({changed}) AND {listeners}"
    return _TRIAL_STATE.replace("{create}", create).replace("{payload}", payload).replace("{changed}", changed)


_TRIAL_STATE = """
        {create} FUNCTION hpt_trial_state() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            was integer := 0;
            now_counted integer := 0;
        BEGIN
            IF TG_OP = 'UPDATE' AND OLD.state NOT IN ('lost', 'cancelled') THEN
                was := 1;
            END IF;
            IF NEW.state NOT IN ('lost', 'cancelled') THEN
                now_counted := 1;
            END IF;
            IF was <> now_counted THEN
                UPDATE studies SET used = used + now_counted - was WHERE id = NEW.study_id;
            END IF;
            IF TG_OP = 'INSERT' THEN
                DELETE FROM reservations WHERE study_id = NEW.study_id AND number = NEW.number;
            END IF;
            IF {changed} THEN
                PERFORM pg_notify('hpt_' || TG_TABLE_SCHEMA || '_' || NEW.study_id, {payload});
            END IF;
            RETURN NULL;
        END $$
"""


#: The step of the migration chain that creates PostgreSQL's first layout: a new schema runs it and the
#: steps after it (steps 1-5 changed SQLite's layout, before PostgreSQL joined the chain).
FIRST_STEP = 6

# The schema: PostgreSQL's statements for its steps of the one migration chain
# (hpt_async.storage.migrations); version 0 is a schema with no tables.  A change of layout appends a step
# there and here, and never edits one that databases have run.
_STEPS: dict[int, tuple[str, ...]] = {
    # 6: studies, sessions with their leases, trials, reports, checkpoints, reservations; the indexes
    # every query uses; triggers that stamp each trial write with its transaction id, count the trials
    # that use the study's budget, and notify listeners.
    6: (
        "CREATE TABLE schema_version (version integer NOT NULL, written_by text NOT NULL, created float8 NOT NULL)",
        """
        CREATE TABLE studies (
            id bigserial PRIMARY KEY,
            name text NOT NULL UNIQUE,
            direction text NOT NULL CHECK (direction IN ('minimize', 'maximize')),
            directions text,
            space text NOT NULL,
            settings text,
            created float8 NOT NULL,
            next_number bigint NOT NULL DEFAULT 0,
            used bigint NOT NULL DEFAULT 0
        )
        """,
        """
        CREATE TABLE sessions (
            id bigserial PRIMARY KEY,
            study_id bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
            host text NOT NULL,
            pid integer NOT NULL,
            started float8 NOT NULL,
            heartbeat float8 NOT NULL,
            expires float8 NOT NULL
        )
        """,
        "CREATE INDEX sessions_by_study ON sessions (study_id, expires)",
        """
        CREATE TABLE trials (
            study_id bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
            number bigint NOT NULL,
            state text NOT NULL,
            params text NOT NULL,
            value float8,
            user_attrs text,
            error text,
            traceback text,
            started float8 NOT NULL,
            ended float8,
            retry_of bigint,
            schedule text,
            objective_values text,
            constraints text,
            key text,
            session bigint NOT NULL,
            writer bigint NOT NULL,
            xid xid8 NOT NULL DEFAULT pg_current_xact_id(),
            PRIMARY KEY (study_id, number)
        )
        """,
        "CREATE INDEX trials_by_xid ON trials (study_id, xid)",
        "CREATE INDEX trials_running ON trials (study_id, session) WHERE state = 'running'",
        "CREATE INDEX trials_by_key ON trials (study_id, key) WHERE key IS NOT NULL",
        "CREATE INDEX trials_by_retry_of ON trials (study_id, retry_of) WHERE retry_of IS NOT NULL",
        """
        CREATE TABLE reports (
            study_id bigint NOT NULL,
            number bigint NOT NULL,
            step bigint NOT NULL,
            value float8,
            objective_values text,
            PRIMARY KEY (study_id, number, step),
            FOREIGN KEY (study_id, number) REFERENCES trials (study_id, number) ON DELETE CASCADE
        )
        """,
        """
        CREATE TABLE checkpoints (
            study_id bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
            number bigint NOT NULL,
            data bytea NOT NULL,
            written float8 NOT NULL,
            PRIMARY KEY (study_id, number)
        )
        """,
        """
        CREATE TABLE reservations (
            study_id bigint NOT NULL REFERENCES studies (id) ON DELETE CASCADE,
            number bigint NOT NULL,
            session bigint NOT NULL,
            PRIMARY KEY (study_id, number)
        )
        """,
        # Every write of a trial row carries the id of the transaction that made it (readers use it).
        """
        CREATE FUNCTION hpt_stamp() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            NEW.xid := pg_current_xact_id();
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER trials_stamp BEFORE INSERT OR UPDATE ON trials FOR EACH ROW EXECUTE FUNCTION hpt_stamp()",
        # A report makes its trial a change too.
        """
        CREATE FUNCTION hpt_touch_trial() RETURNS trigger LANGUAGE plpgsql AS $$
        BEGIN
            UPDATE trials SET writer = session WHERE study_id = NEW.study_id AND number = NEW.number;
            RETURN NULL;
        END $$
        """,
        "CREATE TRIGGER reports_touch AFTER INSERT OR UPDATE ON reports"
        " FOR EACH ROW EXECUTE FUNCTION hpt_touch_trial()",
        # studies.used: the trials that count toward a budget (every state but LOST and CANCELLED);
        # a new trial ends the reservation of its number.  Listeners hear of every change of state.
        _trial_state_function("CREATE", "NEW.number::text"),
        "CREATE TRIGGER trials_state AFTER INSERT OR UPDATE OF state ON trials"
        " FOR EACH ROW EXECUTE FUNCTION hpt_trial_state()",
        # A number within the study's budget, as one call (see PostgresSession.reserve_within).
        f"""
        CREATE FUNCTION hpt_reserve_within(p_study bigint, p_session bigint, p_budget bigint)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            n bigint;
            u bigint;
            live bigint;
        BEGIN
            SELECT used INTO u FROM studies WHERE id = p_study FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'hpt-async: study % does not exist', p_study USING ERRCODE = 'P0002';
            END IF;
            IF p_budget IS NOT NULL THEN
                SELECT count(*) INTO live FROM reservations r JOIN sessions s ON s.id = r.session
                 WHERE r.study_id = p_study AND s.expires >= {_NOW};
                IF u + live >= p_budget THEN
                    RETURN NULL;
                END IF;
            END IF;
            UPDATE studies SET next_number = next_number + 1 WHERE id = p_study RETURNING next_number - 1 INTO n;
            INSERT INTO reservations (study_id, number, session) VALUES (p_study, n, p_session);
            RETURN n;
        END $$
        """,
    ),
    # 7: exactness when a live session is taken for dead (its lease ran out while it ran).  Every
    # reservation counts until it is used, released, or its session is found dead by claim_lost (which
    # deletes it), not only while its session's lease runs: a session that comes back cannot revive a
    # unit others took meanwhile.  studies.budget keeps the last budget asked for; a trial inserted
    # without a reservation while the budget is used up is not stored.
    7: (
        "ALTER TABLE studies ADD COLUMN budget bigint",
        """
        CREATE OR REPLACE FUNCTION hpt_reserve_within(p_study bigint, p_session bigint, p_budget bigint)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            n bigint;
            u bigint;
        BEGIN
            SELECT used INTO u FROM studies WHERE id = p_study FOR UPDATE;
            IF NOT FOUND THEN
                RAISE EXCEPTION 'hpt-async: study % does not exist', p_study USING ERRCODE = 'P0002';
            END IF;
            IF p_budget IS NOT NULL AND
               u + (SELECT count(*) FROM reservations WHERE study_id = p_study) >= p_budget THEN
                RETURN NULL;
            END IF;
            UPDATE studies SET next_number = next_number + 1, budget = COALESCE(p_budget, budget)
             WHERE id = p_study RETURNING next_number - 1 INTO n;
            INSERT INTO reservations (study_id, number, session) VALUES (p_study, n, p_session);
            RETURN n;
        END $$
        """,
        """
        CREATE FUNCTION hpt_within_budget() RETURNS trigger LANGUAGE plpgsql AS $$
        DECLARE
            b bigint;
            u bigint;
        BEGIN
            IF NEW.state IN ('lost', 'cancelled')
               OR EXISTS (SELECT 1 FROM reservations WHERE study_id = NEW.study_id AND number = NEW.number)
               OR EXISTS (SELECT 1 FROM trials WHERE study_id = NEW.study_id AND number = NEW.number) THEN
                RETURN NEW;
            END IF;
            SELECT budget, used INTO b, u FROM studies WHERE id = NEW.study_id FOR UPDATE;
            IF b IS NOT NULL AND u + (SELECT count(*) FROM reservations WHERE study_id = NEW.study_id) >= b THEN
                RETURN NULL;
            END IF;
            RETURN NEW;
        END $$
        """,
        "CREATE TRIGGER trials_within_budget BEFORE INSERT ON trials FOR EACH ROW EXECUTE FUNCTION hpt_within_budget()",
        # Notifications name the session that wrote ("<writer> <number>"), so that a tuner is not woken by its own.
        _trial_state_function("CREATE OR REPLACE", "NEW.writer || ' ' || NEW.number"),
    ),
    # 8: a number reserved ahead (see PostgresSession): as hpt_reserve_within, but only while the budget
    # keeps a unit for every session of the study (its own included: a tuner alone never reserves its last
    # number ahead), so that a number reserved ahead and not yet
    # asked for never keeps another session from the last units of a budget.  A change is notified only
    # when another session of the study exists to hear it (sessions listen from the moment they exist;
    # a tuner alone spends nothing on notifications, and its durable ends no longer queue behind the
    # server-wide lock a notifying commit holds until its flush).
    8: (
        _trial_state_function(
            "CREATE OR REPLACE",
            "NEW.writer || ' ' || NEW.number",
            "EXISTS (SELECT 1 FROM sessions WHERE study_id = NEW.study_id AND id <> NEW.writer)",
        ),
        """
        CREATE OR REPLACE FUNCTION hpt_reserve_ahead(p_study bigint, p_session bigint, p_budget bigint)
        RETURNS bigint LANGUAGE plpgsql AS $$
        DECLARE
            n bigint;
            u bigint;
        BEGIN
            SELECT used INTO u FROM studies WHERE id = p_study FOR UPDATE;
            IF NOT FOUND THEN
                RETURN NULL;
            END IF;
            IF p_budget IS NOT NULL AND
               u + (SELECT count(*) FROM reservations WHERE study_id = p_study)
                 + (SELECT count(*) FROM sessions WHERE study_id = p_study) >= p_budget THEN
                RETURN NULL;
            END IF;
            UPDATE studies SET next_number = next_number + 1, budget = COALESCE(p_budget, budget)
             WHERE id = p_study RETURNING next_number - 1 INTO n;
            INSERT INTO reservations (study_id, number, session) VALUES (p_study, n, p_session);
            RETURN n;
        END $$
        """,
    ),
}
MIGRATIONS: tuple[tuple[str, ...], ...] = chain("PostgreSQL", _STEPS, first=FIRST_STEP)

#: The layout this version writes (the chain's last step); a database with a higher version is refused.
SCHEMA_VERSION = migrations.SCHEMA_VERSION

_TRIAL_VALUES = "$1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16, $17"
_INSERT_TRIAL = (
    "INSERT INTO trials (study_id, number, state, params, value, user_attrs, error, traceback, started, ended,"
    f" retry_of, schedule, objective_values, constraints, session, writer, key) VALUES ({_TRIAL_VALUES})"
)
# The end of a trial: committed with synchronous_commit on whatever the connection's default
# (set_config(..., true) lasts until the end of this statement's transaction).
_END_TRIAL = (
    "INSERT INTO trials (study_id, number, state, params, value, user_attrs, error, traceback, started, ended,"
    f" retry_of, schedule, objective_values, constraints, session, writer, key) SELECT {_TRIAL_VALUES}"
    " FROM (SELECT set_config('synchronous_commit', 'on', true)) AS durable"
    " ON CONFLICT (study_id, number) DO UPDATE SET state = excluded.state,"
    " params = excluded.params, value = excluded.value, user_attrs = excluded.user_attrs,"
    " error = excluded.error, traceback = excluded.traceback, started = excluded.started,"
    " ended = excluded.ended, retry_of = excluded.retry_of, schedule = excluded.schedule,"
    " objective_values = excluded.objective_values, constraints = excluded.constraints, writer = excluded.writer"
    # A trial another session marked LOST stays LOST (its retry runs it): a late end would count it twice.
    " WHERE trials.state <> 'lost' RETURNING 1"
)
_INSERT_REPORT = (
    "INSERT INTO reports (study_id, number, step, value, objective_values) VALUES ($1, $2, $3, $4, $5)"
    " ON CONFLICT (study_id, number, step) DO UPDATE SET value = excluded.value,"
    " objective_values = excluded.objective_values"
)
_SELECT_REPORTS = "SELECT number, step, value, objective_values FROM reports"
_ORPHANED = (
    "study_id = $1 AND state = 'running' AND session <> $2 AND NOT EXISTS "
    f"(SELECT 1 FROM sessions s WHERE s.id = trials.session AND s.expires >= {_NOW})"
)
# A reservation whose session is gone or whose lease ran out.
_DEAD = f"NOT EXISTS (SELECT 1 FROM sessions s WHERE s.id = r.session AND s.expires >= {_NOW})"
# Rows a reader has not seen: written by a transaction its previous snapshot did not see.
_UNSEEN = (
    "study_id = $1 AND xid >= pg_snapshot_xmin($2::pg_snapshot) AND NOT pg_visible_in_snapshot(xid, $2::pg_snapshot)"
)


class PostgresReadOnlyError(HptError, PermissionError):
    """A read-only PostgreSQL storage (:meth:`PostgresStorage.as_read_only`) was asked to write."""


class PostgresStorageError(HptError, RuntimeError):
    """The server cannot be used: unreachable, the schema is not hpt-async's or a newer
    hpt-async wrote it, or the ``postgres`` extra (asyncpg) is not installed."""


# -- URLs -----------------------------------------------------------------------


def parse_postgres_url(url: str) -> tuple[str, dict[str, str]]:
    """``(dsn, options)`` of a ``postgresql://`` URL: the URL asyncpg connects to, and hpt-async's options."""
    if not isinstance(url, str):
        raise ValueError(f"a PostgreSQL storage URL is a string, got {url!r}")
    parts = urlsplit(url)
    if parts.scheme not in _SCHEMES:
        raise ValueError(f"a PostgreSQL storage URL starts with 'postgresql://' or 'postgres://', got {url!r}")
    if not url.startswith(f"{parts.scheme}://"):
        raise ValueError(f"malformed PostgreSQL URL {url!r}: use 'postgresql://user@host:5432/database'")
    options: dict[str, str] = {}
    rest: list[tuple[str, str]] = []
    if parts.query:
        try:
            pairs = parse_qsl(parts.query, keep_blank_values=True, strict_parsing=True)
        except ValueError:
            raise ValueError(f"PostgreSQL URL {url!r} has a malformed query string {parts.query!r}") from None
        for key, value in pairs:
            if key in _OPTIONS:
                if key in options:
                    raise ValueError(f"postgresql option {key!r} is given twice in {url!r}")
                options[key] = value
            else:
                rest.append((key, value))
    schema = options.get("schema", DEFAULT_SCHEMA)
    if not schema or not schema.replace("_", "").isalnum() or not schema.isascii() or schema[0].isdigit():
        raise ValueError(f"postgresql option schema must be a plain identifier (letters, digits, _), got {schema!r}")
    try:
        parts.port  # noqa: B018 (raises ValueError for a malformed port)
    except ValueError:
        raise ValueError(f"PostgreSQL URL {url!r} has a malformed port") from None
    dsn = urlunsplit(("postgresql", parts.netloc, parts.path, urlencode(rest), parts.fragment))
    return dsn, options


def _redact(url: str) -> str:
    """``url`` without its password."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    netloc = parts.netloc.replace(f":{parts.password}@", ":***@", 1)
    return urlunsplit((parts.scheme, netloc, parts.path, parts.query, parts.fragment))


async def _keep_as_is(connection: asyncpg.Connection) -> None:
    """How a session's pool takes a connection back: as it is, without asyncpg's reset query.

    asyncpg resets a released connection with one more round trip
    (``RESET ALL; UNLISTEN *; CLOSE ALL; ...``), which doubled the round
    trips of every call.  A session's pooled connections keep no state of
    a session's to reset: settings are made per transaction
    (``set_config(..., true)``), advisory locks per transaction, nothing
    LISTENs on them (the listener has a connection of its own), no cursor
    outlives its call; an open transaction is still rolled back by asyncpg
    before this runs.
    """


def _import_asyncpg() -> Any:
    try:
        import asyncpg
    except ImportError:
        raise PostgresStorageError("the PostgreSQL storage needs asyncpg: pip install 'hpt-async[postgres]'") from None
    return asyncpg


# -- sessions ------------------------------------------------------------------------


class _Listener:
    """A connection LISTENing on a study's channel; :meth:`wait` returns at the next notification.

    Notifications come in bursts when many tuners share a study: :meth:`wait`
    returns at most once per :attr:`GAP` seconds, so that a burst costs one
    refresh, not one per trial.
    """

    #: Seconds between two returns of :meth:`wait` that report a notification.
    GAP = 0.05

    def __init__(self, session: int | None = None) -> None:
        self.conn: asyncpg.Connection | None = None
        self._event = anyio.Event()
        self._last = -math.inf
        #: Notifications of this session's own writes (payload ``"<session> <number>"``) do not wake it.
        self._own = f"{session} " if session is not None else None

    def _notified(self, connection: Any, pid: int, channel: str, payload: str) -> None:
        if self._own is not None and payload.startswith(self._own):
            return
        self._event.set()

    async def start(self, connect: Callable[[], Awaitable[asyncpg.Connection]], channel: str) -> None:
        self.conn = await connect()
        await self.conn.add_listener(channel, self._notified)

    async def wait(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for a notification since the previous wait; True when one came."""
        deadline = time.monotonic() + timeout
        with anyio.move_on_after(timeout):
            await self._event.wait()
        if not self._event.is_set():
            return False
        early = self._last + self.GAP - time.monotonic()
        if early > 0:  # gather the rest of a burst
            await anyio.sleep(min(early, max(deadline - time.monotonic(), 0.0)))
        self._event = anyio.Event()
        self._last = time.monotonic()
        return True

    async def close(self) -> None:
        conn, self.conn = self.conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                try:
                    await conn.close(timeout=5)
                except Exception:
                    conn.terminate()


_UNSET: Any = object()


class PostgresSession(StudySession):
    """One tuner's connection pool to one study on the server.

    A number reserved ahead: while a trial's end waits for the server's
    disk (:meth:`trial_ended` commits durably), the session reserves the
    next trial number on another connection, within the budget of its last
    :meth:`reserve_within`, so that the tuner's next :meth:`reserve_within`
    costs no round trip.  Such a number is a reservation like any other
    (it counts toward the budget, so exactness holds); it is taken only
    while the budget keeps a unit for every session of the study (this
    one included, so the last number of a budget is never taken ahead),
    and one this session has not asked for within :attr:`sync_interval` is
    given back at the next :meth:`heartbeat` (and at :meth:`close`).
    """

    #: Every call that decides what counts toward a budget runs in one transaction on the server.
    exact = True

    def __init__(
        self,
        storage: PostgresStorage,
        pool: asyncpg.Pool,
        listener: _Listener,
        study_id: int,
        sid: int,
        codec: _Codec,
        history: list[TrialRecord],
        snapshot: str,
    ) -> None:
        super().__init__(history)
        self.sync_interval = storage.sync_interval
        self._storage = storage
        self._pool = pool
        self._listener = listener
        self._study_id = study_id
        self._sid = sid
        self._codec = codec
        self._snapshot = snapshot
        self._reserved: set[int] = set()
        self._reported: dict[int, int] = {}
        self._closed = False
        # The number reserved ahead (see the class docstring): a task giving it (None: none could be), the
        # budget it was reserved within, and when it was reserved.
        self._ahead: asyncio.Task[int | None] | None = None
        self._ahead_task: asyncio.Task[int | None] | None = None  # the last one started, taken or not
        self._ahead_budget: int | None = None
        self._ahead_at = 0.0
        self._budget: int | None = _UNSET  # the budget of the last reserve_within (_UNSET: none yet)
        # Two connections of the pool kept for the trial path (see _call, _ahead_number), when the pool
        # leaves at least one more for calls made meanwhile; a smaller pool runs every call through it.
        self._direct = storage.pool_size >= 3
        self._own: asyncpg.Connection | None = None
        self._side: asyncpg.Connection | None = None
        self._own_busy = not self._direct

    @property
    def session_id(self) -> int:
        """This session's id in the ``sessions`` table."""
        return self._sid

    def _row(self, record: TrialRecord, key: str | None = None) -> tuple[Any, ...]:
        return (*_trial_row(self._study_id, self._sid, record, self._codec), key)

    async def _call(self, what: str, op: Callable[[asyncpg.Connection], Awaitable[T]]) -> T:
        """``op(connection)``, shielded: a statement is never abandoned half way.

        The session keeps one connection of its pool for itself and runs a call there when no other call
        is (a tuner at concurrency 1: no pool to go through); calls made meanwhile take pooled connections
        (with a ``pool`` of 1 or 2, every call does, and no number is reserved ahead).
        """
        with anyio.CancelScope(shield=True):
            if not self._own_busy:
                self._own_busy = True
                try:
                    conn = self._own
                    if conn is None:
                        conn = self._own = await self._pool.acquire()
                    try:
                        return await op(conn)
                    except BaseException:
                        # It may be broken or mid-transaction: back to the pool, which resets or replaces it.
                        self._own = None
                        try:
                            await self._pool.release(conn)
                        except Exception:
                            conn.terminate()
                        raise
                finally:
                    self._own_busy = False
            async with self._pool.acquire() as conn:
                return await op(conn)

    async def reserve(self) -> int:
        number = await self.reserve_within(None)
        assert number is not None
        return number

    async def reserve_within(self, budget: int | None) -> int | None:
        """A new trial number, or ``None`` when the study's budget is used.

        One call on the server, under the study row's lock: the trials that
        count (every state but LOST and CANCELLED) plus the numbers live
        sessions reserved this way and have not used are compared with
        ``budget`` (``None``: no limit); a number handed out is recorded as
        this session's reservation until a trial takes it, :meth:`release`
        gives it back, or the session ends.
        """
        ahead = await self._take_ahead()
        self._budget = budget
        if ahead is not None:
            if budget is None or (self._ahead_budget is not None and self._ahead_budget <= budget):
                return ahead
            await self._give_back([ahead])  # reserved within a larger budget (or none)
        asyncpg = _import_asyncpg()
        try:
            number = await self._call(
                "reserve a trial number",
                lambda c: c.fetchval("SELECT hpt_reserve_within($1, $2, $3)", self._study_id, self._sid, budget),
            )
        except asyncpg.NoDataFoundError:
            raise StudyNotFound("the study was deleted from the server while this tuner ran") from None
        if number is None:
            return None
        self._reserved.add(int(number))
        return int(number)

    def _reserve_ahead(self) -> None:
        """Start reserving the next number on another connection (when none is, and a budget is known)."""
        budget = self._budget
        if self._ahead is not None or budget is _UNSET or self._closed or not self._direct:
            return
        last = self._ahead_task
        if last is not None and not last.done():  # taken, and still running: one at a time on its connection
            return
        self._ahead_budget = budget
        self._ahead = self._ahead_task = asyncio.get_running_loop().create_task(self._ahead_number(budget))

    async def _ahead_number(self, budget: int | None) -> int | None:
        # On a connection kept for this (one reservation ahead at a time): no pool to go through.
        c = self._side
        try:
            if c is None:
                c = self._side = await self._pool.acquire()
            number = await c.fetchval("SELECT hpt_reserve_ahead($1, $2, $3)", self._study_id, self._sid, budget)
        except Exception as exc:  # the next reserve_within asks the server itself, and reports errors
            log.debug("study storage %s: no number reserved ahead: %s", self._storage.label, exc)
            if c is not None:
                self._side = None
                try:
                    await self._pool.release(c)
                except Exception:
                    c.terminate()
            return None
        if number is None:
            return None
        self._ahead_at = time.monotonic()
        self._reserved.add(int(number))
        return int(number)

    async def _take_ahead(self) -> int | None:
        """The number reserved ahead, now this caller's to use or give back; ``None`` when there is none."""
        task, self._ahead = self._ahead, None
        if task is None:
            return None
        with anyio.CancelScope(shield=True):
            return await task

    async def _give_back(self, numbers: Iterable[int]) -> None:
        """End this session's reservations of ``numbers``; a number that is the last one handed out is
        handed out again next (one transaction)."""
        numbers = sorted(numbers, reverse=True)
        if not numbers:
            return
        study_id, sid = self._study_id, self._sid

        async def body(c: asyncpg.Connection) -> None:
            async with c.transaction():
                for number in numbers:
                    await c.execute(
                        "UPDATE studies SET next_number = $1 WHERE id = $2 AND next_number = $3",
                        number,
                        study_id,
                        number + 1,
                    )
                await c.execute(
                    "DELETE FROM reservations WHERE study_id = $1 AND number = ANY($2::bigint[]) AND session = $3",
                    study_id,
                    numbers,
                    sid,
                )

        await self._call("give back trial numbers", body)
        self._reserved.difference_update(numbers)

    async def release(self, number: int) -> None:
        """End this session's reservation of ``number`` (an unknown number is no error)."""
        await self._call(
            "release a number",
            lambda c: c.execute(
                "DELETE FROM reservations WHERE study_id = $1 AND number = $2 AND session = $3",
                self._study_id,
                number,
                self._sid,
            ),
        )

    async def trial_created(self, record: TrialRecord) -> None:
        row = self._row(record)
        await self._call(f"store trial {record.number}", lambda c: c.execute(_INSERT_TRIAL, *row))
        self._reserved.discard(record.number)

    async def trial_created_once(self, record: TrialRecord, key: str) -> bool:
        """Store ``record`` with ``key`` unless a trial of the study (not CANCELLED) has that key; one transaction."""
        row = self._row(record, key)

        async def body(c: asyncpg.Connection) -> bool:
            async with c.transaction():
                await c.execute("SELECT 1 FROM studies WHERE id = $1 FOR UPDATE", self._study_id)
                taken = await c.fetchval(
                    "SELECT 1 FROM trials WHERE study_id = $1 AND key = $2 AND state <> 'cancelled' LIMIT 1",
                    self._study_id,
                    key,
                )
                if taken:
                    return False
                await c.execute(_INSERT_TRIAL, *row)
                return True

        created = await self._call(f"store trial {record.number}", body)
        if created:
            self._reserved.discard(record.number)
        return created

    async def trial_created_retry(self, record: TrialRecord) -> bool:
        """Store ``record``, the retry of LOST or FAILED trial ``record.retry_of``, unless it has one.

        One transaction: the retry takes over the retried trial's key (which
        becomes NULL there), and its checkpoint moves to ``record.number``.  ``False`` (nothing stored)
        when that trial does not exist, is neither LOST nor FAILED, or
        another session retried it first.
        """
        of = record.retry_of
        if of is None:
            raise ValueError(f"trial {record.number} is not a retry (retry_of is None)")
        sid, number = self._study_id, record.number

        async def body(c: asyncpg.Connection) -> bool:
            async with c.transaction():
                await c.execute("SELECT 1 FROM studies WHERE id = $1 FOR UPDATE", sid)
                old = await c.fetchrow("SELECT state, key FROM trials WHERE study_id = $1 AND number = $2", sid, of)
                if old is None or old["state"] not in ("lost", "failed"):
                    return False
                if await c.fetchval("SELECT 1 FROM trials WHERE study_id = $1 AND retry_of = $2 LIMIT 1", sid, of):
                    return False
                await c.execute(_INSERT_TRIAL, *self._row(record, old["key"]))
                if old["key"] is not None:  # the retry takes the key over: a CANCELLED retry frees it
                    await c.execute("UPDATE trials SET key = NULL WHERE study_id = $1 AND number = $2", sid, of)
                moved = await c.fetchval("SELECT 1 FROM checkpoints WHERE study_id = $1 AND number = $2", sid, of)
                if moved:
                    await c.execute("DELETE FROM checkpoints WHERE study_id = $1 AND number = $2", sid, number)
                    await c.execute(
                        "UPDATE checkpoints SET number = $3 WHERE study_id = $1 AND number = $2", sid, of, number
                    )
                return True

        created = await self._call(f"store trial {number}", body)
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
        await self._call("store a report", lambda c: c.execute(_INSERT_REPORT, *row))
        self._reported[number] = self._reported.get(number, 0) + 1

    async def trial_ended(self, record: TrialRecord) -> None:
        row = self._row(record)
        number = record.number
        self._reserve_ahead()  # while the end waits for the disk
        if len(record.reports) > self._reported.get(number, 0):
            # Reports that did not go through trial_reported: written with the final record.
            reports = _report_rows(self._study_id, record)

            async def body(c: asyncpg.Connection) -> Any:
                async with c.transaction():
                    stored = await c.fetchval(_END_TRIAL, *row)
                    if stored:
                        await c.executemany(_INSERT_REPORT, reports)
                    return stored

            stored = await self._call(f"commit trial {number}", body)
        else:
            stored = await self._call(f"commit trial {number}", lambda c: c.fetchval(_END_TRIAL, *row))
        self._reserved.discard(number)
        self._reported.pop(number, None)
        if not stored:
            _warn_end_not_stored(self._storage.label, record)

    async def trial_resumed(self, record: TrialRecord) -> bool | TrialRecord:
        number, sid, study_id = record.number, self._sid, self._study_id
        starts_over = not record.reports

        async def body(c: asyncpg.Connection) -> TrialRecord | None:
            async with c.transaction():
                row = await c.fetchrow(
                    "UPDATE trials SET state = 'running', value = NULL, ended = NULL, session = $1, writer = $1"
                    f" WHERE study_id = $2 AND number = $3 AND state = 'paused' RETURNING {_COLUMNS}",
                    sid,
                    study_id,
                    number,
                )
                if row is None:
                    return None
                if starts_over:
                    await c.execute("DELETE FROM reports WHERE study_id = $1 AND number = $2", study_id, number)
                reports = _group_reports(
                    await c.fetch(
                        f"{_SELECT_REPORTS} WHERE study_id = $1 AND number = $2 ORDER BY step", study_id, number
                    )
                )
                return _record(row, reports.get(number), self._codec)

        stored = await self._call(f"resume trial {number}", body)
        if stored is None:
            return False
        self._reported[number] = len(stored.reports)
        return stored

    async def put_checkpoint(self, number: int, data: bytes) -> None:
        await self._call(
            f"store a checkpoint of trial {number}",
            lambda c: c.execute(
                "INSERT INTO checkpoints (study_id, number, data, written) VALUES ($1, $2, $3, $4)"
                " ON CONFLICT (study_id, number) DO UPDATE SET data = excluded.data, written = excluded.written",
                self._study_id,
                number,
                bytes(data),
                time.time(),
            ),
        )

    async def get_checkpoint(self, number: int) -> bytes | None:
        data = await self._call(
            f"read the checkpoint of trial {number}",
            lambda c: c.fetchval(
                "SELECT data FROM checkpoints WHERE study_id = $1 AND number = $2", self._study_id, number
            ),
        )
        return None if data is None else bytes(data)

    async def drop_checkpoint(self, number: int) -> None:
        await self._call(
            f"drop the checkpoint of trial {number}",
            lambda c: c.execute("DELETE FROM checkpoints WHERE study_id = $1 AND number = $2", self._study_id, number),
        )

    async def heartbeat(self) -> None:
        task = self._ahead
        if task is not None and task.done() and time.monotonic() - self._ahead_at > self.sync_interval:
            # Reserved ahead and not asked for since: given back, so that other sessions may use it.
            number = await self._take_ahead()
            if number is not None:
                await self._give_back([number])
        lease = self._storage.lease
        await self._call(
            "renew the session's lease",
            lambda c: c.execute(
                "INSERT INTO sessions (id, study_id, host, pid, started, heartbeat, expires)"
                f" VALUES ($1, $2, $3, $4, {_NOW}, {_NOW}, {_NOW} + $5)"
                " ON CONFLICT (id) DO UPDATE SET heartbeat = excluded.heartbeat, expires = excluded.expires",
                self._sid,
                self._study_id,
                socket.gethostname(),
                os.getpid(),
                lease,
            ),
        )

    async def claim_lost(self) -> list[TrialRecord]:
        study_id, sid = self._study_id, self._sid

        async def body(c: asyncpg.Connection) -> list[TrialRecord]:
            # A cheap read first: most calls find nothing.
            if not await c.fetchval(
                f"SELECT 1 FROM trials WHERE {_ORPHANED} UNION ALL SELECT 1 FROM reservations r"
                f" WHERE r.study_id = $1 AND {_DEAD} LIMIT 1",
                study_id,
                sid,
            ):
                return []
            async with c.transaction():
                # Two claimers: the second's UPDATE re-checks state = 'running' on the row the first
                # committed, so that each trial is claimed once.
                rows = await c.fetch(
                    "UPDATE trials SET state = 'lost', error = $3, writer = $2,"
                    " ended = GREATEST(started, COALESCE((SELECT heartbeat FROM sessions s"
                    f" WHERE s.id = trials.session), {_NOW}))"
                    f" WHERE {_ORPHANED} RETURNING {_COLUMNS}",
                    study_id,
                    sid,
                    _LOST_ERROR,
                )
                # The numbers a dead session reserved and never used go back to the budget.
                await c.execute(f"DELETE FROM reservations r WHERE r.study_id = $1 AND {_DEAD}", study_id)
                await c.execute(f"DELETE FROM sessions WHERE study_id = $1 AND expires < {_NOW}", study_id)
                numbers = sorted(int(r[0]) for r in rows)
                rep = await c.fetch(
                    f"{_SELECT_REPORTS} WHERE study_id = $1 AND number = ANY($2::bigint[]) ORDER BY number, step",
                    study_id,
                    numbers,
                )
                return _decode(study_id, sorted(rows, key=lambda r: r[0]), rep, self._codec)

        lost = await self._call("mark lost trials", body)
        if lost:
            log.warning(
                "study storage %s: %d trial(s) of a dead process marked LOST: %s",
                self._storage.label,
                len(lost),
                ", ".join(str(r.number) for r in lost),
            )
        return lost

    async def refresh(self) -> list[TrialRecord]:
        async def body(c: asyncpg.Connection) -> tuple[str, list[TrialRecord]]:
            return await _changes(c, self._study_id, self._snapshot, self._codec, but=self._sid)

        self._snapshot, records = await self._call("read other sessions' trials", body)
        return records

    async def wait_changed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` s for another session to create, end or resume a trial (a NOTIFY).

        True when one did since the previous wait; False when the time ran out.
        """
        return await self._listener.wait(timeout)

    async def close(self) -> None:
        if self._closed:
            return
        self._closed = True
        await self._take_ahead()  # a number reserved ahead is given back with the others
        last = self._ahead_task
        if last is not None:  # taken by a call that has not seen its end yet: its connection is released below
            with anyio.CancelScope(shield=True):
                await asyncio.wait([last])
        study_id, sid = self._study_id, self._sid
        unused = sorted(self._reserved, reverse=True)

        async def body(c: asyncpg.Connection) -> None:
            async with c.transaction():
                # Numbers reserved but never used go back when they are the last ones handed out.
                for number in unused:
                    await c.execute(
                        "UPDATE studies SET next_number = $1 WHERE id = $2 AND next_number = $3",
                        number,
                        study_id,
                        number + 1,
                    )
                await c.execute("DELETE FROM reservations WHERE session = $1", sid)
                await c.execute("DELETE FROM sessions WHERE id = $1", sid)

        try:
            await self._call("close the session", body)
        finally:
            with anyio.CancelScope(shield=True):
                await self._listener.close()
                kept = [c for c in (self._own, self._side) if c is not None]
                self._own = self._side = None
                try:
                    for conn in kept:
                        await self._pool.release(conn)
                    await self._pool.close()
                except Exception:
                    self._pool.terminate()


async def _changes(
    c: asyncpg.Connection, study_id: int, snapshot: str | None, codec: _Codec, but: int | None = None
) -> tuple[str, list[TrialRecord]]:
    """``(snapshot, records)``: the trials written by transactions that ``snapshot`` did not see.

    Runs in one REPEATABLE READ transaction whose snapshot is returned for
    the next call; ``snapshot=None`` reads every trial.  With ``but``, the
    trials that session created or wrote last are left out.
    """
    async with c.transaction(isolation="repeatable_read", readonly=True):
        now = await c.fetchval("SELECT pg_current_snapshot()")
        if snapshot is None:
            where, args = "study_id = $1", [study_id]
        else:
            where, args = _UNSEEN, [study_id, snapshot]
        if but is not None:
            where += f" AND writer <> ${len(args) + 1} AND session <> ${len(args) + 1}"
            args.append(but)
        rows = await c.fetch(f"SELECT {_COLUMNS} FROM trials WHERE {where} ORDER BY number", *args)
        if not rows:
            return now, []
        if snapshot is None and but is None:
            rep = await c.fetch(f"{_SELECT_REPORTS} WHERE study_id = $1 ORDER BY number, step", study_id)
        else:
            rep = await c.fetch(
                f"{_SELECT_REPORTS} WHERE study_id = $1 AND number = ANY($2::bigint[]) ORDER BY number, step",
                study_id,
                [r[0] for r in rows],
            )
    if len(rows) > _DECODE_IN_THREAD:
        return now, await anyio.to_thread.run_sync(_decode, study_id, rows, rep, codec)
    return now, _decode(study_id, rows, rep, codec)


#: Above this many rows, records are decoded in a worker thread, so that the event loop stays free.
_DECODE_IN_THREAD = 1000

# Every trial's summary (its reports counted by a second query), and what a brief summary holds.
_SELECT_SUMMARIES = (
    "SELECT number, state, value, objective_values, started, ended, constraints, params,"
    f" substr(error, 1, {SUMMARY_ERROR_CHARS}), retry_of FROM trials WHERE study_id = $1 ORDER BY number"
)
_SELECT_BRIEF = (
    "SELECT number, state, value, objective_values, started, ended, constraints FROM trials WHERE study_id = $1"
    " ORDER BY number"
)
_COUNT_REPORTS = "SELECT number, count(*), max(step) FROM reports WHERE study_id = $1 GROUP BY number"


def _decode(study_id: int, rows: Sequence[Any], rep: Sequence[Any], codec: _Codec) -> list[TrialRecord]:
    """Records of trial rows and their report rows; rows that do not decode are left out, with one warning."""
    bad: list[str] = []
    records = _records(rows, _group_reports(rep, bad), codec, bad)
    _warn_malformed(study_id, bad)
    return records


class _PostgresReader(StudyReader):
    """Reads a study's changes through a connection of its own, by transaction snapshots."""

    def __init__(
        self, storage: PostgresStorage, name: str, conn: asyncpg.Connection, study_id: int, codec: _Codec
    ) -> None:
        super().__init__(storage, name)
        self._conn: asyncpg.Connection | None = conn
        self._study_id = study_id
        self._codec = codec
        self._snapshot: str | None = None
        # One query at a time on the connection: the reads of changes and the reads of trials by number
        # may come from different tasks.
        self._lock = anyio.Lock()

    def _connection(self) -> asyncpg.Connection:
        if self._conn is None:
            raise RuntimeError("this study reader is closed")
        return self._conn

    async def read(self) -> list[TrialRecord]:
        conn = self._connection()
        with anyio.CancelScope(shield=True):
            async with self._lock:
                self._snapshot, records = await _changes(conn, self._study_id, self._snapshot, self._codec)
        return records

    brief_summaries = True

    async def read_summaries(self, *, brief: bool = False) -> list[TrialSummary]:
        """Every trial's summary, read with a query of its columns alone and decoded in a worker thread."""
        conn = self._connection()
        counts = None
        with anyio.CancelScope(shield=True):
            async with self._lock:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    now = await conn.fetchval("SELECT pg_current_snapshot()")
                    rows = await conn.fetch(_SELECT_BRIEF if brief else _SELECT_SUMMARIES, self._study_id)
                    if not brief:
                        counts = await conn.fetch(_COUNT_REPORTS, self._study_id)
        bad: list[str] = []
        summaries = await anyio.to_thread.run_sync(_trial_summaries, rows, counts, self._codec, bad)
        _warn_malformed(self._study_id, bad)
        self._snapshot = now
        return summaries

    async def read_trials(self, numbers: Iterable[int]) -> list[TrialRecord]:
        """The records of trials ``numbers``, read by number (decoded in a worker thread when many)."""
        wanted = sorted(set(numbers))
        if not wanted:
            return []
        conn = self._connection()
        with anyio.CancelScope(shield=True):
            async with self._lock:
                async with conn.transaction(isolation="repeatable_read", readonly=True):
                    rows = await conn.fetch(
                        f"SELECT {_COLUMNS} FROM trials WHERE study_id = $1 AND number = ANY($2::bigint[])"
                        " ORDER BY number",
                        self._study_id,
                        wanted,
                    )
                    rep = await conn.fetch(
                        f"{_SELECT_REPORTS} WHERE study_id = $1 AND number = ANY($2::bigint[]) ORDER BY number, step",
                        self._study_id,
                        wanted,
                    )
        if len(rows) > _DECODE_IN_THREAD:
            return await anyio.to_thread.run_sync(_decode, self._study_id, rows, rep, self._codec)
        return _decode(self._study_id, rows, rep, self._codec)

    async def close(self) -> None:
        conn, self._conn = self._conn, None
        if conn is not None:
            with anyio.CancelScope(shield=True):
                await conn.close()


# -- the storage ---------------------------------------------------------------------


class PostgresStorage(Storage):
    """Studies on a PostgreSQL server, durable and shared by processes on any number of hosts.

    ``url`` is ``postgresql://user:password@host:port/database`` with
    options in its query string (see the module docstring); keyword
    arguments override them.  Making the storage touches nothing: the server
    is reached when a study is opened or an admin method runs.
    """

    name = "postgresql"
    durable = True
    #: True for a storage made by :meth:`as_read_only`: it refuses open, delete and rename.
    read_only = False

    def __init__(
        self,
        url: str,
        *,
        sync: float | None = None,
        lease: float | None = None,
        pool: int | None = None,
        schema: str | None = None,
        timeout: float | None = None,
    ) -> None:
        dsn, options = parse_postgres_url(url)
        self.url = url
        self.dsn = dsn
        #: The URL without its password, for messages.
        self.label = _redact(url)
        self.schema = schema if schema is not None else options.get("schema", DEFAULT_SCHEMA)
        if schema is not None:
            parse_postgres_url(f"postgresql://x/y?schema={schema}")
        self.sync_interval, self.lease, self.timeout = _timing("postgresql", options, sync, lease, timeout)
        if pool is None:
            text = options.get("pool", str(DEFAULT_POOL))
            try:
                pool = int(text)
            except ValueError:
                raise ValueError(f"postgresql option pool={text!r} is not a whole number") from None
        if isinstance(pool, bool) or not isinstance(pool, int) or pool < 1:
            raise ValueError(f"postgresql option pool must be a whole number >= 1, got {pool!r}")
        self.pool_size = pool

    def __repr__(self) -> str:
        return f"PostgresStorage({self.label!r}{', read-only' if self.read_only else ''})"

    def as_read_only(self) -> PostgresStorage:
        """A copy that only reads: ``open``, ``delete``, ``rename`` and ``migrate`` raise
        :class:`PostgresReadOnlyError`; reading never creates or migrates anything (on any copy)."""
        import copy

        other = copy.copy(self)
        other.read_only = True
        return other

    def _refuse_if_read_only(self, what: str) -> None:
        if self.read_only:
            raise PostgresReadOnlyError(f"cannot {what}: the storage {self.label} was opened read-only")

    async def migrate(self) -> tuple[int, int]:
        """Bring the schema to :data:`SCHEMA_VERSION` now; ``(version before, version after)`` (0: none)."""
        self._refuse_if_read_only("migrate the schema")
        c = await self._connect()
        try:
            with anyio.CancelScope(shield=True):
                before = await self._schema_version(c) or 0
                await self._migrate(c)
        finally:
            with anyio.CancelScope(shield=True):
                await c.close()
        return before, SCHEMA_VERSION

    # -- connecting --------------------------------------------------------------

    def _settings(self, synchronous: str) -> dict[str, str]:
        settings = {"search_path": self.schema, "synchronous_commit": synchronous, "application_name": "hpt-async"}
        if self.read_only:
            # The server itself then refuses any write on this storage's connections (readers of the dashboard).
            settings["default_transaction_read_only"] = "on"
        return settings

    async def _connect(self, synchronous: str = "on") -> asyncpg.Connection:
        asyncpg = _import_asyncpg()
        try:
            with anyio.CancelScope(shield=True):
                return await asyncpg.connect(
                    self.dsn, timeout=self.timeout, server_settings=self._settings(synchronous)
                )
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            raise PostgresStorageError(f"cannot connect to the PostgreSQL server at {self.label}: {exc}") from exc

    async def _schema_version(self, c: asyncpg.Connection, *, recorded: bool = False) -> int | None:
        """The schema's version; ``None`` when hpt-async's schema does not exist.  Refuses foreign or newer ones.

        With ``recorded``, the number as the schema records it (see the renumbering below).
        """
        tables = {r[0] for r in await c.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", self.schema)}
        if not tables:
            return None
        if "schema_version" not in tables:
            raise PostgresStorageError(
                f"the schema {self.schema!r} of {self.label} holds tables that hpt-async did not write "
                f"({', '.join(sorted(tables))}); choose another with the 'schema' option"
            )
        row = await c.fetchrow("SELECT MAX(version) AS v, MAX(written_by) AS w FROM schema_version")
        version = row["v"] if row is not None else None
        if version is None:
            raise PostgresStorageError(f"the schema {self.schema!r} of {self.label} has no schema version")
        if 0 < version < FIRST_STEP and not recorded:
            # Written before PostgreSQL's steps were numbered in the one chain: its versions 1 and 2 are
            # the layouts of steps 6 and 7 (the same statements).
            version += FIRST_STEP - 1
        if version > SCHEMA_VERSION:
            raise PostgresStorageError(
                f"the schema {self.schema!r} of {self.label} was written by a newer hpt-async ({row['w']}, schema "
                f"version {version}); this one reads version {SCHEMA_VERSION} at most: upgrade hpt-async"
            )
        return int(version)

    async def _migrate(self, c: asyncpg.Connection) -> None:
        """Bring the schema to :data:`SCHEMA_VERSION`, in one transaction under an advisory lock."""
        from .. import __version__

        if await self._schema_version(c, recorded=True) == SCHEMA_VERSION:
            return
        async with c.transaction():
            await c.execute("SELECT pg_advisory_xact_lock($1)", _MIGRATION_LOCK)
            await c.execute(f'CREATE SCHEMA IF NOT EXISTS "{self.schema}"')
            version = await self._schema_version(c) or 0  # again, under the lock
            recorded = await self._schema_version(c, recorded=True) or 0
            for step in MIGRATIONS[version:]:
                for statement in step:
                    await c.execute(statement)
            writer = f"hpt-async {__version__}"
            if version == 0:
                await c.execute(
                    "INSERT INTO schema_version (version, written_by, created) VALUES ($1, $2, $3)",
                    SCHEMA_VERSION,
                    writer,
                    time.time(),
                )
            elif recorded < SCHEMA_VERSION:
                await c.execute("UPDATE schema_version SET version = $1, written_by = $2", SCHEMA_VERSION, writer)
        if 0 < version < SCHEMA_VERSION:
            log.info("study storage %s: migrated from schema version %d to %d", self.label, version, SCHEMA_VERSION)

    async def _admin(self, body: Callable[[asyncpg.Connection], Awaitable[T]], *, missing: T) -> T:
        """``body(conn)`` on a short-lived connection; ``missing`` when the schema does not exist (never created)."""
        c = await self._connect()
        try:
            with anyio.CancelScope(shield=True):
                if await self._schema_version(c) is None:
                    return missing
                return await body(c)
        finally:
            with anyio.CancelScope(shield=True):
                await c.close()

    # -- the contract ------------------------------------------------------------

    async def open(
        self,
        study: str,
        *,
        direction: Direction | Sequence[str],
        space: Space,
        settings: Mapping[str, Any] | None = None,
    ) -> StudySession:
        if not isinstance(study, str) or not study:
            raise ValueError(f"a study name is a non-empty string, got {study!r}")
        direction = check_direction(direction)
        merge_settings(None, settings)  # a bad mapping fails before the server is touched
        self._refuse_if_read_only(f"open study {study!r} for a tuner")
        asyncpg = _import_asyncpg()
        c = await self._connect()
        try:
            with anyio.CancelScope(shield=True):
                await self._migrate(c)
                description = space.describe()
                first, directions = _dump_direction(direction)
                async with c.transaction():
                    row = await c.fetchrow(
                        "SELECT id, direction, directions, space, settings FROM studies WHERE name = $1 FOR UPDATE",
                        study,
                    )
                    if row is None:
                        kept = merge_settings(None, settings)
                        study_id = await c.fetchval(
                            "INSERT INTO studies (name, direction, directions, space, created, settings)"
                            " VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (name) DO NOTHING RETURNING id",
                            study,
                            first,
                            directions,
                            _dumps(description),
                            time.time(),
                            _dumps(kept) if kept else None,
                        )
                        if study_id is None:  # created meanwhile by another process
                            row = await c.fetchrow(
                                "SELECT id, direction, directions, space, settings FROM studies"
                                " WHERE name = $1 FOR UPDATE",
                                study,
                            )
                    if row is not None:
                        study_id = row["id"]
                        stored_direction = _load_direction(row["direction"], row["directions"])
                        if stored_direction != direction:
                            raise ValueError(
                                f"study {study!r} in {self.label} was created with direction "
                                f"{stored_direction!r}, not {direction!r}"
                            )
                        diffs = space.differences(_loads(row["space"]))
                        if diffs:
                            raise ValueError(
                                f"study {study!r} in {self.label} was created with another space: " + "; ".join(diffs)
                            )
                        old = _loads(row["settings"]) if row["settings"] else {}
                        kept = merge_settings(old, settings)
                        if kept != old:
                            await c.execute("UPDATE studies SET settings = $1 WHERE id = $2", _dumps(kept), study_id)
                    sid = await c.fetchval(
                        "INSERT INTO sessions (study_id, host, pid, started, heartbeat, expires)"
                        f" VALUES ($1, $2, $3, {_NOW}, {_NOW}, {_NOW} + $4) RETURNING id",
                        study_id,
                        socket.gethostname(),
                        os.getpid(),
                        self.lease,
                    )
                codec = _Codec(space, description)
                snapshot, history = await _changes(c, study_id, None, codec)
        except (asyncpg.PostgresError, asyncpg.InterfaceError) as exc:
            await c.close()
            raise PostgresStorageError(f"cannot open study {study!r} in {self.label}: {exc}") from exc
        except BaseException:
            with anyio.CancelScope(shield=True):
                await c.close()
            raise
        await c.close()
        listener = _Listener(int(sid))
        pool = None
        try:
            with anyio.CancelScope(shield=True):
                pool = await asyncpg.create_pool(
                    self.dsn,
                    min_size=1,
                    max_size=self.pool_size,
                    timeout=self.timeout,
                    server_settings=self._settings("off"),
                    reset=_keep_as_is,
                )
                await listener.start(self._connect, f"hpt_{self.schema}_{study_id}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await listener.close()
                if pool is not None:
                    await pool.close()
            raise
        session = PostgresSession(self, pool, listener, int(study_id), int(sid), codec, history, snapshot)
        session.settings = MappingProxyType(kept)
        return session

    async def _find(self, c: asyncpg.Connection, study: str, space: Space | None) -> tuple[int, _Codec] | None:
        row = await c.fetchrow("SELECT id, space FROM studies WHERE name = $1", study)
        if row is None:
            return None
        description = _loads(row["space"])
        if space is not None:
            diffs = space.differences(description)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        return int(row["id"]), _Codec(space, description)

    async def load(self, study: str, *, space: Space | None = None) -> list[TrialRecord]:
        async def body(c: asyncpg.Connection) -> list[TrialRecord]:
            found = await self._find(c, study, space)
            if found is None:
                return []
            return (await _changes(c, found[0], None, found[1]))[1]

        return await self._admin(body, missing=[])

    async def watch(self, study: str, *, space: Space | None = None) -> StudyReader:
        """A reader of what changed in ``study``, with a connection of its own."""
        c = await self._connect()
        try:
            with anyio.CancelScope(shield=True):
                found = None
                if await self._schema_version(c) is not None:
                    found = await self._find(c, study, space)
                if found is None:
                    raise StudyNotFound(f"no study named {study!r} in {self.label}")
        except BaseException:
            with anyio.CancelScope(shield=True):
                await c.close()
            raise
        return _PostgresReader(self, study, c, found[0], found[1])

    async def checkpoint(self, study: str, number: int) -> bytes | None:
        async def body(c: asyncpg.Connection) -> bytes | None:
            data = await c.fetchval(
                "SELECT c.data FROM checkpoints c JOIN studies s ON s.id = c.study_id"
                " WHERE s.name = $1 AND c.number = $2",
                study,
                number,
            )
            return None if data is None else bytes(data)

        return await self._admin(body, missing=None)

    # -- administration ----------------------------------------------------------

    async def _summaries(self, name: str | None) -> list[StudySummary]:
        async def body(c: asyncpg.Connection) -> list[StudySummary]:
            where, args = ("WHERE s.name = $1", [name]) if name is not None else ("", [])
            rows = await c.fetch(f"{_STUDY_SUMMARY} {where} GROUP BY s.id, t.state ORDER BY s.name", *args)
            return _study_summaries(rows)

        return await self._admin(body, missing=[])

    async def studies(self) -> list[StudySummary]:
        """Every study in the schema, ordered by name (none before the first study is created)."""
        return await self._summaries(None)

    async def summary(self, study: str) -> StudySummary:
        found = await self._summaries(study)
        if not found:
            raise StudyNotFound(f"no study named {study!r} in {self.label}")
        return found[0]

    async def delete(self, study: str) -> None:
        """Remove ``study`` with its trials; refused while a live tuner has it open."""
        self._refuse_if_read_only(f"delete study {study!r}")

        async def body(c: asyncpg.Connection) -> bool:
            async with c.transaction():
                study_id = await c.fetchval("SELECT id FROM studies WHERE name = $1 FOR UPDATE", study)
                if study_id is None:
                    raise StudyNotFound(f"no study named {study!r} in {self.label}")
                live = await c.fetch(
                    f"SELECT host, pid FROM sessions WHERE study_id = $1 AND expires >= {_NOW}", study_id
                )
                if live:
                    who = ", ".join(f"pid {r['pid']} on {r['host']}" for r in live)
                    raise ValueError(f"study {study!r} is open in a running tuner ({who}); stop it before deleting")
                await c.execute("DELETE FROM studies WHERE id = $1", study_id)
                return True

        if not await self._admin(body, missing=False):
            raise StudyNotFound(f"no study named {study!r} in {self.label}")

    async def rename(self, old: str, new: str) -> None:
        self._refuse_if_read_only(f"rename study {old!r}")
        if not isinstance(new, str) or not new:
            raise ValueError(f"a study name is a non-empty string, got {new!r}")

        async def body(c: asyncpg.Connection) -> bool:
            async with c.transaction():
                if await c.fetchval("SELECT 1 FROM studies WHERE name = $1", new):
                    raise ValueError(f"a study named {new!r} exists already in {self.label}")
                done = await c.execute("UPDATE studies SET name = $1 WHERE name = $2", new, old)
                if done != "UPDATE 1":
                    raise StudyNotFound(f"no study named {old!r} in {self.label}")
                return True

        if not await self._admin(body, missing=False):
            raise StudyNotFound(f"no study named {old!r} in {self.label}")


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``postgresql`` and ``postgres`` (asyncpg is imported only when a study is opened)."""
    register("storage", "postgresql", PostgresStorage)
    register("storage", "postgres", PostgresStorage)
