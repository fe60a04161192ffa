"""Executors: where an objective runs."""

from ..contracts import Executor
from .inloop import AsyncExecutor
from .process import ProcessExecutor
from .thread import ThreadExecutor

__all__ = ["AsyncExecutor", "Executor", "ProcessExecutor", "ThreadExecutor"]
