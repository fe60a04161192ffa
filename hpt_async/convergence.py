"""Knowing when to stop: a rule that ends a run once the search has stopped making progress.

``Tuner(..., converged=Convergence(patience=50))`` (or ``converged=True``
for the defaults) stops the run with reason ``"converged"``
(:attr:`StopReason.CONVERGED <hpt_async.StopReason.CONVERGED>`) when, after
at least ``min_trials`` COMPLETE trials, the last ``patience`` COMPLETE
trials have not improved the best value by more than the noise.  The noise
is ``noise`` when given (say, the standard deviation of the objective
between two seeds of the same configuration), else ``rel_noise`` times the
spread of the values seen (the interquartile range of the COMPLETE
values), so that improvements too small to tell from noise do not count as
progress.  Trials still running when the rule fires finish normally; no new
trial starts.

This is the "no improvement beyond noise for a while" criterion: it needs
no model and works with every strategy, for one objective (a study with
several objectives refuses it).

:class:`RegretBound` is the model-based criterion, in the spirit of
Optuna's Terminator: ``Tuner(..., converged=RegretBound())`` fits a
Gaussian process to the best trials and stops the run, with reason
``"regret_bound"`` (:attr:`StopReason.REGRET_BOUND
<hpt_async.StopReason.REGRET_BOUND>`), once the model's bound on what is
left to gain falls below the statistical error of the objective: the gap
between the smallest upper confidence bound among the trials tried (how
bad the best of them may really be) and the smallest lower confidence
bound anywhere in the space (how good an untried point may be).  When that
gap is below the error with which a value is measured (``error``: say, the
standard deviation of a cross-validation score; by default the noise the
model itself estimates), further trials cannot be told apart from the best
one.  The bound is checked every ``every`` COMPLETE trials after
``min_trials`` (a fit of a few milliseconds to a few tenths of a second, on
the event loop).
"""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .study import StudyView
    from .trial import TrialRecord

__all__ = ["Convergence", "RegretBound"]


def _check(name: str, value: Any, low: float, kind: type | tuple[type, ...], *, allow_none: bool = False) -> None:
    if value is None and allow_none:
        return
    if isinstance(value, bool) or not isinstance(value, kind) or not value >= low or not math.isfinite(value):
        raise ValueError(
            f"Convergence: {name} must be a {'number' if kind is not int else 'int'} >= {low}, got {value!r}"
        )


