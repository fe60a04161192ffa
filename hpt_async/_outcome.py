"""What an objective returned, as the state, value and values its trial ends with."""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from .trial import TrialState

__all__ = ["outcome"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_COMPLETE = TrialState.COMPLETE
_FAILED = TrialState.FAILED


def _number(raw: Any) -> tuple[float | None, str | None]:
    """``raw`` as a finite float, or ``None`` and the error that fails the trial."""
    kind = type(raw)
    if kind is not float and kind is not int and (kind is bool or not isinstance(raw, numbers.Real)):
        return None, f"TypeError: the objective returned {raw!r}; expected a number"
    try:
        value = float(raw)
    except OverflowError:  # an int beyond the float range (its text may be too long to show)
        return None, "OverflowError: the objective returned an int too large for a float"
    if not math.isfinite(value):
        return None, f"ValueError: the objective returned {value}"
    return value, None


def outcome(raw: Any, objectives: int | None) -> tuple[TrialState, float | None, str | None, tuple[float, ...] | None]:
    """State, value, error and values for what an objective returned: only finite numbers COMPLETE.

    ``objectives`` is ``None`` for a study with one direction (a number is
    expected), else the number of values expected (a sequence of numbers).
    """
    if objectives is None:
        value, error = _number(raw)
        return (_FAILED if error else _COMPLETE), value, error, None
    if isinstance(raw, (str, bytes)) or not isinstance(raw, Sequence) or len(raw) != objectives:
        error = f"TypeError: the objective returned {raw!r}; expected a sequence of {objectives} numbers"
        return _FAILED, None, error, None
    values: list[float] = []
    for item in raw:
        value, error = _number(item)
        if value is None:
            return _FAILED, None, error, None
        values.append(value)
    return _COMPLETE, values[0], None, tuple(values)
