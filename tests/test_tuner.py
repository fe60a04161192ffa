"""The Tuner's behaviour: public contract, concurrency, stop conditions, failures, pruning, seeds."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

import anyio
import numpy as np
import pytest
from common import StopAtStep

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {
    "lr": hpt.Float(1e-4, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "optimizer": hpt.Choice(["adam", "sgd"]),
}

# Generous bound on any single run: only reached when the tuner hangs.
HANG_GUARD = 10.0


def make(objective: Callable[..., Any], **kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE unless told otherwise."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, kwargs.pop("space", SPACE), **kwargs)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def states(result: hpt.StudyResult) -> dict[int, hpt.TrialState]:
    """Trial number -> final state."""
    return {t.number: t.state for t in result.trials}


class RecordingStrategy(hpt.RandomStrategy):
    """Random search that remembers every ask and every told record."""

    def __init__(self) -> None:
        self.asked: list[int] = []
        self.told: list[hpt.TrialRecord] = []

    async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
        self.asked.append(number)
        return await super().ask(study, number)

    async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
        self.told.append(record)


# -- the public contract -------------------------------------------------------


def test_public_names_exist() -> None:
    for name in (
        "Space",
        "Float",
        "Int",
        "Choice",
        "Tuner",
        "Trial",
        "TrialPruned",
        "TrialState",
        "StudyFailed",
        "StudyError",
        "TrialCancelled",
        "StrategyExhausted",
        "PluginNotFound",
        "Pruner",
        "Decision",
        "Strategy",
        "MemoryStorage",
        "ConsoleLogger",
        "SyncTrial",
        "hookimpl",
        "SpaceError",
    ):
        assert hasattr(hpt, name), name
    assert issubclass(hpt.TrialPruned, Exception)
    states = {"RUNNING", "COMPLETE", "PRUNED", "FAILED", "CANCELLED", "LOST", "PAUSED"}
    assert {s.name for s in hpt.TrialState} == states


async def test_run_returns_best_and_trials_through_the_trial_api() -> None:
    seen: list[tuple[type, int, dict[str, Any]]] = []

    async def objective(trial: hpt.Trial) -> float:
        seen.append((type(trial), trial.number, dict(trial.params)))
        trial.set_user_attr("double", trial.number * 2)
        assert trial.user_attrs == {"double": trial.number * 2}
        loss = 0.0
        for epoch in range(3):
            loss = trial.params["lr"] * trial.params["layers"] + epoch
            await trial.report(loss, step=epoch)
        return loss

    space = hpt.Space(SPACE)
    result = await run(make(objective, space=space, direction="minimize", max_trials=6, concurrency=2))

    assert isinstance(result, hpt.StudyResult)
    assert [t.number for t in result.trials] == list(range(6))
    assert all(t.state is hpt.TrialState.COMPLETE for t in result.trials)
    assert all(cls is hpt.Trial for cls, _, _ in seen)
    assert sorted(n for _, n, _ in seen) == list(range(6))
    for _, number, params in seen:
        record = result.trials[number]
        assert dict(record.params) == params
        assert space.validate(params) == params
        assert dict(record.user_attrs) == {"double": number * 2}
        assert sorted(record.reports) == [0, 1, 2]
        assert record.value == record.reports[2]
    values = [t.value for t in result.trials]
    best = result.best
    assert best is not None
    assert best.state is hpt.TrialState.COMPLETE
    assert best.value == min(values)
    assert best is result.trials[best.number]
    assert dict(best.params) == dict(result.trials[best.number].params)
    assert result.reason == "max_trials"


def test_a_tuner_built_outside_the_event_loop_runs_under_anyio_run() -> None:
    # The documented entry point: build the Tuner in plain code, then anyio.run(tuner.run).
    async def objective(trial: hpt.Trial) -> float:
        return trial.params["lr"]

    tuner = make(objective, max_trials=3)
    result = anyio.run(tuner.run, backend="asyncio")
    assert result.count("complete") == 3
    assert result.best is not None


async def test_maximize_picks_the_largest_value() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return float(trial.params["layers"]) + trial.params["lr"]

    result = await run(make(objective, direction="maximize", max_trials=8))
    assert result.best is not None
    assert result.best.value == max(t.value for t in result.trials if t.value is not None)


async def test_a_plain_dict_of_domains_is_a_space() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return trial.params["x"]

    result = await run(make(objective, space={"x": hpt.Float(0.0, 1.0)}, max_trials=3))
    assert all(0.0 <= t.params["x"] <= 1.0 for t in result.trials)


async def test_report_step_is_keyword_only() -> None:
    errors: list[BaseException] = []

    async def objective(trial: hpt.Trial) -> float:
        try:
            await trial.report(1.0, 0)  # type: ignore[misc]
        except TypeError as exc:
            errors.append(exc)
        return 1.0

    result = await run(make(objective, max_trials=1))
    assert len(errors) == 1
    assert result.trials[0].reports == {}


# -- concurrency -----------------------------------------------------------------


async def test_concurrency_runs_exactly_that_many_at_once() -> None:
    running = 0
    peak = 0
    all_in = anyio.Event()

    async def objective(trial: hpt.Trial) -> float:
        nonlocal running, peak
        running += 1
        peak = max(peak, running)
        try:
            if running == 8:
                all_in.set()
            # The first eight wait for each other: only 8 concurrent slots can release them.
            with anyio.fail_after(5):
                await all_in.wait()
            await anyio.sleep(0.002)
            return 0.0
        finally:
            running -= 1

    result = await run(make(objective, concurrency=8, max_trials=40))
    assert peak == 8
    assert result.count(hpt.TrialState.COMPLETE) == 40


async def test_a_slow_trial_does_not_hold_back_the_other_slots() -> None:
    # Trial 0 only finishes once 20 other trials have completed: a tuner that
    # waited for a whole batch before starting new trials would never get there.
    others_done = 0
    enough = anyio.Event()
    order: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        nonlocal others_done
        if trial.number == 0:
            with anyio.fail_after(5):
                await enough.wait()
        else:
            await anyio.sleep(0.001)
            others_done += 1
            if others_done == 20:
                enough.set()
        order.append(trial.number)
        return float(trial.number)

    result = await run(make(objective, concurrency=4, max_trials=24))
    assert result.count(hpt.TrialState.COMPLETE) == 24
    assert order.index(0) >= 20


# -- max_trials, failures ------------------------------------------------------------


async def test_max_trials_counts_complete_pruned_and_failed() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number % 3 == 0:
            raise RuntimeError("broken")
        if trial.number % 3 == 1:
            raise hpt.TrialPruned()
        return 1.0

    result = await run(make(objective, max_trials=9, concurrency=3))
    assert len(result.trials) == 9
    assert result.count("complete") == 3
    assert result.count("pruned") == 3
    assert result.count("failed") == 3
    assert result.reason == "max_trials"


async def test_cancelled_trials_do_not_use_up_max_trials() -> None:
    storage = hpt.MemoryStorage()

    async def hang(trial: hpt.Trial) -> float:
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    first = await run(make(hang, storage=storage, study="shared", concurrency=2, timeout=0.05))
    cancelled = len(first.trials)
    assert cancelled >= 1
    assert first.count("cancelled") == cancelled

    async def quick(trial: hpt.Trial) -> float:
        return 1.0

    second = await run(make(quick, storage=storage, study="shared", max_trials=3))
    assert len(second.trials) == cancelled + 3
    assert second.count("cancelled") == cancelled
    assert second.count("complete") == 3


async def test_max_trials_counts_the_trials_of_a_resumed_study() -> None:
    storage = hpt.MemoryStorage()

    async def quick(trial: hpt.Trial) -> float:
        return 1.0

    await run(make(quick, storage=storage, study="resumed", max_trials=3))
    result = await run(make(quick, storage=storage, study="resumed", max_trials=5))
    assert [t.number for t in result.trials] == [0, 1, 2, 3, 4]


async def test_a_failing_objective_keeps_error_and_traceback_and_the_study_goes_on() -> None:
    def deep_helper(number: int) -> float:
        raise ValueError(f"boom in trial {number}")

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 1:
            return deep_helper(trial.number)
        return 0.5

    result = await run(make(objective, max_trials=4))
    failed = result.trials[1]
    assert failed.state is hpt.TrialState.FAILED
    assert failed.value is None
    assert failed.error is not None
    assert "ValueError" in failed.error and "boom in trial 1" in failed.error
    assert failed.traceback is not None
    assert "Traceback" in failed.traceback and "deep_helper" in failed.traceback
    assert [t.state for t in result.trials].count(hpt.TrialState.COMPLETE) == 3
    assert result.best is not None and result.best.number != 1


@pytest.mark.parametrize(
    "bad",
    [math.nan, math.inf, -math.inf, np.float64("nan"), None, "1.5", True, [1.0]],
    ids=["nan", "inf", "-inf", "np-nan", "none", "str", "bool", "list"],
)
async def test_non_finite_or_non_number_results_are_failures(bad: Any) -> None:
    strategy = RecordingStrategy()

    async def objective(trial: hpt.Trial) -> Any:
        return bad if trial.number == 0 else 2.0

    result = await run(make(objective, strategy=strategy, max_trials=2))
    record = result.trials[0]
    assert record.state is hpt.TrialState.FAILED
    assert record.value is None
    assert record.error
    assert result.best is not None and result.best.number == 1
    told = {r.number: r for r in strategy.told}
    assert told[0].state is hpt.TrialState.FAILED and told[0].value is None


async def test_numpy_numbers_are_accepted_results() -> None:
    async def objective(trial: hpt.Trial) -> Any:
        return np.float32(0.25) if trial.number == 0 else np.int64(3)

    result = await run(make(objective, max_trials=2))
    assert [t.state for t in result.trials] == [hpt.TrialState.COMPLETE] * 2
    assert [t.value for t in result.trials] == [0.25, 3.0]
    assert all(type(t.value) is float for t in result.trials)


async def test_max_failures_raises_study_failed_with_the_partial_result() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 0:
            return 1.0
        raise RuntimeError("always")

    with pytest.raises(hpt.StudyFailed) as info:
        await run(make(objective, max_failures=3, max_trials=50))
    result = info.value.result
    assert isinstance(result, hpt.StudyResult)
    assert result.reason == "max_failures"
    assert result.count("failed") == 3
    assert result.count("complete") == 1
    assert len(result.trials) == 4
    assert result.best is not None and result.best.number == 0
    assert "3" in str(info.value)
    # The run's first failure is chained, as with fail_fast.
    assert isinstance(info.value.__cause__, RuntimeError) and str(info.value.__cause__) == "always"


async def test_max_failures_cancels_running_trials() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number < 2:
            await anyio.sleep(0.01)
            raise RuntimeError("fails")
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    with pytest.raises(hpt.StudyFailed) as info:
        await run(make(objective, max_failures=2, concurrency=4))
    result = info.value.result
    assert result.count("failed") == 2
    # Trials 2 and 3 (and any started after the first failure) were running.
    assert result.count("cancelled") == len(result.trials) - 2 >= 2
    assert result.count("running") == 0


# -- timeouts and targets -----------------------------------------------------------------


async def test_study_timeout_cancels_running_trials_and_leaves_nothing_running() -> None:
    entered = 0
    exited = 0
    storage = hpt.MemoryStorage()

    async def objective(trial: hpt.Trial) -> float:
        nonlocal entered, exited
        entered += 1
        try:
            if trial.number < 5:
                return 1.0
            await anyio.sleep_forever()
            raise AssertionError("unreachable")
        finally:
            exited += 1

    result = await run(make(objective, storage=storage, study="t", concurrency=2, timeout=0.1))
    assert result.reason == "timeout"
    assert entered == exited == 7
    assert [t.state for t in result.trials[:5]] == [hpt.TrialState.COMPLETE] * 5
    assert [t.state for t in result.trials[5:]] == [hpt.TrialState.CANCELLED] * 2
    assert all(t.value is None and t.ended is not None for t in result.trials[5:])
    stored = await storage.load("t")
    assert [t.state for t in stored] == [t.state for t in result.trials]


async def test_trial_timeout_fails_a_slow_trial_and_the_study_goes_on() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 1:
            await anyio.sleep_forever()
        return 1.0

    result = await run(make(objective, trial_timeout=0.05, max_trials=4, concurrency=2))
    assert states(result) == {
        0: hpt.TrialState.COMPLETE,
        1: hpt.TrialState.FAILED,
        2: hpt.TrialState.COMPLETE,
        3: hpt.TrialState.COMPLETE,
    }
    assert result.trials[1].error is not None and "trial_timeout" in result.trials[1].error
    assert result.reason == "max_trials"


async def test_target_stops_the_study() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return float(trial.number)

    result = await run(make(objective, direction="maximize", target=3, max_trials=100))
    assert result.reason == "target"
    assert len(result.trials) == 4
    assert result.best is not None and result.best.value == 3.0


async def test_target_cancels_the_trials_still_running() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 0:
            await anyio.sleep(0.01)
            return -1.0
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    result = await run(make(objective, direction="minimize", target=0.0, concurrency=3))
    assert result.reason == "target"
    assert states(result) == {
        0: hpt.TrialState.COMPLETE,
        1: hpt.TrialState.CANCELLED,
        2: hpt.TrialState.CANCELLED,
    }


# -- cancellation from outside -----------------------------------------------------


class EndedRecorder:
    """A plugin keeping the records of ended trials and the study's end."""

    def __init__(self) -> None:
        self.ended: list[hpt.TrialRecord] = []
        self.study_ended: list[hpt.StudyResult] = []

    @hpt.hookimpl
    def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
        self.ended.append(event.record)

    @hpt.hookimpl
    def hpt_study_ended(self, event: hpt.StudyEnded) -> None:
        self.study_ended.append(event.result)


