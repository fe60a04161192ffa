"""What the experiment-tracking loggers share: one run per trial, written by a worker thread.

A tracking library's calls are synchronous and do I/O (files, a local
service, a server), so the hooks never make them.  Each hook turns its
event into a small operation and puts it on a queue; one worker thread per
logger carries the operations out, in order, through a :class:`Backend`
that the concrete logger supplies.  The event loop only pays for a queue
``put``.

A backend call that raises is logged once per study (with its traceback),
counted, and skipped; a trial whose run could not be opened loses its later
operations (counted too).  When a study ends, its hook waits (in a thread,
off the loop) until the worker has carried out everything queued before it,
at most ``drain_timeout`` seconds, and raises the logger's error class
(a :class:`TrackingError`) saying how much was lost: the tuner isolates it
like any logger error, counts it in ``result.plugin_errors`` and the study
goes on.
"""

from __future__ import annotations

import concurrent.futures
import logging
import queue
import threading
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, ClassVar

import anyio
import anyio.to_thread

from ..exceptions import HptError
from ..hookspecs import hookimpl
from ..trial import TrialState

if TYPE_CHECKING:
    from ..events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported
    from ..result import StudyResult
    from ..space import Space
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["Backend", "TrackingError", "TrackingLogger"]

log = logging.getLogger("hpt_async.loggers")


class TrackingError(HptError, RuntimeError):
    """Raised by a tracking logger's study-end hook when part of the study could not be written.

    The tuner isolates it like any logger error: the study is unaffected, the
    error is logged, and ``result.plugin_errors["<logger>.hpt_study_ended"]``
    counts it.
    """


class Backend:
    """The tracking library's side of a :class:`TrackingLogger`; every method runs in the worker thread.

    ``open_study`` returns a handle for the study (or ``None``), ``open_trial``
    one for the trial's run; the others get those handles back.  Any method
    may raise: the logger counts the error and goes on.
    """

    def open_study(self, study: str, params: Mapping[str, Any], space: Space, when: float) -> Any:
        """Start what groups the study's runs; return its handle."""
        raise NotImplementedError

    def open_trial(self, study: Any, number: int, params: Mapping[str, Any], when: float) -> Any:
        """Start trial ``number``'s run with its configuration; return its handle."""
        raise NotImplementedError

    def report(self, study: Any, trial: Any, step: int, value: float, when: float) -> None:
        """Write one intermediate value of the trial at ``step``."""
        raise NotImplementedError

    def end_trial(self, study: Any, trial: Any, record: TrialRecord) -> None:
        """Write the trial's final value and state, and close its run."""
        raise NotImplementedError

    def end_study(self, study: Any, result: StudyResult, when: float) -> None:
        """Write the study's summary (best value and parameters, counts) and close what it opened."""
        raise NotImplementedError

    def close(self) -> None:
        """Release what the backend holds; called when no study of the logger is open any more."""


@dataclass
class _Study:
    """The worker's state for one open study."""

    name: str
    handle: Any = None
    opened: bool = False
    trials: dict[int, Any] = field(default_factory=dict)  # trial number -> run handle, while open
    paused: set[int] = field(default_factory=set)  # trials PAUSED at a rung: their run stays open for a resume
    dead: set[int] = field(default_factory=set)  # trials whose run could not be opened
    errors: int = 0
    first_error: str | None = None
    dropped: int = 0  # operations that could not be carried out


@dataclass(frozen=True, slots=True)
class _Op:
    kind: str  # "start", "created", "reported", "ended", "end", "stop"
    study: str
    payload: Any = None
    done: concurrent.futures.Future[_Study] | None = None


