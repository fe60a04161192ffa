"""The entry point hpt-async loads (group ``hpt_async``): registers ``executor="dask"``."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from hpt_async import hookimpl


def dask_executor(*args: Any, **kwargs: Any) -> Any:
    """Make a :class:`~hpt_async_dask.DaskExecutor` (importing ``distributed`` only now)."""
    from .executor import DaskExecutor

    return DaskExecutor(*args, **kwargs)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``dask``."""
    register("executor", "dask", dask_executor)
