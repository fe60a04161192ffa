"""Tune an XGBoost model in worker processes; a pruner stops poor trials between boosting rounds.

Run it (needs ``pip install xgboost scikit-learn``, or ``xgboost-cpu``)::

    python examples/xgboost_model.py                   # 24 trials, 2 processes, 60 rounds each
    python examples/xgboost_model.py --trials 4 --rounds 10 --executor thread

Gradient-boosted trees classify the breast-cancer data set that ships with
scikit-learn.  The objective is a plain ``def`` run on the process executor
(``--executor thread`` for threads): it receives a
:class:`hpt_async.SyncTrial` in the worker process and hands it to
:class:`~hpt_async.integrations.xgboost.XGBoostPruningCallback`, which
reports the validation log-loss after every round.  When the ASHA pruner
stops the trial, the report raises :class:`hpt_async.TrialPruned` and
``xgboost.train`` ends there.
"""

from __future__ import annotations

import argparse

import anyio
import xgboost as xgb
from sklearn.datasets import load_breast_cancer
from sklearn.model_selection import train_test_split

import hpt_async as hpt
from hpt_async.integrations.xgboost import XGBoostPruningCallback

SPACE = hpt.Space(
    {
        "eta": hpt.Float(0.01, 0.5, log=True),
        "max_depth": hpt.Int(2, 8),
        "subsample": hpt.Float(0.5, 1.0),
        "min_child_weight": hpt.Float(0.1, 10.0, log=True),
    }
)


def make_objective(rounds: int):  # type: ignore[no-untyped-def]
    def objective(trial: hpt.SyncTrial) -> float:
        """Boost for ``rounds`` rounds; the callback reports ``valid-logloss`` after each."""
        x, y = load_breast_cancer(return_X_y=True)
        x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.25, random_state=0)
        dtrain, dvalid = xgb.DMatrix(x_train, y_train), xgb.DMatrix(x_valid, y_valid)
        params = {"objective": "binary:logistic", "eval_metric": "logloss", "nthread": 1, "seed": 0, **trial.params}
        history: dict[str, dict[str, list[float]]] = {}
        xgb.train(
            params,
            dtrain,
            num_boost_round=rounds,
            evals=[(dvalid, "valid")],
            evals_result=history,
            verbose_eval=False,
            callbacks=[XGBoostPruningCallback(trial, monitor="valid-logloss")],  # raises TrialPruned to stop
        )
        return history["valid"]["logloss"][-1]

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="number of trials (default 24)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--rounds", type=int, default=60, help="boosting rounds per trial (default 60)")
    parser.add_argument("--executor", choices=["process", "thread"], default="process", help="where trials run")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print the outcome; return the study result."""
    args = parse_args(argv)
    tuner = hpt.Tuner(
        make_objective(args.rounds),
        SPACE,
        direction="minimize",
        pruner=hpt.ASHAPruner(eta=3, max_resource=args.rounds),
        executor=args.executor,
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        loggers=[],
        study="xgboost-cancer",
    )
    result = anyio.run(tuner.run)
    print(f"trials: {len(result.trials)} ({result.count('complete')} complete, {result.count('failed')} failed)")
    print(f"pruned: {result.count('pruned')}")
    print(f"rounds trained: {sum(len(t.reports) for t in result.trials)} of {len(result.trials) * args.rounds}")
    if result.best is not None:
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")
    return result


if __name__ == "__main__":
    main()
