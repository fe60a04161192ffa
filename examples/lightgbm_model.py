"""Tune a LightGBM model; a pruner stops poor trials between boosting rounds.

Run it (needs ``pip install lightgbm scikit-learn``)::

    python examples/lightgbm_model.py                  # 24 trials, 2 at once, 60 rounds each
    python examples/lightgbm_model.py --trials 4 --rounds 10

Gradient-boosted trees regress the diabetes data set that ships with
scikit-learn.  The objective is a plain ``def`` run in worker threads; it
hands its :class:`hpt_async.SyncTrial` to
:class:`~hpt_async.integrations.lightgbm.LightGBMPruningCallback`, which
reports the validation L2 loss after every round.  When the ASHA pruner
stops the trial, the report raises :class:`hpt_async.TrialPruned` and
``lightgbm.train`` ends there.
"""

from __future__ import annotations

import argparse

import anyio
import lightgbm as lgb
from sklearn.datasets import load_diabetes
from sklearn.model_selection import train_test_split

import hpt_async as hpt
from hpt_async.integrations.lightgbm import LightGBMPruningCallback

SPACE = hpt.Space(
    {
        "learning_rate": hpt.Float(0.01, 0.3, log=True),
        "num_leaves": hpt.Int(4, 64, log=True),
        "min_data_in_leaf": hpt.Int(5, 50),
        "feature_fraction": hpt.Float(0.5, 1.0),
    }
)

X, Y = load_diabetes(return_X_y=True)
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = train_test_split(X, Y, test_size=0.25, random_state=0)


def make_objective(rounds: int):  # type: ignore[no-untyped-def]
    def objective(trial: hpt.SyncTrial) -> float:
        """Boost for ``rounds`` rounds; the callback reports ``valid-l2`` after each."""
        train = lgb.Dataset(X_TRAIN, Y_TRAIN)
        valid = lgb.Dataset(X_VALID, Y_VALID, reference=train)
        params = {"objective": "regression", "metric": "l2", "verbose": -1, "num_threads": 1, **trial.params}
        recorded: dict[str, dict[str, list[float]]] = {}
        lgb.train(
            params,
            train,
            num_boost_round=rounds,
            valid_sets=[valid],
            valid_names=["valid"],
            callbacks=[lgb.record_evaluation(recorded), LightGBMPruningCallback(trial, monitor="valid-l2")],
        )
        return recorded["valid"]["l2"][-1]

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=24, help="number of trials (default 24)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials (threads) at once (default 2)")
    parser.add_argument("--rounds", type=int, default=60, help="boosting rounds per trial (default 60)")
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
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        loggers=[],
        study="lightgbm-diabetes",
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
