"""Checks of the options the builtin pruners take, with errors that say what is accepted."""

from __future__ import annotations

import difflib
import math
import numbers
from collections.abc import Iterable, Mapping
from typing import Any

__all__ = ["check_unknown", "integer", "number"]


def check_unknown(pruner: str, unknown: Mapping[str, Any], known: Iterable[str]) -> None:
    """Raise ``TypeError`` naming every unknown option, the accepted ones, and a near match."""
    if not unknown:
        return
    known = sorted(known)
    parts = []
    for name in sorted(unknown):
        close = difflib.get_close_matches(name, known, n=1)
        parts.append(f"{name!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
    raise TypeError(
        f"pruner {pruner!r} got unknown option{'s' if len(parts) > 1 else ''} {', '.join(parts)}; "
        f"its options are {', '.join(known)}"
    )


def number(pruner: str, option: str, value: Any, *, above: float, allow_none: bool = False) -> float | None:
    """``value`` as a finite float strictly greater than ``above`` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not math.isfinite(value) or value <= above:
        raise ValueError(f"pruner {pruner!r}: {option} must be a finite number > {above:g}, got {value!r}")
    return float(value)


def integer(pruner: str, option: str, value: Any, *, minimum: int, allow_none: bool = False) -> int | None:
    """``value`` as an int at least ``minimum`` (or ``None`` when allowed)."""
    if value is None and allow_none:
        return None
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < minimum:
        raise ValueError(f"pruner {pruner!r}: {option} must be an int >= {minimum}, got {value!r}")
    return int(value)
