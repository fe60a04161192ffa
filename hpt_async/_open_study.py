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
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

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
    from ._components import Components
    from ._run import RunState
    from ._trial_source import Queued
    from .contracts.storage import Direction, StudySession
    from .retry import RetryPolicy
    from .space import Space
    from .trial import Trial, TrialRecord

__all__ = ["OpenStudy", "StudySettings"]

log = logging.getLogger("hpt_async")


def _chooser(strategy: Any) -> Any:
    """``strategy`` when it chooses another strategy per study (``auto``: ``plan``, ``adopt``, ``describe``)."""
    if all(callable(getattr(strategy, m, None)) for m in ("plan", "adopt", "describe")):
        return strategy
    return None


@dataclass(frozen=True, slots=True)
class StudySettings:
    """What a Tuner opens its study with (the Tuner's own arguments, for one opening)."""

    name: str
    direction: Direction
    space: Space
    seed: int | None
    max_trials: int | None
    #: The run's timeout, announced in ``hpt_study_started`` (``None`` for ask-and-tell, where it does not apply).
    timeout: float | None
    concurrency: int
    retry_lost: bool
    #: Which FAILED trials run again (``None``: none).
    retry_failed: RetryPolicy | None
    #: How many values the objective returns: ``None`` for a study with one direction.
    objectives: int | None
    #: The executor is opened (a study run with an objective; ask-and-tell runs none).
    runs_objectives: bool
    #: The objectives' names for display and export (kept in the study's settings), or ``None``.
    metric_names: tuple[str, ...] | None = None


def _same_key(record: TrialRecord) -> tuple[Any, ...]:
    """What makes two finished trials the same for :meth:`OpenStudy._take_in`."""
    return (record.state, repr(record.value), repr(sorted(record.params.items(), key=lambda kv: kv[0])),
            record.started)  # fmt: skip


