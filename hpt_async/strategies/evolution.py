"""``strategy="evolution"``: regularised (aging) evolution.

The population is the ``population`` youngest COMPLETE trials, age being
the trial number (a lower number was born earlier).  Until the population
is full, trials are drawn uniformly at random, exactly as ``random`` draws
them.  After that, each new trial is a child: ``sample_size`` members are
picked at random, the best of them is the parent, and the child is the
parent with one parameter changed.  When a child completes it joins the
population and the oldest member leaves it, whatever its value: that aging
is what regularises the search (a lucky configuration cannot stay forever).

A child is never a configuration the study has already tried or is trying:
a mutation that repeats one is drawn again (from a new tournament), since
re-evaluating it would spend a trial to learn nothing.  When the study has
a ``max_trials`` budget and the sizes are not given, the population is a
quarter of the budget (between 8 and 50), so that most of the budget goes
to children rather than to the random first population, and a tournament
is half the population.

A child is bred the moment a slot frees, from whatever has completed by
then, so the strategy is asynchronous by construction.  FAILED, PRUNED,
CANCELLED and LOST trials never join the population.

Constraints (:meth:`Trial.set_constraints <hpt_async.Trial.set_constraints>`)
follow Deb's rule: a tournament prefers the member with the smaller total
violation, then the better value.

With several objectives the population is kept by NSGA-II's rule (Deb et
al. 2002), steady state: each COMPLETE trial joins it, and while it is over
size the member with the lowest crowding distance on its worst
non-dominated front leaves (constrained domination: feasible members
first, infeasible ones by violation).  Parents are picked by binary
tournament on (front, crowding distance), and a child is the uniform
crossover of two parents (probability 0.9) with one parameter mutated.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any

from .._pareto import crowding_distance, losses, nondominated_ranks, violation
from ..contracts import Strategy
from ..hookspecs import hookimpl
from ..space import Choice, Domain, Float, Int, Space, SpaceError
from ..trial import TrialState

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["EvolutionStrategy", "budget_sizes", "crossover", "mutable", "mutate"]

# Gaussian perturbations tried before falling back to a value that surely differs.
_PERTURB_TRIES = 8
# Tournaments and mutations tried before a child that repeats a tried configuration is accepted.
_FRESH_TRIES = 16
# Sizes when the study has no budget, and the bounds of the budget-derived population.
_POPULATION, _MIN_POPULATION = 50, 8
# NSGA-II (several objectives): how often two parents are crossed, and the tournament size.
_CROSSOVER, _MO_TOURNAMENT = 0.9, 2


def mutable(domain: Domain) -> bool:
    """True when ``domain`` has more than one value, so a mutation can change it."""
    if isinstance(domain, Choice):
        return len(domain.values) > 1
    if isinstance(domain, (Int, Float)):
        return domain.low < domain.high
    return False


def _reflect(u: float) -> float:
    """Fold ``u`` back into ``[0, 1]`` by reflection at both ends."""
    u = math.fmod(abs(u), 2.0)
    return 2.0 - u if u > 1.0 else u


def _new_value(domain: Domain, value: Any, rng: random.Random, scale: float | None) -> Any:
    """A value of ``domain`` different from ``value``.

    A Choice takes another of its values, uniformly.  A numeric domain is
    moved by a Gaussian step of standard deviation ``scale`` in the unit
    cube (reflected at the bounds), or redrawn uniformly when ``scale`` is
    ``None``; should rounding keep the value, the farther bound is taken.
    """
    if isinstance(domain, Choice):
        index = domain.index(value)
        other = rng.randrange(len(domain.values) - 1)
        return domain.values[other + (other >= index)]
    u = domain.to_unit(value)
    for _ in range(_PERTURB_TRIES):
        x = rng.random() if scale is None else _reflect(u + rng.gauss(0.0, scale))
        candidate = domain.from_unit(x)
        if candidate != value:
            return candidate
    low, high = domain.from_unit(0.0), domain.from_unit(1.0)
    return low if abs(value - low) > abs(value - high) else high


def mutate(space: Space, parent: Mapping[str, Any], rng: random.Random, scale: float | None = 0.2) -> dict[str, Any]:
    """``parent`` with one active parameter changed; activity re-derived.

    The parameter is chosen uniformly among the parent's active parameters
    that have more than one value.  Parameters that the change makes active
    get uniformly random values; those it makes inactive are dropped; all
    others keep the parent's values.  A space where nothing can change
    returns a copy of ``parent``.
    """
    names = [n for n in space.names if n in parent and mutable(space[n])]
    if not names:
        return dict(parent)
    name = names[rng.randrange(len(names))]
    changed = dict(parent)
    changed[name] = _new_value(space[name], parent[name], rng, scale)
    child: dict[str, Any] = {}
    for n in space.names:
        if space.is_active(n, child):
            child[n] = changed[n] if n in changed else space[n].from_unit(rng.random())
    return child


def crossover(space: Space, a: Mapping[str, Any], b: Mapping[str, Any], rng: random.Random) -> dict[str, Any]:
    """Uniform crossover: each active parameter from ``a`` or ``b`` at even odds; activity re-derived.

    A parameter active in the child but set in neither parent gets a
    uniformly random value.
    """
    child: dict[str, Any] = {}
    for n in space.names:
        if space.is_active(n, child):
            picks = [p[n] for p in (a, b) if n in p]
            child[n] = picks[rng.randrange(len(picks))] if picks else space[n].from_unit(rng.random())
    return child


def _key(space: Space, params: Mapping[str, Any]) -> tuple[Any, ...]:
    """A hashable identity of a configuration (Choice values by position, so ``1`` and ``True`` differ)."""
    out = []
    for name in space.names:
        if name in params:
            domain, value = space[name], params[name]
            out.append((name, domain.index(value) if isinstance(domain, Choice) else value))
    return tuple(out)


def budget_sizes(max_trials: int | None) -> tuple[int, int]:
    """Default ``(population, sample_size)`` for a study of ``max_trials`` trials.

    Without a budget: 50 and 10.  With one, the population is a quarter of
    it, clamped to ``[8, 50]``, which leaves three quarters of the budget to
    children, and the tournament half the population: with so few children,
    breeding from the best members pays more than the diversity that
    smaller tournaments keep (aging still retires every member).
    """
    if max_trials is None:
        return _POPULATION, _POPULATION // 5
    population = min(_POPULATION, max(_MIN_POPULATION, max_trials // 4))
    return population, population // 2


class EvolutionStrategy(Strategy):
    """Regularised evolution (tournament selection, one-parameter mutation, aging).

    ``population`` is how many of the youngest COMPLETE trials breed;
    ``sample_size`` how many of them a tournament compares.  Left as
    ``None``, they follow the study's budget (:func:`budget_sizes`): a
    quarter of ``max_trials`` (between 8 and 50) and half of that, or 50
    and 10 when the study has no ``max_trials``; a ``population`` given
    alone gets a fifth of it as ``sample_size``.  ``scale`` is the standard
    deviation, in the unit cube, of the Gaussian step that mutates a
    numeric parameter (``None``: redraw it uniformly instead).  Children
    never repeat a configuration the study has tried or is trying, unless
    16 tournaments in a row find nothing new.  Trial ``n``'s random choices
    depend only on ``(seed, n)`` and the history, so a seeded run at
    concurrency 1 repeats itself.  A resumed study rebuilds the population
    from its history.
    """

    name = "evolution"
    multi_objective = True

    def __init__(
        self, population: int | None = None, sample_size: int | None = None, *, scale: float | None = 0.2
    ) -> None:
        if population is not None and (
            isinstance(population, bool) or not isinstance(population, int) or population < 2
        ):
            raise ValueError(f"population must be an int >= 2 or None, got {population!r}")
        if sample_size is not None and (
            isinstance(sample_size, bool)
            or not isinstance(sample_size, int)
            or not 1 <= sample_size <= (population or sample_size)
        ):
            bound = f"[1, population={population}]" if population is not None else ">= 1"
            raise ValueError(f"sample_size must be an int in {bound} or None, got {sample_size!r}")
        if scale is not None and (isinstance(scale, bool) or not isinstance(scale, (int, float)) or not 0 < scale <= 1):
            raise ValueError(f"scale must be a number in (0, 1] or None, got {scale!r}")
        #: The sizes as given (``None``: from the budget when the study starts).
        self.options = (population, sample_size)
        self.population, self.sample_size = self._sizes(None)
        self.scale = None if scale is None else float(scale)
        # number -> (params, losses, total violation); NSGA-II's (front, -crowding) per member.
        self._members: dict[int, tuple[dict[str, Any], tuple[float, ...], float]] = {}
        self._scores: dict[int, tuple[int, float]] = {}
        self._several = False
        self._tried: set[tuple[Any, ...]] = set()

    def _sizes(self, max_trials: int | None) -> tuple[int, int]:
        """The sizes for a study of ``max_trials``: those given, the rest from the budget."""
        population, sample_size = self.options
        if population is None:
            auto_population, auto_sample = budget_sizes(max_trials)
            population = max(auto_population, sample_size or 0)
            if sample_size is None:
                sample_size = auto_sample
        if sample_size is None:
            sample_size = min(population, max(2, population // 5))
        return population, sample_size

    @property
    def members(self) -> list[int]:
        """Trial numbers of the current population, oldest first."""
        return sorted(self._members)

    def _rng(self, seed: int, number: int) -> random.Random:
        return random.Random(f"evolution:{seed}:{number}")

    def _remember(self, study: StudyView, params: Mapping[str, Any]) -> None:
        """Note a configuration as tried (one the current space cannot take is ignored)."""
        try:
            self._tried.add(_key(study.space, params))
        except (ValueError, KeyError, TypeError):
            pass

    def _admit(self, study: StudyView, record: TrialRecord) -> None:
        """Add a COMPLETE trial with finite values; retire the oldest (NSGA-II: the worst) when over size."""
        if record.state is not TrialState.COMPLETE or record.value is None:
            return
        loss = losses(record, study.directions)
        if loss is None or not all(math.isfinite(x) for x in loss):
            return
        if record.number in self._members:
            return
        members = self._members
        if not self._several and len(members) >= self.population and record.number < min(members):
            return  # older than every member: it would be retired at once
        try:
            params = study.space.validate(record.params)
        except SpaceError:
            return  # a configuration the current space cannot take cannot breed
        members[record.number] = (params, loss, violation(record.constraints))
        if not self._several:
            while len(members) > self.population:
                del members[min(members)]
            return
        while True:
            self._rescore()
            if len(members) <= self.population:
                return
            # The worst front's most crowded member leaves (the youngest among equals stays).
            worst = max(members, key=lambda n: (*self._scores[n], -n))
            del members[worst]

    def _rescore(self) -> None:
        """NSGA-II's (front, -crowding distance) of every member."""
        numbers = sorted(self._members)
        points = [self._members[n][1] for n in numbers]
        ranks = nondominated_ranks(points, [self._members[n][2] for n in numbers])
        scores: dict[int, tuple[int, float]] = {}
        for level in set(ranks):
            front = [i for i, r in enumerate(ranks) if r == level]
            for i, d in zip(front, crowding_distance([points[i] for i in front]), strict=True):
                scores[numbers[i]] = (level, -d)
        self._scores = scores

    async def start(self, study: StudyView) -> None:
        self.population, self.sample_size = self._sizes(study.max_trials)
        self._several = len(study.directions) > 1
        if self._several and self.options[1] is None:
            self.sample_size = min(_MO_TOURNAMENT, self.population)
        self._members = {}
        self._scores = {}
        self._tried = set()
        for record in study.trials.values():
            self._remember(study, record.params)
        for record in study.finished(TrialState.COMPLETE):
            self._admit(study, record)

    def select(self, rng: random.Random) -> int:
        """The tournament: the best of ``sample_size`` random members.

        Best is the lowest total violation, then the lowest loss, then the
        oldest; with several objectives, the lowest front, then the largest
        crowding distance, then the oldest.
        """
        numbers = self.members
        entrants = rng.sample(numbers, min(self.sample_size, len(numbers)))
        if self._several:
            return min(entrants, key=lambda n: (*self._scores[n], n))
        return min(entrants, key=lambda n: (self._members[n][2], self._members[n][1], n))

    def _breed(self, space: Space, rng: random.Random) -> dict[str, Any]:
        parent = self._members[self.select(rng)][0]
        if self._several and len(self._members) > 1 and rng.random() < _CROSSOVER:
            parent = crossover(space, parent, self._members[self.select(rng)][0], rng)
        return mutate(space, parent, rng, self.scale)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        space = study.space
        if len(self._members) < self.population:
            params = space.sample(study.seed, number)
            self._remember(study, params)
            return params
        rng = self._rng(study.seed, number)
        running = set()
        for record in study.running.values():
            try:
                running.add(_key(space, record.params))
            except (ValueError, KeyError, TypeError):
                pass
        for _ in range(_FRESH_TRIES):
            child = self._breed(space, rng)
            key = _key(space, child)
            if key not in self._tried and key not in running:
                break
        self._tried.add(key)
        return child

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._remember(study, record.params)
        self._admit(study, record)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``evolution``."""
    register("strategy", "evolution", EvolutionStrategy)
