"""``strategy="local-search"``: random start-up, then perturbations of the best trial."""

from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
from hpt_async import Choice, Strategy, TrialState

if TYPE_CHECKING:
    from hpt_async import StudyView, TrialRecord

__all__ = ["LocalSearchStrategy"]

_MASK64 = (1 << 64) - 1
_GROW = 1.5  # sigma's factor after an improvement; a miss shrinks it by _GROW ** -0.25
_MAX_SCALE = 0.5
_TRIES = 10  # perturbations drawn before giving up on leaving the best point


def _reflect(u: np.ndarray) -> np.ndarray:
    """Fold values back into ``[0, 1]`` as a mirror would."""
    u = np.mod(u, 2.0)
    return np.where(u > 1.0, 2.0 - u, u)


class LocalSearchStrategy(Strategy):
    """Local search around the best trial, with a step that adapts itself.

    Trials ``0 .. n_startup - 1`` are drawn at random (``space.sample(seed,
    n)``, the same configurations as ``strategy="random"``).  Every later
    trial starts from the best COMPLETE trial, encoded in the unit cube:

    * numeric parameters move by a Gaussian step of standard deviation
      ``sigma`` (in unit-cube coordinates, reflected at the faces);
    * a Choice parameter is redrawn at random with probability ``sigma``;
    * a parameter inactive in the best trial gets a fresh uniform coordinate,
      used when the move activates it.

    ``sigma`` starts at ``scale`` and follows the one-fifth success rule: it
    grows by 1.5 after a trial that beats the best so far and shrinks by
    ``1.5 ** -0.25`` after one that does not (COMPLETE or PRUNED), never
    below ``min_scale``, so a study ends up polishing its best point.

    The random draws of trial ``n`` come from ``(seed, n)``; the centre and
    ``sigma`` depend on the trials finished before it, so a whole study
    reproduces exactly at ``concurrency=1``.  On resume, :meth:`start`
    replays the stored trials to rebuild ``sigma``.
    """

    name = "local-search"

    def __init__(self, n_startup: int = 10, *, scale: float = 0.2, min_scale: float = 1e-3) -> None:
        if isinstance(n_startup, bool) or not isinstance(n_startup, int) or n_startup < 1:
            raise ValueError(f"n_startup must be an int >= 1, got {n_startup!r}")
        if not 0 < min_scale <= scale <= _MAX_SCALE:
            raise ValueError(f"need 0 < min_scale <= scale <= {_MAX_SCALE}, got min_scale={min_scale}, scale={scale}")
        self.n_startup = n_startup
        self.scale = scale
        self.min_scale = min_scale
        self.sigma = scale
        self._best_loss = math.inf
        self._is_choice = np.zeros(0, dtype=bool)

    async def start(self, study: StudyView) -> None:
        self._is_choice = np.array([isinstance(study.space[name], Choice) for name in study.space])
        self.sigma = self.scale
        self._best_loss = math.inf
        for record in study.finished():
            self._learn(study, record)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        space = study.space
        best = study.best
        if number < self.n_startup or best is None:
            return space.sample(study.seed, number)
        rng = np.random.default_rng([study.seed & _MASK64, number])
        centre = np.array(space.to_unit(best.params))
        inactive = np.isnan(centre)
        numeric = ~self._is_choice
        for _ in range(_TRIES):
            u = centre.copy()
            u[inactive] = rng.random(int(inactive.sum()))
            u[numeric] = _reflect(u[numeric] + rng.normal(0.0, self.sigma, int(numeric.sum())))
            redraw = self._is_choice & (rng.random(len(u)) < self.sigma)
            u[redraw] = rng.random(int(redraw.sum()))
            params = space.from_unit(u)
            if params != best.params:
                return params
        # sigma is too small to leave the best point (an all-Int or all-Choice space): jump elsewhere.
        return space.sample(study.seed, number)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._learn(study, record)

    def _learn(self, study: StudyView, record: TrialRecord) -> None:
        if record.state is TrialState.COMPLETE and record.value is not None:
            loss = study.sign() * record.value
            improved = loss < self._best_loss
            self._best_loss = min(loss, self._best_loss)
        elif record.state is TrialState.PRUNED:
            improved = False
        else:  # FAILED, CANCELLED and LOST trials say nothing about sigma
            return
        if record.number < self.n_startup:
            return
        if improved:
            self.sigma = min(self.sigma * _GROW, _MAX_SCALE)
        else:
            self.sigma = max(self.sigma * _GROW**-0.25, self.min_scale)
