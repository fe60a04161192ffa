"""The tuner's side of its running trials: each report, checkpoint, restore and exploit.

:class:`TunerTrialSession` is the :class:`~hpt_async.contracts.TrialSession`
the Tuner gives every trial it runs.  A report is stored, put in the study
view as a new RUNNING snapshot, announced (``hpt_trial_reported``), and
answered by the decider (the pruner, or a strategy that decides);
checkpoints go to storage and into the run's :class:`CheckpointBook`.  A
storage or decider error is fatal to the study: the session records it in
the :class:`RunState` and raises :class:`~hpt_async.TrialCancelled` into
the objective.
"""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING

import anyio.lowlevel

from ._components import accepts_keyword, label
from .contracts import Decision, Exploit
from .events import TrialReported
from .exceptions import TrialCancelled, TrialPaused, TrialPruned

if TYPE_CHECKING:
    from ._checkpoint_book import CheckpointBook
    from ._components import Components
    from ._run import RunState
    from .contracts.storage import StudySession
    from .relay import HookRelay
    from .space import Space
    from .study import StudyView
    from .trial import Trial

__all__ = ["TunerTrialSession"]

log = logging.getLogger("hpt_async")


class TunerTrialSession:
    """What a live trial of one tuner calls back into (see the module docstring)."""

    def __init__(
        self,
        components: Components,
        session: StudySession,
        view: StudyView,
        relay: HookRelay,
        run: RunState,
        book: CheckpointBook,
        space: Space,
    ) -> None:
        self._parts = components
        self._session = session
        self._view = view
        self._relay = relay
        self._run = run
        self._book = book
        self._space = space
        self._storage = label(components.storage)
        # Reports with every objective's value go to a backend that takes them, checked once.
        self._store_values = accepts_keyword(session.trial_reported, "values")
        decider = components.decider
        self._decide = None if decider is None else decider.decide
        self._decider = "" if decider is None else f"{components.decider_kind} {label(decider)!r}"

    def _cancel(self, trial: Trial, message: str, exc: BaseException) -> TrialCancelled:
        self._run.fail(message, exc)
        return TrialCancelled(f"trial {trial.number}: the study stopped")

    async def on_report(self, trial: Trial, step: int, value: float) -> None:
        """Store a report, announce it, and let the decider answer (``Trial.report`` calls this)."""
        view = self._view
        values = trial.values_at(step)
        try:
            if values is not None and self._store_values:
                await self._session.trial_reported(trial.number, step, value, values=values)
            else:
                await self._session.trial_reported(trial.number, step, value)
        except Exception as exc:
            message = f"storage {self._storage!r} failed to store a report of trial {trial.number}"
            raise self._cancel(trial, message, exc) from exc
        view._put(trial.snapshot())  # strategies and the decider see this report in the trial's record
        fire = self._relay.trial_reported
        if fire is not None:
            pending = fire(TrialReported(trial.number, step, value, time.time(), values), view)
            if pending is not None:
                await pending
        decide = self._decide
        if decide is None:
            return
        try:
            record = view.running[trial.number]
            if self._parts.decider_kind == "pruner":
                answer = await decide(view, record, step, value)
            else:
                # A population learns from its peers: let them run between one member's reports even when
                # the objective itself never suspends.
                await anyio.lowlevel.checkpoint()
                answer = await decide(view, record, step, value, self._book.view)
        except Exception as exc:
            raise self._cancel(trial, f"{self._decider} failed in decide", exc) from exc
        if answer is Decision.CONTINUE:
            return
        if answer is Decision.STOP:
            raise TrialPruned(f"trial {trial.number} pruned at step {step}")
        try:
            answer = self._parts.check_answer(answer)
        except (TypeError, ValueError) as exc:
            raise self._cancel(trial, f"{self._decider} answered {answer!r}", exc) from exc
        if answer is Decision.PAUSE:
            trial.pause()
            raise TrialPaused(f"trial {trial.number} paused at step {step}")
        assert isinstance(answer, Exploit)
        await self._exploit(trial, step, answer)

    async def _exploit(self, trial: Trial, step: int, answer: Exploit) -> None:
        """Give ``trial`` new hyperparameters and, from a donor, that donor's checkpoint."""
        try:
            params = self._space.validate(answer.params)
            if answer.donor == trial.number:
                raise ValueError("a trial cannot exploit itself")
        except Exception as exc:
            message = f"{self._decider} answered an invalid EXPLOIT for trial {trial.number}"
            raise self._cancel(trial, message, exc) from exc
        donor = answer.donor
        if donor is not None:
            try:
                copied = await self._book.copy(donor, trial)
            except Exception as exc:
                raise self._cancel(trial, f"trial {trial.number} could not take over trial {donor}", exc) from exc
            if not copied:
                log.warning("trial %d: donor trial %d has no checkpoint; it goes on unchanged", trial.number, donor)
                return
        trial.exploit(params, step, donor)
        self._view._put(trial.snapshot())

    async def on_checkpoint(self, trial: Trial, data: bytes) -> None:
        """Keep ``data`` as the trial's checkpoint (``Trial.checkpoint`` calls this)."""
        if trial.ended:
            raise TrialCancelled(f"trial {trial.number} has already ended")
        try:
            await self._session.put_checkpoint(trial.number, data)
        except Exception as exc:
            message = f"storage {self._storage!r} failed to store a checkpoint of trial {trial.number}"
            raise self._cancel(trial, message, exc) from exc
        self._book.saved(trial)

    async def on_restore(self, trial: Trial) -> bytes | None:
        """The checkpoint the trial continues from (``Trial.restore`` calls this)."""
        if trial.ended:
            raise TrialCancelled(f"trial {trial.number} has already ended")
        if trial.number not in self._book:
            return None
        try:
            return await self._session.get_checkpoint(trial.number)
        except Exception as exc:
            message = f"storage {self._storage!r} failed to read a checkpoint of trial {trial.number}"
            raise self._cancel(trial, message, exc) from exc
