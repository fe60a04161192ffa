"""TunerSearchCV: side by side with RandomizedSearchCV, pruning, executors, resuming, errors."""

from __future__ import annotations

import asyncio
import pickle
import warnings
from typing import Any

import numpy as np
import pytest

pytest.importorskip("sklearn")

from scipy.stats import loguniform
from sklearn.base import BaseEstimator, ClassifierMixin, clone
from sklearn.datasets import make_classification, make_regression
from sklearn.exceptions import FitFailedWarning, NotFittedError
from sklearn.linear_model import LogisticRegression, Ridge
from sklearn.model_selection import KFold, RandomizedSearchCV

import hpt_async as hpt
from hpt_async.sklearn import CV_ATTR, TunerSearchCV

X_CLS, Y_CLS = make_classification(
    n_samples=120, n_features=4, n_informative=3, n_redundant=0, n_classes=3, random_state=0
)
X_REG, Y_REG = make_regression(n_samples=80, n_features=5, noise=5.0, random_state=0)


class Replay(hpt.Strategy):
    """Proposes the given candidates in order, then nothing."""

    name = "replay"

    def __init__(self, candidates: list[dict[str, Any]]) -> None:
        self.candidates = candidates

    async def ask(self, study: Any, number: int) -> dict[str, Any] | None:
        return dict(self.candidates[number]) if number < len(self.candidates) else None


def same_candidates(reference: RandomizedSearchCV, space: dict[str, Any], **options: Any) -> TunerSearchCV:
    """A TunerSearchCV that evaluates exactly the candidates ``reference`` drew, in the same order."""
    candidates = [dict(p) for p in reference.cv_results_["params"]]
    search = TunerSearchCV(
        clone(reference.estimator),
        space,
        n_trials=len(candidates),
        strategy=Replay(candidates),
        scoring=reference.scoring,
        refit=reference.refit,
        cv=reference.cv,
        return_train_score=reference.return_train_score,
        **options,
    )
    return search


def assert_same_results(ours: dict[str, Any], theirs: dict[str, Any]) -> None:
    assert sorted(ours) == sorted(theirs)
    for key, value in theirs.items():
        if key.startswith(("split", "mean_test", "mean_train", "std_test", "std_train", "rank_")):
            np.testing.assert_allclose(ours[key], value, rtol=1e-12, err_msg=key)
        elif key == "params":
            assert ours[key] == value
        elif key.startswith("param_"):
            assert list(ours[key]) == list(value), key


def test_same_candidates_give_randomizedsearchcv_results_and_best() -> None:
    distributions = {"C": loguniform(1e-3, 1e2), "fit_intercept": [True, False]}
    reference = RandomizedSearchCV(LogisticRegression(max_iter=300), distributions, n_iter=8, cv=4, random_state=3).fit(
        X_CLS, Y_CLS
    )
    space = {"C": hpt.Float(1e-3, 1e2, log=True), "fit_intercept": [True, False]}
    ours = same_candidates(reference, space).fit(X_CLS, Y_CLS)

    assert_same_results(ours.cv_results_, reference.cv_results_)
    assert ours.best_index_ == reference.best_index_
    assert ours.best_params_ == reference.best_params_
    assert ours.best_score_ == pytest.approx(reference.best_score_)
    np.testing.assert_array_equal(ours.predict(X_CLS), reference.predict(X_CLS))
    np.testing.assert_allclose(ours.predict_proba(X_CLS), reference.predict_proba(X_CLS))
    np.testing.assert_allclose(ours.decision_function(X_CLS), reference.decision_function(X_CLS))
    assert ours.score(X_CLS, Y_CLS) == pytest.approx(reference.score(X_CLS, Y_CLS))
    assert list(ours.classes_) == list(reference.classes_)
    assert ours.n_splits_ == 4 and ours.n_features_in_ == 4
    assert ours.trial_states_ == ["complete"] * 8
    assert list(ours.trial_numbers_) == list(range(8))


def test_several_metrics_with_train_scores_and_refit_by_name() -> None:
    scoring = {"acc": "accuracy", "f1": "f1_macro"}
    reference = RandomizedSearchCV(
        LogisticRegression(max_iter=300),
        {"C": loguniform(1e-3, 1e2)},
        n_iter=6,
        cv=3,
        scoring=scoring,
        refit="f1",
        return_train_score=True,
        random_state=1,
    ).fit(X_CLS, Y_CLS)
    ours = same_candidates(reference, {"C": hpt.Float(1e-3, 1e2, log=True)}).fit(X_CLS, Y_CLS)

    assert_same_results(ours.cv_results_, reference.cv_results_)
    assert ours.multimetric_ and set(ours.scorer_) == {"acc", "f1"}
    assert ours.best_index_ == reference.best_index_
    assert ours.best_score_ == pytest.approx(reference.best_score_)
    assert ours.score(X_CLS, Y_CLS) == pytest.approx(reference.score(X_CLS, Y_CLS))


