"""``strategy="tpe"``: a multivariate tree-structured Parzen estimator.

Completed trials are split by loss into a *good* group (the best
``gamma`` fraction, at most ``max_good``) and a *bad* group.  Each group
becomes a joint density over the unit cube: a mixture with one component
per trial, each component a product over parameters (a truncated Gaussian
for a numeric parameter, a kernel that keeps the observed category with
high probability for a Choice), plus a uniform prior component.  Candidates
are drawn from the good density and the one with the largest ratio of good
to bad density is suggested.  Because components are joint, correlations
between parameters are kept (unlike independent per-parameter TPE).

Conditional spaces: a parameter inactive in a trial leaves that trial's
component uniform on it, and a parameter inactive in a candidate is left
out of its score (the same factor for both groups).  So each trial informs
exactly the parameters it had, and subspaces are compared through their
parents.

Running trials are added to the bad group (a constant liar), so concurrent
suggestions avoid what is already being evaluated.  FAILED and PRUNED
trials are added there too, as configurations, never with their value as a
final one.  CANCELLED and LOST trials are ignored.

Multi-fidelity (on by default): when trials report intermediate values, as
under ``pruner="asha"`` or ``"hyperband"``, and fewer than ``fidelity_min``
trials have completed, the groups are split by the values every trial
(COMPLETE, PRUNED, PAUSED or RUNNING) reported at the highest step that enough
trials reached; those trials are then ranked, not lied about or avoided
(see ``_model``).  The first trials
follow a scrambled Sobol' design.  Draws come from ``(seed, trial number)``:
a seeded run at concurrency 1 is reproducible.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from ..hookspecs import hookimpl
from ._encoding import Encoder
from ._model import ModelStrategy

if TYPE_CHECKING:
    from ..study import StudyView

__all__ = ["ParzenEstimator", "TPEStrategy"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_PENDING_MODES = ("liar", "ignore")


class ParzenEstimator:
    """A joint kernel density over the unit coordinates of ``points`` (NaN = inactive), plus a uniform prior.

    A numeric parameter's kernel is a Gaussian truncated to ``[0, 1]`` of
    width ``bandwidth * m ** (-1 / (d + 4))`` for ``m`` points in ``d``
    parameters; a Choice keeps its value with probability ``1 - b`` where
    ``b`` shrinks as ``2 / (m + 2)``.
    """

    def __init__(self, enc: Encoder, points: np.ndarray, prior_weight: float = 1.0, bandwidth: float = 0.1) -> None:
        from scipy import special  # imported on first use: most tuners never need scipy.special

        self._special = special
        self.enc = enc
        self.points = points
        m = len(points)
        self.log_w = math.log(1.0 / (m + prior_weight)) if m else -math.inf
        self.log_w0 = math.log(prior_weight / (m + prior_weight))
        dim = max(enc.n_params, 1)
        self.bandwidth = np.zeros(enc.n_params)
        self.switch = np.zeros(enc.n_params)
        for p in enc.params:
            count = int(np.count_nonzero(~np.isnan(points[:, p.index]))) if m else 0
            if p.kind == "choice":
                # Probability that a component moves off its own category.
                self.switch[p.index] = (p.n - 1) / p.n * min(1.0, 2.0 / (count + 2))
            else:
                # A fixed width that narrows slowly as the group grows: the group's own
                # spread would collapse onto a few close good points and crawl.
                self.bandwidth[p.index] = bandwidth * max(count, 1) ** (-1.0 / (dim + 4))

    def log_pdf(self, s: np.ndarray) -> np.ndarray:
        """Log density at snapped unit points ``s`` (NaN = inactive)."""
        special = self._special
        c, m = len(s), len(self.points)
        log_k = np.zeros((c, m))
        log_prior = np.zeros(c)
        for p in self.enc.params:
            j = p.index
            cand = s[:, j]
            cand_on = ~np.isnan(cand)
            comp = self.points[:, j]
            comp_on = ~np.isnan(comp)
            if p.kind == "choice":
                k = p.n
                if k == 1:
                    continue
                ci = np.minimum((np.nan_to_num(cand) * k).astype(np.int64), k - 1)
                mi = np.minimum((np.nan_to_num(comp) * k).astype(np.int64), k - 1)
                b = self.switch[j]
                same, other = math.log1p(-b), math.log(b / (k - 1)) if b > 0 else -math.inf
                lk = np.where(ci[:, None] == mi[None, :], same, other)
                lk = np.where(comp_on[None, :], lk, -math.log(k))
                log_prior += np.where(cand_on, -math.log(k), 0.0)
            else:
                h = self.bandwidth[j]
                mu = np.nan_to_num(comp, nan=0.5)
                mass = special.ndtr((1.0 - mu) / h) - special.ndtr(-mu / h)
                z = (np.nan_to_num(cand, nan=0.5)[:, None] - mu[None, :]) / h
                lk = -0.5 * z * z - _LOG_SQRT_2PI - math.log(h) - np.log(mass)[None, :]
                lk = np.where(comp_on[None, :], lk, 0.0)
            log_k += np.where(cand_on[:, None], lk, 0.0)
        parts = [log_prior + self.log_w0]
        if m:
            parts.append(special.logsumexp(log_k + self.log_w, axis=1))
        return np.logaddexp.reduce(np.vstack(parts), axis=0)

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` unit points drawn from the density (not snapped)."""
        special = self._special
        m = len(self.points)
        weights = np.full(m + 1, math.exp(self.log_w) if m else 0.0)
        weights[m] = math.exp(self.log_w0)
        pick = rng.choice(m + 1, size=count, p=weights / weights.sum())
        out = rng.random((count, self.enc.n_params))
        from_comp = pick < m
        if not from_comp.any():
            return out
        rows = self.points[pick[from_comp]]
        for p in self.enc.params:
            j = p.index
            centre = rows[:, j]
            on = ~np.isnan(centre)
            col = out[from_comp, j]
            if p.kind == "choice":
                k = p.n
                keep = rng.random(len(centre)) >= self.switch[j]
                own = np.minimum((np.nan_to_num(centre) * k).astype(np.int64), k - 1)
                # Another category, uniformly among the k - 1 others.
                shift = rng.integers(1, max(k, 2), len(centre))
                other = (own + shift) % k
                idx = np.where(keep, own, other)
                col = np.where(on, (idx + 0.5) / k, col)
            else:
                h = self.bandwidth[j]
                mu = np.nan_to_num(centre, nan=0.5)
                lo, hi = special.ndtr(-mu / h), special.ndtr((1.0 - mu) / h)
                q = lo + rng.random(len(mu)) * (hi - lo)
                x = np.clip(mu + h * special.ndtri(np.clip(q, 1e-300, 1.0 - 1e-16)), 0.0, 1.0)
                col = np.where(on, x, col)
            out[from_comp, j] = col
        return out


