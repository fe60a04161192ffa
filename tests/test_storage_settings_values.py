"""Both storages: a study's settings, several objective values and directions, the change reader, errors."""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import pytest
from common import cli

import hpt_async as hpt
from hpt_async.contracts.storage import Storage, StudyReader, merge_settings
from hpt_async.exceptions import HptError
from hpt_async.storage import StorageBusyError, StorageFileError, StudyNotFound
from hpt_async.storage.memory import MemoryStorage
from hpt_async.storage.sqlite import SQLiteStorage
from hpt_async.studies import load_study_async

pytestmark = pytest.mark.anyio

SPACE = hpt.Space({"x": hpt.Float(0.0, 1.0), "kind": hpt.Choice(["a", ("b", 2)])})
RUN1 = {"seed": 123, "strategy": {"name": "bayes", "n_initial": 8}, "pruner": {"name": "asha"}}


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: Any, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return SQLiteStorage(f"sqlite:///{tmp_path / 'v2.db'}")


def running(number: int, reports: dict[int, float] | None = None) -> hpt.TrialRecord:
    """A RUNNING record whose reports are a live view of ``reports``, as a tuner makes them."""
    live = MappingProxyType(reports if reports is not None else {})
    return hpt.TrialRecord(number, hpt.TrialState.RUNNING, {"x": 0.5, "kind": ("b", 2)}, reports=live, started=1.0)


def ended(
    number: int, value: float, values: tuple[float, ...] | None = None, reports: dict[int, float] | None = None
) -> hpt.TrialRecord:
    return hpt.TrialRecord(
        number,
        hpt.TrialState.COMPLETE,
        {"x": 0.5, "kind": ("b", 2)},
        value=value,
        values=values,
        reports=MappingProxyType(dict(reports or {})),
        started=1.0,
        ended=2.0,
    )


async def add_trial(session: Any, value: float, values: tuple[float, ...] | None = None) -> int:
    number = await session.reserve()
    await session.trial_created(running(number))
    await session.trial_ended(ended(number, value, values))
    return number


# -- settings ---------------------------------------------------------------------------------------


async def test_settings_are_stored_at_creation_and_the_seed_is_kept_on_reopen(storage: Storage) -> None:
    first = await storage.open("s", direction="minimize", space=SPACE, settings=RUN1)
    assert dict(first.settings) == RUN1
    await first.close()
    assert dict((await storage.summary("s")).settings) == RUN1

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


async def test_a_study_without_a_seed_takes_the_first_one_given(storage: Storage) -> None:
    session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": None})
    await session.close()
    session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 7})
    assert session.settings["seed"] == 7
    await session.close()
    session = await storage.open("s", direction="minimize", space=SPACE, settings={"seed": 8})
    assert session.settings["seed"] == 7
    await session.close()


async def test_a_study_opened_without_settings_has_none(storage: Storage) -> None:
    session = await storage.open("s", direction="minimize", space=SPACE)
    assert dict(session.settings) == {}
    await session.close()
    assert dict((await storage.summary("s")).settings) == {}


@pytest.mark.parametrize("bad", [{"seed": object()}, {1: "x"}, {"x": math.nan}, ["seed", 1]])
async def test_settings_that_are_not_json_are_refused(storage: Storage, bad: Any) -> None:
    with pytest.raises(ValueError, match="settings"):
        await storage.open("s", direction="minimize", space=SPACE, settings=bad)


def test_merge_settings_copies_what_it_is_given() -> None:
    given = {"strategy": {"name": "bayes"}}
    merged = merge_settings(None, given)
    given["strategy"]["name"] = "changed"
    assert merged == {"strategy": {"name": "bayes"}}


# -- several objectives ------------------------------------------------------------------------------


