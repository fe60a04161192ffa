"""Trials: the live handle an objective gets, and the frozen record of one.

An objective receives a :class:`Trial` (``async def`` objectives) or a
:class:`SyncTrial` (plain ``def`` objectives run in a worker): the same names,
awaited or not.  Everything else in hpt-async sees :class:`TrialRecord`, an
immutable snapshot.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import enum
import functools
import itertools
import math
import numbers
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, fields
from types import MappingProxyType
from typing import Any, Protocol

from .exceptions import MAX_STEP, ReportStepError, TrialCancelled

__all__ = ["ScheduleEntry", "SyncTrial", "Trial", "TrialRecord", "TrialSession", "TrialState"]

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class TrialState(enum.StrEnum):
    """Where a trial is in its life.

    ``COMPLETE``, ``PRUNED``, ``FAILED`` and ``PAUSED`` count toward
    ``max_trials``; ``CANCELLED`` (stopped by the study) and ``LOST`` (the
    tuner that ran it died, found through storage leases) do not.  An
    objective whose worker process crashes is FAILED: its tuner saw it end.
    ``PAUSED`` is the state of a trial that a pruner in promotion mode
    paused at a rung: it keeps its last reported value and its checkpoint,
    and may be resumed later (back to RUNNING, same number); a study may end
    with trials still PAUSED.
    """

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"
    PAUSED = "paused"

    @property
    def finished(self) -> bool:
        """True for every state but RUNNING (a PAUSED trial is not running, though it may resume)."""
        return self is not TrialState.RUNNING

    @property
    def counted(self) -> bool:
        """True for the states that use up ``max_trials``."""
        return self in _COUNTED


_COUNTED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED, TrialState.PAUSED})
# A module global: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's ``__getattr__``.
_RUNNING = TrialState.RUNNING


@dataclass(frozen=True, slots=True)
class ScheduleEntry:
    """One change of a trial's hyperparameters while it ran.

    From the report at ``step`` on (the first entry: ``step`` is ``None``,
    from the start) the trial trained with ``params``.  ``donor`` is the
    trial whose checkpoint it copied at that moment (an EXPLOIT of
    population-based training), or ``None`` when only the hyperparameters
    changed (a replayed schedule) and for the first entry.
    """

    step: int | None
    params: Mapping[str, Any]
    donor: int | None = None


@dataclass(frozen=True, slots=True, init=False)
class TrialRecord:
    """An immutable snapshot of one trial.

    ``value`` is the objective's result for COMPLETE, the last reported value
    for PRUNED and PAUSED, and ``None`` otherwise.  ``reports`` maps step to reported
    value (a RUNNING record holds those made when it was taken: the study
    view gets a new record at each report).  ``started`` and
    ``ended`` are Unix timestamps (``ended`` is ``None`` while running).
    ``retry_of`` is the number of the LOST trial whose configuration this
    trial runs again, or ``None``.  ``schedule`` lists the trial's
    hyperparameters over its steps when they changed while it ran (see
    :class:`ScheduleEntry`; ``params`` is then the last of them); it is empty
    for a trial that kept its configuration.  ``values`` holds every
    objective's value when the study has several objectives (``value`` is
    then the first of them); it is ``None`` for a single objective.
    ``report_values`` maps a step to every objective's value for the reports
    that gave several (``reports`` then holds the first of them).
    ``constraints`` holds the values the objective gave
    :meth:`Trial.set_constraints`, each satisfied when ``<= 0``, or ``None``
    when it gave none; :attr:`feasible` says whether all are satisfied.
    """

    number: int
    state: TrialState
    params: Mapping[str, Any]
    value: float | None = None
    reports: Mapping[int, float] = field(default_factory=lambda: _EMPTY)
    user_attrs: Mapping[str, Any] = field(default_factory=lambda: _EMPTY)
    error: str | None = None
    traceback: str | None = None
    started: float = 0.0
    ended: float | None = None
    retry_of: int | None = None
    schedule: tuple[ScheduleEntry, ...] = ()
    values: tuple[float, ...] | None = None
    report_values: Mapping[int, tuple[float, ...]] = field(default_factory=lambda: _EMPTY)
    constraints: tuple[float, ...] | None = None

    # Two records are made per trial (its running snapshot and its end), so, as for the trial events,
    # ``__init__`` is written by hand: each field stored through its slot, about twice as fast as the
    # generated one of a frozen dataclass, with the same signature, defaults and result.
    def __init__(
        self,
        number: int,
        state: TrialState,
        params: Mapping[str, Any],
        value: float | None = None,
        reports: Mapping[int, float] = _EMPTY,
        user_attrs: Mapping[str, Any] = _EMPTY,
        error: str | None = None,
        traceback: str | None = None,
        started: float = 0.0,
        ended: float | None = None,
        retry_of: int | None = None,
        schedule: tuple[ScheduleEntry, ...] = (),
        values: tuple[float, ...] | None = None,
        report_values: Mapping[int, tuple[float, ...]] = _EMPTY,
        constraints: tuple[float, ...] | None = None,
    ) -> None:
        _set_number(self, number)
        _set_state(self, state)
        _set_params(self, params)
        _set_value(self, value)
        _set_reports(self, reports)
        _set_user_attrs(self, user_attrs)
        _set_error(self, error)
        _set_traceback(self, traceback)
        _set_started(self, started)
        _set_ended(self, ended)
        _set_retry_of(self, retry_of)
        _set_schedule(self, schedule)
        _set_values(self, values)
        _set_report_values(self, report_values)
        _set_constraints(self, constraints)

    @property
    def feasible(self) -> bool:
        """True when every constraint is satisfied (``<= 0``), and for a trial without constraints."""
        constraints = self.constraints
        return constraints is None or all(c <= 0.0 for c in constraints)

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (never negative), ``None`` while running."""
        return None if self.ended is None else max(0.0, self.ended - self.started)

    @property
    def last_report(self) -> tuple[int, float] | None:
        """``(step, value)`` of the highest reported step, or ``None``."""
        if not self.reports:
            return None
        step = max(self.reports)
        return step, self.reports[step]


