"""Loggers: plugins that watch a study and tell people about it."""

from .console import ConsoleLogger

__all__ = ["ConsoleLogger"]
