"""The pruner contract and decisions, kept here for older imports: they live in :mod:`hpt_async.contracts`.

Importing from this module still works and warns (``DeprecationWarning``);
import from :mod:`hpt_async.contracts` instead.
"""

from .._moved import moved

__all__ = ["Decision", "Exploit", "Pruner"]  # noqa: F822 (each name is served by __getattr__)

__getattr__ = moved(__name__, __all__, "hpt_async.contracts")
