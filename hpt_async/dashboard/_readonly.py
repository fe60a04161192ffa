"""A SQLite storage opened read-only, for readers such as the dashboard.

Every connection is opened with SQLite's ``mode=ro``: nothing it runs can
change the file, and no schema migration is attempted.  A read-only
connection to a database in WAL mode still needs the ``-wal`` and ``-shm``
side files; SQLite makes them when they are missing (when no writer has the
file open) and, being read-only, cannot remove them; nor can a writer that
closes while a reader still has the file open remove its own.
:meth:`aclose` tidies up (see :func:`tidy_side_files`): when the side files
exist and no other process has the file open, it opens and closes one
ordinary connection, which SQLite uses to fold the write-ahead log back
and delete both files, as the last writer to close would have done.
Another connection keeps the files in place, as SQLite always does.  The
database's data are never changed.
"""

from __future__ import annotations

import os
import sqlite3
from collections.abc import Mapping, Sequence
from typing import Any
from urllib.parse import quote

import anyio

from ..contracts.storage import Direction, StudySession
from ..space import Space
from ..storage.sqlite import SCHEMA_VERSION, ReadOnlyStorageError, SQLiteStorage, StorageFileError, _Connection

__all__ = ["ReadOnlySQLiteStorage", "ReadOnlyStorageError", "tidy_side_files"]

_SIDE_FILES = ("-wal", "-shm")


def tidy_side_files(path: str) -> None:
    """Remove the ``-wal`` and ``-shm`` files of the database at ``path`` when no process has it open.

    Opens and closes one ordinary connection after a read: SQLite's last
    connection to close folds the write-ahead log back into the file and
    deletes both side files, as the last writer to close would have done;
    the data are unchanged.  While another process holds the file open,
    SQLite leaves them, and this changes nothing.
    """
    if not os.path.exists(path) or not any(os.path.exists(path + s) for s in _SIDE_FILES):
        return
    try:
        db = sqlite3.connect(path, timeout=0)
        try:
            db.execute("SELECT 1 FROM sqlite_master LIMIT 1").fetchall()  # a read opens the log
        finally:
            db.close()
    except sqlite3.Error:
        pass


class ReadOnlySQLiteStorage(SQLiteStorage):
    """:class:`~hpt_async.storage.sqlite.SQLiteStorage` that only reads (``mode=ro`` connections).

    ``load``, ``watch``, ``studies``, ``summary`` and ``checkpoint`` work as
    on the writable storage; ``open``, ``delete`` and ``rename`` raise
    :class:`ReadOnlyStorageError`.  A file written by an older hpt-async
    (an older schema) is refused with a message saying how to update it,
    since updating it would be a write.  Await :meth:`aclose` when done.
    """

    def __repr__(self) -> str:
        return f"ReadOnlySQLiteStorage({self.url!r})"

    async def _connect(self, *, create: bool) -> _Connection | None:
        if create:
            raise ReadOnlyStorageError(f"{self.path} is opened read-only: it cannot be written")
        kind = await anyio.to_thread.run_sync(self._inspect, False)
        if kind == "missing":
            return None
        import aiosqlite

        uri = f"file:{quote(self.path)}?mode=ro"
        pending = aiosqlite.connect(uri, uri=True, timeout=0, isolation_level=None)
        thread = getattr(pending, "_thread", None)
        if thread is not None and not thread.is_alive():
            thread.daemon = True  # as the writable storage does: an unclosed reader never holds the process
        try:
            with anyio.CancelScope(shield=True):
                db = await pending
        except sqlite3.Error as exc:
            raise StorageFileError(f"cannot open {self.path} read-only: {exc}") from exc
        conn = _Connection(db, self.path, self.timeout)
        try:
            tables = await self._tables(conn)
            if tables:
                version = await self._check_version(conn, tables)
                if version < SCHEMA_VERSION:
                    raise StorageFileError(
                        f"{self.path} has schema version {version}, older than this hpt-async's "
                        f"({SCHEMA_VERSION}); it is opened read-only, so it is not updated here: run "
                        f"'hpt-async studies --storage sqlite:///{self.path}' once to update it"
                    )
        except BaseException:
            await conn.close()
            raise
        return conn

    async def open(
        self,
        study: str,
        *,
        direction: Direction | Sequence[str],
        space: Space,
        settings: Mapping[str, Any] | None = None,
    ) -> StudySession:
        raise ReadOnlyStorageError(f"{self.path} is opened read-only: a study cannot be run on it")

    async def delete(self, study: str) -> None:
        raise ReadOnlyStorageError(f"{self.path} is opened read-only: study {study!r} cannot be deleted")

    async def rename(self, old: str, new: str) -> None:
        raise ReadOnlyStorageError(f"{self.path} is opened read-only: study {old!r} cannot be renamed")

    async def aclose(self) -> None:
        """Remove the ``-wal``/``-shm`` files when no one else has the file open (see :func:`tidy_side_files`)."""
        await anyio.to_thread.run_sync(tidy_side_files, self.path)
