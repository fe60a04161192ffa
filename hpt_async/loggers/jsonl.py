"""``loggers=["jsonl"]``: every lifecycle event as one JSON line in a file.

Each event becomes one JSON object on its own line (JSON Lines), appended to
the file, so several runs (a resumed study, another study) share one log.
:func:`read_events` reads it back.

Lines are buffered in memory and written in one call: at study start, at
study end, and ``flush_every`` seconds after the first line entered an empty
buffer (a timer on the asyncio loop; on another event loop every trial end is
written at once instead).  A process killed outright loses at most the last
``flush_every`` seconds of events; a crash in the middle of a write leaves a
truncated last line, which :func:`read_events` skips.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import numbers
import os
import time
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
from ..hookspecs import hookimpl
from ..study import StudyView

__all__ = ["DEFAULT_PATH", "PATH_ENV", "JsonlLogger", "read_events"]

PATH_ENV = "HPT_ASYNC_EVENT_LOG"
"""Environment variable naming the file of ``loggers=["jsonl"]``."""

DEFAULT_PATH = "hpt-events.jsonl"
"""The file of ``loggers=["jsonl"]`` when :data:`PATH_ENV` is unset, in the working directory."""

try:  # an optional, faster encoder; the standard json module otherwise
    import orjson as _orjson
except ImportError:  # pragma: no cover - depends on the environment
    _orjson = None


def _plain(value: Any) -> Any:
    """``value`` made JSON-safe: non-finite floats to None, unknown objects to their repr."""
    if value is None or isinstance(value, (str, bool)):
        return value  # str subclasses (StrEnum members) are written as their text, as json does
    if isinstance(value, numbers.Integral):
        return int(value)  # IntEnum members and numpy integers as plain numbers
    if isinstance(value, numbers.Real):
        f = float(value)
        return f if math.isfinite(f) else None
    if isinstance(value, enum.Enum):
        return repr(value)
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    if isinstance(value, Mapping):
        return {k if isinstance(k, str) else repr(k): _plain(v) for k, v in value.items()}
    return repr(value)


_ENCODER = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_string = json.encoder.encode_basestring_ascii  # the C string encoder behind json


def _stdlib_dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


def _dumps_flat(params: Mapping[str, Any]) -> str:
    """``params`` as a JSON object: a fast path for str keys and str/int/finite float values."""
    parts = []
    for key, value in params.items():
        kind = type(value)
        if type(key) is not str:
            return _dumps(dict(params))
        if kind is float:
            if value - value != 0.0:  # inf or nan
                return _dumps(dict(params))
            text = repr(value)
        elif kind is str:
            text = _string(value)
        elif kind is int:
            text = repr(value)
        elif value is None or kind is bool:
            text = "null" if value is None else ("true" if value else "false")
        else:
            return _dumps(dict(params))
        parts.append(f"{_string(key)}:{text}")
    return "{" + ",".join(parts) + "}"


def _dumps(obj: Any) -> str:
    """One compact JSON text of ``obj``; anything JSON cannot hold is made safe first."""
    try:
        if _orjson is not None:
            # orjson writes NaN as null itself, but accepts objects this format writes as repr: check them.
            return _orjson.dumps(obj).decode() if _simple(obj) else _stdlib_dumps(_plain(obj))
        return _stdlib_dumps(obj)
    except (TypeError, ValueError, OverflowError):
        return _stdlib_dumps(_plain(obj))


def _simple(obj: Any) -> bool:
    """True when ``obj`` holds only str/int/float/bool/None, lists and str-keyed dicts."""
    kind = type(obj)
    if kind is str or kind is int or kind is float or kind is bool or obj is None:
        return True
    if kind is list:
        return all(_simple(v) for v in obj)
    if kind is dict:
        return all(type(k) is str and _simple(v) for k, v in obj.items())
    return False


def _number(value: float | None) -> str:
    """A float as a JSON number, or ``null`` when missing or not finite."""
    if value is None or not math.isfinite(value):
        return "null"
    return repr(float(value))


class JsonlLogger:
    """Appends every lifecycle event to ``path`` as one JSON object per line.

    ``path`` defaults to the environment variable :data:`PATH_ENV`, else
    :data:`DEFAULT_PATH` in the working directory.  The file is opened in
    append mode when a study starts and closed when it ends.  Buffered lines
    are written at study start and end and at most ``flush_every`` seconds
    after they were logged (``0`` writes every event at once).  Every line
    has ``event``, ``time`` (Unix seconds) and ``study``; see
    ``docs/loggers.md`` for the fields of each event.
    """

    name = "jsonl"

    def __init__(self, path: str | os.PathLike[str] | None = None, *, flush_every: float = 0.5) -> None:
        if path is None:
            path = os.environ.get(PATH_ENV) or DEFAULT_PATH
        if flush_every < 0:
            raise ValueError(f"flush_every must be >= 0 seconds, got {flush_every}")
        self.path = Path(path)
        self.flush_every = float(flush_every)
        self._file: Any = None
        self._open_studies = 0
        self._lines: list[str] = []
        self._oldest = 0.0  # monotonic time of the oldest buffered line
        self._timer: asyncio.TimerHandle | None = None  # writes the buffer when it is flush_every old
        self._timerless = False  # no asyncio loop to time writes: trial ends write at once
        self._names: dict[str, str] = {}  # study name -> its JSON text
        self._params: dict[tuple[str, int], str] = {}  # params of running trials, encoded once

    # -- writing ---------------------------------------------------------------

    def _study(self, name: str) -> str:
        text = self._names.get(name)
        if text is None:
            text = self._names[name] = json.dumps(name)
        return text

    def _add(self, line: str, *, now: bool = False) -> None:
        lines = self._lines
        if not lines:
            self._oldest = time.monotonic()
            lines.append(line)
            if not now and self.flush_every > 0:
                self._schedule()
        else:
            lines.append(line)
        if now or time.monotonic() - self._oldest >= self.flush_every:
            self.flush()

    def _schedule(self) -> None:
        """Arrange for the buffer to be written ``flush_every`` seconds from now."""
        if self._timer is not None:
            return
        try:
            loop = asyncio.get_running_loop()
        except RuntimeError:  # not on asyncio: trial ends are written at once instead
            self._timerless = True
            return
        self._timer = loop.call_later(self.flush_every, self._on_timer)

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def flush(self) -> None:
        """Write the buffered lines to the file in one call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        if not self._lines or self._file is None:
            return
        data = "".join(self._lines).encode()
        self._lines.clear()
        view = memoryview(data)
        while view:
            written = self._file.write(view)
            view = view[written or 0 :]

    def _open(self) -> None:
        if self._file is None:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            f = open(self.path, "ab", buffering=0)
            try:
                if f.tell() > 0:
                    # A run that crashed mid-write left a line without its end: close it off.
                    with open(self.path, "rb") as r:
                        r.seek(-1, os.SEEK_END)
                        if r.read(1) != b"\n":
                            f.write(b"\n")
            except BaseException:
                f.close()
                raise
            self._file = f
        self._open_studies += 1

    def close(self) -> None:
        """Write what is buffered and close the file (it reopens at the next study start)."""
        if self._file is not None:
            try:
                self.flush()
            finally:
                self._file.close()
                self._file = None
                self._open_studies = 0

    # -- hooks -----------------------------------------------------------------

    @hookimpl
    def hpt_study_started(self, event: StudyStarted, study: StudyView) -> None:
        self._open()
        line = {
            "event": "study_started",
            "time": event.time,
            "study": event.study,
            "direction": event.direction,
            "seed": event.seed,
            "space": event.space.describe(),
            "resumed_trials": len(study.trials),
            "max_trials": getattr(study, "max_trials", None),
        }
        self._add(_dumps(line) + "\n", now=True)

    @hookimpl
    def hpt_trial_created(self, event: TrialCreated, study: StudyView) -> None:
        params = _dumps_flat(event.params)
        self._params[(study.name, event.number)] = params
        self._add(
            f'{{"event":"trial_created","time":{event.time!r},"study":{self._study(study.name)},'
            f'"number":{event.number},"params":{params}}}\n'
        )

    @hookimpl
    def hpt_trial_started(self, event: TrialStarted, study: StudyView) -> None:
        self._add(
            f'{{"event":"trial_started","time":{event.time!r},"study":{self._study(study.name)},'
            f'"number":{event.number}}}\n'
        )

    @hookimpl
    def hpt_trial_reported(self, event: TrialReported, study: StudyView) -> None:
        self._add(
            f'{{"event":"trial_reported","time":{event.time!r},"study":{self._study(study.name)},'
            f'"number":{event.number},"step":{event.step},"value":{_number(event.value)}}}\n'
        )

    @hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        record = event.record
        params = self._params.pop((study.name, record.number), None)
        if params is None:
            params = _dumps_flat(record.params)
        attrs = _dumps_flat(record.user_attrs) if record.user_attrs else "{}"
        error = "null" if record.error is None else json.dumps(record.error)
        duration = record.duration
        self._add(
            f'{{"event":"trial_ended","time":{_number(event.time)},"study":{self._study(study.name)},'
            f'"number":{record.number},"state":"{record.state.value}","value":{_number(record.value)},'
            f'"error":{error},"duration":{_number(duration)},"params":{params},"user_attrs":{attrs},'
            f'"retry_of":{"null" if record.retry_of is None else record.retry_of}}}\n',
            now=self._timerless,
        )

    @hookimpl
    def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        result = event.result
        best = result.best
        counts: dict[str, int] = {}
        for record in result.trials:
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        line = {
            "event": "study_ended",
            "time": event.time,
            "study": result.study,
            "reason": result.reason,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": dict(best.params)},
            "trials": counts,
            "plugin_errors": dict(result.plugin_errors),
        }
        for key in [k for k in self._params if k[0] == result.study]:
            del self._params[key]  # trials that never announced an end (cancelled at close)
        self._add(_dumps(line) + "\n", now=True)
        self._open_studies -= 1
        if self._open_studies <= 0:
            self.close()


def read_events(path: str | os.PathLike[str]) -> list[dict[str, Any]]:
    """The events of a JSON Lines log written by :class:`JsonlLogger`, in file order.

    A line that is not valid JSON is skipped when it is the last line of the
    file or is followed by a ``study_started`` event: both are what a process
    killed in the middle of a write leaves behind.  Any other invalid line
    raises ``ValueError`` naming the file and line number.  Blank lines are
    ignored.
    """
    events: list[dict[str, Any]] = []
    bad: tuple[int, str] | None = None  # an invalid line, waiting to see what follows it
    with open(path, encoding="utf-8", errors="replace") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                event = json.loads(line)
            except ValueError as exc:
                if bad is not None:
                    raise ValueError(f"{path}:{bad[0]}: not a JSON event: {bad[1]}") from exc
                bad = (lineno, str(exc))
                continue
            if not isinstance(event, dict):
                raise ValueError(f"{path}:{lineno}: not a JSON object")
            if bad is not None:
                if event.get("event") != "study_started":
                    raise ValueError(f"{path}:{bad[0]}: not a JSON event: {bad[1]}")
                bad = None
            events.append(event)
    return events


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``jsonl``."""
    register("logger", "jsonl", JsonlLogger)
