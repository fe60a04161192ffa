"""What the dashboard keeps of one study: a summary of every trial, kept current from a reader of changes.

A :class:`StudyModel` holds every trial's :class:`TrialSummary` (state,
values, times, configuration, a count of its reports: what the table and
the charts' choice of trials need), the counts per state, the best trial
and a short log of which trials changed at each version, so that a page
that has seen version ``v`` is sent only the trials changed since.  Full
records are read only for the trials shown in full (a trial's page, the
trials a chart draws), through the study reader's
:meth:`~hpt_async.contracts.StudyReader.read_trials`, and a bounded number
of them is kept.  Tables are sorted, filtered and paged here from the
summaries; charts are drawn from a bounded sample (see :func:`sample`),
so neither the page nor the chart code ever handles the whole of a large
study.
"""

from __future__ import annotations

import heapq
import math
import time
from collections import OrderedDict, deque
from collections.abc import Awaitable, Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import anyio

from .._pareto import pareto_front
from ..contracts.storage import TrialSummary
from ..exceptions import HptError
from ..report._data import StudyData, _param_from_description, _param_from_values, value_label
from ..trial import TrialRecord, TrialState

__all__ = [
    "CHART_LIMIT",
    "SORT_KEYS",
    "StudyInfo",
    "StudyModel",
    "StudyUnreadable",
    "TableQuery",
    "chart_data",
    "row",
    "sample",
]

#: At most this many trials are drawn in the history, slices and parallel coordinates.
CHART_LIMIT = 2000
#: The timeline shows the most recent trials, at most this many.
TIMELINE_LIMIT = 1000
#: Learning curves: at most this many trials' reports.
CURVE_LIMIT = 400
#: Importance: a forest fitted on at most this many complete trials, evenly spread.
IMPORTANCE_LIMIT = 1000
#: How many best trials every sample keeps.
TOP = 100
#: Versions remembered for pages catching up (older pages get the changed trials' count only).
LOG_LENGTH = 2048
#: Full records kept for the charts and trial pages (the least recently used go first).
RECORD_CACHE = 8000


class StudyUnreadable(HptError, RuntimeError):
    """The study's reader is not open (the storage failed to read; it is being retried)."""


SORT_KEYS = ("number", "state", "value", "duration", "started", "ended")
"""The columns a table sorts by, besides ``param:<name>``."""


@dataclass
class StudyInfo:
    """A study's fixed facts: name, direction(s), space description, creation time, settings."""

    name: str
    direction: str | tuple[str, ...]
    space: Mapping[str, Any] = field(default_factory=dict)
    created: float | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def directions(self) -> tuple[str, ...]:
        """One direction per objective."""
        return (self.direction,) if isinstance(self.direction, str) else tuple(self.direction)

    @property
    def first_direction(self) -> str:
        """The direction of the first (or only) objective."""
        return self.directions[0]


def _finite(x: float | None) -> float | None:
    return x if x is not None and math.isfinite(x) else None


def _good(record: TrialRecord | TrialSummary) -> bool:
    return record.state is TrialState.COMPLETE and record.value is not None and math.isfinite(record.value)


@dataclass(frozen=True)
class TableQuery:
    """One page of the trial table: sort key, order, states kept, text filter, offset, page size."""

    sort: str = "number"
    descending: bool = False
    states: frozenset[str] = frozenset()
    text: str = ""
    offset: int = 0
    limit: int = 50


def _label(value: Any) -> str:
    return value_label(value) if not isinstance(value, str) else value


def row(record: TrialSummary, best: int | None = None) -> dict[str, Any]:
    """A trial as the table and the live updates send it (JSON-ready; the page inserts it as text)."""
    return {
        "number": record.number,
        "state": record.state.value,
        "value": _finite(record.value),
        "values": None if record.values is None else [_finite(v) for v in record.values],
        "duration": record.duration,
        "started": record.started or None,
        "ended": record.ended,
        "params": {str(k): _label(v) for k, v in record.params.items()},
        "reports": record.reports,
        "last_step": record.last_step,
        "error": None if record.error is None else record.error[:200],
        "retry_of": record.retry_of,
        "best": best is not None and record.number == best,
    }


