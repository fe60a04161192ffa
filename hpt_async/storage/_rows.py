"""Trial rows of the SQL storages (SQLite and PostgreSQL): how records become rows and rows records.

Both storages keep a trial as one row of the same columns (:data:`_COLUMNS`)
holding JSON text: values, configurations, schedules and user attributes are
JSON (never pickled), a Choice is stored as its index into the space's values
(:class:`_Codec`), and a non-finite objective value as a string.  A row that
does not decode is left out of what a read returns and named in one
:class:`~hpt_async.exceptions.MalformedRowWarning` per read.  The options both
share (``sync``, ``lease``, ``timeout``) are checked here too.
"""

from __future__ import annotations

import json
import logging
import math
import warnings
from collections.abc import Iterable, Mapping, Sequence
from types import MappingProxyType
from typing import Any

from ..contracts.storage import Direction, StudySummary, TrialSummary
from ..exceptions import MalformedRowWarning
from ..space import Choice, Space
from ..trial import ScheduleEntry, TrialRecord, TrialState

log = logging.getLogger("hpt_async")

DEFAULT_SYNC = 1.0
DEFAULT_LEASE = 5.0
DEFAULT_TIMEOUT = 60.0

_EMPTY: Mapping[Any, Any] = MappingProxyType({})
_STATES = {s.value: s for s in TrialState}

#: The trial columns every read selects, in the order :func:`_record` takes them.
_COLUMNS = (
    "number, state, params, value, user_attrs, error, traceback, started, ended, retry_of, schedule, objective_values,"
    " constraints"
)
_LOST_ERROR = "LOST: the process running this trial stopped renewing its lease (it was killed or hung)"


# -- options ----------------------------------------------------------------------


def _seconds(kind: str, key: str, text: str) -> float:
    """The number of seconds of option ``key`` given as ``text`` in a ``kind`` URL (``sqlite``, ``postgresql``)."""
    try:
        value = float(text)
    except ValueError:
        raise ValueError(f"{kind} option {key}={text!r} is not a number of seconds") from None
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{kind} option {key} must be > 0 seconds, got {text!r}")
    return value


def _timing(
    kind: str, options: Mapping[str, str], sync: float | None, lease: float | None, timeout: float | None
) -> tuple[float, float, float]:
    """``(sync, lease, timeout)`` in seconds from keyword arguments, else the URL's options, else the defaults.

    Given alone, ``sync`` becomes a third of the lease when the default does
    not fit; the lease must be at least twice ``sync``.
    """
    given_sync = sync if sync is not None else (_seconds(kind, "sync", options["sync"]) if "sync" in options else None)
    given_lease = (
        lease if lease is not None else (_seconds(kind, "lease", options["lease"]) if "lease" in options else None)
    )
    for key, value in (("sync", given_sync), ("lease", given_lease), ("timeout", timeout)):
        if value is not None and (isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0):
            raise ValueError(f"{kind} option {key} must be a number of seconds > 0, got {value!r}")
    lease_s = float(given_lease) if given_lease is not None else max(DEFAULT_LEASE, 2 * (given_sync or 0))
    sync_s = float(given_sync) if given_sync is not None else min(DEFAULT_SYNC, lease_s / 3)
    if lease_s < 2 * sync_s:
        raise ValueError(
            f"{kind} option lease ({lease_s:g} s) must be at least twice sync ({sync_s:g} s): "
            "a live session would otherwise be taken for dead"
        )
    if timeout is None:
        timeout = _seconds(kind, "timeout", options["timeout"]) if "timeout" in options else DEFAULT_TIMEOUT
    return sync_s, lease_s, float(timeout)


# -- records to rows ----------------------------------------------------------------


def _json_default(obj: Any) -> Any:
    """JSON for numpy scalars and arrays; anything else is not serialisable."""
    for attr in ("tolist", "item"):
        fn = getattr(obj, attr, None)
        if callable(fn) and type(obj).__module__ == "numpy":
            return fn()
    raise TypeError(f"{type(obj).__name__} {obj!r} is not JSON-serialisable")


_ENCODER = json.JSONEncoder(default=_json_default, ensure_ascii=False, separators=(",", ":"))


def _dumps(obj: Any) -> str:
    return _ENCODER.encode(obj)


_RAW_DECODE = json.JSONDecoder().raw_decode


def _loads(text: str) -> Any:
    """JSON this module wrote (no surrounding whitespace: skips ``json.loads``' two regex scans)."""
    return _RAW_DECODE(text)[0]


def _dump_attrs(number: int, attrs: Mapping[str, Any]) -> str | None:
    if not attrs:
        return None
    try:
        return _dumps(dict(attrs))
    except (TypeError, ValueError):
        pass
    out: dict[str, Any] = {}
    for key, value in attrs.items():
        try:
            _dumps(value)
            out[key] = value
        except (TypeError, ValueError):
            log.warning(
                "trial %d: user attribute %r (%s) is not JSON-serialisable; its repr() is stored instead",
                number,
                key,
                type(value).__name__,
            )
            try:
                out[key] = repr(value)
            except Exception:
                out[key] = f"<unrepresentable {type(value).__name__}>"
    return _dumps(out)


