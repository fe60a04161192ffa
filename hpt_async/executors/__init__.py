"""Executors: where an objective runs."""

from .base import Executor
from .inloop import AsyncExecutor
from .process import ProcessExecutor
from .thread import ThreadExecutor

__all__ = ["AsyncExecutor", "Executor", "ProcessExecutor", "ThreadExecutor"]
