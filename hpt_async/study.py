"""The study as strategies, pruners and plugins see it: a read-only view kept current by the tuner."""

from __future__ import annotations

from collections.abc import Mapping
from types import MappingProxyType

from ._pareto import pareto_front
from .space import Space
from .trial import TrialRecord, TrialState

__all__ = ["StudyView", "better", "pareto_front"]

# States as module globals: on Python 3.11 each ``TrialState.X`` lookup goes through the enum metaclass's
# ``__getattr__`` hook (about 0.4 µs), and the hot path reads a dozen of them per trial.
_COMPLETE = TrialState.COMPLETE
_FAILED = TrialState.FAILED
_LOST = TrialState.LOST
_PAUSED = TrialState.PAUSED
_PRUNED = TrialState.PRUNED
_RUNNING = TrialState.RUNNING


def better(direction: str, a: float, b: float) -> bool:
    """True when value ``a`` is strictly better than ``b`` for ``direction``."""
    return a < b if direction == "minimize" else a > b


class StudyView:
    """Read-only view of one study.

    ``trials`` maps number to the latest :class:`TrialRecord` of every trial
    (RUNNING ones included, replaced at each report); ``running`` only the
    running ones, which a model-based strategy treats as pending points.
    PAUSED trials (promotion mode of a rung pruner) are in ``trials`` and
    in :meth:`finished`, not in ``running``; they count in
    :attr:`n_counted` and never as :attr:`best` (only COMPLETE trials do).
    Trials of other processes appear once storage has shared them.
    ``name``, ``direction``, ``space``, ``seed``, ``max_trials`` and
    ``concurrency`` (how many trials this tuner runs at once; ``None`` when
    unknown, as in ask-and-tell, where the user's loop decides) are the
    study's settings for this run.  A study with several objectives has one
    direction per objective in :attr:`directions` (``direction`` is then the
    first); its :attr:`best` is ``None`` and :meth:`best_trials` gives the
    Pareto front.  Only feasible trials (every constraint ``<= 0``, see
    :meth:`Trial.set_constraints <hpt_async.Trial.set_constraints>`) are
    ever :attr:`best` or in :meth:`best_trials`.  :attr:`metric_names`
    names the objectives (``None`` when the study gave no names).
    """

    def __init__(
        self,
        name: str,
        direction: str | tuple[str, ...],
        space: Space,
        seed: int,
        max_trials: int | None = None,
        metric_names: tuple[str, ...] | None = None,
        concurrency: int | None = None,
    ) -> None:
        self.name = name
        #: The objectives' names for display, or ``None``.
        self.metric_names = metric_names
        self.max_trials = max_trials
        self.concurrency = concurrency
        #: One direction per objective.
        self.directions: tuple[str, ...] = (direction,) if isinstance(direction, str) else tuple(direction)
        self.direction = self.directions[0]
        self._single = len(self.directions) == 1
        self.space = space
        self.seed = seed
        self._records: dict[int, TrialRecord] = {}
        self._running: dict[int, TrialRecord] = {}
        self._trials_view = MappingProxyType(self._records)
        self._running_view = MappingProxyType(self._running)
        self._counts: dict[TrialState, int] = dict.fromkeys(TrialState, 0)
        self._best: TrialRecord | None = None
        #: Short notes a plugin leaves for the user, by plugin name (the console prints them with the
        #: progress), e.g. a strategy saying that its model fell behind the free workers.
        self.notes: dict[str, str] = {}
        # Retries: trials that ended LOST or FAILED (candidates), and the trials some retry retries.
        self._ended_badly: set[int] = set()
        self._retried: set[int] = set()

    # -- reading ---------------------------------------------------------

    @property
    def trials(self) -> Mapping[int, TrialRecord]:
        """Every trial by number."""
        return self._trials_view

    @property
    def running(self) -> Mapping[int, TrialRecord]:
        """The trials still running, by number."""
        return self._running_view

    @property
    def best(self) -> TrialRecord | None:
        """The best feasible COMPLETE trial, or ``None`` (always, for several objectives: see :meth:`best_trials`)."""
        return self._best

    def best_trials(self) -> list[TrialRecord]:
        """The feasible COMPLETE trials no other feasible one beats in every objective (the Pareto front), by number."""
        if self._single:
            return [] if self._best is None else [self._best]
        return pareto_front(self._records.values(), self.directions)

    def count(self, state: TrialState | str) -> int:
        """How many trials are in ``state``."""
        return self._counts[TrialState(state)]

    @property
    def n_counted(self) -> int:
        """Trials that use up ``max_trials`` (COMPLETE, PRUNED, FAILED, PAUSED)."""
        c = self._counts
        return c[_COMPLETE] + c[_PRUNED] + c[_FAILED] + c[_PAUSED]

    def finished(self, *states: TrialState) -> list[TrialRecord]:
        """Finished trials in number order, restricted to ``states`` when given."""
        wanted = set(states) if states else None
        return [
            r
            for _, r in sorted(self._records.items())
            if r.state is not _RUNNING and (wanted is None or r.state in wanted)
        ]

    def objective_index(self, objective: int | str) -> int:
        """The index of ``objective``: an index into :attr:`directions`, or one of :attr:`metric_names`.

        ``ValueError`` for an index out of range or an unknown name.
        """
        n = len(self.directions)
        if isinstance(objective, str):
            names = self.metric_names or ()
            if objective not in names:
                known = f"its metric names are {list(names)}" if names else "it has no metric names"
                raise ValueError(f"study {self.name!r} has no objective named {objective!r}; {known}")
            return names.index(objective)
        if isinstance(objective, bool) or not isinstance(objective, int) or not -n <= objective < n:
            raise ValueError(f"study {self.name!r} has {n} objectives; objective={objective!r} names none of them")
        return objective % n

    def sign(self) -> float:
        """+1 for minimise, -1 for maximise: ``sign * value`` is a loss."""
        return 1.0 if self.direction == "minimize" else -1.0

    def __repr__(self) -> str:
        return f"StudyView(name={self.name!r}, trials={len(self._records)}, running={len(self._running)})"

    # -- updating (the tuner and storage only) ----------------------------

    def _put(self, record: TrialRecord) -> None:
        old = self._records.get(record.number)
        if old is not None:
            self._counts[old.state] -= 1
            if old.state is _RUNNING:
                del self._running[record.number]
        self._records[record.number] = record
        self._counts[record.state] += 1
        state = record.state
        if record.retry_of is not None:
            self._retried.add(record.retry_of)
        if state is _LOST or state is _FAILED:
            self._ended_badly.add(record.number)
        if state is _RUNNING:
            self._running[record.number] = record
        elif state is _COMPLETE and record.value is not None and self._single and record.feasible:
            best = self._best
            if best is None or better(self.direction, record.value, best.value):  # type: ignore[arg-type]
                self._best = record
        elif old is not None and self._best is old:
            self._best = None
            self._recompute_best()

    def _recompute_best(self) -> None:
        if not self._single:
            return
        for r in self._records.values():
            if r.state is _COMPLETE and r.value is not None and r.feasible:
                if self._best is None or better(self.direction, r.value, self._best.value):  # type: ignore[arg-type]
                    self._best = r