class _Codec:
    """Configurations to JSON and back: a Choice as its index, numbers as themselves."""

    __slots__ = ("_choices", "_described")

    def __init__(self, space: Space | None, description: Mapping[str, Any]) -> None:
        # name -> the space's values (exact objects), and name -> their JSON descriptions.
        self._choices: dict[str, Choice] = {}
        if space is not None:
            self._choices = {n: d for n, d in space.items() if isinstance(d, Choice)}
        self._described: dict[str, list[Any]] = {
            n: list(d.get("values", ())) for n, d in description.items() if d.get("type") == "choice"
        }

    def encode(self, params: Mapping[str, Any]) -> str:
        choices = self._choices
        if not choices:
            return _dumps(dict(params))
        return _dumps({k: choices[k].index(v) if k in choices else v for k, v in params.items()})

    def decode(self, text: str) -> Mapping[str, Any]:
        return self.decode_obj(_loads(text))

    def decode_obj(self, raw: dict[str, Any]) -> Mapping[str, Any]:
        for name, values in self._described.items():
            if name in raw:
                i = raw[name]
                if isinstance(i, bool) or not isinstance(i, int) or not 0 <= i < len(values):
                    continue  # not an index this layout wrote: left as stored
                choice = self._choices.get(name)
                raw[name] = choice.values[i] if choice is not None else values[i]
        return MappingProxyType(raw)


def _dump_schedule(schedule: Sequence[ScheduleEntry], codec: _Codec) -> str | None:
    if not schedule:
        return None
    parts = [f"[{_dumps(e.step)},{codec.encode(e.params)},{_dumps(e.donor)}]" for e in schedule]
    return "[" + ",".join(parts) + "]"


def _load_schedule(text: str | None, codec: _Codec) -> tuple[ScheduleEntry, ...]:
    if not text:
        return ()
    return tuple(ScheduleEntry(step, codec.decode_obj(params), donor) for step, params, donor in _loads(text))


def _dump_values(values: Sequence[float] | None) -> str | None:
    """Every objective's value as a JSON list, a non-finite one as a string (``"nan"``, ``"inf"``)."""
    if values is None:
        return None
    return _dumps([float(v) if math.isfinite(v) else repr(float(v)) for v in values])


def _load_values(text: str | None) -> tuple[float, ...] | None:
    if text is None:
        return None
    return tuple(float(v) for v in _loads(text))


def _record(row: Sequence[Any], grouped: _Reports | None, codec: _Codec) -> TrialRecord:
    number, state, params, value, attrs, error, tb, started, ended, retry_of, schedule, values, constraints = row
    reports, report_values = grouped or (None, None)
    return TrialRecord(
        number=number,
        state=_STATES[state],
        params=codec.decode(params),
        value=value,
        reports=MappingProxyType(dict(reports)) if reports else _EMPTY,
        user_attrs=MappingProxyType(_loads(attrs)) if attrs else _EMPTY,
        error=error,
        traceback=tb,
        started=started,
        ended=ended,
        retry_of=retry_of,
        schedule=_load_schedule(schedule, codec),
        values=_load_values(values),
        report_values=MappingProxyType(report_values) if report_values else _EMPTY,
        constraints=_load_values(constraints),
    )


# A trial's reports: {step: value}, and {step: values} for those that gave every objective's value.
_Reports = tuple[dict[int, float], dict[int, tuple[float, ...]]]


def _group_reports(rows: Iterable[Sequence[Any]], bad: list[str] | None = None) -> dict[int, _Reports]:
    out: dict[int, _Reports] = {}
    for number, step, value, values in rows:
        try:
            decoded = _load_values(values) if values is not None else None
            fvalue = math.nan if value is None else float(value)
        except (ValueError, TypeError, IndexError) as exc:
            if bad is None:
                raise
            bad.append(f"the report of trial {number} at step {step} ({type(exc).__name__}: {exc})")
            continue
        reports, several = out.setdefault(number, ({}, {}))
        reports[step] = fvalue
        if decoded is not None:
            several[step] = decoded
    return out


def _records(
    rows: Iterable[Sequence[Any]], reports: dict[int, _Reports], codec: _Codec, bad: list[str]
) -> list[TrialRecord]:
    """The records of ``rows``; a row that does not decode is left out and described in ``bad``."""
    out = []
    for row in rows:
        try:
            out.append(_record(row, reports.get(row[0]), codec))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            bad.append(f"trial {row[0]!r} ({type(exc).__name__}: {exc})")
    return out


def _warn_malformed(study_id: int, bad: list[str]) -> None:
    if bad:
        shown = "; ".join(bad[:20]) + (f"; and {len(bad) - 20} more" if len(bad) > 20 else "")
        warnings.warn(
            f"study #{study_id}: {len(bad)} malformed row(s) left out, the rest of the study was read: {shown}",
            MalformedRowWarning,
            stacklevel=2,
        )


