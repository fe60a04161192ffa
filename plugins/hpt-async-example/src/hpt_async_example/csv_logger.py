"""``loggers=["csv"]``: one CSV row per ended trial, flushed as it is written."""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path
from typing import TYPE_CHECKING, Any, TextIO

import hpt_async as hpt

if TYPE_CHECKING:
    from hpt_async import StudyView, TrialEnded

__all__ = ["COLUMNS", "DEFAULT_PATH", "PATH_ENV", "CsvLogger"]

PATH_ENV = "HPT_ASYNC_EXAMPLE_CSV"
"""Where ``loggers=["csv"]`` writes when this variable is set."""

DEFAULT_PATH = "hpt-async-trials.csv"
"""Where it writes otherwise, relative to the working directory."""

COLUMNS = ("study", "number", "state", "value", "params", "duration")
"""The header row."""


class CsvLogger:
    """Appends one row per ended trial to a CSV file.

    ``path`` defaults to ``$HPT_ASYNC_EXAMPLE_CSV``, or else
    ``hpt-async-trials.csv`` in the working directory (the path is resolved
    when the logger is built).  Rows are appended, so a resumed study or a
    second study continues the same file; the header is written when the
    file is empty.  Columns: ``study``, ``number``, ``state``, ``value``
    (empty when the trial has none), ``params`` (a JSON object; values JSON
    cannot hold are written as their ``repr``) and ``duration`` (seconds).

    Each row is flushed to the operating system as soon as it is written, so
    a crash of the process loses no ended trial.  The file is opened when the
    study starts and closed when it ends.
    """

    name = "csv"

    def __init__(self, path: str | os.PathLike[str] | None = None) -> None:
        if path is None:
            path = os.environ.get(PATH_ENV) or DEFAULT_PATH
        self.path = Path(path).absolute()
        self._file: TextIO | None = None
        self._writer: Any = None

    def _open(self) -> Any:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self._file = self.path.open("a", newline="", encoding="utf-8")
            self._writer = csv.writer(self._file)
            if os.fstat(self._file.fileno()).st_size == 0:
                self._writer.writerow(COLUMNS)
                self._file.flush()
        return self._writer

    def close(self) -> None:
        """Close the file (the next row opens it again)."""
        if self._file is not None:
            self._file.close()
            self._file = None
            self._writer = None

    @hpt.hookimpl
    def hpt_study_started(self) -> None:
        # Opening early makes a bad path fail loudly (in the log) before any trial has run.
        self._open()

    @hpt.hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        record = event.record
        self._open().writerow(
            (
                study.name,
                record.number,
                record.state.value,
                "" if record.value is None else record.value,
                json.dumps(dict(record.params), default=repr),
                "" if record.duration is None else record.duration,
            )
        )
        assert self._file is not None
        self._file.flush()

    @hpt.hookimpl
    def hpt_study_ended(self) -> None:
        self.close()

    def __repr__(self) -> str:
        return f"CsvLogger({str(self.path)!r})"
