"""Ask-and-tell: the user runs the loop, the tuner keeps the study."""

from __future__ import annotations

import math
from typing import Any

import anyio
import pytest
from common import StopAtStep

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(-2.0, 2.0), "opt": hpt.Choice(["adam", "sgd"])}


async def _unused_objective(trial: hpt.Trial) -> float:
    raise AssertionError("ask-and-tell never calls the objective")


def make(**kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE for an ask-and-tell loop."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(_unused_objective, kwargs.pop("space", SPACE), **kwargs)


async def test_ask_then_tell_completes_trials_and_close_returns_the_result() -> None:
    tuner = make(direction="minimize")
    with anyio.fail_after(10):
        for _ in range(5):
            trial = await tuner.ask()
            assert isinstance(trial, hpt.Trial)
            assert hpt.Space(SPACE).validate(trial.params) == trial.params
            assert trial.number in tuner.study.running
            record = await tuner.tell(trial, trial.params["x"] ** 2)
            assert record.state is hpt.TrialState.COMPLETE
            assert record.value == trial.params["x"] ** 2
            assert trial.number not in tuner.study.running
        result = await tuner.close()
    assert [t.number for t in result.trials] == [0, 1, 2, 3, 4]
    assert result.count("complete") == 5
    assert result.best is not None
    assert result.best.value == min(t.value for t in result.trials if t.value is not None)
    assert tuner.study.best is not None and tuner.study.best.number == result.best.number


async def test_several_trials_may_be_open_at_once() -> None:
    tuner = make()
    trials = [await tuner.ask() for _ in range(3)]
    assert [t.number for t in trials] == [0, 1, 2]
    assert sorted(tuner.study.running) == [0, 1, 2]
    for trial in reversed(trials):
        await tuner.tell(trial, float(trial.number))
    result = await tuner.close()
    assert result.best is not None and result.best.number == 0


async def test_asked_params_follow_the_seed() -> None:
    async def params(seed: int) -> list[dict[str, Any]]:
        tuner = make(seed=seed)
        out = []
        for _ in range(4):
            trial = await tuner.ask()
            out.append(dict(trial.params))
            await tuner.tell(trial, 0.0)
        await tuner.close()
        return out

    assert await params(11) == await params(11)
    assert await params(11) != await params(12)


@pytest.mark.parametrize("state", ["pruned", hpt.TrialState.PRUNED], ids=["str", "enum"])
async def test_tell_pruned_keeps_the_last_reported_value(state: Any) -> None:
    tuner = make()
    trial = await tuner.ask()
    await trial.report(3.0, step=0)
    await trial.report(2.0, step=1)
    record = await tuner.tell(trial, state=state)
    assert record.state is hpt.TrialState.PRUNED
    assert record.value == 2.0
    assert dict(record.reports) == {0: 3.0, 1: 2.0}
    await tuner.close()


async def test_tell_failed_keeps_the_error() -> None:
    tuner = make()
    trial = await tuner.ask()
    record = await tuner.tell(trial, state="failed", error="out of memory")
    assert record.state is hpt.TrialState.FAILED
    assert record.value is None
    assert record.error == "out of memory"
    result = await tuner.close()
    assert result.count("failed") == 1
    assert result.best is None


@pytest.mark.parametrize("value", [math.nan, math.inf, None, "0.3"], ids=["nan", "inf", "none", "str"])
async def test_telling_a_non_finite_or_missing_value_fails_the_trial(value: Any) -> None:
    tuner = make()
    trial = await tuner.ask()
    record = await tuner.tell(trial, value)
    assert record.state is hpt.TrialState.FAILED
    assert record.value is None
    await tuner.close()


async def test_report_and_pruner_in_a_user_loop() -> None:
    tuner = make(pruner=StopAtStep(2))
    trial = await tuner.ask()
    pruned_at = None
    for step in range(10):
        try:
            await trial.report(1.0 / (step + 1), step=step)
        except hpt.TrialPruned:
            pruned_at = step
            break
    assert pruned_at == 2
    record = await tuner.tell(trial, state="pruned")
    assert record.state is hpt.TrialState.PRUNED
    assert record.value == pytest.approx(1.0 / 3)
    await tuner.close()


async def test_grid_raises_strategy_exhausted_when_done() -> None:
    tuner = make(space={"opt": hpt.Choice(["adam", "sgd", "rmsprop"])}, strategy="grid")
    seen = []
    for _ in range(3):
        trial = await tuner.ask()
        seen.append(trial.params["opt"])
    assert sorted(seen) == ["adam", "rmsprop", "sgd"]
    with pytest.raises(hpt.StrategyExhausted):
        await tuner.ask()
    result = await tuner.close()
    assert result.count("cancelled") == 3


async def test_close_records_open_trials_cancelled() -> None:
    storage = hpt.MemoryStorage()
    ended: list[hpt.TrialRecord] = []

    class Listener:
        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            ended.append(event.record)

    tuner = make(storage=storage, study="at", plugins=[Listener()])
    done = await tuner.ask()
    await tuner.ask()
    await tuner.tell(done, 1.0)
    result = await tuner.close()
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE, hpt.TrialState.CANCELLED]
    assert [t.state for t in await storage.load("at")] == [hpt.TrialState.COMPLETE, hpt.TrialState.CANCELLED]
    assert [(r.number, r.state) for r in ended] == [(0, hpt.TrialState.COMPLETE), (1, hpt.TrialState.CANCELLED)]