class StudyModel:
    """The dashboard's copy of one study: :meth:`load` takes every trial's summary, :meth:`apply` the changes.

    ``fetch`` (set by the hub while the study's reader is open) reads full
    records by number; :meth:`records_of` goes through it for the records
    not kept yet.
    """

    def __init__(self, info: StudyInfo) -> None:
        self.info = info
        self.trials: dict[int, TrialSummary] = {}
        self.counts: dict[str, int] = {s.value: 0 for s in TrialState}
        self.best: TrialSummary | None = None
        self.version = 0
        self.loaded = False
        self.error: str | None = None
        self.first_started: float | None = None
        self.last_ended: float | None = None
        self.changed_at = time.time()
        self.fetch: Callable[[list[int]], Awaitable[list[TrialRecord]]] | None = None
        self._full: OrderedDict[int, TrialRecord] = OrderedDict()
        self._log: deque[tuple[int, tuple[int, ...]]] = deque(maxlen=LOG_LENGTH)
        self._changed = anyio.Event()
        self._ordered: tuple[int, list[TrialSummary]] | None = None
        self._table_cache: dict[tuple[Any, ...], list[int]] = {}
        self._sample_cache: dict[str, tuple[int, list[int]]] = {}
        self._front: tuple[int, list[TrialSummary]] | None = None
        self.loaded_event = anyio.Event()
        #: False while the summaries are brief (no configurations, no report counts: see :meth:`load`).
        self.complete = False
        self.complete_event = anyio.Event()
        #: Set once a chart of the study has been served (the hub lets a first chart go before the heavier reads).
        self.first_chart = anyio.Event()

    # -- updates -----------------------------------------------------------------------

    def _better(self, a: TrialSummary, b: TrialSummary | None) -> bool:
        if b is None:
            return True
        assert a.value is not None and b.value is not None
        if self.info.first_direction == "maximize":
            return a.value > b.value or (a.value == b.value and a.number < b.number)
        return a.value < b.value or (a.value == b.value and a.number < b.number)

    def load(self, summaries: Iterable[TrialSummary], *, complete: bool = True) -> None:
        """Take every trial's summary (the first read of a reader): replaces what was kept, pages resync.

        ``complete=False`` for brief summaries (enough for the charts'
        choice of trials, not for the table): :attr:`complete_event` is set
        by the first complete load.
        """
        self.trials = {s.number: s for s in summaries}
        self.complete = complete
        if not complete and self.complete_event.is_set():
            self.complete_event = anyio.Event()  # a reader opened again: tables wait for its whole summaries
        self._full.clear()
        self.counts = {s.value: 0 for s in TrialState}
        self.first_started = self.last_ended = None
        self.best = None
        for s in self.trials.values():
            self._count(s)
        self._log.clear()  # a page older than this version resyncs
        self._sample_cache.clear()
        self._bump(())
        if complete:
            self.complete_event.set()

    def apply(self, records: Iterable[TrialRecord]) -> list[TrialRecord]:
        """Take the records a reader returned; returns them (as a list) and wakes waiting pages."""
        changed = list(records)
        if not changed:
            return changed
        recompute_best = False
        for record in changed:
            summary = TrialSummary.of(record)
            old = self.trials.get(record.number)
            if old is not None:
                self.counts[old.state.value] -= 1
            self.trials[record.number] = summary
            self._keep(record)
            if self.best is not None and record.number == self.best.number:
                recompute_best = True  # the best trial changed: it may no longer be the best
            self._count(summary)
        if recompute_best:
            self.best = None
            for s in self.trials.values():
                if _good(s) and self._better(s, self.best):
                    self.best = s
        self._bump(tuple(r.number for r in changed))
        return changed

    def _count(self, s: TrialSummary) -> None:
        self.counts[s.state.value] = self.counts.get(s.state.value, 0) + 1
        if s.started > 0 and (self.first_started is None or s.started < self.first_started):
            self.first_started = s.started
        if s.ended is not None and (self.last_ended is None or s.ended > self.last_ended):
            self.last_ended = s.ended
        if len(self.info.directions) == 1 and _good(s) and self._better(s, self.best):
            self.best = s

    def _bump(self, numbers: tuple[int, ...]) -> None:
        self.version += 1
        self.changed_at = time.time()
        if numbers:
            self._log.append((self.version, numbers))
        self._table_cache.clear()
        event, self._changed = self._changed, anyio.Event()
        event.set()

    def _keep(self, record: TrialRecord) -> None:
        full = self._full
        full[record.number] = record
        full.move_to_end(record.number)
        while len(full) > RECORD_CACHE:
            full.popitem(last=False)

    async def wait_change(self, version: int) -> None:
        """Return once :attr:`version` is above ``version``."""
        while self.version <= version:
            await self._changed.wait()

    def changed_since(self, version: int) -> list[int] | None:
        """Numbers of the trials changed after ``version``, or ``None`` when the log no longer reaches back."""
        if version >= self.version:
            return []
        if not self._log or self._log[0][0] > version + 1:
            return None
        numbers: set[int] = set()
        for v, changed in self._log:
            if v > version:
                numbers.update(changed)
        return sorted(numbers)

    async def records_of(self, numbers: Iterable[int]) -> dict[int, TrialRecord]:
        """The full records of the trials ``numbers`` that the study holds, read through ``fetch`` when not kept.

        :class:`StudyUnreadable` when some must be read and the study's reader is not open.
        """
        wanted = [n for n in numbers if n in self.trials]
        out: dict[int, TrialRecord] = {}
        missing = []
        for n in wanted:
            record = self._full.get(n)
            if record is None:
                missing.append(n)
            else:
                out[n] = record
                self._full.move_to_end(n)
        if missing:
            if self.fetch is None:
                raise StudyUnreadable(f"study {self.info.name!r} cannot be read now: {self.error or 'not open'}")
            version = self.version
            fetched = await self.fetch(missing)
            changed = set(self.changed_since(version) or ()) if self.version != version else set()
            for record in fetched:
                out[record.number] = record
                if record.number not in changed and record.number in self.trials:
                    self._keep(record)  # not if a newer record came in meanwhile
        return out

    # -- reading ---------------------------------------------------------------------------

    @property
    def running(self) -> bool:
        """True while some trial is RUNNING."""
        return self.counts.get("running", 0) > 0

    def ordered(self) -> list[TrialSummary]:
        """Every trial's summary by number (cached per version)."""
        if self._ordered is None or self._ordered[0] != self.version:
            self._ordered = (self.version, [self.trials[n] for n in sorted(self.trials)])
        return self._ordered[1]

    def pareto(self) -> list[TrialSummary]:
        """The Pareto front (several objectives), else the best trial alone."""
        if len(self.info.directions) == 1:
            return [self.best] if self.best is not None else []
        if self._front is None or self._front[0] != self.version:
            self._front = (self.version, pareto_front(self.trials.values(), self.info.directions))  # type: ignore[arg-type]
        return self._front[1]

    def summary(self) -> dict[str, Any]:
        """The header of the study's pages (and a line of the studies list), JSON-ready."""
        best = self.best
        front = self.pareto() if len(self.info.directions) > 1 else []
        return {
            "name": self.info.name,
            "direction": list(self.info.directions),
            "n": len(self.trials),
            "counts": {k: v for k, v in self.counts.items() if v},
            "running": self.running,
            "loaded": self.loaded,
            "error": self.error,
            "version": self.version,
            "best": None if best is None else row(best, best.number),
            "front": len(front),
            "started": self.first_started,
            "ended": None if self.running else self.last_ended,
            "last_change": self.changed_at,
        }

    def table(self, query: TableQuery) -> tuple[int, list[dict[str, Any]]]:
        """``(trials matching, rows of the requested page)``: sorted, filtered and paged here."""
        key = (query.sort, query.descending, query.states, query.text)
        numbers = self._table_cache.get(key)
        if numbers is None:
            trials = self.ordered()
            if query.states:
                trials = [r for r in trials if r.state.value in query.states]
            if query.text:
                needle = query.text.lower()
                trials = [r for r in trials if needle in _haystack(r)]
            numbers = [r.number for r in _sorted(trials, query.sort, query.descending)]
            if len(self._table_cache) > 16:
                self._table_cache.clear()
            self._table_cache[key] = numbers
        best = self.best.number if self.best is not None else None
        page = numbers[query.offset : query.offset + query.limit]
        return len(numbers), [row(self.trials[n], best) for n in page]


