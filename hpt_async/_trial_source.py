"""Where a tuner's next trial comes from.

:class:`TrialSource` gives a worker (or ``ask()``) its next trial, in this
order: a PAUSED trial the pruner promotes (promotion mode), a queued
configuration (enqueued by the user, or that of a LOST trial to run
again), or the strategy's answer.  A new trial gets its number from
storage, is put in the view and persisted RUNNING before anyone hears of
it; a retry of a LOST trial takes over its checkpoint.  A resumed trial is
claimed in storage first, so that two tuners sharing a study never resume
the same one.

Batched suggestions: a strategy that overrides
:meth:`~hpt_async.contracts.Strategy.ask_batch` is asked for one
configuration per free worker at once.  When a worker gets the ask lock
while others wait behind it, :meth:`TrialSource.next` reserves a trial
number for it and for each waiting worker (capped by the remaining budget),
asks the strategy for all of them in one call, creates the first trial and
keeps the others ready: the waiting workers, taking the lock in turn, are
handed theirs without asking again.  A strategy that keeps the default
``ask_batch`` (random search, say) is asked one trial at a time, exactly as
before.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

import anyio

from ._components import label
from .contracts import Strategy
from .trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from ._components import Components
    from ._open_study import OpenStudy
    from ._run import RunState
    from .space import Space

__all__ = ["TrialSource"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_CANCELLED = TrialState.CANCELLED
_PAUSED = TrialState.PAUSED

log = logging.getLogger("hpt_async")

#: A configuration waiting to run, and the LOST trial it retries (``None`` for one the user enqueued).
Queued = tuple[dict[str, Any], int | None]

#: The most configurations one batched suggestion is asked for.
MAX_BATCH = 1024


class TrialSource:
    """The next trial of one opening of a study (see the module docstring)."""

    def __init__(
        self,
        parts: Components,
        space: Space,
        study: OpenStudy,
        run: RunState,
        queue: deque[Queued],
        objectives: int | None,
        cancel: Callable[[Trial], Awaitable[Any]],
    ) -> None:
        self._parts = parts
        self._space = space
        self._study = study
        self._run = run
        self._queue = queue
        self._objectives = objectives
        self._cancel = cancel  # ends a trial CANCELLED without announcing it (its creation was cancelled)
        # Batched suggestions, for a strategy that overrides ask_batch: the reserved numbers and the
        # configurations of a batch's other trials, each for the next worker that asks.
        self._batches = type(parts.strategy).ask_batch is not Strategy.ask_batch
        self._ready: deque[tuple[int, dict[str, Any]]] = deque()
        #: How many workers wait behind the one asking (the tuner sets it); None: ask one at a time.
        self.waiting: Callable[[], int] | None = None
        #: Batched suggestions made, and the trials they served in all.
        self.batches = 0
        self.batched_trials = 0

    async def next(self, budget: int | None = None) -> Trial | None:
        """A promoted PAUSED trial, else a new one while fewer than ``budget`` trials count or run; else ``None``."""
        if self._parts.promotes:
            trial = await self._promote()
            if trial is not None:
                return trial
        view = self._study.view
        if budget is not None and view.n_counted + len(view.running) >= budget:
            return None
        return await self._create(budget)

    async def _reserve(self) -> int:
        try:
            return await self._study.session.reserve()
        except Exception as exc:
            storage = label(self._parts.storage)
            raise self._run.fail(f"storage {storage!r} failed to reserve a trial number", exc) from exc

    async def _create(self, budget: int | None = None) -> Trial | None:
        study, run = self._study, self._run
        view, session = study.view, study.session
        if run.exhausted and not self._queue and not self._ready:
            return None
        retry_of = None
        if self._queue:
            number = await self._reserve()
            queued, retry_of = self._queue.popleft()
            try:
                params = self._space.complete(queued, study.seed, number)
            except Exception as exc:
                raise run.fail("an enqueued configuration could not be completed", exc) from exc
        elif self._ready:
            number, params = self._ready.popleft()
        elif self._batches:
            first = await self._ask_batch(budget)
            if first is None:
                return None
            number, params = first
        else:
            number = await self._reserve()
            params = await self._ask_strategy(number)
            if params is None:
                return None
        trial = Trial(number, params, study.trials, time.time(), retry_of, objectives=self._objectives)
        record = trial.snapshot()
        view._put(record)
        run.adopt(trial)
        try:
            await session.trial_created(record)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._cancel(trial)
            raise
        except Exception as exc:
            fatal = run.fail(f"storage {label(self._parts.storage)!r} failed to persist trial {number}", exc)
            run.release(number)
            view._put(trial.end(_CANCELLED))
            raise fatal from exc
        if retry_of is not None:
            await study.book.inherit(trial, view.trials.get(retry_of), retry_of)
        return trial

    async def _ask_batch(self, budget: int | None) -> tuple[int, dict[str, Any]] | None:
        """Ask the strategy for this worker's trial and one for each worker waiting behind it.

        Returns the first (number, configuration); the others are kept for
        the waiting workers.  ``None`` when the strategy is exhausted.
        """
        size = 1 + (self.waiting() if self.waiting is not None else 0)
        if budget is not None:
            view = self._study.view
            size = min(size, budget - view.n_counted - len(view.running))
        size = max(1, min(size, MAX_BATCH))
        numbers = [await self._reserve() for _ in range(size)]
        strategy = self._parts.strategy
        try:
            suggested = await strategy.ask_batch(self._study.view, numbers)
        except Exception as exc:
            raise self._run.fail(f"strategy {label(strategy)!r} failed in ask_batch", exc) from exc
        if len(suggested) != len(numbers):
            exc = ValueError(f"asked for {len(numbers)} configurations, got {len(suggested)}")
            raise self._run.fail(f"strategy {label(strategy)!r} failed in ask_batch", exc)
        out: list[tuple[int, dict[str, Any]]] = []
        for number, params in zip(numbers, suggested, strict=True):
            if params is None:
                self._run.exhausted = True
                break
            if self._parts.check_output:
                try:
                    params = self._space.validate(params)
                except Exception as exc:
                    message = f"strategy {label(strategy)!r} suggested an invalid configuration"
                    raise self._run.fail(message, exc) from exc
            out.append((number, params))
        if not out:
            return None
        self.batches += 1
        self.batched_trials += len(out)
        self._ready.extend(out[1:])
        return out[0]

    async def _ask_strategy(self, number: int) -> dict[str, Any] | None:
        strategy = self._parts.strategy
        try:
            suggested = await strategy.ask(self._study.view, number)
        except Exception as exc:
            raise self._run.fail(f"strategy {label(strategy)!r} failed in ask", exc) from exc
        if suggested is None:
            self._run.exhausted = True
            return None
        if not self._parts.check_output:
            return suggested
        try:
            return self._space.validate(suggested)
        except Exception as exc:
            raise self._run.fail(f"strategy {label(strategy)!r} suggested an invalid configuration", exc) from exc

    async def _promote(self) -> Trial | None:
        """Resume the PAUSED trial the pruner promotes, or ``None`` when it names none.

        Storage marks it RUNNING again, for this session; a trial another
        tuner sharing the study resumed first is skipped.
        """
        study, run, pruner = self._study, self._run, self._parts.pruner
        view, session, book = study.view, study.session, study.book
        name = label(pruner)
        for _ in range(16):
            try:
                number = await pruner.promote(view)
            except Exception as exc:
                raise run.fail(f"pruner {name!r} failed in promote", exc) from exc
            if number is None:
                return None
            record = view.trials.get(number)
            if record is None or record.state is not _PAUSED:
                state = "unknown" if record is None else record.state.value
                exc = ValueError(f"trial {number!r} is {state}, not paused")
                raise run.fail(f"pruner {name!r} promoted a trial that is not PAUSED", exc) from exc
            # Storage, not this tuner's memory, says: a tuner sharing the study may have run it since.
            saved = await book.stored(number)
            if not saved:
                log.warning("trial %d was paused without a checkpoint: resumed, it starts over", number)
            trial = Trial.resume(record, study.trials, restore=saved, objectives=self._objectives)
            running = trial.snapshot()
            try:
                # Shielded: once storage has claimed the trial, this tuner must adopt it.
                with anyio.CancelScope(shield=True):
                    claimed = await session.trial_resumed(running)
            except Exception as exc:
                storage = label(self._parts.storage)
                raise run.fail(f"storage {storage!r} failed to resume trial {number}", exc) from exc
            if not claimed:
                continue  # another tuner sharing the study resumed it first
            if isinstance(claimed, TrialRecord) and saved:
                # Storage's record: a tuner sharing the study may have run the trial further since this view saw it.
                trial = Trial.resume(claimed, study.trials, restore=True, objectives=self._objectives)
                running = trial.snapshot()
            book.resumed(record, saved)
            view._put(running)
            run.adopt(trial)
            return trial
        return None
