"""``loggers=["mlflow"]``: a study as an MLflow run, each trial as a run nested under it.

The MLflow client is synchronous and does I/O (a database commit, an HTTP
request) on every call, so the hooks never call it.  Each hook turns its
event into a small operation and puts it on a queue; one worker thread per
logger drains the queue, creates the runs and writes whatever accumulated
since its last pass with one ``log_batch`` call per run.  The event loop only
pays for a queue ``put``; under load the worker's batches simply grow.

When a study ends, its hook waits (in a thread, off the event loop) until the
worker has written every operation queued before it, so a study's runs are
complete and terminated once ``run()`` returns.
"""

from __future__ import annotations

import concurrent.futures
import logging
import os
import queue
import re
import threading
import warnings
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import anyio
import hpt_async as hpt
from hpt_async import StudyEnded, StudyStarted, StudyView, TrialCreated, TrialEnded, TrialReported, TrialState

__all__ = [
    "EXPERIMENT_ENV",
    "STATUS",
    "TRACKING_URI_ENV",
    "MlflowLogger",
    "MlflowLoggingError",
]

log = logging.getLogger("hpt_async_mlflow")

TRACKING_URI_ENV = "MLFLOW_TRACKING_URI"
"""MLflow's own variable for the tracking URI, used when none is given."""

EXPERIMENT_ENV = "MLFLOW_EXPERIMENT_NAME"
"""MLflow's own variable for the experiment name, used when none is given."""

STATUS: Mapping[TrialState, str] = {
    TrialState.COMPLETE: "FINISHED",
    TrialState.PRUNED: "KILLED",
    TrialState.FAILED: "FAILED",
    TrialState.CANCELLED: "KILLED",
    TrialState.LOST: "FAILED",
    TrialState.PAUSED: "KILLED",
}
"""The MLflow run status of a trial that ended in each state (PAUSED: still paused when the study ended)."""

# MLflow's limits (mlflow.utils.validation), repeated so that nothing here imports mlflow.
_MAX_PARAM_VALUE = 6000
_MAX_TAG_VALUE = 8000
_MAX_PARAMS_TAGS_PER_BATCH = 100
_MAX_ENTITIES_PER_BATCH = 1000
_BAD_KEY_CHARS = re.compile(r"[^\w.\- /]")  # what MLflow accepts in param, metric and tag names, colon aside


def _key(name: str) -> str:
    """``name`` as a valid MLflow key: characters MLflow refuses become ``_``."""
    key = _BAD_KEY_CHARS.sub("_", str(name)).strip("/") or "_"
    return key[:250]


def _text(value: Any, limit: int) -> str:
    """``value`` as the text MLflow stores, cut to ``limit`` characters."""
    text = value if isinstance(value, str) else repr(value) if not isinstance(value, (int, float)) else str(value)
    return text if len(text) <= limit else text[: limit - 3] + "..."


def _ms(seconds: float | None) -> int | None:
    return None if seconds is None else int(seconds * 1000)


class MlflowLoggingError(hpt.HptError, RuntimeError):
    """Raised by the study-end hook when some of a study could not be written to MLflow.

    The tuner isolates it like any logger error: the study is unaffected, the
    error is logged, and ``result.plugin_errors["mlflow.hpt_study_ended"]``
    counts it.
    """


# -- what the worker keeps ---------------------------------------------------------


@dataclass
class _Pending:
    """What one run has waiting to be written."""

    params: list[tuple[str, str]] = field(default_factory=list)
    tags: list[tuple[str, str]] = field(default_factory=list)
    metrics: list[tuple[str, float, int, int]] = field(default_factory=list)  # key, value, timestamp ms, step

    def __bool__(self) -> bool:
        return bool(self.params or self.tags or self.metrics)


@dataclass
class _Study:
    """The worker's state for one open study."""

    name: str
    experiment_id: str | None = None
    run_id: str | None = None  # the parent run
    trials: dict[int, str] = field(default_factory=dict)  # trial number -> run id, while open
    dead: set[int] = field(default_factory=set)  # trials whose run could not be created
    paused: set[int] = field(default_factory=set)  # trials waiting at a rung: their run stays open for a resume
    errors: int = 0
    first_error: str | None = None
    dropped: int = 0  # operations that could not be written
    names: tuple[str, ...] | None = None  # one MLflow metric name per objective, for a study with several


