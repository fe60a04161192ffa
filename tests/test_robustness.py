"""Failure and cancellation paths: nothing left RUNNING, nothing announced half-way, nothing left open."""

from __future__ import annotations

from typing import Any

import anyio
import pytest

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0, 1)}


class Closing(hpt.MemoryStorage):
    """A memory storage that records when its sessions close, and can fail on chosen calls."""

    def __init__(self, fail_created_at: int | None = None) -> None:
        super().__init__()
        self.closed = 0
        self.fail_created_at = fail_created_at

    async def open(self, study: str, *, direction: str, space: hpt.Space) -> Any:
        session = await super().open(study, direction=direction, space=space)
        storage = self
        created = session.trial_created

        async def trial_created(record: hpt.TrialRecord) -> None:
            if record.number == storage.fail_created_at:
                raise OSError("disk full")
            await created(record)

        async def close() -> None:
            storage.closed += 1

        session.trial_created = trial_created
        session.close = close
        return session


async def test_a_trial_that_storage_failed_to_persist_is_not_left_running() -> None:
    storage = Closing(fail_created_at=1)

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.01)
        return 0.0

    tuner = hpt.Tuner(objective, SPACE, storage=storage, loggers=[], max_trials=5, seed=0, strategy="random")
    with pytest.raises(hpt.StudyError, match="failed to persist trial 1") as info:
        await tuner.run()
    states = {t.number: t.state for t in info.value.result.trials}  # type: ignore[union-attr]
    assert hpt.TrialState.RUNNING not in states.values()
    assert states[1] is hpt.TrialState.CANCELLED
    assert not tuner.study.running
    assert storage.closed == 1


async def test_async_end_hooks_finish_for_the_trial_that_stops_the_study() -> None:
    done: list[int] = []
    called: list[int] = []

    class Sink:
        @hpt.hookimpl
        async def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            called.append(event.number)
            await anyio.sleep(0)  # e.g. a request to a tracking server
            done.append(event.number)

    async def objective(trial: hpt.Trial) -> float:
        # Trials after the one that reaches the target are still sleeping when it does, however slow the machine.
        await anyio.sleep(0.01 * (trial.number + 1) if trial.number <= 2 else 30)
        return 0.0 if trial.number == 2 else 1.0

    tuner = hpt.Tuner(
        objective, SPACE, loggers=[], plugins=[Sink()], target=0.0, concurrency=4, seed=1, strategy="random"
    )
    with anyio.fail_after(20):
        result = await tuner.run()
    assert result.reason == "target"
    assert sorted(called) == sorted(done) == [t.number for t in result.trials]
    assert result.count(hpt.TrialState.CANCELLED) >= 1  # those ended by the stop were announced whole too


async def test_a_configuration_freed_by_a_cancelled_trial_is_run_by_a_waiting_tuner() -> None:
    storage = hpt.MemoryStorage()
    space = {"x": hpt.Choice(["a", "b", "c"])}

    async def slow(trial: hpt.Trial) -> float:
        await anyio.sleep(10)
        return 1.0

    async def fast(trial: hpt.Trial) -> float:
        await anyio.sleep(0.01)
        return 1.0

    first = hpt.Tuner(slow, space, strategy="grid", storage=storage, study="s", loggers=[], timeout=0.3)
    second = hpt.Tuner(fast, space, strategy="grid", storage=storage, study="s", loggers=[])
    with anyio.fail_after(20):
        async with anyio.create_task_group() as tg:
            tg.start_soon(first.run)
            await anyio.sleep(0.05)
            tg.start_soon(second.run)
    records = await storage.load("s")
    complete = sorted(r.params["x"] for r in records if r.state is hpt.TrialState.COMPLETE)
    assert complete == ["a", "b", "c"]  # the point the first tuner held is not lost when it times out


