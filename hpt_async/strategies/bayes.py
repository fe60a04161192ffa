"""``strategy="bayes"``: Gaussian-process Bayesian optimisation with expected improvement.

Each suggestion is made the moment a slot frees, from every result that has
arrived so far:

1. The first trials follow a scrambled Sobol' design (the ``sobol``
   strategy), until enough results have arrived to fit a model.
2. Completed trials' losses are standardised robustly (power transform) and
   a GP with a Matern 5/2 ARD kernel is fitted to them (see ``_gp``).
   Hyperparameters are refreshed by a short L-BFGS-B run from the last fit
   whenever the data has grown by ``refit_fraction`` since, and refitted
   with restarts (the last fit and the best of a few fresh points) when it
   has grown by half since the last such refit; in between, only the
   posterior is recomputed, by extending the previous Cholesky factor with
   the new observations rather than factorising afresh.  Beyond
   ``max_points`` observations the model is trained on a subset (the best
   half, the most recent fifth, the rest at random), which bounds the cost
   of a suggestion.
3. Pending trials (``study.running``) enter as fantasies (a kriging
   believer that is never more optimistic than the incumbent: the value of a
   pending point is the larger of the model's mean there and the best loss
   so far).  Uncertainty at those points collapses and improvement there is
   nil, so concurrent suggestions spread out instead of piling onto one
   point.  FAILED and PRUNED trials enter the same way with the median loss
   as the floor: their configuration is not proposed again and its
   neighbourhood is deemed ordinary, but the value they reported (if any)
   never reaches the model as a final value.
   Multi-fidelity (on by default): when trials report intermediate values,
   as under ``pruner="asha"`` or ``"hyperband"``, the GP takes the resource
   as one more input (``fidelity_model="joint"``): it is fitted to every
   trial's values at every level (the steps where finished trials stopped,
   and the final values of COMPLETE trials at the full resource; see
   ``_model``), pruned trials included as observations at the levels they
   reached, and expected improvement is evaluated at the full resource
   against the best final value.  ``fidelity_model="highest"`` instead fits
   the GP to the values at the highest step that ``fidelity_min`` trials
   reached, while fewer than that have completed, and to final values
   after.  While no observation lies below the full resource, ``"joint"``
   falls back to ``"highest"``; without reports, both are exactly the model
   described above.
4. Log expected improvement is maximised over the space (see
   ``_acquisition``), and the winner is decoded to a configuration.

The fit and the acquisition run in a worker thread
(``anyio.to_thread.run_sync``), so the event loop keeps handling reports and
completions meanwhile.  The random draws of a suggestion come from
``(seed, trial number)``: a seeded run at concurrency 1 is reproducible.
"""

from __future__ import annotations

import contextlib
import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from ..hookspecs import hookimpl
from ._encoding import Encoder
from ._model import JointData, ModelStrategy

if TYPE_CHECKING:
    from ..study import StudyView

__all__ = ["BayesStrategy"]

_controller: Any = None  # the ThreadpoolController once made; False when threadpoolctl is missing


def _one_blas_thread() -> Any:
    """A context that runs BLAS on one thread, or does nothing without threadpoolctl.

    Small matrices are faster on one BLAS thread than on several that contend
    for the cores.  threadpoolctl (which comes with scikit-learn, not with
    hpt-async) is imported on the first fit, not with this module.
    """
    global _controller
    if _controller is None:
        try:
            from threadpoolctl import ThreadpoolController
        except ImportError:
            _controller = False
        else:
            _controller = ThreadpoolController()
    if _controller is False:
        return contextlib.nullcontext()
    return _controller.limit(limits=1, user_api="blas")


_PENDING_MODES = ("believer", "ignore")
_FIDELITY_MODELS = ("joint", "highest")
_FIT_RUNS = 2
_STALL_LOG_EI = -8.0  # log EI in standard deviations of the (transformed) losses
_STALL_SHRINKS = 3
_REFINE_ITERS = 20
_RESTART_FRACTION = 0.5  # full refits with restarts when the data has grown by half
_WARM_ITERS = 30  # L-BFGS-B iterations of a warm-started refresh of the hyperparameters


