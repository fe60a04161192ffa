"""``loggers=["wandb"]``: Weights & Biases runs, one per trial, grouped under the study.

Needs the ``wandb`` package (``pip install hpt-async[wandb]``), imported by
the logger's worker thread when a study starts.  See :class:`WandbLogger`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from ..hookspecs import hookimpl
from ..trial import TrialState
from ._tracking import Backend, TrackingError, TrackingLogger

if TYPE_CHECKING:
    from ..result import StudyResult
    from ..space import Space
    from ..trial import TrialRecord

__all__ = ["EXIT_CODE", "WandbLogger", "WandbLoggingError"]

EXIT_CODE: Mapping[TrialState, int] = {
    TrialState.COMPLETE: 0,
    TrialState.PRUNED: 0,
    TrialState.PAUSED: 0,
    TrialState.CANCELLED: 0,
    TrialState.FAILED: 1,
    TrialState.LOST: 1,
}
"""The exit code a trial's run finishes with: W&B shows 0 as finished, anything else as failed."""


class WandbLoggingError(TrackingError):
    """Raised by the study-end hook when some of a study could not be written (counted, the study goes on)."""


def _plain(value: Any) -> Any:
    """A parameter's value as W&B's config takes it (JSON): numbers, strings and booleans as they are."""
    if value is None or isinstance(value, (bool, int, str)):
        return value
    if isinstance(value, float):
        return value if math.isfinite(value) else repr(value)
    return repr(value)


class WandbLogger(TrackingLogger):
    """Logs each trial as a W&B run, grouped under the study (``group=<study>``).

    ``project`` and ``entity`` say where runs go (``None``: W&B's own
    defaults, ``WANDB_PROJECT`` and ``WANDB_ENTITY``, else the study's name
    as the project); ``mode`` is W&B's (``"online"``, ``"offline"``,
    ``"disabled"``; ``None``: ``WANDB_MODE``, else online); ``dir`` is where
    W&B keeps its files (``None``: ``WANDB_DIR``, else the working
    directory).  ``metric`` names the objective's value and
    ``intermediate_metric`` the reported values (default
    ``"intermediate_" + metric``); ``init`` is passed on to every
    ``wandb.init`` (``tags``, ``settings``, ...).

    Each trial's run (``job_type="trial"``, named ``<study>-trial-<number>``)
    gets the trial's configuration as its config, every report as
    ``intermediate_metric`` against the custom x-axis ``step`` (so steps
    need not arrive in order), and in its summary the final value as
    ``metric`` (COMPLETE and PRUNED trials), ``state``, ``trial`` and, for a
    failed trial, ``error``.  It finishes with the exit code of
    :data:`EXIT_CODE` (failed for FAILED and LOST).  The study's own run
    (``job_type="study"``, named after the study, in the same group) gets the
    study's settings as its config, ``metric`` of each COMPLETE trial against
    the x-axis ``trial``, and at the end ``best_<metric>``, ``best_trial``,
    ``best.<name>`` for each best parameter (with several objectives
    ``best_trials``, the numbers of the Pareto front, instead) and
    ``trials_<state>`` counts in its summary.  A PAUSED trial's run stays open so that a resumed trial
    logs on; one still paused when the study ends is finished.  In offline
    mode the run files are complete once W&B's service process ends (at
    exit, or on ``wandb.teardown()``); the logger leaves that service to
    the program, which may have runs of its own.

    Each ``wandb.init`` takes a moment (W&B starts a run in its service
    process), so this logger suits trials that last seconds or more; all of
    it happens in the logger's worker thread, never on the event loop.  A W&B
    error is logged once per study on the ``hpt_async.loggers`` logger,
    counted, and the study-end hook raises :class:`WandbLoggingError`
    (counted in ``result.plugin_errors``): the study goes on.
    """

    name = "wandb"
    error = WandbLoggingError

    def __init__(
        self,
        project: str | None = None,
        entity: str | None = None,
        *,
        mode: str | None = None,
        dir: str | os.PathLike[str] | None = None,
        metric: str = "value",
        intermediate_metric: str | None = None,
        init: Mapping[str, Any] | None = None,
        drain_timeout: float | None = 120.0,
    ) -> None:
        super().__init__(drain_timeout=drain_timeout)
        for label, value in (("metric", metric), ("intermediate_metric", intermediate_metric)):
            if value is not None and (not isinstance(value, str) or not value.strip() or value in ("step", "trial")):
                raise ValueError(f"{label} must be a non-empty name other than 'step' and 'trial', got {value!r}")
        if mode is not None and mode not in ("online", "offline", "disabled"):
            raise ValueError(f"mode must be 'online', 'offline', 'disabled' or None, got {mode!r}")
        reserved = {"project", "entity", "mode", "dir", "group", "job_type", "name", "config", "reinit"}
        clash = sorted(reserved & set(init or {}))
        if clash:
            raise ValueError(f"init must not set {', '.join(clash)}: the logger sets them")
        self.project = project
        self.entity = entity
        self.mode = mode
        self.dir = None if dir is None else os.fspath(dir)
        self.metric = metric
        self.intermediate_metric = intermediate_metric or f"intermediate_{metric}"
        self.init = dict(init or {})

    def __repr__(self) -> str:
        return f"WandbLogger(project={self.project!r}, mode={self.mode!r})"

    def where(self) -> str:
        return f"W&B project {self.project!r}" if self.project else "W&B"

    def backend(self) -> Backend:
        return _Wandb(self)


