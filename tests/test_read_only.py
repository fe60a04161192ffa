"""Read-only commands open storage read-only: nothing written, created or migrated.

CI runs as root, which ignores file permissions: the permission tests run
their reads in a forked child that drops to ``nobody`` first, so that a
read needing write access fails there as it would for a user.
"""

from __future__ import annotations

import contextlib
import io
import os
import shutil
import sqlite3
import stat
import tempfile
from collections.abc import Callable, Iterator
from pathlib import Path

import anyio
import pytest

import hpt_async as hpt
import hpt_async.cli as cli
import hpt_async.report
import hpt_async.studies
from hpt_async.storage.sqlite import (
    READABLE_FROM,
    SCHEMA_VERSION,
    ReadOnlyStorageError,
    SQLiteStorage,
    StorageFileError,
)

SPACE = {"x": hpt.Float(0.0, 1.0)}
NOBODY = 65534


def run_as_nobody(fn: Callable[[], int]) -> tuple[int, str]:
    """``fn()``'s result and output, run without root's powers (in a forked child when this is root)."""
    if os.geteuid() != 0:
        out = io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
            code = fn()
        return code, out.getvalue()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # pragma: no cover (the child)
        try:
            os.close(read)
            os.setgroups([])
            os.setgid(NOBODY)
            os.setuid(NOBODY)
            out = io.StringIO()
            with contextlib.redirect_stdout(out), contextlib.redirect_stderr(out):
                code = fn()
            os.write(write, f"{code}\n{out.getvalue()}".encode())
        except BaseException as exc:
            os.write(write, f"99\n{type(exc).__name__}: {exc}".encode())
        finally:
            os._exit(0)
    os.close(write)
    chunks = []
    while chunk := os.read(read, 65536):
        chunks.append(chunk)
    os.close(read)
    os.waitpid(pid, 0)
    code, _, text = b"".join(chunks).decode().partition("\n")
    return int(code), text


