"""Test functions with known minima, and one real tuning task, for ``bench_bayes.py``.

Each :class:`Problem` has a search space (hpt-async domains), a function of
a configuration, and the best value it can take; the regret of a run is its
best value minus that optimum.  Domains follow the usual definitions; Ackley
is searched on ``[-5, 10]^d`` so that its minimum is not the centre of the
box, which would favour samplers that draw towards the middle.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

import numpy as np

import hpt_async as hpt

__all__ = ["HIGH_DIM", "PROBLEMS", "Problem", "svr_problem"]


@dataclass(frozen=True)
class Problem:
    """A benchmark: ``space``, ``evaluate(params) -> loss``, the optimum ``best`` (None if unknown)."""

    name: str
    dim: int
    space: dict[str, hpt.Domain]
    evaluate: Callable[[Mapping[str, Any]], float]
    best: float | None

    @property
    def budget(self) -> int:
        """20 evaluations per dimension, at least 40."""
        return max(40, 20 * self.dim)


def _box(dim: int, low: float, high: float) -> dict[str, hpt.Domain]:
    return {f"x{i}": hpt.Float(low, high) for i in range(dim)}


def _vector(params: Mapping[str, Any], dim: int) -> np.ndarray:
    return np.array([params[f"x{i}"] for i in range(dim)], dtype=float)


def branin(params: Mapping[str, Any]) -> float:
    """Branin-Hoo on [-5, 10] x [0, 15]; minimum 0.397887 at three points."""
    x1, x2 = params["x0"], params["x1"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [
        [10, 3, 17, 3.5, 1.7, 8],
        [0.05, 10, 17, 0.1, 8, 14],
        [3, 3.5, 1.7, 10, 17, 8],
        [17, 8, 0.05, 10, 0.1, 14],
    ]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6(params: Mapping[str, Any]) -> float:
    """Hartmann 6-D on [0, 1]^6; minimum -3.32237."""
    x = _vector(params, 6)
    return float(-np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (x - _H_P) ** 2, axis=1))))


def ackley(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Ackley in ``dim`` dimensions; minimum 0 at the origin."""

    def f(params: Mapping[str, Any]) -> float:
        x = _vector(params, dim)
        a = -20.0 * math.exp(-0.2 * math.sqrt(float(np.mean(x * x))))
        b = -math.exp(float(np.mean(np.cos(2 * math.pi * x))))
        return a + b + 20.0 + math.e

    return f


