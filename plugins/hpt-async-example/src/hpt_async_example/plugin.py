"""The module the entry point names: it tells hpt-async what this distribution adds.

hpt-async imports it when it builds its registry of names and calls
:func:`hpt_register` once.  Nothing runs until a Tuner is given one of the
names: ``Tuner(..., strategy="local-search", loggers=["csv"])``.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import hpt_async as hpt

from .csv_logger import CsvLogger
from .local_search import LocalSearchStrategy

__all__ = ["hpt_register"]


@hpt.hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register the ``local-search`` strategy and the ``csv`` logger."""
    register("strategy", "local-search", LocalSearchStrategy)
    register("logger", "csv", CsvLogger)