class Convergence:
    """The stop rule "no improvement beyond noise in the last ``patience`` COMPLETE trials" (see the module).

    ``patience``: COMPLETE trials without a real improvement before the run
    stops (default 50); ``min_trials``: COMPLETE trials before the rule may
    fire (default ``2 * patience``); ``noise``: the improvement that counts
    as real, in the objective's units (default: ``rel_noise`` times the
    interquartile range of the COMPLETE values); ``rel_noise`` (default
    0.01).  Bad values raise ``ValueError``.
    """

    #: The stop reason the Tuner reports when this rule fires.
    reason = "converged"

    def __init__(
        self,
        patience: int = 50,
        *,
        min_trials: int | None = None,
        noise: float | None = None,
        rel_noise: float = 0.01,
    ) -> None:
        _check("patience", patience, 1, int)
        _check("min_trials", min_trials, 1, int, allow_none=True)
        _check("noise", noise, 0.0, (int, float), allow_none=True)
        _check("rel_noise", rel_noise, 0.0, (int, float))
        self.patience = patience
        self.min_trials = 2 * patience if min_trials is None else min_trials
        self.noise = None if noise is None else float(noise)
        self.rel_noise = float(rel_noise)
        self._losses: list[float] = []

    def reset(self, study: StudyView) -> None:
        """Start over from the COMPLETE trials of ``study`` (called when a run opens the study)."""
        self._losses = []
        for record in study.finished():
            self.observe(study, record)

    def observe(self, study: StudyView, record: TrialRecord) -> bool:
        """Learn a finished trial; True when the search has converged by the rule."""
        from .trial import TrialState

        if record.state is not TrialState.COMPLETE or record.value is None or not math.isfinite(record.value):
            return False
        self._losses.append(study.sign() * float(record.value))
        return self.converged()

    def threshold(self) -> float:
        """The improvement that counts as real now."""
        if self.noise is not None:
            return self.noise
        losses = sorted(self._losses)
        n = len(losses)
        if n < 4:
            return 0.0
        return self.rel_noise * (losses[(3 * n) // 4] - losses[n // 4])

    def converged(self) -> bool:
        """True when at least ``min_trials`` values are known and the last ``patience`` brought no real gain."""
        losses = self._losses
        if len(losses) < max(self.min_trials, self.patience + 1):
            return False
        before = min(losses[: -self.patience])
        recent = min(losses[-self.patience :])
        return not before - recent > self.threshold()

    def __repr__(self) -> str:
        return f"Convergence(patience={self.patience}, min_trials={self.min_trials}, noise={self.noise})"


class RegretBound(Convergence):
    """Stop when the model's bound on the regret left falls below the objective's error (see the module).

    ``error``: the statistical error of one measurement of the objective,
    in its units (e.g. the standard deviation of a cross-validation score
    over folds); by default the noise standard deviation the GP fits.
    ``min_trials``: COMPLETE trials before the first check (default 20);
    ``every``: COMPLETE trials between checks (default 5); ``top``: the
    fraction of the best COMPLETE trials the model is fitted to (default
    0.5, at least ``min_trials`` of them, at most ``max_points``), since
    the bound is about the region of the optimum; ``delta``: the confidence
    of the bounds (``1 - delta``, default 0.1); ``candidates``: points of
    the space searched for the smallest lower bound (default 2048, with a
    quarter of them near the best trials).  After each check
    :attr:`bound` and :attr:`error_used` hold the figures compared (also in
    :meth:`describe`).  A resumed study's history is learnt without a
    check; the first new COMPLETE trial then checks it all at once.  Each
    check fits a GP to at most ``max_points`` trials on the event loop
    (a few tenths of a second at 200), once every ``every`` trials.
    Needs numpy and scipy (the ``bayes`` extra's dependencies), imported
    at the first check.  Bad values raise ``ValueError``.
    """

    reason = "regret_bound"

    def __init__(
        self,
        *,
        error: float | None = None,
        min_trials: int = 20,
        every: int = 5,
        top: float = 0.5,
        max_points: int = 200,
        delta: float = 0.1,
        candidates: int = 2048,
    ) -> None:
        _check("min_trials", min_trials, 3, int)
        _check("every", every, 1, int)
        _check("max_points", max_points, 3, int)
        _check("candidates", candidates, 1, int)
        _check("error", error, 0.0, (int, float), allow_none=True)
        if isinstance(top, bool) or not isinstance(top, (int, float)) or not 0 < top <= 1:
            raise ValueError(f"RegretBound: top must be a number in (0, 1], got {top!r}")
        if isinstance(delta, bool) or not isinstance(delta, (int, float)) or not 0 < delta < 1:
            raise ValueError(f"RegretBound: delta must be a number in (0, 1), got {delta!r}")
        super().__init__(patience=1, min_trials=min_trials)
        self.error = None if error is None else float(error)
        self.every = every
        self.top = float(top)
        self.max_points = max_points
        self.delta = float(delta)
        self.candidates = candidates
        #: The regret bound of the last check (objective units), or ``None`` before the first.
        self.bound: float | None = None
        #: The error it was compared with at the last check.
        self.error_used: float | None = None
        self._rows: list[Any] = []  # unit coordinates of the COMPLETE trials, in the order of ``_losses``
        self._enc: Any = None
        self._theta: Any = None
        self._checked = 0
        self._replaying = False

    def reset(self, study: StudyView) -> None:
        """Start over from the COMPLETE trials of ``study`` (called when a run opens the study)."""
        self._rows = []
        self._enc = None
        self._theta = None
        self._checked = 0
        self.bound = self.error_used = None
        # The history is learnt without a check at every ``every`` of its trials (each check fits a GP on the
        # event loop): once it holds ``min_trials``, the first new COMPLETE trial makes one check of it all.
        self._replaying = True
        try:
            super().reset(study)
        finally:
            self._replaying = False
        n = len(self._losses)
        if n >= self.min_trials:
            self._checked = n + 1 - self.every

    def observe(self, study: StudyView, record: TrialRecord) -> bool:
        """Learn a finished trial; True when the bound has fallen below the error (checked every ``every``)."""
        from .trial import TrialState

        if record.state is not TrialState.COMPLETE or record.value is None or not math.isfinite(record.value):
            return False
        if self._enc is None:
            from .strategies._encoding import Encoder

            self._enc = Encoder(study.space)
        self._rows.append(self._enc.unit(record.params))
        self._losses.append(study.sign() * float(record.value))
        n = len(self._losses)
        if self._replaying or n < self.min_trials or n - self._checked < self.every:
            return False
        self._checked = n
        self.bound, self.error_used = self.evaluate(seed=study.seed + n)
        return self.bound < self.error_used

    def converged(self) -> bool:
        """True when the last check found the bound below the error."""
        return self.bound is not None and self.error_used is not None and self.bound < self.error_used

    def evaluate(self, seed: int = 0) -> tuple[float, float]:
        """The regret bound and the error it is compared with, from the trials learnt so far (objective units).

        The fit runs on one BLAS thread, as ``bayes``'s fits do: its matrices
        are small, and several BLAS threads contending for busy cores made a
        check take seconds instead of a tenth of one.
        """
        from .strategies._model import one_blas_thread

        with one_blas_thread():
            return self._evaluate(seed)

    def _evaluate(self, seed: int) -> tuple[float, float]:
        import numpy as np

        from .strategies._gp import GP, fit_theta

        enc = self._enc
        losses = np.asarray(self._losses, dtype=float)
        keep = max(self.min_trials, math.ceil(self.top * len(losses)))
        order = np.argsort(losses, kind="stable")[: min(keep, self.max_points)]
        u = np.asarray(self._rows)[order]
        y_raw = losses[order]
        centre, scale = float(np.mean(y_raw)), float(np.std(y_raw))
        if not scale > 0:
            return 0.0, self.error if self.error is not None else 0.0
        y = (y_raw - centre) / scale
        x = enc.features(u)
        rng = np.random.default_rng(seed)
        warm = self._theta if self._theta is not None and len(self._theta) == x.shape[1] + 2 else None
        self._theta = fit_theta(x, y, warm, rng, runs=2)
        gp = GP(x, y, self._theta)
        # The confidence width of GP-UCB (Srinivas et al. 2010), scaled down as is usual in practice.
        t, d = len(losses), max(enc.n_params, 1)
        beta = 0.2 * 2.0 * math.log(d * t * t * math.pi**2 / (6.0 * self.delta))
        width = math.sqrt(max(beta, 0.0))
        mean_obs, var_obs = gp.predict(x)
        upper = float(np.min(mean_obs + width * np.sqrt(var_obs)))
        near = self.candidates // 4
        rows = u[rng.integers(0, len(u), near)]
        rows = np.where(np.isnan(rows), rng.random(rows.shape), rows)
        local = np.clip(rows + rng.normal(0.0, 0.05, rows.shape), 0.0, 1.0)
        cand, _ = enc.snap(np.vstack([rng.random((self.candidates - near, enc.n_params)), local]))
        mean_c, var_c = gp.predict(enc.features(cand))
        lower = min(float(np.min(mean_c - width * np.sqrt(var_c))), float(np.min(mean_obs - width * np.sqrt(var_obs))))
        bound = max(upper - lower, 0.0) * scale
        error = self.error if self.error is not None else math.sqrt(gp.noise) * scale
        return bound, error

    def describe(self) -> str:
        """The last check's figures, as the reason a run stopped."""
        if self.bound is None:
            return "regret bound not checked yet"
        return f"regret bound {self.bound:.4g} {'<' if self.converged() else '>='} error {self.error_used:.4g}"

    def __repr__(self) -> str:
        return (
            f"RegretBound(error={self.error}, min_trials={self.min_trials}, every={self.every}, top={self.top}, "
            f"delta={self.delta})"
        )
