"""scikit-learn's search API on a hpt-async study: :class:`TunerSearchCV`.

>>> from sklearn.linear_model import LogisticRegression                  # doctest: +SKIP
>>> import hpt_async as hpt                                             # doctest: +SKIP
>>> from hpt_async.sklearn import TunerSearchCV                         # doctest: +SKIP
>>> search = TunerSearchCV(LogisticRegression(), {"C": hpt.Float(1e-3, 1e3, log=True)},
...                        n_trials=30, strategy="tpe", pruner="median", random_state=0)  # doctest: +SKIP
>>> search.fit(X, y).best_params_                                       # doctest: +SKIP

A drop-in for ``GridSearchCV`` and ``RandomizedSearchCV``: the same
``fit``, ``predict``, ``score`` and the other methods of the best estimator,
the same ``best_*`` attributes, and ``cv_results_`` with the same keys.
Each candidate is one trial of a :class:`~hpt_async.Tuner`: any strategy
chooses the candidates, any pruner may stop a candidate between folds (the
folds are the steps it sees), the thread or process executor runs them
concurrently (``n_jobs``), and a storage keeps them so that an interrupted
search resumes.  Needs scikit-learn 1.6 or later (``pip install
'hpt-async[sklearn]'``); ``import hpt_async`` does not import it.
"""

from __future__ import annotations

import asyncio
import inspect
import math
import numbers
import os
import threading
import time
import traceback
import warnings
from collections.abc import Callable, Mapping, Sequence
from copy import deepcopy
from typing import Any

import numpy as np

try:
    import sklearn
    from sklearn.base import BaseEstimator, MetaEstimatorMixin, clone, is_classifier
    from sklearn.exceptions import FitFailedWarning, NotFittedError
    from sklearn.metrics import check_scoring
    from sklearn.model_selection import check_cv
    from sklearn.utils import _safe_indexing, check_random_state, get_tags
    from sklearn.utils.metaestimators import _safe_split, available_if
    from sklearn.utils.validation import _num_samples, check_is_fitted, indexable
except ImportError as exc:  # pragma: no cover - exercised only without scikit-learn
    raise ImportError("hpt_async.sklearn needs scikit-learn 1.6 or later: pip install 'hpt-async[sklearn]'") from exc

from .exceptions import StudyError, StudyFailed
from .space import Choice, Domain, Space
from .trial import TrialState

__all__ = ["CV_ATTR", "TunerSearchCV"]

if tuple(int(p) for p in sklearn.__version__.split(".")[:2] if p.isdigit()) < (1, 6):  # pragma: no cover
    raise ImportError(f"hpt_async.sklearn needs scikit-learn 1.6 or later, found {sklearn.__version__}")

#: The user attribute in which each trial keeps its per-fold results (scores, fit and score times, errors).
CV_ATTR = "sklearn_cv"

# Trials that take part in cv_results_: those that ran (a CANCELLED or LOST trial is run again or dropped).
_TAKEN = (TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED, TrialState.PAUSED)


def _as_space(space: Any) -> Space:
    """A :class:`Space` from a Space, or a mapping of names to domains or lists of values (each list a Choice)."""
    if isinstance(space, Space):
        return space
    if not isinstance(space, Mapping):
        raise TypeError(f"space is a hpt_async.Space or a mapping of names to domains, got {type(space).__name__}")
    domains: dict[str, Any] = {}
    for name, dom in space.items():
        if isinstance(dom, Domain):
            domains[name] = dom
        elif isinstance(dom, (list, tuple)):
            domains[name] = Choice(list(dom))
        else:
            raise TypeError(
                f"space parameter {name!r}: expected a Float, Int or Choice domain or a list of values, "
                f"got {type(dom).__name__} (scipy distributions are not accepted: use Float(low, high, log=True))"
            )
    return Space(domains)


