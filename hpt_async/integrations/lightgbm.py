"""LightGBM: report a validation metric each boosting round, stop when the trial is pruned.

Needs ``lightgbm`` 4 or later (``pip install hpt-async[lightgbm]``).
"""

from __future__ import annotations

from typing import Any

import lightgbm  # noqa: F401  (this module is only usable where LightGBM is: fail on import, not in training)

from ._common import MetricNotFoundError, check_monitor, loop_guard, split_monitor, sync_report

__all__ = ["LightGBMPruningCallback"]


class LightGBMPruningCallback:
    """Reports a metric of the validation sets after each boosting round; pruning ends the training.

    Pass it in ``callbacks=[...]`` to ``lightgbm.train``, ``lightgbm.cv`` or
    an estimator's ``fit``.  ``trial`` is what the objective received (a
    :class:`~hpt_async.SyncTrial`, or a :class:`~hpt_async.Trial` whose
    training runs in ``anyio.to_thread.run_sync``).  ``monitor`` names the
    data set and the metric as ``"<data set>-<metric>"`` (``"valid_0-l2"``,
    ``"valid-binary_logloss"`` for ``valid_names=["valid"]``, ``"cv_agg-valid
    l2"`` in ``lightgbm.cv``, whose mean is reported) or as a pair; ``None``
    (the default) takes the first metric of the first data set that is not
    the training set.  The step is the round's index, from 0.

    When the pruner stops the trial the report raises
    :class:`~hpt_async.TrialPruned`, which ends the training and reaches the
    objective.  A metric that was not evaluated raises
    :class:`~hpt_async.integrations.MetricNotFoundError`.
    """

    def __init__(self, trial: Any, monitor: str | tuple[str, str] | None = None) -> None:
        check_monitor(monitor)
        # LightGBM reads these from the instance: after its record_evaluation (order 20), with its early stopping.
        self.order = 30
        self.before_iteration = False
        self.trial = trial
        self.monitor = monitor
        self._report = sync_report(trial)
        self._checked = False

    def __call__(self, env: Any) -> None:
        if not self._checked:
            loop_guard(self.trial, "LightGBM")
            self._checked = True
        results = env.evaluation_result_list or []
        known: dict[str, list[str]] = {}
        values: dict[tuple[str, str], float] = {}
        for entry in results:
            data, metric, value = entry[0], entry[1], entry[2]
            known.setdefault(data, []).append(metric)
            values[(data, metric)] = value
        if self.monitor is None:
            training = getattr(env.model, "_train_data_name", "training")
            pair = next((k for k in values if k[0] != training), None)
        else:
            pair = split_monitor(self.monitor, known)
        if pair is None:
            raise MetricNotFoundError("LightGBM", self.monitor, [f"{d}-{m}" for d, m in values])
        self._report(float(values[pair]), step=int(env.iteration - env.begin_iteration))
