"""``strategy="auto"`` (the default): a strategy chosen from the study's space, budget, concurrency and objectives.

The rule (:func:`choose`), in order, with ``d`` the number of parameters
that vary and ``B`` the budget (``max_trials``; without it the rule assumes
:data:`ASSUMED_BUDGET` trials):

1. Several objectives (only strategies that declare ``multi_objective`` can
   serve such a study), two or three of them:

   a. ``bayes`` (one GP per objective, log EHVI) when ``B <=
      MO_BAYES_MAX_BUDGET``, ``d <= MO_BAYES_MAX_DIM``, concurrency at most
      ``BAYES_MAX_CONCURRENCY``, and the space is neither conditional nor
      categorical (as rules 2 and 3 below define them);
   b. otherwise ``tpe`` (multi-objective TPE) when ``B <=
      MO_TPE_MAX_BUDGET``;
   c. otherwise ``evolution`` (NSGA-II), whose cost per trial does not grow
      with the number of trials or objectives.

   More than ``MO_TPE_MAX_OBJECTIVES`` objectives: ``evolution``.
2. Conditional parameters: ``tpe`` (its Parzen estimators model inactive
   parameters as such; the GP of ``bayes`` and CMA-ES do not).
3. Many categories: ``Choice`` parameters are more than half of the space,
   or one of them has more than :data:`MANY_VALUES` values: ``tpe``.
4. Numeric parameters only, ``d >= CMAES_MIN_DIM`` and ``B >=
   CMAES_MIN_GENERATIONS`` generations of CMA-ES's default population
   (``4 + 3 ln d``): ``cmaes`` (when the ``cmaes`` package is installed;
   otherwise on to the next rule).
5. A small budget in a low dimension, ``d <= BAYES_MAX_DIM``, ``B <=
   BAYES_MAX_BUDGET`` and concurrency at most ``BAYES_MAX_CONCURRENCY``:
   ``bayes`` (a Gaussian process pays for its cost when trials are few).
6. Otherwise: ``tpe``.

``bayes`` and ``tpe`` start with their own quasi-random (Sobol') initial
design; ``cmaes`` starts from the centre of the space with a step of a
sixth of each range.

The choice is made once, when the study is first opened: it is printed
(logged at INFO and shown by the console logger) and stored with the
study's settings, and a resumed study keeps the stored choice even when the
budget or concurrency of the new run would choose differently.
"""

from __future__ import annotations

import importlib.util
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..contracts import Strategy
from ..hookspecs import hookimpl
from ..space import Choice, Space
from .cmaes import cmaes_dimensions

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = [
    "ASSUMED_BUDGET",
    "MO_BAYES_MAX_BUDGET",
    "MO_BAYES_MAX_DIM",
    "MO_TPE_MAX_BUDGET",
    "MO_TPE_MAX_OBJECTIVES",
    "BAYES_MAX_BUDGET",
    "BAYES_MAX_CONCURRENCY",
    "BAYES_MAX_DIM",
    "CMAES_MIN_DIM",
    "CMAES_MIN_GENERATIONS",
    "MANY_VALUES",
    "AutoStrategy",
    "choose",
]

#: The budget the rule assumes for a study without ``max_trials``.
ASSUMED_BUDGET = 200
#: ``cmaes`` needs at least this many numeric parameters ...
CMAES_MIN_DIM = 8
#: ... and a budget of at least this many generations of its default population.
CMAES_MIN_GENERATIONS = 15
#: ``bayes`` only up to this many parameters ...
BAYES_MAX_DIM = 6
#: ... this budget ...
BAYES_MAX_BUDGET = 150
#: ... and this concurrency.
BAYES_MAX_CONCURRENCY = 8
#: Several objectives: ``bayes`` up to this budget ...
MO_BAYES_MAX_BUDGET = 100
#: ... and this many parameters (numeric, not conditional), at most ``BAYES_MAX_CONCURRENCY`` trials at once.
MO_BAYES_MAX_DIM = 10
#: Several objectives: ``tpe`` up to this budget, ``evolution`` (NSGA-II) beyond ...
MO_TPE_MAX_BUDGET = 300
#: ... and beyond this many objectives (the hypervolume tie-break of ``tpe`` grows exponentially with them).
MO_TPE_MAX_OBJECTIVES = 3
#: A ``Choice`` with more values than this makes the space "categorical" (rule 3).
MANY_VALUES = 10


def _cmaes_installed() -> bool:
    return importlib.util.find_spec("cmaes") is not None