class _Wandb(Backend):
    def __init__(self, owner: WandbLogger) -> None:
        try:
            import wandb
        except ImportError as exc:
            raise ImportError(f"the wandb logger needs W&B: pip install hpt-async[wandb] ({exc})") from None
        self.wandb = wandb
        self.owner = owner

    def _init(self, study: str, **kwargs: Any) -> Any:
        owner = self.owner
        options: dict[str, Any] = {"settings": self.wandb.Settings(silent=True, console="off"), **owner.init}
        project = owner.project or os.environ.get("WANDB_PROJECT") or study
        return self.wandb.init(
            project=project,
            entity=owner.entity,
            mode=owner.mode,
            dir=owner.dir,
            group=study,
            reinit="create_new",
            **kwargs,
            **options,
        )

    def open_study(self, study: str, params: Mapping[str, Any], space: Space, when: float) -> Any:
        run = self._init(study, job_type="study", name=study, config={k: _plain(v) for k, v in params.items()})
        run.define_metric("trial")
        run.define_metric(self.owner.metric, step_metric="trial")
        return run

    def open_trial(self, study: Any, number: int, params: Mapping[str, Any], when: float) -> Any:
        name = study.group or study.name
        run = self._init(
            name, job_type="trial", name=f"{name}-trial-{number}", config={k: _plain(v) for k, v in params.items()}
        )
        run.define_metric("step")
        run.define_metric(self.owner.intermediate_metric, step_metric="step")
        run.summary["trial"] = number
        return run

    def report(self, study: Any, trial: Any, step: int, value: float, when: float) -> None:
        trial.log({"step": step, self.owner.intermediate_metric: value})

    def end_trial(self, study: Any, trial: Any, record: TrialRecord) -> None:
        try:
            trial.summary["state"] = record.state.value
            if record.error is not None:
                trial.summary["error"] = record.error
            if record.value is not None and record.state in (TrialState.COMPLETE, TrialState.PRUNED):
                trial.summary[self.owner.metric] = record.value
                if record.state is TrialState.COMPLETE:
                    study.log({"trial": record.number, self.owner.metric: record.value})
        finally:
            trial.finish(exit_code=EXIT_CODE.get(record.state, 1))

    def end_study(self, study: Any, result: StudyResult, when: float) -> None:
        try:
            counts: dict[str, int] = {}
            for record in result.trials:
                counts[record.state.value] = counts.get(record.state.value, 0) + 1
            for state, n in sorted(counts.items()):
                study.summary[f"trials_{state}"] = n
            study.summary["reason"] = str(result.reason)
            front = result.best_trials
            if len(result.directions) > 1:
                study.summary["best_trials"] = [t.number for t in front]
            best = front[0] if front and len(result.directions) == 1 else None
            if best is not None and best.value is not None:
                study.summary[f"best_{self.owner.metric}"] = best.value
                study.summary["best_trial"] = best.number
                for key, value in best.params.items():
                    study.summary[f"best.{key}"] = _plain(value)
        finally:
            study.finish(exit_code=1 if str(result.reason) == "max_failures" else 0)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``wandb``."""
    register("logger", "wandb", WandbLogger)
