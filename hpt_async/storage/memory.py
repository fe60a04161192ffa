"""``storage="memory"``: trials kept in this process only (the default)."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from types import MappingProxyType
from typing import Any

from ..contracts.storage import (
    Direction,
    Storage,
    StudyNotFound,
    StudyReader,
    StudySession,
    StudySummary,
    check_direction,
    merge_settings,
)
from ..exceptions import MAX_STEP, ReportStepError
from ..hookspecs import hookimpl
from ..space import Space
from ..trial import TrialRecord, TrialState

__all__ = ["MemoryStorage"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_PAUSED = TrialState.PAUSED
_RUNNING = TrialState.RUNNING
# The states that use up a unit of the study's budget (see StudySession.reserve_within).
_UNITS = frozenset({TrialState.RUNNING, TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAILED, TrialState.PAUSED})


class _Study:
    __slots__ = (
        "changes",
        "checkpoints",
        "direction",
        "keys",
        "next_number",
        "records",
        "reported",
        "reservations",
        "retried",
        "sessions",
        "settings",
        "space",
        "used",
        "watchers",
    )

    def __init__(self, direction: Direction, space: dict[str, Any], settings: dict[str, Any]) -> None:
        self.direction = direction
        self.space = space
        self.settings = settings
        self.next_number = 0
        self.records: dict[int, TrialRecord] = {}
        # Running trials' reports, ({step: value}, {step: values}): kept apart so that a report costs O(1),
        # and merged into the stored running record when someone reads it (see current()).
        self.reported: dict[int, tuple[dict[int, float], dict[int, tuple[float, ...]]]] = {}
        self.sessions = 0
        self.watchers = 0
        # Writes as (session id, trial number, is a report) once two sessions share the study or a
        # reader watches it, for refresh() and the readers; each keeps its position in the list.
        self.changes: list[tuple[int, int, bool]] = []
        # Trial number -> its latest checkpoint, shared by every session of the study.
        self.checkpoints: dict[int, bytes] = {}
        # Budget units used by trials (RUNNING, COMPLETE, PRUNED, FAILED, PAUSED), numbers reserved and not
        # yet created (number -> session id), the key each exclusive trial holds, the trials retried.
        self.used = 0
        self.reservations: dict[int, int] = {}
        self.keys: dict[str, int] = {}
        self.retried: set[int] = set()

    def store(self, record: TrialRecord) -> None:
        """Put ``record`` in, keeping the budget count."""
        old = self.records.get(record.number)
        self.used += (record.state in _UNITS) - (old is not None and old.state in _UNITS)
        self.records[record.number] = record

    def current(self, number: int) -> TrialRecord:
        """Trial ``number``'s record as it stands, the reports of a running trial included."""
        record = self.records[number]
        live = self.reported.get(number)
        if live is not None and record.state is _RUNNING and len(live[0]) != len(record.reports):
            reports, several = live
            record = replace(
                record,
                reports=MappingProxyType(dict(reports)),
                report_values=MappingProxyType(dict(several)) if several else record.report_values,
            )
            self.records[number] = record  # until the next report
        return record

    def stored(self) -> list[TrialRecord]:
        """Every record as it stands, by number."""
        return [self.current(n) for n in sorted(self.records)]

    def changed(self, sid: int, number: int, report: bool = False) -> None:
        """Log a write of trial ``number`` when someone else may ask for it."""
        if self.sessions > 1 or self.watchers:
            self.changes.append((sid, number, report))


