"""How a trial's end is recorded, and whether that end stops the run.

:meth:`TrialEnd.end` is the one way a trial ends, whether its objective
returned, raised, was pruned or was cancelled, and whether it came from
:meth:`Tuner.run <hpt_async.Tuner.run>` or from ``ask()``: the trial
becomes its final record, storage commits it, the strategy and the pruner
learn of it, plugins hear ``hpt_trial_ended``, and the stop rules that
look at finished trials (``max_failures``, ``target``, ``fail_fast``,
``converged``) are
checked.  :meth:`TrialEnd.learn` is the part shared with the finished
trials of other tuners sharing the study.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TYPE_CHECKING

import anyio

from ._components import label
from .events import TrialEnded
from .result import StopReason
from .study import better
from .trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from ._components import Components
    from ._open_study import OpenStudy
    from ._run import RunState
    from .convergence import Convergence

__all__ = ["TrialEnd"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_CANCELLED = TrialState.CANCELLED
_COMPLETE = TrialState.COMPLETE
_FAILED = TrialState.FAILED
_LOST = TrialState.LOST
_PAUSED = TrialState.PAUSED


class TrialEnd:
    """The ends of one opening's trials (see the module docstring).

    ``study`` is set once the study is open; before that no trial exists to end.
    """

    def __init__(
        self,
        parts: Components,
        run: RunState,
        *,
        direction: str | tuple[str, ...],
        max_failures: int | None,
        target: float | None,
        fail_fast: Callable[[], bool],
        converged: Convergence | None = None,
    ) -> None:
        self._parts = parts
        self._run = run
        self._direction = direction
        self._max_failures = max_failures
        self._target = target
        self._fail_fast = fail_fast  # true while run() runs objectives with fail_fast on
        self._converged = converged
        self.study: OpenStudy | None = None

    async def end(
        self,
        trial: Trial,
        state: TrialState,
        value: float | None = None,
        error: str | None = None,
        tb: str | None = None,
        *,
        values: tuple[float, ...] | None = None,
        announce: bool = True,
        cause: BaseException | None = None,
    ) -> TrialRecord:
        """Record the end of ``trial``: storage commits, the strategy learns, plugins hear.

        Runs to completion even when the study is being cancelled: the first
        attempt is unshielded (cheap), and if a cancellation interrupts it the
        remaining steps are finished under a shield, resuming at the step that
        was interrupted (storage and strategy may thus see that one step twice
        with the same record).  A trial that already ended returns its record.
        """
        study = self.study
        assert study is not None
        view, book = study.view, study.book
        if trial.ended:
            return view.trials[trial.number]
        record = trial.end(state, value, error, tb, values=values)
        progress = [0, 0]
        try:
            await self._commit(record, progress, announce, cause)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._commit(record, progress, announce, cause)
                if book:
                    await book.release(view)
            raise
        if book:
            with anyio.CancelScope(shield=True):
                await book.release(view)
        self._run.changed()
        return record

    async def cancel_new(self, trial: Trial) -> None:
        """End a trial whose creation was cancelled: CANCELLED, with no hook told (none heard of it)."""
        await self.end(trial, _CANCELLED, announce=False)

    @staticmethod
    def interrupted(trial: Trial) -> tuple[TrialState, float | None]:
        """How a trial the study stops is recorded: CANCELLED, or PAUSED again when it had been resumed."""
        if trial.resumed:
            return _PAUSED, trial.last_value
        return _CANCELLED, None

    async def _commit(
        self, record: TrialRecord, progress: list[int], announce: bool, cause: BaseException | None
    ) -> None:
        # progress[0]: steps done (1 stored, 2 told); progress[1]: hook implementations called.
        study, run = self.study, self._run
        assert study is not None
        view = study.view
        if progress[0] < 1:
            try:
                await study.session.trial_ended(record)
            except Exception as exc:
                view._put(record)
                run.release(record.number)
                storage = label(self._parts.storage)
                raise run.fail(f"storage {storage!r} failed to commit trial {record.number}", exc) from exc
            view._put(record)
            run.release(record.number)
            progress[0] = 1
        if progress[0] < 2:
            await self.learn(record, own=True, cause=cause)
            progress[0] = 2
        fire = self._parts.relay.trial_ended
        if announce and fire is not None:
            pending = fire(TrialEnded(record), view, progress)
            if pending is not None:
                await pending
        # Only now, so that the trial that stops the study is announced whole before the cancel.
        self._check_stop(record)

    async def learn(self, record: TrialRecord, own: bool = False, cause: BaseException | None = None) -> None:
        """Tell the strategy, then the pruner, that a trial of the study finished (this tuner's or another's)."""
        run, parts = self._run, self._parts
        view = self.study.view  # type: ignore[union-attr]
        state = record.state
        if state is _CANCELLED or state is _LOST:
            run.exhausted = False  # its configuration may be offered again: a strategy that had run out is asked anew
        if parts.strategy_tell is not None:
            try:
                await parts.strategy_tell(view, record)
            except Exception as exc:
                raise run.fail(f"strategy {label(parts.strategy)!r} failed in tell", exc) from exc
        if parts.pruner_tell is not None:
            try:
                await parts.pruner_tell(view, record)
            except Exception as exc:
                raise run.fail(f"pruner {label(parts.pruner)!r} failed in tell", exc) from exc
        if own and state is _FAILED:
            run.note_failure(cause or RuntimeError(record.error))
        if not own:
            self._check_stop(record)
        elif state.counted and self._fail_fast():
            failed = state is _FAILED
            if run.count_finished(failed, (cause or RuntimeError(record.error)) if failed else None):
                run.stop(StopReason.FAIL_FAST, cancel=True)

    def _check_stop(self, record: TrialRecord) -> None:
        """Stop on ``max_failures`` (FAILED trials of the study), a feasible ``target`` reached, or convergence."""
        state, value = record.state, record.value
        if state is _FAILED:
            limit = self._max_failures
            if limit is not None and self.study.view.count(_FAILED) >= limit:  # type: ignore[union-attr]
                self._run.stop(StopReason.MAX_FAILURES, cancel=True)
        elif state is _COMPLETE and value is not None:
            target = self._target
            reached = target is not None and (value == target or better(self._direction, value, target))  # type: ignore[arg-type]
            if reached and record.feasible:
                self._run.stop(StopReason.TARGET, cancel=True)
            elif self._converged is not None and self._converged.observe(self.study.view, record):  # type: ignore[union-attr]
                rule = self._converged
                self._run.stop(rule.reason, cancel=False)  # type: ignore[union-attr]
                describe = getattr(rule, "describe", None)
                if describe is not None:  # the figures behind a model-based stop
                    logging.getLogger("hpt_async").info("study %r stops: %s", self.study.view.name, describe())  # type: ignore[union-attr]
