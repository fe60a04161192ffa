"""``loggers=["console"]`` (the default): progress on stderr.

On a terminal the progress is a live display drawn with rich: a bar against
``max_trials`` (or against the timeout when there is no trial budget), the
trials complete, pruned, failed and running, and the best value with its
parameters.  Elsewhere (a file, a pipe, a CI log) it is plain lines.

The hooks only note what happened.  The live display reads the study's own
counters, which the tuner keeps current in O(1), from a small thread that
redraws it a few times per second; so a trial end costs the logger a
comparison or two, whatever the size of the study.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
import time
from collections import deque
from collections.abc import Callable, Mapping
from typing import IO, TYPE_CHECKING, Any

from ..events import StudyEnded, StudyStarted, TrialEnded
from ..hookspecs import hookimpl
from ..study import StudyView
from ..trial import TrialState

if TYPE_CHECKING:  # rich is imported when a live display is first drawn, not with the package
    from rich.console import Console, RenderableType
    from rich.live import Live

__all__ = ["ConsoleLogger"]

log = logging.getLogger("hpt_async")

_COMPLETE, _PRUNED, _FAILED = TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED
_PAUSED = TrialState.PAUSED


def _fmt(value: float | None) -> str:
    return "-" if value is None else f"{value:.6g}"


def _clock(seconds: float) -> str:
    seconds = max(0, int(seconds))
    return f"{seconds // 3600}:{seconds // 60 % 60:02d}:{seconds % 60:02d}"


def _params(params: Mapping[str, Any], limit: int = 40) -> str:
    """``name=value`` pairs, each value's text cut to ``limit`` characters."""
    parts = []
    for key, value in params.items():
        text = f"{value:.6g}" if isinstance(value, float) else repr(value)
        if len(text) > limit:
            text = text[: limit - 1] + "…"
        parts.append(f"{key}={text}")
    return ", ".join(parts)


class _Board:
    """What the live display shows, read from the study's counters when drawn."""

    def __init__(self, study: StudyView, max_trials: int | None, timeout: float | None) -> None:
        self.study = study
        self.max_trials = max_trials
        self.timeout = timeout
        self.started = time.monotonic()
        self.stopped: float | None = None  # elapsed seconds, frozen when the study ends

    def elapsed(self) -> float:
        return self.stopped if self.stopped is not None else time.monotonic() - self.started

    def render(self) -> RenderableType:
        from rich.console import Group
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        study = self.study
        # Every read below is of an int or a reference the tuner replaces whole: safe from another thread.
        complete, pruned, failed = study.count(_COMPLETE), study.count(_PRUNED), study.count(_FAILED)
        paused = study.count(_PAUSED)
        running = len(study.running)
        done = complete + pruned + failed + paused
        elapsed = self.elapsed()
        if self.max_trials:
            bar = ProgressBar(total=self.max_trials, completed=min(done, self.max_trials), width=40)
            amount = f"{done}/{self.max_trials} trials"
        elif self.timeout:
            bar = ProgressBar(total=self.timeout, completed=min(elapsed, self.timeout), width=40)
            amount = f"{done} trials"
        else:
            bar = ProgressBar(total=None, pulse=self.stopped is None, width=40)
            amount = f"{done} trials"
        clock = _clock(elapsed) + (f" / {_clock(self.timeout)}" if self.timeout else "")
        head = Table.grid(padding=(0, 1))
        head.add_row(Text(f"[{study.name}]", style="bold"), bar, Text(f"{amount}  {clock}"))
        counts = Text.assemble(
            ("complete ", "dim"),
            (str(complete), "green"),
            ("  pruned ", "dim"),
            (str(pruned), "yellow"),
            ("  failed ", "dim"),
            (str(failed), "red"),
            ("  running ", "dim"),
            (str(running), "cyan"),
        )
        if paused:
            counts.append("  paused ", "dim")
            counts.append(str(paused), "magenta")
        best = study.best
        if len(study.directions) > 1:
            best_line = Text(f"Pareto front: {len(study.best_trials())} trials", style="dim")
        elif best is None:
            best_line = Text("best: none feasible yet" if complete else "best: none yet", style="dim")
        else:
            best_line = Text.assemble(
                ("best ", "dim"),
                (_fmt(best.value), "bold green"),
                (f" (trial {best.number}) ", "dim"),
                _params(best.params),
            )
            best_line.no_wrap = True
            best_line.overflow = "ellipsis"
        notes = [Text(note, style="yellow") for note in list(getattr(study, "notes", {}).values())]
        return Group(head, counts, best_line, *notes)


