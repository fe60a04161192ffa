"""The pruner contract: whether a trial goes on after each report."""

from __future__ import annotations

from typing import TYPE_CHECKING, ClassVar

from .decisions import Decision

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["Pruner"]


class Pruner:
    """Answers on each report whether the trial goes on.

    Who calls it, and when: the Tuner awaits these methods on the event
    loop, never from a worker thread.

    Required:

    * :meth:`decide` is awaited after a report has been stored and
      announced; ``trial`` is a RUNNING snapshot (its ``reports`` include
      this one), ``study.running`` the trials running now.  Returning
      :attr:`Decision.STOP` makes the objective's ``report`` raise
      :class:`~hpt_async.TrialPruned`.

    Optional, with working defaults here:

    * :meth:`start` sees the stored history when the study opens, so that
      state can be rebuilt from it on resume.
    * :meth:`tell` hears of every trial that ends, this tuner's (after the
      strategy heard of it) or another's sharing the study; the reports of
      the latter were never passed to :meth:`decide` here, so this is where
      a pruner takes them in.

    Declared capability: promotion (:attr:`promotes`).  A pruner that
    declares it may answer :attr:`Decision.PAUSE`; :meth:`tell` then hears
    of the PAUSED record, and each time a slot frees the tuner awaits
    :meth:`promote` for a paused trial to resume before it asks the strategy
    for a new one.

    A pruner that handles a study with several objectives declares
    :attr:`multi_objective`; in such a study ``value`` is the report's
    first objective's value and ``trial.report_values[step]`` holds every
    objective's value (when the report gave them), and a Tuner refuses a
    pruner that does not declare it (showing its ``multi_objective_advice``
    text, when it has one).

    Errors: an exception from any method is fatal to the study; the
    :class:`~hpt_async.StudyError` names the pruner.
    """

    #: The name the pruner is registered under (shown in events and stored specs).
    name: ClassVar[str] = "pruner"
    #: True when :meth:`decide` may answer PAUSE and :meth:`promote` may name a trial.
    promotes: bool = False
    #: True when the pruner handles a study with several objectives.
    multi_objective: ClassVar[bool] = False

    async def start(self, study: StudyView) -> None:
        """Prepare for ``study`` (its history included)."""

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        """CONTINUE or STOP (or PAUSE, in promotion mode) after ``trial`` reported ``value`` at ``step``."""
        raise NotImplementedError(f"{type(self).__name__} must implement decide(study, trial, step, value)")

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Learn a finished trial (this tuner's or another's)."""

    async def promote(self, study: StudyView) -> int | None:
        """The number of a PAUSED trial of ``study`` to resume now, or ``None`` to start a new trial.

        Awaited only when :attr:`promotes` is true, each time a slot frees,
        before the strategy is asked.  The trial named must be PAUSED in
        ``study``.
        """
        return None
