"""The executor contract, kept here for older imports: it lives in :mod:`hpt_async.contracts`."""

from ..contracts.executor import Executor

__all__ = ["Executor"]
