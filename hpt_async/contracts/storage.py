"""The storage contract every backend follows.

A :class:`Storage` is a backend (a database file, a server, a dict in
memory).  A tuner opens one study on it and gets a :class:`StudySession`:
its own connection to that study, through which it persists its trials and
hears of everyone else's.  Several sessions (tuners in one process, or in
several processes) may share a study.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, NamedTuple

from ..exceptions import HptError
from ..trial import TrialState

if TYPE_CHECKING:
    from ..space import Space
    from ..trial import TrialRecord

__all__ = [
    "DIRECTIONS",
    "Direction",
    "Storage",
    "StudyNotFound",
    "StudyReader",
    "StudySession",
    "StudySummary",
    "TrialSummary",
    "check_direction",
    "merge_settings",
    "parse_storage_url",
]

#: A study's direction: one string, or one string per objective.
Direction = str | tuple[str, ...]

#: The directions an objective may have.
DIRECTIONS = ("minimize", "maximize")

_NO_SETTINGS: Mapping[str, Any] = MappingProxyType({})


class StudyNotFound(HptError, LookupError):
    """The storage holds no study of that name (admin methods raise it)."""


def check_direction(direction: Any) -> Direction:
    """``direction`` as a study stores it: a string, or a tuple of strings for several objectives.

    ``"minimize"`` stays a string (a study with one objective); a list or
    tuple (``["minimize", "maximize"]``) becomes a tuple, one direction per
    objective.  Anything else is a ``ValueError``.
    """
    if isinstance(direction, str):
        if direction not in DIRECTIONS:
            raise ValueError(f"direction must be 'minimize' or 'maximize', got {direction!r}")
        return direction
    if isinstance(direction, Sequence) and not isinstance(direction, (bytes, bytearray)):
        items = tuple(direction)
        if items and all(isinstance(d, str) and d in DIRECTIONS for d in items):
            return items
    raise ValueError(
        "direction must be 'minimize', 'maximize' or a non-empty sequence of them (one per objective), "
        f"got {direction!r}"
    )


def merge_settings(stored: Mapping[str, Any] | None, given: Mapping[str, Any] | None) -> dict[str, Any]:
    """The settings a study keeps after an open: ``given`` with the stored ``seed`` and strategy choice.

    ``stored`` is what the study held (``None`` when it is being created),
    ``given`` what the opening run passes (``None``: keep the stored ones).
    The result is ``given`` (a JSON copy) except that a ``seed`` stored
    before (not ``None``) is kept, since a study's seed is fixed when it is
    first set, and so is the ``choice`` of a stored ``strategy`` spec when
    the given spec names the same strategy (what ``auto`` chose when the
    study was created stays its choice).  ``ValueError`` when ``given`` is not a JSON-serialisable
    mapping with string keys.
    """
    old = dict(stored or {})
    if given is None:
        return old
    if not isinstance(given, Mapping) or not all(isinstance(k, str) for k in given):
        raise ValueError(f"study settings are a mapping with string keys, got {given!r}")
    try:
        new = json.loads(json.dumps(dict(given), allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise ValueError(f"study settings must be JSON-serialisable: {exc}") from None
    if old.get("seed") is not None:
        new["seed"] = old["seed"]
    old_strategy, new_strategy = old.get("strategy"), new.get("strategy")
    if (
        isinstance(old_strategy, dict)
        and isinstance(new_strategy, dict)
        and old_strategy.get("choice") is not None
        and old_strategy.get("name") == new_strategy.get("name")
    ):
        new["strategy"] = {**new_strategy, "choice": old_strategy["choice"]}
    return new


@dataclass(frozen=True)
class StudySummary:
    """What an admin listing shows of one study.

    ``direction`` is a string, or a tuple of strings (one per objective)
    for a study with several objectives; ``counts`` maps a state's value
    (``"complete"``, ``"running"``, ...) to its number of trials; ``space``
    is the :meth:`Space.describe` the study was created with; ``created`` is
    a Unix timestamp, or ``None`` when the backend does not keep it;
    ``settings`` are the study's stored settings (its seed and the specs of
    its components, see :meth:`Storage.open`), empty when none were stored.
    """

    name: str
    direction: Direction
    space: Mapping[str, Any] = field(default_factory=dict)
    counts: Mapping[str, int] = field(default_factory=dict)
    created: float | None = None
    settings: Mapping[str, Any] = field(default_factory=dict)

    @property
    def n_trials(self) -> int:
        """Trials of every state."""
        return sum(self.counts.values())


def parse_storage_url(url: str) -> str:
    """The scheme of a storage URL: ``"memory"`` -> ``memory``, ``"sqlite:///x.db"`` -> ``sqlite``."""
    if not isinstance(url, str) or not url:
        raise ValueError(f"a storage URL is a non-empty string, got {url!r}")
    scheme = url.split(":", 1)[0]
    if not scheme.replace("+", "").replace("-", "").replace("_", "").isalnum():
        raise ValueError(f"storage URL {url!r} has no scheme (expected e.g. 'memory' or 'sqlite:///tuning.db')")
    return scheme


#: How many characters of a trial's error a :class:`TrialSummary` keeps.
SUMMARY_ERROR_CHARS = 200


class TrialSummary(NamedTuple):
    """What a live view needs of one trial to list, sort, filter and chart it, without its heavy parts.

    A trial's state, value(s), times and configuration as its
    :class:`~hpt_async.trial.TrialRecord` holds them, but of its reports
    only their count and highest step, of its error only the first
    :data:`SUMMARY_ERROR_CHARS` characters, and none of its user
    attributes, traceback or schedule.  :meth:`StudyReader.read_summaries`
    returns one per trial; a backend reads them with a query of those
    columns alone, so that a study of 100,000 trials is summarised in a
    fraction of the time its records take to decode.
    """

    number: int
    state: TrialState
    value: float | None
    values: tuple[float, ...] | None
    started: float
    ended: float | None
    params: Mapping[str, Any]
    reports: int
    last_step: int | None
    error: str | None
    retry_of: int | None
    constraints: tuple[float, ...] | None

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (never negative), ``None`` while running."""
        return None if self.ended is None else max(0.0, self.ended - self.started)

    @property
    def feasible(self) -> bool:
        """True when every constraint is satisfied (``<= 0``), and for a trial without constraints."""
        constraints = self.constraints
        return constraints is None or all(c <= 0.0 for c in constraints)

    @classmethod
    def of(cls, record: TrialRecord) -> TrialSummary:
        """The summary of a full record."""
        error = record.error
        return cls(
            record.number,
            record.state,
            record.value,
            record.values,
            record.started,
            record.ended,
            record.params,
            len(record.reports),
            max(record.reports) if record.reports else None,
            None if error is None else error[:SUMMARY_ERROR_CHARS],
            record.retry_of,
            record.constraints,
        )


