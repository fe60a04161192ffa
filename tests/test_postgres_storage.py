"""The PostgreSQL storage: URLs, schema, migrations, readers in commit order, NOTIFY, exact calls, Tuner, CLI.

Runs against the test server of ``conftest.py`` (a throwaway server, or
``HPT_ASYNC_TEST_POSTGRES_URL``); each test has a schema of its own.  The
behaviour every storage shares is tested by the conformance suite
(``test_storage_conformance.py``).
"""

from __future__ import annotations

import os
from typing import Any

import anyio
import pytest
from common import cli

import hpt_async as hpt
from hpt_async.contracts.storage import StudyNotFound
from hpt_async.plugins import get_registry
from hpt_async.storage.postgres import (
    MIGRATIONS,
    SCHEMA_VERSION,
    PostgresStorage,
    PostgresStorageError,
    parse_postgres_url,
)
from hpt_async.studies import load_study_async
from hpt_async.testing.storage import SPACE, ended, running

pytestmark = pytest.mark.anyio

HANG_GUARD = 60.0


async def raw(url: str) -> Any:
    """An asyncpg connection to the test schema of ``url``."""
    import asyncpg

    storage = PostgresStorage(url)
    return await asyncpg.connect(storage.dsn, server_settings={"search_path": storage.schema})


# -- URLs ---------------------------------------------------------------------------------------------


def test_urls_give_a_dsn_and_options() -> None:
    dsn, options = parse_postgres_url("postgres://u:pw@db.example:5433/tuning?lease=30&sslmode=require&pool=4")
    assert dsn == "postgresql://u:pw@db.example:5433/tuning?sslmode=require"
    assert options == {"lease": "30", "pool": "4"}
    storage = PostgresStorage("postgresql://u:secret@h/db?lease=30")
    assert (storage.lease, storage.sync_interval, storage.pool_size, storage.schema) == (30.0, 1.0, 8, "hpt_async")
    assert "secret" not in repr(storage) and "secret" not in storage.label


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ("mysql://h/db", "postgresql://"),
        ("postgresql:/h/db", "malformed"),
        ("postgresql://h/db?lease=0", "lease"),
        ("postgresql://h/db?lease=1&sync=1", "at least twice"),
        ("postgresql://h/db?pool=0", "pool"),
        ("postgresql://h/db?pool=x", "pool"),
        ("postgresql://h/db?schema=1x", "schema"),
        ("postgresql://h/db?schema=a;drop", "schema"),
        ("postgresql://h/db?lease=3&lease=4", "twice"),
        ("postgresql://h:port/db", "port"),
    ],
)
def test_bad_urls_fail_with_a_clear_message(bad: str, match: str) -> None:
    with pytest.raises(ValueError, match=match):
        PostgresStorage(bad)


def test_the_registry_knows_both_schemes_and_the_storage_is_durable() -> None:
    registry = get_registry()
    for url in ("postgresql://h/db", "postgres://h/db"):
        storage = registry.create("storage", url.split(":")[0], url)
        assert isinstance(storage, PostgresStorage) and storage.durable


async def test_an_unreachable_server_is_a_clear_error() -> None:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    storage = PostgresStorage(f"postgresql://nobody:pw@127.0.0.1:{port}/x?timeout=5")
    with pytest.raises(PostgresStorageError, match="cannot connect") as info:
        await storage.studies()
    assert "pw" not in str(info.value)


# -- schema -----------------------------------------------------------------------------------------


