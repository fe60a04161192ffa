"""Loggers: plugins that watch a study and tell people about it.

Their hooks run on the event loop for every trial, so they only take note of
an event and do the slow part (drawing, encoding, writing) a few times per
second or in batches: see ``docs/loggers.md``.  The experiment-tracking loggers
(``tensorboard``, ``wandb``) import their library only when a study starts.
"""

from ._tracking import TrackingError
from .console import ConsoleLogger
from .jsonl import JsonlLogger, read_events
from .tensorboard import TensorBoardLogger
from .wandb import WandbLogger

__all__ = ["ConsoleLogger", "JsonlLogger", "TensorBoardLogger", "TrackingError", "WandbLogger", "read_events"]
