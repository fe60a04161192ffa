"""Knowing when to stop: a rule that ends a run once the search has stopped making progress.

``Tuner(..., converged=Convergence(patience=50))`` (or ``converged=True``
for the defaults) stops the run with reason ``"converged"``
(:attr:`StopReason.CONVERGED <hpt_async.StopReason.CONVERGED>`) when, after
at least ``min_trials`` COMPLETE trials, the last ``patience`` COMPLETE
trials have not improved the best value by more than the noise.  The noise
is ``noise`` when given (say, the standard deviation of the objective
between two seeds of the same configuration), else ``rel_noise`` times the
spread of the values seen (the interquartile range of the COMPLETE
values), so that improvements too small to tell from noise do not count as
progress.  Trials still running when the rule fires finish normally; no new
trial starts.

This is the "no improvement beyond noise for a while" criterion; unlike
Optuna's Terminator it does not fit a model to bound the remaining regret,
so it needs no model and works with every strategy, for one objective (a
study with several objectives refuses it).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import StudyView
    from .trial import TrialRecord

__all__ = ["Convergence"]


def _check(name: str, value: Any, low: float, kind: type | tuple[type, ...], *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= low or not math.isfinite(value):
        raise ValueError(
            f"Convergence: {name} must be a {'number' if kind is not int else 'int'} >= {low}, got {value!r}"
        )


class Convergence:
    """The stop rule "no improvement beyond noise in the last ``patience`` COMPLETE trials" (see the module).

    ``patience``: COMPLETE trials without a real improvement before the run
    stops (default 50); ``min_trials``: COMPLETE trials before the rule may
    fire (default ``2 * patience``); ``noise``: the improvement that counts
    as real, in the objective's units (default: ``rel_noise`` times the
    interquartile range of the COMPLETE values); ``rel_noise`` (default
    0.01).  Bad values raise ``ValueError``.
    """

    def __init__(
        self,
        patience: int = 50,
        *,
        min_trials: int | None = None,
        noise: float | None = None,
        rel_noise: float = 0.01,
    ) -> None:
        _check("patience", patience, 1, int)
        _check("min_trials", min_trials, 1, int, allow_none=True)
        _check("noise", noise, 0.0, (int, float), allow_none=True)
        _check("rel_noise", rel_noise, 0.0, (int, float))
        self.patience = patience
        self.min_trials = 2 * patience if min_trials is None else min_trials
        self.noise = None if noise is None else float(noise)
        self.rel_noise = float(rel_noise)
        self._losses: list[float] = []

    def reset(self, study: StudyView) -> None:
        """Start over from the COMPLETE trials of ``study`` (called when a run opens the study)."""
        self._losses = []
        for record in study.finished():
            self.observe(study, record)

    def observe(self, study: StudyView, record: TrialRecord) -> bool:
        """Learn a finished trial; True when the search has converged by the rule."""
        from .trial import TrialState

        if record.state is not TrialState.COMPLETE or record.value is None or not math.isfinite(record.value):
            return False
        self._losses.append(study.sign() * float(record.value))
        return self.converged()

    def threshold(self) -> float:
        """The improvement that counts as real now."""
        if self.noise is not None:
            return self.noise
        losses = sorted(self._losses)
        n = len(losses)
        if n < 4:
            return 0.0
        return self.rel_noise * (losses[(3 * n) // 4] - losses[n // 4])

    def converged(self) -> bool:
        """True when at least ``min_trials`` values are known and the last ``patience`` brought no real gain."""
        losses = self._losses
        if len(losses) < max(self.min_trials, self.patience + 1):
            return False
        before = min(losses[: -self.patience])
        recent = min(losses[-self.patience :])
        return not before - recent > self.threshold()

    def __repr__(self) -> str:
        return f"Convergence(patience={self.patience}, min_trials={self.min_trials}, noise={self.noise})"