class StudySession:
    """One tuner's connection to one study; the tuner awaits it directly.

    Contract:

    * :attr:`history` holds the study's trials when the session opened,
      ordered by number, so that a tuner can resume.
    * :meth:`reserve` hands out trial numbers, unique within the study across
      every session, in increasing order; :meth:`reserve_within` does so
      within a budget (``max_trials``), and :meth:`release` gives back a
      number the tuner did not use.
    * A trial is created by :meth:`trial_created`, by
      :meth:`trial_created_once` (a configuration that must run once in the
      study, e.g. a grid point) or by :meth:`trial_created_retry` (the retry
      of a LOST trial, or of a FAILED one a retry policy matches).  A
      backend with :attr:`exact` makes each of these one transaction.
    * The session that created a trial owns it until it ends: only it reports
      and ends it.
    * A trial a pruner in promotion mode pauses is stored PAUSED with
      :meth:`trial_ended` (its checkpoint kept), and made RUNNING again by
      :meth:`trial_resumed`, for the session that resumes it.
    * :meth:`trial_ended` returns once the final record is committed (as
      durable as the backend promises); only then do the strategy and the
      plugins hear of the end.  If a cancellation interrupts it, the tuner
      awaits it again with the same record: writing a final record twice
      must be harmless.
    * :meth:`claim_lost` is awaited once when the session opens (a tuner
      that died may have left trials RUNNING).
    * :meth:`refresh`, :meth:`heartbeat` and :meth:`claim_lost` are awaited
      every :attr:`sync_interval` seconds while the tuner runs (never when it
      is ``None``): they keep sessions in step and recover the trials of a
      tuner that died.
    * Checkpoints: :meth:`put_checkpoint` keeps one checkpoint (opaque
      bytes) per trial, replacing the previous one; :meth:`get_checkpoint`
      returns it; :meth:`drop_checkpoint` forgets it.  The tuner decides
      what to keep (see ``docs/storage.md``); a checkpoint must outlive the
      session that wrote it for as long as the backend keeps trials, so
      that a LOST trial's retry, in another session, can continue from it.
      The defaults here keep checkpoints in this session only (enough for
      one tuner; a backend that shares studies overrides them).
    * :attr:`settings` holds the study's stored settings after this open
      (see :meth:`Storage.open`): a tuner resumed without a seed takes the
      study's seed from there.
    * A method that raises is fatal to the study; the error names the storage.
    """

    #: Seconds between maintenance calls; ``None`` for never.
    sync_interval: float | None = None

    #: True when :meth:`reserve_within`, :meth:`trial_created_once` and
    #: :meth:`trial_created_retry` are atomic across every session of the
    #: study (every process and host).  The defaults below are not: they keep
    #: a third-party storage working, exact for one tuner only.
    exact: bool = False

    #: The study's settings as stored after this open (empty when it keeps none).
    settings: Mapping[str, Any] = _NO_SETTINGS

    def __init__(self, history: list[TrialRecord]) -> None:
        self.history = history

    async def reserve(self) -> int:
        """A new trial number."""
        raise NotImplementedError

    async def trial_created(self, record: TrialRecord) -> None:
        """Persist a RUNNING trial with its configuration."""
        raise NotImplementedError

    async def reserve_within(self, budget: int | None) -> int | None:
        """A new trial number, or ``None`` when the study's budget is used up.

        The study's *budget units* are its RUNNING, COMPLETE, PRUNED, FAILED
        and PAUSED trials plus the live *reservations*: numbers handed out
        here and not yet created, released, or dropped with their session
        (closed, or its lease expired).  In one transaction, a backend with
        :attr:`exact` counts the units and, when fewer than ``budget``
        (``None``: no limit), hands out the next number and records it as
        this session's reservation.  So however many sessions share a study,
        the trials counting toward ``max_trials`` never exceed it.

        The default calls :meth:`reserve` (no check: the tuner checks its
        own view first, which is exact for one tuner).
        """
        return await self.reserve()

    async def release(self, number: int) -> None:
        """End this session's reservation of ``number``, which the tuner will not use (unknown: no error)."""

    async def trial_created_once(self, record: TrialRecord, key: str) -> bool:
        """Persist ``record`` (RUNNING) unless another trial holds ``key``; False, storing nothing, if one does.

        ``key`` is an opaque text of at most 64 characters (the tuner passes
        a digest of the configuration of a strategy with ``exclusive =
        True``, such as grid).  A trial holds its key in every state but
        CANCELLED; a retry (:meth:`trial_created_retry`) takes over the key
        of the trial it retries (so a CANCELLED retry frees it).  One transaction in a backend with
        :attr:`exact`: each key reaches at most one trial (and its retries)
        across every session.  Storing the trial ends the reservation of its
        number; when False is returned the reservation stays with the
        session.  The default stores the trial with :meth:`trial_created`
        and returns True.
        """
        await self.trial_created(record)
        return True

    async def trial_created_retry(self, record: TrialRecord) -> bool:
        """Persist ``record``, the retry of LOST or FAILED trial ``record.retry_of``, with its checkpoint.

        In one transaction (a backend with :attr:`exact`): when no trial has
        ``retry_of`` equal to it yet and that trial exists LOST or FAILED,
        store ``record`` RUNNING (taking over the key of the trial it
        retries, see :meth:`trial_created_once`), end the reservation of its number, and
        move the retried trial's checkpoint, if any, to ``record.number``;
        return True.  Else store nothing and return False (another session
        retried it first).  So a trial is retried exactly once even when
        the session retrying it dies: before the commit nothing happened and
        another session retries it, after it the retry exists.  The caller
        learns whether a checkpoint moved with :meth:`get_checkpoint`.  The
        default stores the trial with :meth:`trial_created` and moves the
        checkpoint with :meth:`get_checkpoint`, :meth:`put_checkpoint` and
        :meth:`drop_checkpoint` (three steps).
        """
        await self.trial_created(record)
        of = record.retry_of
        if of is not None:
            data = await self.get_checkpoint(of)
            if data is not None:
                await self.put_checkpoint(record.number, data)
                await self.drop_checkpoint(of)
        return True

    async def trial_reported(
        self, number: int, step: int, value: float, values: tuple[float, ...] | None = None
    ) -> None:
        """Persist an intermediate value (and every objective's value when the report gave several).

        ``values`` is passed only to a backend whose method takes it; one
        without it keeps the first value alone.  Readers of the study
        (``refresh``, ``watch``, ``load``) then see the report in the
        trial's ``reports`` (and ``report_values``).
        """
        raise NotImplementedError

    async def trial_ended(self, record: TrialRecord) -> None:
        """Commit the final record of a trial (or the record of a trial paused in promotion mode)."""
        raise NotImplementedError

    async def trial_resumed(self, record: TrialRecord) -> bool | TrialRecord:
        """Turn a PAUSED trial RUNNING again, owned by this session.

        ``record`` is its RUNNING record as this tuner knows it, with the
        reports the trial keeps; a record with none (the trial starts over
        without a checkpoint) drops the stored reports, one with reports
        keeps every stored one.  The record may be older than storage (a
        session sharing the study may have run the trial further since):
        a backend that can, returns the RUNNING record it stored, with every
        stored report, and the tuner continues from that; else it returns
        True.  Returns False, changing nothing, when the stored trial is no
        longer PAUSED (another session resumed it first).  The default
        stores ``record`` with :meth:`trial_created`; a backend that shares
        studies overrides it so that only one session can claim a paused
        trial.
        """
        await self.trial_created(record)
        return True

    async def refresh(self) -> list[TrialRecord]:
        """Records created or changed by *other* sessions since this one opened or last refreshed.

        The tuner puts them into its view (so strategies and ``max_trials``
        see the whole study) and tells its strategy of those that finished.
        """
        return []

    async def heartbeat(self) -> None:
        """Renew this session's lease on its running trials."""

    async def wait_changed(self, timeout: float) -> bool:
        """Wait up to ``timeout`` seconds for another session to write to the study.

        True when one did (since the previous call), False when the time ran
        out.  Between maintenance passes the tuner awaits this instead of
        sleeping, and refreshes at once when it returns True.  This default
        sleeps and returns False (the tuner then hears of other sessions'
        trials every :attr:`sync_interval`); a backend that is told of
        writes (PostgreSQL's LISTEN/NOTIFY) returns early.
        """
        import anyio

        await anyio.sleep(timeout)
        return False

    async def claim_lost(self) -> list[TrialRecord]:
        """Mark LOST the running trials whose session's lease has expired.

        Returns the LOST records that this call marked (each such trial is
        claimed by exactly one caller), so that the caller can queue its
        configuration again.
        """
        return []

    def _session_checkpoints(self) -> dict[int, bytes]:
        # Made on first use, so that subclasses that do not call __init__ still work.
        return self.__dict__.setdefault("_checkpoints", {})

    async def put_checkpoint(self, number: int, data: bytes) -> None:
        """Keep ``data`` as trial ``number``'s checkpoint, replacing any earlier one."""
        self._session_checkpoints()[number] = bytes(data)

    async def get_checkpoint(self, number: int) -> bytes | None:
        """Trial ``number``'s checkpoint, or ``None``."""
        return self._session_checkpoints().get(number)

    async def drop_checkpoint(self, number: int) -> None:
        """Forget trial ``number``'s checkpoint (none is no error)."""
        self._session_checkpoints().pop(number, None)

    async def close(self) -> None:
        """End the session (the tuner calls it when a run ends)."""


