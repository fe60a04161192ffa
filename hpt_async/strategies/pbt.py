"""``strategy="pbt"``: population-based training, and ``"pbt-replay"``: a schedule it found, replayed.

Population-based training (Jaderberg et al., 2017) trains a population of
models concurrently and, while they train, moves the weak ones to where the
strong ones are: every ``perturbation_interval`` steps of its reports, a
member in the bottom quantile of the population copies the weights
(checkpoint) and hyperparameters of a member of the top quantile (*exploit*)
and perturbs them (*explore*).  The result is a hyperparameter *schedule*
per member, e.g. a learning rate that falls as training goes on.

Here it is asynchronous: the strategy decides when a member reports, with
the population as it stands, and nobody waits for a generation.  The
population is the trials running at once (the Tuner's ``concurrency``) and
the best finished ones, whose checkpoints are kept while they rank in the
top quantile.  The objective cooperates::

    async def objective(trial):
        state = await trial.restore() or init_state()
        for step in range(steps):
            state = train_one_step(state, trial.params["lr"])
            await trial.checkpoint(state)
            await trial.report(score(state), step=step)
            if trial.should_restore:  # exploited: new params, the donor's weights
                state = await trial.restore()
        return score(state)

An exploited member keeps its trial number and its own step counter; its
record's ``schedule`` lists its hyperparameters over its steps and the
donors it copied.  :func:`lineage` follows those donors back to give the
whole schedule that produced a member's final weights, and
:class:`PBTReplayStrategy` replays it in a fresh run.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from ..contracts import Decision, Exploit, Strategy
from ..hookspecs import hookimpl
from ..space import Choice, Domain, Float, Int, Space
from ..trial import ScheduleEntry, TrialRecord, TrialState

if TYPE_CHECKING:
    from ..study import StudyView

__all__ = ["PBTReplayStrategy", "PBTStrategy", "explore", "lineage", "quantiles"]


def quantiles(ranked: Sequence[int], quantile: float) -> tuple[list[int], list[int]]:
    """``(top, bottom)`` of trial numbers ``ranked`` best first.

    Each holds ``ceil(quantile * n)`` members, but never more than half of
    the ``n`` (so that nobody is both); fewer than two members give two
    empty lists.
    """
    n = len(ranked)
    if n < 2:
        return [], []
    k = min(math.ceil(quantile * n - 1e-12), n // 2)
    if k < 1:
        return [], []
    return list(ranked[:k]), list(ranked[n - k :])


def _perturb_number(dom: Float | Int, value: float, factor: float) -> float:
    new = value * factor
    if new == value:  # zero does not move by a factor: step by a fraction of the range instead
        new = value + (factor - 1.0) * (dom.high - dom.low)
    return min(max(new, dom.low), dom.high)


def _snap(dom: Float | Int, value: float, target: float, factor: float) -> float:
    """``target`` on ``dom``'s step grid, at least one step away from ``value`` in the factor's direction."""
    step = float(dom.step)  # type: ignore[arg-type]
    now = round((value - dom.low) / step)
    k = (target - dom.low) / step
    if factor > 1.0:
        k = max(math.ceil(k - 1e-9), now + 1)
    elif factor < 1.0:
        k = min(math.floor(k + 1e-9), now - 1)
    else:
        k = now
    top = round((dom.high - dom.low) / step)
    return dom.low + min(max(k, 0), top) * step


def _perturb(dom: Domain, value: Any, rng: random.Random, factors: Sequence[float]) -> Any:
    """One domain's value moved a little: a factor for numbers, a neighbour for a Choice."""
    if isinstance(dom, Choice):
        n = len(dom.values)
        if n == 1:
            return value
        i = dom.index(value) + rng.choice((-1, 1))
        if i < 0 or i >= n:
            i = dom.index(value) + (1 if i < 0 else -1)
        return dom.values[i]
    factor = rng.choice(tuple(factors))
    target = _perturb_number(dom, float(value), factor)  # type: ignore[arg-type]
    if isinstance(dom, Int):
        return int(_snap(dom, int(value), target, factor))
    assert isinstance(dom, Float)
    if dom.step is not None:
        return float(min(_snap(dom, float(value), target, factor), dom.high))
    return float(target)


def explore(
    space: Space,
    params: Mapping[str, Any],
    rng: random.Random,
    *,
    resample_probability: float = 0.25,
    factors: Sequence[float] = (0.8, 1.2),
) -> dict[str, Any]:
    """A perturbed copy of ``params`` (the *explore* step of PBT).

    Each active parameter is, with probability ``resample_probability``,
    drawn anew from its domain; otherwise a number is multiplied by one of
    ``factors`` (then clipped to its bounds; on a step grid, an ``Int``
    included, it moves at least one step in the factor's direction; a zero
    moves by the factor's fraction of the range) and a ``Choice`` moves to a
    neighbouring value.  A parameter that a changed parent makes active is
    drawn anew; one it makes inactive is dropped.  The result is a valid
    configuration of ``space``.
    """
    out: dict[str, Any] = {}
    for name, dom in space.items():
        if not space.is_active(name, out):
            continue
        if name not in params or rng.random() < resample_probability:
            out[name] = dom.from_unit(rng.random())
        else:
            out[name] = _perturb(dom, params[name], rng, factors)
    return space.validate(out)