def _dump_direction(direction: Direction) -> tuple[str, str | None]:
    """``(direction, directions)`` columns: a tuple of directions also keeps its first in ``direction``."""
    if isinstance(direction, str):
        return direction, None
    return direction[0], _dumps(list(direction))


def _load_direction(first: str, directions: str | None) -> Direction:
    return first if directions is None else tuple(_loads(directions))


def _trial_row(study_id: int, session: int, record: TrialRecord, codec: _Codec) -> tuple[Any, ...]:
    """``(study_id, number, state, params, value, user_attrs, error, traceback, started, ended, retry_of, schedule,
    objective_values, constraints, session, writer)`` of ``record``, written by ``session``."""
    value = record.value
    if value is not None and math.isnan(value):
        value = None
    return (
        study_id,
        record.number,
        record.state.value,
        codec.encode(record.params),
        value,
        _dump_attrs(record.number, record.user_attrs),
        record.error,
        record.traceback,
        record.started,
        record.ended,
        record.retry_of,
        _dump_schedule(record.schedule, codec),
        _dump_values(record.values),
        _dump_values(record.constraints),
        session,
        session,
    )


def _report_rows(study_id: int, record: TrialRecord) -> list[tuple[Any, ...]]:
    """``(study_id, number, step, value, objective_values)`` of every report of ``record``."""
    several = record.report_values
    return [
        (study_id, record.number, s, None if math.isnan(v) else v, _dump_values(several.get(s)))
        for s, v in record.reports.items()
    ]


def _warn_end_not_stored(where: str, record: TrialRecord) -> None:
    """Log that the end of ``record`` was not stored (its trial was marked LOST, or its budget unit given away)."""
    log.warning(
        "study storage %s: the end (%s) of trial %d is not stored: another tuner took this one for dead "
        "(its lease ran out: raise 'lease') and marked the trial LOST (its retry runs it again), or gave "
        "the budget this trial had reserved to a trial of its own",
        where,
        record.state.value,
        record.number,
    )


# A study's row and its trial counts by state: ``{_STUDY_SUMMARY} {where} GROUP BY s.id, t.state ORDER BY s.name``.
_STUDY_SUMMARY = (
    "SELECT s.name, s.direction, s.directions, s.space, s.created, s.settings, t.state, COUNT(t.number)"
    " FROM studies s LEFT JOIN trials t ON t.study_id = s.id"
)


def _study_summaries(rows: Iterable[Sequence[Any]]) -> list[StudySummary]:
    """The summaries of the studies in ``rows`` (of :data:`_STUDY_SUMMARY`), in the rows' order."""
    out: dict[str, StudySummary] = {}
    for name, first, directions, space_text, created, settings, state, count in rows:
        summary = out.get(name)
        if summary is None:
            summary = out[name] = StudySummary(
                name=name,
                direction=_load_direction(first, directions),
                space=_loads(space_text),
                counts={},
                created=created,
                settings=_loads(settings) if settings else {},
            )
        if state is not None:
            summary.counts[state] = int(count)  # type: ignore[index]
    return list(out.values())


def _trial_summaries(
    rows: Iterable[Sequence[Any]], counts: Iterable[Sequence[Any]] | None, codec: _Codec, bad: list[str]
) -> list[TrialSummary]:
    """Summaries of :data:`_SELECT_SUMMARIES` rows and their reports' counts (run in a worker thread).

    ``counts`` ``None``: brief summaries of :data:`_SELECT_BRIEF` rows.  A
    malformed row is left out and described in ``bad``.
    """
    import orjson  # a dependency; imported here so that the bare package does not load it

    fast, error = orjson.loads, orjson.JSONDecodeError

    def decode(text: str) -> Mapping[str, Any]:
        try:
            raw = fast(text)
        except error:  # what orjson refuses (NaN, integers beyond 64 bits) the json module reads
            raw = _loads(text)
        return codec.decode_obj(raw)

    reports = {number: (n, last) for number, n, last in counts} if counts is not None else {}
    none = (0, None)
    out = []
    make = TrialSummary._make
    states, load_values = _STATES, _load_values
    for row in rows:
        number = row[0]
        try:
            values, constraints = row[3], row[6]
            values = load_values(values) if values is not None else None
            constraints = load_values(constraints) if constraints is not None else None
            if counts is None:  # brief: no configuration, reports, error or retry
                rest: tuple[Any, ...] = (_EMPTY, 0, None, None, None)
            else:
                n, last = reports.get(number, none)
                rest = (decode(row[7]), n, last, row[8], row[9])
            out.append(make((number, states[row[1]], row[2], values, row[4], row[5], *rest, constraints)))
        except (KeyError, ValueError, TypeError, IndexError, AttributeError) as exc:
            bad.append(f"trial {number!r} ({type(exc).__name__}: {exc})")
    return out