@dataclass(frozen=True, slots=True)
class _Op:
    kind: str  # "start", "created", "reported", "ended", "end", "stop"
    study: str
    payload: Any = None
    done: concurrent.futures.Future[_Study] | None = None


class MlflowLogger:
    """Logs each study as an MLflow run and each of its trials as a nested run.

    ``tracking_uri`` is where runs go; when ``None`` it is MLflow's own
    choice: the ``MLFLOW_TRACKING_URI`` environment variable, else
    MLflow's default (``sqlite:///mlflow.db`` in the working directory for
    MLflow 3; the distribution depends on ``sqlalchemy`` and ``alembic``
    for it).  ``http(s):`` URIs reach a tracking server; a ``file:`` store
    opens only with ``MLFLOW_ALLOW_FILE_STORE=true`` (MLflow 3.7 and
    later).  ``experiment`` names the MLflow experiment, created when
    missing; when ``None`` it is ``MLFLOW_EXPERIMENT_NAME``, else the
    study's name.  ``metric`` names the objective's value in MLflow and
    ``intermediate_metric`` the reported values (default
    ``"intermediate_" + metric``).  In a study with several objectives each
    COMPLETE trial also logs every objective's value under its name
    (``metric_names`` of the Tuner, else ``<metric>_0``, ``<metric>_1``,
    ...), on its own run and on the study's run at step = trial number; the
    study's run gets the tag ``hpt.best_trials`` (its Pareto front) instead
    of the best-trial entries.  A trial with constraints logs them as
    ``constraint_0``, ``constraint_1``, ... and the tag ``hpt.feasible``.

    The study's run (named after the study, tag ``hpt.role=study``) gets the
    params ``study``, ``direction``, ``seed`` (and ``strategy``,
    ``pruner``, ``max_trials`` and ``timeout`` when the start event carries
    them and they are set) and, as the study goes,
    the metric ``metric`` of every COMPLETE trial at step = trial number.
    When the study ends it gets ``best_<metric>``, the best params as
    ``best.<name>`` params, counts of trials per state as
    ``trials_<state>`` metrics, the tags ``hpt.reason`` and
    ``hpt.best_trial``, and the status FINISHED (KILLED when the run was
    cancelled, FAILED when it stopped at ``max_failures``).

    Each trial's run (named ``trial-<number>``, tag
    ``mlflow.parentRunId`` = the study's run, ``hpt.role=trial``) gets the
    trial's configuration as params, every report as
    ``intermediate_metric`` at its step, the final value as ``metric`` (for
    COMPLETE and PRUNED trials), the tags ``hpt.study``, ``hpt.trial``,
    ``hpt.state`` and, for a failed trial, ``hpt.error``, and the status of
    :data:`STATUS`: FINISHED for COMPLETE, KILLED for PRUNED and CANCELLED,
    FAILED for FAILED.  A PAUSED trial's run stays open (tag
    ``hpt.state=paused``) so that a resumed trial logs to the same run; one
    still paused when the study ends is closed KILLED.  Start and end times
    are the trial's own.

    Writing happens in one worker thread, in batches (see the module
    docstring).  When the study ends, its hook waits for everything queued
    to be written, at most ``drain_timeout`` seconds (``None`` for no
    limit): the end of a study, and a Ctrl-C during it, are not held up for
    minutes by a tracking server that does not answer (MLflow's own HTTP
    client retries for about four minutes; ``MLFLOW_HTTP_REQUEST_MAX_RETRIES``
    shortens that).  An MLflow error never stops the study: it is logged once with
    its traceback on the ``hpt_async_mlflow`` logger, what could not be
    written is skipped, and the study-end hook raises
    :class:`MlflowLoggingError` saying how much was lost, which the tuner
    counts in ``result.plugin_errors``.
    """

    name = "mlflow"

    def __init__(
        self,
        tracking_uri: str | None = None,
        experiment: str | None = None,
        *,
        metric: str = "value",
        intermediate_metric: str | None = None,
        drain_timeout: float | None = 120.0,
    ) -> None:
        if tracking_uri is None:
            tracking_uri = os.environ.get(TRACKING_URI_ENV) or None
        if experiment is None:
            experiment = os.environ.get(EXPERIMENT_ENV) or None
        for label, value in (("metric", metric), ("intermediate_metric", intermediate_metric)):
            if value is not None and (not isinstance(value, str) or not value or _key(value) != value):
                raise ValueError(
                    f"{label} must be a non-empty MLflow name (letters, digits, _ . - / and spaces), got {value!r}"
                )
        if drain_timeout is not None and not drain_timeout > 0:
            raise ValueError(f"drain_timeout must be > 0 seconds or None, got {drain_timeout!r}")
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.metric = metric
        self.intermediate_metric = intermediate_metric or f"intermediate_{metric}"
        self.drain_timeout = drain_timeout
        self._worker: _Worker | None = None
        self._open_studies = 0
        self._lock = threading.Lock()
        self._limiter: anyio.CapacityLimiter | None = None

    def __repr__(self) -> str:
        return f"MlflowLogger(tracking_uri={self.tracking_uri!r}, experiment={self.experiment!r})"

    # -- hooks: each turns its event into one queued operation and returns --------------

    def _put(self, op: _Op) -> None:
        worker = self._worker
        if worker is not None:
            worker.put(op)

    @hpt.hookimpl
    def hpt_study_started(self, event: StudyStarted, study: StudyView) -> None:
        params = {"study": event.study, "direction": event.direction, "seed": event.seed}
        for attribute in ("strategy", "pruner", "max_trials", "timeout"):
            value = getattr(event, attribute, None)  # fields that not every version of the event has
            if value is not None:
                params[attribute] = value
        with self._lock:
            self._open_studies += 1
            if self._worker is None or self._worker.stopping:
                # The first study, or the previous worker is on its way out: a fresh thread and queue.
                self._worker = _Worker(self.tracking_uri, self.experiment, self.metric, self.intermediate_metric)
            self._worker.put(_Op("start", event.study, (params, event.time, _objective_names(self.metric, study))))

    @hpt.hookimpl
    def hpt_trial_created(self, event: TrialCreated, study: StudyView) -> None:
        self._put(_Op("created", study.name, (event.number, event.params, event.time)))

    @hpt.hookimpl
    def hpt_trial_reported(self, event: TrialReported, study: StudyView) -> None:
        self._put(_Op("reported", study.name, (event.number, event.step, event.value, event.time)))

    @hpt.hookimpl
    def hpt_trial_ended(self, event: TrialEnded, study: StudyView) -> None:
        self._put(_Op("ended", study.name, event.record))

    @hpt.hookimpl
    async def hpt_study_ended(self, event: StudyEnded, study: StudyView) -> None:
        done: concurrent.futures.Future[_Study] = concurrent.futures.Future()
        with self._lock:
            worker = self._worker
            if worker is None:
                return
            worker.put(_Op("end", study.name, (event.result, event.time), done))
            self._open_studies -= 1
            if self._open_studies <= 0:
                # No study is open: the thread ends once it has written everything.
                self._open_studies = 0
                worker.stopping = True
                worker.put(_Op("stop", study.name))
        if self._limiter is None:
            self._limiter = anyio.CapacityLimiter(4)  # never waits behind the tuner's own worker threads
        try:
            state = await anyio.to_thread.run_sync(done.result, self.drain_timeout, limiter=self._limiter)
        except concurrent.futures.TimeoutError:
            raise MlflowLoggingError(
                f"MLflow logging of study {study.name!r} to {_where(self.tracking_uri)} did not finish within "
                f"{self.drain_timeout} s; the rest is written in the background while the process lives"
            ) from None
        if state.errors:
            raise MlflowLoggingError(
                f"MLflow logging of study {study.name!r} to {_where(self.tracking_uri)} failed "
                f"{state.errors} time(s), {state.dropped} value(s) or event(s) not written; "
                f"first error: {state.first_error}"
            )