class _Worker:
    """One thread that carries queued operations out through a backend; it exits at a ``stop``."""

    def __init__(self, owner: str, make_backend: Callable[[], Backend]) -> None:
        self.owner = owner
        self.make_backend = make_backend
        self.backend: Backend | None = None
        self.queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self.stopping = False
        self.studies: dict[str, _Study] = {}
        self.thread = threading.Thread(target=self._work, name=f"hpt-async-{owner}", daemon=True)
        self.thread.start()

    def put(self, op: _Op) -> None:
        self.queue.put(op)

    def _work(self) -> None:
        while True:
            op = self.queue.get()
            try:
                if op.kind == "stop":
                    self._close()
                    return
                self._apply(op)
            except BaseException:  # a bug here must not leave a study-end hook waiting forever
                log.exception("the %s logger's worker failed", self.owner)
            finally:
                if op.done is not None and not op.done.done():
                    op.done.set_result(self.studies.pop(op.study, None) or _Study(op.study))

    def _close(self) -> None:
        if self.backend is not None:
            try:
                self.backend.close()
            except Exception:
                log.exception("closing the %s logger failed", self.owner)

    def _fail(self, study: _Study, what: str, exc: BaseException, *, dropped: int = 1) -> None:
        study.errors += 1
        study.dropped += dropped
        message = f"{what}: {type(exc).__name__}: {exc}"
        if study.first_error is None:
            study.first_error = message
            log.error(
                "%s logging of study %r failed while %s; the study goes on without it",
                self.owner,
                study.name,
                what,
                exc_info=exc,
            )

    def _call(self, study: _Study, what: str, function: Callable[..., Any], *args: Any) -> tuple[bool, Any]:
        try:
            return True, function(*args)
        except Exception as exc:
            self._fail(study, what, exc)
            return False, None

    def _apply(self, op: _Op) -> None:
        if op.kind == "start":
            params, space, when = op.payload
            study = self.studies[op.study] = _Study(op.study)
            try:
                if self.backend is None:
                    self.backend = self.make_backend()
                study.handle = self.backend.open_study(op.study, params, space, when)
                study.opened = True
            except Exception as exc:
                self._fail(study, "opening the study", exc)
            return
        study = self.studies.get(op.study)
        if study is None:  # never announced: nothing to attach to
            return
        if not study.opened:  # the study could not be opened: everything of it is lost
            study.dropped += 1
            if op.kind == "end" and op.done is not None:
                self.studies.pop(op.study, None)
                op.done.set_result(study)
            return
        backend = self.backend
        assert backend is not None
        if op.kind == "created":
            number, params, when = op.payload
            self._open_trial(study, number, params, when)
        elif op.kind == "reported":
            number, step, value, when = op.payload
            if number not in study.trials:
                study.dropped += 1
                return
            self._call(study, f"writing trial {number}'s report at step {step}", backend.report, study.handle,
                       study.trials[number], step, value, when)  # fmt: skip
        elif op.kind == "ended":
            self._end_trial(study, op.payload)
        elif op.kind == "end":
            result, when = op.payload
            for number in sorted(study.trials):
                # Still paused at the end, or running when the study closed without announcing their end.
                state = TrialState.PAUSED if number in study.paused else TrialState.CANCELLED
                record = _closing_record(number, state, result, when)
                self._call(study, f"closing trial {number}'s run", backend.end_trial, study.handle,
                           study.trials[number], record)  # fmt: skip
            study.trials.clear()
            study.paused.clear()
            self._call(study, "writing the study's summary", backend.end_study, study.handle, result, when)
            self.studies.pop(op.study, None)
            if op.done is not None:
                op.done.set_result(study)

    def _open_trial(self, study: _Study, number: int, params: Mapping[str, Any], when: float) -> None:
        if number in study.trials:  # a PAUSED trial that resumes: it goes on in the same run
            study.paused.discard(number)
            return
        assert self.backend is not None
        ok, handle = self._call(study, f"opening trial {number}'s run", self.backend.open_trial, study.handle, number,
                                params, when)  # fmt: skip
        if ok:
            study.trials[number] = handle
            study.dead.discard(number)
        else:
            study.dead.add(number)

    def _end_trial(self, study: _Study, record: TrialRecord) -> None:
        if record.number not in study.trials and record.number not in study.dead:
            # Never announced as created (a trial ended by its creation's interruption): open its run now.
            self._open_trial(study, record.number, record.params, record.started)
        if record.number not in study.trials:
            study.dropped += 1
            return
        if record.state is TrialState.PAUSED:  # may be resumed (promotion mode): its run stays open
            study.paused.add(record.number)
            return
        study.paused.discard(record.number)
        handle = study.trials.pop(record.number)
        assert self.backend is not None
        self._call(study, f"ending trial {record.number}'s run", self.backend.end_trial, study.handle, handle, record)