async def test_an_executor_that_fails_to_close_is_named_and_the_session_still_closes() -> None:
    class Leaky(hpt.AsyncExecutor):
        async def close(self) -> None:
            raise OSError("pool shutdown failed")

    storage = Closing()

    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    tuner = hpt.Tuner(objective, SPACE, executor=Leaky(), storage=storage, loggers=[], max_trials=2, strategy="random")
    with pytest.raises(hpt.StudyError, match="executor 'async' failed to close") as info:
        await tuner.run()
    assert info.value.result is not None and len(info.value.result.trials) == 2
    assert storage.closed == 1


async def test_cancelling_a_run_while_it_opens_closes_the_session() -> None:
    storage = Closing()

    class SlowStart:
        @hpt.hookimpl
        async def hpt_study_started(self) -> None:
            await anyio.sleep(5)

    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    tuner = hpt.Tuner(
        objective, SPACE, storage=storage, loggers=[], plugins=[SlowStart()], max_trials=1, strategy="random"
    )
    with anyio.move_on_after(0.05):
        await tuner.run()
    assert storage.closed == 1
    # The tuner is not left half-open: a new run opens (and announces) the study again.
    with anyio.fail_after(10), anyio.move_on_after(0.05):
        await tuner.run()
    assert storage.closed == 2


async def test_a_study_resumed_past_max_failures_fails_at_once() -> None:
    storage = hpt.MemoryStorage()
    calls = 0

    async def broken(trial: hpt.Trial) -> float:
        nonlocal calls
        calls += 1
        raise RuntimeError("boom")

    with pytest.raises(hpt.StudyFailed):
        await hpt.Tuner(broken, SPACE, storage=storage, study="s", loggers=[], max_failures=3, strategy="random").run()
    assert calls == 3
    with pytest.raises(hpt.StudyFailed) as info:
        await hpt.Tuner(broken, SPACE, storage=storage, study="s", loggers=[], max_failures=3, strategy="random").run()
    assert calls == 3  # no trial ran: the study had already failed 3 times
    assert info.value.result.count(hpt.TrialState.FAILED) == 3


def test_a_thread_report_in_flight_at_trial_timeout_raises_trial_cancelled() -> None:
    seen: list[str] = []

    class SlowReports(hpt.MemoryStorage):
        async def open(self, study: str, *, direction: str, space: hpt.Space) -> Any:
            session = await super().open(study, direction=direction, space=space)

            async def trial_reported(number: int, step: int, value: float) -> None:
                await anyio.sleep(0.05)  # a storage doing I/O

            session.trial_reported = trial_reported
            return session

    def objective(trial: hpt.SyncTrial) -> float:
        try:
            for i in range(100):
                trial.report(float(i), step=i)
        except hpt.TrialCancelled:
            seen.append("cancelled")
            raise
        return 1.0

    tuner = hpt.Tuner(
        objective, SPACE, storage=SlowReports(), loggers=[], trial_timeout=0.12, max_trials=1, strategy="random"
    )

    async def main() -> hpt.StudyResult:
        result = await tuner.run()
        await anyio.sleep(0.2)  # let the abandoned thread reach its next report
        return result

    result = anyio.run(main)
    assert result.trials[0].state is hpt.TrialState.FAILED
    assert seen == ["cancelled"]


async def test_ask_and_tell_report_a_failed_component_with_the_study_so_far() -> None:
    class Forgetful(hpt.RandomStrategy):
        async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
            if record.number == 1:
                raise RuntimeError("lost my notes")

    tuner = hpt.Tuner(lambda t: 0.0, SPACE, strategy=Forgetful(), loggers=[], seed=0)
    first, second = await tuner.ask(), await tuner.ask()
    await tuner.tell(first, 0.5)
    with pytest.raises(hpt.StudyError, match="lost my notes") as info:
        await tuner.tell(second, 0.25)
    assert info.value.result is not None
    assert [(t.number, t.state) for t in info.value.result.trials] == [
        (0, hpt.TrialState.COMPLETE),
        (1, hpt.TrialState.COMPLETE),
    ]
    with pytest.raises(hpt.StudyError, match="lost my notes"):
        await tuner.ask()  # no new trial after a fatal error
    assert len(tuner.study.trials) == 2
