"""Asynchronous successive halving: the rungs of one bracket, and the pruner base ``asha`` and ``hyperband`` share.

A bracket is a ladder of rungs at resources ``min_resource * eta**k``.  A
trial *reaches* rung ``k`` with its first report whose step is at least that
level; the value of that report is entered into the rung, and the trial goes
on only if it ranks in the top ``1/eta`` of every value the rung has
received so far, its own included.  Nothing ever waits for a rung to fill.

Decisions are made at arrival, atomically on the event loop, from the
values that arrived before: they are a function of the sequence of reports
(and of completions, when ``max_resource`` is inferred), so replaying that
sequence gives the same decisions, and rungs rebuilt from stored reports
hold exactly the values the live rungs held.

Promotion mode (``mode="promotion"``) replaces the final stop by a pause: a
trial reaching a rung goes straight on when it ranks in the rung's top
``floor(n / eta)`` (no minimum of one: the first ``eta - 1`` arrivals of a
rung wait), and is paused otherwise; :meth:`RungPruner.promote` later names
a paused trial that the rung, grown since, now ranks in its top, the one at
the highest rung first.

Several objectives (MO-ASHA, Schmucker et al. 2021): in a study with
several directions a rung ranks its trials by non-dominated sorting of the
values they reported on reaching it (every objective, from
``record.report_values``), then by crowding distance within a front; a
trial's rank is the number of the rung's trials strictly ahead of it, and
the same top ``1/eta`` rule decides.  A report of a single number in such a
study counts for the first objective, the others taken as worst.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from dataclasses import dataclass
from types import MappingProxyType
from typing import TYPE_CHECKING

from .._pareto import crowding_distance, front_ranks
from ..contracts import Decision, Pruner
from ..trial import TrialState
from . import _options as opt

if TYPE_CHECKING:
    from collections.abc import Mapping

    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["MODES", "Ladder", "Rung", "RungPruner", "ahead_counts", "promoted_count", "top_count"]

_CONTINUE = Decision.CONTINUE
_STOP = Decision.STOP
_PAUSE = Decision.PAUSE
#: The modes of a rung pruner: ``stop`` (a trial out of the top ends PRUNED) and ``promotion`` (it is PAUSED).
MODES = ("stop", "promotion")


@dataclass(frozen=True, slots=True)
class Rung:
    """One rung as it stands: its resource ``level`` and ``values`` (trial number -> value on reaching it)."""

    level: float
    values: Mapping[int, float]


def top_count(n: int, eta: float) -> int:
    """How many of ``n`` values in a rung are in its top ``1/eta``: ``max(1, floor(n / eta))``."""
    return max(1, math.floor(n / eta + 1e-9))


def promoted_count(n: int, eta: float) -> int:
    """How many of ``n`` values in a rung promotion mode lets go on: ``floor(n / eta)``."""
    return math.floor(n / eta + 1e-9)


def ahead_of(vectors: Mapping[int, tuple[float, ...]], number: int) -> int:
    """How many loss vectors of ``vectors`` rank strictly ahead of trial ``number``'s.

    The order is MO-ASHA's: the non-dominated front first, then the larger
    crowding distance within the front.
    """
    numbers = list(vectors)
    points = [vectors[n] for n in numbers]
    ranks = front_ranks(points)
    me = numbers.index(number)
    mine = ranks[me]
    ahead = sum(1 for r in ranks if r < mine)
    same = [i for i, r in enumerate(ranks) if r == mine]
    if len(same) > 1:
        crowd = crowding_distance([points[i] for i in same])
        own = crowd[same.index(me)]
        ahead += sum(1 for c in crowd if c > own)
    return ahead


def ahead_counts(vectors: Mapping[int, tuple[float, ...]]) -> dict[int, int]:
    """:func:`ahead_of` for every trial of ``vectors`` at once (one non-dominated sort instead of one per trial)."""
    numbers = list(vectors)
    points = [vectors[n] for n in numbers]
    ranks = front_ranks(points)
    fronts: dict[int, list[int]] = {}
    for i, r in enumerate(ranks):
        fronts.setdefault(r, []).append(i)
    out: dict[int, int] = {}
    before = 0  # trials in better fronts
    for r in sorted(fronts):
        same = fronts[r]
        if len(same) == 1:
            out[numbers[same[0]]] = before
        else:
            crowd = crowding_distance([points[i] for i in same])
            for i, own in zip(same, crowd, strict=True):
                # the trials of this front with a strictly larger crowding distance (compared as ahead_of does)
                out[numbers[i]] = before + sum(1 for c in crowd if c > own)
        before += len(same)
    return out


class Ladder:
    """The rungs of one bracket; levels are made as trials climb to them."""

    __slots__ = ("_ahead", "eta", "levels", "losses", "members", "min_resource", "vectors")

    def __init__(self, min_resource: float, eta: float) -> None:
        self.min_resource = min_resource
        self.eta = eta
        self.levels: list[float] = []
        # Per rung: every loss received, sorted (ranks by bisection), and number -> reported value.
        self.losses: list[list[float]] = []
        self.members: list[dict[int, float]] = []
        # Per rung, with several objectives: number -> loss vector on reaching it.
        self.vectors: list[dict[int, tuple[float, ...]]] = []
        # Per rung, with several objectives: number -> how many rank ahead of it, until the rung changes.
        self._ahead: list[dict[int, int] | None] = []

    def level(self, k: int) -> float:
        """The resource of rung ``k``."""
        levels = self.levels
        while len(levels) <= k:
            levels.append(self.min_resource * self.eta ** len(levels))
            self.losses.append([])
            self.members.append({})
            self.vectors.append({})
            self._ahead.append(None)
        return levels[k]

    def enter(self, k: int, number: int, loss: float, value: float, vector: tuple[float, ...] | None = None) -> bool:
        """Enter trial ``number`` into rung ``k``; True when it ranks in the rung's top ``1/eta``.

        With ``n`` losses in the rung (this one included), the trial ranks in
        the top when fewer than ``max(1, floor(n / eta))`` of them are
        strictly lower than its own: the best so far always does, ties go on.
        A non-finite loss never does.  With a loss ``vector`` (several
        objectives) "lower" is MO-ASHA's order (see :func:`ahead_of`), and a
        vector with a non-finite loss never goes on.
        """
        rung = self.losses[k]
        pos = bisect_left(rung, loss)
        rung.insert(pos, loss)
        self.members[k][number] = value
        if vector is not None:
            vectors = self.vectors[k]
            vectors[number] = vector
            self._ahead[k] = None
            if math.inf in vector:
                return False
            # Ranked through the cache: promotion mode's later questions about this rung reuse the same sort.
            return self.ahead(k, number) < top_count(len(vectors), self.eta)
        return loss != math.inf and pos < top_count(len(rung), self.eta)

    def promotable(self, k: int, loss: float, number: int | None = None) -> bool:
        """True when ``loss``, already in rung ``k``, ranks in its top ``floor(n / eta)`` (promotion mode).

        A trial entered with a loss vector is ranked by it (pass its ``number``).
        """
        vectors = self.vectors[k]
        if number is not None and number in vectors:
            if math.inf in vectors[number]:
                return False
            return self.ahead(k, number) < promoted_count(len(vectors), self.eta)
        rung = self.losses[k]
        return loss != math.inf and bisect_left(rung, loss) < promoted_count(len(rung), self.eta)

    def position(self, k: int, number: int, loss: float) -> float:
        """How many entries of rung ``k`` rank ahead of trial ``number`` (its loss alone for one objective)."""
        vectors = self.vectors[k]
        if number in vectors:
            return float(self.ahead(k, number))
        return loss

    def ahead(self, k: int, number: int) -> int:
        """:func:`ahead_of` trial ``number`` in rung ``k`` (several objectives), from a per-rung cache that
        an entry into the rung clears: promotion mode asks it for every waiting trial before each new one."""
        counts = self._ahead[k]
        if counts is None:
            counts = self._ahead[k] = ahead_counts(self.vectors[k])
        return counts[number]


class RungPruner(Pruner):
    """Asynchronous successive halving over one or more brackets (subclasses say which trial goes where).

    ``max_resource`` bounds the rungs: no decision is taken at a level at or
    above it (a trial reaching it has had its full budget).  When it is not
    given, it is inferred as the largest final step of the COMPLETE trials
    seen so far; until one completes, every rung decides.

    ``mode`` is ``"stop"`` (a trial out of the top ends PRUNED) or
    ``"promotion"`` (it is PAUSED, and :meth:`promote` resumes it once its
    rung ranks it in the top; see the module docstring).
    """

    name = "rungs"
    multi_objective = True

    def __init__(self, min_resource: float, eta: float, max_resource: float | None, mode: str = "stop") -> None:
        if mode not in MODES:
            raise ValueError(f"pruner {self.name!r}: mode must be 'stop' or 'promotion', got {mode!r}")
        self.mode = mode
        #: True in promotion mode: the tuner then asks :meth:`promote` before each new trial.
        self.promotes = mode == "promotion"
        self.min_resource: float = opt.number(self.name, "min_resource", min_resource, above=0)  # type: ignore[assignment]
        self.eta: float = opt.number(self.name, "eta", eta, above=1)  # type: ignore[assignment]
        self.max_resource = opt.number(self.name, "max_resource", max_resource, above=0, allow_none=True)
        if self.max_resource is not None and self.max_resource < self.min_resource:
            raise ValueError(
                f"pruner {self.name!r}: max_resource ({max_resource!r}) is below min_resource ({min_resource!r})"
            )
        if self.promotes and self.max_resource is None:
            raise ValueError(
                f"pruner {self.name!r}: promotion mode needs max_resource (the step at which a trial has had its "
                "full budget); without it the first trials to reach their last step would wait there, paused"
            )
        self._inferred: float | None = None
        self._started = False

    # -- what subclasses define ---------------------------------------------------

    def _make_ladders(self) -> list[Ladder]:
        """One ladder per bracket."""
        raise NotImplementedError

    def bracket_of(self, number: int) -> int:
        """The bracket trial ``number`` belongs to."""
        raise NotImplementedError

    # -- the Pruner contract ---------------------------------------------------------

    async def start(self, study: StudyView) -> None:
        """Rebuild the rungs from every stored report of ``study``."""
        self._reset(study.directions)
        trials = study.trials
        for number in sorted(trials):
            self._absorb(trials[number])

    async def decide(self, study: StudyView, trial: TrialRecord, step: int, value: float) -> Decision:
        """STOP when this report brings the trial to a rung where it is not in the top ``1/eta``."""
        if not self._started:
            self._reset(study.directions)
        return self.observe(trial.number, step, value, trial.report_values.get(step) if self._several else None)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        """Take in the reports not seen yet (another tuner's trial), forget the trial's progress,
        and learn the resource of a COMPLETE one.  A PAUSED trial keeps its progress and waits
        for :meth:`promote`."""
        if not self._started:
            self._reset(study.directions)
        self._absorb(record)

    async def promote(self, study: StudyView) -> int | None:
        """A PAUSED trial to resume now, or ``None`` (always ``None`` in stopping mode).

        Candidates are the PAUSED trials that rank in the top ``floor(n /
        eta)`` of the rung where they wait (with ``n`` its values now), and
        those waiting at a rung at or above the resource limit (they have
        had their full budget).  The one at the highest resource level goes
        first, then the better value, then the lower number.  The trial
        named is taken off the waiting list.
        """
        if not self._started:
            self._reset(study.directions)
        if not self.promotes or not self._waiting:
            return None
        limit = self.resource_limit()
        choice: tuple[float, float, int] | None = None
        trials = study.trials
        for number, (bracket, k) in list(self._waiting.items()):
            record = trials.get(number)
            if record is None or record.state is not TrialState.PAUSED:
                if record is not None and record.state is not TrialState.RUNNING:
                    del self._waiting[number]  # ended otherwise (e.g. another tuner finished it)
                continue
            ladder = self._ladders[bracket]
            if k < 0:
                key = (math.inf, math.inf, number)  # paused before its first rung: never judged
            else:
                value = ladder.members[k][number]
                loss = self._sign * value if math.isfinite(value) else math.inf
                level = ladder.levels[k]
                if not (limit is not None and level >= limit) and not ladder.promotable(k, loss, number):
                    continue
                key = (-level, ladder.position(k, number, loss), number)
            if choice is None or key < choice:
                choice = key
        if choice is None:
            return None
        number = choice[2]
        del self._waiting[number]
        return number

    # -- the rungs ---------------------------------------------------------------------

    def observe(self, number: int, step: int, value: float, values: tuple[float, ...] | None = None) -> Decision:
        """Take one report of trial ``number`` and decide (what :meth:`decide` does, synchronously).

        A report whose step is not above the trial's previous one changes
        nothing and goes on: steps are expected to increase.  Before
        :meth:`start`, the study is taken to minimise.  In a study with
        several objectives ``values`` holds the report's value of each
        (``None``: ``value`` for the first, the others worst).
        """
        if not self._started:
            self._reset("minimize")
        last = self._last.get(number)
        if last is not None and step <= last:
            return _CONTINUE
        self._last[number] = step
        k = self._next.get(number, 0)
        ladder = self._ladders[self.bracket_of(number)]
        if step < ladder.level(k):
            return _CONTINUE
        loss = self._sign * value if math.isfinite(value) else math.inf
        vector = self._vector(value, values) if self._several else None
        limit = self.max_resource if self.max_resource is not None else self._inferred
        if self.promotes:
            return self._climb(ladder, k, number, step, loss, value, limit, vector)
        stop = False
        while step >= ladder.level(k):
            if not ladder.enter(k, number, loss, value, vector) and (limit is None or ladder.levels[k] < limit):
                stop = True
            k += 1
        self._next[number] = k
        return _STOP if stop else _CONTINUE

    def _vector(self, value: float, values: tuple[float, ...] | None) -> tuple[float, ...]:
        """A report's loss vector: each value signed by its direction, non-finite ones worst."""
        signs = self._signs
        if values is None or len(values) != len(signs):
            values = (value, *([math.inf] * (len(signs) - 1)))
        return tuple(s * v if math.isfinite(v) else math.inf for s, v in zip(signs, values, strict=True))

    def _climb(
        self,
        ladder: Ladder,
        k: int,
        number: int,
        step: int,
        loss: float,
        value: float,
        limit: float | None,
        vector: tuple[float, ...] | None = None,
    ) -> Decision:
        """Promotion mode: enter every rung ``step`` reaches; judge the trial at the highest of them."""
        full = False
        while step >= ladder.level(k):
            ladder.enter(k, number, loss, value, vector)
            if limit is not None and ladder.levels[k] >= limit:
                full = True
            k += 1
        self._next[number] = k
        if full:
            return _CONTINUE  # it has had its full budget
        if loss == math.inf or (vector is not None and math.inf in vector):
            return _STOP  # a non-finite value would never be promoted
        return _CONTINUE if ladder.promotable(k - 1, loss, number) else _PAUSE

    def waiting(self) -> dict[int, tuple[int, int]]:
        """Promotion mode: PAUSED trials this pruner may resume -> ``(bracket, rung index)`` they wait at."""
        return dict(self._waiting)

    def rungs(self, bracket: int = 0) -> list[Rung]:
        """The rungs of ``bracket`` that some trial has reached, lowest first."""
        if not self._started:
            self._reset("minimize")
        if not 0 <= bracket < len(self._ladders):
            raise ValueError(f"pruner {self.name!r} has brackets 0 to {len(self._ladders) - 1}, not {bracket!r}")
        ladder = self._ladders[bracket]
        return [
            Rung(level, MappingProxyType(dict(members)))
            for level, members in zip(ladder.levels, ladder.members, strict=True)
            if members
        ]

    def resource_limit(self) -> float | None:
        """``max_resource`` when given, else the one inferred so far (``None`` before any completion)."""
        return self.max_resource if self.max_resource is not None else self._inferred

    # -- internals ---------------------------------------------------------------------

    def _reset(self, direction: str | tuple[str, ...]) -> None:
        directions = (direction,) if isinstance(direction, str) else tuple(direction)
        self._signs = tuple(1.0 if d == "minimize" else -1.0 for d in directions)
        self._sign = self._signs[0]
        self._several = len(directions) > 1
        self._ladders = self._make_ladders()
        self._next: dict[int, int] = {}  # trial -> index of the lowest rung it has not reached
        self._last: dict[int, int] = {}  # trial -> highest step taken
        self._waiting: dict[int, tuple[int, int]] = {}  # PAUSED trial -> (bracket, rung index it waits at)
        self._inferred = None
        self._started = True

    def _absorb(self, record: TrialRecord) -> None:
        reports = record.reports
        number = record.number
        several = record.report_values if self._several else None
        for step in sorted(reports):
            self.observe(number, step, reports[step], several.get(step) if several else None)
        if record.state is TrialState.PAUSED:
            # It keeps its progress: resumed, it goes on from its last step.
            self._waiting[number] = (self.bracket_of(number), self._next.get(number, 0) - 1)
        elif record.state.finished:
            self._next.pop(number, None)
            self._last.pop(number, None)
            self._waiting.pop(number, None)
        self._completed(record)

    def _completed(self, record: TrialRecord) -> None:
        if record.state is TrialState.COMPLETE and record.reports:
            top = float(max(record.reports))
            if self._inferred is None or top > self._inferred:
                self._inferred = top
