"""The strategy contract, kept here for older imports: it lives in :mod:`hpt_async.contracts`."""

from ..contracts.strategy import Strategy

__all__ = ["Strategy"]
