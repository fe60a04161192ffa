"""The strategy contract."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["Strategy"]


class Strategy:
    """Decides which configuration each new trial gets.

    The tuner awaits these methods directly, one ``ask`` at a time (a
    strategy never sees two overlapping asks), the moment a slot frees.

    * :meth:`start` is awaited once when the study opens; ``study`` already
      holds the trials of a resumed study, so a strategy rebuilds its state
      from them.
    * :meth:`ask` returns a full configuration for trial ``number``, or
      ``None`` when the strategy has nothing more to try (the study then
      ends once running trials finish).  ``study.running`` lists the pending
      trials.
    * :meth:`tell` is awaited with every finished record, after storage
      committed it: this tuner's own, and those of other tuners sharing the
      study as the tuner hears of them.  FAILED, CANCELLED and LOST records
      carry no value.

    Two optional methods make a strategy steer trials while they run, as
    ``pbt`` does:

    * ``async decide(study, trial, step, value, checkpoints)`` is then
      awaited at every report in place of a pruner's (so a Tuner refuses a
      pruner beside it).  ``checkpoints`` maps the number of each trial of
      this tuner that saved a checkpoint to the last step it had reported
      when it saved it (``None`` before any report).  It answers :attr:`~hpt_async.Decision.CONTINUE`,
      :attr:`~hpt_async.Decision.STOP`, or an :class:`~hpt_async.Exploit`
      carrying the trial's new configuration and, optionally, the donor whose
      checkpoint it takes over.
    * ``retained_checkpoints(study)`` returns the numbers of finished trials
      whose checkpoints must be kept (a donor that may still be copied);
      every other finished trial's checkpoint is dropped, the best
      COMPLETE trial's excepted.

    An exception from any of them is fatal to the study, and the error
    names the strategy.  Long computations belong off the event loop
    (``anyio.to_thread.run_sync``).
    """

    name = "strategy"

    #: The tuner checks each configuration from :meth:`ask` against the space
    #: (an invalid one is fatal and names the strategy).  A strategy that only
    #: returns what the space itself built (``space.sample``, ``from_unit``,
    #: ``grid``) may set this to ``False`` to skip the check on the hot path.
    check_output: bool = True

    async def start(self, study: StudyView) -> None:
        """Prepare for ``study`` (its history included)."""

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        """The configuration of trial ``number``, or ``None`` when exhausted."""
        raise NotImplementedError

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Learn a finished trial."""