def _score(record: TrialRecord) -> float | None:
    """What a member ranks on: its last report, else its value."""
    last = record.last_report
    value = last[1] if last is not None else record.value
    if value is None or not math.isfinite(value):
        return None
    return value


class PBTStrategy(Strategy):
    """Population-based training: asynchronous exploit and explore at reports.

    * ``ask`` gives new members random configurations (``seed``-reproducible).
    * ``decide`` is awaited at each report.  When the member has gone
      ``perturbation_interval`` steps since its last check, the population is
      ranked on the last reported value (running members, and finished
      ones still kept); a member in the bottom ``quantile`` copies a member
      of the top ``quantile`` that has a checkpoint: the answer is an
      :class:`~hpt_async.contracts.Exploit` with the donor and the
      donor's configuration passed through :func:`explore`.
    * ``retained_checkpoints`` names the finished members whose checkpoints
      must be kept as possible donors (those in the top quantile).

    Random choices (donor, perturbation) come from ``random.Random`` seeded
    by the study's seed, the member's number and the step, so that a run
    whose reports arrive in the same order is reproduced exactly (always at
    ``concurrency=1``).  :attr:`events` lists every exploit as
    ``(trial, step, donor, params before, params after)``.

    It cannot be paired with a pruner (the Tuner refuses): it decides at
    reports itself.
    """

    name = "pbt"
    check_output = True
    decides = True
    retains_checkpoints = True

    def __init__(
        self,
        perturbation_interval: int = 4,
        quantile: float = 0.25,
        resample_probability: float = 0.25,
        factors: Sequence[float] = (0.8, 1.2),
    ) -> None:
        if isinstance(perturbation_interval, bool) or not isinstance(perturbation_interval, int):
            raise TypeError(f"perturbation_interval must be an int, got {perturbation_interval!r}")
        if perturbation_interval < 1:
            raise ValueError(f"perturbation_interval must be >= 1, got {perturbation_interval}")
        if not isinstance(quantile, (int, float)) or isinstance(quantile, bool) or not 0 < quantile <= 0.5:
            raise ValueError(f"quantile must be in (0, 0.5], got {quantile!r}")
        if (
            not isinstance(resample_probability, (int, float))
            or isinstance(resample_probability, bool)
            or not 0 <= resample_probability <= 1
        ):
            raise ValueError(f"resample_probability must be in [0, 1], got {resample_probability!r}")
        factors = tuple(float(f) for f in factors)
        if not factors or any(not (f > 0 and math.isfinite(f)) for f in factors):
            raise ValueError(f"factors must be positive numbers, got {factors!r}")
        self.perturbation_interval = perturbation_interval
        self.quantile = float(quantile)
        self.resample_probability = float(resample_probability)
        self.factors = factors
        self.events: list[tuple[int, int, int, dict[str, Any], dict[str, Any]]] = []
        self._last: dict[int, int] = {}  # member -> step of its last check
        self._kept: set[int] = set()  # finished members kept as donors

    def __repr__(self) -> str:
        return (
            f"PBTStrategy(perturbation_interval={self.perturbation_interval}, quantile={self.quantile}, "
            f"resample_probability={self.resample_probability}, factors={self.factors})"
        )

    async def start(self, study: StudyView) -> None:
        self._last = {}
        self._kept = set()
        self.events = []

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        return study.space.sample(study.seed, number)

    def _ranked(self, study: StudyView) -> list[int]:
        """Members best first: running ones with a report, and kept finished ones."""
        sign = study.sign()
        scored: list[tuple[float, int]] = []
        for number, record in study.running.items():
            score = _score(record)
            if score is not None:
                scored.append((sign * score, number))
        for number in self._kept:
            record = study.trials.get(number)
            score = None if record is None else _score(record)
            if score is not None:
                scored.append((sign * score, number))
        scored.sort()
        return [n for _, n in scored]

    async def decide(
        self,
        study: StudyView,
        trial: TrialRecord,
        step: int,
        value: float,
        checkpoints: Mapping[int, int | None],
    ) -> Decision | Exploit:
        """CONTINUE, or an EXPLOIT of a top-quantile donor for a bottom-quantile member."""
        number = trial.number
        if step < self._last.get(number, 0) + self.perturbation_interval:
            return Decision.CONTINUE
        self._last[number] = step
        top, bottom = quantiles(self._ranked(study), self.quantile)
        if number not in bottom:
            return Decision.CONTINUE
        donors = [d for d in top if d != number and d in checkpoints]
        if not donors:
            return Decision.CONTINUE
        rng = random.Random(f"pbt:{study.seed}:{number}:{step}")
        donor = rng.choice(donors)
        source = study.trials[donor].params
        params = explore(study.space, source, rng, resample_probability=self.resample_probability, factors=self.factors)
        self.events.append((number, step, donor, dict(trial.params), dict(params)))
        return Exploit(params, donor)

    def _top(self, study: StudyView) -> set[int]:
        """The top quantile, or the best member of a population too small to have one."""
        ranked = self._ranked(study)
        top, _ = quantiles(ranked, self.quantile)
        return set(top or ranked[:1])

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._last.pop(record.number, None)
        if record.state is TrialState.COMPLETE and _score(record) is not None:
            self._kept.add(record.number)
            if record.number not in self._top(study):
                self._kept.discard(record.number)

    def retained_checkpoints(self, study: StudyView) -> Collection[int]:
        """The finished members still in the top quantile; the others are let go for good."""
        if self._kept:
            self._kept &= self._top(study)
        return frozenset(self._kept)