async def test_move_on_after_records_running_trials_cancelled_and_propagates() -> None:
    storage = hpt.MemoryStorage()
    recorder = EndedRecorder()
    exited = 0

    async def objective(trial: hpt.Trial) -> float:
        nonlocal exited
        try:
            await anyio.sleep_forever()
        finally:
            exited += 1
        raise AssertionError("unreachable")

    tuner = make(objective, storage=storage, study="outside", concurrency=3, plugins=[recorder])
    reached = False
    with anyio.fail_after(HANG_GUARD):
        with anyio.move_on_after(0.05) as scope:
            await tuner.run()
            reached = True
    assert scope.cancelled_caught
    assert not reached
    assert exited == 3
    stored = await storage.load("outside")
    assert [t.state for t in stored] == [hpt.TrialState.CANCELLED] * 3
    assert sorted(r.number for r in recorder.ended) == [0, 1, 2]
    assert all(r.state is hpt.TrialState.CANCELLED for r in recorder.ended)
    assert len(recorder.study_ended) == 1
    assert recorder.study_ended[0].reason == "cancelled"


async def test_cancel_scope_from_another_task() -> None:
    storage = hpt.MemoryStorage()
    started = 0
    all_started = anyio.Event()
    finished: list[hpt.StudyResult] = []

    async def objective(trial: hpt.Trial) -> float:
        nonlocal started
        if trial.number < 3:
            return 0.0
        started += 1
        if started == 2:
            all_started.set()
        await anyio.sleep_forever()
        raise AssertionError("unreachable")

    tuner = make(objective, storage=storage, study="scope", concurrency=2)
    scope = anyio.CancelScope()

    async def runner() -> None:
        with scope:
            finished.append(await tuner.run())

    with anyio.fail_after(HANG_GUARD):
        async with anyio.create_task_group() as tg:
            tg.start_soon(runner)
            await all_started.wait()
            scope.cancel()
    assert scope.cancelled_caught
    assert finished == []
    stored = await storage.load("scope")
    assert [t.state for t in stored] == [hpt.TrialState.COMPLETE] * 3 + [hpt.TrialState.CANCELLED] * 2


