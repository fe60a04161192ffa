"""``strategy="grid"``: every combination of a grid, each exactly once."""

from __future__ import annotations

import random
from collections.abc import Callable, Hashable, Mapping
from typing import TYPE_CHECKING, Any

from ..contracts import Strategy
from ..hookspecs import hookimpl
from ..trial import TrialState

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["GridStrategy"]

_RETRYABLE = (TrialState.CANCELLED,)


def _key(params: Mapping[str, Any]) -> Hashable:
    return tuple(sorted((k, type(v).__name__, repr(v)) for k, v in params.items()))


class GridStrategy(Strategy):
    """Grid search.

    ``points`` is the number of values per numeric parameter (an Int or a
    stepped Float with fewer values contributes all of them; log domains are
    spaced geometrically); a Choice contributes all its values, and an
    inactive conditional parameter multiplies nothing.  ``shuffle=True``
    visits the grid in an order drawn from the seed.

    A point is visited once: points held by running or finished trials are
    skipped (CANCELLED ones are tried again; a LOST one is retried as such,
    with ``retry_lost``), so concurrent trials never share a point and a
    resumed study goes on where it stopped.  Several tuners sharing a study
    visit each point once too: the strategy is ``exclusive``, so storage
    creates a trial only for a point no other trial holds.  When
    every point is taken, :meth:`ask` returns ``None`` and the study ends.
    """

    name = "grid"
    multi_objective = True  # it never reads values
    exclusive = True  # storage refuses a point another tuner sharing the study holds: ask moves on
    check_output = False

    def __init__(self, points: int = 5, *, shuffle: bool = False) -> None:
        if isinstance(points, bool) or not isinstance(points, int) or points < 1:
            raise ValueError(f"grid points must be an int >= 1, got {points!r}")
        self.points = points
        self.shuffle = shuffle
        self._grid: list[dict[str, Any]] = []
        self._taken: set[Hashable] = set()
        self._cursor = 0

    @property
    def size(self) -> int:
        """Number of points in the grid (after :meth:`start`)."""
        return len(self._grid)

    async def start(self, study: StudyView) -> None:
        self._grid = list(study.space.grid(self.points))
        if self.shuffle:
            random.Random(study.seed).shuffle(self._grid)
        self._taken = {_key(r.params) for r in study.trials.values() if r.state not in _RETRYABLE}
        self._cursor = 0

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        # Trials created outside the strategy (enqueued, other processes) also take points.
        for record in study.running.values():
            self._taken.add(_key(record.params))
        grid = self._grid
        while self._cursor < len(grid):
            point = grid[self._cursor]
            self._cursor += 1
            key = _key(point)
            if key not in self._taken:
                self._taken.add(key)
                return dict(point)
        return None

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        key = _key(record.params)
        if record.state in _RETRYABLE:
            self._taken.discard(key)
            # Rewind so the freed point is offered again.
            for i, point in enumerate(self._grid):
                if _key(point) == key:
                    self._cursor = min(self._cursor, i)
                    break
        else:
            self._taken.add(key)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``grid``."""
    register("strategy", "grid", GridStrategy)
