"""The storage contract, kept here for older imports: it lives in :mod:`hpt_async.contracts`.

Importing from this module still works and warns (``DeprecationWarning``);
import from :mod:`hpt_async.contracts` instead.
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = [  # noqa: F822 (each name is served by __getattr__)
    "DIRECTIONS",
    "Direction",
    "Storage",
    "StudyNotFound",
    "StudyReader",
    "StudySession",
    "StudySummary",
    "check_direction",
    "merge_settings",
    "parse_storage_url",
]


def __getattr__(name: str) -> Any:
    if name not in __all__:
        raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
    warnings.warn(
        f"import {name} from hpt_async.contracts; {__name__} is kept for older code and will go",
        DeprecationWarning,
        stacklevel=2,
    )
    from ..contracts import storage

    return getattr(storage, name)
