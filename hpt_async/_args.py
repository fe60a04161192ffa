"""Checks of the Tuner's plain arguments, each error naming the argument and the value given."""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable
from typing import Any

from .contracts.storage import check_direction

__all__ = ["check", "directions", "metric_names"]


def directions(direction: Any, directions: Any) -> Any:
    """The one direction argument of a Tuner given ``direction=`` or ``directions=`` (``minimize`` by default).

    ``directions=`` takes a sequence: with one entry it is that entry (one
    objective, a number returned), with several the tuple of them.
    """
    if directions is None:
        return "minimize" if direction is None else direction
    if direction is not None:
        raise ValueError("give direction= (one objective) or directions= (one per objective), not both")
    if isinstance(directions, str):
        raise ValueError(
            f"directions= takes a sequence such as ['minimize', 'maximize'], got the string {directions!r}"
            " (for one objective use direction=)"
        )
    checked = check_direction(directions)
    return checked[0] if len(checked) == 1 else checked


def metric_names(names: Any, objectives: int) -> tuple[str, ...] | None:
    """``names`` checked: one distinct non-empty string per objective, or ``None``."""
    if names is None:
        return None
    if isinstance(names, str):
        names = [names]
    if not isinstance(names, (list, tuple)) or not all(isinstance(n, str) and n for n in names):
        raise ValueError(f"metric_names takes a list of non-empty strings, got {names!r}")
    if len(names) != objectives:
        raise ValueError(f"metric_names has {len(names)} names for {objectives} objective(s): {list(names)!r}")
    if len(set(names)) != len(names):
        raise ValueError(f"metric_names must be distinct, got {list(names)!r}")
    return tuple(names)


def _positive(name: str, value: Any) -> None:
    if value is None:
        return
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value > 0:
        raise ValueError(f"{name} must be a number > 0, got {value!r}")


def _count(name: str, value: Any) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < 1):
        raise ValueError(f"{name} must be an int >= 1, got {value!r}")


def check(
    objective: Callable[..., Any] | None,
    direction: Any,
    concurrency: Any,
    max_trials: Any,
    max_failures: Any,
    timeout: Any,
    trial_timeout: Any,
    target: Any,
    seed: Any,
    study: Any,
    disable_plugins: Any,
) -> None:
    """Raise ``TypeError`` or ``ValueError`` for the first argument a Tuner cannot take."""
    if objective is not None and not callable(objective):
        raise TypeError(f"objective must be callable (or None for ask-and-tell), got {objective!r}")
    if not isinstance(check_direction(direction), str) and len(direction) > 1 and target is not None:
        raise ValueError("target= stops a study with one objective; this one has several directions")
    if isinstance(concurrency, bool) or not isinstance(concurrency, int) or concurrency < 1:
        raise ValueError(f"concurrency must be an int >= 1, got {concurrency!r}")
    _count("max_trials", max_trials)
    _count("max_failures", max_failures)
    _positive("timeout", timeout)
    _positive("trial_timeout", trial_timeout)
    if target is not None and (
        isinstance(target, bool) or not isinstance(target, numbers.Real) or not math.isfinite(target)
    ):
        raise ValueError(f"target must be a finite number, got {target!r}")
    if seed is not None and (isinstance(seed, bool) or not isinstance(seed, int)):
        raise TypeError(f"seed must be an int, got {seed!r}")
    if seed is not None and not 0 <= seed < 2**64:
        raise ValueError(f"seed must be in [0, 2**64), got {seed}")
    if study is not None and (not isinstance(study, str) or not study):
        raise ValueError(f"study must be a non-empty string, got {study!r}")
    if isinstance(disable_plugins, str):
        raise TypeError(f"disable_plugins takes a list of plugin names, got the string {disable_plugins!r}")
