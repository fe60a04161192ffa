"""Keras 3: report a metric at the end of each epoch, stop when the trial is pruned.

Needs ``keras`` 3 with any back end (``pip install hpt-async[keras]``; for
the PyTorch back end set ``KERAS_BACKEND=torch`` and install ``torch``).
"""

from __future__ import annotations

from typing import Any

import keras

from ._common import MetricNotFoundError, loop_guard, sync_report

__all__ = ["KerasPruningCallback"]


class KerasPruningCallback(keras.callbacks.Callback):
    """Reports ``logs[monitor]`` at the end of each epoch of ``model.fit``; pruning ends the fit.

    ``trial`` is what the objective received (see
    :class:`~hpt_async.integrations.lightning.LightningPruningCallback`: a
    :class:`~hpt_async.SyncTrial`, or a :class:`~hpt_async.Trial` whose
    training runs in ``anyio.to_thread.run_sync``).  ``monitor`` is a key of
    the epoch's logs, ``"val_loss"`` by default (``"loss"``, ``"val_accuracy"``,
    ...); the step is the epoch's index (from 0, as in ``History.epoch``).

    When the pruner stops the trial the report raises
    :class:`~hpt_async.TrialPruned`, which ends ``fit`` and reaches the
    objective.  A metric missing from the logs raises
    :class:`~hpt_async.integrations.MetricNotFoundError`.
    """

    def __init__(self, trial: Any, monitor: str = "val_loss") -> None:
        super().__init__()
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name a metric of the epoch's logs, got {monitor!r}")
        self.trial = trial
        self.monitor = monitor
        self._report = sync_report(trial)

    def on_train_begin(self, logs: dict[str, Any] | None = None) -> None:
        loop_guard(self.trial, "Keras")

    def on_epoch_end(self, epoch: int, logs: dict[str, Any] | None = None) -> None:
        logs = logs or {}
        value = logs.get(self.monitor)
        if value is None:
            raise MetricNotFoundError("Keras", self.monitor, logs)
        self._report(float(value), step=int(epoch))
