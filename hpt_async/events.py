"""Lifecycle events: one small frozen dataclass per moment of a study.

Each event is passed to the hook of the same name in :mod:`hpt_async.hookspecs`
(``TrialEnded`` to ``hpt_trial_ended``...).  The names end in a verb so that
none clashes with the exception :class:`~hpt_async.TrialPruned`: a pruned
trial is a ``TrialEnded`` whose record has state PRUNED.  ``time`` is a Unix
timestamp.

The four trial events are built for every trial, so their ``__init__`` is
written by hand: it stores each field through its slot directly, 1.5 to 2 times
as fast as the one a frozen dataclass generates, with the same result (the
instances stay frozen; ``dataclasses.replace`` and equality work as usual).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .result import StudyResult
    from .space import Space
    from .trial import TrialRecord

__all__ = ["StudyEnded", "StudyStarted", "TrialCreated", "TrialEnded", "TrialReported", "TrialStarted"]


@dataclass(frozen=True, slots=True)
class StudyStarted:
    """A tuner started (or resumed) the study ``study``.

    ``max_trials`` and ``timeout`` are the run's budget (``None`` when not
    set; ``timeout`` is ``None`` for an ask-and-tell study, where it does not
    apply).  ``strategy`` and ``pruner`` name the components (``None`` when
    there is no pruner).  ``strategy_choice`` says which strategy ``auto``
    chose and why (``None`` for any other strategy).
    """

    study: str
    direction: str
    space: Space
    seed: int
    time: float
    max_trials: int | None = None
    timeout: float | None = None
    strategy: str | None = None
    pruner: str | None = None
    strategy_choice: str | None = None


@dataclass(frozen=True, slots=True, init=False)
class TrialCreated:
    """A trial got its number and configuration; storage has persisted it."""

    number: int
    params: dict[str, Any]
    time: float

    def __init__(self, number: int, params: dict[str, Any], time: float) -> None:
        _created_number(self, number)
        _created_params(self, params)
        _created_time(self, time)


@dataclass(frozen=True, slots=True, init=False)
class TrialStarted:
    """An executor picked the trial up and the objective is about to run."""

    number: int
    time: float

    def __init__(self, number: int, time: float) -> None:
        _started_number(self, number)
        _started_time(self, time)


@dataclass(frozen=True, slots=True, init=False)
class TrialReported:
    """The objective reported ``value`` at ``step`` (before the pruner decides).

    ``values`` holds every objective's value when the report gave several
    (``value`` is then the first), else ``None``.
    """

    number: int
    step: int
    value: float
    time: float
    values: tuple[float, ...] | None

    def __init__(
        self, number: int, step: int, value: float, time: float, values: tuple[float, ...] | None = None
    ) -> None:
        _reported_number(self, number)
        _reported_step(self, step)
        _reported_value(self, value)
        _reported_time(self, time)
        _reported_values(self, values)


@dataclass(frozen=True, slots=True, init=False)
class TrialEnded:
    """The trial finished in ``record.state``; storage has committed it and the strategy has learnt it."""

    record: TrialRecord

    def __init__(self, record: TrialRecord) -> None:
        _ended_record(self, record)

    @property
    def number(self) -> int:
        """The trial's number."""
        return self.record.number

    @property
    def time(self) -> float:
        """When the trial ended."""
        return self.record.ended or self.record.started


@dataclass(frozen=True, slots=True)
class StudyEnded:
    """The tuner stopped; ``result.reason`` says why."""

    result: StudyResult
    time: float


# The slot setters the hand-written __init__ methods above use (a frozen dataclass refuses plain assignment).
_created_number = TrialCreated.__dict__["number"].__set__
_created_params = TrialCreated.__dict__["params"].__set__
_created_time = TrialCreated.__dict__["time"].__set__
_started_number = TrialStarted.__dict__["number"].__set__
_started_time = TrialStarted.__dict__["time"].__set__
_reported_number = TrialReported.__dict__["number"].__set__
_reported_step = TrialReported.__dict__["step"].__set__
_reported_value = TrialReported.__dict__["value"].__set__
_reported_time = TrialReported.__dict__["time"].__set__
_reported_values = TrialReported.__dict__["values"].__set__
_ended_record = TrialEnded.__dict__["record"].__set__
