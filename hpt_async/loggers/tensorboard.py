"""``loggers=["tensorboard"]``: TensorBoard event files, one run per trial, with the HParams view.

Needs the ``tensorboard`` package (``pip install hpt-async[tensorboard]``),
imported by the logger's worker thread when a study starts; nothing here
needs TensorFlow.  See :class:`TensorBoardLogger`.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..trial import TrialState
from ._tracking import Backend, TrackingError, TrackingLogger

if TYPE_CHECKING:
    from ..result import StudyResult
    from ..space import Space
    from ..trial import TrialRecord

__all__ = ["LOGDIR_ENV", "STATUS", "TensorBoardLogger", "TensorBoardLoggingError"]

LOGDIR_ENV = "HPT_ASYNC_TENSORBOARD_DIR"
"""The environment variable naming the log directory when none is given (else ``runs``)."""

STATUS: Mapping[TrialState, str] = {
    TrialState.COMPLETE: "STATUS_SUCCESS",
    TrialState.FAILED: "STATUS_FAILURE",
    TrialState.LOST: "STATUS_FAILURE",
    TrialState.PRUNED: "STATUS_UNKNOWN",
    TrialState.CANCELLED: "STATUS_UNKNOWN",
    TrialState.PAUSED: "STATUS_UNKNOWN",
}
"""The HParams session status of a trial that ended in each state (the view has no "stopped early")."""

_BAD_PATH_CHARS = re.compile(r"[^\w.\-]")


def _dirname(name: str) -> str:
    """``name`` as one safe path component."""
    return _BAD_PATH_CHARS.sub("_", name).strip(".") or "_"


class TensorBoardLoggingError(TrackingError):
    """Raised by the study-end hook when some of a study could not be written (counted, the study goes on)."""


class TensorBoardLogger(TrackingLogger):
    """Writes each study as TensorBoard runs: ``<logdir>/<study>/`` and one ``trial-<number>/`` per trial.

    ``logdir`` is the directory to point ``tensorboard --logdir`` at: the
    argument, else the ``HPT_ASYNC_TENSORBOARD_DIR`` variable, else
    ``runs``.  ``metric`` names the objective's value and
    ``intermediate_metric`` the reported values (default
    ``"intermediate_" + metric``).

    Each trial's run (``<logdir>/<study>/trial-<number>``) holds every report
    as the scalar ``intermediate_metric`` at its step, the final value as
    ``metric`` at the last reported step (COMPLETE and PRUNED trials), and
    the HParams session: the trial's configuration at its start and, at its
    end, the status of :data:`STATUS` (SUCCESS for COMPLETE, FAILURE for
    FAILED, UNKNOWN for PRUNED and CANCELLED).  The study's run
    (``<logdir>/<study>``) holds the HParams experiment (each parameter with
    its domain: an interval for ``Float`` and ``Int``, the values for
    ``Choice``, and both metrics), ``metric`` of each COMPLETE trial at step =
    trial number, and at the end ``best_<metric>``.  In TensorBoard's HParams
    tab, each trial is a row with its parameters, value and status.  A PAUSED
    trial's run stays open so that a resumed trial writes on; one still paused
    when the study ends is closed with UNKNOWN.

    Writing happens in one worker thread; an error is logged once per study
    on the ``hpt_async.loggers`` logger, counted, and the study-end hook
    raises :class:`TensorBoardLoggingError` (counted in
    ``result.plugin_errors``): the study goes on.
    """

    name = "tensorboard"
    error = TensorBoardLoggingError

    def __init__(
        self,
        logdir: str | os.PathLike[str] | None = None,
        *,
        metric: str = "value",
        intermediate_metric: str | None = None,
        drain_timeout: float | None = 120.0,
    ) -> None:
        super().__init__(drain_timeout=drain_timeout)
        for label, value in (("metric", metric), ("intermediate_metric", intermediate_metric)):
            if value is not None and (not isinstance(value, str) or not value.strip()):
                raise ValueError(f"{label} must be a non-empty name, got {value!r}")
        if metric == intermediate_metric:
            raise ValueError("metric and intermediate_metric must differ")
        self.logdir = Path(logdir if logdir is not None else os.environ.get(LOGDIR_ENV) or "runs")
        self.metric = metric
        self.intermediate_metric = intermediate_metric or f"intermediate_{metric}"

    def __repr__(self) -> str:
        return f"TensorBoardLogger(logdir={str(self.logdir)!r})"

    def where(self) -> str:
        return repr(str(self.logdir))

    def backend(self) -> Backend:
        return _TensorBoard(self.logdir, self.metric, self.intermediate_metric)


class _Run:
    """One event file being written, and the last step written to it."""

    def __init__(self, path: Path) -> None:
        from tensorboard.summary.writer.event_file_writer import EventFileWriter

        path.mkdir(parents=True, exist_ok=True)
        self.writer = EventFileWriter(str(path), max_queue_size=100, flush_secs=5)
        self.last_step = 0

    def write(self, when: float, step: int, values: list[Any]) -> None:
        from tensorboard.compat.proto import event_pb2, summary_pb2

        self.writer.add_event(event_pb2.Event(wall_time=when, step=step, summary=summary_pb2.Summary(value=values)))

    def scalar(self, tag: str, value: float, step: int, when: float) -> None:
        from tensorboard.compat.proto import summary_pb2

        self.write(when, step, [summary_pb2.Summary.Value(tag=tag, simple_value=value)])

    def hparams(self, tag: str, data: Any, when: float) -> None:
        from tensorboard.compat.proto import summary_pb2
        from tensorboard.plugins.hparams import metadata

        value = summary_pb2.Summary.Value(
            tag=tag, metadata=metadata.create_summary_metadata(data), tensor=metadata.NULL_TENSOR
        )
        self.write(when, 0, [value])

    def close(self) -> None:
        self.writer.close()


def _hparam_value(value: Any) -> Any:
    """A parameter's value as the protobuf ``Value`` the HParams view shows."""
    from google.protobuf import struct_pb2

    if isinstance(value, bool):
        return struct_pb2.Value(bool_value=value)
    if isinstance(value, (int, float)) and math.isfinite(value):
        return struct_pb2.Value(number_value=float(value))
    return struct_pb2.Value(string_value=value if isinstance(value, str) else repr(value))


