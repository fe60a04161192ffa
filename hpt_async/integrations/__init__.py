"""Callbacks that tie a framework's training loop to a trial.

Each module imports its framework, so import the one you use:
:mod:`hpt_async.integrations.lightning` (PyTorch Lightning),
:mod:`hpt_async.integrations.keras` (Keras 3), :mod:`hpt_async.integrations.xgboost`
and :mod:`hpt_async.integrations.lightgbm`.  Every callback reports the
monitored metric at each epoch or boosting round with the trial's
synchronous ``report`` and lets :class:`~hpt_async.TrialPruned` end the
training when the pruner stops the trial; the objective lets it propagate
(the trial is then PRUNED).  See ``docs/integrations.md``.

This package itself imports no framework: ``import hpt_async`` and
``import hpt_async.integrations`` stay light.
"""

from __future__ import annotations

from ._common import MetricNotFoundError, sync_report

__all__ = ["MetricNotFoundError", "sync_report"]
