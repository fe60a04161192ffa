"""The answers given at a report: :class:`Decision` and :class:`Exploit`."""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, ClassVar

__all__ = ["Decision", "Exploit"]


class Decision(enum.StrEnum):
    """What happens to a trial after a report.

    ``CONTINUE`` and ``STOP`` are any decider's answers.  ``PAUSE`` is only
    answered by a pruner that declares :attr:`Pruner.promotes
    <hpt_async.contracts.Pruner.promotes>`: the objective's ``report``
    raises :class:`~hpt_async.TrialPaused` and the trial is recorded PAUSED,
    to be resumed if :meth:`Pruner.promote
    <hpt_async.contracts.Pruner.promote>` later names it.  ``EXPLOIT`` is the
    kind of an :class:`Exploit` answer, which only a strategy that declares
    :attr:`Strategy.decides <hpt_async.contracts.Strategy.decides>` gives;
    the bare member is never an answer on its own (it carries no
    configuration).
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