# The slot setters of TrialRecord.__init__ (a frozen dataclass refuses plain assignment), in field order.
(
    _set_number,
    _set_state,
    _set_params,
    _set_value,
    _set_reports,
    _set_user_attrs,
    _set_error,
    _set_traceback,
    _set_started,
    _set_ended,
    _set_retry_of,
    _set_schedule,
    _set_values,
    _set_report_values,
    _set_constraints,
) = (TrialRecord.__dict__[f.name].__set__ for f in fields(TrialRecord))


class _ReportsSoFar(Mapping[int, float]):
    """The first ``n`` reports of a live trial: what a snapshot taken after its ``n``-th report holds.

    A trial's reports are only ever added, each step once, so a snapshot
    can share the trial's dict and see only the steps reported before it
    was taken (their positions are in ``order``): taking one costs O(1)
    however many reports the trial has made, and it never changes
    afterwards.  Iteration copies the steps it yields.
    """

    __slots__ = ("_live", "_n", "_order")

    def __init__(self, live: dict[int, float], order: dict[int, int], n: int) -> None:
        self._live = live
        self._order = order
        self._n = n

    def __getitem__(self, step: int) -> float:
        if self._order.get(step, self._n) < self._n:
            return self._live[step]
        raise KeyError(step)

    def __contains__(self, step: object) -> bool:
        return self._order.get(step, self._n) < self._n  # type: ignore[call-overload]

    def __len__(self) -> int:
        return self._n

    def __iter__(self) -> Iterator[int]:
        return iter(list(itertools.islice(self._live, self._n)))

    def __repr__(self) -> str:
        return f"{type(self).__name__}({dict(self)!r})"

    def __reduce__(self) -> tuple[Any, ...]:
        return (dict, (dict(self),))  # pickled as the plain dict it shows