async def test_every_objective_value_round_trips(storage: Storage) -> None:
    directions = ("minimize", "maximize", "minimize")
    session = await storage.open("multi", direction=list(directions), space=SPACE)
    a = await add_trial(session, 1.5, (1.5, -2.0, 3.25))
    b = await add_trial(session, 0.5, (0.5, math.inf, math.nan))
    await session.close()

    loaded = {r.number: r for r in await storage.load("multi", space=SPACE)}
    assert loaded[a].values == (1.5, -2.0, 3.25) and loaded[a].value == 1.5
    assert loaded[b].values is not None and loaded[b].values[:2] == (0.5, math.inf) and math.isnan(loaded[b].values[2])
    summary = await storage.summary("multi")
    assert summary.direction == directions

    reopened = await storage.open("multi", direction=directions, space=SPACE)
    assert reopened.history[0].values == (1.5, -2.0, 3.25)
    await reopened.close()
    for wrong in ("minimize", ("minimize", "maximize"), ("maximize", "maximize", "minimize")):
        with pytest.raises(ValueError, match="direction"):
            await storage.open("multi", direction=wrong, space=SPACE)

    study = await load_study_async(storage, "multi", SPACE)
    assert study.direction == directions and [t.number for t in study.best_trials] == [a, b]
    with pytest.raises(hpt.SeveralObjectivesError, match="best_trials"):
        _ = study.best  # several objectives: no single best


async def test_a_single_objective_study_keeps_a_string_direction_and_no_values(storage: Storage) -> None:
    session = await storage.open("one", direction="maximize", space=SPACE)
    number = await add_trial(session, 2.0)
    await session.close()
    assert (await storage.summary("one")).direction == "maximize"
    assert [r.values for r in await storage.load("one") if r.number == number] == [None]
    with pytest.raises(ValueError, match="direction"):
        await storage.open("one", direction=["maximize"], space=SPACE)


@pytest.mark.parametrize("bad", ["up", [], ["minimize", "sideways"], 3])
async def test_a_bad_direction_is_refused(storage: Storage, bad: Any) -> None:
    with pytest.raises(ValueError, match="direction"):
        await storage.open("s", direction=bad, space=SPACE)


# -- the change reader --------------------------------------------------------------------------------


async def test_a_reader_returns_only_what_changed_since_its_last_read(storage: Storage) -> None:
    writer = await storage.open("w", direction="minimize", space=SPACE)
    done = await add_trial(writer, 1.0)
    async with await storage.watch("w", space=SPACE) as reader:
        assert [r.number for r in await reader.read()] == [done]  # the first read: everything
        assert await reader.read() == []  # nothing changed

        number = await writer.reserve()
        reports: dict[int, float] = {}
        await writer.trial_created(running(number, reports))
        got = await reader.read()
        assert [(r.number, r.state) for r in got] == [(number, hpt.TrialState.RUNNING)]
        assert got[0].params["kind"] == ("b", 2)

        reports[0] = 0.25
        await writer.trial_reported(number, 0, 0.25)
        got = await reader.read()
        assert [r.number for r in got] == [number] and got[0].reports == {0: 0.25}

        # A second session sharing the study writes too: the reader sees both writers, each trial once.
        other = await storage.open("w", direction="minimize", space=SPACE)
        theirs = await add_trial(other, 3.0, None)
        await writer.trial_ended(ended(number, 0.25, reports=reports))
        got = await reader.read()
        assert [(r.number, r.state) for r in got] == [
            (number, hpt.TrialState.COMPLETE),
            (theirs, hpt.TrialState.COMPLETE),
        ]
        assert await reader.read() == []
        await other.close()
    await writer.close()
    with pytest.raises(RuntimeError, match="closed"):
        await reader.read()


async def test_a_reader_keeps_up_with_sessions_writing_while_it_reads(storage: Storage) -> None:
    a = await storage.open("live", direction="minimize", space=SPACE)
    b = await storage.open("live", direction="minimize", space=SPACE)
    reader = await storage.watch("live")
    seen: dict[int, hpt.TrialRecord] = {}
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

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            tg.start_soon(watch)
            async with anyio.create_task_group() as writers:
                writers.start_soon(write, a, 15)
                writers.start_soon(write, b, 15)
            finished.set()
    await reader.close()
    assert sorted(seen) == list(range(30))
    assert all(r.state is hpt.TrialState.COMPLETE and r.reports for r in seen.values())
    await a.close()
    await b.close()


async def test_watching_a_missing_study_is_study_not_found(storage: Storage) -> None:
    with pytest.raises(StudyNotFound):
        await storage.watch("nothing")
    session = await storage.open("there", direction="minimize", space=SPACE)
    await session.close()
    with pytest.raises(StudyNotFound):
        await storage.watch("nothing")