class OpenStudy:
    """One opening of a study by a tuner, and the pieces that live as long as it (see the module docstring)."""

    def __init__(
        self,
        settings: StudySettings,
        parts: Components,
        run: RunState,
        session: StudySession,
        seed: int,
        queue: deque[Queued],
        learn: Callable[[TrialRecord], Awaitable[None]],
        cancel_new: Callable[[Trial], Awaitable[Any]],
    ) -> None:
        storage = label(parts.storage)
        self.settings = settings
        self.parts = parts
        self.session = session
        self.seed = seed
        self.view = StudyView(
            settings.name,
            settings.direction,
            settings.space,
            seed,
            settings.max_trials,
            settings.metric_names,
            # In ask-and-tell the user's loop decides how many trials run at once: unknown to strategies.
            concurrency=settings.concurrency if settings.runs_objectives else None,
        )
        for record in session.history:
            self.view._put(record)
        self.book = CheckpointBook(session, run, storage, parts.retained)
        self.shared = SharedStudy(session, self.view, run, storage, learn)
        self.trials = TunerTrialSession(parts, session, self.view, parts.relay, run, self.book, settings.space)
        self.source = TrialSource(
            parts,
            settings.space,
            self,
            run,
            queue,
            settings.objectives,
            cancel_new,
            retry_lost=settings.retry_lost,
            retry_failed=settings.retry_failed,
        )
        self.book.pending = self.source.pending_retries
        self._executor_open = False

    @classmethod
    async def open(
        cls,
        settings: StudySettings,
        parts: Components,
        run: RunState,
        queue: deque[Queued],
        *,
        learn: Callable[[TrialRecord], Awaitable[None]],
        cancel_new: Callable[[Trial], Awaitable[Any]],
        added: list[TrialRecord] | None = None,
    ) -> OpenStudy:
        """Open the study for the run ``run``; ``learn`` hears of other tuners' finished trials.

        ``queue`` holds the configurations waiting to run (LOST trials found
        now are added to it); ``cancel_new`` ends a trial whose creation was
        cancelled; ``added`` holds finished trials from elsewhere
        (:meth:`Tuner.add_trials <hpt_async.Tuner.add_trials>`), stored
        before the strategy starts and removed from the list once stored.
        """
        storage = label(parts.storage)
        # A new study keeps the seed given or drawn here; a resumed one keeps its stored seed unless one is given.
        drawn = secrets.randbits(32) if settings.seed is None else settings.seed
        where: dict[str, Any] = {"direction": settings.direction, "space": settings.space}
        auto = _chooser(parts.strategy)
        plan = None
        if auto is not None:
            # auto chooses now, from the run's settings; a study that stored a choice keeps it (merge_settings).
            plan = auto.plan(settings.space, settings.max_trials, settings.concurrency, settings.objectives or 1)
        if parts.storage_settings:
            specs = dict(parts.specs)
            if plan is not None:
                specs["strategy"] = {**specs["strategy"], "choice": plan}
            where["settings"] = {"seed": drawn, **specs}
            if settings.metric_names is not None:
                where["settings"]["metric_names"] = list(settings.metric_names)
        try:
            session = await parts.storage.open(settings.name, **where)
        except ValueError:
            raise
        except Exception as exc:
            raise StudyError(f"storage {storage!r} failed to open study {settings.name!r}: {exc}") from exc
        study: OpenStudy | None = None
        try:
            stored = getattr(session, "settings", None) or {}
            if auto is not None:
                kept = stored.get("strategy")
                kept = kept.get("choice") if isinstance(kept, Mapping) else None
                resumed = isinstance(kept, Mapping) and kept != plan
                auto.adopt(kept if resumed else plan, resumed=resumed)  # type: ignore[arg-type]
                log.info("study %r: strategy auto chose %s", settings.name, auto.describe())
            seed = settings.seed if settings.seed is not None else int(stored.get("seed", drawn))
            study = cls(settings, parts, run, session, seed, queue, learn, cancel_new)
            await study._start(added if added is not None else [])
        except BaseException:
            with anyio.CancelScope(shield=True):
                await cls._close_after_failure(parts, session, study)
            raise
        return study

    async def _start(self, added: list[TrialRecord]) -> None:
        settings, parts, view, session = self.settings, self.parts, self.view, self.session
        storage = label(parts.storage)
        if added:
            await self._take_in(added)
        try:
            # Trials left RUNNING by a tuner that died are found now, before the strategy starts.
            lost: list[TrialRecord] = await session.claim_lost()
        except Exception as exc:
            raise StudyError(f"storage {storage!r} failed to recover lost trials: {exc}") from exc
        for record in lost:
            view._put(record)
        for component, kind in ((parts.strategy, "strategy"), (parts.pruner, "pruner")):
            if component is not None and hasattr(component, "start"):
                try:
                    await component.start(view)
                except Exception as exc:
                    name = label(component)
                    raise StudyError(f"{kind} {name!r} failed to start: {type(exc).__name__}: {exc}") from exc
        if settings.runs_objectives:
            await self.open_executor()
        relay = parts.relay
        if relay.study_started is not None:
            pruner = None if parts.pruner is None else label(parts.pruner)
            chosen = parts.strategy.describe() if _chooser(parts.strategy) is not None else None
            event = StudyStarted(
                settings.name, settings.direction, settings.space, self.seed, time.time(), settings.max_trials,
                settings.timeout, label(parts.strategy), pruner, chosen,
            )  # fmt: skip
            await relay.emit("hpt_study_started", event=event, study=view)

    async def _take_in(self, added: list[TrialRecord]) -> None:
        """Store the finished trials of ``added`` with new numbers and put them in the view, emptying the list.

        One equal to a trial the study holds (same state, value, configuration
        and start time) is skipped: a script run again to resume adds its
        trials once.
        """
        view, session = self.view, self.session
        held = {_same_key(r) for r in view.trials.values()}
        storage = label(self.parts.storage)
        while added:
            record = added[0]
            if _same_key(record) not in held:
                try:
                    number = await session.reserve()
                    stored = replace(record, number=number, retry_of=None)
                    await session.trial_ended(stored)
                except Exception as exc:
                    raise StudyError(f"storage {storage!r} failed to store an added trial: {exc}") from exc
                view._put(stored)
                held.add(_same_key(stored))
            added.pop(0)

    async def open_executor(self) -> None:
        """Open the executor for this study's run, once (ask-and-tell alone never opens it)."""
        if self._executor_open:
            return
        parts = self.parts
        try:
            await parts.executor.open(self.settings.concurrency)
        except (TypeError, ValueError):
            raise  # a setting of the executor's: its own message says what is wrong
        except Exception as exc:
            name = label(parts.executor)
            raise StudyError(f"executor {name!r} failed to open: {type(exc).__name__}: {exc}") from exc
        self._executor_open = True

    @staticmethod
    async def _close_after_failure(parts: Components, session: StudySession, study: OpenStudy | None) -> None:
        if study is not None and study._executor_open:
            try:
                await parts.executor.close()
            except Exception:
                log.exception("executor %r failed to close after a failed start", label(parts.executor))
        try:
            await session.close()
        except Exception:
            log.exception("storage %r failed to close after a failed start", label(parts.storage))

    def result(self, run: RunState) -> StudyResult:
        """The study as it stands: every trial in the view, the best, and why the run stopped."""
        view, settings = self.view, self.settings
        return StudyResult(
            study=settings.name,
            direction=settings.direction,
            seed=self.seed,
            trials=tuple(view.trials[n] for n in sorted(view.trials)),
            best=view.best,
            reason=run.reason or StopReason.CANCELLED,
            plugin_errors=dict(self.parts.relay.errors),
            metric_names=settings.metric_names,
        )

    async def close(self, run: RunState) -> StudyResult:
        """Announce the end of the study, close the executor and the session, and return the result.

        The session and the executor are closed whatever happens before;
        an executor that fails to close raises :class:`StudyError` (unless
        the run already failed), with the result.
        """
        parts = self.parts
        result = self.result(run)
        executor_error: Exception | None = None
        try:
            relay = parts.relay
            if relay.study_ended is not None:
                await relay.emit("hpt_study_ended", event=StudyEnded(result, time.time()), study=self.view)
                if relay.errors != result.plugin_errors:
                    # A plugin that failed at the very end (e.g. a logger flushing its last lines) still counts.
                    result = self.result(run)
        finally:
            try:
                if self._executor_open:
                    self._executor_open = False
                    try:
                        await parts.executor.close()
                    except Exception as exc:
                        executor_error = exc
            finally:
                await self.session.close()
        if executor_error is not None and run.fatal is None:
            name = label(parts.executor)
            message = f"executor {name!r} failed to close: {type(executor_error).__name__}: {executor_error}"
            raise StudyError(message, result) from executor_error
        return result