@pytest.fixture
def shared_dir() -> Iterator[Path]:
    """A directory others may enter (tmp_path's parents are root's only)."""
    path = Path(tempfile.mkdtemp(prefix="hpt-ro-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        for p in (path, *path.iterdir()):
            with contextlib.suppress(OSError):
                p.chmod(0o777 if p.is_dir() else 0o666)
        shutil.rmtree(path, ignore_errors=True)


def make_study(db: Path) -> None:
    async def objective(trial: hpt.Trial) -> float:
        trial.set_user_attr("note", "ok")
        return trial.params["x"]

    tuner = hpt.Tuner(
        objective, SPACE, storage=f"sqlite:///{db}", study="s", max_trials=4, loggers=[], seed=1, strategy="random"
    )
    anyio.run(tuner.run, backend="asyncio")
    assert not Path(f"{db}-wal").exists()


def cli_trials(db: Path) -> Callable[[], int]:
    return lambda: cli.main(["trials", "s", "--storage", f"sqlite:///{db}"])


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_a_read_only_file_in_a_read_only_folder_is_read(shared_dir: Path) -> None:
    db = shared_dir / "ro.db"
    make_study(db)
    db.chmod(0o444)
    shared_dir.chmod(0o555)
    for command in (["trials", "s"], ["best", "s"], ["studies"], ["export", "s"]):
        code, out = run_as_nobody(lambda c=command: cli.main([*c, "--storage", f"sqlite:///{db}"]))
        assert code == 0, out
        assert "hpt-async: error" not in out
    assert sorted(p.name for p in shared_dir.iterdir()) == ["ro.db"]


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs fork")
def test_reading_a_read_only_file_leaves_no_wal_or_shm_behind(shared_dir: Path) -> None:
    db = shared_dir / "ro.db"
    make_study(db)
    db.chmod(0o444)
    shared_dir.chmod(0o777)  # the folder is writable: SQLite could leave files there
    before = db.read_bytes()
    code, out = run_as_nobody(cli_trials(db))
    assert code == 0, out
    assert out.count("complete") == 4
    assert sorted(p.name for p in shared_dir.iterdir()) == ["ro.db"]
    assert db.read_bytes() == before


def test_read_only_reads_see_a_live_writer_and_never_touch_the_file(tmp_path: Path) -> None:
    db = tmp_path / "live.db"
    make_study(db)
    before = (db.read_bytes(), db.stat().st_mtime_ns)

    async def main() -> None:
        storage = hpt.open_storage(f"sqlite:///{db}", read_only=True)
        assert storage.read_only and isinstance(storage, SQLiteStorage)
        assert len(await storage.load("s")) == 4
        reader = await storage.watch("s")
        assert len(await reader.read()) == 4
        assert not Path(f"{db}-wal").exists()
        # A tuner starts writing: the reader (opened immutable) switches to reading the file live.
        writer = await SQLiteStorage(f"sqlite:///{db}").open("s", direction="minimize", space=hpt.Space(SPACE))
        n = await writer.reserve()
        await writer.trial_created(
            hpt.TrialRecord(number=n, state=hpt.TrialState.RUNNING, params={"x": 0.5}, started=1.0)
        )
        assert [r.number for r in await reader.read()] == [n]
        await reader.close()
        await writer.close()
        with pytest.raises(ReadOnlyStorageError):
            await storage.open("s", direction="minimize", space=hpt.Space(SPACE))
        with pytest.raises(ReadOnlyStorageError):
            await storage.delete("s")
        with pytest.raises(PermissionError):
            await storage.rename("s", "t")

    anyio.run(main, backend="asyncio")
    assert before[0] != db.read_bytes()  # the writer did write
    assert issubclass(ReadOnlyStorageError, hpt.HptError)


def test_a_read_only_reader_sees_writes_of_a_process_that_opened_and_closed_the_file_between_reads(
    tmp_path: Path,
) -> None:
    # Opened immutable (no writer had the file); a tuner then runs and closes before the next read, folding its
    # log into the file and removing it: the reader must notice the file changed, not only a present -wal.
    db = tmp_path / "quiet.db"
    make_study(db)

    async def main() -> list[int]:
        storage = hpt.open_storage(f"sqlite:///{db}", read_only=True)
        reader = await storage.watch("s")
        assert len(await reader.read()) == 4

        async def objective(trial: hpt.Trial) -> float:
            return trial.params["x"]

        more = hpt.Tuner(objective, SPACE, storage=f"sqlite:///{db}", study="s", max_trials=7, loggers=[], seed=1)
        await more.run()
        assert not Path(f"{db}-wal").exists()
        numbers = sorted(r.number for r in await reader.read())
        await reader.close()
        return numbers

    assert anyio.run(main, backend="asyncio") == [4, 5, 6]


def _downgrade(db: Path, version: int) -> None:
    con = sqlite3.connect(db)
    try:
        con.execute("UPDATE schema_version SET version = ?", (version,))
        con.commit()
    finally:
        con.close()


def test_read_only_never_migrates_and_says_what_to_do_with_an_old_file(tmp_path: Path) -> None:
    db = tmp_path / "old.db"
    make_study(db)
    # A file of the oldest readable version is read as it is, and stays at its version.
    _downgrade(db, READABLE_FROM)
    before = db.read_bytes()
    code = cli.main(["trials", "s", "--storage", f"sqlite:///{db}"])
    assert code == 0 and db.read_bytes() == before
    # An older one is refused with the way out, and left untouched.
    _downgrade(db, READABLE_FROM - 1)
    before = db.read_bytes()
    with pytest.raises(StorageFileError, match="hpt-async migrate"):
        hpt.load_study(hpt.open_storage(f"sqlite:///{db}", read_only=True), "s")
    assert db.read_bytes() == before


def test_hpt_async_migrate_brings_an_old_file_up_to_date(tmp_path: Path) -> None:
    from test_sqlite_migrations import make_old_file

    db = tmp_path / "v2.db"
    make_old_file(db, 2)
    assert cli.main(["migrate", "--storage", f"sqlite:///{db}"]) == 0
    con = sqlite3.connect(db)
    try:
        assert con.execute("SELECT version FROM schema_version").fetchall() == [(SCHEMA_VERSION,)]
    finally:
        con.close()
    assert len(hpt.load_study(hpt.open_storage(f"sqlite:///{db}", read_only=True), "old").trials) == 2


def test_the_default_read_only_storage_is_the_storage_itself() -> None:
    memory = hpt.MemoryStorage()
    assert hpt.open_storage(memory, read_only=True) is memory
    assert hpt.open_storage("memory", read_only=True).read_only is False
    assert stat.S_IMODE(0o444) == 0o444