def _haystack(record: TrialSummary) -> str:
    params = " ".join(f"{k}={_label(v)}" for k, v in record.params.items())
    return f"#{record.number} {record.state.value} {params} {record.error or ''}".lower()


def _sorted(records: Sequence[TrialSummary], sort: str, descending: bool) -> list[TrialSummary]:
    """``records`` ordered by ``sort``; trials without that field go last either way."""
    if sort == "number":
        return sorted(records, key=lambda r: r.number, reverse=descending)
    if sort == "state":
        return sorted(records, key=lambda r: (r.state.value, r.number), reverse=descending)
    if sort.startswith("param:"):
        name = sort[6:]

        def param_key(r: TrialSummary) -> tuple[int, float, str] | None:
            if name not in r.params:
                return None
            v = r.params[name]
            if isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v):
                return (0, float(v), "")
            return (1, 0.0, _label(v))

        getter: Any = param_key
    else:
        getter = {
            "value": lambda r: _finite(r.value),
            "duration": lambda r: r.duration,
            "started": lambda r: r.started or None,
            "ended": lambda r: r.ended,
        }[sort]
    present = [(getter(r), r.number, r) for r in records]
    missing = [r for k, _, r in present if k is None]
    have = sorted(((k, n, r) for k, n, r in present if k is not None), key=lambda t: (t[0], t[1]), reverse=descending)
    return [r for _, _, r in have] + missing


