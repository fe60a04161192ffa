"""The Tuner: runs trials concurrently on an anyio task group and emits their events.

Read from :meth:`Tuner.run` down.  A run opens the study (storage, strategy,
pruner, executor, ``hpt_study_started``), then ``concurrency`` worker tasks
each loop: take the next trial (a promoted PAUSED trial, an enqueued or LOST
configuration, or the strategy's answer; storage persists it;
``hpt_trial_created``), run the objective on the executor
(``hpt_trial_started``; each report goes through the trial's session), and
end it (storage commits, the strategy and pruner learn, ``hpt_trial_ended``).
A worker takes its next trial the moment its slot frees.  A stop condition
cancels the run's scope; every trial still running is then recorded
CANCELLED before ``run`` returns.

The pieces around it, each the one owner of its state: :mod:`._components`
(the components, resolved once), :mod:`._run` (why the run stops, its live
trials), :mod:`._open_study` (opening and closing the study),
:mod:`._trial_source` (where the next trial comes from),
:mod:`._trial_session` (reports, checkpoints, exploits), :mod:`._trial_end`
(a trial's end recorded, and the stop rules it checks), :mod:`._outcome`
(what an objective returned), :mod:`._checkpoint_book` (which checkpoints to
keep), :mod:`._shared` (tuners sharing a study) and :mod:`._interrupt`
(Ctrl-C and SIGTERM).  The ask-and-tell face is :class:`._ask_tell.AskAndTell`,
a base of :class:`Tuner`.
"""

from __future__ import annotations

import logging
import time
import traceback
import uuid
from collections import deque
from collections.abc import Callable, Mapping
from typing import Any

import anyio
import anyio.lowlevel

from . import _args
from ._ask_tell import AskAndTell
from ._components import Components, label, resolve
from ._interrupt import graceful_interrupts
from ._open_study import OpenStudy, StudySettings
from ._outcome import outcome
from ._run import Fatal, RunState
from ._trial_end import TrialEnd
from ._trial_source import Queued
from .contracts.storage import check_direction
from .convergence import Convergence
from .events import TrialCreated, TrialStarted
from .exceptions import StudyError, TrialCancelled, TrialPaused, TrialPruned
from .plugins import Registry, get_registry
from .result import StopReason, StudyResult
from .retry import RetryPolicy, check_retry_failed
from .space import Space, as_space
from .study import StudyView
from .trial import Trial, TrialRecord, TrialState

