"""Trade accuracy against model size, under a memory budget: several objectives and a constraint.

Run it (needs scikit-learn: ``pip install hpt-async[examples]``)::

    python examples/multi_objective.py                    # 60 trials, 2 at once
    python examples/multi_objective.py --trials 20 --epochs 6 --max-weights 4000

A small neural network (scikit-learn's ``MLPClassifier``) learns the digits
data set that ships with scikit-learn.  The study has two objectives: the
validation error (minimised) and the number of weights of the network
(minimised), named with ``metric_names`` so that the console, the CLI and
exports show them by name.  A network must also fit a memory budget:
``trial.set_constraints([weights - max_weights])`` records a constraint,
satisfied when ``<= 0``, and only feasible trials can be on the Pareto front.

The ``evolution`` strategy searches with NSGA-II selection, and the ``asha``
pruner stops, epoch by epoch, the networks whose (error, size) a rung ranks
low by non-dominated sorting (MO-ASHA).  The result is not one best trial but
a front of them: ``result.best_trials``, and its hypervolume.
"""

from __future__ import annotations

import argparse
import warnings
from itertools import pairwise

import anyio
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import hpt_async as hpt

X, Y = load_digits(return_X_y=True)
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = train_test_split(X, Y, test_size=0.3, stratify=Y, random_state=0)
_scaler = StandardScaler().fit(X_TRAIN)
X_TRAIN, X_VALID = _scaler.transform(X_TRAIN), _scaler.transform(X_VALID)
CLASSES = np.unique(Y)

SPACE = hpt.Space(
    {
        "layers": hpt.Int(1, 2),
        "width": hpt.Int(4, 128, log=True),
        "learning_rate_init": hpt.Float(1e-3, 1e-1, log=True),
        "alpha": hpt.Float(1e-6, 1e-1, log=True),
    }
)


def weights(params: dict[str, int | float]) -> int:
    """How many weights (and biases) the network of ``params`` has."""
    sizes = [X.shape[1]] + [int(params["width"])] * int(params["layers"]) + [len(CLASSES)]
    return sum((a + 1) * b for a, b in pairwise(sizes))


def make_objective(epochs: int, max_weights: int):  # type: ignore[no-untyped-def]
    """The objective: train ``epochs`` epochs, reporting (error, weights) after each; return them."""

    def objective(trial: hpt.SyncTrial) -> tuple[float, float]:
        p = trial.params
        size = weights(p)
        trial.set_constraints([size - max_weights])  # the memory budget: satisfied when <= 0
        model = MLPClassifier(
            hidden_layer_sizes=(int(p["width"]),) * int(p["layers"]),
            learning_rate_init=float(p["learning_rate_init"]),
            alpha=float(p["alpha"]),
            batch_size=64,
            random_state=0,
        )
        error = 1.0
        for epoch in range(1, epochs + 1):
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(X_TRAIN, Y_TRAIN, classes=CLASSES)
            error = 1.0 - float(model.score(X_VALID, Y_VALID))
            trial.report((error, float(size)), step=epoch)  # both objectives: the pruner ranks by both
        return error, float(size)

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=60, help="number of trials (default 60)")
    parser.add_argument("--epochs", type=int, default=9, help="epochs of a full training (default 9)")
    parser.add_argument("--max-weights", type=int, default=6000, help="the memory budget in weights (default 6000)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials (threads) at once (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed (default 0)")
    parser.add_argument("--storage", default="memory", help="where the study is kept (default: memory)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print the Pareto front; return the study result."""
    args = parse_args(argv)
    tuner = hpt.Tuner(
        make_objective(args.epochs, args.max_weights),
        SPACE,
        directions=["minimize", "minimize"],
        metric_names=["error", "weights"],
        strategy="evolution",
        pruner={"name": "asha", "min_resource": 1, "eta": 3, "max_resource": args.epochs},
        storage=args.storage,
        study="digits-mo" if args.storage != "memory" else None,
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        loggers=[],
    )
    result = anyio.run(tuner.run)
    front = result.best_trials
    print(f"trials: {len(result.trials)} ({result.count('complete')} complete, {result.count('pruned')} pruned)")
    print(f"feasible: {result.n_feasible} of {result.count('complete')} complete trials fit {args.max_weights} weights")
    print(f"pareto front: {len(front)} trials")
    if front:
        # A fixed reference point (error 1, the budget) makes hypervolumes of different runs comparable.
        print(f"hypervolume: {result.hypervolume([1.0, float(args.max_weights)]):.2f}")
    for t in sorted(front, key=lambda t: t.values[1]):  # type: ignore[index]
        error, size = t.values  # type: ignore[misc]
        print(f"  trial {t.number:3d}  error {error:.4f}  weights {int(size):6d}  {dict(t.params)}")
    return result


if __name__ == "__main__":
    main()