# -- samples for the charts ----------------------------------------------------------------------


def _params(info: StudyInfo, records: Sequence[TrialRecord]) -> list[Any]:
    params = [_param_from_description(n, d) for n, d in info.space.items() if isinstance(d, Mapping)]
    known = {p.name for p in params}
    extra: dict[str, list[Any]] = {}
    for r in records:
        for name, value in r.params.items():
            if name not in known:
                extra.setdefault(name, []).append(value)
    return params + [_param_from_values(n, v) for n, v in extra.items()]


def _metric_names(info: StudyInfo) -> tuple[str, ...] | None:
    names = info.settings.get("metric_names")
    if isinstance(names, (list, tuple)) and len(names) == len(info.directions):
        return tuple(str(n) for n in names)
    return None


def _even(records: Sequence[TrialSummary], count: int) -> list[TrialSummary]:
    if len(records) <= count:
        return list(records)
    step = len(records) / count
    return [records[int(i * step)] for i in range(count)]


def _group(kind: str) -> str:
    return kind if kind in ("timeline", "intermediate", "importance") else "main"


def sample(model: StudyModel, kind: str) -> list[int]:
    """The numbers of the trials chart ``kind`` is drawn from: every trial when few, else a bounded sample.

    Chosen from the summaries alone.  ``kind`` is ``"timeline"`` (the most
    recent trials, consecutive, so that the count of trials running at once
    is exact over that window), ``"intermediate"`` (trials that reported,
    the best kept), ``"importance"`` (complete trials, evenly spread, so
    that the fit is not skewed) or anything else (the trials that improved
    the best so far, so the best-so-far line is exact, the best trials, the
    Pareto front, running trials, and an even spread of the rest).  A
    sampled figure says so in a note (see ``_figures.render``).
    """
    group = _group(kind)
    cached = model._sample_cache.get(group)
    if cached is not None and cached[0] == model.version:
        return cached[1]
    records = model.ordered()
    info = model.info
    maximize = info.first_direction == "maximize"
    if group == "timeline":
        chosen = records[-TIMELINE_LIMIT:]
    elif group == "importance":
        chosen = _even([r for r in records if _good(r)], IMPORTANCE_LIMIT)
    elif group == "intermediate":
        chosen = _even([r for r in records if r.reports], CURVE_LIMIT)
        if model.best is not None and model.best.reports and model.best not in chosen:
            chosen.append(model.best)
    elif len(records) <= CHART_LIMIT:
        chosen = list(records)
    else:
        keep: dict[int, TrialSummary] = {}
        best_so_far: float | None = None
        complete = [r for r in records if _good(r)]
        for r in complete:
            v = r.value
            assert v is not None
            if best_so_far is None or (v > best_so_far if maximize else v < best_so_far):
                best_so_far = v
                keep[r.number] = r
        sign = -1.0 if maximize else 1.0
        for r in heapq.nsmallest(TOP, complete, key=lambda r: sign * r.value):  # type: ignore[operator]
            keep[r.number] = r
        if len(info.directions) > 1:
            for r in model.pareto()[: CHART_LIMIT // 4]:
                keep[r.number] = r
        for r in [r for r in records if r.state is TrialState.RUNNING][:TOP]:
            keep[r.number] = r
        keep[records[0].number] = records[0]
        keep[records[-1].number] = records[-1]
        for r in _even(records, max(0, CHART_LIMIT - len(keep))):
            keep.setdefault(r.number, r)
        chosen = [keep[n] for n in sorted(keep)]
    numbers = sorted(r.number for r in chosen)
    model._sample_cache[group] = (model.version, numbers)
    return numbers


async def chart_data(model: StudyModel, kind: str) -> StudyData:
    """The :class:`StudyData` chart ``kind`` is drawn from: the full records of :func:`sample`'s trials."""
    if _group(kind) == "intermediate" and not model.complete:
        await model.complete_event.wait()  # which trials reported is in the complete summaries only
    numbers = sample(model, kind)
    best = model.best
    wanted = numbers + ([best.number] if best is not None else [])
    records = await model.records_of(wanted)
    chosen = tuple(records[n] for n in numbers if n in records)
    info = model.info
    return StudyData(
        name=info.name,
        direction=info.first_direction,
        trials=chosen,
        params=_params(info, chosen),
        best=None if best is None else records.get(best.number),
        created=info.created,
        read_at=time.time(),
        directions=info.directions,
        metric_names=_metric_names(info),
    )