class ConsoleLogger:
    """Shows progress: trials done / running / pruned / failed, a bar, and the best so far.

    ``stream`` is where it writes (stderr unless given); ``console`` is a
    rich ``Console`` to draw on instead.  On a terminal (a ``stream`` whose
    ``isatty()`` is true, ``TERM`` not being ``dumb``, or a ``console`` whose
    ``is_terminal`` is) a live display is redrawn ``refresh_per_second``
    times per second, failed trials are printed above it, and it stays on
    screen at the end, followed by a summary.  Otherwise a plain status line is printed at most every
    ``interval`` seconds, with a line per failed trial.  ``quiet=True``
    shows only the closing status and summary; ``loggers=[]`` on the Tuner
    silences everything.  One logger object shows one study at a time.
    """

    name = "console"

    def __init__(
        self,
        stream: IO[str] | None = None,
        *,
        interval: float = 2.0,
        quiet: bool = False,
        console: Console | None = None,
        refresh_per_second: float = 4.0,
    ) -> None:
        if not refresh_per_second > 0:
            raise ValueError(f"refresh_per_second must be > 0, got {refresh_per_second!r}")
        self._stream = stream
        self._console = console
        self._drawing: Console | None = None  # the console drawn on when none was given
        self.interval = interval
        self.quiet = quiet
        self.refresh_per_second = float(refresh_per_second)
        self._last = 0.0
        self._max_trials: int | None = None
        self._shown = ""  # the last plain status line printed, so the closing one is not printed twice
        self._live_mode = False  # decided when a study starts
        self._board: _Board | None = None
        self._live: Live | None = None
        self._painter: threading.Thread | None = None
        self._stop = threading.Event()
        self._failures: deque[str] = deque()  # failure lines waiting for the painter (live mode)

    @property
    def stream(self) -> IO[str]:
        """Where plain lines go (stderr unless given)."""
        if self._stream is not None:
            return self._stream
        if self._console is not None:
            return self._console.file
        return sys.stderr

    def _tty(self) -> bool:
        if self._console is not None:
            return self._console.is_terminal and not self._console.is_dumb_terminal
        if os.environ.get("TERM", "").lower() in ("dumb", "unknown"):  # a terminal that cannot move the cursor
            return False
        isatty = getattr(self.stream, "isatty", None)
        try:
            return bool(isatty and isatty())
        except ValueError:  # a closed stream
            return False

    def _rich(self) -> Console:
        if self._console is not None:
            return self._console
        if self._drawing is None:  # made per study: the stream (sys.stderr) may have been replaced since
            from rich.console import Console

            self._drawing = Console(file=self.stream, force_terminal=True)
        return self._drawing

    def status(self, study: StudyView) -> str:
        """The one-line progress text for ``study``."""
        done = study.n_counted
        total = f"/{self._max_trials}" if self._max_trials else ""
        best = study.best
        if best is None:
            best_text = "none feasible yet" if study.count(_COMPLETE) else "none yet"
        else:
            best_text = f"{_fmt(best.value)} (trial {best.number})"
        if len(study.directions) > 1:
            best_text = f"Pareto front {len(study.best_trials())} trials"
        paused = study.count(_PAUSED)
        return (
            f"[{study.name}] {done}{total} done: {study.count(_COMPLETE)} complete, "
            f"{study.count(_PRUNED)} pruned, {study.count(_FAILED)} failed"
            + (f", {paused} paused" if paused else "")
            + f"; {len(study.running)} running; best {best_text}"
            + "".join(f"; {note}" for note in getattr(study, "notes", {}).values())
        )

    def _write(self, text: str) -> None:
        """One line: plain text, or through rich on a terminal (above the live display when one is shown)."""
        if self._live_mode:
            from rich.text import Text

            self._rich().print(Text(text))
        else:
            self.stream.write(text + "\n")
            self.stream.flush()

    # -- the live display -----------------------------------------------------------

    def _paint(self) -> None:
        """Print the failure lines waiting, then redraw (the painter thread, and the study end)."""
        from rich.text import Text

        live = self._live
        if live is None:
            return
        live.refresh()
        failures = self._failures
        while failures:
            live.console.print(Text(failures.popleft()))  # the display is redrawn below each line

    def _painting(self) -> None:
        period = 1.0 / self.refresh_per_second
        while not self._stop.wait(period):
            try:
                self._paint()
            except Exception:
                log.exception("the console's live display failed; it stops redrawing")
                return

    def _start_live(self, study: StudyView, event: StudyStarted) -> None:
        self._board = _Board(study, self._max_trials, getattr(event, "timeout", None))
        if self.quiet:
            return
        from rich.live import Live

        self._live = Live(console=self._rich(), auto_refresh=False, get_renderable=self._board.render)
        self._live.start(refresh=True)
        self._stop.clear()
        self._painter = threading.Thread(target=self._painting, name="hpt-async-console", daemon=True)
        self._painter.start()

    def _stop_live(self) -> None:
        painter, self._painter = self._painter, None
        if painter is not None:
            self._stop.set()
            painter.join()
        if self._board is not None:
            self._board.stopped = self._board.elapsed()
        live = self._live
        if live is not None:
            try:
                self._paint()  # the failures still waiting, and the final counts
            finally:
                self._live = None
                live.stop()  # the display stays on screen as drawn last
        elif self._board is not None:  # quiet: the closing status only
            self._rich().print(self._board.render())

    # -- hooks ---------------------------------------------------------------------

    @hookimpl
    def hpt_study_started(self, event: StudyStarted, study: StudyView) -> None:
        self._max_trials = getattr(event, "max_trials", None) or getattr(study, "max_trials", None)
        if self._live is not None:  # another study's display, never closed: freeze it
            self._stop_live()
        self._live_mode = self._tty()
        if not self.quiet:
            resumed = f", resuming {len(study.trials)} trials" if study.trials else ""
            self._write(
                f"[{event.study}] {event.direction} over {len(event.space)} "
                f"parameter{'' if len(event.space) == 1 else 's'}, seed {event.seed}{resumed}"
            )
            choice = getattr(event, "strategy_choice", None)
            if choice:
                self._write(f"[{event.study}] strategy {event.strategy}: {choice}")
        if self._live_mode:
            self._start_live(study, event)
        self._last = time.monotonic()

    @hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        if self.quiet:
            return
        record = event.record
        if record.state is _FAILED:
            line = f"[{study.name}] trial {record.number} failed: {record.error}"
            if self._live_mode:
                self._failures.append(line)  # printed by the painter, above the display
            else:
                self._write(line)
        if self._live_mode:
            return
        now = time.monotonic()
        if now - self._last >= self.interval:
            self._last = now
            self._shown = self.status(study)
            self._write(self._shown)

    @hookimpl
    def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        result = event.result
        if self._live_mode:
            self._stop_live()
        else:
            status = self.status(study)
            if status != self._shown:
                self._write(status)
        several = len(result.directions) > 1
        front = result.best_trials
        if front and not several:
            best = front[0]
            summary = (
                f"[{study.name}] stopped ({result.reason}); best value {_fmt(best.value)} "
                f"at trial {best.number}: {dict(best.params)}"
            )
        elif front:
            names = result.metric_names or result.directions
            if result.metric_names:
                names = [f"{n} ({d})" for n, d in zip(result.metric_names, result.directions, strict=True)]
            summary = (
                f"[{study.name}] stopped ({result.reason}); {len(front)} trials on the Pareto front of "
                f"{', '.join(names)}: {[t.number for t in front][:20]}"
            )
        elif result.count("complete"):
            summary = f"[{study.name}] stopped ({result.reason}); no feasible trial (every constraint <= 0) completed"
        else:
            summary = f"[{study.name}] stopped ({result.reason}); no trial completed"
        self._write(summary)
        self._live_mode = False
        self._board = None
        self._drawing = None


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``console``."""
    register("logger", "console", ConsoleLogger)
