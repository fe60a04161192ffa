"""The strategy contract: which configuration each new trial gets."""

from __future__ import annotations

from collections.abc import Collection, Mapping, Sequence
from typing import TYPE_CHECKING, Any, ClassVar

from .decisions import Decision, Exploit

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["Strategy"]


class Strategy:
    """Decides which configuration each new trial gets.

    Who calls it, and when: the Tuner awaits these methods directly on the
    event loop, never from a worker thread.  Asks are serialised: a strategy
    never sees two overlapping calls of ``ask``/``ask_batch``.  ``tell`` and
    ``decide`` are not: while an ``ask`` awaits (a model fit off the loop,
    say), other trials go on ending and reporting, so a strategy whose
    ``ask`` suspends must keep its state consistent across that await (take
    a copy of what it reads before it, or guard it).  Work that takes more
    than a millisecond or so (fitting a model, optimising an acquisition)
    belongs off the loop, in ``await anyio.to_thread.run_sync(...)``, so
    that reports and completions keep flowing meanwhile.

    Required:

    * :meth:`ask` returns a full configuration for trial ``number`` (a dict
      of the space's active parameters), or ``None`` when the strategy has
      nothing more to try (the study then ends once running trials finish).
      ``study.running`` holds the trials still running (pending points).

    Optional, with working defaults here:

    * :meth:`start` is awaited once when the study opens; ``study`` already
      holds the trials of a resumed study, so a strategy rebuilds its state
      from them.
    * :meth:`tell` is awaited with every finished record, after storage
      committed it: this tuner's own, and those of other tuners sharing the
      study as the tuner hears of them.  FAILED, CANCELLED and LOST records
      carry no value.  A record never changes after it is handed over.
    * :meth:`ask_batch` returns configurations for several trial numbers at
      once; a model-based strategy overrides it to fit once for many free
      slots.  The default asks one at a time.
    * :meth:`batch_limit` bounds how many trial numbers the next
      :meth:`ask_batch` is given (at least one), below the number of free
      workers; the default, ``None``, does not bound it.  A strategy that
      keeps fewer trials running than there are workers (``bayes`` under a
      small budget) says here how many places are free, and waits in
      :meth:`ask_batch` for a result when none is.

    Declared capabilities (class attributes, read once when a Tuner is
    built):

    * :attr:`decides`: the strategy answers at every report itself, in place
      of a pruner (so a Tuner refuses a pruner beside it), through
      :meth:`decide`.  Population-based training does this.
    * :attr:`retains_checkpoints`: :meth:`retained_checkpoints` names the
      finished trials whose checkpoints must be kept.
    * :attr:`multi_objective`: the strategy handles a study with several
      objectives (``study.directions``; each finished record's ``values``).
      A Tuner refuses a study with several directions for a strategy that
      does not declare it.  Any strategy may read a record's
      ``constraints`` and ``feasible`` (see ``Trial.set_constraints``).
    * :attr:`check_output`: the tuner checks each configuration against the
      space (an invalid one is fatal and names the strategy).  A strategy
      that only returns what the space itself built may set it to ``False``
      to skip the check on the hot path.
    * :attr:`exclusive`: each configuration the strategy suggests runs once
      in the study, however many tuners share it (grid).  The tuner creates
      such a trial with :meth:`StudySession.trial_created_once
      <hpt_async.contracts.StudySession.trial_created_once>`; when another
      trial of the study already holds the configuration, the strategy is
      asked again for the same number (its :meth:`ask` must then move on).

    Errors: an exception from any method is fatal to the study; the
    :class:`~hpt_async.StudyError` names the strategy and chains the
    exception.
    """

    #: The name the strategy is registered under (shown in events and stored specs).
    name: ClassVar[str] = "strategy"
    check_output: bool = True
    #: True when :meth:`decide` is awaited at every report (in place of a pruner).
    decides: ClassVar[bool] = False
    #: True when :meth:`retained_checkpoints` names checkpoints to keep.
    retains_checkpoints: ClassVar[bool] = False
    #: True when the strategy handles several objectives (``study.directions``, ``record.values``).
    multi_objective: ClassVar[bool] = False
    #: True when each suggested configuration must run once in the study (see the class notes).
    exclusive: ClassVar[bool] = False

    async def start(self, study: StudyView) -> None:
        """Prepare for ``study`` (its history included)."""

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        """The configuration of trial ``number``, or ``None`` when exhausted."""
        raise NotImplementedError(f"{type(self).__name__} must implement ask(study, number)")

    async def ask_batch(self, study: StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Configurations for the trials ``numbers``, in order; ``None`` from the first exhausted one on.

        The default awaits :meth:`ask` for each number and stops at the
        first ``None`` (the rest of the list is ``None`` too).
        """
        out: list[dict[str, Any] | None] = []
        for number in numbers:
            params = await self.ask(study, number)
            out.append(params)
            if params is None:
                out.extend([None] * (len(numbers) - len(out)))
                break
        return out

    def batch_limit(self, study: StudyView) -> int | None:
        """The most trial numbers the next :meth:`ask_batch` may be given, or ``None`` for no bound.

        Called (only when overridden) just before a batched ask, on the
        event loop; it must be cheap and must not suspend.  A value below 1
        counts as 1.
        """
        return None

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Learn a finished trial."""

    async def decide(
        self,
        study: StudyView,
        trial: TrialRecord,
        step: int,
        value: float,
        checkpoints: Mapping[int, int | None],
    ) -> Decision | Exploit:
        """Answer a report of ``trial`` (only with :attr:`decides`).

        ``trial`` is a RUNNING snapshot whose ``reports`` include this one.
        ``checkpoints`` maps the number of each trial of this tuner that
        saved a checkpoint to the last step it had reported when it saved
        it (``None`` before any report).  Answers
        :attr:`~Decision.CONTINUE`, :attr:`~Decision.STOP`, or an
        :class:`Exploit` carrying the trial's new configuration and,
        optionally, the donor whose checkpoint it takes over.
        """
        return Decision.CONTINUE

    def retained_checkpoints(self, study: StudyView) -> Collection[int]:
        """Numbers of finished trials whose checkpoints must be kept (only with :attr:`retains_checkpoints`).

        Every other finished trial's checkpoint is dropped, except the best
        COMPLETE trial's and those of PAUSED trials.
        """
        return ()