def _n_jobs(n_jobs: int | None) -> int:
    """joblib's convention: ``None`` is 1, ``-1`` every core, ``-2`` all but one."""
    if n_jobs is None:
        return 1
    if not isinstance(n_jobs, numbers.Integral) or n_jobs == 0:
        raise ValueError(f"n_jobs must be a non-zero integer or None, got {n_jobs!r}")
    if n_jobs < 0:
        return max(1, (os.cpu_count() or 1) + 1 + int(n_jobs))
    return int(n_jobs)


def _run_sync(fn: Callable[[], Any]) -> Any:
    """Run the coroutine function ``fn`` to completion from synchronous code.

    With no event loop running in this thread, in a new anyio loop here.
    Called from inside a running loop (a Jupyter cell, an ``async def``),
    in a new loop on a separate thread, which this call waits for: the
    caller's loop is blocked meanwhile, as it is by any long call.
    """
    import anyio

    try:
        asyncio.get_running_loop()
    except RuntimeError:
        in_loop = False
    else:
        in_loop = True
    if not in_loop:
        return anyio.run(fn)
    box: dict[str, Any] = {}

    def target() -> None:
        try:
            box["result"] = anyio.run(fn)
        except BaseException as exc:
            box["error"] = exc

    thread = threading.Thread(target=target, name="hpt-async-search", daemon=True)
    thread.start()
    thread.join()
    if "error" in box:
        raise box["error"]
    return box["result"]


def _split_params(fit_params: Mapping[str, Any], n_samples: int, indices: np.ndarray) -> dict[str, Any]:
    """``fit_params`` for one training fold: arrays with a row per sample are cut to ``indices``."""
    out = {}
    for key, value in fit_params.items():
        try:
            sliceable = hasattr(value, "__len__") and not isinstance(value, (str, bytes, Mapping))
            sliceable = sliceable and _num_samples(value) == n_samples
        except TypeError:
            sliceable = False
        out[key] = _safe_indexing(value, indices) if sliceable else value
    return out


def _number(value: Any) -> float | None:
    """A score as JSON-ready data: a float, or ``None`` for NaN."""
    v = float(value)
    return None if math.isnan(v) else v


def _unnumber(value: Any) -> float:
    return math.nan if value is None else float(value)


def _accepts_sample_weight(scorer: Any) -> bool:
    """Whether ``scorer`` takes a ``sample_weight`` (scikit-learn's scorers say so themselves)."""
    accepts = getattr(scorer, "_accept_sample_weight", None)
    if callable(accepts):
        try:
            return bool(accepts())
        except Exception:
            return False
    try:
        return "sample_weight" in inspect.signature(scorer).parameters
    except (TypeError, ValueError):
        return False


