"""What ``await tuner.run()`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._pareto import pareto_front
from .trial import TrialRecord, TrialState

__all__ = ["StopReason", "StudyResult"]


class StopReason:
    """Why a run stopped (the values of :attr:`StudyResult.reason`)."""

    MAX_TRIALS = "max_trials"
    TIMEOUT = "timeout"
    TARGET = "target"
    EXHAUSTED = "exhausted"
    MAX_FAILURES = "max_failures"
    #: The first trials of the run all FAILED (``fail_fast``); :meth:`Tuner.run` raises StudyFailed.
    FAIL_FAST = "fail_fast"
    #: Ctrl-C (SIGINT) or SIGTERM stopped the run gracefully.
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True)
class StudyResult:
    """The outcome of a run: every trial of the study, and the best.

    ``trials`` holds all trials of the study ordered by number (those of
    earlier runs too, when the study was resumed).  ``best`` is the best
    COMPLETE trial for ``direction``, or ``None`` (always ``None`` for a
    study with several objectives, whose ``direction`` is a tuple: see
    :attr:`best_trials`).  ``reason`` is one of the
    :class:`StopReason` values.  ``plugin_errors`` counts, per
    ``"plugin.hook"``, notifications that raised and were skipped.
    """

    study: str
    direction: str | tuple[str, ...]
    seed: int
    trials: tuple[TrialRecord, ...]
    best: TrialRecord | None
    reason: str
    plugin_errors: Mapping[str, int] = field(default_factory=dict)

    def count(self, state: TrialState | str) -> int:
        """Number of trials in ``state``."""
        state = TrialState(state)
        return sum(1 for t in self.trials if t.state is state)

    @property
    def directions(self) -> tuple[str, ...]:
        """One direction per objective."""
        return (self.direction,) if isinstance(self.direction, str) else tuple(self.direction)

    @property
    def best_trials(self) -> list[TrialRecord]:
        """The COMPLETE trials no other one beats in every objective (the Pareto front), by number.

        With one objective, the best trial (or none).
        """
        if len(self.directions) == 1:
            return [] if self.best is None else [self.best]
        return pareto_front(self.trials, self.directions)

    @property
    def best_params(self) -> dict[str, Any] | None:
        """The best trial's configuration, or ``None``."""
        return None if self.best is None else dict(self.best.params)

    @property
    def best_value(self) -> float | None:
        """The best trial's value, or ``None``."""
        return None if self.best is None else self.best.value

    def __repr__(self) -> str:
        best = "None" if self.best is None else f"trial {self.best.number} value={self.best.value!r}"
        return f"StudyResult(study={self.study!r}, trials={len(self.trials)}, best={best}, reason={self.reason!r})"
