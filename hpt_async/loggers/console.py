"""``loggers=["console"]`` (the default): progress on stderr."""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import IO, Any

from ..events import StudyEnded, StudyStarted, TrialEnded
from ..hookspecs import hookimpl
from ..study import StudyView
from ..trial import TrialState

__all__ = ["ConsoleLogger"]


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


class ConsoleLogger:
    """Prints progress: trials done / running / pruned / failed and the best so far.

    On a terminal one status line is rewritten in place; otherwise a plain
    line is printed at most every ``interval`` seconds.  A summary closes the
    run.  ``quiet=True`` prints only that summary; ``loggers=[]`` on the
    Tuner silences everything.
    """

    name = "console"

    def __init__(self, stream: IO[str] | None = None, *, interval: float = 2.0, quiet: bool = False) -> None:
        self._stream = stream
        self.interval = interval
        self.quiet = quiet
        self._last = 0.0
        self._max_trials: int | None = None
        self._shown = ""  # the last status line printed, so the closing one is not printed twice

    @property
    def stream(self) -> IO[str]:
        """Where lines go (stderr unless given)."""
        return self._stream if self._stream is not None else sys.stderr

    def _tty(self) -> bool:
        isatty = getattr(self.stream, "isatty", None)
        return bool(isatty and isatty())

    def status(self, study: StudyView) -> str:
        """The one-line progress text for ``study``."""
        done = study.n_counted
        total = f"/{self._max_trials}" if self._max_trials else ""
        best = study.best
        best_text = "none yet" if best is None else f"{_fmt(best.value)} (trial {best.number})"
        return (
            f"[{study.name}] {done}{total} done: {study.count(TrialState.COMPLETE)} complete, "
            f"{study.count(TrialState.PRUNED)} pruned, {study.count(TrialState.FAILED)} failed; "
            f"{len(study.running)} running; best {best_text}"
        )

    def _write(self, text: str, *, final: bool = False) -> None:
        if self._tty():
            end = "\n" if final else ""
            self.stream.write(f"\r\x1b[2K{text}{end}")
        else:
            self.stream.write(text + "\n")
        self.stream.flush()

    @hookimpl
    def hpt_study_started(self, event: StudyStarted, study: StudyView) -> None:
        self._max_trials = getattr(study, "max_trials", None)
        if not self.quiet:
            resumed = f", resuming {len(study.trials)} trials" if study.trials else ""
            self._write(
                f"[{event.study}] {event.direction} over {len(event.space)} parameters, seed {event.seed}{resumed}",
                final=True,
            )
        self._last = time.monotonic()

    @hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        if self.quiet:
            return
        record = event.record
        if record.state is TrialState.FAILED:
            self._write(f"[{study.name}] trial {record.number} failed: {record.error}", final=True)
        now = time.monotonic()
        if now - self._last >= self.interval or (self._tty() and now - self._last >= 0.1):
            self._last = now
            self._shown = self.status(study)
            self._write(self._shown)

    @hookimpl
    def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        result = event.result
        status = self.status(study)
        if status != self._shown or self._tty():
            self._write(status, final=True)
        if result.best is not None:
            self._write(
                f"[{study.name}] stopped ({result.reason}); best value {_fmt(result.best.value)} "
                f"at trial {result.best.number}: {dict(result.best.params)}",
                final=True,
            )
        else:
            self._write(f"[{study.name}] stopped ({result.reason}); no trial completed", final=True)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``console``."""
    register("logger", "console", ConsoleLogger)