def levy(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Levy in ``dim`` dimensions on [-10, 10]^d; minimum 0 at (1, ..., 1)."""

    def f(params: Mapping[str, Any]) -> float:
        w = 1 + (_vector(params, dim) - 1) / 4
        head = math.sin(math.pi * w[0]) ** 2
        mid = np.sum((w[:-1] - 1) ** 2 * (1 + 10 * np.sin(math.pi * w[:-1] + 1) ** 2))
        tail = (w[-1] - 1) ** 2 * (1 + math.sin(2 * math.pi * w[-1]) ** 2)
        return float(head + mid + tail)

    return f


def rosenbrock(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Rosenbrock in ``dim`` dimensions on [-5, 10]^d; minimum 0 at (1, ..., 1)."""

    def f(params: Mapping[str, Any]) -> float:
        x = _vector(params, dim)
        return float(np.sum(100 * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2))

    return f


def styblinski_tang(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Styblinski-Tang in ``dim`` dimensions on [-5, 5]^d; minimum -39.16617 d."""

    def f(params: Mapping[str, Any]) -> float:
        x = _vector(params, dim)
        return float(0.5 * np.sum(x**4 - 16 * x**2 + 5 * x))

    return f


def rastrigin(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Rastrigin in ``dim`` dimensions; minimum 0 at the origin (searched on [-4, 6]^d, off centre)."""

    def f(params: Mapping[str, Any]) -> float:
        x = _vector(params, dim)
        return float(10 * dim + np.sum(x * x - 10 * np.cos(2 * math.pi * x)))

    return f


def griewank(dim: int) -> Callable[[Mapping[str, Any]], float]:
    """Griewank in ``dim`` dimensions; minimum 0 at the origin (searched on [-400, 800]^d, off centre)."""

    def f(params: Mapping[str, Any]) -> float:
        x = _vector(params, dim)
        return float(1 + np.sum(x * x) / 4000 - np.prod(np.cos(x / np.sqrt(np.arange(1, dim + 1)))))

    return f


HIGH_DIM: dict[str, Callable[[int], Problem]] = {
    "ackley": lambda d: Problem(f"ackley{d}", d, _box(d, -5, 10), ackley(d), 0.0),
    "rosenbrock": lambda d: Problem(f"rosenbrock{d}", d, _box(d, -5, 10), rosenbrock(d), 0.0),
    "rastrigin": lambda d: Problem(f"rastrigin{d}", d, _box(d, -4, 6), rastrigin(d), 0.0),
    "levy": lambda d: Problem(f"levy{d}", d, _box(d, -10, 10), levy(d), 0.0),
    "styblinski": lambda d: Problem(f"styblinski{d}", d, _box(d, -5, 5), styblinski_tang(d), -39.16617 * d),
    "griewank": lambda d: Problem(f"griewank{d}", d, _box(d, -400, 800), griewank(d), 0.0),
}
"""The high-dimensional problems of ``bench_highdim.py``, built for a dimension ``d``."""


def svr_problem() -> Problem:
    """Support-vector regression on scikit-learn's diabetes data: 3-fold cross-validated error.

    The loss is the mean squared error on the standardised target (so 1.0 is
    no better than predicting the mean).  The space mixes log-scaled Floats
    (``C``, ``gamma``, ``epsilon``), a Choice (``kernel``) and a conditional
    Int (``degree``, only for the polynomial kernel).  Its optimum is
    unknown; the report measures regret from the best value any run found.
    """
    from sklearn.datasets import load_diabetes
    from sklearn.model_selection import KFold, cross_val_score
    from sklearn.svm import SVR

    data_x, data_y = load_diabetes(return_X_y=True)
    data_x = (data_x - data_x.mean(axis=0)) / data_x.std(axis=0)
    data_y = (data_y - data_y.mean()) / data_y.std()
    folds = KFold(n_splits=3, shuffle=True, random_state=0)
    space: dict[str, hpt.Domain] = {
        "C": hpt.Float(1e-2, 1e3, log=True),
        "gamma": hpt.Float(1e-4, 1e1, log=True),
        "epsilon": hpt.Float(1e-3, 1.0, log=True),
        "kernel": hpt.Choice(["rbf", "poly", "sigmoid"]),
        "degree": hpt.Int(2, 5, when={"kernel": "poly"}),
    }

    def evaluate(params: Mapping[str, Any]) -> float:
        model = SVR(
            C=params["C"],
            gamma=params["gamma"],
            epsilon=params["epsilon"],
            kernel=params["kernel"],
            degree=params.get("degree", 3),
            max_iter=20_000,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # solvers stopped at max_iter: the score says how good that was
            scores = cross_val_score(model, data_x, data_y, cv=folds, scoring="neg_mean_squared_error")
        return min(-float(np.mean(scores)), 10.0)  # a diverged fit counts as ten times the variance

    return Problem("svr-diabetes", 5, space, evaluate, None)


PROBLEMS: dict[str, Callable[[], Problem]] = {
    "branin": lambda: Problem("branin", 2, {"x0": hpt.Float(-5, 10), "x1": hpt.Float(0, 15)}, branin, 0.397887),
    "rosenbrock4": lambda: Problem("rosenbrock4", 4, _box(4, -5, 10), rosenbrock(4), 0.0),
    "levy5": lambda: Problem("levy5", 5, _box(5, -10, 10), levy(5), 0.0),
    "hartmann6": lambda: Problem("hartmann6", 6, _box(6, 0, 1), hartmann6, -3.32237),
    "styblinski8": lambda: Problem("styblinski8", 8, _box(8, -5, 5), styblinski_tang(8), -39.16617 * 8),
    "ackley10": lambda: Problem("ackley10", 10, _box(10, -5, 10), ackley(10), 0.0),
    "svr-diabetes": svr_problem,
}
"""Every benchmark by name (built on demand: the SVR task loads its data)."""
