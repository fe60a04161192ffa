"""What the model-based strategies share: their record of results, encoded, by trial number.

Multi-fidelity: when trials report intermediate values (``trial.report``),
as they do under a pruner, the model learns from the highest *rung* that
has enough results.  The levels are the reported steps, in order, topped by
the final values of COMPLETE trials.  The level modelled is the highest one
that at least ``fidelity_min`` trials have reached (default: the number of
parameters plus two, at least 6).  At the final level, the observations are
the COMPLETE trials' final values; at a step, they are the values every
trial reported at that step, be it COMPLETE, PRUNED, PAUSED or still RUNNING.  So a
pruned trial's intermediate value teaches the model as soon as the step it
reached is the one being modelled, and once enough trials have completed
the model is the usual full-budget one.  Trials are only compared at the
same step.  ``fidelity=False`` keeps to final values throughout.

A model that takes the resource as an input (``bayes``) can instead learn
from every level at once: :meth:`ModelStrategy._joint_data` gives each
trial's values at the *levels*, the steps where finished trials stopped
(a pruner's rungs) and the full resource (the final value of a COMPLETE
trial), each with its level as a normalised log resource in ``[0, 1]``
(``log(1 + step) / log(1 + full)``, 1 for final values).  Pruned trials
are then observations at the levels they reached, not avoided points.
"""

from __future__ import annotations

import contextlib
import math
from collections import Counter
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, NamedTuple

import numpy as np

from ..contracts import Strategy
from ..hookspecs import hookimpl
from ..trial import TrialState
from ._encoding import Encoder
from .sobol import SobolStrategy

if TYPE_CHECKING:
    from ..space import Space
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["JointData", "ModelData", "ModelStrategy", "default_fidelity_min", "one_blas_thread"]

_AVOIDED = (TrialState.FAILED, TrialState.PRUNED)


_controller: Any = None  # the ThreadpoolController once made; False when threadpoolctl is missing


def one_blas_thread() -> Any:
    """A context that runs BLAS on one thread, or does nothing without threadpoolctl.

    Small matrices are faster on one BLAS thread than on several that contend
    for the cores.  threadpoolctl (which comes with scikit-learn, not with
    hpt-async) is imported on the first fit, not with this module.
    """
    global _controller
    if _controller is None:
        # scipy's own BLAS (that of its LAPACK calls) must be loaded before the controller looks for pools.
        import scipy.linalg  # noqa: F401

        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    if _controller is False:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


def default_fidelity_min(space_size: int) -> int:
    """Trials a step needs before the model learns from it: ``max(6, space_size + 2)``."""
    return max(6, space_size + 2)


class ModelData(NamedTuple):
    """What one suggestion's model is built from."""

    u_obs: np.ndarray  # encoded configurations of the observations
    losses: np.ndarray  # their losses (``sign * value``)
    pending: list[TrialRecord]  # running trials that are not observations
    u_avoid: np.ndarray  # FAILED and PRUNED trials that are not observations
    step: int | None  # the step modelled, or None for final values


class JointData(NamedTuple):
    """Every trial's values at every level, for a model over (configuration, resource)."""

    u_obs: np.ndarray  # encoded configurations, one row per observation (a configuration repeats by level)
    levels: np.ndarray  # the level of each observation: log(1 + step) / log(1 + full), 1 for final values
    losses: np.ndarray  # their losses (``sign * value``)
    trials: int  # distinct trials among the observations
    pending: list[TrialRecord]  # running trials (their final value is still to come)
    u_avoid: np.ndarray  # FAILED trials, and PRUNED ones that reported nothing usable
    full: int | None  # the step taken as the full resource (None: no trial reported)
    numbers: np.ndarray  # the trial of each observation
    final: np.ndarray  # True where the observation is a COMPLETE trial's final value


