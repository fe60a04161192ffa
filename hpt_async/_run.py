"""The state of one run of a Tuner, with one owner for each piece.

:class:`RunState` alone sets why the run stops (:meth:`RunState.stop`),
records the first fatal error (:meth:`RunState.fail`), and knows which of
this tuner's trials are live (:meth:`RunState.adopt` /
:meth:`RunState.release`).  The tuner, the trial session, the checkpoint
book and the shared-study sync all read and change it through these
methods.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import anyio

from .exceptions import HptError, StudyError, StudyFailed
from .result import StopReason

if TYPE_CHECKING:
    from .result import StudyResult
    from .trial import Trial

__all__ = ["FAIL_FAST_TRIALS", "Fatal", "RunState"]

#: With ``fail_fast``, a run whose first this many finished trials all FAILED stops with StudyFailed.
FAIL_FAST_TRIALS = 5


class Fatal(HptError):
    """Internal: a component failed and the study is stopping; unwinds a worker or an ask.

    It never reaches a user: the tuner catches it and raises the recorded
    :class:`~hpt_async.StudyError` instead.
    """


class RunState:
    """Why the run stops, its first fatal error, and its live trials."""

    def __init__(self) -> None:
        self.reason: str | None = None
        self.fatal: StudyError | None = None
        self.stopping = False
        #: The strategy answered None; a CANCELLED or LOST trial ending clears it (its configuration may return).
        self.exhausted = False
        self.scope: anyio.CancelScope | None = None
        self.live: dict[int, Trial] = {}
        # Set and dropped whenever a trial of this tuner ends or pauses; made by the first waiter after that
        # (on the running loop), so that a trial's end makes no event when no worker waits (the usual case).
        self._changed: anyio.Event | None = None
        # fail_fast bookkeeping: this run's finished trials counted so far, and whether all of them FAILED.
        self.finished = 0
        self.all_failed = True
        self.first_error: BaseException | None = None

    def open(self) -> None:
        """Start with no waiter: the first :meth:`wait_changed` makes the event on the running loop."""
        self._changed = None

    # -- why the run stops ---------------------------------------------------

    def stop(self, reason: str, *, cancel: bool) -> None:
        """Stop the run for ``reason`` (the first reason given stays); ``cancel`` cancels running trials."""
        if self.reason is None:
            self.reason = reason
        self.stopping = True
        if cancel and self.scope is not None:
            self.scope.cancel()

    def fail(self, message: str, exc: BaseException) -> Fatal:
        """Record the first fatal error, stop everything, and return an exception to unwind with."""
        if self.fatal is None:
            err = StudyError(f"{message}: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self.fatal = err
        self.stop(StopReason.CANCELLED, cancel=True)
        return Fatal(message)

    def final_reason(self, *, max_trials_reached: bool) -> str:
        """The reason the run ended, settling it when nothing set one."""
        if self.reason is None:
            if self.exhausted:
                self.reason = StopReason.EXHAUSTED
            elif max_trials_reached:
                self.reason = StopReason.MAX_TRIALS
            else:
                self.reason = StopReason.CANCELLED
        return self.reason

    def outcome(self, result: StudyResult, study: str, max_failures: int | None) -> StudyResult:
        """``result``, or the error that the way the run ended calls for, carrying ``result``."""
        if self.fatal is not None:
            raise StudyError(str(self.fatal), result) from self.fatal.__cause__
        if self.reason == StopReason.MAX_FAILURES:
            failed = result.count("failed")
            message = f"study {study!r} stopped after {failed} failed trials (max_failures={max_failures})"
            raise StudyFailed(message, result) from self.first_error
        if self.reason == StopReason.FAIL_FAST:
            raise StudyFailed(
                f"study {study!r} stopped: its first {self.finished} trials all FAILED; the first error is "
                "chained below (fail_fast=False runs on regardless)",
                result,
            ) from self.first_error
        return result

    def note_failure(self, error: BaseException) -> None:
        """A trial of this run FAILED with ``error``: kept when it is the run's first (chained to StudyFailed)."""
        if self.first_error is None:
            self.first_error = error

    def count_finished(self, failed: bool, error: BaseException | None) -> bool:
        """Count one finished trial of this run; True when the first FAIL_FAST_TRIALS all FAILED."""
        if self.finished >= FAIL_FAST_TRIALS:
            return False
        self.finished += 1
        if failed and self.first_error is None:
            self.first_error = error
        self.all_failed = self.all_failed and failed
        return self.finished == FAIL_FAST_TRIALS and self.all_failed

    # -- live trials ------------------------------------------------------------

    def adopt(self, trial: Trial) -> None:
        """``trial`` runs in this tuner from now on."""
        self.live[trial.number] = trial

    def release(self, number: int) -> None:
        """Trial ``number`` no longer runs in this tuner (its end is in the view)."""
        self.live.pop(number, None)

    def owns(self, trial: Trial) -> bool:
        """True when ``trial`` is live in this tuner."""
        return not trial.ended and self.live.get(trial.number) is trial

    # -- waking workers -----------------------------------------------------

    def changed(self) -> None:
        """Wake the workers waiting for a trial of this tuner to end or pause."""
        event = self._changed
        if event is not None:
            self._changed = None
            event.set()

    async def wait_changed(self) -> None:
        """Wait until a trial of this tuner ends or pauses."""
        event = self._changed
        if event is None:
            event = self._changed = anyio.Event()
        await event.wait()
