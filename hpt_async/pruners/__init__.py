"""Pruners: decide at each report whether a trial goes on."""

from .base import Decision, Pruner

__all__ = ["Decision", "Pruner"]
