"""What every framework callback shares: the synchronous report and the lookup of a metric."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from typing import Any

from ..exceptions import HptError

__all__ = ["MetricNotFoundError", "sync_report"]

Report = Callable[..., None]


class MetricNotFoundError(HptError, KeyError):
    """A callback's monitored metric is not among those the framework logged; the message lists them."""

    def __init__(self, framework: str, monitor: object, available: Iterable[str]) -> None:
        names = sorted({str(name) for name in available})
        self.monitor = monitor
        self.available = names
        super().__init__(
            f"{framework}: no metric {monitor!r} to report; the metrics logged are "
            + (", ".join(repr(n) for n in names) if names else "none")
        )

    def __str__(self) -> str:  # KeyError would show the message quoted
        return str(self.args[0])


def sync_report(trial: Any) -> Report:
    """The blocking ``report(value, step=...)`` of ``trial``, for a callback that runs inside training.

    ``trial`` is what the objective received: a :class:`~hpt_async.SyncTrial`
    (plain ``def`` objectives, in a thread or a worker process) is used as it
    is; a :class:`~hpt_async.Trial` (``async def`` objectives) goes through
    :meth:`~hpt_async.Trial.for_thread`, so the training must run in a worker
    thread (``anyio.to_thread.run_sync``).  Anything else with a synchronous
    ``report`` method (a test double, say) is used as it is.
    """
    from ..trial import Trial

    if isinstance(trial, Trial):
        return trial.for_thread().report
    report = getattr(trial, "report", None)
    if report is None or not callable(report):
        raise TypeError(f"a callback takes the trial the objective received, got {trial!r}")
    return report


def on_event_loop() -> bool:
    """True when the calling thread runs an event loop (training there would block every other trial)."""
    import anyio.lowlevel

    try:
        anyio.lowlevel.current_token()
    except RuntimeError:
        return False
    return True


def loop_guard(trial: Any, framework: str) -> None:
    """Refuse a :class:`~hpt_async.Trial` whose training runs on the event loop's own thread."""
    from ..trial import Trial

    if isinstance(trial, Trial) and on_event_loop():
        raise RuntimeError(
            f"{framework} is training on the event loop's thread, where the trial's report cannot wait for "
            "the pruner: run the training in a worker thread (await anyio.to_thread.run_sync(train, ...))"
        )


def split_monitor(monitor: str | tuple[str, str] | None, known: dict[str, list[str]]) -> tuple[str, str] | None:
    """``(data set, metric)`` named by ``monitor`` among ``known`` ({data set: [metrics]}), or ``None``.

    ``monitor`` is a pair, or one string ``"<data set>-<metric>"`` (either
    name may itself hold a ``-``: the split that names a known pair wins).
    """
    if monitor is None:
        return None
    if isinstance(monitor, tuple):
        data, metric = monitor
        return (data, metric) if metric in known.get(data, ()) else None
    for i, char in enumerate(monitor):
        if char == "-" and monitor[i + 1 :] in known.get(monitor[:i], ()):
            return monitor[:i], monitor[i + 1 :]
    return None


def check_monitor(monitor: object) -> None:
    """Refuse a ``monitor`` that is neither ``None``, a ``"data-metric"`` string nor a pair of strings."""
    if monitor is None or (isinstance(monitor, str) and "-" in monitor):
        return
    if isinstance(monitor, tuple) and len(monitor) == 2 and all(isinstance(m, str) and m for m in monitor):
        return
    raise ValueError(f"monitor must be None, '<data set>-<metric>' or a (data set, metric) pair, got {monitor!r}")