def _entries(record: TrialRecord) -> tuple[ScheduleEntry, ...]:
    return record.schedule or (ScheduleEntry(None, record.params),)


def lineage(trials: Iterable[TrialRecord] | Mapping[int, TrialRecord] | Any, number: int) -> list[ScheduleEntry]:
    """The whole schedule behind trial ``number``'s final state.

    ``trials`` is a :class:`~hpt_async.StudyResult`, a study view's
    ``trials`` mapping, or records.  Before each EXPLOIT, the member's own
    history is replaced by the donor's lineage up to that step (the weights
    it copied were trained that way), recursively; the entries keep their
    ``donor`` to show where the line jumped.  The first entry's ``step`` is
    ``None`` (from the start).
    """
    if hasattr(trials, "trials") and not isinstance(trials, Mapping):
        trials = trials.trials
    by_number = dict(trials) if isinstance(trials, Mapping) else {r.number: r for r in trials}
    if number not in by_number:
        raise KeyError(f"no trial {number} among the records given")

    def walk(n: int, upto: int | None, depth: int) -> list[ScheduleEntry]:
        out: list[ScheduleEntry] = []
        for entry in _entries(by_number[n]):
            if upto is not None and entry.step is not None and entry.step >= upto:
                break
            if entry.donor is not None and entry.donor in by_number and depth < 1000:
                out = walk(entry.donor, entry.step, depth + 1)
            out.append(entry)
        return out

    return walk(number, None, 0)


class PBTReplayStrategy(Strategy):
    """Replays a fixed hyperparameter schedule, e.g. the :func:`lineage` of PBT's best member.

    ``schedule`` is a sequence of :class:`~hpt_async.ScheduleEntry` (or of
    ``(step, params)`` pairs), the first for the start (its step is ignored).
    Every trial starts with the first entry's configuration; at each report
    at or past an entry's step the trial switches to that entry's
    configuration (an EXPLOIT without donor: no checkpoint is copied), so
    ``trial.params`` after a report holds what the schedule says for the
    next steps.  The switch happens at the first report at or after the
    entry's step, so an objective that reports every step follows the
    schedule exactly.  Use ``max_trials`` to say how many runs to make.
    """

    name = "pbt-replay"
    decides = True

    def __init__(self, schedule: Sequence[ScheduleEntry | tuple[int | None, Mapping[str, Any]]]) -> None:
        entries: list[ScheduleEntry] = []
        for item in schedule:
            if isinstance(item, ScheduleEntry):
                entries.append(item)
            else:
                step, params = item
                entries.append(ScheduleEntry(step, dict(params)))
        if not entries:
            raise ValueError("a schedule to replay needs at least one entry")
        rest = [e.step for e in entries[1:]]
        if any(s is None or isinstance(s, bool) or not isinstance(s, int) for s in rest):
            raise ValueError(f"every entry after the first needs an int step, got {rest!r}")
        if rest != sorted(rest):
            raise ValueError(f"schedule steps must not decrease, got {rest!r}")
        self.schedule = tuple(entries)
        self._next: dict[int, int] = {}  # trial -> index of the next entry to apply

    async def start(self, study: StudyView) -> None:
        self._next = {}
        for entry in self.schedule:
            study.space.validate(entry.params)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
        self._next[number] = 1
        return dict(self.schedule[0].params)

    async def decide(
        self,
        study: StudyView,
        trial: TrialRecord,
        step: int,
        value: float,
        checkpoints: Mapping[int, int | None],
    ) -> Decision | Exploit:
        """Switch to the last entry whose step has been reached, if it was not applied yet."""
        i = self._next.get(trial.number, 1)
        entries = self.schedule
        j = i
        while j < len(entries) and entries[j].step <= step:  # type: ignore[operator]
            j += 1
        if j == i:
            return Decision.CONTINUE
        self._next[trial.number] = j
        return Exploit(dict(entries[j - 1].params), None)

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        self._next.pop(record.number, None)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``pbt`` and ``pbt-replay``."""
    register("strategy", "pbt", PBTStrategy)
    register("strategy", "pbt-replay", PBTReplayStrategy)
