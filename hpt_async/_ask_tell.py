"""The ask-and-tell face of the :class:`~hpt_async.Tuner`: a loop of the user's own creates and ends trials.

:class:`AskAndTell` is a base of :class:`~hpt_async.Tuner`; its methods
reuse the tuner's own steps (opening the study, the trial source, a
trial's end), so that a trial made by :meth:`~AskAndTell.ask` lives
exactly as one made by :meth:`~hpt_async.Tuner.run`.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any

import anyio

from ._components import label
from ._outcome import outcome
from ._run import Fatal
from .exceptions import StrategyExhausted, StudyError
from .result import StopReason, StudyResult
from .trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from ._components import Components
    from ._open_study import OpenStudy
    from ._run import RunState
    from ._trial_end import TrialEnd

__all__ = ["AskAndTell"]


class AskAndTell:
    """:meth:`ask`, :meth:`tell` and :meth:`close`: see :class:`~hpt_async.Tuner`."""

    # Provided by the Tuner.
    _study: OpenStudy | None
    _run: RunState
    _parts: Components
    _objectives: int | None
    _ask_lock: anyio.Lock
    _ending: TrialEnd
    strategy: Any

    if TYPE_CHECKING:  # the Tuner's steps these methods reuse

        async def _ensure_open(self) -> None: ...
        async def _finish(self) -> StudyResult: ...
        async def _announce_start(self, trial: Trial) -> None: ...
        def _constrained(self, trial: Trial) -> str | None: ...

    async def ask(self) -> Trial:
        """Create a trial for a loop of the user's own (ask-and-tell).

        Opens the study on first use; safe to call from many tasks at once.
        With a pruner in promotion mode, a PAUSED trial it promotes comes
        first (``trial.should_restore`` tells it from a new one).  Raises
        :class:`~hpt_async.StrategyExhausted` when the strategy has nothing
        left.  ``max_trials`` and ``timeout`` are :meth:`run`'s and do not
        apply here.
        """
        self._raise_fatal()
        await self._ensure_open()
        try:
            async with self._ask_lock:
                await self._study.shared.sync_if_due()  # type: ignore[union-attr]
                trial = await self._study.source.next()  # type: ignore[union-attr]
        except Fatal:
            self._raise_fatal()
            raise
        if trial is None:
            raise StrategyExhausted(f"strategy {label(self.strategy)!r} has no configuration left")
        await self._announce_start(trial)
        return trial

    async def tell(
        self,
        trial: Trial,
        value: float | Sequence[float] | None = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
    ) -> TrialRecord:
        """End a trial from :meth:`ask` with ``value`` or with ``state``.

        ``state`` defaults to COMPLETE; a missing or non-finite value then
        makes the trial FAILED (a study with several directions takes one
        value per objective).  PRUNED and PAUSED keep the last reported
        value (a PAUSED trial may come back from :meth:`ask` when a pruner
        in promotion mode promotes it).  Returns the final record.
        """
        if not isinstance(trial, Trial):
            raise TypeError(f"tell() takes the Trial returned by ask(), got {trial!r}")
        if not self._run.owns(trial):
            raise ValueError(f"trial {trial.number} is not running in this tuner")
        st = TrialState.COMPLETE if state is None else TrialState(state)
        if st is TrialState.RUNNING:
            raise ValueError("tell() ends a trial; RUNNING is not an end state")
        if st is TrialState.PAUSED and not self._parts.promotes:
            raise ValueError("tell(state='paused') needs a pruner in promotion mode, which alone resumes paused trials")
        record = None
        try:
            if st is TrialState.COMPLETE:
                state, kept, error, values = outcome(value, self._objectives)
                if state is TrialState.COMPLETE:
                    error = self._constrained(trial)
                    if error is not None:
                        state, kept, values = TrialState.FAILED, None, None
                record = await self._ending.end(trial, state, kept, error, values=values)
            elif st is TrialState.PRUNED or st is TrialState.PAUSED:
                kept = trial.last_value if value is None else float(value)  # type: ignore[arg-type]
                record = await self._ending.end(trial, st, kept if kept is not None and math.isfinite(kept) else None)
            else:
                record = await self._ending.end(trial, st, None, error)
            await self._study.shared.sync_if_due()  # type: ignore[union-attr]
        except Fatal:
            pass
        self._raise_fatal()
        assert record is not None
        return record

    async def close(self) -> StudyResult:
        """Close a study opened by :meth:`ask`: running trials are recorded CANCELLED (PAUSED again if resumed)."""
        if self._study is None:
            raise RuntimeError("the study is not open")
        self._run.stop(StopReason.EXHAUSTED if self._run.exhausted else StopReason.CLOSED, cancel=False)
        result = await self._finish()
        if self._run.fatal is not None:
            raise StudyError(str(self._run.fatal), result) from self._run.fatal.__cause__
        return result

    def _raise_fatal(self) -> None:
        """Raise the recorded fatal error, if any, with the study as it stands."""
        fatal = self._run.fatal
        if fatal is None:
            return
        if fatal.result is None and self._study is not None:
            fatal.result = self._study.result(self._run)
        raise fatal from fatal.__cause__