async def test_a_tuner_can_run_again_after_being_cancelled() -> None:
    storage = hpt.MemoryStorage()

    async def objective(trial: hpt.Trial) -> float:
        if trial.number < 2:
            await anyio.sleep_forever()
        return 1.0

    tuner = make(objective, storage=storage, study="again", concurrency=2, max_trials=3)
    with anyio.move_on_after(0.05):
        await tuner.run()
    result = await run(tuner)
    assert result.count("cancelled") == 2
    assert result.count("complete") == 3


# -- pruning -----------------------------------------------------------------------


async def test_custom_pruner_stops_a_trial_through_report() -> None:
    pruner = StopAtStep(2)
    raised: list[BaseException] = []

    async def objective(trial: hpt.Trial) -> float:
        for step in range(10):
            try:
                await trial.report(10.0 - step, step=step)
            except hpt.TrialPruned as exc:
                raised.append(exc)
                raise
        return 0.0

    result = await run(make(objective, pruner=pruner, max_trials=3))
    assert len(raised) == 3
    for record in result.trials:
        assert record.state is hpt.TrialState.PRUNED
        assert dict(record.reports) == {0: 10.0, 1: 9.0, 2: 8.0}
        assert record.value == 8.0
    assert result.best is None
    assert result.reason == "max_trials"
    assert [(n, s) for n, s, _ in pruner.seen if n == 0] == [(0, 0), (0, 1), (0, 2)]


