"""Hyperparameter importance: a functional-ANOVA-style split of a random forest's variance.

A scikit-learn random forest learns the objective value from the complete
trials' parameters (each mapped into ``[0, 1]``, log parameters on a log
scale, a Choice by its index, an inactive conditional parameter as -1).  For
each parameter the forest's *main effect* is its partial dependence: the
prediction averaged over the other parameters (the observed trials) with
that parameter held at a value.  The variance of the main effect over the
parameter's observed values, divided by the variance of the forest's
predictions, is the share of the variation that parameter explains alone;
what no main effect explains comes from interactions.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from ..exceptions import HptError
from ._data import StudyData

__all__ = ["MIN_TRIALS", "Importance", "ImportanceUnavailable", "compute_importance"]

MIN_TRIALS = 8
"""Fewer complete trials than this give no importance."""

_GRID = 24
_BACKGROUND = 200


class ImportanceUnavailable(HptError):
    """Importance cannot be computed; the message says why and what would help."""


@dataclass(frozen=True)
class Importance:
    """The result: ``shares`` (parameter -> main-effect variance fraction, largest first).

    ``explained`` is the sum of the shares (at most about 1; the rest is
    interactions), ``n_trials`` how many complete trials the forest learnt
    from, ``log_values`` whether it learnt the values' base-10 logarithm.
    """

    shares: dict[str, float]
    explained: float
    n_trials: int
    log_values: bool


def _log_values(values: np.ndarray) -> bool:
    return bool(values.size) and bool(np.all(values > 0)) and float(values.max() / values.min()) >= 100


def compute_importance(data: StudyData, *, seed: int = 0) -> Importance:
    """The main-effect variance share of each parameter (see the module docstring).

    Raises :class:`ImportanceUnavailable` with a readable reason when there
    are too few complete trials, nothing varies, or scikit-learn is missing.
    """
    trials = data.complete()
    if len(trials) < MIN_TRIALS:
        raise ImportanceUnavailable(
            f"Importance needs at least {MIN_TRIALS} complete trials; this study has {len(trials)} so far."
        )
    if not data.params:
        raise ImportanceUnavailable("This study has no parameters.")
    try:
        from sklearn.ensemble import RandomForestRegressor
    except ImportError:
        raise ImportanceUnavailable(
            "Importance needs scikit-learn, which is not installed: pip install 'hpt-async[report]'."
        ) from None
    columns = []
    for p in data.params:
        col = []
        for t in trials:
            u = p.unit(t.params[p.name]) if p.name in t.params else None
            col.append(-1.0 if u is None else u)
        columns.append(col)
    x = np.array(columns, dtype=float).T
    y = np.array([t.value for t in trials], dtype=float)
    log_values = _log_values(y)
    if log_values:
        y = np.log10(y)
    biggest = float(np.max(np.abs(y)))
    if 0 < biggest < math.inf:
        y = y / biggest  # shares do not depend on the scale, and values near +-1e308 would overflow a spread
    varying = [j for j in range(x.shape[1]) if np.ptp(x[:, j]) > 0]
    if not varying:
        raise ImportanceUnavailable("No parameter took more than one value among the complete trials.")
    if float(np.ptp(y)) == 0:
        raise ImportanceUnavailable("Every complete trial has the same value: nothing to explain.")
    forest = RandomForestRegressor(n_estimators=64, min_samples_leaf=2, random_state=seed, n_jobs=1)
    forest.fit(x, y)
    rng = np.random.default_rng(seed)
    background = x if len(x) <= _BACKGROUND else x[rng.choice(len(x), _BACKGROUND, replace=False)]
    total = float(np.var(forest.predict(background)))
    shares: dict[str, float] = {}
    for j, p in enumerate(data.params):
        if j not in varying or total <= 0:
            shares[p.name] = 0.0
            continue
        observed = x[:, j]
        grid = np.unique(observed)
        if len(grid) > _GRID:
            grid = np.unique(np.quantile(observed, np.linspace(0, 1, _GRID), method="nearest"))
        # Each observed value counts for its nearest grid point.
        mids = (grid[1:] + grid[:-1]) / 2
        weights = np.bincount(np.searchsorted(mids, observed), minlength=len(grid)).astype(float)
        stacked = np.repeat(background[None, :, :], len(grid), axis=0)
        stacked[:, :, j] = grid[:, None]
        effect = forest.predict(stacked.reshape(-1, x.shape[1])).reshape(len(grid), -1).mean(axis=1)
        mean = float(np.average(effect, weights=weights))
        variance = float(np.average((effect - mean) ** 2, weights=weights))
        shares[p.name] = min(1.0, max(0.0, variance / total))
    ordered = dict(sorted(shares.items(), key=lambda kv: -kv[1]))
    explained = sum(ordered.values())
    return Importance(ordered, explained if math.isfinite(explained) else 0.0, len(trials), log_values)
