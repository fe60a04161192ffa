"""Names that moved: an old module keeps serving them, with a ``DeprecationWarning``."""

from __future__ import annotations

import importlib
import warnings
from collections.abc import Callable, Collection
from typing import Any

__all__ = ["moved"]


def moved(module: str, names: Collection[str], target: str) -> Callable[[str], Any]:
    """A module ``__getattr__`` for ``module`` that serves ``names`` from ``target`` and warns.

    Names are looked up on first access, so the old module imports nothing
    until one is used.
    """

    def __getattr__(name: str) -> Any:
        if name not in names:
            raise AttributeError(f"module {module!r} has no attribute {name!r}")
        warnings.warn(
            f"import {name} from {target}; {module} is kept for older code and will go",
            DeprecationWarning,
            stacklevel=2,
        )
        return getattr(importlib.import_module(target), name)

    return __getattr__
