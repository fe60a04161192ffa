"""Promotion mode of the rung pruners: trials PAUSED at rungs, resumed from their checkpoints."""

from __future__ import annotations

import math
from collections import defaultdict
from types import MappingProxyType
from typing import Any

import anyio
import numpy as np
import pytest

import hpt_async as hpt
from hpt_async.pruners import ASHAPruner, Decision, HyperbandPruner
from hpt_async.pruners._replay import DecisionLog
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState

pytestmark = pytest.mark.anyio

HANG_GUARD = 30.0
SPACE = {"q": hpt.Float(0.0, 1.0)}


# -- hand-made report sequences ------------------------------------------------------


class Sequence:
    """Feeds reports to a pruner and keeps a study view whose states follow its decisions."""

    def __init__(self, pruner: Any) -> None:
        self.pruner = pruner
        self.view = StudyView("hand", "minimize", hpt.Space(SPACE), 0)
        self.reports: dict[int, dict[int, float]] = defaultdict(dict)

    def _put(self, number: int, state: TrialState, value: float | None = None) -> TrialRecord:
        record = TrialRecord(
            number,
            state,
            MappingProxyType({"q": 0.5}),
            value=value,
            reports=MappingProxyType(dict(self.reports[number])),
        )
        self.view._put(record)
        return record

    async def report(self, number: int, step: int, value: float) -> Decision:
        self.reports[number][step] = value
        record = self._put(number, TrialState.RUNNING)
        decision = await self.pruner.decide(self.view, record, step, value)
        if decision is Decision.PAUSE:
            await self.pruner.tell(self.view, self._put(number, TrialState.PAUSED, value))
        return decision

    async def promote(self) -> int | None:
        number = await self.pruner.promote(self.view)
        if number is not None:
            assert self.view.trials[number].state is TrialState.PAUSED
            self._put(number, TrialState.RUNNING)
        return number


