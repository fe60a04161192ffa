"""The module the entry point names: it registers ``loggers=["mlflow"]``.

hpt-async imports it when it builds its registry of names.  It imports
nothing of MLflow: the client is imported by the logger's worker thread when
a study starts, so an installed but unused plugin costs nothing.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hpt_async as hpt

from .logger import MlflowLogger

__all__ = ["hpt_register"]


@hpt.hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register the ``mlflow`` logger."""
    register("logger", "mlflow", MlflowLogger)