class _CVObjective:
    """One candidate's cross-validation, fold by fold: the objective of each trial.

    Picklable (the process executor sends it to its workers).  After each
    fold it keeps the results so far in the trial's :data:`CV_ATTR` user
    attribute and reports the mean score of the primary metric so far at
    step ``fold``, where a pruner may stop it.  Returns that mean over every
    fold (NaN, hence a FAILED trial, when a fold failed and
    ``error_score`` is NaN).
    """

    def __init__(
        self,
        estimator: Any,
        X: Any,
        y: Any,
        splits: list[tuple[np.ndarray, np.ndarray]],
        scorer: Any,
        names: list[str] | None,
        primary: str,
        fit_params: Mapping[str, Any],
        error_score: Any,
        return_train_score: bool,
    ) -> None:
        self.estimator = estimator
        self.X, self.y = X, y
        self.splits = splits
        self.scorer = scorer
        self.names = names  # None: a single metric, kept under "score"
        self.primary = primary
        self.fit_params = dict(fit_params)
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.weighted = _accepts_sample_weight(scorer)

    def _score(self, est: Any, X: Any, y: Any, weight: Any = None) -> dict[str, float]:
        extra = {} if weight is None else {"sample_weight": weight}
        got = self.scorer(est, X, y, **extra) if y is not None else self.scorer(est, X, **extra)
        if self.names is None:
            if isinstance(got, Mapping):
                raise ValueError(f"scoring must return a number, got {got!r}")
            return {"score": float(got)}
        return {name: float(got[name]) for name in self.names}

    def _weights(self, indices: np.ndarray) -> Any:
        """The ``sample_weight`` fit parameter cut to ``indices`` when the scorer takes it, else ``None``.

        As scikit-learn's own searches do (since 1.9) without metadata routing.
        """
        weights = self.fit_params.get("sample_weight")
        if weights is None or not self.weighted:
            return None
        return _safe_indexing(weights, indices)

    def _failed(self) -> dict[str, float]:
        return dict.fromkeys(self.names or ["score"], float(self.error_score))

    def __call__(self, trial: Any) -> float:
        n_samples = _num_samples(self.X)
        keys = self.names or ["score"]
        cv: dict[str, Any] = {
            "n_splits": len(self.splits),
            "test": {k: [] for k in keys},
            "train": {k: [] for k in keys} if self.return_train_score else None,
            "fit_time": [],
            "score_time": [],
            "errors": [],
        }
        for fold, (train, test) in enumerate(self.splits):
            # Values are cloned for each fit, as scikit-learn does: an estimator given as a value is never shared.
            est = clone(self.estimator).set_params(**{k: clone(v, safe=False) for k, v in trial.params.items()})
            X_train, y_train = _safe_split(est, self.X, self.y, train)
            X_test, y_test = _safe_split(est, self.X, self.y, test, train)
            start = time.perf_counter()
            try:
                est.fit(X_train, y_train, **_split_params(self.fit_params, n_samples, train))
            except Exception:
                if self.error_score == "raise":
                    raise
                fit_time, score_time = time.perf_counter() - start, 0.0
                test_scores = train_scores = self._failed()
                cv["errors"].append(traceback.format_exc())
            else:
                fit_time = time.perf_counter() - start
                try:
                    test_scores = self._score(est, X_test, y_test, self._weights(test))
                    score_time = time.perf_counter() - start - fit_time
                    if self.return_train_score:
                        train_scores = self._score(est, X_train, y_train, self._weights(train))
                except Exception:
                    if self.error_score == "raise":
                        raise
                    score_time = time.perf_counter() - start - fit_time
                    test_scores = train_scores = self._failed()
                    cv["errors"].append(traceback.format_exc())
            for k in keys:
                cv["test"][k].append(_number(test_scores[k]))
                if cv["train"] is not None:
                    cv["train"][k].append(_number(train_scores[k]))
            cv["fit_time"].append(fit_time)
            cv["score_time"].append(score_time)
            # Before the report, so that a pruned trial keeps the folds it ran; a new copy each time, since
            # executors in other processes send an attribute again only when it compares unequal to the last.
            trial.set_user_attr(CV_ATTR, deepcopy(cv))
            so_far = [_unnumber(v) for v in cv["test"][self.primary]]
            mean = float(np.mean(so_far))
            if math.isfinite(mean) and fold < len(self.splits) - 1:
                trial.report(mean, step=fold)
        return float(np.mean([_unnumber(v) for v in cv["test"][self.primary]]))


def _search_estimator_has(attr: str) -> Callable[[Any], bool]:
    """``available_if`` check: with ``refit``, the fitted best estimator has ``attr`` (before fit: the estimator)."""

    def check(self: Any) -> bool:
        if not self.refit:
            raise AttributeError(
                f"this {type(self).__name__} was made with refit=False: {attr} is available only after refitting "
                "on the best parameters (refit an estimator yourself with best_params_)"
            )
        est = getattr(self, "best_estimator_", None)
        if est is None:
            est = self.estimator
        getattr(est, attr)  # raises AttributeError when it has none
        return True

    return check


