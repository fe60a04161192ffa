"""``loggers=["jsonl"]``: every lifecycle event as one JSON line in a file.

Each event becomes one JSON object on its own line (JSON Lines), appended to
the file, so several runs (a resumed study, another study) share one log.
:func:`read_events` reads it back.

A hook only appends the event to a list (O(1)).  Every :data:`ENCODE_EVERY`
events the list is encoded with orjson into one chunk of lines (small
batches, while the events are still in the CPU's caches), and the chunks are
written in one call: at study start, at study end, and ``flush_every``
seconds after the first event entered an empty buffer (a timer on the
asyncio loop; on another event loop every trial end is written at once
instead), or when :data:`MAX_BUFFERED` events are waiting.  A process killed
outright loses at most the last ``flush_every`` seconds of events; a crash in
the middle of a write leaves a truncated last line, which :func:`read_events`
skips.
"""

from __future__ import annotations

import asyncio
import enum
import json
import math
import numbers
import os
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import orjson

from ..events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
from ..hookspecs import hookimpl
from ..study import StudyView
from ..trial import TrialState

__all__ = ["DEFAULT_PATH", "ENCODE_EVERY", "MAX_BUFFERED", "PATH_ENV", "JsonlLogger", "read_events"]

PATH_ENV = "HPT_ASYNC_EVENT_LOG"
"""Environment variable naming the file of ``loggers=["jsonl"]``."""

DEFAULT_PATH = "hpt-events.jsonl"
"""The file of ``loggers=["jsonl"]`` when :data:`PATH_ENV` is unset, in the working directory."""

ENCODE_EVERY = 64
"""Events encoded together, in one batch."""

MAX_BUFFERED = 4096
"""Events buffered at most: beyond, the buffer is written without waiting for the timer."""


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


_STDLIB = json.JSONEncoder(allow_nan=False, separators=(",", ":"))
_LINE = orjson.OPT_APPEND_NEWLINE
_SIMPLE = frozenset((str, int, float, bool, type(None)))
_INT_MIN, _INT_END = -(2**63), 2**64  # the integers orjson writes


def _simple(obj: Any) -> bool:
    """True when ``obj`` holds only str/int/float/bool/None, lists and str-keyed dicts.

    orjson writes those exactly as this format wants (NaN and infinity as
    null); anything else goes through :func:`_plain` first.
    """
    kind = type(obj)
    if kind in _SIMPLE:
        return kind is not int or _INT_MIN <= obj < _INT_END  # orjson refuses wider integers
    if kind is list:
        return all(_simple(v) for v in obj)
    if kind is dict:
        return all(type(k) is str and _simple(v) for k, v in obj.items())
    return False


def _dumps(obj: Any) -> bytes:
    """One compact JSON text of ``obj``, anything JSON cannot hold made safe first."""
    if _simple(obj):
        return orjson.dumps(obj)
    return _STDLIB.encode(_plain(obj)).encode()


def _mapping(values: Mapping[str, Any]) -> orjson.Fragment:
    """A flat mapping (params, user attributes) encoded once, to be embedded in lines."""
    if type(values) is not dict:
        values = dict(values)
    if _SIMPLE.issuperset(map(type, values.values())):
        try:
            return orjson.Fragment(orjson.dumps(values))
        except TypeError:  # keys that are not strings, integers wider than 64 bits
            pass
    return orjson.Fragment(_dumps(values))


_NO_ATTRS = orjson.Fragment(b"{}")

# What a hook appends: (kind, event or record, study name); kinds below, or _RAW with encoded bytes.
_RAW, _CREATED, _STARTED, _REPORTED, _ENDED = range(5)


