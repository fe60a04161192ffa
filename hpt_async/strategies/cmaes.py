"""``strategy="cmaes"``: CMA-ES over the numeric parameters, with IPOP restarts.

Built on the ``cmaes`` package (``pip install 'hpt-async[cmaes]'``), imported
when a study starts, not when hpt-async is.

The search runs in the unit cube of the numeric parameters (``Float`` and
``Int``, log domains on their log scale; an ``Int`` is rounded by its
domain, and the rounded value is what the evolution strategy learns).  One
generation is ``popsize`` points.  Every free worker gets a fresh point of
the current generation's distribution, so no worker waits for a generation
to finish; the first ``popsize`` COMPLETE results of points drawn in the
current generation update it, in the order they arrive, and results of
points drawn in an earlier generation are not learnt (they still count in
the study).  When the distribution has converged (``should_stop`` of the
``cmaes`` package) the search restarts from a random mean with
``inc_popsize`` times the population (IPOP-CMA-ES).

Spaces it cannot search: CMA-ES needs at least two numeric parameters that
are always active.  ``Choice`` parameters with more than one value, and
conditional parameters, are refused (``others="error"``, the default, with
a message naming them) or drawn uniformly at random for each trial from
``(seed, number)`` (``others="random"``), as Optuna's CmaEsSampler does.
A numeric parameter that a condition refers to is one of these "others".

A resumed study rebuilds the state from its history: trials are replayed in
number order, each drawing its point from the distribution as it was asked
and each finished one learnt as it would have been.  At concurrency 1 that
is exactly the run that was interrupted, so a resumed seeded run repeats an
uninterrupted one; at higher concurrency the order of results decides which
points form a generation, and the replay rebuilds a state from the same
points in number order.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import numpy as np

from ..contracts import Strategy
from ..exceptions import MissingDependency
from ..hookspecs import hookimpl
from ..space import Choice, Float, Int, Space, SpaceError
from ..trial import TrialState

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["CmaEsStrategy", "cmaes_dimensions"]


def _load_cma() -> Any:
    try:
        from cmaes import CMA
    except ImportError as exc:
        raise MissingDependency("strategy 'cmaes' needs the 'cmaes' package: pip install 'hpt-async[cmaes]'") from exc
    return CMA


def cmaes_dimensions(space: Space) -> tuple[list[str], list[str]]:
    """``(searched, others)``: the parameters CMA-ES searches, and those it cannot.

    Searched: ``Float`` and ``Int`` parameters with more than one value that
    are always active and that no condition refers to.  Others: ``Choice``
    parameters with more than one value, conditional parameters, and
    numeric parents of a condition.  Parameters with a single value are in
    neither list (they never vary).
    """
    parents = {parent for name in space.names for parent in space[name].when}
    searched, others = [], []
    for name in space.names:
        domain = space[name]
        if isinstance(domain, Choice):
            if len(domain.values) > 1:
                others.append(name)
        elif isinstance(domain, (Float, Int)) and domain.low < domain.high:
            (others if domain.when or name in parents else searched).append(name)
    return searched, others


def _positive_int(name: str, value: Any, low: int) -> None:
    if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
        raise ValueError(f"{name} must be an int >= {low} or None, got {value!r}")


class CmaEsStrategy(Strategy):
    """CMA-ES with IPOP restarts, pending-aware and resumable (see the module docstring).

    Options: ``sigma0``, the initial step size in the unit cube (default
    1/6: a sixth of each range, as Optuna's CmaEsSampler); ``popsize``,
    the first population (default ``4 + 3 ln d`` for ``d`` searched
    parameters); ``restarts`` (``"ipop"``, the default, or ``None`` for
    none); ``inc_popsize``, the population's growth at each restart
    (default 2); ``others``, what to do with parameters CMA-ES cannot search
    (``"error"`` or ``"random"``).  The first mean is the centre of the
    cube; each restart draws its mean uniformly.  A seeded run repeats
    itself at concurrency 1.
    """

    name = "cmaes"

    def __init__(
        self,
        *,
        sigma0: float | None = None,
        popsize: int | None = None,
        restarts: str | None = "ipop",
        inc_popsize: int = 2,
        others: str = "error",
    ) -> None:
        if sigma0 is not None and (isinstance(sigma0, bool) or not isinstance(sigma0, (int, float)) or not 0 < sigma0):
            raise ValueError(f"sigma0 must be a positive number or None, got {sigma0!r}")
        _positive_int("popsize", popsize, 2)
        _positive_int("inc_popsize", inc_popsize, 1)
        if restarts not in ("ipop", None):
            raise ValueError(f"restarts must be 'ipop' or None, got {restarts!r}")
        if others not in ("error", "random"):
            raise ValueError(f"others must be 'error' or 'random', got {others!r}")
        self.sigma0 = 1.0 / 6.0 if sigma0 is None else float(sigma0)
        self.popsize = popsize
        self.restarts = restarts
        self.inc_popsize = inc_popsize
        self.others = others
        #: Parameters searched by CMA-ES, in the space's order (set when the study starts).
        self.searched: list[str] = []
        #: How many restarts happened so far.
        self.restart_count = 0
        #: Generations completed (all restarts together).
        self.generation = 0
        self._optimizer: Any = None
        self._seed = 0
        self._tags: dict[int, int] = {}
        self._batch: list[tuple[np.ndarray, float]] = []

    # -- state ----------------------------------------------------------------

    def _new_optimizer(self, popsize: int | None) -> None:
        cma = _load_cma()
        d = len(self.searched)
        if self.restart_count == 0:
            mean = np.full(d, 0.5)
        else:
            rng = random.Random(f"cmaes:{self._seed}:restart:{self.restart_count}")
            mean = np.array([rng.random() for _ in range(d)])
        bounds = np.tile([0.0, 1.0], (d, 1))
        seed = (self._seed * 1_000_003 + self.restart_count) % (2**31 - 1)
        self._optimizer = cma(mean=mean, sigma=self.sigma0, bounds=bounds, seed=seed, population_size=popsize)

    def _encode(self, space: Space, params: dict[str, Any]) -> np.ndarray | None:
        try:
            x = np.array([space[name].to_unit(params[name]) for name in self.searched], dtype=float)
        except (KeyError, TypeError, ValueError):
            return None
        return np.clip(x, 0.0, 1.0) if np.all(np.isfinite(x)) else None

    def _learn(self, study: StudyView, record: TrialRecord, tag: int | None) -> None:
        """Add a finished trial to the current generation when it was drawn from it; update when full."""
        if tag != self.generation or record.state is not TrialState.COMPLETE or record.value is None:
            return
        value = study.sign() * float(record.value)
        if not math.isfinite(value):
            return
        x = self._encode(study.space, record.params)
        if x is None:
            return
        self._batch.append((x, value))
        optimizer = self._optimizer
        if len(self._batch) < optimizer.population_size:
            return
        optimizer.tell(self._batch)
        self._batch = []
        self.generation += 1
        if self.restarts == "ipop" and optimizer.should_stop():
            self.restart_count += 1
            self._new_optimizer(optimizer.population_size * self.inc_popsize)

    async def start(self, study: StudyView) -> None:
        space = study.space
        searched, others = cmaes_dimensions(space)
        if others and self.others == "error":
            raise SpaceError(
                f"strategy 'cmaes' searches numeric parameters that are always active; it cannot search {others} "
                "(Choice or conditional parameters): use strategy 'tpe' or 'auto', or "
                "{'name': 'cmaes', 'others': 'random'} to draw those at random"
            )
        if len(searched) < 2:
            raise SpaceError(
                f"strategy 'cmaes' needs at least two numeric parameters that are always active, got {searched}: "
                "use strategy 'bayes' or 'tpe'"
            )
        self.searched = searched
        self._seed = int(study.seed)
        self.restart_count = self.generation = 0
        self._tags, self._batch = {}, []
        self._new_optimizer(self.popsize)
        # Replay the history in number order: each trial drew a point when asked, and was learnt when it ended.
        for number in sorted(study.trials):
            record = study.trials[number]
            tag = self.generation
            self._optimizer.ask()
            if record.state is TrialState.RUNNING:
                self._tags[number] = tag
            else:
                self._learn(study, record, tag)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        x = self._optimizer.ask()
        self._tags[number] = self.generation
        space = study.space
        values = {name: space[name].from_unit(float(u)) for name, u in zip(self.searched, x, strict=True)}
        if len(values) == len(space):
            return values
        return space.complete(values, study.seed, number)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        if record.state is TrialState.RUNNING:
            return
        self._learn(study, record, self._tags.pop(record.number, None))


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``cmaes``."""
    register("strategy", "cmaes", CmaEsStrategy)