class TPEStrategy(ModelStrategy):
    """Multivariate tree-structured Parzen estimator.

    Options: ``n_initial`` (quasi-random trials first, default 10),
    ``gamma`` (fraction of trials in the good group, default 0.15, capped at
    ``max_good`` = 25), ``candidates`` drawn per suggestion (default 24),
    ``prior_weight`` of the uniform component (default 1), ``pending``:
    ``"liar"`` (default: running trials count as bad) or ``"ignore"``,
    ``fidelity``: learn from intermediate reports (default ``True``),
    ``fidelity_min``: reports a step needs to be modelled (default
    ``max(6, d + 2)``).
    """

    name = "tpe"

    def __init__(
        self,
        *,
        n_initial: int = 10,
        gamma: float = 0.15,
        max_good: int = 25,
        candidates: int = 24,
        prior_weight: float = 1.0,
        pending: str = "liar",
        fidelity: bool = True,
        fidelity_min: int | None = None,
    ) -> None:
        for name, value in (("n_initial", n_initial), ("max_good", max_good), ("candidates", candidates)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if not (isinstance(gamma, (int, float)) and 0 < gamma < 1):
            raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")
        if not (isinstance(prior_weight, (int, float)) and prior_weight > 0):
            raise ValueError(f"prior_weight must be > 0, got {prior_weight!r}")
        if pending not in _PENDING_MODES:
            raise ValueError(f"pending must be one of {_PENDING_MODES}, got {pending!r}")
        self.n_initial = n_initial
        self.gamma = float(gamma)
        self.max_good = max_good
        self.candidates = candidates
        self.prior_weight = float(prior_weight)
        self.pending = pending
        super().__init__(fidelity=fidelity, fidelity_min=fidelity_min)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        enc = self._bind(study)
        data = self._model_data(study, number)
        n_obs = len(data.losses)
        if n_obs + len(data.pending) < self.n_initial or n_obs < 2:
            return await self._design.ask(study, number)
        u_obs, losses = data.u_obs, data.losses
        extra = list(data.u_avoid)
        if self.pending == "liar":
            extra += [enc.unit(r.params) for r in data.pending]
        u_extra = np.array(extra) if extra else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), number & (2**64 - 1)]
        u = await anyio.to_thread.run_sync(self._suggest, enc, u_obs, losses, u_extra, seed)
        return enc.decode(u)

    def _suggest(
        self, enc: Encoder, u_obs: np.ndarray, losses: np.ndarray, u_extra: np.ndarray, seed: list[int]
    ) -> np.ndarray:
        """Split, build both densities, and pick the best of the candidates (runs in a worker thread)."""
        rng = np.random.default_rng(seed)
        n = len(losses)
        n_good = min(max(1, math.ceil(self.gamma * n)), self.max_good)
        order = np.argsort(losses, kind="stable")
        good = ParzenEstimator(enc, u_obs[order[:n_good]], self.prior_weight)
        bad = ParzenEstimator(enc, np.vstack([u_obs[order[n_good:]], u_extra]), self.prior_weight)
        s, _ = enc.snap(good.sample(self.candidates, rng))
        score = good.log_pdf(s) - bad.log_pdf(s)
        return s[int(np.argmax(score))]


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``tpe``."""
    register("strategy", "tpe", TPEStrategy)
