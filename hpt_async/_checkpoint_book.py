"""Which trials of a tuner have a checkpoint in storage, and when one is dropped.

:class:`CheckpointBook` is the one owner of that knowledge for a run: the
trial session records a checkpoint saved or copied, the tuner records a
retried trial's checkpoint inherited by its retry and a paused trial's kept
for its resumption, and after each end :meth:`CheckpointBook.release`
drops those that nothing needs any more.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Collection, Mapping
from types import MappingProxyType
from typing import TYPE_CHECKING

from .trial import TrialState

if TYPE_CHECKING:
    from ._run import RunState
    from .contracts.storage import StudySession
    from .study import StudyView
    from .trial import Trial, TrialRecord

__all__ = ["CheckpointBook"]

log = logging.getLogger("hpt_async")


class CheckpointBook:
    """Trials with a checkpoint stored by this tuner, and the step each was taken at (``None``: before any report)."""

    def __init__(
        self,
        session: StudySession,
        run: RunState,
        storage_label: str,
        retained: Callable[[StudyView], Collection[int]] | None,
    ) -> None:
        self._session = session
        self._run = run
        self._label = storage_label
        self._retained = retained
        self._steps: dict[int, int | None] = {}
        #: The trials waiting for a retry (set by the study once its trial source exists): their checkpoints are kept.
        self.pending: Callable[[], Collection[int]] = tuple
        self.view: Mapping[int, int | None] = MappingProxyType(self._steps)

    def __bool__(self) -> bool:
        return bool(self._steps)

    def __contains__(self, number: object) -> bool:
        return number in self._steps

    def saved(self, trial: Trial) -> None:
        """``trial`` just stored a checkpoint at its last reported step."""
        reports = trial.reports
        self._steps[trial.number] = max(reports) if reports else None

    async def copy(self, donor: int, trial: Trial) -> bool:
        """Copy ``donor``'s checkpoint over ``trial``'s; False when the donor has none."""
        session = self._session
        try:
            data = await session.get_checkpoint(donor)
            if data is None:
                return False
            await session.put_checkpoint(trial.number, data)
        except Exception as exc:
            raise self._run.fail(
                f"storage {self._label!r} failed to copy the checkpoint of trial {donor}", exc
            ) from exc
        self._steps[trial.number] = self._steps.get(donor)
        return True

    async def inherit(self, trial: Trial, retried: TrialRecord | None, retried_number: int) -> None:
        """A retry continues from the checkpoint storage moved to it from the trial it retries, if any."""
        try:
            data = await self._session.get_checkpoint(trial.number)
        except Exception as exc:
            message = f"storage {self._label!r} failed to read the checkpoint trial {trial.number} inherited"
            raise self._run.fail(message, exc) from exc
        if data is None:
            return
        last = None if retried is None else retried.last_report
        self._steps[trial.number] = None if last is None else last[0]
        self._steps.pop(retried_number, None)
        trial.continue_from_checkpoint()

    async def stored(self, number: int) -> bool:
        """True when storage holds a checkpoint of trial ``number`` (a tuner sharing the study may have run it)."""
        try:
            return await self._session.get_checkpoint(number) is not None
        except Exception as exc:
            message = f"storage {self._label!r} failed to read the checkpoint of trial {number}"
            raise self._run.fail(message, exc) from exc

    def resumed(self, record: TrialRecord, saved: bool) -> None:
        """A PAUSED trial resumes, from its stored checkpoint when ``saved``."""
        if not saved:
            self._steps.pop(record.number, None)
        elif record.number not in self._steps:
            last = record.last_report
            self._steps[record.number] = None if last is None else last[0]

    async def release(self, view: StudyView) -> None:
        """Drop the checkpoints of finished trials that nothing needs any more.

        Kept: those the strategy retains (e.g. finished donors of
        population-based training), the best COMPLETE trial's (the user's
        final model), those of trials waiting for a retry (LOST, or FAILED
        with a retry policy that matches: the retry continues from it), and
        those of PAUSED trials (they continue from it when
        resumed).  A leftover checkpoint costs only space, so a storage
        error here is logged, not fatal.
        """
        live = self._run.live
        finished = [n for n in self._steps if n not in live]
        if not finished:
            return
        keep: set[int] = set()
        if self._retained is not None:
            keep.update(self._retained(view))
        if view.best is not None:
            keep.add(view.best.number)
        keep.update(self.pending())
        trials = view.trials
        for number in finished:
            if number in keep:
                continue
            record = trials.get(number)
            if record is not None and record.state is TrialState.PAUSED:
                continue
            if record is not None and record.state is TrialState.RUNNING:
                # Resumed by another tuner sharing the study: its checkpoint is that tuner's to keep or drop.
                self._steps.pop(number, None)
                continue
            if number not in self._steps:
                continue  # an overlapping release (another trial's end) dropped it while this one awaited
            del self._steps[number]
            try:
                await self._session.drop_checkpoint(number)
            except Exception:
                log.warning("storage %r failed to drop the checkpoint of trial %d", self._label, number)