def _closing_record(number: int, state: TrialState, result: StudyResult, when: float) -> TrialRecord:
    """The record a run still open at the study's end is closed with (the study's own, else a bare one)."""
    from ..trial import TrialRecord

    for record in result.trials:
        if record.number == number and record.state is not TrialState.RUNNING:
            return record
    return TrialRecord(number=number, state=state, params={}, ended=when)


class TrackingLogger:
    """Base of the loggers that give each trial a run in an experiment tracker (see the module docstring).

    A subclass sets :attr:`name` and :attr:`error`, and implements
    :meth:`backend`, which returns a new :class:`Backend` (called in the
    worker thread, so the tracking library is imported there, when the
    first study starts).  ``drain_timeout`` bounds how long the study-end
    hook waits for the worker (``None``: no limit).
    """

    name: ClassVar[str] = "tracking"
    error: ClassVar[type[TrackingError]] = TrackingError

    def __init__(self, *, drain_timeout: float | None = 120.0) -> None:
        if drain_timeout is not None and (isinstance(drain_timeout, bool) or not drain_timeout > 0):
            raise ValueError(f"drain_timeout must be > 0 seconds or None, got {drain_timeout!r}")
        self.drain_timeout = drain_timeout
        self._worker: _Worker | None = None
        self._open_studies = 0
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def backend(self) -> Backend:
        """A new backend; called in the worker thread when the first study starts."""
        raise NotImplementedError

    def where(self) -> str:
        """Where the logger writes, for error messages."""
        return self.name

    def _put(self, op: _Op) -> None:
        worker = self._worker
        if worker is not None:
            worker.put(op)

    @hookimpl
    def hpt_study_started(self, event: StudyStarted, study: StudyView) -> None:
        params: dict[str, Any] = {"study": event.study, "direction": event.direction, "seed": event.seed}
        for attribute in ("strategy", "pruner", "max_trials", "timeout"):
            value = getattr(event, attribute, None)
            if value is not None:
                params[attribute] = value
        with self._lock:
            self._open_studies += 1
            if self._worker is None or self._worker.stopping:
                self._worker = _Worker(self.name, self.backend)
            self._worker.put(_Op("start", event.study, (params, event.space, event.time)))

    @hookimpl
    def hpt_trial_created(self, event: TrialCreated, study: StudyView) -> None:
        self._put(_Op("created", study.name, (event.number, event.params, event.time)))

    @hookimpl
    def hpt_trial_reported(self, event: TrialReported, study: StudyView) -> None:
        self._put(_Op("reported", study.name, (event.number, event.step, event.value, event.time)))

    @hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        self._put(_Op("ended", study.name, event.record))

    @hookimpl
    async def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        done: concurrent.futures.Future[_Study] = concurrent.futures.Future()
        with self._lock:
            worker = self._worker
            if worker is None:
                return
            worker.put(_Op("end", study.name, (event.result, event.time), done))
            self._open_studies -= 1
            if self._open_studies <= 0:
                self._open_studies = 0
                worker.stopping = True
                worker.put(_Op("stop", study.name))
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(4)  # never waits behind the tuner's own worker threads
        try:
            state = await anyio.to_thread.run_sync(done.result, self.drain_timeout, limiter=self._limiter)
        except concurrent.futures.TimeoutError:
            raise self.error(
                f"{self.name} logging of study {study.name!r} to {self.where()} did not finish within "
                f"{self.drain_timeout} s; the rest is written in the background while the process lives"
            ) from None
        if state.errors or state.dropped:
            raise self.error(
                f"{self.name} logging of study {study.name!r} to {self.where()} failed {state.errors} time(s), "
                f"{state.dropped} value(s) or event(s) not written; first error: {state.first_error}"
            )