class TrialSession(Protocol):
    """What a live :class:`Trial` calls back into: the tuner's side of one trial.

    The Tuner gives every trial it runs such a session; an executor that
    runs objectives in another process gives the worker-side trial one
    that carries each call to the tuner (see
    :mod:`hpt_async.executors.remote`).  Each method is awaited on the loop
    that owns the trial.

    * ``on_report`` stores and announces the report, then lets the decider
      answer: it returns to go on, raises :class:`~hpt_async.TrialPruned`
      (or :class:`~hpt_async.TrialPaused`) to stop, or changes the trial's
      configuration through :meth:`Trial.exploit`.
    * ``on_checkpoint`` keeps the bytes as the trial's checkpoint.
    * ``on_restore`` returns the bytes the trial continues from, or ``None``.

    Any of them raises :class:`~hpt_async.TrialCancelled` once the study no
    longer wants the trial.
    """

    async def on_report(self, trial: Trial, step: int, value: float) -> None: ...

    async def on_checkpoint(self, trial: Trial, data: bytes) -> None: ...

    async def on_restore(self, trial: Trial) -> bytes | None: ...


def _check_report(value: Any, step: Any) -> tuple[float, int, tuple[float, ...] | None]:
    """``(first value, step, every value or None)`` of a report, or the error that refuses it."""
    if isinstance(step, bool) or not isinstance(step, int):
        try:
            import numpy as np

            if not isinstance(step, np.integer):
                raise TypeError
        except TypeError:
            raise TypeError(f"report step must be an int, got {step!r}") from None
    if not 0 <= step <= MAX_STEP:
        raise ReportStepError(f"report step must be from 0 to 2**63 - 1 (a signed 64-bit integer), got {step}")
    kind = type(value)
    if kind is float or kind is int:
        return float(value), int(step), None
    if isinstance(value, numbers.Real) and kind is not bool:
        return float(value), int(step), None
    if isinstance(value, Sequence) and not isinstance(value, (str, bytes)) and len(value) > 0:
        values = tuple(_check_report(v, step)[0] for v in value)
        return values[0], int(step), values
    raise TypeError(f"reported value must be a number, or a sequence of numbers (one per objective), got {value!r}")


def check_constraints(constraints: Any) -> tuple[float, ...]:
    """``constraints`` as a tuple of finite floats, or the ``TypeError``/``ValueError`` that refuses them."""
    if isinstance(constraints, (str, bytes)) or not isinstance(constraints, Sequence):
        try:
            import numpy as np

            if not isinstance(constraints, np.ndarray) or constraints.ndim != 1:
                raise TypeError
            constraints = constraints.tolist()
        except TypeError:
            raise TypeError(
                f"constraints are a sequence of numbers (each satisfied when <= 0), got {constraints!r}"
            ) from None
    out = []
    for c in constraints:
        if isinstance(c, bool) or not isinstance(c, numbers.Real):
            raise TypeError(f"constraints are a sequence of numbers (each satisfied when <= 0), got {constraints!r}")
        f = float(c)
        if not math.isfinite(f):
            raise ValueError(f"constraint values must be finite, got {list(constraints)!r}")
        out.append(f)
    return tuple(out)