async def test_a_paused_trial_is_promoted_once_its_rung_has_grown() -> None:
    seq = Sequence(ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion"))
    await seq.pruner.start(seq.view)
    # The first eta - 1 arrivals at a rung wait: floor(n / 3) is 0 for n < 3.
    assert await seq.report(0, 1, 0.5) is Decision.PAUSE
    assert await seq.report(1, 1, 0.4) is Decision.PAUSE
    assert await seq.promote() is None
    # A third arrival, worse than both, pauses too, but now the rung lets its best (trial 1) go on.
    assert await seq.report(2, 1, 0.9) is Decision.PAUSE
    assert seq.pruner.waiting() == {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    assert await seq.promote() == 1
    assert await seq.promote() is None  # trial 0 ranks second of three: not in the top 1
    assert await seq.report(3, 1, 0.6) is Decision.PAUSE
    assert await seq.promote() is None
    # An arrival in the top goes straight on.
    assert await seq.report(4, 1, 0.1) is Decision.CONTINUE
    # Six values: the top 2 are trials 4 and 1, both gone on; trial 0 is third.
    assert await seq.report(5, 1, 0.7) is Decision.PAUSE
    assert await seq.promote() is None
    assert await seq.report(6, 1, 0.8) is Decision.PAUSE
    assert await seq.report(7, 1, 0.85) is Decision.PAUSE
    assert await seq.report(8, 1, 0.95) is Decision.PAUSE
    # Nine values: top 3, so trial 0 (0.5) is promoted at last.
    assert await seq.promote() == 0
    assert await seq.promote() is None
    # The promoted trial goes on from its last step and is judged at the next rung (level 3).
    assert await seq.report(1, 2, 0.35) is Decision.CONTINUE
    assert await seq.report(1, 3, 0.3) is Decision.PAUSE
    assert await seq.report(4, 3, 0.05) is Decision.PAUSE
    assert await seq.report(0, 3, 0.45) is Decision.PAUSE
    # Rung 1 holds three values: its best (trial 4) is promoted before anything at rung 0.
    assert await seq.promote() == 4
    # At the last level (max_resource) nothing is decided: the trial completes.
    assert await seq.report(4, 9, 0.01) is Decision.CONTINUE
    assert [r.level for r in seq.pruner.rungs()] == [1.0, 3.0, 9.0]


async def test_promotion_prefers_the_highest_rung_then_the_better_value() -> None:
    seq = Sequence(ASHAPruner(min_resource=1, eta=2, max_resource=8, mode="promotion"))
    await seq.pruner.start(seq.view)
    assert await seq.report(0, 1, 0.5) is Decision.PAUSE  # rung 0 (level 1), n=1: floor(1/2) = 0
    assert await seq.report(1, 1, 0.4) is Decision.CONTINUE  # n=2: top 1, and it is the best
    assert await seq.report(1, 2, 0.4) is Decision.PAUSE  # rung 1 (level 2), n=1
    assert await seq.report(2, 1, 0.3) is Decision.CONTINUE  # rung 0, n=3: top 1
    assert await seq.report(2, 2, 0.3) is Decision.CONTINUE  # rung 1, n=2: top 1
    assert await seq.report(3, 1, 0.45) is Decision.PAUSE  # rung 0, n=4: top 2 = trials 2 and 1
    assert await seq.report(4, 1, 0.35) is Decision.CONTINUE  # rung 0, n=5: second of the top 2
    assert await seq.report(4, 2, 0.6) is Decision.PAUSE  # rung 1, n=3: top 1 = trial 2
    for number, value in ((5, 0.9), (6, 0.95)):
        assert await seq.report(number, 1, value) is Decision.PAUSE
    assert await seq.promote() is None  # rung 0, n=7: top 3 = trials 2, 4, 1; rung 1: top 1 = trial 2
    # One report at step 2 enters both rungs: rung 0 then holds 8 values (top 4: trials 2, 4, 1 and 3)
    # and rung 1 holds 4 (top 2: trials 2 and 1).  Trials 1 (rung 1) and 3 (rung 0) now qualify.
    assert await seq.report(8, 2, 0.9) is Decision.PAUSE
    assert seq.pruner.waiting()[1] == (0, 1) and seq.pruner.waiting()[3] == (0, 0)
    assert await seq.promote() == 1  # the higher rung first
    assert await seq.promote() == 3
    assert await seq.promote() is None
    assert 1 not in seq.pruner.waiting() and 3 not in seq.pruner.waiting()


async def test_among_equals_the_better_value_is_promoted_first() -> None:
    seq = Sequence(ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion"))
    await seq.pruner.start(seq.view)
    for number, value in ((0, 0.6), (1, 0.5), (2, 0.7), (3, 0.8), (4, 0.9)):
        assert await seq.report(number, 1, value) is Decision.PAUSE
    # Five values, top 1: trial 1 (0.5) qualifies.  A sixth makes it the top 2: trial 0 (0.6) too.
    assert await seq.report(5, 1, 0.95) is Decision.PAUSE
    assert await seq.promote() == 1
    assert await seq.promote() == 0


async def test_a_non_finite_value_at_a_rung_stops_the_trial() -> None:
    seq = Sequence(ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion"))
    await seq.pruner.start(seq.view)
    assert await seq.report(0, 1, math.nan) is Decision.STOP


def test_mode_is_checked_and_shown() -> None:
    with pytest.raises(ValueError, match="mode must be 'stop' or 'promotion'"):
        ASHAPruner(mode="pause")
    with pytest.raises(TypeError, match="did you mean 'mode'"):
        ASHAPruner(mod="promotion")
    assert "mode='promotion'" in repr(ASHAPruner(max_resource=9, mode="promotion"))
    assert "mode" not in repr(ASHAPruner())
    assert HyperbandPruner(max_resource=9, mode="promotion").promotes
    assert not HyperbandPruner().promotes
    for pruner in (ASHAPruner, HyperbandPruner):  # a trial at its last step must not wait there
        with pytest.raises(ValueError, match="promotion mode needs max_resource"):
            pruner(mode="promotion")


# -- whole runs ---------------------------------------------------------------------------

EPOCHS = 9


class Curves:
    """An async objective that checkpoints every epoch and records the epochs it really trains."""

    def __init__(self, *, checkpoint: bool = True) -> None:
        self.checkpoint = checkpoint
        self.trained: dict[int, list[int]] = defaultdict(list)
        self.restored: dict[int, list[int]] = defaultdict(list)  # epoch restored from, per resume

    async def __call__(self, trial: hpt.Trial) -> float:
        first = 1
        if trial.should_restore:
            state = await trial.restore()
            first = int(state["epoch"]) + 1
            self.restored[trial.number].append(first - 1)
        value = math.inf
        for epoch in range(first, EPOCHS + 1):
            await anyio.sleep(0.0005 * (1 + (trial.number * 5 + epoch) % 3))
            self.trained[trial.number].append(epoch)
            value = trial.params["q"] + 1.0 / epoch
            if self.checkpoint:
                await trial.checkpoint({"epoch": epoch})
            await trial.report(value, step=epoch)
        return value


def tuner(objective: Any, pruner: Any, **kwargs: Any) -> hpt.Tuner:
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 5)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, SPACE, pruner=pruner, **kwargs)


async def test_a_whole_run_resumes_promoted_trials_from_their_checkpoints() -> None:
    objective = Curves()
    pruner = DecisionLog(ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion"))
    storage = hpt.MemoryStorage()
    starts: dict[int, int] = defaultdict(int)

    class Starts:
        @hpt.hookimpl
        def hpt_trial_started(self, event: hpt.TrialStarted) -> None:
            starts[event.number] += 1

    t = tuner(objective, pruner, storage=storage, study="s", concurrency=4, max_trials=18, plugins=[Starts()])
    with anyio.fail_after(HANG_GUARD):
        result = await t.run()
    states = {r.number: r.state for r in result.trials}
    assert len(states) == 18
    assert set(states.values()) <= {TrialState.COMPLETE, TrialState.PAUSED}
    assert result.reason == hpt.StopReason.MAX_TRIALS
    assert result.count(TrialState.COMPLETE) >= 1
    assert result.count(TrialState.PAUSED) >= 1
    assert t.study.n_counted == 18
    assert result.best is not None and result.best.state is TrialState.COMPLETE
    # Some trials were promoted after a pause, each exactly as often as it started again.
    promoted = pruner.promoted
    assert promoted
    for number in set(promoted):
        assert starts[number] == 1 + promoted.count(number)
        assert len(objective.restored[number]) == promoted.count(number)
    for record in result.trials:
        trained = objective.trained[record.number]
        # Every epoch trained once: a promoted trial went on from its checkpoint, never from zero.
        assert trained == list(range(1, len(trained) + 1))
        assert sorted(record.reports) == trained
        if record.state is TrialState.COMPLETE:
            assert trained[-1] == EPOCHS
            assert record.value == pytest.approx(record.params["q"] + 1.0 / EPOCHS)
        else:
            assert record.value == record.reports[max(record.reports)]
            # Paused at a rung (level 1 or 3), its checkpoint kept for a later resume.
            assert max(record.reports) in (1, 3)
            assert await storage.checkpoint("s", record.number) is not None
    # The study ran its promotions out: nothing paused qualifies any more.
    assert await pruner.promote(t.study) is None
    # Checkpoints of completed trials were dropped, except the best's.
    for record in result.trials:
        if record.state is TrialState.COMPLETE and record.number != result.best.number:
            assert await storage.checkpoint("s", record.number) is None
    # Far fewer epochs than full-budget training of every configuration.
    assert sum(len(v) for v in objective.trained.values()) < 18 * EPOCHS / 2


async def test_a_trial_paused_without_a_checkpoint_starts_over() -> None:
    objective = Curves(checkpoint=False)
    pruner = DecisionLog(ASHAPruner(min_resource=1, eta=3, max_resource=3, mode="promotion"))
    t = tuner(objective, pruner, max_trials=3)
    for q in (0.5, 0.6, 0.7):
        t.enqueue({"q": q})
    with anyio.fail_after(HANG_GUARD):
        result = await t.run()
    # Trial 0 paused at step 1; the third arrival made it the top of rung 0 and it was resumed.
    assert pruner.promoted == [0]
    assert not objective.restored  # should_restore stayed false: there was nothing to restore
    assert objective.trained[0] == [1, *range(1, EPOCHS + 1)]  # it started over from its first step
    assert result.trials[0].state is TrialState.COMPLETE
    assert sorted(result.trials[0].reports) == list(range(1, EPOCHS + 1))
    assert [r.state for r in result.trials[1:]] == [TrialState.PAUSED, TrialState.PAUSED]


async def test_paused_trials_persist_in_sqlite_and_a_resumed_study_promotes_them(tmp_path: Any) -> None:
    url = f"sqlite:///{tmp_path / 'promo.db'}"
    pruner = ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion")
    first = Curves()
    t1 = tuner(first, pruner, storage=url, study="p", max_trials=3)
    for q in (0.5, 0.6, 0.7):
        t1.enqueue({"q": q})
    with anyio.fail_after(HANG_GUARD):
        r1 = await t1.run()
    # Trial 0 was promoted at the third arrival, went on from epoch 1 and paused at rung 1 (level 3).
    assert [r.state for r in r1.trials] == [TrialState.PAUSED] * 3
    assert first.trained == {0: [1, 2, 3], 1: [1], 2: [1]}
    assert first.restored == {0: [1]}
    storage = hpt.SQLiteStorage(url)
    loaded = await storage.load("p")
    assert [(r.state, sorted(r.reports)) for r in loaded] == [
        (TrialState.PAUSED, [1, 2, 3]),
        (TrialState.PAUSED, [1]),
        (TrialState.PAUSED, [1]),
    ]
    assert loaded[1].value == pytest.approx(0.6 + 1.0)
    for number in range(3):
        assert await storage.checkpoint("p", number) is not None
    summary = await storage.summary("p")
    assert summary.counts == {"paused": 3}

    # Resumed with three worse configurations: rung 0 then holds six values, whose top 2 are
    # trials 0 and 1, so trial 1, paused in the first run, is promoted from its checkpoint.
    second = Curves()
    fresh = ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion")
    t2 = tuner(second, fresh, storage=url, study="p", max_trials=6)
    for q in (0.8, 0.9, 0.95):
        t2.enqueue({"q": q})
    with anyio.fail_after(HANG_GUARD):
        r2 = await t2.run()
    assert second.restored == {1: [1]}
    assert second.trained[1] == [2, 3]
    by_number = {r.number: r for r in r2.trials}
    assert by_number[1].state is TrialState.PAUSED
    assert sorted(by_number[1].reports) == [1, 2, 3]
    assert by_number[1].started == r1.trials[1].started  # the same trial, not a copy
    assert r2.count(TrialState.PAUSED) == 6
    assert fresh.waiting() == {n: (0, 1 if n in (0, 1) else 0) for n in range(6)}


async def test_stopping_mode_never_pauses() -> None:
    objective = Curves()
    t = tuner(objective, ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS), concurrency=3, max_trials=12)
    with anyio.fail_after(HANG_GUARD):
        result = await t.run()
    assert result.count(TrialState.PAUSED) == 0
    assert result.count(TrialState.PRUNED) > 0
    assert not objective.restored


async def test_hyperband_in_promotion_mode_pauses_and_promotes() -> None:
    objective = Curves()
    pruner = DecisionLog(HyperbandPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion"))
    t = tuner(objective, pruner, concurrency=3, max_trials=20)
    with anyio.fail_after(HANG_GUARD):
        result = await t.run()
    assert result.count(TrialState.PRUNED) == 0
    assert result.count(TrialState.PAUSED) >= 1
    assert pruner.promoted
    for trained in objective.trained.values():
        assert trained == list(range(1, len(trained) + 1))


async def test_ask_and_tell_resumes_a_paused_trial() -> None:
    t = tuner(Curves(), ASHAPruner(min_resource=1, eta=3, max_resource=3, mode="promotion"))
    paused = []
    for q in (0.5, 0.6, 0.7):
        t.enqueue({"q": q})
    for _ in range(3):
        trial = await t.ask()
        assert not trial.should_restore
        await trial.checkpoint({"epoch": 1})
        with pytest.raises(hpt.TrialPaused):
            await trial.report(trial.params["q"] + 1.0, step=1)
        record = await t.tell(trial, state="paused")
        assert record.state is TrialState.PAUSED and record.value == pytest.approx(trial.params["q"] + 1.0)
        paused.append(trial.number)
    trial = await t.ask()  # trial 0 is promoted before a new one is asked for
    assert trial.number == 0 and trial.should_restore
    assert (await trial.restore())["epoch"] == 1
    await trial.report(0.6, step=3)
    await t.tell(trial, 0.6)
    result = await t.close()
    assert [r.state for r in result.trials] == [TrialState.COMPLETE, TrialState.PAUSED, TrialState.PAUSED]


def sync_curves(trial: hpt.SyncTrial) -> float:
    """Curves' plain-function form: the epochs trained travel in the checkpoint and a user attribute."""
    first = 1
    trained: list[int] = []
    if trial.should_restore:
        state = trial.restore()
        first = int(state["epoch"]) + 1
        trained = [int(e) for e in state["trained"]]
    value = math.inf
    for epoch in range(first, EPOCHS + 1):
        trained.append(epoch)
        value = trial.params["q"] + 1.0 / epoch
        trial.checkpoint({"epoch": epoch, "trained": np.array(trained)})
        trial.set_user_attr("trained", list(trained))
        trial.report(value, step=epoch)
    return value


@pytest.mark.parametrize("executor", ["thread", "process"])
async def test_plain_objectives_pause_and_resume_in_threads_and_processes(executor: str) -> None:
    pruner = DecisionLog(ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion"))
    t = tuner(sync_curves, pruner, executor=executor, max_trials=6)
    for q in (0.5, 0.6, 0.7, 0.4, 0.8, 0.9):
        t.enqueue({"q": q})
    with anyio.fail_after(HANG_GUARD * 2):
        result = await t.run()
    # One at a time: trials 0 to 2 pause at rung 0, then trial 0 (its best) is resumed and pauses at
    # rung 1; trial 3 goes straight on to rung 1 and pauses; the last two pause at rung 0.
    assert pruner.promoted == [0]
    assert [r.state for r in result.trials] == [TrialState.PAUSED] * 6
    assert result.trials[0].user_attrs["trained"] == [1, 2, 3]
    for record in result.trials:
        # The epochs trained, carried through every pause: each once, in order, as reported.
        trained = record.user_attrs["trained"]
        assert trained == list(range(1, len(trained) + 1)) == sorted(record.reports)


async def test_a_resumed_trial_the_study_stops_goes_back_to_paused() -> None:
    hanging = anyio.Event()

    class Hangs(Curves):
        async def __call__(self, trial: hpt.Trial) -> float:
            if trial.should_restore:
                await trial.restore()
                hanging.set()
                await anyio.sleep_forever()  # until the study is cancelled
            return await super().__call__(trial)

    storage = hpt.MemoryStorage()
    pruner = ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion")
    t = tuner(Hangs(), pruner, storage=storage, study="h", max_trials=3)
    for q in (0.5, 0.6, 0.7):
        t.enqueue({"q": q})
    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(t.run)
            await hanging.wait()
            tg.cancel_scope.cancel()
    # Trial 0 was resumed when it ranked first of three, and stopped there: it waits again.
    records = await storage.load("h")
    assert [r.state for r in records] == [TrialState.PAUSED] * 3
    assert records[0].value == pytest.approx(1.5)
    assert await storage.checkpoint("h", 0) is not None
    assert pruner.waiting() == {0: (0, 0), 1: (0, 0), 2: (0, 0)}
    assert "3 paused" in hpt.ConsoleLogger().status(t.study)


async def test_two_tuners_sharing_a_study_never_resume_one_trial_twice() -> None:
    objective = Curves()
    storage = hpt.MemoryStorage()
    logs = [DecisionLog(ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion")) for _ in range(2)]
    tuners = [
        tuner(objective, log, storage=storage, study="shared", concurrency=2, max_trials=16, seed=s)
        for s, log in enumerate(logs)
    ]
    results: list[hpt.StudyResult] = []

    async def one(t: hpt.Tuner) -> None:
        results.append(await t.run())

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            for t in tuners:
                tg.start_soon(one, t)
    records = {r.number: r for r in await storage.load("shared")}
    assert {r.state for r in records.values()} <= {TrialState.COMPLETE, TrialState.PAUSED}
    promoted = logs[0].promoted + logs[1].promoted
    assert promoted
    for number, trained in objective.trained.items():
        # Never two runs of one trial at once, nor one epoch trained twice.
        assert trained == list(range(1, len(trained) + 1)), number
        assert sorted(records[number].reports) == trained


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_storage_lets_one_session_claim_a_paused_trial(kind: str, tmp_path: Any) -> None:
    storage = hpt.MemoryStorage() if kind == "memory" else hpt.SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}")
    space = hpt.Space(SPACE)
    a = await storage.open("c", direction="minimize", space=space)
    b = await storage.open("c", direction="minimize", space=space)
    try:
        number = await a.reserve()
        params = MappingProxyType({"q": 0.25})
        await a.trial_created(TrialRecord(number, TrialState.RUNNING, params, started=1.0))
        await a.trial_reported(number, 1, 0.75)
        reports = MappingProxyType({1: 0.75})
        running = TrialRecord(number, TrialState.RUNNING, params, reports=reports, started=1.0)
        # Not paused yet: nobody can claim it.
        assert not await b.trial_resumed(running)
        paused = TrialRecord(number, TrialState.PAUSED, params, value=0.75, reports=reports, started=1.0, ended=2.0)
        await a.trial_ended(paused)
        assert [r.state for r in await storage.load("c")] == [TrialState.PAUSED]
        assert await b.trial_resumed(running)
        assert not await a.trial_resumed(running)
        [stored] = await storage.load("c")
        assert stored.state is TrialState.RUNNING and stored.value is None and stored.ended is None
        assert dict(stored.reports) == {1: 0.75} and stored.started == 1.0
    finally:
        await a.close()
        await b.close()


async def test_promotion_decisions_replay_identically_in_arrival_order() -> None:
    from hpt_async.pruners._replay import replay

    log = DecisionLog(ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion"))
    t = tuner(Curves(), log, concurrency=6, max_trials=24)
    with anyio.fail_after(HANG_GUARD):
        await t.run()
    recorded = log.decisions()
    assert any(r.decision is Decision.PAUSE for r in recorded)
    fresh = ASHAPruner(min_resource=1, eta=3, max_resource=EPOCHS, mode="promotion")
    replayed = await replay(fresh, log.events, "minimize")
    assert [r.decision for r in replayed] == [r.decision for r in recorded]


async def test_closing_with_a_resumed_trial_open_pauses_it_again_with_its_checkpoint() -> None:
    storage = hpt.MemoryStorage()
    pruner = ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion")
    t = hpt.Tuner(
        Curves(),
        {"q": hpt.Float(0.0, 1.0)},
        pruner=pruner,
        storage=storage,
        study="c",
        loggers=[],
        seed=1,
        strategy="random",
    )
    for q in (0.5, 0.6, 0.7):
        t.enqueue({"q": q})
    for _ in range(3):
        trial = await t.ask()
        await trial.checkpoint({"epoch": 1})
        with pytest.raises(hpt.TrialPaused):
            await trial.report(trial.params["q"], step=1)
        await t.tell(trial, state="paused")
    trial = await t.ask()
    assert trial.number == 0 and trial.should_restore
    result = await t.close()  # trial 0 is still open: it waits again rather than being cancelled
    assert [r.state for r in result.trials] == [TrialState.PAUSED] * 3
    assert await storage.checkpoint("c", 0) is not None


async def test_tell_paused_needs_a_pruner_in_promotion_mode() -> None:
    for pruner in (None, ASHAPruner(max_resource=9)):
        t = hpt.Tuner(
            lambda trial: 0.0, {"q": hpt.Float(0.0, 1.0)}, pruner=pruner, loggers=[], seed=1, strategy="random"
        )
        trial = await t.ask()
        with pytest.raises(ValueError, match="promotion mode"):
            await t.tell(trial, state="paused")
        await t.close()


async def test_tuners_sharing_a_study_keep_the_checkpoints_of_each_others_paused_and_resumed_trials() -> None:
    storage = hpt.MemoryStorage()
    missing_on_restore: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        first = 1
        if trial.should_restore:
            state = await trial.restore()
            if state is None:  # the checkpoint was dropped by the other tuner
                missing_on_restore.append(trial.number)
                state = {"epoch": max(trial.reports)}
            first = int(state["epoch"]) + 1
        value = math.inf
        for epoch in range(first, EPOCHS + 1):
            await anyio.sleep(0.02)
            value = trial.params["q"] + 1 / epoch
            await trial.checkpoint({"epoch": epoch})
            await trial.report(value, step=epoch)
        return value

    def make(seed: int) -> hpt.Tuner:
        pruner = ASHAPruner(max_resource=EPOCHS, mode="promotion")
        return hpt.Tuner(objective, {"q": hpt.Float(0.0, 1.0)}, pruner=pruner, storage=storage, study="x",
                         concurrency=2, max_trials=30, loggers=[], seed=seed, strategy="random")  # fmt: skip

    with anyio.fail_after(120):
        async with anyio.create_task_group() as tg:
            tg.start_soon(make(0).run)
            tg.start_soon(make(1).run)
    records = await storage.load("x")
    assert missing_on_restore == []
    paused = [r.number for r in records if r.state is TrialState.PAUSED]
    assert paused and all([await storage.checkpoint("x", n) is not None for n in paused])


async def _paused_after(session: Any, params: Any, reports: dict[int, float], checkpoint: bytes | None = None) -> int:
    """A new trial of ``session`` that reported ``reports`` (and saved ``checkpoint``), then paused."""
    number = await session.reserve()
    await session.trial_created(TrialRecord(number, TrialState.RUNNING, params, started=1.0))
    for step, value in reports.items():
        await session.trial_reported(number, step, value)
    if checkpoint is not None:
        await session.put_checkpoint(number, checkpoint)
    last = reports[max(reports)]
    paused = TrialRecord(
        number, TrialState.PAUSED, params, value=last, reports=MappingProxyType(reports), started=1.0, ended=2.0
    )
    await session.trial_ended(paused)
    return number


@pytest.mark.parametrize("kind", ["memory", "sqlite"])
async def test_a_trial_resumed_to_start_over_keeps_only_its_new_reports(kind: str, tmp_path: Any) -> None:
    storage = hpt.MemoryStorage() if kind == "memory" else hpt.SQLiteStorage(f"sqlite:///{tmp_path / 'o.db'}")
    session = await storage.open("o", direction="minimize", space=hpt.Space(SPACE))
    try:
        params = MappingProxyType({"q": 0.25})
        number = await _paused_after(session, params, {1: 0.75, 2: 0.5, 3: 0.25})
        # Resumed without a checkpoint: it starts over, with no reports, and fails at its first step.
        assert await session.trial_resumed(TrialRecord(number, TrialState.RUNNING, params, started=1.0))
        [stored] = await storage.load("o")
        assert dict(stored.reports) == {}
        await session.trial_reported(number, 1, 0.9)
        failed = TrialRecord(
            number, TrialState.FAILED, params, reports=MappingProxyType({1: 0.9}), started=1.0, ended=3.0
        )
        await session.trial_ended(failed)
        [stored] = await storage.load("o")
        assert stored.state is TrialState.FAILED
        assert dict(stored.reports) == {1: 0.9}
    finally:
        await session.close()


async def test_a_stale_record_resumed_from_a_checkpoint_keeps_the_newer_stored_reports(tmp_path: Any) -> None:
    storage = hpt.SQLiteStorage(f"sqlite:///{tmp_path / 's.db'}")
    space = hpt.Space(SPACE)
    a = await storage.open("s", direction="minimize", space=space)
    b = await storage.open("s", direction="minimize", space=space)
    try:
        params = MappingProxyType({"q": 0.25})
        early = {1: 0.9, 2: 0.8, 3: 0.7}
        number = await _paused_after(a, params, early, checkpoint=b"at3")
        stale = MappingProxyType(early)
        # Session b resumes it, takes it to step 6 and pauses it again; session a has not looked since.
        assert await b.trial_resumed(TrialRecord(number, TrialState.RUNNING, params, reports=stale, started=1.0))
        later = {**early, 4: 0.6, 5: 0.5, 6: 0.4}
        for step in (4, 5, 6):
            await b.trial_reported(number, step, later[step])
        await b.put_checkpoint(number, b"at6")
        newer = MappingProxyType(later)
        await b.trial_ended(TrialRecord(number, TrialState.PAUSED, params, 0.4, newer, started=1.0, ended=3.0))
        # Session a resumes it from the (newer) checkpoint with its stale record.
        assert await a.trial_resumed(TrialRecord(number, TrialState.RUNNING, params, reports=stale, started=1.0))
        [stored] = await storage.load("s")
        assert dict(stored.reports) == later
    finally:
        await a.close()
        await b.close()
