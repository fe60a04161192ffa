"""``storage="memory"``: trials kept in this process only (the default)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from ..space import Space
from ..trial import TrialRecord, TrialState
from .base import Storage, StudyNotFound, StudySession, StudySummary

__all__ = ["MemoryStorage"]


class _Study:
    __slots__ = ("changes", "checkpoints", "direction", "next_number", "records", "sessions", "space")

    def __init__(self, direction: str, space: dict[str, Any]) -> None:
        self.direction = direction
        self.space = space
        self.next_number = 0
        self.records: dict[int, TrialRecord] = {}
        self.sessions = 0
        # Writes as (session id, record) once two sessions share the study, for refresh().
        self.changes: list[tuple[int, TrialRecord]] = []
        # Trial number -> its latest checkpoint, shared by every session of the study.
        self.checkpoints: dict[int, bytes] = {}


class _MemorySession(StudySession):
    # Cheap: a refresh only scans the writes made since the last one, and
    # nothing is written there until a second session shares the study.
    sync_interval = 0.01

    def __init__(self, study: _Study, history: list[TrialRecord], sid: int) -> None:
        super().__init__(history)
        self._study = study
        self._sid = sid
        self._cursor = len(study.changes)

    async def reserve(self) -> int:
        study = self._study
        number = study.next_number
        study.next_number = number + 1
        return number

    async def trial_created(self, record: TrialRecord) -> None:
        study = self._study
        study.records[record.number] = record
        if study.sessions > 1:
            study.changes.append((self._sid, record))

    async def trial_reported(self, number: int, step: int, value: float) -> None:
        # A running record's reports are a live view of the trial's own dict.
        pass

    async def trial_ended(self, record: TrialRecord) -> None:
        study = self._study
        study.records[record.number] = record
        if study.sessions > 1:
            study.changes.append((self._sid, record))

    async def trial_resumed(self, record: TrialRecord) -> bool:
        study = self._study
        stored = study.records.get(record.number)
        if stored is None or stored.state is not TrialState.PAUSED:
            return False
        study.records[record.number] = record
        if study.sessions > 1:
            study.changes.append((self._sid, record))
        return True

    async def put_checkpoint(self, number: int, data: bytes) -> None:
        self._study.checkpoints[number] = bytes(data)

    async def get_checkpoint(self, number: int) -> bytes | None:
        return self._study.checkpoints.get(number)

    async def drop_checkpoint(self, number: int) -> None:
        self._study.checkpoints.pop(number, None)

    async def refresh(self) -> list[TrialRecord]:
        changes = self._study.changes
        if self._cursor == len(changes):
            return []
        latest: dict[int, TrialRecord] = {}
        for sid, record in changes[self._cursor :]:
            if sid != self._sid:
                latest[record.number] = record
        self._cursor = len(changes)
        return [latest[n] for n in sorted(latest)]


class MemoryStorage(Storage):
    """Trials in a dict, gone with the process.

    A fresh instance comes with each Tuner given ``"memory"``; pass one
    instance to several tuners (one after the other, or at once) to share a
    study between them within a process: they then see each other's trials.
    """

    name = "memory"
    durable = False

    def __init__(self, url: str = "memory") -> None:
        if url not in ("memory", "memory:", "memory://"):
            raise ValueError(f"the memory storage takes the URL 'memory', got {url!r}")
        self._studies: dict[str, _Study] = {}
        self._sessions = 0

    async def open(self, study: str, *, direction: str, space: Space) -> StudySession:
        s = self._studies.get(study)
        if s is None:
            s = self._studies[study] = _Study(direction, space.describe())
        else:
            if s.direction != direction:
                raise ValueError(f"study {study!r} exists with direction {s.direction!r}, not {direction!r}")
            diffs = space.differences(s.space)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        self._sessions += 1
        s.sessions += 1
        history = [s.records[n] for n in sorted(s.records)]
        return _MemorySession(s, history, self._sessions)

    async def load(self, study: str, *, space: Space | None = None) -> list[TrialRecord]:
        s = self._studies.get(study)
        if s is None:
            return []
        if space is not None:
            diffs = space.differences(s.space)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        return [s.records[n] for n in sorted(s.records)]

    async def checkpoint(self, study: str, number: int) -> bytes | None:
        """The checkpoint the study still keeps for trial ``number``, or ``None``."""
        s = self._studies.get(study)
        return None if s is None else s.checkpoints.get(number)

    # -- administration --------------------------------------------------------

    def _summary(self, name: str, s: _Study) -> StudySummary:
        counts: dict[str, int] = {}
        for record in s.records.values():
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        return StudySummary(name=name, direction=s.direction, space=s.space, counts=counts)

    async def studies(self) -> list[StudySummary]:
        """Every study held, ordered by name."""
        return [self._summary(name, self._studies[name]) for name in sorted(self._studies)]

    async def summary(self, study: str) -> StudySummary:
        s = self._studies.get(study)
        if s is None:
            raise StudyNotFound(f"no study named {study!r} in memory")
        return self._summary(study, s)

    async def delete(self, study: str) -> None:
        if self._studies.pop(study, None) is None:
            raise StudyNotFound(f"no study named {study!r} in memory")

    async def rename(self, old: str, new: str) -> None:
        if not isinstance(new, str) or not new:
            raise ValueError(f"a study name is a non-empty string, got {new!r}")
        if old not in self._studies:
            raise StudyNotFound(f"no study named {old!r} in memory")
        if new in self._studies:
            raise ValueError(f"a study named {new!r} exists already")
        self._studies[new] = self._studies.pop(old)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``memory``."""
    register("storage", "memory", MemoryStorage)
