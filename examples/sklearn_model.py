"""Tune a real scikit-learn model with a plain ``def`` objective.

Run it (needs scikit-learn: ``pip install hpt-async[examples]``)::

    python examples/sklearn_model.py                  # 64 Sobol trials, 4 at once
    python examples/sklearn_model.py --trials 16 --strategy grid

A linear classifier (``SGDClassifier`` behind a ``StandardScaler``) is tuned
on the breast-cancer data set that ships with scikit-learn, so nothing is
downloaded.  The objective is an ordinary function: hpt-async sees that it is
not ``async def`` and runs it in worker threads, so the event loop stays free
while the model fits.  It receives a :class:`hpt_async.SyncTrial`, whose
``report`` is called without ``await``.  The score is the cross-validated
accuracy, so the study maximises.
"""

from __future__ import annotations

import argparse
import warnings

import anyio
from sklearn.datasets import load_breast_cancer
from sklearn.exceptions import ConvergenceWarning
from sklearn.linear_model import SGDClassifier
from sklearn.model_selection import StratifiedKFold
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import hpt_async as hpt

X, Y = load_breast_cancer(return_X_y=True)
FOLDS = 5

SPACE = hpt.Space(
    {
        "alpha": hpt.Float(1e-6, 1.0, log=True),  # regularisation strength
        "loss": hpt.Choice(["hinge", "log_loss", "modified_huber"]),
        "penalty": hpt.Choice(["l2", "l1", "elasticnet"]),
        # The L1/L2 mix only means something for the elastic net.
        "l1_ratio": hpt.Float(0.05, 0.95, when={"penalty": "elasticnet"}),
    }
)


def make_model(**params: object) -> Pipeline:
    """The pipeline being tuned; ``params`` go to the classifier."""
    return make_pipeline(StandardScaler(), SGDClassifier(max_iter=200, tol=1e-3, random_state=0, **params))


def objective(trial: hpt.SyncTrial) -> float:
    """Mean accuracy over stratified folds, reported fold by fold."""
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
    scores: list[float] = []
    for fold, (train, test) in enumerate(folds.split(X, Y)):
        model = make_model(**trial.params)  # inactive parameters are absent, so sklearn keeps its default
        model.fit(X[train], Y[train])
        scores.append(model.score(X[test], Y[test]))
        # Plain call, no await: a pruner would decide here whether to go on.
        trial.report(sum(scores) / len(scores), step=fold)
    return sum(scores) / len(scores)


def baseline() -> float:
    """Cross-validated accuracy of the classifier with scikit-learn's defaults."""
    folds = StratifiedKFold(FOLDS, shuffle=True, random_state=0)
    scores = [make_model().fit(X[tr], Y[tr]).score(X[te], Y[te]) for tr, te in folds.split(X, Y)]
    return sum(scores) / len(scores)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="number of trials (default 64)")
    parser.add_argument("--concurrency", type=int, default=4, help="trials (threads) at once (default 4)")
    parser.add_argument("--seed", type=int, default=0, help="seed scrambling the Sobol sequence (default 0)")
    parser.add_argument("--strategy", choices=["sobol", "grid"], default="sobol", help="search strategy")
    parser.add_argument("--grid-points", type=int, default=4, help="values per numeric parameter with --strategy grid")
    return parser.parse_args(argv)


def make_tuner(args: argparse.Namespace) -> hpt.Tuner:
    """Configure the study (nothing runs yet)."""
    # A strategy is a registered name, or an object when it takes options.
    strategy = hpt.GridStrategy(points=args.grid_points) if args.strategy == "grid" else "sobol"
    tuner = hpt.Tuner(
        objective,
        SPACE,
        direction="maximize",
        strategy=strategy,
        max_trials=args.trials,  # grid search also stops early when the grid runs out
        concurrency=args.concurrency,
        seed=args.seed,
        study="sklearn-sgd",
    )
    return tuner


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, compare with the defaults; return the study result."""
    args = parse_args(argv)
    # Small max_iter keeps trials fast; some configurations stop before converging, which is fine here.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    # From synchronous code, anyio.run starts an event loop for the run.
    result = anyio.run(make_tuner(args).run)

    complete = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE]
    print(f"trials: {len(result.trials)} ({len(complete)} complete, {result.count('failed')} failed)")
    print(f"stopped because: {result.reason}")
    print(f"default SGDClassifier accuracy: {baseline():.4f}")
    if result.best is None:
        print("best params: None")
        print("best value: None")
    else:
        print(f"best trial: {result.best.number}")
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")
    return result


if __name__ == "__main__":
    main()
