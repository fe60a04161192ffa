"""The Tuner: runs trials concurrently on an anyio task group and emits their events.

Read from :meth:`Tuner.run` down.  A run opens the study (storage, strategy,
pruner, executor, ``hpt_study_started``), then ``concurrency`` worker tasks
each loop: take the next trial (an enqueued configuration or the strategy's
answer; storage persists it; ``hpt_trial_created``), run the objective on the
executor (``hpt_trial_started``; each ``report`` is stored, announced and
decided by the pruner), and end it (storage commits, the strategy learns,
``hpt_trial_ended``).  A worker takes its next trial the moment its slot
frees.  Stop conditions cancel the run's scope; every trial still running
is then recorded CANCELLED before ``run`` returns.
"""

from __future__ import annotations

import logging
import math
import numbers
import secrets
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from dataclasses import replace
from types import MappingProxyType
from typing import Any

import anyio
import anyio.lowlevel

from .events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
from .exceptions import StrategyExhausted, StudyError, StudyFailed, TrialCancelled, TrialPaused, TrialPruned
from .executors.base import Executor
from .executors.inloop import is_async_callable
from .plugins import HookRelay, Registry, get_registry, implemented_hooks
from .pruners.base import Decision, Exploit, Pruner
from .result import StopReason, StudyResult
from .space import Space, as_space
from .storage.base import Storage, StudySession, parse_storage_url
from .strategies.base import Strategy
from .study import StudyView, better
from .trial import Trial, TrialRecord, TrialState

__all__ = ["Tuner"]

log = logging.getLogger("hpt_async")

_DIRECTIONS = ("minimize", "maximize")
_EMPTY: Mapping[Any, Any] = MappingProxyType({})
# A worker that has not let the event loop run for this long yields once.
_SLICE = 0.005


class _Fatal(Exception):
    """Internal: a component failed; the study is stopping (see ``Tuner._fatal``)."""


def _positive(name: str, value: Any, kind: type | tuple[type, ...] = (int, float), minimum: float = 0) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not value > minimum:
        raise ValueError(f"{name} must be a number > {minimum}, got {value!r}")


def _label(obj: Any) -> str:
    name = getattr(obj, "name", None)
    return name if isinstance(name, str) else type(obj).__name__