class StudyReader:
    """Reads what changed in one study since its previous read.

    Made by :meth:`Storage.watch`.  Each :meth:`read` returns the
    :class:`TrialRecord` of every trial created or changed (ended, reported,
    resumed, marked LOST) by any session since the previous read, at its
    latest state and ordered by number; the first read returns every trial.
    A trial changed several times between two reads comes once.  A reader
    writes nothing and holds no lease; :meth:`close` releases what it holds
    (it is also an async context manager).

    This default polls :meth:`Storage.load` and compares: correct for any
    backend, but it reads the whole study each time.  Backends override
    :meth:`Storage.watch` with a reader that is cheap when nothing changed.
    """

    def __init__(self, storage: Storage, study: str, space: Space | None = None) -> None:
        self._storage = storage
        self._study = study
        self._space = space
        self._seen: dict[int, str] = {}

    async def read(self) -> list[TrialRecord]:
        """The records created or changed since the previous read (every record the first time)."""
        records = await self._storage.load(self._study, space=self._space)
        changed = []
        for record in records:
            key = repr(record)  # repr, not ==: a NaN value is equal to itself here
            if self._seen.get(record.number) != key:
                self._seen[record.number] = key
                changed.append(record)
        return changed

    #: True when :meth:`read_summaries` with ``brief=True`` reads less than the whole summary (and may be
    #: called again, without ``brief``, to complete it).
    brief_summaries: bool = False

    async def read_summaries(self, *, brief: bool = False) -> list[TrialSummary]:
        """A :class:`TrialSummary` of every trial as stored now, by number; :meth:`read` goes on from there.

        An optional capability for live views of large studies (the
        dashboard calls it instead of the first :meth:`read`): it returns
        every trial, and the reader then returns only the trials changed
        after this call.  A backend overrides it to read only the summary's
        columns (SQLite and PostgreSQL count the reports in SQL and decode
        in a worker thread), which is several times cheaper than decoding
        every record.  With ``brief=True`` a backend whose
        :attr:`brief_summaries` is True reads only the number, state,
        value(s), times and constraints of each trial (``params`` empty,
        ``reports`` 0, ``last_step``, ``error`` and ``retry_of`` ``None``):
        what a first chart needs, cheaper still; a second call without
        ``brief`` then gives the whole summaries (and moves the reader
        again, so nothing is missed in between).  Call it on a fresh reader,
        before any :meth:`read`.  This default summarises the records of
        :meth:`read`, whose first call returns every trial: correct for any
        reader, no faster, and whole whatever ``brief`` says.
        """
        return [TrialSummary.of(r) for r in await self.read()]

    async def read_trials(self, numbers: Iterable[int]) -> list[TrialRecord]:
        """The full records of the trials ``numbers`` (those the study holds) as stored now, ordered by number.

        An optional capability: a live view that keeps only summaries
        (:meth:`read_summaries`) fetches the few records it shows in full
        (a trial's page, the trials a chart draws) with it.  It does not
        move the reader: a trial returned here may come again from
        :meth:`read`.  A backend overrides it with a query by number; this
        default loads the whole study (:meth:`Storage.load`) and keeps
        those trials.
        """
        wanted = set(numbers)
        if not wanted:
            return []
        records = await self._storage.load(self._study, space=self._space)
        return [r for r in records if r.number in wanted]

    async def close(self) -> None:
        """Stop reading (later reads are errors for backends that hold a connection)."""

    async def __aenter__(self) -> StudyReader:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()