async def test_pruner_sees_the_report_in_the_running_record() -> None:
    seen: list[dict[int, float]] = []

    class Looking(hpt.Pruner):
        async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
            assert trial.state is hpt.TrialState.RUNNING
            assert trial.number in study.running
            seen.append(dict(trial.reports))
            return hpt.Decision.CONTINUE

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(1.5, step=0)
        await trial.report(2.5, step=4)
        return 2.5

    result = await run(make(objective, pruner=Looking(), max_trials=1))
    assert seen == [{0: 1.5}, {0: 1.5, 4: 2.5}]
    assert result.trials[0].state is hpt.TrialState.COMPLETE


async def test_duplicate_step_raises_value_error() -> None:
    errors: list[BaseException] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(1.0, step=3)
        try:
            await trial.report(2.0, step=3)
        except ValueError as exc:
            errors.append(exc)
        return 1.0

    result = await run(make(objective, max_trials=1))
    assert len(errors) == 1
    assert dict(result.trials[0].reports) == {3: 1.0}
    assert result.trials[0].state is hpt.TrialState.COMPLETE


@pytest.mark.parametrize("value", ["abc", None, [1.0], "0.5"], ids=["word", "none", "list", "numeric-str"])
async def test_reporting_a_non_number_raises_type_error(value: Any) -> None:
    errors: list[BaseException] = []

    async def objective(trial: hpt.Trial) -> float:
        try:
            await trial.report(value, step=0)
        except TypeError as exc:
            errors.append(exc)
        return 1.0

    result = await run(make(objective, max_trials=1))
    assert len(errors) == 1
    assert result.trials[0].reports == {}


