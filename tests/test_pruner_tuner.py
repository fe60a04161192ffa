"""The builtin pruners inside real Tuner runs: PRUNED records, concurrency and replay, resume."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.pruners import ASHAPruner, HyperbandPruner, MedianPruner
from hpt_async.pruners._replay import DecisionLog, replay

pytestmark = pytest.mark.anyio

HANG_GUARD = 20.0
SPACE = {"q": hpt.Float(0.0, 1.0), "speed": hpt.Float(0.5, 2.0)}
EPOCHS = 9


def loss_at(params: dict[str, Any], epoch: int) -> float:
    """A learning curve: falls towards ``q`` at a rate set by ``speed``."""
    return params["q"] + math.exp(-params["speed"] * epoch)


async def curve_objective(trial: hpt.Trial) -> float:
    """Reports every epoch, sleeping a little so that concurrent trials interleave."""
    value = math.inf
    for epoch in range(1, EPOCHS + 1):
        await anyio.sleep(0.0005 * (1 + (trial.number * 7 + epoch) % 5))
        value = loss_at(trial.params, epoch)
        await trial.report(value, step=epoch)
    return value


def sync_objective(trial: hpt.SyncTrial) -> float:
    """The same curve from a plain function in a worker thread."""
    value = math.inf
    for epoch in range(1, EPOCHS + 1):
        value = loss_at(trial.params, epoch)
        trial.report(value, step=epoch)
    return value


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def make(objective: Any = curve_objective, **kwargs: Any) -> hpt.Tuner:
    """A silent seeded tuner over SPACE."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 3)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, SPACE, **kwargs)


def rungs_of(pruner: Any) -> list[list[tuple[float, dict[int, float]]]]:
    """Every bracket's rungs as plain data."""
    brackets = getattr(pruner, "brackets", 1)
    return [[(r.level, dict(r.values)) for r in pruner.rungs(b)] for b in range(brackets)]


# -- pruned trials through a real run ------------------------------------------------------


@pytest.mark.parametrize(
    ("pruner", "rung_steps"),
    [("asha", {1, 3, 9}), ("hyperband", {1, 3, 9}), ("median", set(range(1, EPOCHS + 1)))],
)
@pytest.mark.parametrize("objective", [curve_objective, sync_objective], ids=["async", "thread"])
async def test_pruned_trials_end_pruned_with_their_last_value(
    pruner: str, rung_steps: set[int], objective: Any
) -> None:
    result = await run(make(objective, pruner=pruner, max_trials=40, concurrency=4))
    pruned = [t for t in result.trials if t.state is hpt.TrialState.PRUNED]
    complete = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE]
    assert pruned and complete
    assert len(pruned) + len(complete) == 40
    for t in pruned:
        last = max(t.reports)
        assert last in rung_steps
        assert t.value == t.reports[last]
    for t in complete:
        assert sorted(t.reports) == list(range(1, EPOCHS + 1))


async def test_asha_in_a_maximising_study_stops_the_low_values() -> None:
    async def accuracy(trial: hpt.Trial) -> float:
        value = 0.0
        for epoch in range(1, EPOCHS + 1):
            value = 1.0 - loss_at(trial.params, epoch) / 3
            await trial.report(value, step=epoch)
        return value

    log = DecisionLog(ASHAPruner())
    result = await run(make(accuracy, direction="maximize", pruner=log, max_trials=30))
    assert result.count("pruned") > 0
    # Sequentially, every stop is a trial whose value at the rung is below the best seen there before.
    best: dict[int, float] = {}
    for r in log.decisions():
        if r.step in (1, 3):
            if r.decision is hpt.Decision.STOP:
                assert r.value < best[r.step]
            best[r.step] = max(best.get(r.step, -math.inf), r.value)


async def test_ask_and_tell_with_asha() -> None:
    tuner = make(pruner=ASHAPruner(max_resource=EPOCHS))
    outcomes = []
    for _ in range(6):
        trial = await tuner.ask()
        try:
            value = await curve_objective(trial)
        except hpt.TrialPruned:
            outcomes.append((await tuner.tell(trial, state="pruned")).state)
        else:
            outcomes.append((await tuner.tell(trial, value)).state)
    await tuner.close()
    assert hpt.TrialState.PRUNED in outcomes and outcomes[0] is hpt.TrialState.COMPLETE


def test_unknown_pruner_names_list_the_builtins() -> None:
    with pytest.raises(hpt.PluginNotFound, match=r"asha, hyperband, median"):
        make(pruner="ashaa")


# -- concurrency ------------------------------------------------------------------------------


class Slots:
    """Counts the trials running after each start and end."""

    def __init__(self) -> None:
        self.running = 0
        self.started = 0
        self.trace: list[tuple[int, int]] = []  # (trials started so far, running now)

    @hpt.hookimpl
    def hpt_trial_started(self) -> None:
        self.running += 1
        self.started += 1
        self.trace.append((self.started, self.running))

    @hpt.hookimpl
    def hpt_trial_ended(self) -> None:
        self.running -= 1
        self.trace.append((self.started, self.running))


