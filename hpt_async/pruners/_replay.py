"""Recording the decisions of a pruner in arrival order, and replaying them into a fresh one.

:class:`DecisionLog` wraps a pruner given to a Tuner: every report it
decides and every trial end it hears is appended to :attr:`DecisionLog.events`
in the order the pruner saw them.  :func:`replay` feeds such a sequence, one
event at a time, to another pruner and returns the decisions it takes: for
the builtin pruners they equal the recorded ones.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from types import MappingProxyType

from ..contracts import Decision, Pruner
from ..space import Float, Space
from ..study import StudyView
from ..trial import TrialRecord, TrialState

__all__ = ["DecisionLog", "Ended", "Reported", "replay"]


@dataclass(frozen=True, slots=True)
class Reported:
    """Trial ``number`` reported ``value`` at ``step`` and the pruner answered ``decision``."""

    number: int
    step: int
    value: float
    decision: Decision


@dataclass(frozen=True, slots=True)
class Ended:
    """The pruner heard that a trial ended with ``record``."""

    record: TrialRecord


class DecisionLog(Pruner):
    """A pruner that delegates to ``inner`` and records what it saw, in order."""

    def __init__(self, inner: Pruner) -> None:
        self.inner = inner
        self.name = f"log({getattr(inner, 'name', type(inner).__name__)})"
        self.events: list[Reported | Ended] = []
        self.promotes = bool(getattr(inner, "promotes", False))
        #: Trials ``inner.promote`` named, in order.
        self.promoted: list[int] = []

    async def start(self, study: StudyView) -> None:
        await self.inner.start(study)

    async def promote(self, study: StudyView) -> int | None:
        """Ask ``inner`` for a paused trial to resume, and record its answer when it names one."""
        number = await self.inner.promote(study)
        if number is not None:
            self.promoted.append(number)
        return number

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        decision = await self.inner.decide(study, trial, step, value)
        self.events.append(Reported(trial.number, step, value, decision))
        return decision

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Record the end and pass it on to ``inner``."""
        self.events.append(Ended(record))
        await self.inner.tell(study, record)

    def decisions(self) -> list[Reported]:
        """The recorded reports with their decisions."""
        return [e for e in self.events if isinstance(e, Reported)]


async def replay(pruner: Pruner, events: Iterable[Reported | Ended], direction: str = "minimize") -> list[Reported]:
    """Feed ``events`` one at a time to a fresh ``pruner`` on an empty study; return its decisions."""
    study = StudyView("replay", direction, Space({"x": Float(0.0, 1.0)}), 0)
    await pruner.start(study)
    reports: dict[int, dict[int, float]] = {}
    out: list[Reported] = []
    for event in events:
        if isinstance(event, Ended):
            await pruner.tell(study, event.record)
            continue
        steps = reports.setdefault(event.number, {})
        steps[event.step] = event.value
        record = TrialRecord(event.number, TrialState.RUNNING, MappingProxyType({}), reports=MappingProxyType(steps))
        decision = await pruner.decide(study, record, event.step, event.value)
        out.append(Reported(event.number, event.step, event.value, decision))
    return out
