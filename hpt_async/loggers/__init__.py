"""Loggers: plugins that watch a study and tell people about it."""

from .console import ConsoleLogger
from .jsonl import JsonlLogger, read_events

__all__ = ["ConsoleLogger", "JsonlLogger", "read_events"]
