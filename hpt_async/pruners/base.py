"""The pruner contract and decisions, kept here for older imports: they live in :mod:`hpt_async.contracts`.

Importing from this module still works and warns (``DeprecationWarning``);
import from :mod:`hpt_async.contracts` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["Decision", "Exploit", "Pruner"]  # noqa: F822 (each name is served by __getattr__)


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"import {name} from hpt_async.contracts; {__name__} is kept for older code and will go",
        DeprecationWarning,
        stacklevel=2,
    )
    from .. import contracts

    return getattr(contracts, name)
