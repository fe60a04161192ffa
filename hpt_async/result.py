"""What ``await tuner.run()`` returns."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from ._pareto import hypervolume, losses, pareto_front
from .exceptions import HptError
from .trial import TrialRecord, TrialState

__all__ = ["SeveralObjectivesError", "StopReason", "StudyResult"]


class SeveralObjectivesError(HptError, AttributeError):
    """A study with several objectives has no single best trial: read ``best_trials`` (its Pareto front)."""


class StopReason:
    """Why a run stopped (the values of :attr:`StudyResult.reason`)."""

    MAX_TRIALS = "max_trials"
    TIMEOUT = "timeout"
    TARGET = "target"
    EXHAUSTED = "exhausted"
    MAX_FAILURES = "max_failures"
    #: The first trials of the run all FAILED (``fail_fast``); :meth:`Tuner.run` raises StudyFailed.
    FAIL_FAST = "fail_fast"
    #: The search converged by the Tuner's ``converged=`` rule (:class:`~hpt_async.Convergence`).
    CONVERGED = "converged"
    #: The model's bound on the regret left fell below the objective's error (:class:`~hpt_async.RegretBound`).
    REGRET_BOUND = "regret_bound"
    #: Ctrl-C (SIGINT) or SIGTERM stopped the run gracefully.
    INTERRUPTED = "interrupted"
    CANCELLED = "cancelled"
    CLOSED = "closed"


@dataclass(frozen=True, init=False)
class StudyResult:
    """The outcome of a run: every trial of the study, and the best.

    ``trials`` holds all trials of the study ordered by number (those of
    earlier runs too, when the study was resumed).  ``best`` is the best
    feasible COMPLETE trial for ``direction``, or ``None`` when there is
    none (no trial COMPLETE, or none feasible).  A study with several
    objectives (``direction`` a tuple) has no single best: reading ``best``
    (or ``best_params``, ``best_value``) raises
    :class:`SeveralObjectivesError`, and :attr:`best_trials` gives its
    Pareto front.  ``reason`` is one of the :class:`StopReason` values.
    ``plugin_errors`` counts, per ``"plugin.hook"``, notifications that
    raised and were skipped.  ``metric_names`` names the objectives when the
    study gave names, else ``None``.
    """

    study: str
    direction: str | tuple[str, ...]
    seed: int
    trials: tuple[TrialRecord, ...]
    _best: TrialRecord | None
    reason: str
    plugin_errors: Mapping[str, int] = field(default_factory=dict)
    metric_names: tuple[str, ...] | None = None

    def __init__(
        self,
        study: str,
        direction: str | tuple[str, ...],
        seed: int,
        trials: tuple[TrialRecord, ...],
        best: TrialRecord | None,
        reason: str,
        plugin_errors: Mapping[str, int] | None = None,
        metric_names: tuple[str, ...] | None = None,
    ) -> None:
        object.__setattr__(self, "study", study)
        object.__setattr__(self, "direction", direction)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "trials", trials)
        object.__setattr__(self, "_best", best)
        object.__setattr__(self, "reason", reason)
        object.__setattr__(self, "plugin_errors", {} if plugin_errors is None else plugin_errors)
        object.__setattr__(self, "metric_names", metric_names)

    @property
    def best(self) -> TrialRecord | None:
        """The best feasible COMPLETE trial, or ``None``; raises for a study with several objectives."""
        if not isinstance(self.direction, str) and len(self.direction) > 1:
            raise SeveralObjectivesError(
                f"study {self.study!r} has {len(self.direction)} objectives and no single best trial: "
                "use result.best_trials (the Pareto front of its feasible COMPLETE trials)"
            )
        return self._best

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
        """The feasible COMPLETE trials no other feasible one beats in every objective (the Pareto front).

        By number.  With one objective, the best feasible trial (or none);
        empty when no COMPLETE trial is feasible.
        """
        if len(self.directions) == 1:
            return [] if self._best is None else [self._best]
        return pareto_front(self.trials, self.directions)

    def hypervolume(self, reference_point: list[float] | tuple[float, ...] | None = None) -> float:
        """The hypervolume of :attr:`best_trials` (see :func:`hpt_async.hypervolume`); 0.0 with no front.

        ``reference_point`` is in objective values; without one, the worst
        value of each objective on the front plus 10% of its range.
        """
        front = self.best_trials
        if not front:
            return 0.0
        points = [losses(r, self.directions) for r in front]
        signs = [1.0 if d == "minimize" else -1.0 for d in self.directions]
        values = [tuple(s * x for s, x in zip(signs, p, strict=True)) for p in points if p is not None]
        return hypervolume(values, reference_point, directions=self.directions)

    @property
    def n_feasible(self) -> int:
        """How many COMPLETE trials are feasible (every constraint ``<= 0``, or none set)."""
        return sum(1 for t in self.trials if t.state is TrialState.COMPLETE and t.feasible)

    @property
    def best_params(self) -> dict[str, Any] | None:
        """The best trial's configuration, or ``None`` (raises as :attr:`best` does)."""
        best = self.best
        return None if best is None else dict(best.params)

    @property
    def best_value(self) -> float | None:
        """The best trial's value, or ``None`` (raises as :attr:`best` does)."""
        best = self.best
        return None if best is None else best.value

    def __repr__(self) -> str:
        if len(self.directions) > 1:
            best = f"best_trials={len(self.best_trials)}"
        else:
            b = self._best
            best = "best=None" if b is None else f"best=trial {b.number} value={b.value!r}"
        return f"StudyResult(study={self.study!r}, trials={len(self.trials)}, {best}, reason={self.reason!r})"