class _TensorBoard(Backend):
    def __init__(self, logdir: Path, metric: str, intermediate_metric: str) -> None:
        try:
            import tensorboard.plugins.hparams.api_pb2  # noqa: F401
        except ImportError as exc:
            raise ImportError(
                f"the tensorboard logger needs TensorBoard: pip install hpt-async[tensorboard] ({exc})"
            ) from None

        self.logdir = logdir
        self.metric = metric
        self.intermediate_metric = intermediate_metric

    def open_study(self, study: str, params: Mapping[str, Any], space: Space, when: float) -> _Run:
        from google.protobuf import struct_pb2
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        from ..space import Choice, Float, Int

        infos = []
        for name, domain in space.items():
            info = api_pb2.HParamInfo(name=name)
            if isinstance(domain, (Float, Int)):
                info.type = api_pb2.DATA_TYPE_FLOAT64
                info.domain_interval.min_value = float(domain.low)
                info.domain_interval.max_value = float(domain.high)
            elif isinstance(domain, Choice):
                values = [_hparam_value(v) for v in domain.values]
                kinds = {v.WhichOneof("kind") for v in values}
                if len(kinds) == 1:
                    info.type = {
                        "bool_value": api_pb2.DATA_TYPE_BOOL,
                        "number_value": api_pb2.DATA_TYPE_FLOAT64,
                        "string_value": api_pb2.DATA_TYPE_STRING,
                    }[kinds.pop()]
                    info.domain_discrete.CopyFrom(struct_pb2.ListValue(values=values))
            infos.append(info)
        metrics = [
            api_pb2.MetricInfo(name=api_pb2.MetricName(tag=tag), display_name=tag)
            for tag in (self.metric, self.intermediate_metric)
        ]
        experiment = api_pb2.Experiment(
            name=study,
            description=", ".join(f"{k}={v}" for k, v in params.items()),
            time_created_secs=when,
            hparam_infos=infos,
            metric_infos=metrics,
        )
        run = _Run(self.logdir / _dirname(study))
        run.hparams(metadata.EXPERIMENT_TAG, plugin_data_pb2.HParamsPluginData(experiment=experiment), when)
        return run

    def open_trial(self, study: _Run, number: int, params: Mapping[str, Any], when: float) -> _Run:
        from tensorboard.plugins.hparams import metadata, plugin_data_pb2

        run = _Run(Path(study.writer.get_logdir()) / f"trial-{number}")
        start = plugin_data_pb2.SessionStartInfo(group_name=f"trial-{number}", start_time_secs=when)
        for name, value in params.items():
            start.hparams[name].CopyFrom(_hparam_value(value))
        run.hparams(metadata.SESSION_START_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_start_info=start), when)
        return run

    def report(self, study: _Run, trial: _Run, step: int, value: float, when: float) -> None:
        trial.scalar(self.intermediate_metric, value, step, when)
        trial.last_step = max(trial.last_step, step)

    def end_trial(self, study: _Run, trial: _Run, record: TrialRecord) -> None:
        from tensorboard.plugins.hparams import api_pb2, metadata, plugin_data_pb2

        when = record.ended if record.ended is not None else record.started
        try:
            if record.value is not None and record.state in (TrialState.COMPLETE, TrialState.PRUNED):
                last = record.last_report
                trial.scalar(self.metric, record.value, trial.last_step if last is None else last[0], when)
                if record.state is TrialState.COMPLETE:
                    study.scalar(self.metric, record.value, record.number, when)
            status = api_pb2.Status.Value(STATUS.get(record.state, "STATUS_UNKNOWN"))
            end = plugin_data_pb2.SessionEndInfo(status=status, end_time_secs=when)
            trial.hparams(metadata.SESSION_END_INFO_TAG, plugin_data_pb2.HParamsPluginData(session_end_info=end), when)
        finally:
            trial.close()

    def end_study(self, study: _Run, result: StudyResult, when: float) -> None:
        try:
            best = _single_best(result)
            if best is not None and best.value is not None:
                study.scalar(f"best_{self.metric}", best.value, best.number, when)
        finally:
            study.close()


def _single_best(result: StudyResult) -> TrialRecord | None:
    """The best trial of a study with one objective; ``None`` with several (their best is a front)."""
    front = result.best_trials
    return front[0] if front and len(result.directions) == 1 else None


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``tensorboard``."""
    register("logger", "tensorboard", TensorBoardLogger)