async def test_ask_and_tell_emit_lifecycle_events() -> None:
    log: list[tuple[str, Any]] = []

    class Listener:
        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            log.append(("study_started", None))

        @hpt.hookimpl
        def hpt_trial_created(self, event: hpt.TrialCreated) -> None:
            log.append(("created", event.number))

        @hpt.hookimpl
        def hpt_trial_reported(self, event: hpt.TrialReported) -> None:
            log.append(("reported", (event.number, event.step)))

        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            log.append(("ended", event.number))

        @hpt.hookimpl
        def hpt_study_ended(self) -> None:
            log.append(("study_ended", None))

    tuner = make(plugins=[Listener()])
    trial = await tuner.ask()
    await trial.report(0.5, step=0)
    await tuner.tell(trial, 0.5)
    await tuner.close()
    assert log == [("study_started", None), ("created", 0), ("reported", (0, 0)), ("ended", 0), ("study_ended", None)]


async def test_the_strategy_is_told_and_asked_through_ask_and_tell() -> None:
    told: list[int] = []

    class Learning(hpt.RandomStrategy):
        async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
            told.append(record.number)

    tuner = make(strategy=Learning())
    for _ in range(3):
        trial = await tuner.ask()
        await tuner.tell(trial, 1.0)
    await tuner.close()
    assert told == [0, 1, 2]


async def test_enqueued_configurations_come_first_from_ask() -> None:
    tuner = make()
    tuner.enqueue({"x": 0.5, "opt": "sgd"})
    tuner.enqueue({"opt": "adam"})
    first = await tuner.ask()
    second = await tuner.ask()
    assert first.params == {"x": 0.5, "opt": "sgd"}
    assert second.params["opt"] == "adam" and -2.0 <= second.params["x"] <= 2.0
    await tuner.close()


async def test_tell_rejects_what_it_cannot_end() -> None:
    tuner = make()
    trial = await tuner.ask()
    with pytest.raises(ValueError):
        await tuner.tell(trial, state="running")
    await tuner.tell(trial, 1.0)
    with pytest.raises(ValueError):
        await tuner.tell(trial, 2.0)  # already ended
    with pytest.raises(TypeError):
        await tuner.tell({"x": 0.0}, 1.0)  # type: ignore[arg-type]
    result = await tuner.close()
    assert len(result.trials) == 1


async def test_tell_rejects_a_trial_of_another_tuner_even_with_a_running_number() -> None:
    tuner = make()
    mine = await tuner.ask()
    other = make()
    foreign = await other.ask()
    assert foreign.number == mine.number
    with pytest.raises(ValueError):
        await tuner.tell(foreign, 1.0)
    assert mine.number in tuner.study.running
    await tuner.tell(mine, 2.0)
    assert tuner.study.trials[mine.number].value == 2.0
    await other.close()
    await tuner.close()


async def test_reporting_after_tell_raises_trial_cancelled() -> None:
    tuner = make()
    trial = await tuner.ask()
    await tuner.tell(trial, 1.0)
    with pytest.raises(hpt.TrialCancelled):
        await trial.report(1.0, step=0)
    await tuner.close()


async def test_a_strategy_whose_ask_raises_gives_study_error() -> None:
    class Broken(hpt.RandomStrategy):
        name = "broken-strategy"

        async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
            raise RuntimeError("cannot think")

    tuner = make(strategy=Broken())
    with pytest.raises(hpt.StudyError, match="broken-strategy"):
        await tuner.ask()


async def test_bayes_under_a_small_budget_does_not_cap_an_ask_and_tell_loop() -> None:
    # Under run() these settings cap bayes at 10 // 5 = 2 running trials; a loop of the user's own asks
    # all of its trials before telling any, so the tuner must not wait for a result there.
    from hpt_async.strategies.bayes import BayesStrategy

    strategy = BayesStrategy()
    tuner = hpt.Tuner(None, {"x": hpt.Float(-2.0, 2.0)}, strategy=strategy, max_trials=10, concurrency=4,
                      seed=1, loggers=[])  # fmt: skip
    with anyio.fail_after(60):  # a guard against a hang, not a timing assertion
        trials = [await tuner.ask() for _ in range(4)]
    assert len({t.number for t in trials}) == 4 and strategy.capped_waits == 0
    assert tuner.study.concurrency is None
    for t in trials:
        await tuner.tell(t, t.params["x"] ** 2)
    result = await tuner.close()
    assert len(result.trials) == 4