@pytest.mark.parametrize("make_pruner", [ASHAPruner, HyperbandPruner, MedianPruner])
async def test_eight_concurrent_trials_replay_to_identical_decisions(make_pruner: Any) -> None:
    log = DecisionLog(make_pruner())
    slots = Slots()
    result = await run(make(pruner=log, plugins=[slots], max_trials=64, concurrency=8))
    assert result.count("pruned") > 0
    # Trials did interleave: some trial reported between two reports of another.
    positions: dict[int, list[int]] = {}
    for i, r in enumerate(log.decisions()):
        positions.setdefault(r.number, []).append(i)
    assert any(p[-1] - p[0] + 1 > len(p) for p in positions.values())
    assert max(r for _, r in slots.trace) == 8
    fresh = make_pruner()
    replayed = await replay(fresh, log.events)
    assert [r.decision for r in replayed] == [r.decision for r in log.decisions()]
    if make_pruner is not MedianPruner:
        assert rungs_of(fresh) == rungs_of(log.inner)


@pytest.mark.parametrize("make_pruner", [ASHAPruner, HyperbandPruner, MedianPruner])
async def test_a_decision_never_suspends(make_pruner: Any) -> None:
    # decide() answers without giving the event loop away: no trial ever waits on another's progress.
    pruner = make_pruner()
    view = hpt.StudyView("s", "minimize", hpt.Space(SPACE), 0)
    await pruner.start(view)
    for n in range(30):
        for step in range(1, EPOCHS + 1):
            record = hpt.TrialRecord(n, hpt.TrialState.RUNNING, {}, reports={step: float(n)})
            coro = pruner.decide(view, record, step, float(n))
            with pytest.raises(StopIteration) as done:
                coro.send(None)
            assert done.value.value in (hpt.Decision.CONTINUE, hpt.Decision.STOP)


async def test_asha_stops_follow_the_rule_on_what_arrived_before() -> None:
    log = DecisionLog(ASHAPruner(max_resource=EPOCHS))
    await run(make(pruner=log, max_trials=48, concurrency=8))
    seen: dict[int, list[float]] = {}
    for r in log.decisions():
        if r.step in (1, 3):
            before = seen.setdefault(r.step, [])
            better = sum(1 for v in before if v < r.value)
            expected = better < max(1, (len(before) + 1) // 3)
            assert (r.decision is hpt.Decision.CONTINUE) == expected
            before.append(r.value)
        else:
            assert r.decision is hpt.Decision.CONTINUE


# -- resume -------------------------------------------------------------------------------------


class RungsAtStart:
    """Keeps what the pruner's rungs hold when the study starts (after the pruner rebuilt them)."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner
        self.rungs: Any = None
        self.median: Any = None

    @hpt.hookimpl
    def hpt_study_started(self) -> None:
        inner = self.pruner.inner
        if isinstance(inner, MedianPruner):
            self.median = [inner.median(s) for s in range(1, EPOCHS + 1)]
        else:
            self.rungs = rungs_of(inner)


@pytest.mark.parametrize("make_pruner", [ASHAPruner, HyperbandPruner, MedianPruner])
async def test_a_resumed_study_continues_with_the_same_rungs(make_pruner: Any) -> None:
    storage = hpt.MemoryStorage()
    first = DecisionLog(make_pruner())
    await run(make(pruner=first, storage=storage, study="resumed", max_trials=20, concurrency=4))
    second = DecisionLog(make_pruner())
    probe = RungsAtStart(second)
    result = await run(
        make(pruner=second, plugins=[probe], storage=storage, study="resumed", max_trials=45, concurrency=4, seed=4)
    )
    assert len(result.trials) == 45 and min(t.number for t in result.trials) == 0
    if isinstance(first.inner, MedianPruner):
        assert probe.median == [first.inner.median(s) for s in range(1, EPOCHS + 1)]
    else:
        assert probe.rungs == rungs_of(first.inner)
        assert any(probe.rungs[0])
    # One pruner fed both runs' events in order decides exactly as the two did.
    replayed = await replay(make_pruner(), [*first.events, *second.events])
    assert [r.decision for r in replayed] == [r.decision for r in [*first.decisions(), *second.decisions()]]
    assert any(r.decision is hpt.Decision.STOP for r in second.decisions())


async def test_rungs_are_rebuilt_from_a_sqlite_study(tmp_path: Any) -> None:
    """The reports stored in SQLite rebuild the same rungs the first run had built."""

    async def objective(trial: hpt.Trial) -> float:
        for step in range(9):
            await trial.report(trial.params["x"] + 1 / (step + 1), step=step)
        return trial.params["x"]

    url = f"sqlite:///{tmp_path / 'rungs.db'}"
    first = ASHAPruner()
    await hpt.Tuner(
        objective,
        {"x": hpt.Float(0, 1)},
        storage=url,
        study="s",
        pruner=first,
        max_trials=20,
        loggers=[],
        seed=0,
        strategy="random",
    ).run()
    before = first.rungs()
    assert len(before) >= 2
    again = ASHAPruner()
    result = await hpt.Tuner(
        objective,
        {"x": hpt.Float(0, 1)},
        storage=url,
        study="s",
        pruner=again,
        max_trials=20,
        loggers=[],
        seed=0,
        strategy="random",
    ).run()
    assert result.reason == "max_trials"  # nothing new ran: the rungs come from storage alone
    assert again.rungs() == before