__all__ = ["Tuner"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_FAILED = TrialState.FAILED
_PAUSED = TrialState.PAUSED
_PRUNED = TrialState.PRUNED

log = logging.getLogger("hpt_async")

# A worker that has not let the event loop run for this long yields once.
_SLICE = 0.005


class Tuner(AskAndTell):
    """Tunes ``objective`` over ``space``.

    ``objective(trial)`` returns the value to minimise or maximise
    (``direction``).  With several objectives, ``directions=["minimize",
    "maximize"]`` (one per objective) and the objective returns a tuple or
    list of values in that order (see :attr:`StudyResult.best_trials
    <hpt_async.StudyResult.best_trials>` for the Pareto front);
    ``direction=`` given a sequence is the same as ``directions=``, and
    ``directions=`` with one entry is the same as ``direction=`` with it
    (the objective returns a number).  ``metric_names`` names the
    objectives (one distinct non-empty string each) for display and
    export.  The objective may record constraints with
    :meth:`trial.set_constraints <hpt_async.Trial.set_constraints>`
    (each satisfied when ``<= 0``): only feasible trials are ever best.
    ``async
    def`` objectives run on the event loop, plain ``def`` ones in worker
    threads (``executor`` overrides).  For ask-and-tell (:meth:`ask`,
    :meth:`tell`) the objective may be ``None``.  Components are registered
    names, mappings with a ``"name"`` and options
    (``strategy={"name": "bayes", "n_initial": 8}``; unknown options are
    refused with the list of valid ones), or objects:
    ``strategy`` (default ``"auto"``, which picks one from the space, the
    budget, the concurrency and the objectives, and says which at start;
    ``"random"`` for random search), ``pruner`` (default none),
    ``storage`` (a URL, default ``"memory"``, or a :class:`Storage`),
    ``executor``, ``loggers`` (``None`` means ``["console"]``, ``[]``
    silences) and ``plugins`` (any objects implementing lifecycle hooks).
    ``disable_plugins`` hides the components of the plugins it names (an
    entry-point name, or a builtin's module name) from this tuner.

    Stop conditions: ``max_trials`` (COMPLETE + PRUNED + FAILED + PAUSED
    trials of the study), ``timeout`` (seconds of wall time; running trials
    are cancelled), ``target`` (a feasible COMPLETE value at least this good; running
    trials are cancelled), a strategy with nothing left, Ctrl-C or SIGTERM
    (the result's reason is ``"interrupted"``; a second Ctrl-C aborts at
    once), ``converged`` (a :class:`~hpt_async.Convergence` rule, or
    ``True`` for its defaults: no improvement beyond noise for a while;
    running trials finish, reason ``"converged"``; or a
    :class:`~hpt_async.RegretBound`: the model's bound on the regret left is
    below the objective's error, reason ``"regret_bound"``), or cancellation from
    outside.  A run with neither ``max_trials``
    nor ``timeout`` says at start that it runs until stopped.
    ``max_failures`` FAILED trials make :meth:`run` raise
    :class:`~hpt_async.StudyFailed`, and so does a run whose first five
    finished trials all FAILED, unless ``fail_fast=False``.
    ``trial_timeout`` fails a trial that runs longer.  ``seed`` makes
    suggestions reproducible; without it a resumed study continues with its
    stored seed, and a new one draws a seed and stores it.

    With a pruner in promotion mode a trial the pruner pauses ends PAUSED,
    keeping its checkpoint, and a freed slot first resumes the paused trial
    the pruner promotes (docs/pruners.md, "Promotion mode").
    """

    def __init__(
        self,
        objective: Callable[..., Any] | None,
        space: Space | Mapping[str, Any],
        *,
        direction: str | list[str] | tuple[str, ...] | None = None,
        directions: list[str] | tuple[str, ...] | None = None,
        metric_names: list[str] | tuple[str, ...] | None = None,
        strategy: Any = "auto",
        pruner: Any = None,
        storage: Any = "memory",
        study: str | None = None,
        executor: Any = None,
        loggers: list[Any] | tuple[Any, ...] | None = None,
        plugins: list[Any] | tuple[Any, ...] = (),
        concurrency: int = 1,
        max_trials: int | None = None,
        timeout: float | None = None,
        target: float | None = None,
        trial_timeout: float | None = None,
        max_failures: int | None = None,
        fail_fast: bool = True,
        seed: int | None = None,
        retry_lost: bool = True,
        retry_failed: RetryPolicy | None = None,
        disable_plugins: list[str] | tuple[str, ...] | None = None,
        registry: Registry | None = None,
        converged: Convergence | bool | None = None,
    ) -> None:
        direction = _args.directions(direction, directions)
        _args.check(objective, direction, concurrency, max_trials, max_failures, timeout, trial_timeout, target, seed,
                    study, disable_plugins)  # fmt: skip
        self.objective = objective
        self.space = as_space(space)
        self.direction = check_direction(direction)
        # One value per objective is expected from the objective when the direction is a sequence.
        self._objectives = None if isinstance(self.direction, str) else len(self.direction)
        self.metric_names = _args.metric_names(metric_names, self._objectives or 1)
        # How many constraints every COMPLETE trial gives: learnt from the first (see _constrained).
        self._n_constraints: int | None = None
        self.concurrency = concurrency
        self.max_trials = max_trials
        self.timeout = timeout
        self.target = None if target is None else float(target)
        self.trial_timeout = trial_timeout
        self.max_failures = max_failures
        self.fail_fast = bool(fail_fast)
        self.seed = seed
        self.retry_lost = bool(retry_lost)
        self.retry_failed = check_retry_failed(retry_failed)
        self.study_name = study or f"study-{uuid.uuid4().hex[:8]}"
        if converged is True:
            converged = Convergence()
        elif converged is False:
            converged = None
        if converged is not None:
            if not isinstance(converged, Convergence):
                raise TypeError(f"converged must be a Convergence, True or None, got {converged!r}")
            if self._objectives is not None:
                raise ValueError("converged= judges one objective; this study has several directions")
        #: The stop rule for convergence, or ``None``.
        self.converged: Convergence | None = converged

        parts = resolve(
            registry or get_registry(),
            objective,
            strategy=strategy,
            pruner=pruner,
            storage=storage,
            executor=executor,
            loggers=loggers,
            plugins=plugins,
            disabled=frozenset(disable_plugins or ()),
            objectives=self._objectives or 1,
        )
        if getattr(parts.storage, "durable", False) and study is None:
            raise ValueError(
                f"storage {label(parts.storage)!r} keeps studies beyond this process: "
                "name the study with study='...' so that it can be found and resumed"
            )
        self._parts: Components = parts
        self.strategy, self.pruner, self.storage = parts.strategy, parts.pruner, parts.storage
        self.executor, self.loggers, self.plugins = parts.executor, parts.loggers, parts.plugins
        self._relay = parts.relay
        self._queue: deque[Queued] = deque()
        self._added: list[TrialRecord] = []  # finished trials from elsewhere, taken in at the next opening
        self._running = False
        self._opening: anyio.Event | None = None
        self._open_error: BaseException | None = None  # why the last opening failed, for the tasks waiting on it
        self._study: OpenStudy | None = None  # while the study is open
        self._view: StudyView | None = None  # the last opening's view, kept after it closed
        self._run = RunState()

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

    def add_trials(self, source: Any, *, on_invalid: str = "raise") -> int:
        """Add finished trials from elsewhere to the study before it runs (a warm start).

        ``source`` is :class:`TrialRecord` objects, a study read with
        :func:`~hpt_async.load_study` (or a :class:`StudyResult`), a pandas
        DataFrame as :meth:`LoadedStudy.to_dataframe
        <hpt_async.LoadedStudy.to_dataframe>` makes it, the path of a CSV
        file as ``hpt-async export`` writes it, or rows with those columns
        (see :mod:`hpt_async.warm_start`).  COMPLETE, PRUNED and FAILED
        trials are taken, with their value, reports and user attributes;
        others are skipped.  Each configuration is checked against the space
        now: a parameter missing, extra or out of range raises
        :class:`~hpt_async.warm_start.WarmStartError` naming the record and
        the parameter, and nothing is added (``on_invalid="skip"`` leaves
        such records out with a warning instead).  Returns how many
        records will be added.

        The study takes them in when :meth:`run` (or the first :meth:`ask`)
        opens it, before the strategy and the pruner start: they get the
        next study numbers, are stored, and count toward ``max_trials`` as
        resumed trials do (``max_trials=50`` with 20 added runs 30 new
        trials); model-based strategies and pruners learn from them.  No
        lifecycle hook hears of them.  A record equal to one the study
        already holds (same state, value, configuration and start time) is
        not added again, so a script that adds trials and is run again to
        resume a stored study does not add them twice.
        """
        from .warm_start import read_trials

        if self._study is not None or self._opening is not None:
            raise RuntimeError("add_trials() comes before run() or the first ask(): the study is open")
        records = read_trials(source, self.space, objectives=self._objectives, on_invalid=on_invalid)
        self._added.extend(records)
        return len(records)

    async def run(self) -> StudyResult:
        """Run trials until a stop condition holds; return every trial and the best.

        Raises :class:`~hpt_async.StudyFailed` at ``max_failures`` (or when
        the first trials all fail, with ``fail_fast``) and
        :class:`~hpt_async.StudyError` when a component fails; both carry
        the partial result.  Ctrl-C or SIGTERM stops it gracefully and it
        returns with reason ``"interrupted"``.  Cancelled from outside, it
        records running trials as CANCELLED and re-raises the cancellation.
        """
        if self.objective is None:
            raise TypeError("run() needs an objective: Tuner(objective, space, ...); ask() and tell() need none")
        if self._running:
            raise RuntimeError("this tuner is already running")
        self._running = True
        try:
            await self._ensure_open()
            run = self._run
            if self.max_trials is None and self.timeout is None:
                log.warning(
                    "study %r has neither max_trials nor timeout: it runs until stopped (Ctrl-C)", self.study_name
                )
            try:
                await self._study.open_executor()  # type: ignore[union-attr]  # a study ask() opened has none yet
                with graceful_interrupts(self._interrupted_by):
                    with anyio.CancelScope() as run.scope:
                        if self.timeout is not None:
                            run.scope.deadline = anyio.current_time() + self.timeout
                        workers = self._workers()
                        if workers > 0:
                            async with anyio.create_task_group() as outer:
                                outer.start_soon(self._heartbeat)
                                if self._study.shared.interval is not None:  # type: ignore[union-attr]
                                    outer.start_soon(self._study.shared.maintain)  # type: ignore[union-attr]
                                async with anyio.create_task_group() as tg:
                                    for _ in range(workers):
                                        tg.start_soon(self._worker)
                                outer.cancel_scope.cancel()
                    if run.scope.cancelled_caught:
                        run.stop(StopReason.TIMEOUT, cancel=False)
            except BaseException as exc:
                # Cancelled from outside, SystemExit, KeyboardInterrupt, or an error escaping the workers:
                # close the study all the same (running trials recorded, loggers and storage closed), then re-raise.
                run.stop(StopReason.CANCELLED, cancel=False)
                with anyio.CancelScope(shield=True):
                    try:
                        await self._finish()
                    except Exception:
                        if isinstance(exc, anyio.get_cancelled_exc_class()):
                            raise
                        log.exception("study %r: closing it after an interruption failed", self.study_name)
                raise
            result = await self._finish()
        finally:
            self._running = False
        return self._run.outcome(result, self.study_name, self.max_failures)

    # -- opening and closing -------------------------------------------------

    async def _ensure_open(self) -> None:
        """Open the study once, however many tasks ask for it at the same time."""
        while self._study is None:
            if self._opening is not None:
                await self._opening.wait()
                failure = self._open_error
                if self._study is None and failure is not None:
                    message = f"opening study {self.study_name!r} failed: {type(failure).__name__}: {failure}"
                    raise StudyError(message) from failure  # the task that opened it raised that error itself
                continue
            self._opening, self._open_error = anyio.Event(), None
            try:
                self._run = run = RunState()
                run.open()
                self._ask_lock = anyio.Lock(fast_acquire=True)  # strategies see one ask at a time, in FIFO order
                self._tick, self._beat = 0, time.monotonic()
                self._relay.reset()
                settings = StudySettings(
                    name=self.study_name,
                    direction=self.direction,
                    space=self.space,
                    seed=self.seed,
                    max_trials=self.max_trials,
                    timeout=self.timeout if self._running else None,  # ask() does not apply it
                    concurrency=self.concurrency,
                    retry_lost=self.retry_lost,
                    retry_failed=self.retry_failed,
                    objectives=self._objectives,
                    runs_objectives=self.objective is not None and self._running,  # ask() runs none
                    metric_names=self.metric_names,
                )
                self._ending = ending = TrialEnd(self._parts, run, direction=self.direction,
                                                 max_failures=self.max_failures, target=self.target,
                                                 fail_fast=lambda: self.fail_fast and self._running,
                                                 converged=self.converged)  # fmt: skip
                self._study = ending.study = await OpenStudy.open(
                    settings,
                    self._parts,
                    run,
                    self._queue,
                    learn=ending.learn,
                    cancel_new=ending.cancel_new,
                    added=self._added,
                )
                self._view = self._study.view
                self._n_constraints = next(
                    (len(r.constraints) for r in self._view.finished(TrialState.COMPLETE) if r.constraints is not None),
                    None,
                )
                self._study.source.waiting = _waiting(self._ask_lock)  # batched suggestions
                if self.converged is not None:
                    self.converged.reset(self._view)
            except BaseException as exc:
                self._open_error = exc
                raise
            finally:
                opening, self._opening = self._opening, None
                opening.set()

    async def _finish(self) -> StudyResult:
        """End the trials still live, settle why the run stopped, and close the study."""
        study, run = self._study, self._run
        assert study is not None
        for trial in list(run.live.values()):
            # A trial still open when the study closes cannot run on (a resumed one waits again).
            try:
                await self._ending.end(trial, *self._ending.interrupted(trial))
            except Fatal:
                pass
        run.final_reason(max_trials_reached=self.max_trials is not None and study.view.n_counted >= self.max_trials)
        self._study = None
        return await study.close(run)

    def _interrupted_by(self, signal_name: str) -> None:
        log.warning("study %r: %s received, stopping (again to abort at once)", self.study_name, signal_name)
        self._run.stop(StopReason.INTERRUPTED, cancel=True)

    # -- the workers -----------------------------------------------------------

    def _workers(self) -> int:
        """How many worker tasks this run starts."""
        view = self._view
        assert view is not None
        if self.max_failures is not None and view.count(_FAILED) >= self.max_failures:
            self._run.stop(StopReason.MAX_FAILURES, cancel=False)
            return 0
        workers = self.concurrency
        if self.executor.capacity is not None:
            workers = min(workers, self.executor.capacity)
        if self.max_trials is not None:
            # PAUSED trials count, yet each may still be resumed.
            workers = min(workers, self.max_trials - view.n_counted + view.count(_PAUSED))
        return workers

    async def _heartbeat(self) -> None:
        # Proves the loop is flowing; a worker that finds it stale yields (see _worker).
        while True:
            self._beat = time.monotonic()
            self._tick += 1
            await anyio.sleep(_SLICE / 2)

    async def _worker(self) -> None:
        run, lock = self._run, self._ask_lock
        while not run.stopping:
            # The lock is free nearly always (memory storage and most strategies never suspend in an ask). Even with
            # fast_acquire, acquire() checks for cancellation, walking every enclosing cancel scope once per trial:
            # a free lock is taken without that check. The run's own cancellation (timeout, stop) is checked here;
            # a cancellation from outside the run is seen at the next await, after at most one more trial is made
            # (and recorded CANCELLED). A lock held by another worker is awaited with the full acquire.
            scope = run.scope
            try:
                if scope is None or scope.cancel_called:
                    raise anyio.WouldBlock
                lock.acquire_nowait()
            except anyio.WouldBlock:
                await lock.acquire()
            try:
                if run.stopping:
                    return
                trial = await self._study.source.next(self.max_trials)  # type: ignore[union-attr]
            except Fatal:
                return
            finally:
                lock.release()
            if trial is None:
                view = self._view
                assert view is not None
                if self.max_trials is not None and view.n_counted >= self.max_trials:
                    if not (self._parts.promotes and run.live):
                        return
                if self._parts.promotes and run.live:
                    # A trial of this tuner still running may yet reach a rung that lets a paused one
                    # be promoted: wait for it to end or pause, then ask again.
                    await run.wait_changed()
                    continue
                shared = self._study.shared  # type: ignore[union-attr]
                if self._study.source.full and shared.interval is not None:  # type: ignore[union-attr]
                    # Storage counts trials (or reserved numbers) of other tuners this view does not hold
                    # yet: they may still end uncounted, so wait for the next sync and ask again.
                    await shared.wait()
                    continue
                # Out of budget or of configurations: done, unless trials of other tuners may
                # still end uncounted or come back as LOST to be retried.
                shared = self._study.shared  # type: ignore[union-attr]
                if not shared.waiting_on_others():
                    return
                await shared.wait()
                continue
            tick = self._tick
            try:
                await self._run_trial(trial)
            except Fatal:
                return
            # Objectives that never suspend would starve the loop (timeouts, other workers): yield when
            # the heartbeat has not run during this trial and has gone stale.
            if self._tick == tick and time.monotonic() - self._beat > _SLICE:
                await anyio.lowlevel.checkpoint()

    async def _announce_start(self, trial: Trial) -> None:
        relay, view = self._relay, self._view
        # Events are built only for hooks someone implements; plain implementations need no await.
        fire = relay.trial_created
        if fire is not None and not trial.resumed:
            pending = fire(TrialCreated(trial.number, dict(trial.params), trial.started), view)
            if pending is not None:
                await pending
        fire = relay.trial_started
        if fire is not None:
            pending = fire(TrialStarted(trial.number, time.time()), view)
            if pending is not None:
                await pending

    async def _run_trial(self, trial: Trial) -> None:
        try:
            await self._announce_start(trial)
            if self.trial_timeout is None:
                raw = await self.executor.run(self.objective, trial)
            else:
                with anyio.move_on_after(self.trial_timeout) as scope:
                    raw = await self.executor.run(self.objective, trial)
                if scope.cancelled_caught:
                    message = f"TrialTimeout: trial ran longer than trial_timeout={self.trial_timeout}s"
                    await self._ending.end(trial, _FAILED, None, message)
                    return
        except TrialPruned as exc:
            # A pause travels as TrialPaused, or as TrialPruned through executors that know only that.
            paused = self._parts.promotes and (trial.pausing or isinstance(exc, TrialPaused))
            await self._ending.end(trial, _PAUSED if paused else _PRUNED, trial.last_value)
        except anyio.get_cancelled_exc_class():
            # The study is being cancelled: end the trial whole, hooks included, then unwind.
            with anyio.CancelScope(shield=True):
                try:
                    await self._ending.end(trial, *self._ending.interrupted(trial))
                except Fatal:
                    pass
            raise
        except TrialCancelled:
            # Raised into the objective by a fatal error elsewhere; the study is stopping.
            await self._ending.end(trial, *self._ending.interrupted(trial))
        except Exception as exc:
            tb = "".join(traceback.format_exception(exc))
            await self._ending.end(trial, _FAILED, None, f"{type(exc).__name__}: {exc}", tb, cause=exc)
        else:
            state, value, error, values = outcome(raw, self._objectives)
            if state is TrialState.COMPLETE:
                error = self._constrained(trial)
                if error is not None:
                    state, value, values = _FAILED, None, None
            await self._ending.end(trial, state, value, error, values=values)

    def _constrained(self, trial: Trial) -> str | None:
        """The error that fails a trial whose constraints differ in number from the study's, else ``None``.

        The first COMPLETE trial with constraints fixes their number; a
        later one that gives another number, or none, ends FAILED.
        """
        given = trial.constraints
        expected = self._n_constraints
        if expected is None:
            if given is not None:
                self._n_constraints = len(given)
            return None
        if given is None:
            return (
                f"ValueError: trial {trial.number} set no constraints; the study's trials give {expected} "
                "(call trial.set_constraints in every trial)"
            )
        if len(given) != expected:
            return f"ValueError: trial {trial.number} set {len(given)} constraints; the study's trials give {expected}"
        return None


def _waiting(lock: anyio.Lock) -> Callable[[], int]:
    """How many tasks wait for ``lock``."""
    return lambda: lock.statistics().tasks_waiting
