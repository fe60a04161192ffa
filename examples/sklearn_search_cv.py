"""TunerSearchCV: scikit-learn's search API, with a model-based strategy and pruning between folds.

Run it (needs scikit-learn: ``pip install 'hpt-async[sklearn]'``)::

    python examples/sklearn_search_cv.py                     # 40 candidates, TPE, median pruning, 2 at once
    python examples/sklearn_search_cv.py --trials 12 --storage sqlite:///search.db   # resumable

A support-vector classifier behind a ``StandardScaler`` is tuned on the
digits data set that ships with scikit-learn (nothing is downloaded).
:class:`hpt_async.sklearn.TunerSearchCV` is used exactly as
``RandomizedSearchCV`` would be: ``fit``, then ``best_params_``,
``best_score_``, ``cv_results_`` and ``score`` on held-out data.  Each
candidate is a trial; the median pruner sees the mean accuracy after each
fold and stops a candidate that trails the others, so poor ones cost fewer
fits.  With ``--storage``, running the script again resumes the search.
"""

from __future__ import annotations

import argparse

import numpy as np
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split
from sklearn.pipeline import make_pipeline
from sklearn.preprocessing import StandardScaler
from sklearn.svm import SVC

import hpt_async as hpt
from hpt_async.sklearn import TunerSearchCV

SPACE = {
    "svc__C": hpt.Float(1e-2, 1e3, log=True),
    "svc__gamma": hpt.Float(1e-5, 1e-1, log=True),
    "svc__kernel": ["rbf", "sigmoid"],  # a list is a Choice
}


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="candidates to evaluate (default 40)")
    parser.add_argument("--jobs", type=int, default=2, help="candidates at once (default 2)")
    parser.add_argument("--folds", type=int, default=5, help="cross-validation folds (default 5)")
    parser.add_argument("--samples", type=int, default=None, help="use only this many samples (faster)")
    parser.add_argument("--storage", default="memory", help="e.g. sqlite:///search.db to resume (default memory)")
    parser.add_argument("--seed", type=int, default=0, help="the search's seed (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> TunerSearchCV:
    """Search, print the summary lines the tests read, return the fitted search."""
    args = parse_args(argv)
    X, y = load_digits(return_X_y=True)
    if args.samples:
        X, y = X[: args.samples], y[: args.samples]
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    search = TunerSearchCV(
        make_pipeline(StandardScaler(), SVC()),
        SPACE,
        n_trials=args.trials,
        cv=args.folds,
        strategy={"name": "tpe", "n_initial": 8},
        pruner={"name": "median", "min_trials": 4},
        n_jobs=args.jobs,
        storage=args.storage,
        study=None if args.storage == "memory" else "digits-svc",
        random_state=args.seed,
    )
    search.fit(X_train, y_train)

    states = search.trial_states_
    splits = [search.cv_results_[f"split{k}_test_score"] for k in range(search.n_splits_)]
    fits = int(np.isfinite(np.array(splits)).sum())  # a pruned candidate's skipped folds are NaN
    print(f"candidates: {len(states)} ({states.count('complete')} complete, {states.count('pruned')} pruned)")
    print(f"fold fits: {fits} of {len(states) * search.n_splits_}")
    print(f"best params: {search.best_params_}")
    print(f"best cv accuracy: {search.best_score_:.4f}")
    print(f"held-out accuracy: {search.score(X_test, y_test):.4f}")
    return search


if __name__ == "__main__":
    main()
