"""The side files a read-only reader of a SQLite database in WAL mode leaves behind, and their tidying.

A read-only connection to a database in WAL mode needs the ``-wal`` and
``-shm`` side files; SQLite makes them when they are missing and, being
read-only, cannot remove them; nor can a writer that closes while a reader
still has the file open remove its own.  :func:`tidy_side_files`, called
when the dashboard stops, removes them when no other process has the file
open.  The database's data are never changed.
"""

from __future__ import annotations

import os
import sqlite3

__all__ = ["tidy_side_files"]

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