async def test_an_objective_raising_trial_pruned_ends_pruned_with_its_last_value() -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 0:
            await trial.report(4.0, step=0)
            await trial.report(3.0, step=1)
        raise hpt.TrialPruned("not worth it")

    result = await run(make(objective, max_trials=2))
    assert [t.state for t in result.trials] == [hpt.TrialState.PRUNED] * 2
    assert result.trials[0].value == 3.0
    assert result.trials[1].value is None


# -- enqueue -------------------------------------------------------------------------


async def test_enqueued_configurations_run_first() -> None:
    strategy = RecordingStrategy()
    seen: dict[int, dict[str, Any]] = {}

    async def objective(trial: hpt.Trial) -> float:
        seen[trial.number] = dict(trial.params)
        return 0.0

    tuner = make(objective, strategy=strategy, max_trials=4)
    full = {"lr": 0.01, "layers": 2, "optimizer": "sgd"}
    tuner.enqueue(full)
    tuner.enqueue({"optimizer": "adam"})
    result = await run(tuner)

    assert seen[0] == full
    assert seen[1]["optimizer"] == "adam"
    assert set(seen[1]) == set(SPACE)
    assert hpt.Space(SPACE).validate(seen[1]) == seen[1]
    assert strategy.asked == [2, 3]
    assert len(result.trials) == 4


@pytest.mark.parametrize(
    "params",
    [{"momentum": 0.9}, {"lr": 5.0}, {"layers": 9}, {"optimizer": "rmsprop"}, {"layers": 1.5}],
    ids=["unknown", "lr-out", "layers-out", "choice-out", "int-not-int"],
)
def test_a_bad_enqueue_raises_space_error_at_once(params: dict[str, Any]) -> None:
    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    tuner = make(objective)
    with pytest.raises(hpt.SpaceError):
        tuner.enqueue(params)


# -- seeds ---------------------------------------------------------------------------


async def _params_by_number(
    seed: int | None, concurrency: int = 3
) -> tuple[hpt.StudyResult, dict[int, dict[str, Any]]]:
    async def objective(trial: hpt.Trial) -> float:
        # Uneven sleeps so trials finish out of order.
        await anyio.sleep(0.001 * (trial.number % 3))
        return trial.params["lr"]

    result = await run(make(objective, seed=seed, max_trials=12, concurrency=concurrency))
    return result, {t.number: dict(t.params) for t in result.trials}