class Storage:
    """A backend that keeps studies.

    * :meth:`open` creates ``study`` or opens it to resume; opening an
      existing study with another direction, or with a space that differs
      from the one it was created with, raises ``ValueError`` saying how.
      A direction is a string (one objective) or a sequence of strings (one
      per objective, returned as a tuple); the two kinds never match.
    * Settings: ``open(..., settings=...)`` takes the run's settings, a
      JSON-serialisable mapping such as ``{"seed": 123, "strategy": {"name":
      "bayes", "n_initial": 8}, "pruner": {"name": "asha"}}``.  A study
      being created stores them; a study being reopened keeps its stored
      ``seed`` (fixed once set, unless it was ``None``) and takes every
      other key from the new settings (keys they lack are dropped);
      ``settings=None`` leaves the stored ones alone.  The session's
      :attr:`StudySession.settings` and :attr:`StudySummary.settings` show
      the result (see :func:`merge_settings`).
    * :meth:`watch` gives a :class:`StudyReader` of what changed in a study.
    * ``durable`` backends keep trials beyond the process; a Tuner on one
      needs an explicit ``study=`` name.
    * Every error a backend raises on purpose derives from
      :class:`~hpt_async.exceptions.HptError` (and from the builtin
      exception a caller expects).
    """

    name = "storage"

    #: True when trials outlive the process.
    durable: bool = False

    #: True for a storage made by :meth:`as_read_only`: it writes nothing.
    read_only: bool = False

    def as_read_only(self) -> Storage:
        """This storage for readers only: it writes nothing, creates nothing, and never migrates.

        Read-only commands (``hpt-async trials``, ``best``, ``export``,
        ``report``, ``studies``) and dashboards open storage this way,
        through :func:`hpt_async.open_storage(url, read_only=True)
        <hpt_async.open_storage>`.  :meth:`load`, :meth:`watch`,
        :meth:`checkpoint`, :meth:`studies` and :meth:`summary` work as
        usual; :meth:`open`, :meth:`delete` and :meth:`rename` are refused
        with an :class:`~hpt_async.exceptions.HptError` that is a
        ``PermissionError``.  The default returns the storage itself (a
        backend that cannot promise more); SQLite's opens its file with
        ``mode=ro``.
        """
        return self

    async def open(
        self,
        study: str,
        *,
        direction: Direction | Sequence[str],
        space: Space,
        settings: Mapping[str, Any] | None = None,
    ) -> StudySession:
        """A session on ``study``, created if it does not exist (see the class notes on settings)."""
        raise NotImplementedError

    async def watch(self, study: str, *, space: Space | None = None) -> StudyReader:
        """A :class:`StudyReader` of ``study``; :class:`StudyNotFound` when there is none.

        ``space`` decodes Choice values as :meth:`load` does.
        """
        await self.summary(study)
        return StudyReader(self, study, space)

    async def load(self, study: str, *, space: Space | None = None) -> list[TrialRecord]:
        """Every trial of ``study`` as stored now, ordered by number.

        A backend that stores a Choice by its index decodes it with
        ``space`` (the study's own space, else ``ValueError``) so that values
        come back as the very objects; without ``space`` it gives the JSON
        description of each value (see :meth:`Space.describe`).
        """
        raise NotImplementedError

    async def checkpoint(self, study: str, number: int) -> bytes | None:
        """The checkpoint the study still keeps for trial ``number``, or ``None``.

        Decode it with :func:`hpt_async.checkpoints.decode_state`.  Backends
        that keep no checkpoints beyond a session return ``None``.
        """
        return None

    # -- administration (load_study and the hpt-async command use these) ----

    async def studies(self) -> list[StudySummary]:
        """Every study held, ordered by name, with its trial counts."""
        raise NotImplementedError

    async def summary(self, study: str) -> StudySummary:
        """The summary of ``study``; :class:`StudyNotFound` when there is none."""
        for s in await self.studies():
            if s.name == study:
                return s
        raise StudyNotFound(f"no study named {study!r} in storage {self.name!r}")

    async def delete(self, study: str) -> None:
        """Remove ``study`` and all its trials; :class:`StudyNotFound` when there is none."""
        raise NotImplementedError

    async def rename(self, old: str, new: str) -> None:
        """Give study ``old`` the name ``new``.

        :class:`StudyNotFound` when ``old`` does not exist, ``ValueError``
        when ``new`` is taken or not a non-empty string.  A tuner resumes a
        renamed study under its new name.
        """
        raise NotImplementedError
