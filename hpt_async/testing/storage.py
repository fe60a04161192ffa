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
whose sessions' leases expire within a second; say how soon in the class
attribute ``short_lease``) turns on the tests of LOST trials; by default
they skip.  The tests of the exactness calls
(``reserve_within``, ``release``, ``trial_created_once``,
``trial_created_retry``) run when the backend's sessions declare
``exact``; those of what only a durable store promises (numbers given
back, trials of a closed session claimed, deletion refused while a tuner
has the study open) when the storage is ``durable``.  The last tests run a
:class:`~hpt_async.Tuner` on the storage.

hpt-async runs this suite against its memory, SQLite and PostgreSQL
storages (``tests/test_storage_conformance.py``).
"""

from __future__ import annotations

import math
import time
from collections.abc import AsyncIterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import anyio
import pytest

from ..contracts.storage import Storage, StudyNotFound, StudySummary
from ..exceptions import MAX_STEP, ReportStepError
from ..space import Choice, Float, Int, Space
from ..trial import TrialRecord, TrialState

__all__ = ["SPACE", "StorageContract", "ended", "running"]

#: The space the suite's studies use: a float and a Choice whose values are not JSON scalars.
SPACE = Space({"x": Float(0.0, 1.0), "kind": Choice(["a", ("b", 2)])})
_PARAMS = {"x": 0.5, "kind": ("b", 2)}
#: Study names and attribute keys that break naive quoting.
HOSTILE = [
    "x'; DROP TABLE trials; --",
    "quote \" and ' both; semicolon",
    "naïve 研究 🚀",
    "new\nline\ttab",
    "%s ? :name @p $1",
]


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

    #: Seconds the leases of ``short_lease_storage``'s sessions last (at most 1): a test that lets a
    #: session miss its heartbeats waits this long, and a little more, before it takes the session for dead.
    short_lease: float = 1.0
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
        run1 = {"seed": 123, "strategy": {"name": "bayes", "n_initial": 8}, "pruner": {"name": "asha"}}
        first = await storage.open("s", direction="minimize", space=SPACE, settings=run1)
        assert dict(first.settings) == run1
        await first.close()
        assert dict((await storage.summary("s")).settings) == run1
        run2 = {"seed": 999, "strategy": {"name": "random"}, "executor": {"name": "thread", "workers": 2}}
        second = await storage.open("s", direction="minimize", space=SPACE, settings=run2)
        # The seed stays the study's; every other key is the latest run's (its pruner is gone).
        expected = {"seed": 123, "strategy": {"name": "random"}, "executor": {"name": "thread", "workers": 2}}
        assert dict(second.settings) == expected
        await second.close()
        third = await storage.open("s", direction="minimize", space=SPACE)  # no settings: the stored ones stay
        assert dict(third.settings) == expected
        await third.close()
        assert dict((await storage.summary("s")).settings) == expected
        assert dict((await storage.studies())[0].settings) == expected

    async def test_a_study_without_a_seed_takes_the_first_one_given(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": None})
        await session.close()
        session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 7})
        assert session.settings["seed"] == 7
        await session.close()
        session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 8})
        assert session.settings["seed"] == 7
        await session.close()

    async def test_a_study_opened_without_settings_has_none(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        assert dict(session.settings) == {}
        await session.close()
        assert dict((await storage.summary("s")).settings) == {}

    @pytest.mark.parametrize("bad", [{"seed": object()}, {1: "x"}, {"x": math.nan}, ["seed", 1]])
    async def test_settings_that_are_not_json_are_refused(self, storage: Storage, bad: Any) -> None:
        with pytest.raises(ValueError, match="settings"):
            await storage.open("s", direction="minimize", space=SPACE, settings=bad)

    async def test_direction_or_space_mismatch_is_a_clear_error(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        await _add(session, 1.0)
        await session.close()
        with pytest.raises(ValueError, match="direction 'minimize', not 'maximize'"):
            await storage.open("s", direction="maximize", space=SPACE)
        with pytest.raises(ValueError, match=r"another space.*'kind' was removed.*'x' changed"):
            await storage.open("s", direction="minimize", space=Space({"x": Float(0.0, 2.0)}))
        assert len(await storage.load("s")) == 1

    @pytest.mark.parametrize("bad", ["up", [], ["minimize", "sideways"], 3])
    async def test_a_bad_direction_is_refused(self, storage: Storage, bad: Any) -> None:
        with pytest.raises(ValueError, match="direction"):
            await storage.open("s", direction=bad, space=SPACE)

    @pytest.mark.parametrize("name", HOSTILE)
    async def test_hostile_study_names_and_attributes_round_trip(self, storage: Storage, name: str) -> None:
        session = await storage.open(name, direction="minimize", space=SPACE)
        try:
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_ended(replace(ended(n, 1.0), user_attrs=MappingProxyType({name: name})))
        finally:
            await session.close()
        other = await storage.open("plain", direction="minimize", space=SPACE)
        await other.close()
        assert sorted(s.name for s in await storage.studies()) == sorted([name, "plain"])
        (back,) = await storage.load(name)
        assert dict(back.user_attrs) == {name: name}
        assert (await storage.summary(name)).name == name

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
                # step 3 never went through trial_reported: it is written with the end.
                reports=MappingProxyType({1: 0.5, 2: math.nan, 3: math.inf}),
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
        assert loaded.reports[1] == 0.5 and math.isnan(loaded.reports[2]) and loaded.reports[3] == math.inf
        assert dict(loaded.user_attrs) == {"note": "é\x00", "n": [1, 2]}
        assert (loaded.error, loaded.traceback, loaded.started, loaded.ended) == (
            "ValueError: boom",
            "Traceback ...",
            1.5,
            2.5,
        )
        assert loaded.duration == 1.0

    async def test_a_report_at_the_largest_step_round_trips(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            n = await session.reserve()
            await session.trial_created(running(n))
            await session.trial_reported(n, MAX_STEP, 2.0)
            await session.trial_ended(ended(n, 2.0, reports={MAX_STEP: 2.0}))
        finally:
            await session.close()
        (loaded,) = await storage.load("s", space=SPACE)
        assert dict(loaded.reports) == {MAX_STEP: 2.0}

    async def test_a_report_step_beyond_64_bits_is_refused(self, storage: Storage) -> None:
        session = await storage.open("s", direction="minimize", space=SPACE)
        try:
            n = await session.reserve()
            await session.trial_created(running(n))
            for step in (MAX_STEP + 1, -1):
                with pytest.raises(ReportStepError, match="64-bit"):
                    await session.trial_reported(n, step, 1.0)
            await session.trial_ended(ended(n, 1.0))
        finally:
            await session.close()
        (loaded,) = await storage.load("s", space=SPACE)
        assert dict(loaded.reports) == {}

    async def test_every_objective_value_round_trips(self, storage: Storage) -> None:
        directions = ("minimize", "maximize", "minimize")
        session = await storage.open("multi", direction=list(directions), space=SPACE)
        a = await _add(session, 1.5, (1.5, -2.0, 3.25))
        b = await _add(session, 0.5, (0.5, math.inf, math.nan))
        await session.close()
        loaded = {r.number: r for r in await storage.load("multi", space=SPACE)}
        assert loaded[a].values == (1.5, -2.0, 3.25) and loaded[a].value == 1.5
        values = loaded[b].values
        assert values is not None and values[:2] == (0.5, math.inf) and math.isnan(values[2])
        assert (await storage.summary("multi")).direction == directions
        reopened = await storage.open("multi", direction=directions, space=SPACE)
        assert reopened.history[0].values == (1.5, -2.0, 3.25)
        await reopened.close()
        for wrong in ("minimize", ("minimize", "maximize"), ("maximize", "maximize", "minimize")):
            with pytest.raises(ValueError, match="direction"):
                await storage.open("multi", direction=wrong, space=SPACE)

    async def test_report_values_and_constraints_round_trip(self, storage: Storage) -> None:
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

    async def test_a_single_objective_study_keeps_a_string_direction_and_no_values(self, storage: Storage) -> None:
        session = await storage.open("one", direction="maximize", space=SPACE)
        number = await _add(session, 2.0)
        await session.close()
        assert (await storage.summary("one")).direction == "maximize"
        assert [r.values for r in await storage.load("one") if r.number == number] == [None]
        with pytest.raises(ValueError, match="direction"):
            await storage.open("one", direction=["maximize"], space=SPACE)

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
        assert dict((await storage.summary("s")).counts) == {"complete": 2}

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

    async def test_reserved_numbers_a_session_never_used_are_given_back(self, storage: Storage) -> None:
        if not storage.durable:
            pytest.skip("numbers are given back by durable storages (the trial numbers of a file or server stay dense)")
        s = await storage.open("dense", direction="minimize", space=SPACE)
        assert [await s.reserve() for _ in range(3)] == [0, 1, 2]
        await s.trial_created(running(0))
        await s.close()
        s = await storage.open("dense", direction="minimize", space=SPACE)
        assert await s.reserve() == 1
        await s.close()

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
            await b.trial_ended(ended(n, 3.0, reports={1: 0.25}))
            (seen,) = await a.refresh()
            assert seen.state is TrialState.COMPLETE and seen.value == 3.0
            assert await a.refresh() == [] and await b.refresh() == []
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

    # -- leases and LOST trials (with a short_lease_storage fixture) --------------------------------

    async def test_claim_lost_marks_a_dead_sessions_trials_once(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("lease", direction="minimize", space=SPACE)
        alive1 = await storage.open("lease", direction="minimize", space=SPACE)
        alive2 = await storage.open("lease", direction="minimize", space=SPACE)
        try:
            numbers = [await dead.reserve() for _ in range(3)]
            for n in numbers:
                await dead.trial_created(running(n))
            await dead.trial_ended(ended(numbers[0], 1.0))
            mine = await alive1.reserve()
            await alive1.trial_created(running(mine))
            await dead.heartbeat()
            assert await alive1.claim_lost() == []  # the lease still runs
            with anyio.fail_after(30):
                claims: list[list[TrialRecord]] = [[], []]
                while len(claims[0]) + len(claims[1]) < 2:
                    await anyio.sleep(0.1)
                    await alive1.heartbeat()
                    await alive2.heartbeat()
                    claims[0] += await alive1.claim_lost()
                    claims[1] += await alive2.claim_lost()
            claimed = [r.number for c in claims for r in c]
            assert sorted(claimed) == numbers[1:]
            for record in (r for c in claims for r in c):
                assert record.state is TrialState.LOST and "lease" in (record.error or "")
                assert dict(record.params) == _PARAMS
                assert record.ended is not None and record.ended >= record.started
            assert await alive1.claim_lost() == [] and await alive2.claim_lost() == []
            # The other live session hears of the LOST records through refresh.
            other = alive2 if claims[0] else alive1
            lost_seen = [r.number for r in await other.refresh() if r.state is TrialState.LOST]
            assert sorted(lost_seen) == numbers[1:]
        finally:
            for s in (alive1, alive2, dead):
                await s.close()
        states = {r.number: r.state for r in await storage.load("lease")}
        assert states == {
            numbers[0]: TrialState.COMPLETE,
            numbers[1]: TrialState.LOST,
            numbers[2]: TrialState.LOST,
            mine: TrialState.RUNNING,
        }

    async def test_concurrent_claims_split_the_lost_trials(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("race", direction="minimize", space=SPACE)
        for _ in range(30):
            await dead.trial_created(running(await dead.reserve()))
        claimers = [await storage.open("race", direction="minimize", space=SPACE) for _ in range(4)]
        try:
            await _past_lease(dead, claimers, self.short_lease)
            results: list[list[TrialRecord]] = []

            async def claim(s: Any) -> None:
                await s.heartbeat()
                results.append(await s.claim_lost())

            async with anyio.create_task_group() as tg:
                for s in claimers:
                    tg.start_soon(claim, s)
            assert sorted(r.number for res in results for r in res) == list(range(30))
        finally:
            for s in (*claimers, dead):
                await s.close()

    async def test_a_lost_trial_never_ends_before_it_started(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("late", direction="minimize", space=SPACE)
        alive = await storage.open("late", direction="minimize", space=SPACE)
        try:
            n = await dead.reserve()
            # Created after the dead session's last heartbeat: that heartbeat predates the trial.
            late = replace(running(n), started=time.time() + 60)
            await dead.trial_created(late)
            await _past_lease(dead, [alive], self.short_lease)
            (lost,) = await alive.claim_lost()
            assert lost.ended == late.started and lost.duration == 0.0
        finally:
            await alive.close()
            await dead.close()

    async def test_a_closed_sessions_leftover_running_trials_are_claimed_at_once(self, storage: Storage) -> None:
        if not storage.durable:
            pytest.skip("a storage that is not durable keeps no trials of closed sessions to claim")
        gone = await storage.open("closed", direction="minimize", space=SPACE)
        n = await gone.reserve()
        await gone.trial_created(running(n))
        await gone.close()
        other = await storage.open("closed", direction="minimize", space=SPACE)
        try:
            assert [r.number for r in await other.claim_lost()] == [n]
        finally:
            await other.close()

    # -- exactness (backends whose sessions declare ``exact``) ---------------------------------------

    async def test_reserve_within_counts_every_session_and_their_reservations(self, storage: Storage) -> None:
        async with _two_exact(storage) as (a, b):
            n0 = await a.reserve_within(3)
            n1 = await b.reserve_within(3)
            n2 = await a.reserve_within(3)
            assert sorted([n0, n1, n2]) == [0, 1, 2]
            assert await b.reserve_within(3) is None  # three reservations use the budget, none created yet
            await a.release(n2)
            assert await b.reserve_within(3) == 3
            await a.trial_created(running(n0))
            await a.trial_ended(ended(n0, 0.1))
            await a.trial_ended(ended(n0, 0.1))  # a final record written twice counts once
            assert await a.reserve_within(3) is None
            await b.trial_created(running(n1))
            await b.trial_ended(ended(n1, math.nan, state=TrialState.CANCELLED))  # uncounted: its unit comes back
            assert await a.reserve_within(3) == 4
            assert await a.reserve_within(None) == 5  # no budget: always a number

    async def test_a_closed_sessions_reservations_stop_counting(self, storage: Storage) -> None:
        async with _two_exact(storage) as (a, b):
            assert await a.reserve_within(2) is not None
            assert await a.reserve_within(2) is not None
            assert await b.reserve_within(2) is None
            await a.close()
            assert await b.reserve_within(2) is not None

    async def test_trial_created_once_holds_a_key_across_sessions(self, storage: Storage) -> None:
        async with _two_exact(storage) as (a, b):
            first = running(await a.reserve_within(None))
            assert await a.trial_created_once(first, "point-1")
            second = running(await b.reserve_within(None))
            assert not await b.trial_created_once(second, "point-1")
            assert await b.trial_created_once(second, "point-2")
            await a.trial_ended(ended(first.number, math.nan, state=TrialState.CANCELLED))  # frees its key
            third = running(await b.reserve_within(None))
            assert await b.trial_created_once(third, "point-1")
            numbers = {r.number for r in await storage.load("s")}
            assert numbers == {first.number, second.number, third.number}

    async def test_a_failed_or_lost_trial_is_retried_once_with_its_checkpoint(self, storage: Storage) -> None:
        async with _two_exact(storage) as (a, b):
            first = running(await a.reserve_within(None))
            await a.trial_created(first)
            await a.put_checkpoint(first.number, b"weights")
            await a.trial_ended(replace(ended(first.number, math.nan, state=TrialState.FAILED), error="MemoryError"))
            retry_a = running(await a.reserve_within(None), retry_of=first.number)
            retry_b = running(await b.reserve_within(None), retry_of=first.number)
            assert await b.trial_created_retry(retry_b)
            assert not await a.trial_created_retry(retry_a)  # retried once, whoever comes second
            assert await b.get_checkpoint(retry_b.number) == b"weights"
            assert await a.get_checkpoint(first.number) is None  # moved, not copied
            busy = running(await a.reserve_within(None))
            await a.trial_created(busy)
            assert not await a.trial_created_retry(running(await a.reserve_within(None), retry_of=busy.number))
            assert not await a.trial_created_retry(running(await a.reserve_within(None), retry_of=10**6))

    async def test_a_retry_takes_over_the_key_and_a_cancelled_retry_frees_it(self, storage: Storage) -> None:
        async with _two_exact(storage) as (a, b):
            first = running(await a.reserve_within(None))
            assert await a.trial_created_once(first, "point")
            await a.trial_ended(ended(first.number, math.nan, state=TrialState.LOST))
            retry = running(await b.reserve_within(None), retry_of=first.number)
            assert await b.trial_created_retry(retry)
            assert not await a.trial_created_once(running(await a.reserve_within(None)), "point")
            await b.trial_ended(ended(retry.number, math.nan, state=TrialState.CANCELLED))
            assert await a.trial_created_once(running(await a.reserve_within(None)), "point")

    async def test_a_late_end_of_a_trial_marked_lost_is_not_counted_twice(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        async with _two_exact(storage) as (slow, other):
            trial = running(await slow.reserve_within(2))
            await slow.trial_created(trial)
            await _past_lease(slow, [other], self.short_lease)  # `slow` misses its heartbeats: taken for dead
            assert [r.number for r in await other.claim_lost()] == [trial.number]
            assert await slow.refresh() == []  # the owner does not hear of the LOST mark on its own trial
            retry = running(await other.reserve_within(2), retry_of=trial.number)
            assert await other.trial_created_retry(retry)
            await slow.heartbeat()
            await slow.trial_ended(ended(trial.number, 0.1))  # the presumed-dead tuner finishes after all
            assert [r.number for r in await other.refresh()] == []
            states = {r.number: r.state for r in await storage.load("s")}
            assert states == {trial.number: TrialState.LOST, retry.number: TrialState.RUNNING}
            assert await other.reserve_within(2) is not None  # one unit left: the LOST trial uses none
            assert await other.reserve_within(2) is None

    async def test_a_session_taken_for_dead_cannot_exceed_the_budget(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        async with _two_exact(storage) as (slow, other):
            number = await slow.reserve_within(1)
            assert number is not None
            await _past_lease(
                slow, [other], self.short_lease
            )  # `slow` misses its heartbeats: its reservation is given back
            await other.claim_lost()
            mine = await other.reserve_within(1)
            assert mine is not None
            await other.trial_created(running(mine))
            await slow.heartbeat()
            await slow.trial_created(running(number))  # too late: the budget is used up
            await slow.trial_ended(ended(number, 1.0))
            assert [r.number for r in await storage.load("s")] == [mine]

    # -- readers ----------------------------------------------------------------------------------

    async def test_a_reader_returns_only_what_changed_since_its_last_read(self, storage: Storage) -> None:
        writer = await storage.open("w", direction="minimize", space=SPACE)
        done = await _add(writer, 1.0)
        async with await storage.watch("w", space=SPACE) as reader:
            assert [r.number for r in await reader.read()] == [done]  # the first read: everything
            assert await reader.read() == []  # nothing changed
            number = await writer.reserve()
            reports: dict[int, float] = {}
            await writer.trial_created(running(number, reports))
            got = await reader.read()
            assert [(r.number, r.state) for r in got] == [(number, TrialState.RUNNING)]
            assert got[0].params["kind"] == ("b", 2)
            reports[0] = 0.25
            await writer.trial_reported(number, 0, 0.25)
            got = await reader.read()
            assert [r.number for r in got] == [number] and got[0].reports == {0: 0.25}
            if self.shares_studies:
                # A second session sharing the study writes too: the reader sees both, each trial once.
                other = await storage.open("w", direction="minimize", space=SPACE)
                theirs = await _add(other, 3.0)
                await writer.trial_ended(ended(number, 0.25, reports=reports))
                got = await reader.read()
                assert [(r.number, r.state) for r in got] == [
                    (number, TrialState.COMPLETE),
                    (theirs, TrialState.COMPLETE),
                ]
                await other.close()
            assert await reader.read() == []
        await writer.close()
        with pytest.raises(RuntimeError, match="closed"):
            await reader.read()

    async def test_a_reader_misses_nothing_while_sessions_write(self, storage: Storage) -> None:
        a = await storage.open("live", direction="minimize", space=SPACE)
        b = await storage.open("live", direction="minimize", space=SPACE) if self.shares_studies else a
        reader = await storage.watch("live")
        seen: dict[int, TrialRecord] = {}
        finished = anyio.Event()

        async def write(session: Any, n: int) -> None:
            for i in range(n):
                number = await session.reserve()
                reports: dict[int, float] = {}
                await session.trial_created(running(number, reports))
                reports[0] = float(i)
                await session.trial_reported(number, 0, float(i))
                await session.trial_ended(ended(number, float(i), reports=reports))
                await anyio.sleep(0)

        async def watch() -> None:
            while True:
                last = finished.is_set()
                for record in await reader.read():
                    seen[record.number] = record
                if last:
                    return
                await anyio.sleep(0)

        try:
            with anyio.fail_after(60):
                async with anyio.create_task_group() as tg:
                    tg.start_soon(watch)
                    async with anyio.create_task_group() as writers:
                        writers.start_soon(write, a, 15)
                        if b is not a:
                            writers.start_soon(write, b, 15)
                    finished.set()
        finally:
            await reader.close()
            await a.close()
            if b is not a:
                await b.close()
        assert sorted(seen) == sorted(r.number for r in await storage.load("live"))
        assert all(r.state is TrialState.COMPLETE and r.reports for r in seen.values())

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
        session = await storage.open("there", direction="minimize", space=SPACE)
        await session.close()
        with pytest.raises(StudyNotFound):
            await storage.watch("nothing")

    # -- administration -----------------------------------------------------------------------------

    async def test_summary_rename_and_delete(self, storage: Storage) -> None:
        session = await storage.open("old", direction="maximize", space=SPACE)
        await _add(session, 1.0)
        await session.close()
        later = await storage.open("b", direction="minimize", space=SPACE)
        await later.close()
        listed = await storage.studies()
        assert all(isinstance(s, StudySummary) for s in listed)
        assert [(s.name, s.direction, s.n_trials, dict(s.counts)) for s in listed] == [
            ("b", "minimize", 0, {}),
            ("old", "maximize", 1, {"complete": 1}),
        ]
        summary = await storage.summary("old")
        assert summary.space == SPACE.describe()
        with pytest.raises(StudyNotFound, match="'zz'"):
            await storage.summary("zz")
        await storage.rename("old", "new")
        with pytest.raises(StudyNotFound):
            await storage.summary("old")
        with pytest.raises(StudyNotFound):
            await storage.rename("old", "other")
        with pytest.raises(ValueError, match="exists"):
            await storage.rename("new", "b")
        with pytest.raises(ValueError, match="non-empty"):
            await storage.rename("new", "")
        assert len(await storage.load("new")) == 1 and await storage.load("old") == []
        resumed = await storage.open("new", direction="maximize", space=SPACE)  # resumes under its new name
        assert [r.number for r in resumed.history] == [0] and await resumed.reserve() == 1
        await resumed.close()
        await storage.delete("new")
        assert [s.name for s in await storage.studies()] == ["b"]
        assert await storage.load("new") == []
        with pytest.raises(StudyNotFound):
            await storage.delete("new")

    async def test_a_study_open_in_a_live_tuner_is_not_deleted(self, storage: Storage) -> None:
        if not storage.durable:
            pytest.skip("a storage that is not durable lives in its tuner's process")
        session = await storage.open("busy", direction="minimize", space=SPACE)
        try:
            with pytest.raises(ValueError, match="running tuner"):
                await storage.delete("busy")
        finally:
            await session.close()
        await storage.delete("busy")
        assert await storage.studies() == []

    # -- the tuner on this storage ----------------------------------------------------------------

    async def test_a_seeded_study_resumes_where_it_stopped(self, storage: Storage) -> None:
        with anyio.fail_after(120):
            whole = await _tuner(storage, "whole", max_trials=12, seed=5).run()
            await _tuner(storage, "split", max_trials=5, seed=5).run()
            split = await _tuner(storage, "split", max_trials=12).run()  # no seed: the study's is used
            again = await _tuner(storage, "split", max_trials=12).run()  # nothing more to do
        assert [dict(t.params) for t in split.trials] == [dict(t.params) for t in whole.trials]
        assert [dict(t.reports) for t in split.trials] == [dict(t.reports) for t in whole.trials]
        assert [t.number for t in split.trials] == list(range(12))
        assert len(again.trials) == 12 and again.reason == "max_trials"

    async def test_a_resumed_grid_runs_each_point_once(self, storage: Storage) -> None:
        space = {"a": Int(0, 3), "b": Choice(["p", "q"])}
        kw: dict[str, Any] = {"space": space, "strategy": "grid", "objective": _grid_objective}
        with anyio.fail_after(120):
            await _tuner(storage, "g", max_trials=3, **kw).run()
            result = await _tuner(storage, "g", **kw).run()
        points = sorted((t.params["a"], t.params["b"]) for t in result.trials)
        assert points == sorted({(a, b) for a in range(4) for b in ("p", "q")})

    async def test_a_dead_sessions_trial_is_run_again_with_retry_of(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("retry", direction="minimize", space=SPACE)
        params = {"x": 0.125, "kind": "a"}
        await dead.trial_created(replace(running(await dead.reserve()), params=params))
        await _past_lease(dead, [], self.short_lease)
        with anyio.fail_after(120):
            result = await _tuner(storage, "retry", max_trials=3).run()
        await dead.close()
        assert result.trials[0].state is TrialState.LOST
        retries = [t for t in result.trials if t.retry_of == 0]
        assert len(retries) == 1 and dict(retries[0].params) == params and retries[0].state is TrialState.COMPLETE
        stored = {t.number: t for t in await storage.load("retry", space=SPACE)}
        assert stored[retries[0].number].retry_of == 0
        assert sum(t.state.counted for t in stored.values()) == 3

    async def test_retry_lost_off_leaves_the_configuration_alone(self, short_lease_storage: Storage) -> None:
        storage = short_lease_storage
        dead = await storage.open("noretry", direction="minimize", space=SPACE)
        await dead.trial_created(running(await dead.reserve()))
        await _past_lease(dead, [], self.short_lease)
        with anyio.fail_after(120):
            result = await _tuner(storage, "noretry", max_trials=2, retry_lost=False).run()
        await dead.close()
        assert result.trials[0].state is TrialState.LOST
        assert all(t.retry_of is None for t in result.trials)


def _objective(trial: Any) -> float:
    for step in range(3):
        trial.report(trial.params["x"] * step, step=step)
    return float(trial.params["x"])


def _grid_objective(trial: Any) -> float:
    return float(trial.params["a"])


def _tuner(storage: Storage, study: str, **kwargs: Any) -> Any:
    from ..tuner import Tuner

    kwargs.setdefault("strategy", "random")
    objective = kwargs.pop("objective", _objective)
    return Tuner(objective, kwargs.pop("space", SPACE), storage=storage, study=study, loggers=[], **kwargs)


async def _past_lease(dead: Any, alive: Sequence[Any], lease: float) -> None:
    """Wait until ``dead``'s lease of ``lease`` seconds has run out while the ``alive`` sessions renew theirs."""
    deadline = time.monotonic() + lease + 0.2
    while time.monotonic() < deadline:
        for session in alive:
            await session.heartbeat()
        await anyio.sleep(0.05)
    for session in alive:
        await session.heartbeat()


@asynccontextmanager
async def _two_exact(storage: Storage) -> AsyncIterator[tuple[Any, Any]]:
    """Two sessions of study ``s``; skips unless the backend declares its sessions exact."""
    a = await storage.open("s", direction="minimize", space=SPACE)
    b = await storage.open("s", direction="minimize", space=SPACE)
    try:
        if not (a.exact and b.exact):
            pytest.skip("this backend's sessions are not exact (StudySession.exact is False)")
        yield a, b
    finally:
        await a.close()
        await b.close()
