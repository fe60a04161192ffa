"""Where a tuner's next trial comes from.

:class:`TrialSource` gives a worker (or ``ask()``) its next trial, in this
order: a PAUSED trial the pruner promotes (promotion mode), the retry of
a LOST trial (``retry_lost``) or of a FAILED one the retry policy matches,
a configuration the user enqueued, or the strategy's answer.  A new trial
gets its number from storage within the study's budget
(:meth:`StudySession.reserve_within`), is put in the view and persisted
RUNNING before anyone hears of it; a retry is created with its claim and
takes over its checkpoint in one storage call
(:meth:`StudySession.trial_created_retry`), and a configuration of an
``exclusive`` strategy (grid) is created only if no other trial of the
study holds it (:meth:`StudySession.trial_created_once`).  A resumed trial is
claimed in storage first, so that two tuners sharing a study never resume
the same one.

Batched suggestions: a strategy that overrides
:meth:`~hpt_async.contracts.Strategy.ask_batch` is asked for one
configuration per free worker at once.  When a worker gets the ask lock
while others wait behind it, :meth:`TrialSource.next` reserves a trial
number for it and for each waiting worker (capped by the remaining budget),
asks the strategy for all of them in one call, creates the first trial and
keeps the others ready: the waiting workers, taking the lock in turn, are
handed theirs without asking again.  A strategy that overrides
:meth:`~hpt_async.contracts.Strategy.batch_limit` is given at most that
many numbers in one call (at least one).  A strategy that keeps the default
``ask_batch`` (random search, say) is asked one trial at a time, exactly as
before.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections import deque
from collections.abc import Awaitable, Callable, Mapping
from typing import TYPE_CHECKING, Any

import anyio

from ._components import label
from .contracts import Strategy
from .trial import Trial, TrialRecord, TrialState

if TYPE_CHECKING:
    from ._components import Components
    from ._open_study import OpenStudy
    from ._run import RunState
    from .retry import RetryPolicy
    from .space import Space

__all__ = ["TrialSource"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_CANCELLED = TrialState.CANCELLED
_PAUSED = TrialState.PAUSED

log = logging.getLogger("hpt_async")

#: A configuration waiting to run, and the trial it retries (``None`` for one the user enqueued).
Queued = tuple[dict[str, Any], int | None]

#: The most configurations one batched suggestion is asked for.
MAX_BATCH = 1024


def config_key(params: Mapping[str, Any]) -> str:
    """The key a configuration of an ``exclusive`` strategy holds in storage: a digest of its values by name.

    Values are told apart by type and ``repr`` (``1`` and ``1.0`` and
    ``True`` are three configurations), as the grid strategy does.
    """
    text = repr(sorted((k, type(v).__name__, repr(v)) for k, v in params.items()))
    return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()


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
        *,
        retry_lost: bool = True,
        retry_failed: RetryPolicy | None = None,
    ) -> None:
        self._retry_lost = retry_lost
        self._retry_failed = retry_failed
        #: Storage refused the last number: the study's budget is used up (see :meth:`next`).
        self.full = False
        self._budget: int | None = None  # the budget of the ask under way (for a batch's extra numbers)
        self._parts = parts
        self._space = space
        self._study = study
        self._run = run
        self._queue = queue
        self._objectives = objectives
        self._cancel = cancel  # ends a trial CANCELLED without announcing it (its creation was cancelled)

        # Batched suggestions, for a strategy that overrides ask_batch: the configurations of a batch's
        # other trials, their numbers reserved with the batch, each for the next worker that asks.
        self._batches = type(parts.strategy).ask_batch is not Strategy.ask_batch
        # A strategy may bound a batch below the free workers (``Strategy.batch_limit``): asked only if it overrides it.
        limit = getattr(type(parts.strategy), "batch_limit", Strategy.batch_limit)
        self._limit = parts.strategy.batch_limit if limit is not Strategy.batch_limit else None
        self._ready: deque[tuple[int, dict[str, Any]]] = deque()
        #: How many workers wait behind the one asking (the tuner sets it); None: ask one at a time.
        self.waiting: Callable[[], int] | None = None
        #: Batched suggestions made, and the trials they served in all.
        self.batches = 0
        self.batched_trials = 0

    def pending_retries(self) -> list[int]:
        """Trials to retry that no retry retries yet, by number (LOST with ``retry_lost``, FAILED the policy matches).

        Found from the view, that is from storage's state, not from a queue of
        this tuner's: a trial whose retrier died before creating the retry
        is still pending for every tuner sharing the study.
        """
        view = self._study.view
        candidates = view._ended_badly
        if not candidates:
            return []
        retried, trials, policy = view._retried, view.trials, self._retry_failed
        out = []
        for number in sorted(candidates):
            record = trials[number]
            if number in retried:
                candidates.discard(number)
            elif record.state is TrialState.LOST:
                if self._retry_lost:
                    out.append(number)
                else:
                    candidates.discard(number)
            elif record.state is TrialState.FAILED and policy is not None and policy.retries(record, trials):
                out.append(number)
            else:
                candidates.discard(number)
        return out

    async def next(self, budget: int | None = None) -> Trial | None:
        """A promoted PAUSED trial, else a new one while fewer than ``budget`` trials count or run; else ``None``.

        After ``None``, :attr:`full` tells whether storage found the budget
        used up by trials (or reservations) of sessions this view may not
        know of yet: a worker then waits for the next sync and asks again.
        """
        self.full = False
        if self._parts.promotes:
            trial = await self._promote()
            if trial is not None:
                return trial
        view = self._study.view
        if budget is not None and view.n_counted + len(view.running) >= budget:
            return None
        return await self._create(budget)

    async def _create(self, budget: int | None) -> Trial | None:
        study, run = self._study, self._run
        self._budget = budget
        session = study.session
        pending = self.pending_retries()
        if self._ready and not pending and not self._queue:
            # A configuration of the last batched suggestion: its number was reserved with the batch.
            number, params = self._ready.popleft()
            return await self._store(self._new(number, params))
        if run.exhausted and not self._queue and not pending:
            return None
        try:
            number = await session.reserve_within(budget)
        except Exception as exc:
            raise run.fail(f"storage {label(self._parts.storage)!r} failed to reserve a trial number", exc) from exc
        if number is None:
            self.full = True
            return None
        try:
            trial = await self._fill(number, pending)
        except BaseException:
            with anyio.CancelScope(shield=True):
                await self._release(number)
            raise
        if trial is None:
            await self._release(number)
        return trial

    async def _release(self, number: int) -> None:
        try:
            await self._study.session.release(number)
        except Exception:
            log.warning("storage %r failed to release trial number %d", label(self._parts.storage), number)

    async def _fill(self, number: int, pending: list[int]) -> Trial | None:
        """The trial numbered ``number``: a pending retry, else a queued configuration, else the strategy's."""
        study, run = self._study, self._run
        view, session = study.view, study.session
        storage = label(self._parts.storage)
        for of in pending:
            retried = view.trials[of]
            trial = Trial(number, dict(retried.params), study.trials, time.time(), of, objectives=self._objectives)
            record = trial.snapshot()
            try:
                # Shielded: once storage has created the retry, this tuner must adopt it.
                with anyio.CancelScope(shield=True):
                    created = await session.trial_created_retry(record)
                    view._ended_badly.discard(of)
                    if not created:
                        continue  # another tuner sharing the study retried it first
                    view._put(record)
                    run.adopt(trial)
            except Exception as exc:
                raise run.fail(f"storage {storage!r} failed to persist trial {number}, a retry of {of}", exc) from exc
            await study.book.inherit(trial, retried, of)
            return trial
        if self._queue:
            queued, retry_of = self._queue.popleft()
            try:
                params = self._space.complete(queued, study.seed, number)
            except Exception as exc:
                raise run.fail("an enqueued configuration could not be completed", exc) from exc
            trial = Trial(number, params, study.trials, time.time(), retry_of, objectives=self._objectives)
            return await self._store(trial)
        exclusive = getattr(self._parts.strategy, "exclusive", False)
        if self._batches and not exclusive:
            params = await self._ask_batch(number)
            if params is None:
                return None
            return await self._store(self._new(number, params))
        while True:
            params = await self._ask_strategy(number)
            if params is None:
                return None
            trial = self._new(number, params)
            if not exclusive:
                return await self._store(trial)
            record = trial.snapshot()
            try:
                with anyio.CancelScope(shield=True):
                    created = await session.trial_created_once(record, config_key(params))
                    if created:
                        view._put(record)
                        run.adopt(trial)
            except Exception as exc:
                raise run.fail(f"storage {storage!r} failed to persist trial {number}", exc) from exc
            if created:
                return trial
            # Another tuner sharing the study holds this configuration: the strategy is asked again.

    def _new(self, number: int, params: dict[str, Any]) -> Trial:
        """A new trial of the strategy's (no retry)."""
        return Trial(number, params, self._study.trials, time.time(), None, objectives=self._objectives)

    async def _store(self, trial: Trial) -> Trial:
        """Put ``trial`` in the view and in storage, RUNNING."""
        study, run = self._study, self._run
        view, session = study.view, study.session
        number = trial.number
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
        return trial

    async def _ask_batch(self, number: int) -> dict[str, Any] | None:
        """Ask the strategy for trial ``number`` and one more trial for each worker waiting behind this one.

        Returns the configuration of ``number``; the others, whose numbers
        are reserved here within the budget, are kept for the waiting
        workers.  ``None`` when the strategy is exhausted.
        """
        study, run = self._study, self._run
        view = study.view
        size = 1 + (self.waiting() if self.waiting is not None else 0)
        budget = self._budget
        if budget is not None:
            size = min(size, budget - view.n_counted - len(view.running))
        if self._limit is not None:
            limit = self._limit(view)
            if limit is not None:
                size = min(size, max(1, int(limit)))
        numbers = [number]
        for _ in range(max(0, min(size, MAX_BATCH) - 1)):
            try:
                extra = await study.session.reserve_within(budget)
            except Exception as exc:
                storage = label(self._parts.storage)
                raise run.fail(f"storage {storage!r} failed to reserve a trial number", exc) from exc
            if extra is None:
                break
            numbers.append(extra)
        strategy = self._parts.strategy
        try:
            suggested = await strategy.ask_batch(view, numbers)
            if len(suggested) != len(numbers):
                raise ValueError(f"asked for {len(numbers)} configurations, got {len(suggested)}")
        except Exception as exc:
            raise run.fail(f"strategy {label(strategy)!r} failed in ask_batch", exc) from exc
        out: list[tuple[int, dict[str, Any]]] = []
        for n, params in zip(numbers, suggested, strict=True):
            if params is None:
                run.exhausted = True
                break
            if self._parts.check_output:
                try:
                    params = self._space.validate(params)
                except Exception as exc:
                    message = f"strategy {label(strategy)!r} suggested an invalid configuration"
                    raise run.fail(message, exc) from exc
            out.append((n, params))
        for unused in numbers[max(1, len(out)) :]:
            await self._release(unused)  # the first number is released by _create when nothing came
        if not out:
            return None
        self.batches += 1
        self.batched_trials += len(out)
        self._ready.extend(out[1:])
        return out[0][1]

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