def _where(tracking_uri: str | None) -> str:
    return repr(tracking_uri) if tracking_uri else "MLflow's default tracking URI"


def _objective_names(metric: str, study: StudyView) -> tuple[str, ...] | None:
    """The MLflow metric name of each objective of a study with several: its metric name, else ``<metric>_<i>``."""
    directions = getattr(study, "directions", ())
    if len(directions) < 2:
        return None
    names = getattr(study, "metric_names", None)
    if names:
        return tuple(_key(n) for n in names)
    return tuple(f"{metric}_{i}" for i in range(len(directions)))


class _Worker:
    """One thread that drains a queue of operations into MLflow; it exits at a ``stop`` operation."""

    def __init__(self, tracking_uri: str | None, experiment: str | None, metric: str, intermediate_metric: str) -> None:
        self.tracking_uri = tracking_uri
        self.experiment = experiment
        self.metric = metric
        self.intermediate_metric = intermediate_metric
        self.queue: queue.SimpleQueue[_Op] = queue.SimpleQueue()
        self.stopping = False  # a stop operation is queued: new studies need a new worker
        self._client: Any = None
        self._studies: dict[str, _Study] = {}
        self.thread = threading.Thread(target=self._work, name="hpt-async-mlflow", daemon=True)
        self.thread.start()

    def put(self, op: _Op) -> None:
        self.queue.put(op)

    def _where(self) -> str:
        return _where(self.tracking_uri)

    def _work(self) -> None:
        """Drain the queue until a ``stop`` operation; write each drained lot in batches."""
        while True:
            ops = [self.queue.get()]
            while True:
                try:
                    ops.append(self.queue.get_nowait())
                except queue.Empty:
                    break
            stop = False
            try:
                stop = self._apply(ops)
            except BaseException:  # a bug here must not leave a study-end hook waiting forever
                log.exception("the MLflow logger's worker failed")
            finally:
                for op in ops:
                    if op.done is not None and not op.done.done():
                        op.done.set_result(self._studies.pop(op.study, None) or _Study(op.study))
            if stop:
                return

    def _apply(self, ops: list[_Op]) -> bool:
        """Carry out ``ops`` in order: runs are created at once, everything else is written at the end."""
        pending: dict[str, _Pending] = {}
        owners: dict[str, _Study] = {}  # run id -> its study, to charge errors
        terminate: list[tuple[str, str, int | None]] = []  # (run id, status, end time ms), in order
        finished: list[tuple[_Op, _Study]] = []
        stop = False

        def run_pending(run_id: str, study: _Study) -> _Pending:
            owners[run_id] = study
            p = pending.get(run_id)
            if p is None:
                p = pending[run_id] = _Pending()
            return p

        for op in ops:
            if op.kind == "stop":
                stop = True
                continue
            if op.kind == "start":
                self._start_study(op, run_pending)
                continue
            study = self._studies.get(op.study)
            if study is None:  # a study that was never announced; nothing to attach to
                continue
            if op.kind == "end":
                self._end_study(study, op, run_pending, terminate)
                finished.append((op, study))
                continue
            if study.run_id is None:  # the study's run could not be created: everything of it is lost
                study.dropped += 1
                continue
            if op.kind == "created":
                number, params, when = op.payload
                self._create_trial(study, number, params, when, run_pending)
            elif op.kind == "reported":
                number, step, value, when = op.payload
                run_id = study.trials.get(number)
                if run_id is None:
                    study.dropped += 1
                    continue
                run_pending(run_id, study).metrics.append((self.intermediate_metric, value, _ms(when) or 0, step))
            elif op.kind == "ended":
                self._end_trial(study, op.payload, run_pending, terminate)

        for run_id, p in pending.items():
            if p:
                self._write(run_id, p, owners[run_id])
        for run_id, status, end_ms in terminate:
            self._call(owners[run_id], f"terminating run {run_id}", self._client.set_terminated, run_id, status, end_ms)
        for op, study in finished:
            self._studies.pop(study.name, None)
            if op.done is not None:
                op.done.set_result(study)
        return stop

    def _fail(self, study: _Study, what: str, exc: BaseException, *, dropped: int = 1) -> None:
        study.errors += 1
        study.dropped += dropped
        message = f"{what}: {type(exc).__name__}: {exc}"
        if study.first_error is None:
            study.first_error = message
            log.error(
                "MLflow logging of study %r to %s failed while %s; the study goes on without it",
                study.name,
                self._where(),
                what,
                exc_info=exc,
            )

    def _call(self, study: _Study, what: str, function: Any, *args: Any, **kwargs: Any) -> Any:
        try:
            return function(*args, **kwargs)
        except Exception as exc:
            self._fail(study, what, exc)
            return None

    def _connect(self) -> Any:
        if self._client is None:
            # MLflow 3 on SQLAlchemy 2.1 warns about a loader option MLflow itself uses; only that one is hushed.
            warnings.filterwarnings(
                "ignore", message=r".*``noload`` loader strategy", category=DeprecationWarning, module=r"mlflow\."
            )
            from mlflow import MlflowClient

            self._client = MlflowClient(tracking_uri=self.tracking_uri)
        return self._client

    def _start_study(self, op: _Op, run_pending: Any) -> None:
        params, when, names = op.payload
        study = self._studies[op.study] = _Study(op.study, names=names)
        try:
            client = self._connect()
            name = self.experiment or op.study
            experiment = client.get_experiment_by_name(name)
            if experiment is not None:
                study.experiment_id = experiment.experiment_id
            else:
                try:
                    study.experiment_id = client.create_experiment(name)
                except Exception:  # another process may have created it meanwhile
                    experiment = client.get_experiment_by_name(name)
                    if experiment is None:
                        raise
                    study.experiment_id = experiment.experiment_id
            run = client.create_run(
                study.experiment_id,
                start_time=_ms(when),
                run_name=op.study,
                tags={"hpt.role": "study", "hpt.study": _text(op.study, _MAX_TAG_VALUE)},
            )
        except Exception as exc:
            self._fail(study, "opening the study's run", exc)
            return
        study.run_id = run.info.run_id
        p = run_pending(study.run_id, study)
        p.params.extend((key, _text(value, _MAX_PARAM_VALUE)) for key, value in params.items())

    def _create_trial(
        self, study: _Study, number: int, params: Mapping[str, Any], when: float, run_pending: Any
    ) -> None:
        tags = {
            "mlflow.parentRunId": study.run_id,
            "hpt.role": "trial",
            "hpt.study": _text(study.name, _MAX_TAG_VALUE),
            "hpt.trial": str(number),
            "hpt.state": TrialState.RUNNING.value,
        }
        run = self._call(
            study,
            f"creating the run of trial {number}",
            self._client.create_run,
            study.experiment_id,
            start_time=_ms(when),
            run_name=f"trial-{number}",
            tags=tags,
        )
        if run is None:
            study.dead.add(number)
            return
        run_id = study.trials[number] = run.info.run_id
        run_pending(run_id, study).params.extend((_key(k), _text(v, _MAX_PARAM_VALUE)) for k, v in params.items())

    def _end_trial(self, study: _Study, record: hpt.TrialRecord, run_pending: Any, terminate: list) -> None:
        # A PAUSED trial may be resumed (promotion mode): its run stays open and takes its later reports.
        paused = record.state is TrialState.PAUSED
        take = study.trials.get if paused else study.trials.pop
        run_id = take(record.number, None)
        if run_id is None:
            if record.number not in study.dead:
                # Never announced as created (a trial ended by its creation's interruption): make its run now.
                self._create_trial(study, record.number, record.params, record.started, run_pending)
                run_id = take(record.number, None)
            if run_id is None:
                study.dropped += 1
                return
        p = run_pending(run_id, study)
        p.tags.append(("hpt.state", record.state.value))
        if paused:
            study.paused.add(record.number)
            return
        study.paused.discard(record.number)
        end_ms = _ms(record.ended)
        when = end_ms if end_ms is not None else _ms(record.started) or 0
        if record.error is not None:
            p.tags.append(("hpt.error", _text(record.error, _MAX_TAG_VALUE)))
        if record.retry_of is not None:
            p.tags.append(("hpt.retry_of", str(record.retry_of)))
        if record.value is not None and record.state in (TrialState.COMPLETE, TrialState.PRUNED):
            last = record.last_report
            p.metrics.append((self.metric, record.value, when, 0 if last is None else last[0]))
            if record.state is TrialState.COMPLETE and study.run_id is not None:
                run_pending(study.run_id, study).metrics.append((self.metric, record.value, when, record.number))
        if record.values is not None and study.names is not None and record.state is TrialState.COMPLETE:
            step = record.number
            for name, value in zip(study.names, record.values, strict=False):
                p.metrics.append((name, value, when, 0))
                if study.run_id is not None:
                    run_pending(study.run_id, study).metrics.append((name, value, when, step))
        if record.constraints is not None:
            for i, c in enumerate(record.constraints):
                p.metrics.append((f"constraint_{i}", c, when, 0))
            p.tags.append(("hpt.feasible", str(record.feasible).lower()))
        terminate.append((run_id, STATUS.get(record.state, "FAILED"), end_ms))

    def _end_study(self, study: _Study, op: _Op, run_pending: Any, terminate: list) -> None:
        result, when = op.payload
        if study.run_id is None:
            return
        end_ms = _ms(when)
        for number, run_id in sorted(study.trials.items()):
            # Still paused at the end, or running when the study closed without announcing their end (cancelled).
            state = TrialState.PAUSED if number in study.paused else TrialState.CANCELLED
            p = run_pending(run_id, study)
            p.tags.append(("hpt.state", state.value))
            terminate.append((run_id, STATUS[state], end_ms))
            del study.trials[number]
        study.paused.clear()
        p = run_pending(study.run_id, study)
        p.tags.append(("hpt.reason", str(result.reason)))
        counts: dict[str, int] = {}
        for record in result.trials:
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        for state, n in sorted(counts.items()):
            p.metrics.append((f"trials_{state}", float(n), end_ms or 0, 0))
        front = result.best_trials
        if len(result.directions) > 1:
            p.tags.append(("hpt.best_trials", _text(",".join(str(t.number) for t in front), _MAX_TAG_VALUE)))
        best = front[0] if front and len(result.directions) == 1 else None
        if best is not None and best.value is not None:
            p.metrics.append((f"best_{self.metric}", best.value, end_ms or 0, 0))
            p.tags.append(("hpt.best_trial", str(best.number)))
            p.params.extend((_key(f"best.{k}"), _text(v, _MAX_PARAM_VALUE)) for k, v in best.params.items())
        status = {"cancelled": "KILLED", "max_failures": "FAILED"}.get(str(result.reason), "FINISHED")
        terminate.append((study.run_id, status, end_ms))

    def _write(self, run_id: str, p: _Pending, study: _Study) -> None:
        from mlflow.entities import Metric, Param, RunTag

        for params, tags, metrics in _chunks(p):
            size = len(params) + len(tags) + len(metrics)
            try:
                self._client.log_batch(
                    run_id,
                    metrics=[Metric(k, v, ts, step) for k, v, ts, step in metrics],
                    params=[Param(k, v) for k, v in params],
                    tags=[RunTag(k, v) for k, v in tags],
                )
            except Exception as exc:
                self._fail(study, f"writing {size} value(s) to run {run_id}", exc, dropped=size)


def _chunks(p: _Pending) -> Iterator[tuple[list, list, list]]:
    """``p`` cut into pieces that respect MLflow's limits on one ``log_batch`` call."""
    params, tags, metrics = p.params, p.tags, p.metrics
    i = j = k = 0
    while i < len(params) or j < len(tags) or k < len(metrics):
        ps = params[i : i + _MAX_PARAMS_TAGS_PER_BATCH]
        ts = tags[j : j + _MAX_PARAMS_TAGS_PER_BATCH]
        ms = metrics[k : k + _MAX_ENTITIES_PER_BATCH - len(ps) - len(ts)]
        i, j, k = i + len(ps), j + len(ts), k + len(ms)
        yield ps, ts, ms