class Trial:
    """The live handle an ``async def`` objective receives.

    ``params`` is this trial's configuration (inactive parameters absent;
    read it, do not change it: only :meth:`exploit` does, and records share
    one copy of it), ``number`` its number in the study.  ``await trial.report(value, step=...)``
    records an intermediate value and raises :class:`~hpt_async.TrialPruned`
    when the pruner stops the trial.

    Checkpoints: ``await trial.checkpoint(state)`` keeps the trial's state
    (bytes, a dict of numpy arrays, or with ``pickle=True`` any object; see
    :mod:`hpt_async.checkpoints`) in the study's storage, replacing the
    previous one; ``await trial.restore()`` returns the state this trial must
    continue from, or ``None``.  :attr:`should_restore` turns true when the
    trial must load that state before going on: after a report at which a
    population-based strategy made it copy another trial (its ``params``
    then hold new hyperparameters), at the start of a retry of a LOST trial
    that left a checkpoint, and at the start of a PAUSED trial that a pruner
    in promotion mode resumes (its ``reports`` then hold those made before
    the pause).  ``restore`` clears it.

    A trial changes only through its own methods: :meth:`report`,
    :meth:`pause` and :meth:`exploit` (called by its session while it
    runs), :meth:`continue_from_checkpoint`, :meth:`set_user_attr`, and
    :meth:`end`, which turns it into its final :class:`TrialRecord`.
    ``params`` and ``user_attrs`` are there to read.  :meth:`snapshot`
    gives a RUNNING record that never changes afterwards.
    :meth:`set_constraints` records constraint values for the final record.
    """

    __slots__ = (
        "_constraints",
        "_ended",
        "_frozen",
        "_objectives",
        "_order",
        "_pausing",
        "_report_values",
        "_reports",
        "_restore",
        "_resumed",
        "_schedule",
        "_session",
        "number",
        "params",
        "retry_of",
        "started",
        "user_attrs",
    )

    def __init__(
        self,
        number: int,
        params: dict[str, Any],
        session: TrialSession,
        started: float,
        retry_of: int | None = None,
        *,
        should_restore: bool = False,
        objectives: int | None = None,
    ) -> None:
        self.number = number
        # How many values a report may carry: None for a study with one objective (numbers only).
        self._objectives = objectives
        self.retry_of = retry_of
        self.params = params
        self.user_attrs: dict[str, Any] = {}
        self.started = started
        self._reports: dict[int, float] = {}
        self._order: dict[int, int] = {}  # step -> its position among the reports (see _ReportsSoFar)
        self._frozen: Mapping[str, Any] | None = None  # a read-only copy of params for records, made once
        self._report_values: dict[int, tuple[float, ...]] = {}
        self._session = session
        self._ended = False
        self._restore = bool(should_restore)
        self._schedule: list[ScheduleEntry] = []
        self._pausing = False
        self._resumed = False
        self._constraints: tuple[float, ...] | None = None

    @classmethod
    def resume(
        cls, record: TrialRecord, session: TrialSession, *, restore: bool, objectives: int | None = None
    ) -> Trial:
        """The live trial that continues the PAUSED ``record``.

        It keeps the number, configuration, user attributes, schedule and
        start time.  With ``restore`` (a checkpoint is stored) it keeps its
        reports too and :attr:`should_restore` is true; without, it starts
        over from its first step.
        """
        trial = cls(
            number=record.number,
            params=dict(record.params),
            session=session,
            started=record.started,
            retry_of=record.retry_of,
            should_restore=restore,
            objectives=objectives,
        )
        trial.user_attrs.update(record.user_attrs)
        trial._constraints = record.constraints
        trial._schedule = list(record.schedule)
        trial._resumed = True
        if restore:
            for step, value in record.reports.items():
                trial._order[step] = len(trial._reports)
                trial._reports[step] = value
            trial._report_values.update(record.report_values)
        return trial

    @property
    def reports(self) -> Mapping[int, float]:
        """Read-only view of ``{step: value}`` reported so far."""
        return MappingProxyType(self._reports)

    @property
    def objectives(self) -> int | None:
        """How many values a report may carry: ``None`` in a study with one objective (a number only)."""
        return self._objectives

    def values_at(self, step: int) -> tuple[float, ...] | None:
        """Every objective's value reported at ``step``, or ``None`` when that report gave one value."""
        return self._report_values.get(step) if self._report_values else None

    @property
    def report_values(self) -> Mapping[int, tuple[float, ...]]:
        """Read-only view of ``{step: values}`` for the reports that gave one value per objective."""
        return MappingProxyType(self._report_values)

    @property
    def last_value(self) -> float | None:
        """The finite value of the highest step reported so far, or ``None``."""
        reports = self._reports
        if not reports:
            return None
        value = reports[max(reports)]
        return value if math.isfinite(value) else None

    @property
    def should_restore(self) -> bool:
        """True when the objective must load :meth:`restore`'s state before going on."""
        return self._restore

    @property
    def schedule(self) -> tuple[ScheduleEntry, ...]:
        """The trial's hyperparameters over its steps so far (empty while they never changed)."""
        return tuple(self._schedule)

    @property
    def ended(self) -> bool:
        """True once :meth:`end` has made the final record: the trial takes no more calls."""
        return self._ended

    @property
    def resumed(self) -> bool:
        """True for a PAUSED trial that runs again (see :meth:`resume`)."""
        return self._resumed

    @property
    def pausing(self) -> bool:
        """True when the last report paused the trial (see :meth:`pause`)."""
        return self._pausing

    async def checkpoint(self, state: Any, *, pickle: bool = False) -> None:
        """Keep ``state`` as this trial's latest checkpoint (it replaces the previous one).

        ``state`` is ``bytes``, a dict of numpy arrays, or any picklable
        object with ``pickle=True``; anything else raises
        :class:`~hpt_async.checkpoints.CheckpointError`.  Returns once the
        study's storage holds it.
        """
        from .checkpoints import encode_state

        await self.save_checkpoint(encode_state(state, pickle=pickle))

    async def restore(self, *, pickle: bool = False) -> Any:
        """The state this trial continues from, in the form it was saved, or ``None``.

        That is its latest checkpoint: its own, the one it copied from
        another trial at an EXPLOIT, or the last one of the LOST trial it
        retries.  Clears :attr:`should_restore`.  A checkpoint saved with
        ``pickle=True`` is only unpickled with ``pickle=True`` here too.
        """
        from .checkpoints import decode_state

        data = await self.load_checkpoint()
        return None if data is None else decode_state(data, pickle=pickle)

    async def save_checkpoint(self, data: bytes) -> None:
        """Keep the encoded checkpoint ``data`` (what :meth:`checkpoint` stores after encoding)."""
        if self._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        await self._session.on_checkpoint(self, data)

    async def load_checkpoint(self) -> bytes | None:
        """The encoded checkpoint this trial continues from, or ``None``; clears :attr:`should_restore`."""
        if self._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        data = await self._session.on_restore(self)
        self._restore = False
        return data

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable value to the trial; kept in its record."""
        if not isinstance(key, str):
            raise TypeError(f"user attribute keys are strings, got {key!r}")
        self.user_attrs[key] = value

    @property
    def constraints(self) -> tuple[float, ...] | None:
        """The constraint values set so far (see :meth:`set_constraints`), or ``None``."""
        return self._constraints

    def set_constraints(self, constraints: Sequence[float]) -> None:
        """Record this trial's constraint values, each satisfied when ``<= 0`` (a later call replaces them).

        They are kept in the final record (``record.constraints``,
        ``record.feasible``); every "best" of the study prefers a feasible
        trial, and a study's best trials are feasible ones only.  Every
        trial of a study gives the same number of constraints (a COMPLETE
        trial that gives another number, or none once others gave some,
        ends FAILED).  ``TypeError`` for values that are not numbers,
        ``ValueError`` for NaN or infinite ones.
        """
        if self._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        self._constraints = check_constraints(constraints)

    async def report(self, value: float | Sequence[float], *, step: int) -> None:
        """Record ``value`` at ``step`` and let the pruner decide.

        In a study with several objectives ``value`` may be a sequence, one
        value per objective; a pruner that handles several objectives
        decides on all of them (``record.report_values``), others on the first.  Raises
        :class:`~hpt_async.TrialPruned` when the trial must stop,
        :class:`~hpt_async.TrialPaused` (a subclass) when a pruner in
        promotion mode pauses it, ``ValueError`` for a step reported twice,
        :class:`~hpt_async.exceptions.ReportStepError` (a ``ValueError``) for
        a step below 0 or above ``2**63 - 1`` (every storage keeps steps as
        signed 64-bit integers),
        ``TypeError`` for a value that is not a number.
        """
        if self._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        fvalue, istep, values = _check_report(value, step)
        if values is not None and self._objectives != len(values):
            if self._objectives is None:
                raise TypeError(f"reported value must be a number in a study with one objective, got {value!r}")
            raise ValueError(f"a report takes one value per objective ({self._objectives}), got {len(values)}")
        if istep in self._reports:
            raise ValueError(f"trial {self.number}: step {istep} was already reported")
        self._order[istep] = len(self._reports)
        self._reports[istep] = fvalue
        if values is not None:
            self._report_values[istep] = values
        self._pausing = False
        await self._session.on_report(self, istep, fvalue)

    def for_thread(self) -> SyncTrial:
        """A :class:`SyncTrial` of this trial, for code the ``async def`` objective runs in a worker thread.

        The synchronous report: an ``async def`` objective whose training
        blocks (a framework's ``fit``) runs it off the loop with
        ``await anyio.to_thread.run_sync(train, trial.for_thread())``, and
        ``train`` calls ``report(value, step=...)`` without ``await``; each
        call hops to the loop that runs the trial, waits for the decision,
        and raises :class:`~hpt_async.TrialPruned` (or
        :class:`~hpt_async.TrialCancelled`) as :meth:`report` does.

        Call it on the event loop, in the objective itself (it records which
        loop to call back); called in a worker thread that
        ``anyio.to_thread`` started, the handle finds the loop through that
        thread.  The handle's calls block, so they must not be made on the
        loop's own thread: they raise ``RuntimeError`` there.
        """
        import anyio.from_thread
        import anyio.lowlevel

        try:
            token: Any = anyio.lowlevel.current_token()
        except RuntimeError:  # not on an event loop: an anyio worker thread, which knows its loop
            token = None

        def call_in_loop(fn: Callable[..., Any], *args: Any) -> Any:
            return anyio.from_thread.run(fn, *args, token=token)

        return SyncTrial(self, call_in_loop)

    def pause(self) -> None:
        """Mark that the decider paused the trial at its last report (it will end PAUSED, not PRUNED)."""
        self._pausing = True

    def exploit(self, params: Mapping[str, Any], step: int, donor: int | None, *, restore: bool | None = None) -> None:
        """Go on with ``params`` after the report at ``step``, from ``donor``'s checkpoint when given.

        Appends to :attr:`schedule`; :attr:`should_restore` turns true with
        a donor (or as ``restore`` says, for a copy of a remote trial).
        """
        if not self._schedule:
            self._schedule.append(ScheduleEntry(None, MappingProxyType(dict(self.params))))
        self._schedule.append(ScheduleEntry(step, MappingProxyType(dict(params)), donor))
        self.params = dict(params)
        self._frozen = None
        if restore is None:
            restore = donor is not None
        if restore:
            self._restore = True

    def continue_from_checkpoint(self) -> None:
        """Make :attr:`should_restore` true: a checkpoint this trial must load was put in its place."""
        self._restore = True

    def end(
        self,
        state: TrialState,
        value: float | None = None,
        error: str | None = None,
        traceback: str | None = None,
        *,
        values: tuple[float, ...] | None = None,
        ended: float | None = None,
    ) -> TrialRecord:
        """End the trial in ``state`` and return its final record; later calls of its methods raise.

        Raises ``RuntimeError`` if the trial has already ended.
        """
        if self._ended:
            raise RuntimeError(f"trial {self.number} has already ended")
        if state is _RUNNING:
            raise ValueError("a trial ends in a final state, not RUNNING")
        self._ended = True
        now = time.time() if ended is None else ended
        return TrialRecord(
            number=self.number,
            state=state,
            params=self._frozen_params(),
            value=value,
            reports=MappingProxyType(dict(self._reports)) if self._reports else _EMPTY,
            user_attrs=MappingProxyType(dict(self.user_attrs)) if self.user_attrs else _EMPTY,
            error=error,
            traceback=traceback,
            started=self.started,
            ended=max(now, self.started),
            retry_of=self.retry_of,
            schedule=tuple(self._schedule),
            values=values,
            report_values=MappingProxyType(dict(self._report_values)) if self._report_values else _EMPTY,
            constraints=self._constraints,
        )

    def _frozen_params(self) -> Mapping[str, Any]:
        # ``params`` changes only through exploit(), which drops the copy; records share one copy meanwhile.
        frozen = self._frozen
        if frozen is None:
            frozen = self._frozen = MappingProxyType(dict(self.params))
        return frozen

    def snapshot(self) -> TrialRecord:
        """A RUNNING :class:`TrialRecord` of this trial as it is now; it never changes afterwards.

        Its ``reports`` share the trial's own (see :class:`_ReportsSoFar`), so
        a snapshot at every report costs the same however long the trial runs.
        """
        reports = self._reports
        return TrialRecord(
            number=self.number,
            state=_RUNNING,
            params=self._frozen_params(),
            reports=_ReportsSoFar(reports, self._order, len(reports)) if reports else _EMPTY,
            user_attrs=MappingProxyType(dict(self.user_attrs)) if self.user_attrs else _EMPTY,
            started=self.started,
            retry_of=self.retry_of,
            schedule=tuple(self._schedule),
            report_values=MappingProxyType(dict(self._report_values)) if self._report_values else _EMPTY,
        )

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params!r})"


def _sync_call(trial: Trial, call: Callable[..., Any], fn: Callable[..., Any], *args: Any) -> Any:
    """Run ``fn(*args)`` (a coroutine function) in the tuner's loop for a worker thread."""
    if trial.ended:
        raise TrialCancelled(f"trial {trial.number} has already ended")
    try:
        return call(fn, *args)
    except (RuntimeError, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
        if trial.ended or not isinstance(exc, RuntimeError):
            raise TrialCancelled(f"trial {trial.number} has already ended") from exc
        raise


class SyncTrial:
    """The handle a plain ``def`` objective receives in a worker thread.

    The same names as :class:`Trial`, in synchronous form: ``report`` blocks
    until the tuner has recorded the value and decided, and raises
    :class:`~hpt_async.TrialPruned` when the trial must stop, or
    :class:`~hpt_async.TrialCancelled` once the trial has been recorded as
    ended (study stopped, trial timed out) so the thread can wind down.
    """

    __slots__ = ("_call", "_trial")

    def __init__(self, trial: Trial, call_in_loop: Callable[..., Any]) -> None:
        self._trial = trial
        self._call = call_in_loop

    @property
    def number(self) -> int:
        """The trial's number in the study."""
        return self._trial.number

    @property
    def params(self) -> dict[str, Any]:
        """The trial's configuration."""
        return self._trial.params

    @property
    def user_attrs(self) -> dict[str, Any]:
        """User attributes set so far."""
        return self._trial.user_attrs

    @property
    def reports(self) -> Mapping[int, float]:
        """Read-only view of ``{step: value}`` reported so far."""
        return self._trial.reports

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable value to the trial; kept in its record."""
        if self._trial.ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        self._trial.set_user_attr(key, value)

    @property
    def constraints(self) -> tuple[float, ...] | None:
        """The constraint values set so far, or ``None``."""
        return self._trial.constraints

    def set_constraints(self, constraints: Sequence[float]) -> None:
        """Record this trial's constraint values, each satisfied when ``<= 0`` (see :meth:`Trial.set_constraints`)."""
        self._trial.set_constraints(constraints)

    @property
    def should_restore(self) -> bool:
        """True when the objective must load :meth:`restore`'s state before going on."""
        return self._trial.should_restore

    @property
    def schedule(self) -> tuple[ScheduleEntry, ...]:
        """The trial's hyperparameters over its steps so far (empty while they never changed)."""
        return self._trial.schedule

    def checkpoint(self, state: Any, *, pickle: bool = False) -> None:
        """Synchronous form of :meth:`Trial.checkpoint`; the state is encoded in this thread."""
        from .checkpoints import encode_state

        data = encode_state(state, pickle=pickle)
        trial = self._trial
        _sync_call(trial, self._call, trial.save_checkpoint, data)

    def restore(self, *, pickle: bool = False) -> Any:
        """Synchronous form of :meth:`Trial.restore`; the state is decoded in this thread."""
        from .checkpoints import decode_state

        trial = self._trial
        data = _sync_call(trial, self._call, trial.load_checkpoint)
        return None if data is None else decode_state(data, pickle=pickle)

    def report(self, value: float | Sequence[float], *, step: int) -> None:
        """Synchronous form of :meth:`Trial.report`."""
        if self._trial.ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        fvalue, istep, values = _check_report(value, step)
        try:
            self._call(functools.partial(self._trial.report, step=istep), fvalue if values is None else values)
        except (RuntimeError, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            # The trial timed out or the study stopped while this report was on its way
            # (cancelled), or the event loop is gone: either way this thread was left behind.
            if self._trial.ended or not isinstance(exc, RuntimeError):
                raise TrialCancelled(f"trial {self.number} has already ended") from exc
            raise

    def __repr__(self) -> str:
        return f"SyncTrial(number={self.number}, params={self.params!r})"
