"""PyTorch Lightning: report a validation metric each epoch, stop when the trial is pruned.

Needs the ``lightning`` package (``pip install hpt-async[lightning]``; name
``torch`` yourself, pinned to the build you want, in the same pip call).
"""

from __future__ import annotations

from typing import Any, Literal

import lightning.pytorch as pl

from ._common import MetricNotFoundError, loop_guard, sync_report

__all__ = ["LightningPruningCallback"]


class LightningPruningCallback(pl.Callback):
    """Reports ``monitor`` after each validation run and ends ``fit`` when the pruner stops the trial.

    ``trial`` is what the objective received: the :class:`~hpt_async.SyncTrial`
    of a plain ``def`` objective (thread or process executor), or the
    :class:`~hpt_async.Trial` of an ``async def`` one whose ``trainer.fit``
    runs in ``anyio.to_thread.run_sync``.  ``monitor`` names a metric the
    module logs with ``self.log`` (``trainer.callback_metrics``), by default
    ``"val_loss"``.  The report's step is ``trainer.current_epoch`` (``step="epoch"``),
    or ``trainer.global_step`` (``step="global_step"``: for
    ``val_check_interval`` below one epoch, which validates several times an epoch).
    The sanity check Lightning runs before training is not reported.

    When the pruner stops the trial the report raises
    :class:`~hpt_async.TrialPruned`; Lightning ends ``fit`` (its
    ``on_exception`` hooks run) and the exception reaches the objective,
    which lets it propagate.  A metric that was not logged raises
    :class:`~hpt_async.integrations.MetricNotFoundError`.  Training on
    one process only: under a multi-process strategy every rank would report.
    """

    def __init__(
        self, trial: Any, monitor: str = "val_loss", *, step: Literal["epoch", "global_step"] = "epoch"
    ) -> None:
        super().__init__()
        if step not in ("epoch", "global_step"):
            raise ValueError(f"step must be 'epoch' or 'global_step', got {step!r}")
        if not isinstance(monitor, str) or not monitor:
            raise ValueError(f"monitor must name a logged metric, got {monitor!r}")
        self.trial = trial
        self.monitor = monitor
        self.step = step
        self._report = sync_report(trial)

    def on_fit_start(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        loop_guard(self.trial, "Lightning")

    def on_validation_end(self, trainer: pl.Trainer, pl_module: pl.LightningModule) -> None:
        if trainer.sanity_checking:
            return
        metrics = trainer.callback_metrics
        value = metrics.get(self.monitor)
        if value is None:
            raise MetricNotFoundError("Lightning", self.monitor, metrics)
        step = trainer.current_epoch if self.step == "epoch" else trainer.global_step
        self._report(float(value), step=int(step))