async def test_the_default_reader_polls_load(tmp_path: Path) -> None:
    class Plain(Storage):
        """A backend with only the basics: the default reader serves it."""

        def __init__(self) -> None:
            self.inner = MemoryStorage()

        async def open(self, study: str, **kw: Any) -> Any:
            return await self.inner.open(study, **kw)

        async def load(self, study: str, *, space: Any = None) -> list[hpt.TrialRecord]:
            return await self.inner.load(study, space=space)

        async def studies(self) -> list[Any]:
            return await self.inner.studies()

    storage = Plain()
    session = await storage.open("p", direction="minimize", space=SPACE)
    first = await add_trial(session, math.nan)
    reader = await storage.watch("p")
    assert type(reader) is StudyReader
    assert [r.number for r in await reader.read()] == [first]
    assert await reader.read() == []  # a NaN value is no change
    second = await add_trial(session, 1.0)
    assert [r.number for r in await reader.read()] == [second]
    await reader.close()
    with pytest.raises(StudyNotFound):
        await storage.watch("missing")


# -- the command line -------------------------------------------------------------------------------


async def test_studies_and_best_show_the_seed_and_components(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'cli.db'}"
    storage = SQLiteStorage(url)
    session = await storage.open("resnet", direction="minimize", space=SPACE, settings=RUN1)
    await add_trial(session, 0.5)
    await session.close()
    session = await storage.open("pareto", direction=("minimize", "maximize"), space=SPACE)
    await add_trial(session, 0.25, (0.25, 4.0))
    await session.close()

    code, out, _ = await anyio.to_thread.run_sync(cli, capsys, "studies", "--storage", url)
    assert code == 0
    lines = {line.split()[0]: line for line in out.splitlines()}
    assert "SEED" in lines["STUDY"] and "COMPONENTS" in lines["STUDY"]
    assert "123" in lines["resnet"]
    assert "strategy=bayes(n_initial=8), pruner=asha" in lines["resnet"]
    assert "minimize,maximize" in lines["pareto"]

    code, out, _ = await anyio.to_thread.run_sync(cli, capsys, "best", "resnet", "--storage", url)
    assert code == 0
    assert "seed:      123" in out and "strategy:  bayes(n_initial=8)" in out and "pruner:    asha" in out
    code, out, _ = await anyio.to_thread.run_sync(cli, capsys, "best", "pareto", "--storage", url)
    assert code == 0
    assert "(minimize, maximize," in out and "Pareto front: 1 trials" in out
    front = out.splitlines()[-1].split()
    assert front[:3] == ["0", "0.25", "4"]  # trial 0 with both values


# -- errors and connections -------------------------------------------------------------------------


def test_storage_errors_are_hpt_errors_with_their_builtin_bases() -> None:
    for cls, builtin in (
        (StudyNotFound, LookupError),
        (StorageFileError, ValueError),
        (StorageBusyError, RuntimeError),
    ):
        assert issubclass(cls, HptError) and issubclass(cls, builtin)


async def test_close_under_cancellation_still_closes_the_connection(tmp_path: Path) -> None:
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}")
    session: Any = await storage.open("c", direction="minimize", space=SPACE)
    thread = session._conn.db._thread
    with anyio.CancelScope() as scope:
        scope.cancel()
        await session.close()
    with anyio.fail_after(30):  # a hang guard: the worker thread ends once its connection is closed
        await anyio.to_thread.run_sync(thread.join, abandon_on_cancel=True)
    import sqlite3

    con = sqlite3.connect(tmp_path / "c.db")
    try:
        assert con.execute("SELECT COUNT(*) FROM sessions").fetchone() == (0,)
    finally:
        con.close()


def test_a_session_never_closed_does_not_keep_the_process_alive(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import sys
        import anyio
        import hpt_async as hpt
        from hpt_async.storage.sqlite import SQLiteStorage

        KEPT = []

        async def main():
            storage = SQLiteStorage("sqlite:///" + sys.argv[1])
            space = hpt.Space({"x": hpt.Float(0.0, 1.0)})
            for _ in range(4):
                KEPT.append(await storage.open("s", direction="minimize", space=space))

        anyio.run(main)
        print("main returned")
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script, str(tmp_path / "open.db")], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr
    assert "main returned" in done.stdout