async def test_the_same_seed_gives_the_same_params_per_trial_number() -> None:
    _, first = await _params_by_number(7)
    _, second = await _params_by_number(7, concurrency=1)
    _, other = await _params_by_number(8)
    assert first == second
    assert first != other


async def test_without_a_seed_one_is_drawn_and_reported() -> None:
    result, params = await _params_by_number(None)
    assert isinstance(result.seed, int)
    _, again = await _params_by_number(result.seed)
    assert again == params


# -- construction errors ---------------------------------------------------------------


async def _async_objective(trial: hpt.Trial) -> float:
    return 0.0


def _sync_objective(trial: hpt.SyncTrial) -> float:
    return 0.0


@pytest.mark.parametrize(
    "kwargs",
    [
        {"direction": "up"},
        {"concurrency": 0},
        {"max_trials": 0},
        {"max_failures": 0},
        {"timeout": 0},
        {"trial_timeout": -1.0},
    ],
    ids=["direction", "concurrency", "max_trials", "max_failures", "timeout", "trial_timeout"],
)
def test_bad_settings_fail_at_construction(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ValueError):
        hpt.Tuner(_async_objective, SPACE, loggers=[], **kwargs)


def test_unknown_strategy_lists_the_registered_names() -> None:
    with pytest.raises(hpt.PluginNotFound) as info:
        hpt.Tuner(_async_objective, SPACE, strategy="no-such-strategy", loggers=[])
    message = str(info.value)
    assert "no-such-strategy" in message
    for name in ("random", "grid", "sobol"):
        assert name in message


def test_unknown_executor_and_logger_names_fail() -> None:
    with pytest.raises(hpt.PluginNotFound, match="async"):
        hpt.Tuner(_async_objective, SPACE, executor="warp", loggers=[], strategy="random")
    with pytest.raises(hpt.PluginNotFound, match="console"):
        hpt.Tuner(_async_objective, SPACE, loggers=["fancy"], strategy="random")


@pytest.mark.parametrize(
    ("objective", "executor"),
    [(_async_objective, "thread"), (_sync_objective, "async")],
    ids=["async-on-thread", "sync-on-async"],
)
def test_objective_that_does_not_suit_the_executor_is_a_type_error(
    objective: Callable[..., Any], executor: str
) -> None:
    with pytest.raises(TypeError):
        hpt.Tuner(objective, SPACE, executor=executor, loggers=[], strategy="random")


def test_the_executor_follows_the_objective_kind() -> None:
    assert isinstance(hpt.Tuner(_async_objective, SPACE, loggers=[], strategy="random").executor, hpt.AsyncExecutor)
    assert isinstance(hpt.Tuner(_sync_objective, SPACE, loggers=[], strategy="random").executor, hpt.ThreadExecutor)


async def test_an_async_callable_object_is_an_async_objective() -> None:
    class Objective:
        async def __call__(self, trial: hpt.Trial) -> float:
            return float(trial.params["layers"])

    result = await run(make(Objective(), max_trials=2))
    assert result.count("complete") == 2


async def test_timeout_stops_a_study_whose_objective_never_suspends() -> None:
    """An objective that returns at once never yields to the loop; the tuner must, so the timeout fires."""
    calls = 0

    async def objective(trial: hpt.Trial) -> float:
        nonlocal calls
        calls += 1
        return 0.0

    tuner = hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, timeout=0.2, concurrency=2, loggers=[], strategy="random")
    with anyio.fail_after(20):
        result = await tuner.run()
    assert result.reason == "timeout"
    assert calls > 10
    assert result.count(hpt.TrialState.RUNNING) == 0


def test_enqueue_rejects_a_partial_configuration_no_completion_can_satisfy() -> None:
    space = {
        "layers": hpt.Int(1, 4),
        "units_3": hpt.Int(16, 64, when={"layers": [3, 4]}),
        "units_1": hpt.Int(16, 64, when={"layers": [1]}),
    }
    tuner = hpt.Tuner(lambda t: 0.0, space, loggers=[], strategy="random")
    tuner.enqueue({"units_3": 32})  # layers is drawn among 3 and 4
    with pytest.raises(hpt.SpaceError):
        tuner.enqueue({"units_3": 32, "units_1": 16})
