"""A study as one Tuner has it open: from ``storage.open`` to ``hpt_study_ended``.

:meth:`OpenStudy.open` opens the storage session (keeping the study's
seed and component specs with it), fills the study view from the stored
history, recovers the trials of a tuner that died, starts the strategy,
pruner and executor, builds the per-open pieces (checkpoint book, shared
study sync, trial session) and announces ``hpt_study_started``.
:meth:`OpenStudy.close` announces ``hpt_study_ended`` with the result and
closes the executor and the session.  A failure half way through opening
closes what was opened.
"""

from __future__ import annotations

import logging
import secrets
import time
from dataclasses import replace
from typing import TYPE_CHECKING

import anyio

from ._checkpoint_book import CheckpointBook
from ._components import label
from ._shared import SharedStudy
from ._trial_session import TunerTrialSession
from ._trial_source import TrialSource
from .events import StudyEnded, StudyStarted
from .exceptions import StudyError
from .result import StopReason, StudyResult
from .study import StudyView

if TYPE_CHECKING:
    from ._run import RunState
    from .contracts.storage import StudySession
    from .trial import TrialRecord
    from .tuner import Tuner

__all__ = ["OpenStudy"]

log = logging.getLogger("hpt_async")


class OpenStudy:
    """One opening of a study by a tuner, and the pieces that live as long as it (see the module docstring)."""

    def __init__(self, tuner: Tuner, run: RunState, session: StudySession, seed: int) -> None:
        parts = tuner._parts
        storage = label(parts.storage)
        self.tuner = tuner
        self.session = session
        self.seed = seed
        self.view = StudyView(tuner.study_name, tuner.direction, tuner.space, seed, tuner.max_trials)
        for record in session.history:
            self.view._put(record)
        self.book = CheckpointBook(session, run, storage, parts.retained)
        self.shared = SharedStudy(session, self.view, run, storage, tuner._queue, tuner.retry_lost, tuner._learn)
        self.trials = TunerTrialSession(parts, session, self.view, tuner._relay, run, self.book, tuner.space)
        self.source = TrialSource(parts, tuner.space, self, run, tuner._queue, tuner._objectives, tuner._cancel_new)
        self._executor_open = False

    @classmethod
    async def open(cls, tuner: Tuner, run: RunState) -> OpenStudy:
        """Open ``tuner``'s study for the run ``run``."""
        parts = tuner._parts
        storage = label(parts.storage)
        # A new study keeps the seed given or drawn here; a resumed one keeps its stored seed unless one is given.
        drawn = secrets.randbits(32) if tuner.seed is None else tuner.seed
        where = {"direction": tuner.direction, "space": tuner.space}
        if parts.storage_settings:
            where["settings"] = {"seed": drawn, **parts.specs}
        try:
            session = await parts.storage.open(tuner.study_name, **where)
        except ValueError:
            raise
        except Exception as exc:
            raise StudyError(f"storage {storage!r} failed to open study {tuner.study_name!r}: {exc}") from exc
        study: OpenStudy | None = None
        try:
            stored = getattr(session, "settings", None) or {}
            study = cls(tuner, run, session, tuner.seed if tuner.seed is not None else int(stored.get("seed", drawn)))
            await study._start(run)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await cls._close_after_failure(tuner, session, study)
            raise
        return study

    async def _start(self, run: RunState) -> None:
        tuner, view, session = self.tuner, self.view, self.session
        storage = label(tuner.storage)
        try:
            # Trials left RUNNING by a tuner that died are found now, before the strategy starts.
            lost: list[TrialRecord] = await session.claim_lost()
        except Exception as exc:
            raise StudyError(f"storage {storage!r} failed to recover lost trials: {exc}") from exc
        for record in lost:
            view._put(record)
        self.shared.requeue(lost)
        for component, kind in ((tuner.strategy, "strategy"), (tuner.pruner, "pruner")):
            if component is not None and hasattr(component, "start"):
                try:
                    await component.start(view)
                except Exception as exc:
                    name = label(component)
                    raise StudyError(f"{kind} {name!r} failed to start: {type(exc).__name__}: {exc}") from exc
        if tuner.objective is not None:
            try:
                await tuner.executor.open(tuner.concurrency)
            except (TypeError, ValueError):
                raise  # a setting of the executor's: its own message says what is wrong
            except Exception as exc:
                name = label(tuner.executor)
                raise StudyError(f"executor {name!r} failed to open: {type(exc).__name__}: {exc}") from exc
            self._executor_open = True
        relay = tuner._relay
        if relay.study_started is not None:
            timeout = tuner.timeout if tuner._running else None  # ask() does not apply it
            pruner = None if tuner.pruner is None else label(tuner.pruner)
            event = StudyStarted(tuner.study_name, tuner.direction, tuner.space, self.seed, time.time(),
                                 tuner.max_trials, timeout, label(tuner.strategy), pruner)  # fmt: skip
            await relay.emit("hpt_study_started", event=event, study=view)

    @staticmethod
    async def _close_after_failure(tuner: Tuner, session: StudySession, study: OpenStudy | None) -> None:
        if study is not None and study._executor_open:
            try:
                await tuner.executor.close()
            except Exception:
                log.exception("executor %r failed to close after a failed start", label(tuner.executor))
        try:
            await session.close()
        except Exception:
            log.exception("storage %r failed to close after a failed start", label(tuner.storage))

    def result(self, run: RunState) -> StudyResult:
        """The study as it stands: every trial in the view, the best, and why the run stopped."""
        view, tuner = self.view, self.tuner
        return StudyResult(
            study=tuner.study_name,
            direction=tuner.direction,
            seed=self.seed,
            trials=tuple(view.trials[n] for n in sorted(view.trials)),
            best=view.best,
            reason=run.reason or StopReason.CANCELLED,
            plugin_errors=dict(tuner._relay.errors),
        )

    async def close(self, run: RunState) -> StudyResult:
        """Announce the end of the study, close the executor and the session, and return the result.

        The session and the executor are closed whatever happens before;
        an executor that fails to close raises :class:`StudyError` (unless
        the run already failed), with the result.
        """
        tuner = self.tuner
        result = self.result(run)
        executor_error: Exception | None = None
        try:
            relay = tuner._relay
            if relay.study_ended is not None:
                await relay.emit("hpt_study_ended", event=StudyEnded(result, time.time()), study=self.view)
                if relay.errors != result.plugin_errors:
                    # A plugin that failed at the very end (e.g. a logger flushing its last lines) still counts.
                    result = replace(result, plugin_errors=dict(relay.errors))
        finally:
            try:
                if self._executor_open:
                    self._executor_open = False
                    try:
                        await tuner.executor.close()
                    except Exception as exc:
                        executor_error = exc
            finally:
                await self.session.close()
        if executor_error is not None and run.fatal is None:
            name = label(tuner.executor)
            message = f"executor {name!r} failed to close: {type(executor_error).__name__}: {executor_error}"
            raise StudyError(message, result) from executor_error
        return result
