"""The storage conformance suite: what every :class:`~hpt_async.contracts.Storage` must do.

A backend's test module subclasses :class:`StorageContract` and gives it a
``storage`` fixture that returns a fresh, empty storage::

    import pytest
    from hpt_async.testing.storage import StorageContract

    class TestMyStorage(StorageContract):
        @pytest.fixture
        def storage(self, tmp_path):
            return MyStorage(f"mine:///{tmp_path}/studies")

pytest then runs every test of the class against it (the tests are
``async`` and run on anyio's asyncio backend, through the anyio pytest
plugin that anyio installs).  Class attributes say what the backend
promises beyond the basics:

``shares_studies``
    Several sessions of one study, in one process or many, see each
    other's trials (``refresh``, checkpoints shared, one winner of a
    paused trial).  True for SQLite and PostgreSQL, and for memory within
    one storage object.
``keeps_checkpoints``
    :meth:`Storage.checkpoint` returns what a session stored.

A ``short_lease_storage`` fixture (a storage on the same backing store
whose sessions' leases expire within a second) turns on the tests of LOST
trials; by default they skip.

hpt-async runs this suite against its memory, SQLite and PostgreSQL
storages (``tests/test_storage_conformance.py``).
"""

from __future__ import annotations

import math
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import anyio
import pytest

from ..contracts.storage import Storage, StudyNotFound
from ..space import Choice, Float, Space
from ..trial import TrialRecord, TrialState

__all__ = ["SPACE", "StorageContract", "ended", "running"]

#: The space the suite's studies use: a float and a Choice whose values are not JSON scalars.
SPACE = Space({"x": Float(0.0, 1.0), "kind": Choice(["a", ("b", 2)])})
_PARAMS = {"x": 0.5, "kind": ("b", 2)}


def running(number: int, reports: dict[int, float] | None = None, retry_of: int | None = None) -> TrialRecord:
    """A RUNNING record as a tuner makes it (its reports a live view of ``reports``)."""
    live = MappingProxyType(reports if reports is not None else {})
    return TrialRecord(number, TrialState.RUNNING, dict(_PARAMS), reports=live, started=1.0, retry_of=retry_of)


def ended(
    number: int,
    value: float,
    values: tuple[float, ...] | None = None,
    reports: dict[int, float] | None = None,
    state: TrialState = TrialState.COMPLETE,
) -> TrialRecord:
    """A finished record of trial ``number``."""
    return TrialRecord(
        number,
        state,
        dict(_PARAMS),
        value=value,
        values=values,
        reports=MappingProxyType(dict(reports or {})),
        started=1.0,
        ended=2.0,
    )


async def _add(session: Any, value: float, values: tuple[float, ...] | None = None) -> int:
    number = await session.reserve()
    await session.trial_created(running(number))
    await session.trial_ended(ended(number, value, values))
    return number