async def test_the_first_open_makes_the_schema_with_its_version_and_indexes(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    assert await storage.studies() == []  # reading makes nothing
    c = await raw(postgres_url)
    try:
        assert await c.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1", storage.schema) == 0
        session = await storage.open("s", direction="minimize", space=SPACE)
        await session.close()
        assert await c.fetchval("SELECT version FROM schema_version") == SCHEMA_VERSION == len(MIGRATIONS)
        indexes = {
            r[0] for r in await c.fetch("SELECT indexname FROM pg_indexes WHERE schemaname = $1", storage.schema)
        }
        assert {"trials_by_xid", "trials_running", "trials_by_key", "trials_by_retry_of"} <= indexes
    finally:
        await c.close()


async def test_a_schema_of_the_first_postgresql_step_is_migrated(postgres_url: str, monkeypatch: Any) -> None:
    from hpt_async.storage import postgres

    storage = PostgresStorage(postgres_url)
    first = postgres.FIRST_STEP
    with monkeypatch.context() as m:  # the layout an hpt-async whose chain ended at PostgreSQL's first step wrote
        m.setattr(postgres, "MIGRATIONS", MIGRATIONS[:first])
        m.setattr(postgres, "SCHEMA_VERSION", first)
        old = await storage.open("s", direction="minimize", space=SPACE)
        for value in (1.0, 2.0):
            n = await old.reserve_within(3)
            assert n is not None
            await old.trial_created(running(n))
            await old.trial_ended(ended(n, value))
        await old.close()
    c = await raw(postgres_url)
    try:
        assert await c.fetchval("SELECT version FROM schema_version") == first
        new = await storage.open("s", direction="minimize", space=SPACE)
        try:
            assert await c.fetchval("SELECT version FROM schema_version") == SCHEMA_VERSION
            assert [(r.number, r.value) for r in new.history] == [(0, 1.0), (1, 2.0)]
            assert await new.reserve_within(3) == 2  # the counts kept by the first layout carry over
            assert await new.reserve_within(3) is None
        finally:
            await new.close()
    finally:
        await c.close()


async def test_a_schema_numbered_before_the_one_chain_is_read_as_its_steps(postgres_url: str) -> None:
    from hpt_async.storage import postgres

    storage = PostgresStorage(postgres_url)
    session = await storage.open("s", direction="minimize", space=SPACE)
    n = await session.reserve_within(5)
    assert n is not None
    await session.trial_created(running(n))
    await session.trial_ended(ended(n, 3.0))
    await session.close()
    c = await raw(postgres_url)
    try:  # PostgreSQL's own numbering of the same layout, before it joined the chain (its steps 1, 2)
        await c.execute("UPDATE schema_version SET version = 2, written_by = 'hpt-async 0.1.0.dev'")
        assert [s.name for s in await storage.studies()] == ["s"]  # read as version 7: nothing refused
        again = await storage.open("s", direction="minimize", space=SPACE)
        try:
            assert [(r.number, r.value) for r in again.history] == [(0, 3.0)]
            assert await c.fetchval("SELECT version FROM schema_version") == postgres.SCHEMA_VERSION
        finally:
            await again.close()
    finally:
        await c.close()


async def test_a_schema_of_step_7_is_migrated_with_its_trials_and_reservations(
    postgres_url: str, monkeypatch: Any
) -> None:
    from hpt_async.storage import postgres

    storage = PostgresStorage(postgres_url)
    with monkeypatch.context() as m:  # the layout an hpt-async whose chain ended at step 7 wrote
        m.setattr(postgres, "MIGRATIONS", MIGRATIONS[:7])
        m.setattr(postgres, "SCHEMA_VERSION", 7)
        old = await storage.open("s", direction="minimize", space=SPACE)
        for value in (1.0, 2.0):
            n = await old.reserve_within(10)
            assert n is not None
            await old.trial_created(running(n))
            await old.trial_ended(ended(n, value))  # no number reserved ahead: step 7 has no such call
        held = await old.reserve_within(10)
        c = await raw(postgres_url)
        try:
            assert await c.fetchval("SELECT version FROM schema_version") == 7
            ahead = (
                "SELECT count(*) FROM pg_proc WHERE proname = 'hpt_reserve_ahead' AND pronamespace = $1::regnamespace"
            )
            assert await c.fetchval(ahead, storage.schema) == 0
        finally:
            await c.close()
    new = await storage.open("s", direction="minimize", space=SPACE)
    try:
        c = await raw(postgres_url)
        try:
            assert await c.fetchval("SELECT version FROM schema_version") == SCHEMA_VERSION
        finally:
            await c.close()
        assert [(r.number, r.value) for r in new.history] == [(0, 1.0), (1, 2.0)]
        assert held == 2 and await reservations(postgres_url) == [(2, old.session_id)]  # type: ignore[attr-defined]
        # The old session's reservation still counts: 2 trials + 1 reservation of 4 leave one unit.
        assert await new.reserve_within(4) == 3
        assert await new.reserve_within(4) is None
        await old.trial_created(running(held))
        await old.trial_ended(ended(held, 3.0))
        await old.close()
        await new.trial_created(running(3))
        await new.trial_ended(ended(3, 4.0))
        assert await new.reserve_within(10) == 4
        await new.trial_created(running(4))
        await new.trial_ended(ended(4, 5.0))
        await reserved_ahead(new)  # the function the migration added
        assert await reservations(postgres_url) == [(5, new.session_id)]  # type: ignore[attr-defined]
    finally:
        await old.close()
        await new.close()
    assert [r.value for r in await storage.load("s")] == [1.0, 2.0, 3.0, 4.0, 5.0]


async def test_a_newer_schema_is_refused(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    await (await storage.open("s", direction="minimize", space=SPACE)).close()
    c = await raw(postgres_url)
    try:
        await c.execute("UPDATE schema_version SET version = $1, written_by = 'hpt-async 99'", SCHEMA_VERSION + 1)
    finally:
        await c.close()
    with pytest.raises(PostgresStorageError, match="newer hpt-async"):
        await storage.open("s", direction="minimize", space=SPACE)
    with pytest.raises(PostgresStorageError, match="newer hpt-async"):
        await storage.studies()


async def test_a_schema_holding_other_tables_is_refused_and_left_alone(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    import asyncpg

    c = await asyncpg.connect(storage.dsn)
    try:
        await c.execute(f'CREATE SCHEMA "{storage.schema}"; CREATE TABLE "{storage.schema}".theirs (x int)')
        with pytest.raises(PostgresStorageError, match="did not write"):
            await storage.open("s", direction="minimize", space=SPACE)
        tables = await c.fetch("SELECT tablename FROM pg_tables WHERE schemaname = $1", storage.schema)
        assert [r[0] for r in tables] == ["theirs"]
    finally:
        await c.close()


async def test_tuners_starting_at_once_migrate_once(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    sessions: list[Any] = []

    async def open_one() -> None:
        sessions.append(await PostgresStorage(postgres_url).open("s", direction="minimize", space=SPACE))

    async with anyio.create_task_group() as tg:
        for _ in range(4):
            tg.start_soon(open_one)
    for session in sessions:
        await session.close()
    c = await raw(postgres_url)
    try:
        assert await c.fetchval("SELECT count(*) FROM schema_version") == 1
        assert await c.fetchval("SELECT count(*) FROM studies") == 1
    finally:
        await c.close()
    assert [s.name for s in await storage.studies()] == ["s"]


# -- readers in commit order ---------------------------------------------------------------------------


async def test_a_transaction_that_commits_late_is_not_missed(postgres_url: str) -> None:
    """A write whose transaction began before a reader's read and committed after it arrives at the next read."""
    storage = PostgresStorage(postgres_url)
    session = await storage.open("s", direction="minimize", space=SPACE)
    early = await raw(postgres_url)
    try:
        a = await session.reserve()
        await session.trial_created(running(a))
        b = await session.reserve()
        await session.trial_created(running(b))
        async with await storage.watch("s", space=SPACE) as reader:
            assert [r.number for r in await reader.read()] == [a, b]
            # A transaction takes its id and writes trial a; it stays open.
            tx = early.transaction()
            await tx.start()
            await early.execute("UPDATE trials SET state = 'complete', value = 1.0, ended = 2.0 WHERE number = $1", a)
            # A later transaction ends trial b and commits first.
            await session.trial_ended(ended(b, 2.0))
            assert [(r.number, r.state) for r in await reader.read()] == [(b, hpt.TrialState.COMPLETE)]
            await tx.commit()
            (late,) = await reader.read()
            assert (late.number, late.state, late.value) == (a, hpt.TrialState.COMPLETE, 1.0)
            assert await reader.read() == []
    finally:
        await early.close()
        await session.close()


async def test_refresh_in_commit_order_with_overlapping_sessions(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    mine = await storage.open("s", direction="minimize", space=SPACE)
    other = await storage.open("s", direction="minimize", space=SPACE)
    early = await raw(postgres_url)
    try:
        first = await other.reserve()
        await other.trial_created(running(first))
        assert [r.number for r in await mine.refresh()] == [first]
        tx = early.transaction()
        await tx.start()
        # Another session's transaction reports on the first trial and commits after a later one.
        await early.execute(
            "INSERT INTO reports (study_id, number, step, value) SELECT study_id, $1, 7, 0.5 FROM sessions"
            " WHERE id = $2",
            first,
            other.session_id,
        )
        second = await other.reserve()
        await other.trial_created(running(second))
        assert [r.number for r in await mine.refresh()] == [second]
        await tx.commit()
        (late,) = await mine.refresh()
        assert late.number == first and dict(late.reports) == {7: 0.5} and late.params["kind"] == ("b", 2)
        assert await mine.refresh() == []
    finally:
        await early.close()
        await mine.close()
        await other.close()


async def test_a_reader_reads_only_the_changed_rows(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    session = await storage.open("s", direction="minimize", space=SPACE)
    try:
        for _ in range(50):
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_ended(ended(n, 1.0))
        async with await storage.watch("s") as reader:
            assert len(await reader.read()) == 50
            n = await session.reserve()
            await session.trial_created(running(n))
            assert [r.number for r in await reader.read()] == [n]
            conn = reader._conn  # type: ignore[attr-defined]
            assert conn is not None
            # The change query can go through the index on (study_id, xid), not a scan of the study.
            await conn.execute("SET enable_seqscan = off")
            plan = "\n".join(
                r[0]
                for r in await conn.fetch(
                    "EXPLAIN SELECT number FROM trials WHERE study_id = 1 AND xid >= '5'::xid8"
                    " AND NOT pg_visible_in_snapshot(xid, pg_current_snapshot())"
                )
            )
            assert "trials_by_xid" in plan
    finally:
        await session.close()


# -- NOTIFY -----------------------------------------------------------------------------------------------


async def test_a_session_hears_of_another_sessions_trials_at_once(postgres_url: str) -> None:
    storage = PostgresStorage(f"{postgres_url}&sync=20&lease=60")
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        assert await a.wait_changed(0.05) is False  # type: ignore[attr-defined]
        with anyio.fail_after(10):
            async with anyio.create_task_group() as tg:

                async def write() -> None:
                    await anyio.sleep(0.1)
                    n = await b.reserve()
                    await b.trial_created(running(n))

                tg.start_soon(write)
                assert await a.wait_changed(9) is True  # type: ignore[attr-defined]
        assert len(await a.refresh()) == 1
    finally:
        await a.close()
        await b.close()


async def test_a_session_is_not_woken_by_its_own_writes(postgres_url: str) -> None:
    storage = PostgresStorage(f"{postgres_url}&sync=20&lease=60")
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        n = await a.reserve()
        await a.trial_created(running(n))
        await a.trial_ended(ended(n, 1.0))
        with anyio.fail_after(10):
            assert await b.wait_changed(9) is True  # type: ignore[attr-defined]
        assert await a.wait_changed(0.3) is False  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()


class Spy(hpt.RandomStrategy):
    """Random search that sets ``heard`` when it is told of a trial its own tuner did not run."""

    def __init__(self) -> None:
        self.mine: set[int] = set()
        self.heard = anyio.Event()

    async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
        if record.number not in self.mine:
            self.heard.set()


async def test_a_tuner_learns_of_another_tuners_trials_without_polling(postgres_url: str) -> None:
    """With an hour between sync passes, the only way a tuner hears of the other's trial is a NOTIFY."""
    url = f"{postgres_url}&sync=3600&lease=7200"
    spy = Spy()

    async def waits_for_news(trial: hpt.Trial) -> float:
        spy.mine.add(trial.number)
        await spy.heard.wait()  # until the strategy is told of another tuner's trial
        return 1.0

    async def quick(trial: hpt.Trial) -> float:
        return 0.5

    listening = hpt.Tuner(waits_for_news, SPACE, strategy=spy, storage=url, study="s", max_trials=2, loggers=[])
    other = hpt.Tuner(quick, SPACE, storage=url, study="s", max_trials=2, loggers=[], seed=2)
    with anyio.fail_after(HANG_GUARD):  # a hang guard: without NOTIFY the first tuner waits an hour
        async with anyio.create_task_group() as tg:
            tg.start_soon(listening.run)
            while not spy.mine:
                await anyio.sleep(0.01)
            await other.run()
    loaded = await PostgresStorage(url).load("s")
    assert sorted((r.state.value, r.value) for r in loaded) == [("complete", 0.5), ("complete", 1.0)]


# -- exact calls -------------------------------------------------------------------------------------------


async def test_reserve_within_never_hands_out_more_than_the_budget(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    sessions = [await storage.open("s", direction="minimize", space=SPACE) for _ in range(4)]
    got: list[int] = []
    try:

        async def take(session: Any) -> None:
            while (n := await session.reserve_within(10)) is not None:
                got.append(n)
                await session.trial_created(running(n))

        async with anyio.create_task_group() as tg:
            for session in sessions:
                tg.start_soon(take, session)
        assert sorted(got) == list(range(10))
        # A LOST trial gives its unit back; a reservation holds one until released.
        await sessions[0].trial_ended(
            hpt.TrialRecord(0, hpt.TrialState.LOST, {"x": 0.5, "kind": "a"}, started=1.0, ended=2.0)
        )
        n = await sessions[1].reserve_within(10)
        assert n == 10
        assert await sessions[2].reserve_within(10) is None
        await sessions[1].release(n)
        assert await sessions[2].reserve_within(10) == 11
        assert await sessions[3].reserve_within(None) == 12
    finally:
        for session in sessions:
            await session.close()


async def test_trial_created_once_stores_a_key_once(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        results: list[bool] = []

        async def create(session: Any) -> None:
            n = await session.reserve()
            results.append(await session.trial_created_once(running(n), "point-1"))

        async with anyio.create_task_group() as tg:
            for session in (a, b, a, b):
                tg.start_soon(create, session)
        assert sorted(results) == [False, False, False, True]
        (winner,) = await storage.load("s", space=SPACE)
        await a.trial_ended(
            hpt.TrialRecord(winner.number, hpt.TrialState.CANCELLED, dict(winner.params), started=1.0, ended=2.0)
        )
        # A CANCELLED trial frees its key.
        assert await b.trial_created_once(running(await b.reserve()), "point-1") is True
    finally:
        await a.close()
        await b.close()


async def test_a_retry_is_created_once_and_takes_the_checkpoint_in_one_transaction(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        lost = await a.reserve()
        await a.trial_created_once(running(lost), "k")
        await a.put_checkpoint(lost, b"state")
        # Not LOST yet: no retry.
        assert await b.trial_created_retry(running(await b.reserve(), retry_of=lost)) is False
        await a.trial_ended(hpt.TrialRecord(lost, hpt.TrialState.LOST, {"x": 0.5, "kind": "a"}, started=1.0, ended=2.0))
        results: dict[int, bool] = {}

        async def retry(session: Any) -> None:
            n = await session.reserve()
            results[n] = await session.trial_created_retry(running(n, retry_of=lost))

        async with anyio.create_task_group() as tg:
            tg.start_soon(retry, a)
            tg.start_soon(retry, b)
        (winner,) = [n for n, ok in results.items() if ok]
        assert len(results) == 2
        assert await a.get_checkpoint(winner) == b"state"
        assert await a.get_checkpoint(lost) is None
        c = await raw(postgres_url)
        try:
            assert await c.fetchval("SELECT key FROM trials WHERE number = $1", winner) == "k"
            assert await c.fetchval("SELECT key FROM trials WHERE number = $1", lost) is None
        finally:
            await c.close()
        with pytest.raises(ValueError, match="not a retry"):
            await a.trial_created_retry(running(await a.reserve()))
    finally:
        await a.close()
        await b.close()


# -- the trial path: a number reserved ahead, one round trip per call, notifications -------------------------


async def reserved_ahead(session: Any) -> None:
    """Wait until the number ``session`` reserves ahead (if any) is on the server."""
    import asyncio

    task = session._ahead
    if task is not None:
        with anyio.fail_after(HANG_GUARD):
            await asyncio.shield(task)


async def reservations(url: str) -> list[tuple[int, int]]:
    """``(number, session)`` of every reservation on the server, by number."""
    c = await raw(url)
    try:
        return [(r[0], r[1]) for r in await c.fetch("SELECT number, session FROM reservations ORDER BY number")]
    finally:
        await c.close()


async def test_a_number_is_reserved_ahead_while_an_end_commits(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        assert await a.reserve_within(10) == 0
        await a.trial_created(running(0))
        await a.trial_ended(ended(0, 1.0))
        await reserved_ahead(a)
        # Reserved on the server (it counts toward the budget), for a's next ask.
        assert await reservations(postgres_url) == [(1, a.session_id)]  # type: ignore[attr-defined]
        assert await b.reserve_within(10) == 2
        assert await a.reserve_within(10) == 1
        # A larger budget may use it too; a smaller one gives it back and asks again.
        await a.trial_created(running(1))
        await a.trial_ended(ended(1, 1.0))
        await reserved_ahead(a)
        assert await reservations(postgres_url) == [(2, b.session_id), (3, a.session_id)]  # type: ignore[attr-defined]
        # Reserved within 10, not within 3 (2 trials and b's number use it up): given back, and none comes.
        assert await a.reserve_within(3) is None
        assert await reservations(postgres_url) == [(2, b.session_id)]  # type: ignore[attr-defined]
    finally:
        await a.close()
        await b.close()
    records = await storage.load("s")
    assert [(r.number, r.state.value) for r in records] == [(0, "complete"), (1, "complete")]


async def test_no_number_is_reserved_ahead_from_the_last_units_of_a_budget(postgres_url: str) -> None:
    """A number reserved ahead leaves a unit for every other session, so it never keeps one from the last units."""
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        assert await a.reserve_within(3) == 0
        await a.trial_created(running(0))
        await a.trial_ended(ended(0, 1.0))
        await reserved_ahead(a)
        assert await reservations(postgres_url) == []  # 1 trial + 2 sessions: no unit to spare
        assert await b.reserve_within(3) == 1
        assert await a.reserve_within(3) == 2
        assert await b.reserve_within(3) is None
        assert await a.reserve_within(3) is None
    finally:
        await a.close()
        await b.close()


async def test_a_number_reserved_ahead_and_not_asked_for_is_given_back(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    try:
        a.sync_interval = 3600.0  # no sync interval passes before the first heartbeat below, however slow
        assert await a.reserve_within(10) == 0
        await a.trial_created(running(0))
        await a.trial_ended(ended(0, 1.0))
        await reserved_ahead(a)
        assert await reservations(postgres_url) == [(1, a.session_id)]  # type: ignore[attr-defined]
        await a.heartbeat()  # asked for within the sync interval: kept
        assert await reservations(postgres_url) == [(1, a.session_id)]  # type: ignore[attr-defined]
        a.sync_interval = 0.0  # as if a sync interval had passed
        await anyio.sleep(0.01)
        await a.heartbeat()
        assert await reservations(postgres_url) == []
        assert await a.reserve_within(10) == 1  # the number is handed out again: numbers stay dense
    finally:
        await a.close()


async def test_closing_gives_back_a_number_reserved_ahead(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    assert await a.reserve_within(None) == 0
    await a.trial_created(running(0))
    await a.trial_ended(ended(0, 1.0))  # reserves 1 ahead (no budget)
    await a.close()
    assert await reservations(postgres_url) == []
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        assert await b.reserve_within(None) == 1
    finally:
        await b.close()


async def test_a_tuner_with_numbers_reserved_ahead_runs_exactly_its_budget(postgres_url: str) -> None:
    async def quick(trial: hpt.Trial) -> float:
        return trial.params["x"]

    for concurrency in (1, 8):
        tuner = hpt.Tuner(
            quick, SPACE, storage=postgres_url, study=f"c{concurrency}", max_trials=30, concurrency=concurrency,
            loggers=[], strategy="random", seed=1,
        )  # fmt: skip
        await tuner.run()
        records = await PostgresStorage(postgres_url).load(f"c{concurrency}")
        assert [r.number for r in records] == list(range(30))
        assert all(r.state is hpt.TrialState.COMPLETE for r in records)
    assert await reservations(postgres_url) == []


@pytest.mark.parametrize("pool", [1, 2, 3])
async def test_small_pools_serve_calls_made_at_once(postgres_url: str, pool: int) -> None:
    """A session keeps two connections of its pool for the trial path only when one more is left for the rest."""

    async def quick(trial: hpt.Trial) -> float:
        await anyio.sleep(0.001)
        return trial.params["x"]

    url = f"{postgres_url}&pool={pool}"
    tuner = hpt.Tuner(quick, SPACE, storage=url, study="s", max_trials=24, concurrency=6, loggers=[], strategy="random")
    with anyio.fail_after(HANG_GUARD):
        await tuner.run()
    assert [r.number for r in await PostgresStorage(url).load("s")] == list(range(24))


async def test_a_session_releases_its_connections_without_a_reset_query(postgres_url: str, monkeypatch: Any) -> None:
    """asyncpg's pool resets a connection it takes back with a query, one more round trip per call: not here."""
    import asyncpg

    resets: list[object] = []
    default = asyncpg.Connection.get_reset_query

    def counted(self: Any) -> str:
        resets.append(self)
        return default(self)

    monkeypatch.setattr(asyncpg.Connection, "get_reset_query", counted)
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    try:
        for _ in range(3):
            n = await a.reserve_within(10)
            assert n is not None
            await a.trial_created(running(n))
            await a.trial_reported(n, 1, 0.5)
            await a.trial_ended(ended(n, 1.0, reports={1: 0.5}))
        async with anyio.create_task_group() as tg:  # calls at once take pooled connections
            for _ in range(4):
                tg.start_soon(a.refresh)
        await a.heartbeat()
        await a.claim_lost()
    finally:
        await a.close()
    assert resets == []
    assert len(await storage.load("s")) == 3


async def test_a_failed_call_leaves_the_session_working(postgres_url: str) -> None:
    """A call that fails on the server gives its connection back to the pool; the next calls work."""
    import asyncpg

    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    try:
        n = await a.reserve_within(None)
        await a.trial_created(running(n))
        with pytest.raises(asyncpg.UniqueViolationError):
            await a.trial_created(running(n))  # the same number twice
        await a.trial_ended(ended(n, 2.0))
        assert await a.reserve_within(None) == n + 1
    finally:
        await a.close()
    assert [(r.number, r.value) for r in await storage.load("s")] == [(n, 2.0)]


async def test_changes_are_notified_only_when_another_session_may_hear_them(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    a = await storage.open("s", direction="minimize", space=SPACE)
    c = await raw(postgres_url)
    heard: list[str] = []
    try:
        study_id = await c.fetchval("SELECT id FROM studies WHERE name = 's'")
        await c.add_listener(f"hpt_{storage.schema}_{study_id}", lambda *args: heard.append(args[-1]))
        n = await a.reserve()
        await a.trial_created(running(n))
        await a.trial_ended(ended(n, 1.0))
        await c.fetchval("SELECT 1")  # a round trip: notifications sent before it have arrived
        assert heard == []  # a alone: nobody else to tell
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            n = await a.reserve()
            await a.trial_created(running(n))
            await a.trial_ended(ended(n, 1.0))
            with anyio.fail_after(HANG_GUARD):
                while len(heard) < 2:
                    await c.fetchval("SELECT 1")
                    await anyio.sleep(0.01)
            assert heard == [f"{a.session_id} {n}"] * 2  # type: ignore[attr-defined]
        finally:
            await b.close()
    finally:
        await c.close()
        await a.close()


# -- the Tuner, load_study, the CLI --------------------------------------------------------------------------


def objective(trial: hpt.SyncTrial) -> float:
    for step in range(3):
        trial.report(trial.params["x"] * step, step=step)
    trial.set_user_attr("kind", str(trial.params["kind"]))
    return trial.params["x"]


async def test_load_study_and_every_cli_command_on_a_postgres_study(
    postgres_url: str, capsys: Any, tmp_path: Any
) -> None:
    with anyio.fail_after(HANG_GUARD):
        await hpt.Tuner(objective, SPACE, storage=postgres_url, study="cli", max_trials=4, seed=3, loggers=[]).run()
    loaded = await load_study_async(postgres_url, "cli")
    assert len(loaded.trials) == 4 and loaded.best is not None

    async def run(*argv: str) -> tuple[int, str, str]:
        return await anyio.to_thread.run_sync(lambda: cli(capsys, *argv))

    code, out, err = await run("studies", "--storage", postgres_url)
    assert code == 0, err
    assert "cli" in out and "4" in out
    code, out, err = await run("trials", "cli", "--storage", postgres_url)
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].split() == ["NUMBER", "STATE", "VALUE", "SECONDS", "PARAMS"]
    assert [line.split()[:2] for line in lines[1:]] == [[str(n), "complete"] for n in range(4)]
    assert "x=" in lines[1] and "kind=" in lines[1]
    code, out, err = await run("trials", "cli", "--storage", postgres_url, "--limit", "2")
    assert code == 0 and [line.split()[0] for line in out.splitlines()[1:]] == ["2", "3"], err
    code, out, err = await run("trials", "cli", "--storage", postgres_url, "--state", "failed")
    assert code == 0 and "no trials in state failed" in out, err
    code, out, err = await run("best", "cli", "--storage", postgres_url)
    assert code == 0, err
    assert f"best:      trial {loaded.best.number}" in out and f"value:     {loaded.best.value!r}" in out
    code, out, err = await run("export", "cli", "--storage", postgres_url, "--format", "json")
    assert code == 0, err
    assert out.count('"number"') == 4
    code, out, err = await run("export", "cli", "--storage", postgres_url, "--format", "csv")
    assert code == 0 and len(out.strip().splitlines()) == 5, err
    report = tmp_path / "report.html"
    code, out, err = await run("report", "cli", "--storage", postgres_url, "-o", str(report))
    assert code == 0 and err == "", err
    assert out.strip() == f"wrote the report of study cli (4 trials: 4 complete) to {report}"
    html = report.read_text(encoding="utf-8")
    assert "<h1>cli" in html and 'data-chart="history"' in html and 'data-chart="intermediate"' in html
    code, out, err = await run("trials", "nope", "--storage", postgres_url)
    assert code != 0 and "no study named 'nope'" in err
    code, out, err = await run("migrate", "--storage", postgres_url)
    assert code == 0, err
    code, out, err = await run("rename", "cli", "cli2", "--storage", postgres_url)
    assert code == 0, err
    code, out, err = await run("delete", "cli2", "--storage", postgres_url, "--yes")
    assert code == 0, err
    assert await PostgresStorage(postgres_url).studies() == []
    with pytest.raises(StudyNotFound):
        await load_study_async(postgres_url, "missing")


def test_asyncpg_is_imported_only_when_a_connection_opens() -> None:
    import subprocess
    import sys

    code = (
        "import sys, hpt_async\n"
        "from hpt_async.plugins import get_registry\n"
        "get_registry().create('storage', 'postgresql', 'postgresql://h/db')\n"
        "print('asyncpg' in sys.modules)\n"
    )
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([os.getcwd(), os.environ.get("PYTHONPATH", "")]))
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env, check=True).stdout
    assert out.strip() == "False"


# -- malformed rows, read-only, migrate ------------------------------------------------------------------


async def test_a_malformed_row_is_left_out_with_a_warning_naming_it(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    session = await storage.open("s", direction="minimize", space=SPACE)
    try:
        good = await session.reserve()
        await session.trial_created(running(good))
        bad = await session.reserve()
        await session.trial_created(running(bad))
        c = await raw(postgres_url)
        try:
            await c.execute("UPDATE trials SET params = '{not json' WHERE number = $1", bad)
        finally:
            await c.close()
        with pytest.warns(Warning, match=f"trial {bad}"):
            loaded = await storage.load("s", space=SPACE)
        assert [r.number for r in loaded] == [good]
        with pytest.warns(Warning, match=f"trial {bad}"):
            async with await storage.watch("s", space=SPACE) as reader:
                assert [r.number for r in await reader.read()] == [good]
    finally:
        await session.close()


async def test_a_read_only_storage_reads_and_refuses_to_write(postgres_url: str) -> None:
    storage = PostgresStorage(postgres_url)
    reader = storage.as_read_only()
    assert reader.read_only and not storage.read_only
    assert await reader.studies() == []  # creates nothing
    c = await raw(postgres_url)
    try:
        assert await c.fetchval("SELECT count(*) FROM pg_tables WHERE schemaname = $1", storage.schema) == 0
    finally:
        await c.close()
    for attempt in (
        reader.open("s", direction="minimize", space=SPACE),
        reader.delete("s"),
        reader.rename("s", "t"),
        reader.migrate(),
    ):
        with pytest.raises(PermissionError, match="read-only"):
            await attempt
    assert await storage.migrate() == (0, SCHEMA_VERSION)
    assert await storage.migrate() == (SCHEMA_VERSION, SCHEMA_VERSION)
    await (await storage.open("s", direction="minimize", space=SPACE)).close()
    assert [s.name for s in await reader.studies()] == ["s"]
    # Its connections are read-only on the server too: a write through one is refused there.
    import asyncpg

    async with await reader.watch("s") as change_reader:
        assert await change_reader.read_summaries() == []
        with pytest.raises(asyncpg.ReadOnlySQLTransactionError):
            await change_reader._conn.execute("DELETE FROM trials")  # type: ignore[attr-defined]
