"""The pruner contract and decisions, kept here for older imports: they live in :mod:`hpt_async.contracts`."""

from ..contracts.decisions import Decision, Exploit
from ..contracts.pruner import Pruner

__all__ = ["Decision", "Exploit", "Pruner"]