class _MemorySession(StudySession):
    # Cheap: a refresh only scans the writes made since the last one, and
    # nothing is written there until a second session shares the study.
    sync_interval = 0.01

    def __init__(self, study: _Study, history: list[TrialRecord], sid: int) -> None:
        super().__init__(history)
        self.settings = MappingProxyType(study.settings)
        self._study = study
        self._sid = sid
        self._cursor = len(study.changes)

    exact = True  # every call below runs without a suspension point: atomic within the process

    async def reserve(self) -> int:
        study = self._study
        number = study.next_number
        study.next_number = number + 1
        return number

    async def reserve_within(self, budget: int | None) -> int | None:
        study = self._study
        if budget is not None and study.used + len(study.reservations) >= budget:
            return None
        number = study.next_number
        study.next_number = number + 1
        study.reservations[number] = self._sid
        return number

    async def release(self, number: int) -> None:
        study = self._study
        if study.reservations.get(number) == self._sid:
            del study.reservations[number]

    async def trial_created(self, record: TrialRecord) -> None:
        study = self._study
        study.reservations.pop(record.number, None)
        study.store(record)
        study.reported[record.number] = (dict(record.reports), dict(record.report_values))
        study.changed(self._sid, record.number)

    async def trial_created_once(self, record: TrialRecord, key: str) -> bool:
        study = self._study
        holder = study.keys.get(key)
        if holder is not None:
            held = study.records.get(holder)
            if held is None or held.state is not TrialState.CANCELLED:
                return False
        study.keys[key] = record.number
        await self.trial_created(record)
        return True

    async def trial_created_retry(self, record: TrialRecord) -> bool:
        study = self._study
        of = record.retry_of
        retried = study.records.get(of) if of is not None else None
        if of is None or of in study.retried or retried is None:
            return False
        if retried.state not in (TrialState.LOST, TrialState.FAILED):
            return False
        study.retried.add(of)
        for key, holder in study.keys.items():
            if holder == of:
                study.keys[key] = record.number
                break
        await self.trial_created(record)
        data = study.checkpoints.pop(of, None)
        if data is not None:
            study.checkpoints[record.number] = data
        return True

    async def close(self) -> None:
        study = self._study
        for number in [n for n, sid in study.reservations.items() if sid == self._sid]:
            del study.reservations[number]

    async def trial_reported(
        self, number: int, step: int, value: float, values: tuple[float, ...] | None = None
    ) -> None:
        if not 0 <= step <= MAX_STEP:
            raise ReportStepError(f"trial {number}: report step {step} does not fit a signed 64-bit integer")
        study = self._study
        live = study.reported.get(number)
        if live is not None:
            live[0][step] = value
            if values is not None:
                live[1][step] = values
        if study.watchers:
            study.changed(self._sid, number, report=True)

    async def trial_ended(self, record: TrialRecord) -> None:
        study = self._study
        study.store(record)
        study.reported.pop(record.number, None)
        study.changed(self._sid, record.number)

    async def trial_resumed(self, record: TrialRecord) -> bool | TrialRecord:
        study = self._study
        stored = study.records.get(record.number)
        if stored is None or stored.state is not _PAUSED:
            return False
        if record.reports:
            # Every stored report is kept: the record may be older than what another session stored since.
            reports = {**stored.reports, **record.reports}
            several = {**stored.report_values, **record.report_values}
            record = replace(
                record,
                reports=MappingProxyType(reports),
                report_values=MappingProxyType(several) if several else record.report_values,
            )
        study.store(record)
        study.reported[record.number] = (dict(record.reports), dict(record.report_values))
        study.changed(self._sid, record.number)
        return record

    async def put_checkpoint(self, number: int, data: bytes) -> None:
        self._study.checkpoints[number] = bytes(data)

    async def get_checkpoint(self, number: int) -> bytes | None:
        return self._study.checkpoints.get(number)

    async def drop_checkpoint(self, number: int) -> None:
        self._study.checkpoints.pop(number, None)

    async def refresh(self) -> list[TrialRecord]:
        study = self._study
        changes = study.changes
        if self._cursor == len(changes):
            return []
        numbers = {number for sid, number, report in changes[self._cursor :] if sid != self._sid and not report}
        self._cursor = len(changes)
        return [study.current(n) for n in sorted(numbers)]


class _MemoryReader(StudyReader):
    """Reads the study's change log from its own position in it."""

    def __init__(self, storage: MemoryStorage, name: str, study: _Study) -> None:
        super().__init__(storage, name)
        self._s: _Study | None = study
        self._cursor: int | None = None  # None: nothing read yet
        study.watchers += 1

    async def read(self) -> list[TrialRecord]:
        study = self._s
        if study is None:
            raise RuntimeError("this study reader is closed")
        changes = study.changes
        if self._cursor is None:
            numbers: Sequence[int] = sorted(study.records)
        elif self._cursor == len(changes):
            return []
        else:
            numbers = sorted({number for _, number, _ in changes[self._cursor :]})
        self._cursor = len(changes)
        return [study.current(n) for n in numbers if n in study.records]

    async def close(self) -> None:
        if self._s is not None:
            self._s.watchers -= 1
            self._s = None


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

    async def open(
        self,
        study: str,
        *,
        direction: Direction | Sequence[str],
        space: Space,
        settings: Mapping[str, Any] | None = None,
    ) -> StudySession:
        direction = check_direction(direction)
        s = self._studies.get(study)
        if s is None:
            s = self._studies[study] = _Study(direction, space.describe(), merge_settings(None, settings))
        else:
            if s.direction != direction:
                raise ValueError(f"study {study!r} exists with direction {s.direction!r}, not {direction!r}")
            diffs = space.differences(s.space)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
            s.settings = merge_settings(s.settings, settings)
        self._sessions += 1
        s.sessions += 1
        return _MemorySession(s, s.stored(), self._sessions)

    async def load(self, study: str, *, space: Space | None = None) -> list[TrialRecord]:
        s = self._studies.get(study)
        if s is None:
            return []
        if space is not None:
            diffs = space.differences(s.space)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        return s.stored()

    async def watch(self, study: str, *, space: Space | None = None) -> StudyReader:
        """A reader of what changed in ``study``; :class:`StudyNotFound` when there is none."""
        s = self._studies.get(study)
        if s is None:
            raise StudyNotFound(f"no study named {study!r} in memory")
        if space is not None:
            diffs = space.differences(s.space)
            if diffs:
                raise ValueError(f"study {study!r} was created with another space: " + "; ".join(diffs))
        return _MemoryReader(self, study, s)

    async def checkpoint(self, study: str, number: int) -> bytes | None:
        """The checkpoint the study still keeps for trial ``number``, or ``None``."""
        s = self._studies.get(study)
        return None if s is None else s.checkpoints.get(number)

    # -- administration --------------------------------------------------------

    def _summary(self, name: str, s: _Study) -> StudySummary:
        counts: dict[str, int] = {}
        for record in s.records.values():
            counts[record.state.value] = counts.get(record.state.value, 0) + 1
        return StudySummary(
            name=name, direction=s.direction, space=s.space, counts=counts, settings=MappingProxyType(s.settings)
        )

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
