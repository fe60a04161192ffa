"""Settings, objectives, readers beyond the conformance suite: load_study, the default reader, the CLI, errors.

What every storage must do with settings, objective values and readers is in hpt_async.testing.storage.
"""

from __future__ import annotations

import math
import subprocess
import sys
import textwrap
from pathlib import Path
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
from hpt_async.testing.storage import SPACE, ended, running

pytestmark = pytest.mark.anyio

RUN1 = {"seed": 123, "strategy": {"name": "bayes", "n_initial": 8}, "pruner": {"name": "asha"}}


@pytest.fixture(params=["memory", "sqlite"])
def storage(request: Any, tmp_path: Path) -> Storage:
    if request.param == "memory":
        return MemoryStorage()
    return SQLiteStorage(f"sqlite:///{tmp_path / 'v2.db'}")


async def add_trial(session: Any, value: float, values: tuple[float, ...] | None = None) -> int:
    number = await session.reserve()
    await session.trial_created(running(number))
    await session.trial_ended(ended(number, value, values))
    return number


# -- settings ---------------------------------------------------------------------------------------


def test_merge_settings_copies_what_it_is_given() -> None:
    given = {"strategy": {"name": "bayes"}}
    merged = merge_settings(None, given)
    given["strategy"]["name"] = "changed"
    assert merged == {"strategy": {"name": "bayes"}}


# -- several objectives ------------------------------------------------------------------------------


async def test_load_study_of_several_objectives_has_best_trials_and_no_best(storage: Storage) -> None:
    directions = ("minimize", "maximize", "minimize")
    session = await storage.open("multi", direction=list(directions), space=SPACE)
    a = await add_trial(session, 1.5, (1.5, -2.0, 3.25))
    b = await add_trial(session, 0.5, (0.5, math.inf, math.nan))
    await session.close()
    study = await load_study_async(storage, "multi", SPACE)
    assert study.direction == directions and [t.number for t in study.best_trials] == [a, b]
    with pytest.raises(hpt.SeveralObjectivesError, match="best_trials"):
        _ = study.best  # several objectives: no single best


# -- the change reader --------------------------------------------------------------------------------


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