def test_a_callable_refit_picks_the_same_index() -> None:
    def most_stable(results: dict[str, Any]) -> int:
        return int(np.argmin(results["std_test_score"]))

    reference = RandomizedSearchCV(
        Ridge(), {"alpha": loguniform(1e-2, 1e3)}, n_iter=6, cv=KFold(3), refit=most_stable, random_state=0
    ).fit(X_REG, Y_REG)
    ours = same_candidates(reference, {"alpha": hpt.Float(1e-2, 1e3, log=True)}).fit(X_REG, Y_REG)
    assert ours.best_index_ == reference.best_index_ == most_stable(reference.cv_results_)
    assert not hasattr(ours, "best_score_")
    np.testing.assert_allclose(ours.predict(X_REG), reference.predict(X_REG))


def test_refit_false_keeps_the_best_but_no_estimator() -> None:
    search = TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 10.0)}, n_trials=3, cv=3, refit=False, random_state=0)
    search.fit(X_REG, Y_REG)
    assert search.best_params_ == search.cv_results_["params"][search.best_index_]
    assert not hasattr(search, "best_estimator_")
    with pytest.raises(AttributeError, match="no attribute 'predict'") as info:
        search.predict(X_REG)
    assert "refit=False" in str(info.value.__cause__)


def test_bad_refit_and_scoring_are_refused() -> None:
    with pytest.raises(ValueError, match="refit must be set to a scorer key"):
        scoring = ["r2", "neg_mean_squared_error"]
        TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 1.0)}, scoring=scoring, n_trials=1).fit(X_REG, Y_REG)
    with pytest.raises(TypeError, match="scipy distributions are not accepted"):
        TunerSearchCV(Ridge(), {"alpha": loguniform(0.1, 1.0)}, n_trials=1).fit(X_REG, Y_REG)
    with pytest.raises(ValueError, match="n_trials"):
        TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 1.0)}, n_trials=0).fit(X_REG, Y_REG)
    with pytest.raises(NotFittedError):
        TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 1.0)}).predict(X_REG)


def test_a_pruner_sees_the_folds_as_steps_and_pruned_candidates_rank_last() -> None:
    search = TunerSearchCV(
        Ridge(),
        {"alpha": hpt.Float(1e-2, 1e5, log=True)},
        n_trials=14,
        cv=5,
        pruner={"name": "median", "min_trials": 3},
        random_state=0,
    ).fit(X_REG, Y_REG)
    results = search.cv_results_
    pruned = [i for i, s in enumerate(search.trial_states_) if s == "pruned"]
    assert pruned, "the median pruner stopped no candidate"
    for i in pruned:
        splits = np.array([results[f"split{k}_test_score"][i] for k in range(5)])
        ran = ~np.isnan(splits)
        assert ran[0] and not ran.all()  # it ran some folds, then stopped
        assert list(ran) == sorted(ran, reverse=True)  # the folds run are the first ones
        assert np.isnan(results["mean_test_score"][i])
        assert results["rank_test_score"][i] == results["rank_test_score"].max()
        assert np.isfinite(results["mean_fit_time"][i])
    best = search.best_index_
    assert search.trial_states_[best] == "complete"
    assert search.best_score_ == np.nanmax(results["mean_test_score"])


def test_the_process_executor_gives_the_thread_executors_results() -> None:
    options = dict(n_trials=4, cv=3, random_state=5)
    space = {"alpha": hpt.Float(0.01, 100.0, log=True), "fit_intercept": [True, False]}
    threads = TunerSearchCV(Ridge(), space, n_jobs=2, **options).fit(X_REG, Y_REG)
    processes = TunerSearchCV(Ridge(), space, n_jobs=2, executor="process", **options).fit(X_REG, Y_REG)
    assert processes.cv_results_["params"] == threads.cv_results_["params"]
    np.testing.assert_allclose(processes.cv_results_["mean_test_score"], threads.cv_results_["mean_test_score"])
    assert processes.best_params_ == threads.best_params_


def test_a_search_resumes_from_its_storage(tmp_path) -> None:
    url = f"sqlite:///{tmp_path / 'search.db'}"
    space = {"alpha": hpt.Float(0.01, 100.0, log=True)}
    first = TunerSearchCV(Ridge(), space, n_trials=3, cv=3, storage=url, study="ridge", random_state=2)
    first.fit(X_REG, Y_REG)
    resumed = TunerSearchCV(Ridge(), space, n_trials=5, cv=3, storage=url, study="ridge")
    resumed.fit(X_REG, Y_REG)
    assert list(resumed.trial_numbers_) == [0, 1, 2, 3, 4]
    assert resumed.cv_results_["params"][:3] == first.cv_results_["params"]
    np.testing.assert_array_equal(resumed.cv_results_["split0_test_score"][:3], first.cv_results_["split0_test_score"])
    assert resumed.seed_ == first.seed_ == 2  # the stored seed carries on
    study = hpt.load_study(url, "ridge")
    assert all(CV_ATTR in t.user_attrs for t in study.trials)
    with pytest.raises(ValueError, match="same data and cv"):
        TunerSearchCV(Ridge(), space, n_trials=6, cv=4, storage=url, study="ridge").fit(X_REG, Y_REG)
    with pytest.raises(ValueError, match="study name"):
        TunerSearchCV(Ridge(), space, storage=url).fit(X_REG, Y_REG)


