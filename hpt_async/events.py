"""Lifecycle events: one small frozen dataclass per moment of a study.

Each event is passed to the hook of the same name in :mod:`hpt_async.hookspecs`
(``TrialEnded`` to ``hpt_trial_ended``...).  The names end in a verb so that
none clashes with the exception :class:`~hpt_async.TrialPruned`: a pruned
trial is a ``TrialEnded`` whose record has state PRUNED.  ``time`` is a Unix
timestamp.
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
    """A tuner started (or resumed) the study ``study``."""

    study: str
    direction: str
    space: Space
    seed: int
    time: float


@dataclass(frozen=True, slots=True)
class TrialCreated:
    """A trial got its number and configuration; storage has persisted it."""

    number: int
    params: dict[str, Any]
    time: float


@dataclass(frozen=True, slots=True)
class TrialStarted:
    """An executor picked the trial up and the objective is about to run."""

    number: int
    time: float


@dataclass(frozen=True, slots=True)
class TrialReported:
    """The objective reported ``value`` at ``step`` (before the pruner decides)."""

    number: int
    step: int
    value: float
    time: float


@dataclass(frozen=True, slots=True)
class TrialEnded:
    """The trial finished in ``record.state``; storage has committed it and the strategy has learnt it."""

    record: TrialRecord

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