@pytest.mark.anyio
class StorageContract:
    """Tests every storage passes; subclass it with a ``storage`` fixture (see the module docstring)."""

    shares_studies: bool = True
    keeps_checkpoints: bool = True

    @pytest.fixture
    def anyio_backend(self) -> str:
        """The storages need asyncio (aiosqlite, asyncpg)."""
        return "asyncio"

    @pytest.fixture
    def storage(self) -> Storage:
        """A fresh, empty storage: every subclass gives its own."""
        raise NotImplementedError("a StorageContract subclass must define a 'storage' fixture")

    @pytest.fixture
    def short_lease_storage(self, storage: Storage) -> Storage:
        """A storage on the same store whose leases expire within a second; skips by default."""
        pytest.skip("this backend's suite gives no short_lease_storage fixture")

    # -- opening, settings, errors --------------------------------------------------------------

    async def test_a_new_study_is_empty_and_listed(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            assert session.history == []
            names = [s.name for s in await storage.studies()]
            assert names == ["s"]
        finally:
            await session.close()

    async def test_settings_are_stored_and_the_seed_is_kept_on_reopen(self, storage: Storage) -> None:
        first = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 7, "strategy": "tpe"})
        assert dict(first.settings) == {"seed": 7, "strategy": "tpe"}
        await first.close()
        second = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 9, "pruner": "asha"})
        assert dict(second.settings) == {"seed": 7, "pruner": "asha"}
        await second.close()
        assert dict((await storage.summary("s")).settings) == {"seed": 7, "pruner": "asha"}

    async def test_direction_or_space_mismatch_is_a_clear_error(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        await session.close()
        with pytest.raises(ValueError, match="direction"):
            await storage.open("s", direction="maximize", space=SPACE)
        with pytest.raises(ValueError, match="space"):
            await storage.open("s", direction="minimize", space=Space({"x": Float(0.0, 2.0)}))

    async def test_a_bad_direction_is_refused(self, storage: Storage) -> None:
        with pytest.raises(ValueError):
            await storage.open("s", direction="sideways", space=SPACE)

    # -- trials ---------------------------------------------------------------------------------

    async def test_every_field_round_trips(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_reported(n, 1, 0.5)
            await session.trial_reported(n, 2, math.nan)
            record = TrialRecord(
                n,
                TrialState.FAILED,
                dict(_PARAMS),
                value=None,
                reports=MappingProxyType({1: 0.5, 2: math.nan}),
                user_attrs=MappingProxyType({"note": "é\x00", "n": [1, 2]}),
                error="ValueError: boom",
                traceback="Traceback ...",
                started=1.5,
                ended=2.5,
            )
            await session.trial_ended(record)
        finally:
            await session.close()
        (loaded,) = await storage.load("s", space=SPACE)
        assert loaded.number == n and loaded.state is TrialState.FAILED
        assert dict(loaded.params) == _PARAMS and loaded.params["kind"] == ("b", 2)
        assert loaded.reports[1] == 0.5 and math.isnan(loaded.reports[2])
        assert dict(loaded.user_attrs) == {"note": "é\x00", "n": [1, 2]}
        assert (loaded.error, loaded.traceback, loaded.started, loaded.ended) == (
            "ValueError: boom",
            "Traceback ...",
            1.5,
            2.5,
        )

    async def test_every_objective_value_and_constraint_round_trips(self, storage: Storage) -> None:
        session = await storage.open("m", direction=["minimize", "maximize"], space=SPACE)
        try:
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_reported(n, 1, 1.0, values=(1.0, math.inf))
            end = ended(n, 1.0, (1.0, -math.inf), reports={1: 1.0})
            await session.trial_ended(
                replace(end, report_values=MappingProxyType({1: (1.0, math.inf)}), constraints=(0.5, -1.0))
            )
        finally:
            await session.close()
        (loaded,) = await storage.load("m", space=SPACE)
        assert loaded.values == (1.0, -math.inf)
        assert loaded.constraints == (0.5, -1.0)
        assert loaded.report_values[1] == (1.0, math.inf)
        assert (await storage.summary("m")).direction == ("minimize", "maximize")

    async def test_writing_the_end_twice_is_harmless_and_retry_of_is_kept(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            first = await _add(session, 1.0)
            n = await session.reserve()
            await session.trial_created(running(n, retry_of=first))
            end = TrialRecord(n, TrialState.COMPLETE, dict(_PARAMS), value=0.5, started=1.0, ended=2.0, retry_of=first)
            await session.trial_ended(end)
            await session.trial_ended(end)
        finally:
            await session.close()
        loaded = await storage.load("s", space=SPACE)
        assert [(r.number, r.retry_of, r.value) for r in loaded] == [(first, None, 1.0), (n, first, 0.5)]

    async def test_a_study_resumes_with_its_history(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        numbers = [await _add(session, float(i)) for i in range(3)]
        await session.close()
        again = await storage.open("s", direction="minimize", space=SPACE)
        try:
            assert [r.number for r in again.history] == numbers
            assert [r.value for r in again.history] == [0.0, 1.0, 2.0]
            assert await again.reserve() > max(numbers)
        finally:
            await again.close()

    # -- sharing --------------------------------------------------------------------------------

    async def test_sessions_get_unique_increasing_numbers(self, storage: Storage) -> None:
        if not self.shares_studies:
            pytest.skip("this backend does not share studies")
        a = await storage.open("s", direction="minimize", space=SPACE)
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            got: dict[str, list[int]] = {"a": [], "b": []}

            async def take(name: str, session: Any) -> None:
                for _ in range(20):
                    got[name].append(await session.reserve())

            async with anyio.create_task_group() as tg:
                tg.start_soon(take, "a", a)
                tg.start_soon(take, "b", b)
            assert len(set(got["a"]) | set(got["b"])) == 40
            assert got["a"] == sorted(got["a"]) and got["b"] == sorted(got["b"])
        finally:
            await a.close()
            await b.close()

    async def test_refresh_returns_what_other_sessions_wrote(self, storage: Storage) -> None:
        if not self.shares_studies:
            pytest.skip("this backend does not share studies")
        a = await storage.open("s", direction="minimize", space=SPACE)
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            await a.refresh()
            await b.refresh()
            mine = await _add(a, 1.0)
            theirs = await _add(b, 2.0)
            assert [r.number for r in await a.refresh()] == [theirs]
            assert [r.number for r in await b.refresh()] == [mine]
            assert await a.refresh() == []
            n = await b.reserve()
            await b.trial_created(running(n))
            await b.trial_reported(n, 1, 0.25)
            (seen,) = await a.refresh()
            assert seen.state is TrialState.RUNNING and dict(seen.reports) == {1: 0.25}
        finally:
            await a.close()
            await b.close()

    async def test_checkpoints_outlive_their_session(self, storage: Storage) -> None:
        if not self.shares_studies:
            pytest.skip("this backend does not share studies")
        a = await storage.open("s", direction="minimize", space=SPACE)
        n = await a.reserve()
        await a.trial_created(running(n))
        await a.put_checkpoint(n, b"one")
        await a.put_checkpoint(n, b"two")
        await a.close()
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            assert await b.get_checkpoint(n) == b"two"
            if self.keeps_checkpoints:
                assert await storage.checkpoint("s", n) == b"two"
            await b.drop_checkpoint(n)
            await b.drop_checkpoint(n)
            assert await b.get_checkpoint(n) is None
        finally:
            await b.close()

    async def test_one_session_wins_a_paused_trial(self, storage: Storage) -> None:
        if not self.shares_studies:
            pytest.skip("this backend does not share studies")
        a = await storage.open("s", direction="minimize", space=SPACE)
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            n = await a.reserve()
            await a.trial_created(running(n))
            await a.trial_reported(n, 1, 0.5)
            await a.trial_ended(ended(n, 0.5, reports={1: 0.5}, state=TrialState.PAUSED))
            results = []

            async def resume(session: Any) -> None:
                results.append(await session.trial_resumed(running(n, {1: 0.5})))

            async with anyio.create_task_group() as tg:
                tg.start_soon(resume, a)
                tg.start_soon(resume, b)
            assert sum(r is not False for r in results) == 1
            (loaded,) = await storage.load("s", space=SPACE)
            assert loaded.state is TrialState.RUNNING and dict(loaded.reports) == {1: 0.5}
        finally:
            await a.close()
            await b.close()

    async def test_lost_trials_are_claimed_once(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("s", direction="minimize", space=SPACE)
        numbers = []
        for _ in range(4):
            n = await dead.reserve()
            await dead.trial_created(running(n))
            numbers.append(n)
        a = await storage.open("s", direction="minimize", space=SPACE)
        b = await storage.open("s", direction="minimize", space=SPACE)
        try:
            with anyio.fail_after(30):
                claimed: list[int] = []
                while len(claimed) < 4:
                    await a.heartbeat()
                    await b.heartbeat()
                    for session in (a, b):
                        claimed += [r.number for r in await session.claim_lost()]
                    await anyio.sleep(0.1)
            assert sorted(claimed) == numbers
            loaded = await storage.load("s", space=SPACE)
            assert {r.state for r in loaded} == {TrialState.LOST}
            assert all(r.ended is not None and r.ended >= r.started for r in loaded)
        finally:
            await a.close()
            await b.close()
            await dead.close()

    # -- readers ----------------------------------------------------------------------------------

    async def test_a_reader_returns_only_what_changed(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            first = await _add(session, 1.0)
            async with await storage.watch("s", space=SPACE) as reader:
                assert [r.number for r in await reader.read()] == [first]
                assert await reader.read() == []
                second = await _add(session, 2.0)
                assert [r.number for r in await reader.read()] == [second]
                n = await session.reserve()
                await session.trial_created(running(n))
                await session.trial_reported(n, 1, 0.5)
                await session.trial_reported(n, 2, 0.25)
                (seen,) = await reader.read()
                assert seen.number == n and dict(seen.reports) == {1: 0.5, 2: 0.25}
                await session.trial_ended(ended(n, 0.25, reports={1: 0.5, 2: 0.25}))
                (seen,) = await reader.read()
                assert seen.state is TrialState.COMPLETE
                assert await reader.read() == []
        finally:
            await session.close()

    async def test_a_reader_misses_nothing_while_sessions_write(self, storage: Storage) -> None:
        a = await storage.open("s", direction="minimize", space=SPACE)
        b = await storage.open("s", direction="minimize", space=SPACE) if self.shares_studies else a
        seen: dict[int, TrialState] = {}
        try:
            async with await storage.watch("s", space=SPACE) as reader:

                async def write(session: Any) -> None:
                    for i in range(15):
                        await _add(session, float(i))

                async with anyio.create_task_group() as tg:
                    tg.start_soon(write, a)
                    if b is not a:
                        tg.start_soon(write, b)
                    for _ in range(10):
                        for r in await reader.read():
                            seen[r.number] = r.state
                        await anyio.sleep(0)
                for r in await reader.read():
                    seen[r.number] = r.state
            expected = {r.number for r in await storage.load("s")}
            assert set(seen) == expected
            assert set(seen.values()) == {TrialState.COMPLETE}
        finally:
            await a.close()
            if b is not a:
                await b.close()

    async def test_a_reader_summarises_every_trial_then_returns_what_changed(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            done = await _add(session, 1.5)
            live = await session.reserve()
            await session.trial_created(running(live))
            await session.trial_reported(live, 3, 0.75)
            await session.trial_reported(live, 1, 0.5)
            failed = await session.reserve()
            await session.trial_created(running(failed))
            await session.trial_ended(
                replace(ended(failed, math.nan, state=TrialState.FAILED), value=None, error="x" * 500, traceback="tb")
            )
            async with await storage.watch("s", space=SPACE) as reader:
                summaries = await reader.read_summaries()
                assert [s.number for s in summaries] == [done, live, failed]
                by = {s.number: s for s in summaries}
                assert by[done].state is TrialState.COMPLETE and by[done].value == 1.5
                assert by[done].started == 1.0 and by[done].ended == 2.0 and by[done].duration == 1.0
                assert dict(by[done].params) == _PARAMS and by[done].reports == 0 and by[done].last_step is None
                assert by[live].state is TrialState.RUNNING and by[live].ended is None
                assert by[live].reports == 2 and by[live].last_step == 3
                assert by[failed].state is TrialState.FAILED and by[failed].error == "x" * 200
                assert await reader.read() == []
                second = await _add(session, 0.5)
                assert [r.number for r in await reader.read()] == [second]
                records = await reader.read_trials([live, second, 999])
                assert [r.number for r in records] == [live, second]
                assert dict(records[0].reports) == {1: 0.5, 3: 0.75} and dict(records[0].params) == _PARAMS
                assert records[1].value == 0.5
                assert await reader.read_trials([]) == []
                failed_record = (await reader.read_trials([failed]))[0]
                assert failed_record.error == "x" * 500 and failed_record.traceback == "tb"
            async with await storage.watch("s", space=SPACE) as reader:
                brief = await reader.read_summaries(brief=True)
                expected = [(s.number, s.state, s.value, s.ended) for s in summaries]
                expected.append((second, TrialState.COMPLETE, 0.5, 2.0))
                assert [(s.number, s.state, s.value, s.ended) for s in brief] == expected
                if reader.brief_summaries:  # brief: no configuration, no reports counted
                    assert all(not s.params and s.reports == 0 for s in brief)
                    whole = await reader.read_summaries()
                    assert [s.number for s in whole] == [s.number for s in brief] and dict(whole[0].params) == _PARAMS
                assert await reader.read() == []
        finally:
            await session.close()

    async def test_watching_a_missing_study_is_study_not_found(self, storage: Storage) -> None:
        with pytest.raises(StudyNotFound):
            await storage.watch("nothing")

    # -- administration -----------------------------------------------------------------------------

    async def test_summary_rename_and_delete(self, storage: Storage) -> None:
        session = await storage.open("old", direction="maximize", space=SPACE)
        await _add(session, 1.0)
        await session.close()
        summary = await storage.summary("old")
        assert summary.direction == "maximize" and dict(summary.counts) == {"complete": 1}
        assert summary.space == SPACE.describe()
        await storage.rename("old", "new")
        with pytest.raises(StudyNotFound):
            await storage.summary("old")
        with pytest.raises(StudyNotFound):
            await storage.rename("old", "other")
        other = await storage.open("other", direction="minimize", space=SPACE)
        await other.close()
        with pytest.raises(ValueError):
            await storage.rename("new", "other")
        await storage.delete("new")
        assert [s.name for s in await storage.studies()] == ["other"]
        assert await storage.load("new") == []
        with pytest.raises(StudyNotFound):
            await storage.delete("new")
