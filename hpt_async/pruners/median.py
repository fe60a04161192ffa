"""``pruner="median"``: stop a trial that does worse than the median of the others at the same step."""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contracts import Decision, Pruner
from ..hookspecs import hookimpl
from . import _options as opt

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["MedianPruner"]


class MedianPruner(Pruner):
    """Stops a trial whose value at a step is worse than the median of other trials' values at that step.

    "Other trials" are all the trials that reported that step before, running
    or finished (pruned ones included), so that pruning starts without
    waiting for completions.  A step is judged only when it is at least
    ``warmup_steps``, falls on the ``interval`` counted from there, and at
    least ``min_trials`` other trials have a value at it.  NaN and infinite
    reports are ignored: they are neither judged nor counted.  Decisions
    cost a dictionary look-up and a bisection.  On :meth:`start` the values
    are rebuilt from the stored reports.

    Options: ``warmup_steps`` (default 0), ``min_trials`` (default 5),
    ``interval`` (default 1).
    """

    name = "median"

    def __init__(self, *, warmup_steps: int = 0, min_trials: int = 5, interval: int = 1, **unknown: Any) -> None:
        opt.check_unknown(self.name, unknown, ("warmup_steps", "min_trials", "interval"))
        self.warmup_steps: int = opt.integer(self.name, "warmup_steps", warmup_steps, minimum=0)  # type: ignore[assignment]
        self.min_trials: int = opt.integer(self.name, "min_trials", min_trials, minimum=1)  # type: ignore[assignment]
        self.interval: int = opt.integer(self.name, "interval", interval, minimum=1)  # type: ignore[assignment]
        self._sign = 1.0
        self._steps: dict[int, list[float]] = {}  # step -> sorted losses of the trials that reported it
        self._upto: dict[int, int] = {}  # running trial -> highest step taken in by decide()
        self._started = False

    async def start(self, study: StudyView) -> None:
        """Rebuild the per-step values from every stored report of ``study``."""
        self._sign = study.sign()
        self._steps = {}
        self._upto = {}
        self._started = True
        for record in study.trials.values():
            for step, value in record.reports.items():
                self._add(step, value)

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        """STOP when ``value`` is worse than the median of the other trials at ``step``."""
        if not self._started:
            self._sign = study.sign()
            self._started = True
        if not math.isfinite(value):
            return Decision.CONTINUE
        loss = self._sign * value
        others = self._steps.get(step)
        decision = Decision.CONTINUE
        if (
            others is not None
            and len(others) >= self.min_trials
            and step >= self.warmup_steps
            and (step - self.warmup_steps) % self.interval == 0
            and loss > self._median(others)
        ):
            decision = Decision.STOP
        self._add(step, value)
        self._upto[trial.number] = max(step, self._upto.get(trial.number, step))
        return decision

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Take in the reports of a finished trial that :meth:`decide` did not see (another tuner's)."""
        if not self._started:
            self._sign = study.sign()
            self._started = True
        upto = self._upto.pop(record.number, None)
        for step, value in record.reports.items():
            if upto is None or step > upto:
                self._add(step, value)

    def median(self, step: int) -> float | None:
        """The median value at ``step`` over the trials seen so far, or ``None``."""
        losses = self._steps.get(step)
        return None if not losses else self._sign * self._median(losses)

    @staticmethod
    def _median(losses: list[float]) -> float:
        n = len(losses)
        mid = n // 2
        return losses[mid] if n % 2 else (losses[mid - 1] + losses[mid]) / 2

    def _add(self, step: int, value: float) -> None:
        if not math.isfinite(value):
            return
        loss = self._sign * value
        losses = self._steps.get(step)
        if losses is None:
            self._steps[step] = [loss]
        else:
            losses.insert(bisect_left(losses, loss), loss)

    def __repr__(self) -> str:
        return f"MedianPruner(warmup_steps={self.warmup_steps}, min_trials={self.min_trials}, interval={self.interval})"


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``median``."""
    register("pruner", "median", MedianPruner)