def choose(
    space: Space, max_trials: int | None, concurrency: int = 1, objectives: int = 1
) -> tuple[dict[str, Any], str]:
    """The strategy spec ``auto`` picks for a study, and the reason, in words (see the module docstring)."""
    budget = ASSUMED_BUDGET if max_trials is None else int(max_trials)
    told = f"budget {budget}" + (" (assumed: no max_trials)" if max_trials is None else "")
    searched, others = cmaes_dimensions(space)
    choices = [n for n in space.names if isinstance(space[n], Choice) and len(space[n].values) > 1]  # type: ignore[attr-defined]
    d = len(searched) + len(others)
    plural = "" if d == 1 else "s"
    wide = [n for n in choices if len(space[n].values) > MANY_VALUES]  # type: ignore[attr-defined]
    if space.conditional:
        shape = "conditional parameters"
    elif d and len(choices) * 2 > d:
        shape = f"{len(choices)} of {d} parameters are categorical"
    elif wide:
        shape = f"categorical parameters with more than {MANY_VALUES} values: {wide}"
    else:
        shape = ""
    if objectives > 1:
        if objectives > MO_TPE_MAX_OBJECTIVES:
            return {"name": "evolution"}, f"{objectives} objectives (more than {MO_TPE_MAX_OBJECTIVES})"
        if (
            not shape
            and budget <= MO_BAYES_MAX_BUDGET
            and d <= MO_BAYES_MAX_DIM
            and concurrency <= BAYES_MAX_CONCURRENCY
        ):
            return {"name": "bayes"}, (
                f"{objectives} objectives, {d} parameter{plural}, {told} <= {MO_BAYES_MAX_BUDGET}, "
                f"concurrency {concurrency}"
            )
        if budget <= MO_TPE_MAX_BUDGET:
            why = shape or (
                f"{d} parameter{plural}"
                if d > MO_BAYES_MAX_DIM
                else f"concurrency {concurrency}"
                if concurrency > BAYES_MAX_CONCURRENCY
                else ""
            )
            return {"name": "tpe"}, f"{objectives} objectives, {told} <= {MO_TPE_MAX_BUDGET}" + (
                f" ({why})" if why else ""
            )
        return {"name": "evolution"}, f"{objectives} objectives, {told} > {MO_TPE_MAX_BUDGET}"
    if shape:
        return {"name": "tpe"}, shape
    popsize = 4 + math.floor(3 * math.log(max(d, 1)))
    if not others and d >= CMAES_MIN_DIM and budget >= CMAES_MIN_GENERATIONS * popsize:
        if _cmaes_installed():
            return {
                "name": "cmaes"
            }, f"{d} numeric parameters, {told} >= {CMAES_MIN_GENERATIONS} generations of {popsize}"
        cmaes_note = "; cmaes would fit but the 'cmaes' package is not installed"
    else:
        cmaes_note = ""
    if d <= BAYES_MAX_DIM and budget <= BAYES_MAX_BUDGET and concurrency <= BAYES_MAX_CONCURRENCY:
        return {"name": "bayes"}, f"{d} parameter{plural}, {told}, concurrency {concurrency}{cmaes_note}"
    return {"name": "tpe"}, f"{d} parameter{plural}, {told}, concurrency {concurrency}{cmaes_note}"


class AutoStrategy(Strategy):
    """Chooses a strategy for the study by :func:`choose` and hands every call to it.

    :attr:`choice` is the chosen spec and :attr:`reason` why, once the study
    is open (``None`` before).  ``auto`` declares ``multi_objective``: for
    several objectives it picks a strategy that handles them.
    """

    name = "auto"
    multi_objective = True

    def __init__(self) -> None:
        #: The chosen strategy's spec (``{"name": "tpe"}``), set when the study opens.
        self.choice: dict[str, Any] | None = None
        #: Why it was chosen.
        self.reason: str | None = None
        #: True when the choice was read back from the stored study.
        self.resumed = False
        #: The chosen strategy.
        self.delegate: Strategy | None = None
        self._registry: Any = None
        self._disabled: frozenset[str] = frozenset()

    def bind_registry(self, registry: Any, disabled: frozenset[str] = frozenset()) -> None:
        """Create the chosen strategy from ``registry`` (the Tuner's), without the ``disabled`` plugins."""
        self._registry, self._disabled = registry, frozenset(disabled)

    @staticmethod
    def plan(space: Space, max_trials: int | None, concurrency: int, objectives: int) -> dict[str, Any]:
        """The choice as stored with the study: ``{"strategy": spec, "reason": text}``."""
        spec, reason = choose(space, max_trials, concurrency, objectives)
        return {"strategy": spec, "reason": reason}

    def adopt(self, plan: Mapping[str, Any], *, resumed: bool = False) -> None:
        """Use the strategy of ``plan`` (from :meth:`plan`, or as stored with a resumed study)."""
        spec = plan.get("strategy")
        if not isinstance(spec, (str, Mapping)) or (isinstance(spec, Mapping) and spec.get("name") == "auto"):
            raise ValueError(f"strategy 'auto': a choice names another strategy, got {spec!r}")
        self.choice = {"name": spec} if isinstance(spec, str) else dict(spec)
        self.reason = str(plan.get("reason", ""))
        self.resumed = resumed
        registry = self._registry
        if registry is None:
            from ..plugins import get_registry

            registry = get_registry()
        self.delegate = registry.create("strategy", self.choice, disabled=self._disabled)

    def describe(self) -> str:
        """The choice in words: ``"cmaes (20 numeric parameters, ...)"``."""
        if self.choice is None:
            return "not chosen yet"
        options = {k: v for k, v in self.choice.items() if k != "name"}
        shown = self.choice["name"] + (f" {options}" if options else "")
        return f"{shown} ({self.reason}{'; kept from the stored study' if self.resumed else ''})"

    async def start(self, study: StudyView) -> None:
        if self.delegate is None:
            concurrency = getattr(study, "concurrency", None) or 1
            self.adopt(self.plan(study.space, study.max_trials, concurrency, len(study.directions)))
        await self.delegate.start(study)  # type: ignore[union-attr]

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        return await self.delegate.ask(study, number)  # type: ignore[union-attr]

    async def ask_batch(self, study: StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        return await self.delegate.ask_batch(study, numbers)  # type: ignore[union-attr]

    def batch_limit(self, study: StudyView) -> int | None:
        """The chosen strategy's bound on the next batch (``None`` before the choice)."""
        return self.delegate.batch_limit(study) if self.delegate is not None else None

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        await self.delegate.tell(study, record)  # type: ignore[union-attr]

    @hookimpl
    async def hpt_study_ended(self, event: Any, study: StudyView) -> None:
        """Hand the end of the run to the chosen strategy when it listens for it (``bayes`` and ``tpe`` do)."""
        ended = getattr(self.delegate, "hpt_study_ended", None)
        if callable(ended):
            result = ended(event=event, study=study)
            if inspect.isawaitable(result):
                await result


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``auto``."""
    register("strategy", "auto", AutoStrategy)