class Fragile(ClassifierMixin, BaseEstimator):
    """Fails to fit when ``breaks`` is set; otherwise predicts the majority class."""

    def __init__(self, breaks: bool = False) -> None:
        self.breaks = breaks

    def fit(self, X, y):
        if self.breaks:
            raise ArithmeticError("this configuration cannot be fitted")
        values, counts = np.unique(y, return_counts=True)
        self.classes_ = values
        self.majority_ = values[np.argmax(counts)]
        return self

    def predict(self, X):
        return np.full(len(X), self.majority_)


def test_error_score_fills_failed_folds_and_warns() -> None:
    search = TunerSearchCV(Fragile(), {"breaks": [False, True]}, strategy="grid", n_trials=2, cv=3, error_score=-1.0)
    with pytest.warns(FitFailedWarning, match="3 fits failed out of a total of 6"):
        search.fit(X_CLS, Y_CLS)
    broken = search.cv_results_["params"].index({"breaks": True})
    assert search.cv_results_["mean_test_score"][broken] == -1.0
    assert search.best_params_ == {"breaks": False}


def test_every_fit_failing_is_a_value_error_and_raise_gives_the_original() -> None:
    with pytest.raises(ValueError, match="All the 3 fits failed"):
        TunerSearchCV(Fragile(breaks=True), {"breaks": [True]}, n_trials=1, cv=3).fit(X_CLS, Y_CLS)
    with pytest.raises(ArithmeticError, match="cannot be fitted"):
        TunerSearchCV(Fragile(), {"breaks": [True]}, n_trials=2, cv=3, error_score="raise").fit(X_CLS, Y_CLS)


def test_fit_params_are_cut_to_each_training_fold() -> None:
    weights = np.linspace(0.5, 2.0, len(Y_REG))
    search = TunerSearchCV(Ridge(), {"alpha": [1.0]}, n_trials=1, cv=KFold(4))
    search.fit(X_REG, Y_REG, sample_weight=weights)
    reference = RandomizedSearchCV(Ridge(), {"alpha": [1.0]}, n_iter=1, cv=KFold(4)).fit(
        X_REG, Y_REG, sample_weight=weights
    )
    np.testing.assert_allclose(search.cv_results_["mean_test_score"], reference.cv_results_["mean_test_score"])


def test_fit_works_inside_a_running_event_loop() -> None:
    async def notebook_cell() -> TunerSearchCV:
        search = TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 10.0)}, n_trials=3, cv=3, random_state=0)
        return search.fit(X_REG, Y_REG)

    search = asyncio.run(notebook_cell())
    outside = TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 10.0)}, n_trials=3, cv=3, random_state=0)
    outside.fit(X_REG, Y_REG)
    assert search.cv_results_["params"] == outside.cv_results_["params"]


def test_a_fitted_search_pickles_and_predicts_the_same() -> None:
    search = TunerSearchCV(Ridge(), {"alpha": hpt.Float(0.1, 10.0)}, n_trials=2, cv=3, random_state=0)
    search.fit(X_REG, Y_REG)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        copy = pickle.loads(pickle.dumps(search))
    np.testing.assert_allclose(copy.predict(X_REG), search.predict(X_REG))


def test_a_model_based_strategy_and_concurrency_run_the_budget() -> None:
    search = TunerSearchCV(
        LogisticRegression(max_iter=300),
        {"C": hpt.Float(1e-3, 1e2, log=True), "fit_intercept": [True, False]},
        n_trials=12,
        cv=3,
        strategy={"name": "tpe", "n_initial": 4},
        n_jobs=3,
        random_state=0,
    ).fit(X_CLS, Y_CLS)
    assert len(search.cv_results_["params"]) == 12
    assert search.best_score_ == pytest.approx(np.max(search.cv_results_["mean_test_score"]))


def test_an_estimator_can_be_a_choice() -> None:
    from sklearn.linear_model import Lasso
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    models = [Ridge(alpha=3.0), Lasso(alpha=0.5)]
    pipeline = Pipeline([("scale", StandardScaler()), ("model", Ridge())])
    reference = RandomizedSearchCV(pipeline, {"model": models}, n_iter=2, cv=3, random_state=0).fit(X_REG, Y_REG)
    ours = same_candidates(reference, {"model": models}).fit(X_REG, Y_REG)
    assert_same_results(ours.cv_results_, reference.cv_results_)
    assert ours.best_params_["model"] is reference.best_params_["model"]
    assert all(not hasattr(m, "coef_") for m in models)  # each fit used a clone