def default_initial(space_size: int) -> int:
    """Trials of the initial design for a space of ``space_size`` parameters (6 to 10)."""
    return max(6, min(10, space_size + 2))


class BayesStrategy(ModelStrategy):
    """Gaussian-process Bayesian optimisation with log expected improvement.

    Options (all have working defaults):

    * ``n_initial``: trials of the quasi-random initial design (default: the
      number of parameters plus two, between 6 and 10).
    * ``candidates`` / ``local``: random and near-incumbent points scored per
      suggestion; ``starts``: how many of the best are refined by L-BFGS-B.
      They grow with the number of parameters ``d``: by default
      ``min(2048, 192 d)``, an eighth of that (at least 256), and ``d + 2``
      (between 5 and 10).
    * ``max_points``: largest training set; beyond it a subset is used.
    * ``refit_fraction``: refresh hyperparameters when the data has grown by
      this fraction since the last fit (0 refits fully, with restarts, at
      every suggestion).
    * ``pending``: ``"believer"`` (default) conditions on running trials;
      ``"ignore"`` does not (concurrent suggestions then tend to coincide;
      for comparison only).  Failed trials, and pruned ones the model does
      not observe, are conditioned on in both modes.
    * ``fidelity``: learn from intermediate reports (default ``True``);
      ``fidelity_model``: ``"joint"`` (default: one GP over configuration
      and resource, fitted to every level) or ``"highest"`` (the highest
      level with ``fidelity_min`` results); ``fidelity_min``: reports a step
      needs to be modelled under ``"highest"`` (default ``max(6, d + 2)``).
    """

    name = "bayes"

    def __init__(
        self,
        *,
        n_initial: int | None = None,
        candidates: int | None = None,
        local: int | None = None,
        starts: int | None = None,
        max_points: int = 256,
        refit_fraction: float = 0.1,
        pending: str = "believer",
        fidelity: bool = True,
        fidelity_min: int | None = None,
        fidelity_model: str = "joint",
    ) -> None:
        if n_initial is not None and (isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1):
            raise ValueError(f"n_initial must be an int >= 1, got {n_initial!r}")
        for name, value, low in (("candidates", candidates, 1), ("local", local, 0), ("starts", starts, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 10:
            raise ValueError(f"max_points must be an int >= 10, got {max_points!r}")
        if isinstance(refit_fraction, bool) or not (
            isinstance(refit_fraction, (int, float)) and 0 <= refit_fraction <= 10
        ):
            raise ValueError(f"refit_fraction must be a number in [0, 10], got {refit_fraction!r}")
        if pending not in _PENDING_MODES:
            raise ValueError(f"pending must be one of {_PENDING_MODES}, got {pending!r}")
        if fidelity_model not in _FIDELITY_MODELS:
            raise ValueError(f"fidelity_model must be one of {_FIDELITY_MODELS}, got {fidelity_model!r}")
        self.fidelity_model = fidelity_model
        self.n_initial = n_initial
        self.candidates = candidates
        self.local = local
        self.starts = starts
        self.max_points = max_points
        self.refit_fraction = float(refit_fraction)
        # Full refits (with restarts) when the data has grown by this much; none in between
        # are needed for refit_fraction=0, which refits fully every time.
        self._restart_fraction = _RESTART_FRACTION if refit_fraction > 0 else 0.0
        self.pending = pending
        super().__init__(fidelity=fidelity, fidelity_min=fidelity_min)
        self._theta: np.ndarray | None = None
        self._fit_n = 0
        self._restart_n = 0
        self._gp: Any = None  # the last suggestion's GP (before fantasies), reused while theta holds

    def _reset(self) -> None:
        self._theta = None
        self._fit_n = self._restart_n = 0
        self._gp = None

    def _level_changed(self) -> None:
        self._fit_n = self._restart_n = 0  # other values: refit at the next suggestion (warm-started)
        self._gp = None

    # -- suggestions --------------------------------------------------------------------

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        enc = self._bind(study)
        n_init = self.n_initial or default_initial(len(study.space))
        if self.fidelity and self.fidelity_model == "joint":
            joint = self._joint_data(study, number)
            if joint.full is not None and bool(np.any(joint.levels < 1.0)):
                return await self._ask_joint(study, number, enc, joint, n_init)
        data = self._model_data(study, number)
        n_obs = len(data.losses)
        if n_obs + len(data.pending) < n_init or n_obs < max(2, n_init // 2):
            return await self._design.ask(study, number)
        u_obs, losses, u_avoid = data.u_obs, data.losses, data.u_avoid
        pending = [enc.unit(r.params) for r in data.pending] if self.pending == "believer" else []
        u_pending = np.array(pending) if pending else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), number & (2**64 - 1)]
        u = await anyio.to_thread.run_sync(self._suggest, enc, u_obs, losses, u_pending, u_avoid, seed)
        return enc.decode(u)

    async def _ask_joint(
        self, study: StudyView, number: int, enc: Encoder, joint: JointData, n_init: int
    ) -> dict[str, Any]:
        """A suggestion from the model over (configuration, level), for the full resource."""
        seen = set(joint.numbers.tolist())
        waiting = sum(1 for r in joint.pending if r.number not in seen)  # running trials without a value yet
        if joint.trials + waiting < n_init or joint.trials < max(2, n_init // 2):
            return await self._design.ask(study, number)
        pending = [enc.unit(r.params) for r in joint.pending] if self.pending == "believer" else []
        u_pending = np.array(pending) if pending else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), number & (2**64 - 1)]
        u = await anyio.to_thread.run_sync(
            self._suggest, enc, joint.u_obs, joint.losses, u_pending, joint.u_avoid, seed, joint.levels, joint.final
        )
        return enc.decode(u)

    def _training_set(self, n: int, losses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Indices the model trains on: all of them, or a subset past ``max_points``."""
        cap = self.max_points
        if n <= cap:
            return np.arange(n)
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(losses, kind="stable")[: cap // 2]] = True
        keep[n - cap // 5 :] = True
        rest = np.flatnonzero(~keep)
        need = cap - int(keep.sum())
        if need > 0:
            keep[rng.choice(rest, size=need, replace=False)] = True
        return np.flatnonzero(keep)

    def _suggest(
        self,
        enc: Encoder,
        u_obs: np.ndarray,
        losses: np.ndarray,
        u_pending: np.ndarray,
        u_avoid: np.ndarray,
        seed: list[int],
        levels: np.ndarray | None = None,
        final: np.ndarray | None = None,
    ) -> np.ndarray:
        """Fit the model and maximise the acquisition (runs in a worker thread)."""
        with _one_blas_thread():
            return self._fit_and_maximise(enc, u_obs, losses, u_pending, u_avoid, seed, levels, final)

    def _fit_and_maximise(
        self,
        enc: Encoder,
        u_obs: np.ndarray,
        losses: np.ndarray,
        u_pending: np.ndarray,
        u_avoid: np.ndarray,
        seed: list[int],
        levels: np.ndarray | None = None,
        final: np.ndarray | None = None,
    ) -> np.ndarray:
        # Imported here: scipy.optimize is slow to import and most tuners never need it.
        from ._acquisition import maximise_log_ei
        from ._gp import GP, fit_theta, standardise

        rng = np.random.default_rng(seed)
        n = len(losses)
        idx = self._training_set(n, losses, rng)
        x = enc.features(u_obs[idx])
        if levels is not None:
            x = np.hstack([x, levels[idx, None]])
        y = standardise(losses[idx])
        dim = x.shape[1]
        if self._theta is None or len(self._theta) != dim + 2:
            self._theta = fit_theta(x, y, None, rng, runs=_FIT_RUNS + 1)
            self._fit_n = self._restart_n = n
        elif n >= self._restart_n + max(1, int(self._restart_fraction * self._restart_n)):
            # Restarts from the prior's pool as well as the warm start: a warm start alone would
            # keep the hyperparameters in the basin of their first fit.
            self._theta = fit_theta(x, y, self._theta, rng, runs=_FIT_RUNS)
            self._fit_n = self._restart_n = n
        elif n >= self._fit_n + max(1, int(self.refit_fraction * self._fit_n)):
            # In between, a short L-BFGS-B run from the last fit only.
            self._theta = fit_theta(x, y, self._theta, rng, runs=1, maxiter=_WARM_ITERS)
            self._fit_n = n
        d = enc.n_params
        candidates = self.candidates or min(2048, 192 * d)
        local = self.local if self.local is not None else max(256, candidates // 8)
        starts = self.starts if self.starts is not None else min(10, max(5, d + 2))
        theta = self._theta
        cached = self._gp
        if cached is not None and cached.theta is theta:
            base = cached.update(x, y)  # same hyperparameters: extend the factor by the new rows
        else:
            base = GP(x, y, theta)
        self._gp = base
        if levels is None:
            best = float(np.min(y))
            anchors = u_obs[np.argsort(losses, kind="stable")[:5]]
        else:
            best, anchors = _full_incumbent(base, enc, u_obs, levels, final, idx, y)
        for attempt in range(_STALL_SHRINKS + 1):
            gp = base if attempt == 0 else GP(x, y, theta)
            if len(u_pending) or len(u_avoid):
                # Fantasies: the model's mean, floored at the incumbent (pending) or the median (failed, pruned).
                u_extra = np.vstack([u_pending, u_avoid])
                floor = np.concatenate([np.full(len(u_pending), best), np.full(len(u_avoid), float(np.median(y)))])
                z_extra = enc.features(u_extra)
                if levels is not None:
                    z_extra = np.hstack([z_extra, np.ones((len(z_extra), 1))])
                believed, _ = gp.predict(z_extra)
                gp = gp.with_points(z_extra, np.maximum(believed, floor))
            # A retry explores with a less confident model: half the candidates, none refined.
            u, value = maximise_log_ei(
                gp if levels is None else _AtFullResource(gp),
                enc,
                best,
                anchors,
                rng,
                candidates=candidates if attempt == 0 else max(1, candidates // 2),
                local=local if attempt == 0 else local // 2,
                starts=starts if attempt == 0 else 0,
                maxiter=_REFINE_ITERS,
            )
            if value >= _STALL_LOG_EI:
                break
            # The model sees no improvement worth having anywhere: it may be overconfident (a basin
            # it has settled in).  Ask a less confident model, with shorter length scales.
            theta = theta.copy()
            theta[: enc.dim] -= math.log(2.0)
        return u


class _AtFullResource:
    """A GP over (features, level) seen at level 1: what the acquisition asks of a model."""

    def __init__(self, gp: Any) -> None:
        self.gp = gp

    @staticmethod
    def _with_level(z: np.ndarray) -> np.ndarray:
        return np.hstack([z, np.ones((len(z), 1))])

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance at the full resource."""
        return self.gp.predict(self._with_level(z))

    def log_ei(self, z: np.ndarray, best: float) -> np.ndarray:
        """Log expected improvement at the full resource."""
        return self.gp.log_ei(self._with_level(z), best)

    def log_ei_grad(self, z: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
        """Log EI at the full resource and its gradient in the features (the level is held at 1)."""
        value, grad = self.gp.log_ei_grad(self._with_level(z), best)
        return value, grad[:, :-1]


def _full_incumbent(
    gp: Any,
    enc: Encoder,
    u_obs: np.ndarray,
    levels: np.ndarray,
    final: np.ndarray | None,
    idx: np.ndarray,
    y: np.ndarray,
) -> tuple[float, np.ndarray]:
    """The loss to improve on at the full resource, and the configurations predicted best there.

    The incumbent is the best (transformed) final value of a COMPLETE trial
    that the model trains on; before any, the best value at the full
    resource (a trial stopped there), and before that, the best mean the
    model predicts at the full resource for a configuration tried.  The
    anchors of local candidates are the five configurations with the best
    predicted means at the full resource.
    """
    _, first = np.unique(np.nan_to_num(u_obs, nan=-1.0), axis=0, return_index=True)
    tried = u_obs[np.sort(first)]
    mean, _ = _AtFullResource(gp).predict(enc.features(tried))
    anchors = tried[np.argsort(mean, kind="stable")[:5]]
    for rows in (final[idx] if final is not None else np.zeros(len(idx), dtype=bool), levels[idx] >= 1.0):
        if rows.any():
            return float(np.min(y[rows])), anchors
    return float(np.min(mean)), anchors


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``bayes``."""
    register("strategy", "bayes", BayesStrategy)
