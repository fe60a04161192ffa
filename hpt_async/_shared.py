"""Keeping one tuner in step with the others that share its study.

:class:`SharedStudy` owns the maintenance of a session whose storage shares
studies (its ``sync_interval`` is not ``None``): renewing the lease on this
tuner's running trials, marking LOST the trials of tuners that died (any
tuner sharing the study may then retry them, see ``_trial_source.py``),
and taking in the trials other tuners created or ended.
During :meth:`Tuner.run <hpt_async.Tuner.run>` a background task calls
:meth:`SharedStudy.sync` every interval; ask-and-tell, which has no
background task, calls :meth:`SharedStudy.sync_if_due` from ``ask`` and
``tell``.
"""

from __future__ import annotations

import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING

import anyio

from ._run import Fatal

if TYPE_CHECKING:
    from ._run import RunState
    from .contracts.storage import StudySession
    from .study import StudyView
    from .trial import TrialRecord

__all__ = ["SharedStudy"]


class SharedStudy:
    """The sync of one tuner's session with the rest of its study (see the module docstring)."""

    def __init__(
        self,
        session: StudySession,
        view: StudyView,
        run: RunState,
        storage_label: str,
        finished: Callable[[TrialRecord], Awaitable[None]],
    ) -> None:
        self._session = session
        self._view = view
        self._run = run
        self._label = storage_label
        self._finished = finished
        self._last = time.monotonic()
        self._synced = anyio.Event()

    @property
    def interval(self) -> float | None:
        """Seconds between passes, ``None`` for a storage that does not share studies."""
        return self._session.sync_interval

    async def maintain(self) -> None:
        """Sync every interval until cancelled or a storage error stops the study.

        Between passes the session's :meth:`~StudySession.wait_changed` is
        awaited: a backend that hears of other sessions' writes (PostgreSQL's
        NOTIFY) returns early, and a pass that only takes in the changes
        runs at once; the lease and the recovery of LOST trials keep to the
        interval.
        """
        interval = self.interval
        assert interval is not None
        session = self._session
        while True:
            due = self._last + interval - time.monotonic()
            woke = await session.wait_changed(max(due, 0.0)) if due > 0 else False
            interval = self.interval or interval
            try:
                await self.sync(full=not woke or time.monotonic() - self._last >= interval)
            except Fatal:
                return

    async def sync(self, *, full: bool = True) -> None:
        """One pass: renew the lease, mark LOST the trials of dead tuners, take in other tuners' trials.

        With ``full=False`` only the last (another session wrote something).
        """
        session = self._session
        view = self._view
        lost: list[TrialRecord] = []
        if full:
            self._last = time.monotonic()
        try:
            if full:
                await session.heartbeat()
                lost = await session.claim_lost()
            changed = await session.refresh()
        except Exception as exc:
            raise self._run.fail(f"storage {self._label!r} failed to synchronise", exc) from exc
        for record in (*changed, *lost):
            old = view.trials.get(record.number)
            if old is not None and old.state is record.state and old.state.finished:
                continue
            view._put(record)
            if record.state.finished:
                await self._finished(record)
        synced, self._synced = self._synced, anyio.Event()
        synced.set()

    async def sync_if_due(self) -> None:
        """A pass when one is due (ask-and-tell keeps the lease alive this way)."""
        interval = self.interval
        if interval is not None and time.monotonic() - self._last >= interval:
            await self.sync()

    def waiting_on_others(self) -> bool:
        """True when trials of other tuners are running and the study may still need this one.

        They may end uncounted (LOST when their tuner died, CANCELLED), or
        their configurations may come back to be retried; a worker then
        waits for the next pass (:meth:`wait`) instead of leaving.
        """
        if self.interval is None:
            return False
        return len(self._view.running) > len(self._run.live)

    async def wait(self) -> None:
        """Wait for the next pass."""
        await self._synced.wait()
