"""Several tuners on one study: shared numbers, shared results, and recovery of LOST trials."""

from __future__ import annotations

import anyio
import pytest

import hpt_async as hpt
from hpt_async.contracts.storage import StudySession

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}


class Spy(hpt.RandomStrategy):
    """Random search that remembers every record it is told."""

    def __init__(self) -> None:
        self.told: list[hpt.TrialRecord] = []

    async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
        self.told.append(record)


async def test_two_tuners_on_one_memory_study_share_numbers_and_results() -> None:
    storage = hpt.MemoryStorage()

    def make_objective(name: str):
        async def objective(trial: hpt.Trial) -> float:
            trial.set_user_attr("tuner", name)
            await anyio.sleep(0.02)
            return trial.params["x"]

        return objective

    spies = {"a": Spy(), "b": Spy()}
    tuners = {
        name: hpt.Tuner(
            make_objective(name),
            SPACE,
            storage=storage,
            study="shared",
            strategy=spy,
            concurrency=2,
            max_trials=40,
            loggers=[],
            seed=1,
        )
        for name, spy in spies.items()
    }

    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            for tuner in tuners.values():
                tg.start_soon(tuner.run)

    stored = await storage.load("shared")
    numbers = [r.number for r in stored]
    assert len(numbers) == len(set(numbers)), "a trial number was used twice"
    by_tuner = {name: [r for r in stored if r.user_attrs.get("tuner") == name] for name in tuners}
    assert all(len(records) >= 5 for records in by_tuner.values()), "both tuners must have run trials"
    # max_trials counts the whole study; each tuner learns of the other's trials within one sync
    # interval (10 ms), so the overshoot is bounded by the trials started in that lag.
    counted = sum(r.state.counted for r in stored)
    assert 40 <= counted <= 40 + 2 * 2 * 2
    for name, spy in spies.items():
        other = "b" if name == "a" else "a"
        told_foreign = [r for r in spy.told if r.user_attrs.get("tuner") == other]
        assert told_foreign, f"tuner {name}'s strategy never heard of tuner {other}'s trials"
        assert len({r.number for r in spy.told}) == len(spy.told), "a record was told twice"
        view = tuners[name].study.trials
        assert {r.number for r in told_foreign} <= set(view)


class LosingSession(StudySession):
    """Wraps a memory session; its first claim_lost reports one dead trial of another tuner."""

    def __init__(self, inner: StudySession, lost: hpt.TrialRecord) -> None:
        super().__init__(inner.history)
        self._inner = inner
        self._lost = [lost]
        self.sync_interval = 0.01

    async def reserve(self) -> int:
        return await self._inner.reserve()

    async def trial_created(self, record: hpt.TrialRecord) -> None:
        await self._inner.trial_created(record)

    async def trial_reported(self, number: int, step: int, value: float) -> None:
        await self._inner.trial_reported(number, step, value)

    async def trial_ended(self, record: hpt.TrialRecord) -> None:
        await self._inner.trial_ended(record)

    async def claim_lost(self) -> list[hpt.TrialRecord]:
        lost, self._lost = self._lost, []
        return lost


class LosingStorage(hpt.MemoryStorage):
    def __init__(self, lost: hpt.TrialRecord) -> None:
        super().__init__()
        self.lost = lost

    async def open(self, study: str, *, direction: str, space: hpt.Space) -> StudySession:
        return LosingSession(await super().open(study, direction=direction, space=space), self.lost)


@pytest.mark.parametrize("retry", [True, False])
async def test_a_lost_trial_is_run_again_with_retry_of(retry: bool) -> None:
    dead = hpt.TrialRecord(number=99, state=hpt.TrialState.LOST, params={"x": 0.25})
    spy = Spy()
    seen: list[hpt.TrialRecord] = []

    async def objective(trial: hpt.Trial) -> float:
        seen.append(trial.snapshot())
        return trial.params["x"]

    tuner = hpt.Tuner(
        objective, SPACE, storage=LosingStorage(dead), strategy=spy, max_trials=3, loggers=[], seed=0, retry_lost=retry
    )
    result = await tuner.run()
    assert result.trials[0].number == 0
    # The LOST record is in the view at once; with retry on, its configuration runs first.
    assert tuner.study.trials[99].state is hpt.TrialState.LOST
    retried = [r for r in result.trials if r.retry_of == 99]
    if retry:
        assert len(retried) == 1
        assert dict(retried[0].params) == {"x": 0.25}
        assert retried[0].state is hpt.TrialState.COMPLETE
        assert seen[0].retry_of == 99
    else:
        assert retried == []
    # LOST trials do not count toward max_trials.
    assert result.count(hpt.TrialState.COMPLETE) == 3


@pytest.mark.parametrize("pruner", ["median", "asha"])
async def test_a_pruner_hears_the_trials_of_another_tuner(pruner: str) -> None:
    """Tuner B's pruner must take in tuner A's reports, which it never decided on."""
    storage = hpt.MemoryStorage()

    async def curve(trial: hpt.Trial) -> float:
        for step in range(9):
            await trial.report(trial.params["x"] + 1.0 / (step + 1), step=step)
        return trial.params["x"]

    first = hpt.Tuner(
        curve, SPACE, storage=storage, study="s", loggers=[], seed=0, max_trials=8, concurrency=4, strategy="random"
    )
    seen: list[int] = []

    class Told(hpt.MedianPruner if pruner == "median" else hpt.ASHAPruner):  # type: ignore[misc]
        async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
            seen.append(record.number)
            await super().tell(study, record)

    kwargs = {"min_trials": 1} if pruner == "median" else {"min_resource": 1, "eta": 2}
    watcher = Told(**kwargs)

    async def idle(trial: hpt.Trial) -> float:
        await anyio.sleep(0.3)  # runs while the first tuner works, so its trials arrive by refresh
        return 1.0

    second = hpt.Tuner(
        idle, SPACE, storage=storage, study="s", pruner=watcher, loggers=[], seed=1, max_trials=9, strategy="random"
    )
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(second.run)
            await anyio.sleep(0.05)
            tg.start_soon(first.run)
    foreign = [n for n in seen if second.study.trials[n].reports]
    assert len(foreign) >= 4, seen
    if pruner == "median":
        # The median at step 0 now reflects the other tuner's trials.
        assert watcher.median(0) is not None
    else:
        assert watcher.rungs()  # the other tuner's reports filled the rungs
