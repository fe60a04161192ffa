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
import numbers
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Protocol

from .exceptions import TrialCancelled

__all__ = ["SyncTrial", "Trial", "TrialRecord", "TrialState"]

_EMPTY: Mapping[Any, Any] = MappingProxyType({})


class TrialState(enum.StrEnum):
    """Where a trial is in its life.

    ``COMPLETE``, ``PRUNED`` and ``FAILED`` count toward ``max_trials``;
    ``CANCELLED`` (stopped by the study) and ``LOST`` (the tuner that ran it
    died, found through storage leases) do not.  An objective whose worker
    process crashes is FAILED: its tuner saw it end.
    """

    RUNNING = "running"
    COMPLETE = "complete"
    PRUNED = "pruned"
    FAILED = "failed"
    CANCELLED = "cancelled"
    LOST = "lost"

    @property
    def finished(self) -> bool:
        """True for every state but RUNNING."""
        return self is not TrialState.RUNNING

    @property
    def counted(self) -> bool:
        """True for the states that use up ``max_trials``."""
        return self in _COUNTED


_COUNTED = frozenset({TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED})


@dataclass(frozen=True, slots=True)
class TrialRecord:
    """An immutable snapshot of one trial.

    ``value`` is the objective's result for COMPLETE, the last reported value
    for PRUNED, and ``None`` otherwise.  ``reports`` maps step to reported
    value; for a RUNNING trial it is a live read-only view.  ``started`` and
    ``ended`` are Unix timestamps (``ended`` is ``None`` while running).
    ``retry_of`` is the number of the LOST trial whose configuration this
    trial runs again, or ``None``.
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

    @property
    def duration(self) -> float | None:
        """Seconds from start to end, ``None`` while running."""
        return None if self.ended is None else self.ended - self.started

    @property
    def last_report(self) -> tuple[int, float] | None:
        """``(step, value)`` of the highest reported step, or ``None``."""
        if not self.reports:
            return None
        step = max(self.reports)
        return step, self.reports[step]


class _Session(Protocol):
    """What a live trial needs from the tuner that runs it."""

    async def on_report(self, trial: Trial, step: int, value: float) -> None: ...


def _check_report(value: Any, step: Any) -> tuple[float, int]:
    if isinstance(step, bool) or not isinstance(step, int):
        try:
            import numpy as np

            if not isinstance(step, np.integer):
                raise TypeError
        except TypeError:
            raise TypeError(f"report step must be an int, got {step!r}") from None
    if step < 0:
        raise ValueError(f"report step must be >= 0, got {step}")
    kind = type(value)
    if kind is not float and kind is not int and (kind is bool or not isinstance(value, numbers.Real)):
        raise TypeError(f"reported value must be a number, got {value!r}")
    return float(value), int(step)


class Trial:
    """The live handle an ``async def`` objective receives.

    ``params`` is this trial's configuration (inactive parameters absent),
    ``number`` its number in the study.  ``await trial.report(value, step=...)``
    records an intermediate value and raises :class:`~hpt_async.TrialPruned`
    when the pruner stops the trial.
    """

    __slots__ = ("_ended", "_reports", "_session", "number", "params", "retry_of", "started", "user_attrs")

    def __init__(
        self, number: int, params: dict[str, Any], session: _Session, started: float, retry_of: int | None = None
    ) -> None:
        self.number = number
        self.retry_of = retry_of
        self.params = params
        self.user_attrs: dict[str, Any] = {}
        self.started = started
        self._reports: dict[int, float] = {}
        self._session = session
        self._ended = False

    @property
    def reports(self) -> Mapping[int, float]:
        """Read-only view of ``{step: value}`` reported so far."""
        return MappingProxyType(self._reports)

    def set_user_attr(self, key: str, value: Any) -> None:
        """Attach a JSON-serialisable value to the trial; kept in its record."""
        if not isinstance(key, str):
            raise TypeError(f"user attribute keys are strings, got {key!r}")
        self.user_attrs[key] = value

    async def report(self, value: float, *, step: int) -> None:
        """Record ``value`` at ``step`` and let the pruner decide.

        Raises :class:`~hpt_async.TrialPruned` when the trial must stop,
        ``ValueError`` for a step reported twice, ``TypeError`` for a value
        that is not a number.
        """
        if self._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        fvalue, istep = _check_report(value, step)
        if istep in self._reports:
            raise ValueError(f"trial {self.number}: step {istep} was already reported")
        self._reports[istep] = fvalue
        await self._session.on_report(self, istep, fvalue)

    def snapshot(self) -> TrialRecord:
        """A RUNNING :class:`TrialRecord` of this trial (reports as a live view)."""
        return TrialRecord(
            number=self.number,
            state=TrialState.RUNNING,
            params=MappingProxyType(self.params),
            reports=MappingProxyType(self._reports),
            user_attrs=MappingProxyType(self.user_attrs),
            started=self.started,
            retry_of=self.retry_of,
        )

    def __repr__(self) -> str:
        return f"Trial(number={self.number}, params={self.params!r})"


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
        if self._trial._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        self._trial.set_user_attr(key, value)

    def report(self, value: float, *, step: int) -> None:
        """Synchronous form of :meth:`Trial.report`."""
        if self._trial._ended:
            raise TrialCancelled(f"trial {self.number} has already ended")
        fvalue, istep = _check_report(value, step)
        try:
            self._call(functools.partial(self._trial.report, step=istep), fvalue)
        except (RuntimeError, asyncio.CancelledError, concurrent.futures.CancelledError) as exc:
            # The trial timed out or the study stopped while this report was on its way
            # (cancelled), or the event loop is gone: either way this thread was left behind.
            if self._trial._ended or not isinstance(exc, RuntimeError):
                raise TrialCancelled(f"trial {self.number} has already ended") from exc
            raise

    def __repr__(self) -> str:
        return f"SyncTrial(number={self.number}, params={self.params!r})"