class TunerSearchCV(MetaEstimatorMixin, BaseEstimator):
    """Cross-validated search over ``space`` run by a hpt-async :class:`~hpt_async.Tuner`.

    Parameters follow ``RandomizedSearchCV`` where they share a name:

    * ``estimator``: any scikit-learn estimator (cloned for each fold).
    * ``space``: a :class:`~hpt_async.Space`, or a mapping of parameter
      names (``"C"``, ``"clf__alpha"``) to ``Float``/``Int``/``Choice``
      domains or to lists of values (each list becomes a ``Choice``).
    * ``n_trials``: candidates to evaluate (the tuner's ``max_trials``; a
      resumed study counts the trials it already holds, and the ``grid``
      strategy stops when its grid is exhausted).
    * ``scoring``: ``None`` (the estimator's ``score``), a scorer name, a
      callable ``scorer(estimator, X, y)``, or a list/tuple of names or a
      dict of scorers for several metrics.
    * ``refit``: ``True``, ``False``, the name of a metric, or a callable
      taking ``cv_results_`` and returning the best index, as in scikit-learn.
      With several metrics the tuner optimises the ``refit`` metric, or the
      first one when ``refit`` is a callable or ``False``.
    * ``cv``: folds as scikit-learn takes them (an int, a splitter, an
      iterable of splits); computed once, so every candidate sees the same.
    * ``strategy``, ``pruner``: any hpt-async strategy and pruner (names,
      specs or objects).  The pruner sees the mean score of the folds so far
      at steps 0, 1, ... (one per fold); a pruned candidate keeps the folds
      it ran and NaN for the others in ``cv_results_``, so it ranks last.
    * ``n_jobs``: candidates evaluated at once (``None`` is 1, ``-1`` one
      per core); ``executor``: ``"thread"`` (default) or ``"process"`` (the
      estimator and the data are pickled for each candidate).
    * ``storage``, ``study``: where the trials are kept (``"memory"``, or
      ``"sqlite:///search.db"`` with a study name); fitting again with the
      same storage and study resumes the search, and ``cv_results_`` holds
      every trial of the study, which must have been run on the same data
      and folds.
    * ``timeout``: seconds after which no new candidate starts and running
      ones are cancelled.
    * ``random_state``: the tuner's seed (an int, a ``RandomState`` or
      ``None``); the estimator's own ``random_state`` is left as given.
    * ``error_score``: the score of a fold whose fit or scoring raised
      (``np.nan`` by default, with a ``FitFailedWarning``), or ``"raise"``.
    * ``return_train_score``: also score each fold's training set.
    * ``verbose``: 0 for silence, more for the console logger's progress.

    Fitted attributes: ``cv_results_`` (one row per candidate in trial
    order, with the keys ``RandomizedSearchCV`` gives), ``best_index_``,
    ``best_params_``, ``best_score_``, ``best_estimator_`` (with
    ``refit``), ``refit_time_``, ``scorer_``, ``multimetric_``,
    ``n_splits_``, ``n_features_in_``, and, of the study,
    ``study_name_``, ``seed_``, ``trial_numbers_`` and ``trial_states_``
    (the trial behind each row and its final state).
    """

    def __init__(
        self,
        estimator: Any,
        space: Any,
        *,
        n_trials: int = 10,
        scoring: Any = None,
        refit: Any = True,
        cv: Any = None,
        strategy: Any = "random",
        pruner: Any = None,
        n_jobs: int | None = None,
        executor: Any = "thread",
        storage: Any = "memory",
        study: str | None = None,
        timeout: float | None = None,
        random_state: Any = None,
        error_score: Any = np.nan,
        return_train_score: bool = False,
        verbose: int = 0,
    ) -> None:
        self.estimator = estimator
        self.space = space
        self.n_trials = n_trials
        self.scoring = scoring
        self.refit = refit
        self.cv = cv
        self.strategy = strategy
        self.pruner = pruner
        self.n_jobs = n_jobs
        self.executor = executor
        self.storage = storage
        self.study = study
        self.timeout = timeout
        self.random_state = random_state
        self.error_score = error_score
        self.return_train_score = return_train_score
        self.verbose = verbose

    # -- scikit-learn's conventions ---------------------------------------------

    def __sklearn_tags__(self) -> Any:
        """The estimator's kind and input tags (what scikit-learn's checks and helpers read)."""
        tags = super().__sklearn_tags__()
        sub = get_tags(self.estimator)
        tags.estimator_type = sub.estimator_type
        tags.classifier_tags = deepcopy(sub.classifier_tags)
        tags.regressor_tags = deepcopy(sub.regressor_tags)
        tags.transformer_tags = deepcopy(sub.transformer_tags)
        tags.input_tags.pairwise = sub.input_tags.pairwise
        tags.input_tags.sparse = sub.input_tags.sparse
        return tags

    @property
    def classes_(self) -> Any:
        """The class labels of the best estimator (classifiers)."""
        check_is_fitted(self)
        return self.best_estimator_.classes_

    @property
    def n_features_in_(self) -> int:
        """Features seen by the best estimator during ``fit``."""
        try:
            check_is_fitted(self)
        except NotFittedError as exc:
            raise AttributeError(f"{type(self).__name__} has no n_features_in_ before fit") from exc
        return self.best_estimator_.n_features_in_

    def _best(self, method: str) -> Any:
        check_is_fitted(self)
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(
                f"this {type(self).__name__} was fitted with refit=False: {method} needs refit=True "
                "(or the name of a metric)"
            )
        return getattr(self.best_estimator_, method)

    @available_if(_search_estimator_has("predict"))
    def predict(self, X: Any) -> Any:
        """The best estimator's ``predict``."""
        return self._best("predict")(X)

    @available_if(_search_estimator_has("predict_proba"))
    def predict_proba(self, X: Any) -> Any:
        """The best estimator's ``predict_proba``."""
        return self._best("predict_proba")(X)

    @available_if(_search_estimator_has("predict_log_proba"))
    def predict_log_proba(self, X: Any) -> Any:
        """The best estimator's ``predict_log_proba``."""
        return self._best("predict_log_proba")(X)

    @available_if(_search_estimator_has("decision_function"))
    def decision_function(self, X: Any) -> Any:
        """The best estimator's ``decision_function``."""
        return self._best("decision_function")(X)

    @available_if(_search_estimator_has("score_samples"))
    def score_samples(self, X: Any) -> Any:
        """The best estimator's ``score_samples``."""
        return self._best("score_samples")(X)

    @available_if(_search_estimator_has("transform"))
    def transform(self, X: Any) -> Any:
        """The best estimator's ``transform``."""
        return self._best("transform")(X)

    @available_if(_search_estimator_has("transform"))
    def fit_transform(self, X: Any, y: Any = None, **fit_params: Any) -> Any:
        """:meth:`fit`, then the best estimator's ``transform`` of ``X``."""
        return self.fit(X, y, **fit_params).transform(X)

    @available_if(_search_estimator_has("inverse_transform"))
    def inverse_transform(self, X: Any) -> Any:
        """The best estimator's ``inverse_transform``."""
        return self._best("inverse_transform")(X)

    def score(self, X: Any, y: Any = None) -> float:
        """The best estimator's score on ``X``, ``y`` with the ``refit`` metric (or the estimator's ``score``)."""
        check_is_fitted(self)
        if not hasattr(self, "best_estimator_"):
            raise NotFittedError(f"this {type(self).__name__} was fitted with refit=False: score needs refit")
        scorer = self.scorer_[self._refit_metric] if self.multimetric_ else self.scorer_
        return float(scorer(self.best_estimator_, X, y))

    # -- fitting -----------------------------------------------------------------

    def _scorers(self) -> tuple[Any, list[str] | None, dict[str, Any] | Any]:
        """The scorer to call, the metric names (``None`` for one metric) and ``scorer_``."""
        scoring = self.scoring
        if scoring is None or isinstance(scoring, str) or callable(scoring):
            scorer = check_scoring(self.estimator, scoring=scoring)
            return scorer, None, scorer
        if isinstance(scoring, Mapping):
            names = list(scoring)
        elif isinstance(scoring, (list, tuple, set)):
            names = list(scoring)
            if not all(isinstance(n, str) for n in names):
                raise ValueError(f"a list of scorings holds scorer names, got {scoring!r}")
        else:
            raise ValueError(f"scoring must be None, a string, a callable, a list or a dict, got {scoring!r}")
        if not names or len(set(names)) != len(names):
            raise ValueError(f"scoring must name at least one metric, each once, got {scoring!r}")
        scorer = check_scoring(self.estimator, scoring=scoring)
        each = {n: check_scoring(self.estimator, scoring=scoring[n] if isinstance(scoring, Mapping) else n)
                for n in names}  # fmt: skip
        return scorer, [str(n) for n in names], each

    def _check_refit(self, names: list[str] | None) -> str:
        """The metric the tuner optimises, after checking ``refit`` against the metrics."""
        refit = self.refit
        if names is None:
            if not (isinstance(refit, bool) or callable(refit)):
                raise ValueError(f"with one metric, refit is True, False or a callable, got {refit!r}")
            return "score"
        if isinstance(refit, str) and refit in names:
            return refit
        if refit is False or callable(refit):
            return names[0]
        raise ValueError(
            "For multi-metric scoring, the parameter refit must be set to a scorer key or a callable to refit an "
            "estimator with the best parameter setting on the whole data and make the best_* attributes available "
            f"for that metric; if this is not needed, set refit=False explicitly. {refit!r} was passed; the "
            f"metrics are {names}."
        )

    def _seed(self) -> int | None:
        rs = self.random_state
        if rs is None:
            return None
        if isinstance(rs, numbers.Integral):
            return int(rs)
        return int(check_random_state(rs).randint(2**31 - 1))

    def fit(self, X: Any, y: Any = None, *, groups: Any = None, **fit_params: Any) -> TunerSearchCV:
        """Evaluate candidates by cross-validation, then refit the best one on all of ``X``, ``y``.

        ``groups`` goes to a group splitter; ``fit_params`` go to the
        estimator's ``fit`` (arrays with one row per sample are cut to each
        training fold).  Works when called inside a running event loop too
        (a notebook): the search then runs its own loop on a separate
        thread and this call waits for it.
        """
        from .tuner import Tuner

        if not isinstance(self.n_trials, numbers.Integral) or self.n_trials < 1:
            raise ValueError(f"n_trials must be a positive integer, got {self.n_trials!r}")
        if not (self.error_score == "raise" or isinstance(self.error_score, numbers.Number)):
            raise ValueError(f"error_score must be 'raise' or a number, got {self.error_score!r}")
        space = _as_space(self.space)
        scorer, names, scorer_ = self._scorers()
        primary = self._check_refit(names)
        X, y, groups = indexable(X, y, groups)
        cv = check_cv(self.cv, y, classifier=is_classifier(self.estimator))
        splits = [(np.asarray(tr), np.asarray(te)) for tr, te in cv.split(X, y, groups)]
        n_splits = len(splits)
        objective = _CVObjective(
            self.estimator, X, y, splits, scorer, names, primary, fit_params, self.error_score,
            bool(self.return_train_score),
        )  # fmt: skip
        study = self.study
        if study is None and isinstance(self.storage, str) and self.storage != "memory":
            raise ValueError("a durable storage needs a study name: TunerSearchCV(..., storage=..., study='name')")
        tuner = Tuner(
            objective,
            space,
            direction="maximize",
            strategy=self.strategy,
            pruner=self.pruner,
            storage=self.storage,
            study=study,
            executor=self.executor,
            loggers=["console"] if self.verbose else [],
            concurrency=_n_jobs(self.n_jobs),
            max_trials=int(self.n_trials),
            timeout=self.timeout,
            seed=self._seed(),
            fail_fast=False,
            max_failures=1 if self.error_score == "raise" else None,
        )
        try:
            result = _run_sync(tuner.run)
        except StudyFailed as exc:
            cause = exc.__cause__
            if self.error_score == "raise" and isinstance(cause, Exception):
                raise cause from None
            raise
        rows = [t for t in result.trials if t.state in _TAKEN]
        if not rows:
            raise StudyError(
                f"study {tuner.study_name!r} ended ({result.reason}) before any candidate was evaluated", result
            )
        self.multimetric_ = names is not None
        self._refit_metric = primary
        self.scorer_ = scorer_
        self.n_splits_ = n_splits
        self.study_name_ = tuner.study_name
        self.seed_ = result.seed
        self.trial_numbers_ = np.array([t.number for t in rows])
        self.trial_states_ = [t.state.value for t in rows]
        self.cv_results_ = self._results(rows, names or ["score"], n_splits)
        self._settle_failures(rows, n_splits)
        self._choose(names, primary)
        if self.refit:
            self.best_estimator_ = clone(self.estimator).set_params(**clone(self.best_params_, safe=False))
            start = time.perf_counter()
            if y is not None:
                self.best_estimator_.fit(X, y, **fit_params)
            else:
                self.best_estimator_.fit(X, **fit_params)
            self.refit_time_ = time.perf_counter() - start
            if hasattr(self.best_estimator_, "feature_names_in_"):
                self.feature_names_in_ = self.best_estimator_.feature_names_in_
        return self

    def _results(self, rows: Sequence[Any], names: list[str], n_splits: int) -> dict[str, Any]:
        """``cv_results_`` of the trials ``rows``, in scikit-learn's layout."""
        n = len(rows)
        test = {k: np.full((n, n_splits), np.nan) for k in names}
        train = {k: np.full((n, n_splits), np.nan) for k in names}
        fit_time = np.full((n, n_splits), np.nan)
        score_time = np.full((n, n_splits), np.nan)
        for i, record in enumerate(rows):
            cv = record.user_attrs.get(CV_ATTR)
            if cv is None:
                continue  # failed before its first fold (e.g. an invalid parameter)
            if cv.get("n_splits") != n_splits:
                raise ValueError(
                    f"trial {record.number} of study {self.study_name_!r} was run with {cv.get('n_splits')} folds, "
                    f"this search has {n_splits}: a resumed search needs the same data and cv"
                )
            for k in names:
                got = cv["test"].get(k)
                if got is None:
                    raise ValueError(f"trial {record.number} has no scores for metric {k!r}: the scoring changed")
                test[k][i, : len(got)] = [_unnumber(v) for v in got]
                if self.return_train_score and cv.get("train"):
                    got = cv["train"].get(k, [])
                    train[k][i, : len(got)] = [_unnumber(v) for v in got]
            fit_time[i, : len(cv["fit_time"])] = cv["fit_time"]
            score_time[i, : len(cv["score_time"])] = cv["score_time"]
        results: dict[str, Any] = {}
        for key, arr in (("fit_time", fit_time), ("score_time", score_time)):
            # Over the folds that ran (a pruned candidate ran fewer); a row with none stays NaN.
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", RuntimeWarning)
                results[f"mean_{key}"] = np.nanmean(arr, axis=1)
                results[f"std_{key}"] = np.nanstd(arr, axis=1)
        params = [dict(record.params) for record in rows]
        for key, column in _param_columns(params):
            results[key] = column
        results["params"] = params
        for k in names:
            _store(results, f"test_{k}", test[k], rank=True)
            if self.return_train_score:
                _store(results, f"train_{k}", train[k], rank=False)
        return results

    def _settle_failures(self, rows: Sequence[Any], n_splits: int) -> None:
        """Warn of failed fits (``FitFailedWarning``), or raise ``ValueError`` when every fit failed."""
        errors: list[str] = []
        for record in rows:
            cv = record.user_attrs.get(CV_ATTR)
            if cv is not None:
                errors.extend(cv.get("errors", ()))
            elif record.state is TrialState.FAILED:
                errors.append(record.traceback or record.error or "unknown error")
        if not errors:
            return
        ran = sum(len(r.user_attrs.get(CV_ATTR, {}).get("fit_time", ())) or 1 for r in rows)
        first = errors[0].strip().splitlines()[-1] if errors[0].strip() else errors[0]
        if len(errors) >= ran:
            raise ValueError(
                f"All the {ran} fits failed. It is very likely that your model is misconfigured. You can try to "
                f"debug the error by setting error_score='raise'. The first error: {first}\n\n{errors[0]}"
            )
        warnings.warn(
            f"{len(errors)} fits failed out of a total of {ran}. The score on these folds is error_score="
            f"{self.error_score!r}. The first error: {first}",
            FitFailedWarning,
            stacklevel=3,
        )

    def _choose(self, names: list[str] | None, primary: str) -> None:
        """``best_index_``, ``best_score_`` and ``best_params_`` as scikit-learn sets them."""
        results, refit = self.cv_results_, self.refit
        if names is not None and refit is False:
            return
        if callable(refit):
            index = refit(results)
            if not isinstance(index, numbers.Integral):
                raise TypeError("best_index_ returned by refit is not an integer")
            if not 0 <= index < len(results["params"]):
                raise IndexError("best_index_ index out of range")
            self.best_index_ = int(index)
        else:
            self.best_index_ = int(results[f"rank_test_{primary}"].argmin())
            self.best_score_ = float(results[f"mean_test_{primary}"][self.best_index_])
        self.best_params_ = results["params"][self.best_index_]