class ModelStrategy(Strategy):
    """Keeps the study's results where a model can use them.

    ``_obs`` maps a COMPLETE trial's number to its encoded configuration and
    value; ``_failed`` maps a FAILED or PRUNED trial's number to its encoded
    configuration; ``_reported`` maps a finished trial that reported
    intermediate values to its encoded configuration and reports.  All are
    rebuilt from the study when the space changes (a new study) and kept
    current by :meth:`tell`.  :meth:`_model_data` picks the level to model
    (see the module's docstring).  Before a model has enough to go on,
    subclasses ask ``_design`` (Sobol points).
    """

    check_output = False

    @hookimpl
    def hpt_study_ended(self, event: Any, study: Any) -> None:
        """The run ended: stop the model process, if one was forked (a later run forks anew).

        A background acquisition still waiting on it then finishes in a
        thread of this process (its points are not used by this run).
        """
        remote = getattr(self, "_remote", None)
        if remote is not None:
            self._remote = None
            self._remote_tried = False
            remote.close()

    def __init__(self, *, fidelity: bool = True, fidelity_min: int | None = None) -> None:
        if not isinstance(fidelity, bool):
            raise ValueError(f"fidelity must be a bool, got {fidelity!r}")
        if fidelity_min is not None and (
            isinstance(fidelity_min, bool) or not isinstance(fidelity_min, int) or fidelity_min < 2
        ):
            raise ValueError(f"fidelity_min must be an int >= 2, got {fidelity_min!r}")
        self.fidelity = fidelity
        self.fidelity_min = fidelity_min
        self._design = SobolStrategy()
        self._space: Space | None = None
        self._enc: Encoder | None = None
        self._obs: dict[int, tuple[np.ndarray, float]] = {}
        self._failed: dict[int, np.ndarray] = {}
        self._reported: dict[int, tuple[np.ndarray, Mapping[int, float]]] = {}
        self._step_counts: Counter[int] = Counter()
        self.fidelity_step: int | None = None  # the step last modelled (None: final values)

    def _reset(self) -> None:
        """Forget model state derived from the results (a subclass's fitted parameters)."""

    def _level_changed(self) -> None:
        """Called when the level modelled changes (a subclass may refit)."""

    def _bind(self, study: StudyView) -> Encoder:
        if self._enc is None or self._space is not study.space:
            self._space = study.space
            self._enc = Encoder(study.space)
            self._obs.clear()
            self._failed.clear()
            self._reported.clear()
            self._step_counts.clear()
            self.fidelity_step = None
            self._reset()
            for record in study.finished():
                self._learn(record)
        return self._enc

    def _learn(self, record: TrialRecord) -> None:
        enc = self._enc
        assert enc is not None
        number = record.number
        self._obs.pop(number, None)
        self._failed.pop(number, None)
        old = self._reported.pop(number, None)
        if old is not None:
            self._step_counts.subtract(old[1].keys())
        value = record.value
        if record.state is TrialState.COMPLETE and value is not None and math.isfinite(value):
            self._obs[number] = (enc.unit(record.params), float(value))
        elif record.state in _AVOIDED and record.params:
            self._failed[number] = enc.unit(record.params)
        if (
            self.fidelity
            and record.reports
            and record.params
            and record.state in (TrialState.COMPLETE, TrialState.PRUNED, TrialState.PAUSED)
        ):
            reports = {s: v for s, v in record.reports.items() if math.isfinite(v)}
            if reports:
                u = self._obs[number][0] if number in self._obs else enc.unit(record.params)
                self._reported[number] = (u, reports)
                self._step_counts.update(reports.keys())

    def _observed(self, study: StudyView) -> tuple[np.ndarray, np.ndarray]:
        """Encoded configurations and losses (``sign * value``) of the COMPLETE trials, by number."""
        numbers = sorted(self._obs)
        u_obs = np.array([self._obs[n][0] for n in numbers])
        sign = study.sign()
        return u_obs, np.array([sign * self._obs[n][1] for n in numbers])

    def _pick_step(self, study: StudyView, running: list[TrialRecord]) -> int | None:
        """The highest step with enough reports, or ``None`` when final values are enough (or nothing is)."""
        need = self.fidelity_min or default_fidelity_min(len(study.space))
        if not self.fidelity or len(self._obs) >= need:
            return None
        counts = Counter(self._step_counts)
        for r in running:
            # A resumed (once PAUSED) trial's earlier reports are counted already.
            known = self._reported[r.number][1] if r.number in self._reported else {}
            counts.update(s for s, v in r.reports.items() if math.isfinite(v) and s not in known)
        reached = [s for s, c in counts.items() if c >= need]
        return max(reached) if reached else None

    def _model_data(self, study: StudyView, number: int) -> ModelData:
        """Observations, pending trials and avoided points for the suggestion of trial ``number``."""
        enc = self._enc
        assert enc is not None
        running = [r for _, r in sorted(study.running.items()) if r.number != number and r.params]
        step = self._pick_step(study, running)
        if step != self.fidelity_step:
            self.fidelity_step = step
            self._level_changed()
        n_params = enc.n_params
        if step is None:
            u_obs, losses = self._observed(study)
            avoided = list(self._failed.values())
            u_avoid = np.array(avoided) if avoided else np.empty((0, n_params))
            return ModelData(u_obs, losses, running, u_avoid, None)
        sign = study.sign()
        points: list[tuple[int, np.ndarray, float]] = [
            (n, u, reports[step]) for n, (u, reports) in self._reported.items() if step in reports
        ]
        pending = []
        for r in running:
            if r.number in self._reported and step in self._reported[r.number][1]:
                continue  # resumed after a pause: its value at this step is a point already
            v = r.reports.get(step)
            if v is not None and math.isfinite(v):
                points.append((r.number, enc.unit(r.params), v))
            else:
                pending.append(r)
        points.sort(key=lambda p: p[0])
        used = {p[0] for p in points}
        avoided = [u for n, u in sorted(self._failed.items()) if n not in used]
        u_obs = np.array([p[1] for p in points])
        losses = np.array([sign * p[2] for p in points])
        u_avoid = np.array(avoided) if avoided else np.empty((0, n_params))
        return ModelData(u_obs, losses, pending, u_avoid, step)

    def _joint_data(self, study: StudyView, number: int) -> JointData:
        """Observations at every level for the suggestion of trial ``number`` (see the module's docstring).

        The levels are the last steps of the finished trials that reported
        (where a pruner stopped them, or where they completed), and the full
        resource is the largest last step of a COMPLETE trial (of any trial
        while none has completed).  A COMPLETE trial contributes its final
        value at level 1 and its reports at the lower levels; a PRUNED or
        PAUSED trial, and a running one, its reports at the levels it
        reached.  ``full`` is None when no trial has reported anything: the
        data is then the final values only, as in :meth:`_model_data`.
        """
        enc = self._enc
        assert enc is not None
        running = [r for _, r in sorted(study.running.items()) if r.number != number and r.params]
        n_params = enc.n_params
        ends: dict[int, int] = {n: max(reports) for n, (_, reports) in self._reported.items()}
        full_candidates = [ends[n] for n in self._obs if n in ends]
        if not full_candidates:
            full_candidates = list(ends.values()) + [max(r.reports) for r in running if r.reports]
        full = max(full_candidates) if full_candidates and self.fidelity else None
        sign = study.sign()
        # (trial, level, unit point, loss, whether it is a COMPLETE trial's final value)
        rows: list[tuple[int, float, np.ndarray, float, bool]] = []
        if full is None:
            for n in sorted(self._obs):
                u, value = self._obs[n]
                rows.append((n, 1.0, u, sign * value, True))
        else:
            # Levels up to the full resource only: a trial that ran past it is seen where it passed it.
            steps = sorted(s for s in set(ends.values()) if s <= full)
            scale = math.log1p(full) if full > 0 else 1.0

            def level(step: int) -> float:
                return min(1.0, math.log1p(step) / scale) if full > 0 else 1.0

            def add(n: int, u: np.ndarray, reports: Mapping[int, float], complete: bool) -> None:
                for s in steps:
                    if complete and s >= full:
                        break
                    v = reports.get(s)
                    if v is not None and math.isfinite(v):
                        rows.append((n, level(s), u, sign * v, False))

            for n in sorted(set(self._obs) | set(self._reported)):
                if n in self._obs:
                    u, value = self._obs[n]
                    rows.append((n, 1.0, u, sign * value, True))
                    if n in self._reported:
                        add(n, u, self._reported[n][1], True)
                else:
                    u, reports = self._reported[n]
                    add(n, u, reports, False)
            for r in running:
                known = self._reported[r.number][1] if r.number in self._reported else {}
                fresh = {s: v for s, v in r.reports.items() if s not in known}
                if fresh:
                    add(r.number, enc.unit(r.params), fresh, False)
        used = {row[0] for row in rows}
        avoided = [u for n, u in sorted(self._failed.items()) if n not in used]
        u_obs = np.array([row[2] for row in rows]) if rows else np.empty((0, n_params))
        return JointData(
            u_obs,
            np.array([row[1] for row in rows]),
            np.array([row[3] for row in rows]),
            len(used),
            running,
            np.array(avoided) if avoided else np.empty((0, n_params)),
            full,
            np.array([row[0] for row in rows], dtype=np.int64),
            np.array([row[4] for row in rows], dtype=bool),
        )

    async def start(self, study: StudyView) -> None:
        self._enc = None
        self._bind(study)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._bind(study)
        self._learn(record)