class JsonlLogger:
    """Appends every lifecycle event to ``path`` as one JSON object per line.

    ``path`` defaults to the environment variable :data:`PATH_ENV`, else
    :data:`DEFAULT_PATH` in the working directory.  The file is opened in
    append mode when a study starts and closed when it ends.  Events are
    buffered and written at study start and end and at most ``flush_every``
    seconds after they were logged (``0`` writes every event at once).  Every
    line has ``event``, ``time`` (Unix seconds) and ``study``; see
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
        self._events: list[tuple[int, Any, Any]] = []  # waiting to be encoded
        self._chunks: list[bytes] = []  # encoded lines waiting to be written
        self._armed = False  # something is buffered and will be written in time (or at once)
        self._timer: asyncio.TimerHandle | None = None  # writes the buffer when it is flush_every old
        self._timerless = False  # no asyncio loop to time writes: trial ends write at once
        # Params of running trials as created, and encoded once: (study, number) -> (params, JSON).
        self._params: dict[tuple[str, int], tuple[Mapping[str, Any], orjson.Fragment]] = {}

    # -- writing ---------------------------------------------------------------

    def _more(self, ended: bool = False) -> None:
        """The buffer grew past a threshold, or stopped being empty: encode, arrange a write, or write."""
        if self.flush_every <= 0:
            self.flush()
            return
        if not self._armed:
            self._armed = True
            try:
                loop = asyncio.get_running_loop()
            except RuntimeError:  # not on asyncio: trial ends are written at once instead
                self._timerless = True
            else:
                self._timer = loop.call_later(self.flush_every, self._on_timer)
        if ended and self._timerless:
            self.flush()
        elif len(self._events) >= ENCODE_EVERY:
            events, self._events = self._events, []
            self._chunks.append(self._encode(events))
            if len(self._chunks) * ENCODE_EVERY >= MAX_BUFFERED:
                self.flush()

    def _on_timer(self) -> None:
        self._timer = None
        self.flush()

    def _encode(self, events: list[tuple[int, Any, Any]]) -> bytes:
        """The JSON lines of buffered events, in order."""
        dumps = orjson.dumps
        params_of = self._params
        out: list[bytes] = []
        append = out.append
        created, started, ended, reported = _CREATED, _STARTED, _ENDED, _REPORTED
        for kind, event, study in events:
            if kind == ended:
                cached = params_of.pop((study, event.number), None)
                if cached is not None and cached[0] == event.params:
                    params = cached[1]
                else:  # not seen created, or changed while it ran (population-based training)
                    params = _mapping(event.params)
                end = event.ended
                line = {
                    "event": "trial_ended",
                    "time": end or event.started,
                    "study": study,
                    "number": event.number,
                    "state": event.state,  # a StrEnum: orjson writes its text
                    "value": event.value,
                    "error": event.error,
                    "duration": None if end is None else end - event.started,
                    "params": params,
                    "user_attrs": _mapping(event.user_attrs) if event.user_attrs else _NO_ATTRS,
                    "retry_of": event.retry_of,
                }
                if event.values is not None:
                    line["values"] = list(event.values)
                if event.constraints is not None:
                    line["constraints"] = list(event.constraints)
                    line["feasible"] = event.feasible
            elif kind == created:
                params = _mapping(event.params)
                params_of[(study, event.number)] = (event.params, params)
                line = {
                    "event": "trial_created",
                    "time": event.time,
                    "study": study,
                    "number": event.number,
                    "params": params,
                }
            elif kind == started:
                line = {"event": "trial_started", "time": event.time, "study": study, "number": event.number}
            elif kind == reported:
                line = {
                    "event": "trial_reported",
                    "time": event.time,
                    "study": study,
                    "number": event.number,
                    "step": event.step,
                    "value": event.value,
                }
                if event.values is not None:
                    line["values"] = list(event.values)
            else:
                append(event)
                continue
            try:
                append(dumps(line, option=_LINE))
            except TypeError:  # a value of an unexpected type: made safe, as in every other line
                if "params" in line:  # the encoded fragments back as the mappings they came from
                    line["params"] = event.params
                if "user_attrs" in line:
                    line["user_attrs"] = event.user_attrs
                if "state" in line:
                    line["state"] = event.state.value
                append(_STDLIB.encode(_plain(line)).encode() + b"\n")
        return b"".join(out)

    def flush(self) -> None:
        """Encode the buffered events and write them to the file in one call."""
        if self._timer is not None:
            self._timer.cancel()
            self._timer = None
        self._armed = False
        if self._file is None:
            return
        if self._events:
            events, self._events = self._events, []
            self._chunks.append(self._encode(events))
        if not self._chunks:
            return
        data = b"".join(self._chunks)
        self._chunks.clear()
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

    # -- hooks: O(1), no encoding ------------------------------------------------

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
        self._events.append((_RAW, _dumps(line) + b"\n", None))
        self.flush()

    @hookimpl
    def hpt_trial_created(self, event: TrialCreated, study: StudyView) -> None:
        events = self._events
        events.append((_CREATED, event, study.name))
        if len(events) >= ENCODE_EVERY or not self._armed:
            self._more()

    @hookimpl
    def hpt_trial_started(self, event: TrialStarted, study: StudyView) -> None:
        events = self._events
        events.append((_STARTED, event, study.name))
        if len(events) >= ENCODE_EVERY or not self._armed:
            self._more()

    @hookimpl
    def hpt_trial_reported(self, event: TrialReported, study: StudyView) -> None:
        events = self._events
        events.append((_REPORTED, event, study.name))
        if len(events) >= ENCODE_EVERY or not self._armed:
            self._more()

    @hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        events = self._events
        events.append((_ENDED, event.record, study.name))
        if len(events) >= ENCODE_EVERY or not self._armed or self._timerless:
            self._more(ended=True)

    @hookimpl
    def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        result = event.result
        front = result.best_trials
        best = front[0] if front and len(result.directions) == 1 else None
        counts = {state.value: n for state in TrialState if (n := study.count(state))}  # O(1): the view counts
        line = {
            "event": "study_ended",
            "time": event.time,
            "study": result.study,
            "reason": result.reason,
            "best": None if best is None else {"number": best.number, "value": best.value, "params": dict(best.params)},
            **({"best_trials": [t.number for t in front]} if len(result.directions) > 1 else {}),
            "trials": counts,
            "plugin_errors": dict(result.plugin_errors),
        }
        self.flush()  # encodes the trial lines while their params are still cached
        for key in [k for k in self._params if k[0] == result.study]:
            del self._params[key]  # trials that never announced an end (cancelled at close)
        self._events.append((_RAW, _dumps(line) + b"\n", None))
        self.flush()
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