def _store(results: dict[str, Any], key: str, array: np.ndarray, *, rank: bool) -> None:
    """Splits, mean, std (and rank) of ``array`` (candidates x folds) under ``key``, as scikit-learn stores them."""
    for fold in range(array.shape[1]):
        results[f"split{fold}_{key}"] = array[:, fold]
    means = np.average(array, axis=1) if array.size else np.zeros(array.shape[0])
    results[f"mean_{key}"] = means
    results[f"std_{key}"] = np.sqrt(np.average((array - means[:, None]) ** 2, axis=1)) if array.size else means
    if rank:
        if np.isnan(means).all():
            ranks = np.ones(len(means), dtype=np.int32)
        else:
            from scipy.stats import rankdata

            filled = np.where(np.isnan(means), np.nanmin(means) - 1, means)
            ranks = rankdata(-filled, method="min").astype(np.int32)
        results[f"rank_{key}"] = ranks


def _param_columns(params: list[dict[str, Any]]) -> list[tuple[str, np.ma.MaskedArray]]:
    """One masked array per parameter (masked where a candidate lacks it), as ``param_<name>``."""
    n = len(params)
    names: dict[str, None] = {}
    for p in params:
        names.update(dict.fromkeys(p))
    out = []
    for name in names:
        present = [p[name] for p in params if name in p]
        try:
            arr = np.array(present)
            dtype = arr.dtype if arr.dtype.kind not in "UO" and arr.ndim == 1 else np.dtype(object)
        except ValueError:
            dtype = np.dtype(object)
        column = np.ma.MaskedArray(np.empty(n, dtype=dtype), mask=True)
        for i, p in enumerate(params):
            if name in p:
                column[i] = p[name]
        out.append((f"param_{name}", column))
    return out
