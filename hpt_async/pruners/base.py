"""The decision contract answered at every report."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["Decision", "Exploit", "Pruner"]


class Decision(enum.StrEnum):
    """What happens to a trial after a report.

    ``CONTINUE`` and ``STOP`` are a pruner's answers; ``PAUSE`` is the
    answer of a pruner in promotion mode (:attr:`Pruner.promotes`): the
    objective's ``report`` raises :class:`~hpt_async.TrialPaused` and the
    trial is recorded PAUSED, to be resumed if :meth:`Pruner.promote` later
    names it.  ``EXPLOIT`` is only given by a strategy that decides at
    reports itself (``pbt``), in the form of an :class:`Exploit` that
    carries the new hyperparameters.
    """

    CONTINUE = "continue"
    STOP = "stop"
    EXPLOIT = "exploit"
    PAUSE = "pause"


@dataclass(frozen=True)
class Exploit:
    """The EXPLOIT answer: the trial goes on with ``params``, from ``donor``'s checkpoint.

    ``params`` is a full configuration of the space.  With ``donor`` (a
    trial number), the tuner copies that trial's latest checkpoint over the
    reporting trial's, and the trial's ``should_restore`` turns true so that
    the objective loads it with ``restore()``.  With ``donor=None`` only the
    hyperparameters change (a replayed schedule).  Either way the change is
    recorded in the trial's ``schedule``.
    """

    params: Mapping[str, Any]
    donor: int | None = None
    decision: ClassVar[Decision] = Decision.EXPLOIT


class Pruner:
    """Answers on each report whether the trial goes on.

    :meth:`decide` is awaited by the tuner after the report has been stored
    and announced; ``trial`` is the RUNNING record (its ``reports`` include
    this one), ``study.running`` the trials running now.  Returning
    :attr:`Decision.STOP` makes the objective's ``report`` raise
    :class:`~hpt_async.TrialPruned`.  On resume, :meth:`start` sees the
    stored history so that state can be rebuilt from it; :meth:`tell` hears of
    every trial that ends, this tuner's or another's.  An exception is fatal
    to the study.

    Promotion mode: a pruner whose :attr:`promotes` is true may answer
    :attr:`Decision.PAUSE`; :meth:`tell` then hears of the PAUSED record,
    and before each new trial the tuner awaits :meth:`promote` for a paused
    trial to resume instead.
    """

    name = "pruner"

    #: True when :meth:`decide` may answer PAUSE and :meth:`promote` may name a trial.
    promotes: bool = False

    async def promote(self, study: StudyView) -> int | None:
        """The number of a PAUSED trial of ``study`` to resume now, or ``None`` to start a new trial.

        Awaited by the tuner each time a slot frees, before the strategy is
        asked, only when :attr:`promotes` is true.  The trial named must be
        PAUSED in ``study``.
        """
        return None

    async def start(self, study: StudyView) -> None:
        """Prepare for ``study`` (its history included)."""

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        """CONTINUE or STOP after ``trial`` reported ``value`` at ``step``."""
        raise NotImplementedError

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Learn a finished trial.

        Awaited for this tuner's own trials once they end (after the strategy
        heard of them), and for the trials of other tuners sharing the study
        as the tuner hears of them; their reports were never passed to
        :meth:`decide` here, so this is where a pruner takes them in.
        """
