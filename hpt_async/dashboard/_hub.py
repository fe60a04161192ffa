"""Keeps every study's model current: one reader of changes per study, the list of studies polled."""

from __future__ import annotations

import logging
import math
from typing import Any

import anyio
from anyio.abc import TaskGroup, TaskStatus

from ..contracts.storage import Storage, StudyNotFound, StudySummary
from ._model import StudyInfo, StudyModel

__all__ = ["FIRST_CHART_GRACE", "Hub"]

#: Seconds the whole summaries of a study wait, after its brief ones, for a first chart of it to be served.
FIRST_CHART_GRACE = 1.0

log = logging.getLogger("hpt_async.dashboard")


class Hub:
    """The studies of one storage as :class:`StudyModel` objects, updated in the background.

    :meth:`run` lists the storage's studies every ``list_interval`` seconds
    and keeps one task per study reading its changes every ``interval``
    seconds through :meth:`Storage.watch`: the first read takes every trial's
    summary (:meth:`StudyReader.read_summaries`), the later ones only the
    trials that changed.
    A study that disappears (deleted or renamed) is dropped.
    """

    def __init__(self, storage: Storage, *, interval: float = 0.5, list_interval: float = 2.0) -> None:
        if not (isinstance(interval, (int, float)) and math.isfinite(interval) and interval > 0):
            raise ValueError(f"interval must be a number of seconds > 0, got {interval!r}")
        self.storage = storage
        self.interval = float(interval)
        self.list_interval = float(list_interval)
        self.models: dict[str, StudyModel] = {}
        self.listed = anyio.Event()
        self.list_error: str | None = None
        self._scopes: dict[str, anyio.CancelScope] = {}
        self._tg: TaskGroup | None = None

    async def run(self, *, task_status: TaskStatus[None] = anyio.TASK_STATUS_IGNORED) -> None:
        """Run until cancelled."""
        async with anyio.create_task_group() as tg:
            self._tg = tg
            await self.refresh_list()
            task_status.started()
            while True:
                await anyio.sleep(self.list_interval)
                await self.refresh_list()

    async def refresh_list(self) -> None:
        """Read the list of studies; start watching new ones, drop those gone."""
        try:
            found: list[StudySummary] = await self.storage.studies()
            self.list_error = None
        except FileNotFoundError as exc:
            found, self.list_error = [], str(exc)
        except Exception as exc:  # a storage being written may fail a read now and then: try again later
            self.list_error = f"{type(exc).__name__}: {exc}"
            log.warning("dashboard: cannot list the studies: %s", self.list_error)
            self.listed.set()
            return
        names = {s.name for s in found}
        for summary in found:
            if summary.name not in self.models:
                self._start(summary)
        for name in list(self.models):
            if name not in names:
                scope = self._scopes.pop(name, None)
                if scope is not None:
                    scope.cancel()
                del self.models[name]
        self.listed.set()

    def _start(self, summary: StudySummary) -> None:
        info = StudyInfo(
            name=summary.name,
            direction=summary.direction,
            space=dict(summary.space),
            created=summary.created,
            settings=dict(summary.settings),
        )
        model = StudyModel(info)
        self.models[summary.name] = model
        scope = anyio.CancelScope()
        self._scopes[summary.name] = scope
        assert self._tg is not None
        self._tg.start_soon(self._watch, model, scope)

    async def _watch(self, model: StudyModel, scope: anyio.CancelScope) -> None:
        name = model.info.name
        with scope:
            try:
                while True:
                    try:
                        async with await self.storage.watch(name) as reader:
                            # Every trial's summary first (a query of a few columns in backends that have it),
                            # then only what changed; full records are read by number when a page shows them.
                            # A backend that can reads brief summaries first (what the charts' choice of trials
                            # needs), so that the first chart does not wait for every configuration to be decoded.
                            brief = reader.brief_summaries
                            model.load(await reader.read_summaries(brief=brief), complete=not brief)
                            model.fetch = reader.read_trials
                            try:
                                if not model.loaded:
                                    model.loaded = True
                                    model.loaded_event.set()
                                model.error = None
                                if brief:
                                    # A page opened as the server starts gets its first chart before the whole
                                    # summaries are decoded (both would share the interpreter), within a bound.
                                    with anyio.move_on_after(FIRST_CHART_GRACE):
                                        await model.first_chart.wait()
                                    # The whole summaries through a reader of their own, so that the records a first
                                    # chart reads meanwhile (through this reader) do not wait behind them.  Changes
                                    # since the brief read come again from this reader's next read (harmless).
                                    async with await self.storage.watch(name) as other:
                                        model.load(await other.read_summaries())
                                while True:
                                    await anyio.sleep(self.interval)
                                    model.apply(await reader.read())
                                    model.error = None
                            finally:
                                model.fetch = None
                    except StudyNotFound:
                        model.error = "the study is no longer in the storage"
                    except Exception as exc:
                        model.error = f"{type(exc).__name__}: {exc}"
                        log.warning("dashboard: reading study %r failed (retrying): %s", name, model.error)
                    if not model.loaded:
                        model.loaded = True  # pages stop waiting and show the error
                        model.loaded_event.set()
                    model.complete_event.set()
                    await anyio.sleep(max(1.0, self.interval))
            finally:
                # Stopped (the study left the storage): requests waiting for this model answer instead of hanging.
                if model.error is None:
                    model.error = "the study is no longer in the storage"
                model.loaded = True
                model.loaded_event.set()
                model.complete_event.set()

    def studies(self) -> list[dict[str, Any]]:
        """Every study's summary, by name."""
        return [self.models[name].summary() for name in sorted(self.models)]
