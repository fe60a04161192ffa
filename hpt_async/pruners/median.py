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
    ``interval`` (default 1), ``objective`` (default ``None``).

    In a study with several objectives the median is taken of one of them:
    ``objective`` names it, by index into the study's directions or by one
    of its ``metric_names``, and the reports must give every objective's
    value (``trial.report(values, step=...)``; a report of one number is
    judged only when ``objective`` is the first).  A Tuner refuses the
    pruner in such a study without ``objective``.
    """

    name = "median"

    def __init__(
        self,
        *,
        warmup_steps: int = 0,
        min_trials: int = 5,
        interval: int = 1,
        objective: int | str | None = None,
        **unknown: Any,
    ) -> None:
        opt.check_unknown(self.name, unknown, ("warmup_steps", "min_trials", "interval", "objective"))
        if objective is not None and (isinstance(objective, bool) or not isinstance(objective, (int, str))):
            raise ValueError(f"pruner 'median': objective is an index or a metric name, got {objective!r}")
        #: The objective judged in a study with several (an index or a metric name), or ``None``.
        self.objective = objective
        self._index = 0
        self.warmup_steps: int = opt.integer(self.name, "warmup_steps", warmup_steps, minimum=0)  # type: ignore[assignment]
        self.min_trials: int = opt.integer(self.name, "min_trials", min_trials, minimum=1)  # type: ignore[assignment]
        self.interval: int = opt.integer(self.name, "interval", interval, minimum=1)  # type: ignore[assignment]
        self._sign = 1.0
        self._steps: dict[int, list[float]] = {}  # step -> sorted losses of the trials that reported it
        self._upto: dict[int, int] = {}  # running trial -> highest step taken in by decide()
        self._started = False

    @property
    def multi_objective(self) -> bool:  # type: ignore[override]
        """True once ``objective`` names the objective to judge in a study with several."""
        return self.objective is not None

    #: What a Tuner says when it refuses this pruner in a study with several objectives.
    multi_objective_advice = (
        "give pruner 'median' the objective to judge: objective= an index into directions or one of metric_names, "
        "e.g. pruner={'name': 'median', 'objective': 0}; or use pruner 'asha' or 'hyperband', which rank by "
        "every objective"
    )

    def _begin(self, study: StudyView) -> None:
        if len(study.directions) > 1:
            if self.objective is None:
                raise ValueError(f"pruner 'median' in a study with several objectives: {self.multi_objective_advice}")
            self._index = study.objective_index(self.objective)
        else:
            self._index = 0
        self._sign = 1.0 if study.directions[self._index] == "minimize" else -1.0
        self._started = True

    def _value(self, record: TrialRecord, step: int, value: float) -> float:
        """The judged objective's value of the report at ``step`` (NaN when the report did not give it)."""
        if self._index == 0:
            return value
        values = record.report_values.get(step)
        return values[self._index] if values is not None and len(values) > self._index else math.nan

    async def start(self, study: StudyView) -> None:
        """Rebuild the per-step values from every stored report of ``study``."""
        self._begin(study)
        self._steps = {}
        self._upto = {}
        for record in study.trials.values():
            for step, value in record.reports.items():
                self._add(step, self._value(record, step, value))

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        """STOP when ``value`` is worse than the median of the other trials at ``step``."""
        if not self._started:
            self._begin(study)
        value = self._value(trial, step, value)
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
            self._begin(study)
        upto = self._upto.pop(record.number, None)
        for step, value in record.reports.items():
            if upto is None or step > upto:
                self._add(step, self._value(record, step, value))

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
        extra = "" if self.objective is None else f", objective={self.objective!r}"
        return (
            f"MedianPruner(warmup_steps={self.warmup_steps}, min_trials={self.min_trials}, "
            f"interval={self.interval}{extra})"
        )


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``median``."""
    register("pruner", "median", MedianPruner)
