"""hpt-async-dask: run hpt-async objectives on a Dask ``distributed`` cluster.

Installing the distribution registers ``executor="dask"`` through the
entry-point group ``hpt_async``; the scheduler comes from
``$HPT_ASYNC_DASK_SCHEDULER``.  :class:`DaskExecutor` takes an address or an
asynchronous ``Client`` directly.

``distributed`` is imported only when one of the names below is first used,
so that merely having the plugin installed costs every hpt-async process
nothing.
"""

from __future__ import annotations

from typing import Any

__version__ = "0.1.0"

__all__ = ["SCHEDULER_ENV", "DaskExecutor", "WorkerLost", "__version__"]


def __getattr__(name: str) -> Any:
    if name in ("SCHEDULER_ENV", "DaskExecutor", "WorkerLost"):
        from . import executor

        return getattr(executor, name)
    raise AttributeError(f"module 'hpt_async_dask' has no attribute {name!r}")