class Tuner:
    """Tunes ``objective`` over ``space``.

    ``objective(trial)`` returns the value to minimise or maximise; ``async
    def`` objectives run on the event loop, plain ``def`` ones in worker
    threads (``executor`` overrides).  Components are registered names or
    objects: ``strategy`` (default ``"random"``), ``pruner`` (default none),
    ``storage`` (a URL, default ``"memory"``, or a :class:`Storage`),
    ``executor``, ``loggers`` (``None`` means ``["console"]``, ``[]``
    silences) and ``plugins`` (any objects implementing lifecycle hooks).

    Stop conditions: ``max_trials`` (COMPLETE + PRUNED + FAILED + PAUSED
    trials of the study), ``timeout`` (seconds of wall time; running trials
    are cancelled), ``target`` (a COMPLETE value at least this good; running
    trials are cancelled), a strategy with nothing left, or cancellation
    from outside.
    ``max_failures`` FAILED trials make :meth:`run` raise
    :class:`~hpt_async.StudyFailed`.  ``trial_timeout`` fails a trial that
    runs longer.  ``seed`` makes suggestions reproducible (a random one is
    drawn and kept in the result when omitted).

    With a pruner in promotion mode (``pruner=ASHAPruner(mode="promotion")``)
    a trial the pruner pauses ends its run PAUSED, keeping its checkpoint;
    each time a slot frees, the pruner is first asked for a paused trial to
    resume (:meth:`Pruner.promote <hpt_async.Pruner.promote>`), and only
    when it names none does a new trial start.  A resumed trial keeps its
    number, configuration and reports, and runs the objective again with
    ``trial.should_restore`` true (without a checkpoint it starts over and
    reports from its first step again).  ``max_trials`` then bounds the
    configurations tried: once it is reached, promotions go on until none
    qualifies.  Trials still PAUSED when the study ends stay PAUSED, and a
    resumed study may promote them.
    """

    def __init__(
        self,
        objective: Callable[..., Any],
        space: Space | Mapping[str, Any],
        *,
        direction: str = "minimize",
        strategy: str | Strategy = "random",
        pruner: str | Pruner | None = None,
        storage: str | Storage = "memory",
        study: str | None = None,
        executor: str | Executor | None = None,
        loggers: list[Any] | tuple[Any, ...] | None = None,
        plugins: list[Any] | tuple[Any, ...] = (),
        concurrency: int = 1,
        max_trials: int | None = None,
        timeout: float | None = None,
        target: float | None = None,
        trial_timeout: float | None = None,
        max_failures: int | None = None,
        seed: int | None = None,
        retry_lost: bool = True,
        registry: Registry | None = None,
    ) -> None:
        if not callable(objective):
            raise TypeError(f"objective must be callable, got {objective!r}")
        if direction not in _DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
            raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
        for name, value in (("max_trials", max_trials), ("max_failures", max_failures)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        _positive("timeout", timeout)
        _positive("trial_timeout", trial_timeout)
        if target is not None and (
            isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(target)
        ):
            raise ValueError(f"target must be a finite number, got {target!r}")
        if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
            raise TypeError(f"seed must be an int, got {seed!r}")
        if seed is not None and not 0 <= seed < 2**64:
            raise ValueError(f"seed must be in [0, 2**64), got {seed}")
        if study is not None and (not isinstance(study, str) or not study):
            raise ValueError(f"study must be a non-empty string, got {study!r}")

        reg = registry or get_registry()
        self.objective = objective
        self.space = as_space(space)
        self.direction = direction
        self.concurrency = concurrency
        self.max_trials = max_trials
        self.timeout = timeout
        self.target = None if target is None else float(target)
        self.trial_timeout = trial_timeout
        self.max_failures = max_failures
        self.seed = secrets.randbits(32) if seed is None else seed
        self.study_name = study or f"study-{uuid.uuid4().hex[:8]}"

        self.strategy: Strategy = reg.create("strategy", strategy)
        if not callable(getattr(self.strategy, "ask", None)):
            raise TypeError(f"strategy {self.strategy!r} has no ask() method")
        self._check_output = getattr(self.strategy, "check_output", True) is not False
        self.pruner: Pruner | None = None if pruner is None else reg.create("pruner", pruner)
        if self.pruner is not None and not callable(getattr(self.pruner, "decide", None)):
            raise TypeError(f"pruner {self.pruner!r} has no decide() method")
        # Promotion mode: the pruner may PAUSE trials and name paused ones to resume.
        self._promotes = bool(getattr(self.pruner, "promotes", False)) and callable(
            getattr(self.pruner, "promote", None)
        )
        # A strategy with decide() (population-based training) answers at reports itself.
        self._decider: Any = self.pruner
        if callable(getattr(self.strategy, "decide", None)):
            if self.pruner is not None:
                raise ValueError(
                    f"strategy {_label(self.strategy)!r} decides at reports itself (it may EXPLOIT); "
                    f"it cannot be paired with pruner {_label(self.pruner)!r}: drop pruner="
                )
            self._decider = self.strategy
        if isinstance(storage, str):
            self.storage: Storage = reg.create("storage", parse_storage_url(storage), storage)
        else:
            self.storage = storage
        if not callable(getattr(self.storage, "open", None)):
            raise TypeError(f"storage {self.storage!r} has no open() method")
        if getattr(self.storage, "durable", False) and study is None:
            raise ValueError(
                f"storage {_label(self.storage)!r} keeps studies beyond this process: "
                "name the study with study='...' so that it can be found and resumed"
            )
        self.retry_lost = bool(retry_lost)
        if executor is None:
            executor = "async" if is_async_callable(objective) else "thread"
        self.executor: Executor = reg.create("executor", executor)
        self.executor.check(objective)
        if loggers is None:
            loggers = ["console"]
        self.loggers = [reg.create("logger", lg) for lg in loggers]
        self.plugins = list(plugins)

        self._queue: deque[tuple[dict[str, Any], int | None]] = deque()
        self._session: StudySession | None = None
        self._running = False
        self._open = False
        self._view: StudyView | None = None
        # The tuner's own components hear events first, then plugins and loggers in the order given.
        components = [self.strategy, self.pruner, self.storage, self.executor, *self.plugins, *self.loggers]
        self._relay = HookRelay(components)
        # After the relay, which names a misspelt or wrongly marked hook more precisely.
        for kind, objects, names in (
            ("logger", self.loggers, "a registered logger name or "),
            ("plugin", self.plugins, ""),
        ):
            for obj in objects:
                if not implemented_hooks(obj):
                    raise TypeError(
                        f"{kind} {obj!r} implements no lifecycle hook: give {names}an object with methods "
                        "marked @hpt_async.hookimpl (hpt_trial_ended, ...)"
                    )
        self._reset_run_state()

    # -- public API --------------------------------------------------------

    @property
    def study(self) -> StudyView:
        """The live view of the study (after the run or the first ``ask`` opened it)."""
        if self._view is None:
            raise RuntimeError("the study is not open yet: call run() or ask() first")
        return self._view

    def enqueue(self, params: Mapping[str, Any]) -> None:
        """Queue a configuration to run before the strategy is asked.

        ``params`` may be partial: missing active parameters are sampled at
        random (reproducibly from the seed and trial number).  Values are
        checked against the space now.
        """
        checked = self.space.validate(params, partial=True)
        self.space.complete(checked, 0, 0)  # raises now if no completion can keep the given values active
        self._queue.append((checked, None))

    async def run(self) -> StudyResult:
        """Run trials until a stop condition holds; return every trial and the best.

        Raises :class:`~hpt_async.StudyFailed` at ``max_failures`` and
        :class:`~hpt_async.StudyError` when a component fails; both carry the
        partial result.  Cancelled from outside, it records running trials as
        CANCELLED and re-raises the cancellation.
        """
        if self._running:
            raise RuntimeError("this tuner is already running")
        self._running = True
        try:
            if not self._open:
                await self._start()
            view = self._view
            assert view is not None
            workers = self.concurrency
            if self.max_failures is not None and view.count(TrialState.FAILED) >= self.max_failures:
                self._reason = StopReason.MAX_FAILURES
                workers = 0
            capacity = getattr(self.executor, "capacity", None)
            if capacity is not None:
                workers = min(workers, capacity)
            if self.max_trials is not None:
                # PAUSED trials count, yet each may still be resumed.
                workers = min(workers, self.max_trials - view.n_counted + view.count(TrialState.PAUSED))
            try:
                with anyio.CancelScope() as self._scope:
                    if self.timeout is not None:
                        self._scope.deadline = anyio.current_time() + self.timeout
                    if workers > 0:
                        async with anyio.create_task_group() as outer:
                            outer.start_soon(self._heartbeat)
                            if self._session is not None and self._session.sync_interval is not None:
                                outer.start_soon(self._maintain, self._session.sync_interval)
                            async with anyio.create_task_group() as tg:
                                for _ in range(workers):
                                    tg.start_soon(self._worker)
                            outer.cancel_scope.cancel()
                if self._scope.cancelled_caught and self._reason is None:
                    self._reason = StopReason.TIMEOUT
            except anyio.get_cancelled_exc_class():
                self._reason = StopReason.CANCELLED
                with anyio.CancelScope(shield=True):
                    await self._finish()
                raise
            except BaseException:
                # SystemExit, KeyboardInterrupt, or an error escaping the workers: close the study all the same
                # (running trials recorded CANCELLED, loggers flushed and stopped, storage closed), then re-raise.
                if self._reason is None:
                    self._reason = StopReason.CANCELLED
                with anyio.CancelScope(shield=True):
                    try:
                        await self._finish()
                    except Exception:
                        log.exception("study %r: closing it after an interruption failed", self.study_name)
                raise
            result = await self._finish()
        finally:
            self._running = False
        if self._fatal is not None:
            raise StudyError(str(self._fatal), result) from self._fatal.__cause__
        if self._reason == StopReason.MAX_FAILURES:
            raise StudyFailed(
                f"study {self.study_name!r} stopped after {result.count(TrialState.FAILED)} failed trials "
                f"(max_failures={self.max_failures})",
                result,
            )
        return result

    async def ask(self) -> Trial:
        """Create a trial for a loop of the user's own (ask-and-tell).

        Opens the study on first use.  With a pruner in promotion mode, a
        PAUSED trial it promotes comes first (``trial.should_restore`` tells
        it from a new one).  Raises
        :class:`~hpt_async.StrategyExhausted` when the strategy has nothing
        left.  ``max_trials`` and ``timeout`` are :meth:`run`'s and do not
        apply here.
        """
        if self._fatal is not None:
            self._raise_fatal()  # a component failed earlier: the study takes no new trial
        if not self._open:
            await self._start()
        await self._acquire_ask()
        try:
            await self._sync_if_due()
            trial = await self._promote() if self._promotes else None
            if trial is None:
                trial = await self._create_trial()
        except _Fatal:
            assert self._fatal is not None
            self._raise_fatal()
        finally:
            self._release_ask()
        if trial is None:
            raise StrategyExhausted(f"strategy {_label(self.strategy)!r} has no configuration left")
        relay = self._relay
        if relay.listens("hpt_trial_created") and not trial._resumed:
            event = TrialCreated(trial.number, dict(trial.params), trial.started)
            await relay.emit("hpt_trial_created", event=event, study=self._view)
        if relay.listens("hpt_trial_started"):
            await relay.emit("hpt_trial_started", event=TrialStarted(trial.number, time.time()), study=self._view)
        return trial

    async def tell(
        self,
        trial: Trial,
        value: float | None = None,
        *,
        state: TrialState | str | None = None,
        error: str | None = None,
    ) -> TrialRecord:
        """End a trial from :meth:`ask` with ``value`` or with ``state``.

        ``state`` defaults to COMPLETE; a missing or non-finite value then
        makes the trial FAILED.  PRUNED and PAUSED keep the last reported
        value (a PAUSED trial may come back from :meth:`ask` when a pruner
        in promotion mode promotes it).  Returns the final record.
        """
        if not isinstance(trial, Trial):
            raise TypeError(f"tell() takes the Trial returned by ask(), got {trial!r}")
        if trial._ended or self._live.get(trial.number) is not trial:
            raise ValueError(f"trial {trial.number} is not running in this tuner")
        st = TrialState.COMPLETE if state is None else TrialState(state)
        if st is TrialState.RUNNING:
            raise ValueError("tell() ends a trial; RUNNING is not an end state")
        if st is TrialState.PAUSED and not self._promotes:
            raise ValueError("tell(state='paused') needs a pruner in promotion mode, which alone resumes paused trials")
        try:
            if st is TrialState.COMPLETE:
                record = await self._end(trial, *self._outcome(value))
            elif st is TrialState.PRUNED or st is TrialState.PAUSED:
                kept = self._last_value(trial) if value is None else float(value)
                record = await self._end(trial, st, kept if kept is not None and math.isfinite(kept) else None)
            else:
                record = await self._end(trial, st, None, error)
            await self._sync_if_due()
        except _Fatal:
            pass
        if self._fatal is not None:
            self._raise_fatal()
        return record

    async def close(self) -> StudyResult:
        """Close a study opened by :meth:`ask`: running trials are recorded CANCELLED (PAUSED again if resumed)."""
        if not self._open:
            raise RuntimeError("the study is not open")
        if self._reason is None:
            self._reason = StopReason.EXHAUSTED if self._exhausted else StopReason.CLOSED
        for number in list(self.study.running):
            trial = self._live.get(number)
            if trial is not None:
                try:
                    await self._end(trial, *self._interrupted(trial))
                except _Fatal:
                    break
        result = await self._finish()
        if self._fatal is not None:
            raise StudyError(str(self._fatal), result) from self._fatal.__cause__
        return result

    # -- opening and closing -------------------------------------------------

    def _reset_run_state(self) -> None:
        self._reason: str | None = None
        self._fatal: StudyError | None = None
        self._stopping = False
        self._exhausted = False
        self._beat = time.monotonic()
        self._tick = 0
        self._last_sync = time.monotonic()
        self._synced: anyio.Event | None = None  # made in _start(): needs a running loop
        self._ask_busy = False
        self._ask_waiters: deque[anyio.Event] = deque()
        self._live: dict[int, Trial] = {}
        self._scope: anyio.CancelScope | None = None  # made in run(): needs a running loop
        # Trials with a checkpoint stored by this tuner -> the step it was taken at (None: before any report).
        self._ckpt: dict[int, int | None] = {}
        # Set (and replaced) whenever a trial of this tuner ends or pauses; made in _start().
        self._changed: anyio.Event | None = None

    async def _start(self) -> None:
        self._reset_run_state()
        self._synced = anyio.Event()
        self._changed = anyio.Event()
        self._relay.reset()
        view = StudyView(self.study_name, self.direction, self.space, self.seed, self.max_trials)
        try:
            session = await self.storage.open(self.study_name, direction=self.direction, space=self.space)
        except ValueError:
            raise
        except Exception as exc:
            raise StudyError(
                f"storage {_label(self.storage)!r} failed to open study {self.study_name!r}: {exc}"
            ) from exc
        self._session = session
        try:
            for record in session.history:
                view._put(record)
            try:
                # Trials left RUNNING by a tuner that died are found now, before the strategy starts.
                lost = await session.claim_lost()
            except Exception as exc:
                raise StudyError(f"storage {_label(self.storage)!r} failed to recover lost trials: {exc}") from exc
            for record in lost:
                view._put(record)
            self._requeue(lost)
            self._view = view
            for component, kind in ((self.strategy, "strategy"), (self.pruner, "pruner")):
                if component is not None and hasattr(component, "start"):
                    try:
                        await component.start(view)
                    except Exception as exc:
                        raise StudyError(
                            f"{kind} {_label(component)!r} failed to start: {type(exc).__name__}: {exc}"
                        ) from exc
            try:
                await self.executor.open(self.concurrency)
            except (TypeError, ValueError):
                raise  # a setting of the executor's: its own message says what is wrong
            except Exception as exc:
                raise StudyError(
                    f"executor {_label(self.executor)!r} failed to open: {type(exc).__name__}: {exc}"
                ) from exc
            if self._relay.listens("hpt_study_started"):
                timeout = self.timeout if self._running else None  # ask() does not apply it
                event = StudyStarted(
                    self.study_name,
                    self.direction,
                    self.space,
                    self.seed,
                    time.time(),
                    self.max_trials,
                    timeout,
                    _label(self.strategy),
                    None if self.pruner is None else _label(self.pruner),
                )
                await self._relay.emit("hpt_study_started", event=event, study=view)
        except BaseException:
            with anyio.CancelScope(shield=True):
                try:
                    await session.close()
                except Exception:
                    log.exception("storage %r failed to close after a failed start", _label(self.storage))
            raise
        self._open = True

    async def _finish(self) -> StudyResult:
        view = self._view
        assert view is not None
        for trial in list(self._live.values()):
            # A trial of ask() still open when the study closes: it cannot run on (a resumed one waits again).
            try:
                await self._end(trial, *self._interrupted(trial))
            except _Fatal:
                pass
        if self._reason is None:
            if self._exhausted:
                self._reason = StopReason.EXHAUSTED
            elif self.max_trials is not None and view.n_counted >= self.max_trials:
                self._reason = StopReason.MAX_TRIALS
            else:
                self._reason = StopReason.CANCELLED
        result = self._result()
        executor_error: Exception | None = None
        try:
            if self._relay.listens("hpt_study_ended"):
                await self._relay.emit("hpt_study_ended", event=StudyEnded(result, time.time()), study=view)
                if self._relay.errors != result.plugin_errors:
                    # A plugin that failed at the very end (e.g. a logger flushing its last lines) still counts.
                    result = replace(result, plugin_errors=dict(self._relay.errors))
            try:
                await self.executor.close()
            except Exception as exc:
                executor_error = exc
        finally:
            self._open = False
            if self._session is not None:
                await self._session.close()
        if executor_error is not None and self._fatal is None:
            message = (
                f"executor {_label(self.executor)!r} failed to close: {type(executor_error).__name__}: {executor_error}"
            )
            raise StudyError(message, result) from executor_error
        return result

    def _result(self) -> StudyResult:
        """The study as it stands: every trial in the view, the best, and why it stopped."""
        view = self._view
        assert view is not None
        return StudyResult(
            study=self.study_name,
            direction=self.direction,
            seed=self.seed,
            trials=tuple(view.trials[n] for n in sorted(view.trials)),
            best=view.best,
            reason=self._reason or StopReason.CANCELLED,
            plugin_errors=dict(self._relay.errors),
        )

    def _raise_fatal(self) -> None:
        """Raise the recorded fatal error with the study as it stands (ask-and-tell)."""
        fatal = self._fatal
        assert fatal is not None
        if fatal.result is None and self._view is not None:
            fatal.result = self._result()
        raise fatal from fatal.__cause__

    def _stop(self, reason: str, *, cancel: bool) -> None:
        if self._reason is None:
            self._reason = reason
        self._stopping = True
        if cancel and self._scope is not None:
            self._scope.cancel()

    def _fail(self, message: str, exc: BaseException) -> _Fatal:
        """Record the first fatal error, stop everything, and return an exception to unwind with."""
        if self._fatal is None:
            err = StudyError(f"{message}: {type(exc).__name__}: {exc}")
            err.__cause__ = exc
            self._fatal = err
        self._stop(StopReason.CANCELLED, cancel=True)
        return _Fatal(message)

    # -- the workers -----------------------------------------------------------

    async def _heartbeat(self) -> None:
        # Proves the loop is flowing; a worker that finds it stale yields (see _worker).
        while True:
            self._beat = time.monotonic()
            self._tick += 1
            await anyio.sleep(_SLICE / 2)

    async def _maintain(self, interval: float) -> None:
        # Keeps this tuner in step with others sharing the study, and recovers LOST trials.
        session = self._session
        while True:
            await anyio.sleep(interval)
            interval = session.sync_interval or interval  # type: ignore[union-attr]
            try:
                await self._sync()
            except _Fatal:
                return

    async def _sync(self) -> None:
        """One maintenance pass: renew the lease, recover LOST trials, take in other tuners' trials."""
        session = self._session
        view = self._view
        assert session is not None and view is not None
        self._last_sync = time.monotonic()
        try:
            await session.heartbeat()
            lost = await session.claim_lost()
            changed = await session.refresh()
        except Exception as exc:
            raise self._fail(f"storage {_label(self.storage)!r} failed to synchronise", exc) from exc
        self._requeue(lost)
        for record in (*changed, *lost):
            old = view.trials.get(record.number)
            if old is not None and old.state is record.state and old.state.finished:
                continue
            view._put(record)
            if record.state.finished:
                await self._learn(record)
                self._check_stop(record)
        synced, self._synced = self._synced, anyio.Event()
        if synced is not None:
            synced.set()

    async def _sync_if_due(self) -> None:
        # Ask-and-tell has no maintenance task: keep the lease alive from ask() and tell().
        session = self._session
        if session is not None and session.sync_interval is not None:
            if time.monotonic() - self._last_sync >= session.sync_interval:
                await self._sync()

    def _waiting_on_others(self) -> bool:
        """True when trials of other tuners are running and the study may still need this one.

        They may end uncounted (LOST when their tuner died, CANCELLED), or
        their configurations may come back to be retried; a worker then waits
        for the next maintenance pass instead of leaving.
        """
        if self._session is None or self._session.sync_interval is None:
            return False
        # This tuner's running trials are exactly those in _live (removed when their end is put in the view).
        return len(self._view.running) > len(self._live)  # type: ignore[union-attr]

    async def _learn(self, record: TrialRecord) -> None:
        """Tell the strategy, then the pruner, that a trial of the study finished."""
        if record.state is TrialState.CANCELLED or record.state is TrialState.LOST:
            # Its configuration may be offered again: a strategy that had run out is asked anew.
            self._exhausted = False
        view = self._view
        try:
            await self.strategy.tell(view, record)
        except Exception as exc:
            raise self._fail(f"strategy {_label(self.strategy)!r} failed in tell", exc) from exc
        if self.pruner is not None and hasattr(self.pruner, "tell"):
            try:
                await self.pruner.tell(view, record)
            except Exception as exc:
                raise self._fail(f"pruner {_label(self.pruner)!r} failed in tell", exc) from exc

    def _requeue(self, lost: list[TrialRecord]) -> None:
        if self.retry_lost:
            self._queue.extend((dict(r.params), r.number) for r in lost)

    async def _worker(self) -> None:
        view = self._view
        assert view is not None
        max_trials = self.max_trials
        while not self._stopping:
            await self._acquire_ask()
            try:
                if self._stopping:
                    return
                # Promotion mode: a paused trial that now qualifies goes before any new one.
                trial = await self._promote() if self._promotes else None
                if trial is not None:
                    pass
                elif max_trials is not None and view.n_counted + len(view.running) >= max_trials:
                    if view.n_counted >= max_trials and not (self._promotes and self._live):
                        return
                else:
                    trial = await self._create_trial()
            except _Fatal:
                return
            finally:
                self._release_ask()
            if trial is None:
                if self._promotes and self._live:
                    # A trial of this tuner still running may yet reach a rung that lets a paused one
                    # be promoted: wait for it to end or pause, then ask again.
                    assert self._changed is not None
                    await self._changed.wait()
                    continue
                # Out of budget or of configurations: done, unless trials of other tuners may
                # still end uncounted or come back as LOST to be retried.
                if not self._waiting_on_others():
                    return
                assert self._synced is not None
                await self._synced.wait()
                continue
            tick = self._tick
            try:
                await self._run_trial(trial)
            except _Fatal:
                return
            # Objectives that never suspend would starve the loop (timeouts,
            # other workers): yield when the heartbeat has not run during this
            # trial and has gone stale.  A trial that awaited something long
            # enough let the heartbeat run, and needs no extra yield.
            if self._tick == tick and time.monotonic() - self._beat > _SLICE:
                await anyio.lowlevel.checkpoint()

    async def _acquire_ask(self) -> None:
        # A FIFO lock that costs nothing when free: strategies see one ask at a time.
        if not self._ask_busy:
            self._ask_busy = True
            return
        event = anyio.Event()
        self._ask_waiters.append(event)
        try:
            await event.wait()
        except BaseException:
            if event.is_set():
                self._release_ask()  # the lock was handed to us: pass it on
            else:
                self._ask_waiters.remove(event)
            raise

    def _release_ask(self) -> None:
        if self._ask_waiters:
            self._ask_waiters.popleft().set()
        else:
            self._ask_busy = False

    async def _create_trial(self) -> Trial | None:
        view = self._view
        assert view is not None
        if self._exhausted and not self._queue:
            return None
        try:
            number = await self._session.reserve()  # type: ignore[union-attr]
        except Exception as exc:
            raise self._fail(f"storage {_label(self.storage)!r} failed to reserve a trial number", exc) from exc
        retry_of = None
        if self._queue:
            queued, retry_of = self._queue.popleft()
            try:
                params = self.space.complete(queued, self.seed, number)
            except Exception as exc:
                raise self._fail("an enqueued configuration could not be completed", exc) from exc
        else:
            try:
                suggested = await self.strategy.ask(view, number)
            except Exception as exc:
                raise self._fail(f"strategy {_label(self.strategy)!r} failed in ask", exc) from exc
            if suggested is None:
                self._exhausted = True
                return None
            if self._check_output:
                try:
                    params = self.space.validate(suggested)
                except Exception as exc:
                    message = f"strategy {_label(self.strategy)!r} suggested an invalid configuration"
                    raise self._fail(message, exc) from exc
            else:
                params = suggested
        trial = Trial(number, params, self, time.time(), retry_of)
        record = trial.snapshot()
        view._put(record)
        self._live[number] = trial
        try:
            await self._session.trial_created(record)  # type: ignore[union-attr]
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._end(trial, TrialState.CANCELLED, announce=False)
            raise
        except Exception as exc:
            fatal = self._fail(f"storage {_label(self.storage)!r} failed to persist trial {number}", exc)
            trial._ended = True
            self._live.pop(number, None)
            view._put(replace(record, state=TrialState.CANCELLED, ended=time.time()))
            raise fatal from exc
        if retry_of is not None:
            await self._inherit_checkpoint(trial, retry_of)
        return trial

    async def _inherit_checkpoint(self, trial: Trial, lost: int) -> None:
        """A retry of a LOST trial takes over its last checkpoint, if it left one."""
        session = self._session
        assert session is not None
        try:
            data = await session.get_checkpoint(lost)
            if data is None:
                return
            await session.put_checkpoint(trial.number, data)
            await session.drop_checkpoint(lost)
        except Exception as exc:
            message = f"storage {_label(self.storage)!r} failed to move the checkpoint of trial {lost}"
            raise self._fail(message, exc) from exc
        old = self._view.trials.get(lost)  # type: ignore[union-attr]
        self._ckpt[trial.number] = old.last_report[0] if old is not None and old.last_report else None
        trial._restore = True

    async def _promote(self) -> Trial | None:
        """Resume the PAUSED trial the pruner promotes, or ``None`` when it names none.

        The trial keeps its number, configuration, user attributes and start
        time.  With a checkpoint in storage it keeps its reports too and
        ``should_restore`` is true; without one it starts over (its reports
        are dropped from the live trial, and the pruner ignores steps it has
        already taken).  Storage marks it RUNNING again, for this session; a
        trial another tuner sharing the study resumed first is skipped.
        """
        pruner = self.pruner
        view = self._view
        session = self._session
        assert pruner is not None and view is not None and session is not None
        label = _label(pruner)
        for _ in range(16):
            try:
                number = await pruner.promote(view)  # type: ignore[attr-defined]
            except Exception as exc:
                raise self._fail(f"pruner {label!r} failed in promote", exc) from exc
            if number is None:
                return None
            record = view.trials.get(number)
            if record is None or record.state is not TrialState.PAUSED:
                state = "unknown" if record is None else record.state.value
                exc = ValueError(f"trial {number!r} is {state}, not paused")
                raise self._fail(f"pruner {label!r} promoted a trial that is not PAUSED", exc) from exc
            trial = Trial(number, dict(record.params), self, record.started, record.retry_of)
            trial.user_attrs.update(record.user_attrs)
            trial._schedule = list(record.schedule)
            trial._resumed = True
            try:
                # Storage, not this tuner's memory, says: a tuner sharing the study may have run it since.
                saved = await session.get_checkpoint(number) is not None
            except Exception as exc:
                raise self._fail(
                    f"storage {_label(self.storage)!r} failed to read the checkpoint of trial {number}", exc
                ) from exc
            if saved:
                trial._reports.update(record.reports)
                trial._restore = True
                if number not in self._ckpt:
                    last = record.last_report
                    self._ckpt[number] = None if last is None else last[0]
            else:
                self._ckpt.pop(number, None)
                log.warning("trial %d was paused without a checkpoint: resumed, it starts over", number)
            running = trial.snapshot()
            try:
                claimed = await session.trial_resumed(running)
            except Exception as exc:
                raise self._fail(f"storage {_label(self.storage)!r} failed to resume trial {number}", exc) from exc
            if not claimed:
                continue  # another tuner sharing the study resumed it first
            view._put(running)
            self._live[number] = trial
            return trial
        return None

    async def _run_trial(self, trial: Trial) -> None:
        relay = self._relay
        try:
            # Events are built only for hooks someone implements; plain implementations need no await.
            fire = relay.trial_created
            if fire is not None and not trial._resumed:
                pending = fire(TrialCreated(trial.number, dict(trial.params), trial.started), self._view)
                if pending is not None:
                    await pending
            fire = relay.trial_started
            if fire is not None:
                pending = fire(TrialStarted(trial.number, time.time()), self._view)
                if pending is not None:
                    await pending
            if self.trial_timeout is None:
                raw = await self.executor.run(self.objective, trial)
            else:
                with anyio.move_on_after(self.trial_timeout) as scope:
                    raw = await self.executor.run(self.objective, trial)
                if scope.cancelled_caught:
                    message = f"TrialTimeout: trial ran longer than trial_timeout={self.trial_timeout}s"
                    await self._end(trial, TrialState.FAILED, None, message)
                    return
        except TrialPruned as exc:
            # A pause travels as TrialPaused, or as TrialPruned through executors that know only that.
            if self._promotes and (trial._pausing or isinstance(exc, TrialPaused)):
                await self._end(trial, TrialState.PAUSED, self._last_value(trial))
            else:
                await self._end(trial, TrialState.PRUNED, self._last_value(trial))
        except anyio.get_cancelled_exc_class():
            # The study is being cancelled: end the trial whole, hooks included, then unwind.
            with anyio.CancelScope(shield=True):
                try:
                    await self._end(trial, *self._interrupted(trial))
                except _Fatal:
                    pass
            raise
        except TrialCancelled:
            # Raised into the objective by a fatal error elsewhere; the study is stopping.
            await self._end(trial, *self._interrupted(trial))
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc))
            await self._end(trial, TrialState.FAILED, None, f"{type(exc).__name__}: {exc}", tb)
        else:
            await self._end(trial, *self._outcome(raw))

    def _interrupted(self, trial: Trial) -> tuple[TrialState, float | None]:
        """How a trial the study stops is recorded: CANCELLED, or PAUSED again when it had been resumed."""
        if trial._resumed:
            return TrialState.PAUSED, self._last_value(trial)
        return TrialState.CANCELLED, None

    @staticmethod
    def _last_value(trial: Trial) -> float | None:
        reports = trial._reports
        if not reports:
            return None
        value = reports[max(reports)]
        return value if math.isfinite(value) else None

    @staticmethod
    def _outcome(raw: Any) -> tuple[TrialState, float | None, str | None]:
        """State, value and error for what an objective returned: only finite numbers COMPLETE."""
        kind = type(raw)
        if kind is not float and kind is not int and (kind is bool or not isinstance(raw, numbers.Real)):
            return TrialState.FAILED, None, f"TypeError: the objective returned {raw!r}; expected a number"
        value = float(raw)
        if not math.isfinite(value):
            return TrialState.FAILED, None, f"ValueError: the objective returned {value}"
        return TrialState.COMPLETE, value, None

    async def _end(
        self,
        trial: Trial,
        state: TrialState,
        value: float | None = None,
        error: str | None = None,
        tb: str | None = None,
        *,
        announce: bool = True,
    ) -> TrialRecord:
        """Record the end of ``trial``: storage commits, the strategy learns, plugins hear.

        Runs to completion even when the study is being cancelled: the first
        attempt is unshielded (cheap), and if a cancellation interrupts it the
        remaining steps are finished under a shield, resuming at the step that
        was interrupted (storage and strategy may thus see that one step twice
        with the same record).
        """
        if trial._ended:
            return self._view.trials[trial.number]  # type: ignore[union-attr]
        trial._ended = True
        record = TrialRecord(
            number=trial.number,
            state=state,
            params=MappingProxyType(trial.params),
            value=value,
            reports=MappingProxyType(dict(trial._reports)) if trial._reports else _EMPTY,
            user_attrs=MappingProxyType(dict(trial.user_attrs)) if trial.user_attrs else _EMPTY,
            error=error,
            traceback=tb,
            started=trial.started,
            ended=time.time(),
            retry_of=trial.retry_of,
            schedule=tuple(trial._schedule) if trial._schedule else (),
        )
        progress = [0, 0]
        try:
            await self._commit(record, progress, announce)
        except anyio.get_cancelled_exc_class():
            with anyio.CancelScope(shield=True):
                await self._commit(record, progress, announce)
                if self._ckpt:
                    await self._release_checkpoints()
            raise
        if self._ckpt:
            with anyio.CancelScope(shield=True):
                await self._release_checkpoints()
        changed, self._changed = self._changed, anyio.Event()
        if changed is not None:
            changed.set()
        return record

    async def _release_checkpoints(self) -> None:
        """Drop the checkpoints of finished trials that nothing needs any more.

        Kept: those the strategy names in ``retained_checkpoints(study)``
        (e.g. finished donors of population-based training), the best
        COMPLETE trial's (the user's final model), and those of PAUSED
        trials (they continue from it when resumed).  A leftover checkpoint
        costs only space, so a storage error here is logged, not fatal.
        """
        view = self._view
        assert view is not None
        finished = [n for n in self._ckpt if n not in self._live]
        if not finished:
            return
        keep: set[int] = set()
        retained = getattr(self.strategy, "retained_checkpoints", None)
        if callable(retained):
            keep.update(retained(view))
        if view.best is not None:
            keep.add(view.best.number)
        trials = view.trials
        for number in finished:
            if number in keep:
                continue
            record = trials.get(number)
            if record is not None and record.state is TrialState.PAUSED:
                continue
            if record is not None and record.state is TrialState.RUNNING:
                # Resumed by another tuner sharing the study: its checkpoint is that tuner's to keep or drop.
                self._ckpt.pop(number, None)
                continue
            if number not in self._ckpt:
                continue  # an overlapping release (another trial's end) dropped it while this one awaited
            del self._ckpt[number]
            try:
                await self._session.drop_checkpoint(number)  # type: ignore[union-attr]
            except Exception:
                log.warning("storage %r failed to drop the checkpoint of trial %d", _label(self.storage), number)

    async def _commit(self, record: TrialRecord, progress: list[int], announce: bool = True) -> None:
        # progress[0]: steps done (1 stored, 2 told); progress[1]: hook implementations called.
        view = self._view
        assert view is not None
        if progress[0] < 1:
            try:
                await self._session.trial_ended(record)  # type: ignore[union-attr]
            except Exception as exc:
                view._put(record)
                self._live.pop(record.number, None)
                raise self._fail(
                    f"storage {_label(self.storage)!r} failed to commit trial {record.number}", exc
                ) from exc
            view._put(record)
            self._live.pop(record.number, None)
            progress[0] = 1
        if progress[0] < 2:
            await self._learn(record)
            progress[0] = 2
        fire = self._relay.trial_ended
        if announce and fire is not None:
            pending = fire(TrialEnded(record), view, progress)
            if pending is not None:
                await pending
        # Only now, so that the trial that stops the study is announced whole before the cancel.
        self._check_stop(record)

    def _check_stop(self, record: TrialRecord) -> None:
        """Stop on ``max_failures`` (FAILED trials of the whole study) or on reaching ``target``."""
        state, value = record.state, record.value
        if state is TrialState.FAILED:
            if self.max_failures is not None and self._view.count(TrialState.FAILED) >= self.max_failures:  # type: ignore[union-attr]
                self._stop(StopReason.MAX_FAILURES, cancel=True)
        elif state is TrialState.COMPLETE and self.target is not None and value is not None:
            if value == self.target or better(self.direction, value, self.target):
                self._stop(StopReason.TARGET, cancel=True)

    # -- called by live trials ---------------------------------------------------

    async def on_report(self, trial: Trial, step: int, value: float) -> None:
        """Store a report, announce it, and let the pruner decide (``Trial.report`` calls this)."""
        view = self._view
        assert view is not None
        try:
            await self._session.trial_reported(trial.number, step, value)  # type: ignore[union-attr]
        except Exception as exc:
            self._fail(f"storage {_label(self.storage)!r} failed to store a report of trial {trial.number}", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
        fire = self._relay.trial_reported
        if fire is not None:
            pending = fire(TrialReported(trial.number, step, value, time.time()), view)
            if pending is not None:
                await pending
        pruner = self._decider
        if pruner is None:
            return
        trial._pausing = False
        kind = "pruner" if pruner is self.pruner else "strategy"
        try:
            if kind == "pruner":
                decision = await pruner.decide(view, view.running[trial.number], step, value)
            else:
                # A population learns from its peers: let them run between one member's reports even when
                # the objective itself never suspends.
                await anyio.lowlevel.checkpoint()
                checkpoints = MappingProxyType(self._ckpt)
                decision = await pruner.decide(view, view.running[trial.number], step, value, checkpoints)
        except Exception as exc:
            self._fail(f"{kind} {_label(pruner)!r} failed in decide", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
        if decision is Decision.STOP:
            raise TrialPruned(f"trial {trial.number} pruned at step {step}")
        if decision is Decision.PAUSE and self._promotes:
            trial._pausing = True
            raise TrialPaused(f"trial {trial.number} paused at step {step}")
        if isinstance(decision, Exploit) and kind == "strategy":
            await self._exploit(trial, step, decision)
        elif decision is Decision.PAUSE:
            exc = ValueError("PAUSE is only answered by a pruner whose promotes attribute is true")
            self._fail(f"{kind} {_label(pruner)!r} answered PAUSE", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
        elif decision is not Decision.CONTINUE:
            exc = TypeError(f"expected a Decision, got {decision!r}")
            self._fail(f"{kind} {_label(pruner)!r} answered {decision!r}", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc

    async def _exploit(self, trial: Trial, step: int, answer: Exploit) -> None:
        """Give ``trial`` new hyperparameters and, from a donor, that donor's checkpoint."""
        label = _label(self.strategy)
        try:
            params = self.space.validate(answer.params)
            if answer.donor == trial.number:
                raise ValueError("a trial cannot exploit itself")
        except Exception as exc:
            self._fail(f"strategy {label!r} answered an invalid EXPLOIT for trial {trial.number}", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
        donor = answer.donor
        if donor is not None:
            session = self._session
            assert session is not None
            try:
                data = await session.get_checkpoint(donor)
                if data is None:
                    log.warning("trial %d: donor trial %d has no checkpoint; it goes on unchanged", trial.number, donor)
                    return
                await session.put_checkpoint(trial.number, data)
            except Exception as exc:
                self._fail(f"storage {_label(self.storage)!r} failed to copy the checkpoint of trial {donor}", exc)
                raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
            self._ckpt[trial.number] = self._ckpt.get(donor)
        trial._change_params(params, step, donor)

    async def on_checkpoint(self, trial: Trial, data: bytes) -> None:
        """Keep ``data`` as the trial's checkpoint (``Trial.checkpoint`` calls this)."""
        if trial._ended:
            raise TrialCancelled(f"trial {trial.number} has already ended")
        try:
            await self._session.put_checkpoint(trial.number, data)  # type: ignore[union-attr]
        except Exception as exc:
            self._fail(f"storage {_label(self.storage)!r} failed to store a checkpoint of trial {trial.number}", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
        reports = trial._reports
        self._ckpt[trial.number] = max(reports) if reports else None

    async def on_restore(self, trial: Trial) -> bytes | None:
        """The checkpoint the trial continues from (``Trial.restore`` calls this)."""
        if trial._ended:
            raise TrialCancelled(f"trial {trial.number} has already ended")
        if trial.number not in self._ckpt:
            return None
        try:
            return await self._session.get_checkpoint(trial.number)  # type: ignore[union-attr]
        except Exception as exc:
            self._fail(f"storage {_label(self.storage)!r} failed to read a checkpoint of trial {trial.number}", exc)
            raise TrialCancelled(f"trial {trial.number}: the study stopped") from exc
