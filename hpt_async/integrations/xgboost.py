"""XGBoost: report an evaluation metric each boosting round, stop when the trial is pruned.

Needs ``xgboost`` 2 or later (``pip install hpt-async[xgboost]``, or the
CPU-only ``xgboost-cpu``).
"""

from __future__ import annotations

from typing import Any

import xgboost

from ._common import MetricNotFoundError, check_monitor, loop_guard, split_monitor, sync_report

__all__ = ["XGBoostPruningCallback"]


class XGBoostPruningCallback(xgboost.callback.TrainingCallback):
    """Reports a metric of ``evals`` after each boosting round; pruning ends the training.

    Pass it in ``callbacks=[...]`` to ``xgboost.train``, ``xgboost.cv`` or
    an estimator of the scikit-learn API.  ``trial`` is what the objective
    received (a :class:`~hpt_async.SyncTrial`, or a :class:`~hpt_async.Trial`
    whose training runs in ``anyio.to_thread.run_sync``).  ``monitor`` names
    the data set and the metric as ``"<data set>-<metric>"`` (``"valid-rmse"``
    for ``evals=[(dvalid, "valid")]``, ``"validation_0-logloss"`` in the
    scikit-learn API, ``"test-rmse"`` in ``xgboost.cv``, whose mean is
    reported) or as a pair; ``None`` (the default) takes the last metric of
    the last data set, the one XGBoost's early stopping watches.  The step
    is the round's index, from 0.

    When the pruner stops the trial the report raises
    :class:`~hpt_async.TrialPruned`, which ends the training and reaches the
    objective.  A metric that was not evaluated raises
    :class:`~hpt_async.integrations.MetricNotFoundError`.
    """

    def __init__(self, trial: Any, monitor: str | tuple[str, str] | None = None) -> None:
        super().__init__()
        check_monitor(monitor)
        self.trial = trial
        self.monitor = monitor
        self._report = sync_report(trial)

    def before_training(self, model: Any) -> Any:
        loop_guard(self.trial, "XGBoost")
        return model

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        known = {data: list(metrics) for data, metrics in evals_log.items()}
        if self.monitor is None:
            pair = next(((d, m[-1]) for d, m in reversed(known.items()) if m), None)
        else:
            pair = split_monitor(self.monitor, known)
        if pair is None:
            available = [f"{d}-{m}" for d, metrics in known.items() for m in metrics]
            raise MetricNotFoundError("XGBoost", self.monitor, available)
        value = evals_log[pair[0]][pair[1]][-1]
        if isinstance(value, tuple):  # xgboost.cv: (mean, standard deviation)
            value = value[0]
        self._report(float(value), step=int(epoch))
        return False
