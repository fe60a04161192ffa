"""Lifecycle hooks, plugin isolation, fatal components, and the console logger."""

from __future__ import annotations

import io
from collections.abc import Callable
from typing import Any

import anyio
import pytest

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE: dict[str, hpt.Domain] = {"x": hpt.Float(0.0, 1.0), "mode": hpt.Choice(["a", "b"])}
HANG_GUARD = 10.0


def make(objective: Callable[..., Any], **kwargs: Any) -> hpt.Tuner:
    """A silent, seeded tuner over SPACE unless told otherwise."""
    kwargs.setdefault("loggers", [])
    kwargs.setdefault("seed", 0)
    kwargs.setdefault("strategy", "random")
    return hpt.Tuner(objective, SPACE, **kwargs)


async def run(tuner: hpt.Tuner) -> hpt.StudyResult:
    """Run ``tuner`` under a hang guard."""
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


class Recorder:
    """Implements every lifecycle hook and logs ``(hook, trial number or None, detail)``."""

    def __init__(self) -> None:
        self.log: list[tuple[str, int | None, Any]] = []

    @hpt.hookimpl
    def hpt_study_started(self, event: hpt.StudyStarted, study: hpt.StudyView) -> None:
        assert isinstance(study, hpt.StudyView)
        self.log.append(("study_started", None, event.seed))

    @hpt.hookimpl
    def hpt_trial_created(self, event: hpt.TrialCreated, study: hpt.StudyView) -> None:
        assert event.number in study.running
        self.log.append(("created", event.number, dict(event.params)))

    @hpt.hookimpl
    def hpt_trial_started(self, event: hpt.TrialStarted, study: hpt.StudyView) -> None:
        self.log.append(("started", event.number, None))

    @hpt.hookimpl
    def hpt_trial_reported(self, event: hpt.TrialReported, study: hpt.StudyView) -> None:
        self.log.append(("reported", event.number, (event.step, event.value)))

    @hpt.hookimpl
    def hpt_trial_ended(self, event: hpt.TrialEnded, study: hpt.StudyView) -> None:
        assert event.number not in study.running
        assert study.trials[event.number] is event.record
        self.log.append(("ended", event.number, event.record.state))

    @hpt.hookimpl
    def hpt_study_ended(self, event: hpt.StudyEnded, study: hpt.StudyView) -> None:
        self.log.append(("study_ended", None, event.result.reason))

    def for_trial(self, number: int) -> list[tuple[str, Any]]:
        """The events of one trial, in order."""
        return [(hook, detail) for hook, n, detail in self.log if n == number]


class CommitSpyStorage(hpt.MemoryStorage):
    """Memory storage whose sessions call :meth:`before_commit` and :meth:`after_commit` around each final write."""

    async def open(self, study: str, *, direction: str, space: hpt.Space) -> Any:
        session = await super().open(study, direction=direction, space=space)
        commit = session.trial_ended

        async def trial_ended(record: hpt.TrialRecord) -> None:
            await self.before_commit(record)
            await commit(record)
            self.after_commit(record)

        session.trial_ended = trial_ended  # type: ignore[method-assign]
        return session

    async def before_commit(self, record: hpt.TrialRecord) -> None:
        """Called before the record is written; may raise."""

    def after_commit(self, record: hpt.TrialRecord) -> None:
        """Called once the record is written."""


async def reporting_objective(trial: hpt.Trial) -> float:
    """Reports three steps, sleeping a little so trials interleave."""
    for step in range(3):
        await anyio.sleep(0.001 * ((trial.number + step) % 3))
        await trial.report(trial.number + step / 10, step=step)
    if trial.number == 4:
        raise RuntimeError("trial four fails")
    return float(trial.number)


async def test_events_arrive_in_order_for_every_trial() -> None:
    recorder = Recorder()
    result = await run(make(reporting_objective, plugins=[recorder], max_trials=6, concurrency=3))

    assert recorder.log[0] == ("study_started", None, 0)
    assert recorder.log[-1] == ("study_ended", None, "max_trials")
    assert sum(1 for hook, _, _ in recorder.log if hook.startswith("study")) == 2
    for record in result.trials:
        n = record.number
        assert recorder.for_trial(n) == [
            ("created", dict(record.params)),
            ("started", None),
            ("reported", (0, n + 0.0)),
            ("reported", (1, n + 0.1)),
            ("reported", (2, n + 0.2)),
            ("ended", record.state),
        ]
    assert result.trials[4].state is hpt.TrialState.FAILED
    # Trials overlapped: some trial was created before an earlier one ended.
    created_1 = recorder.log.index(("created", 1, dict(result.trials[1].params)))
    ended_0 = recorder.log.index(("ended", 0, hpt.TrialState.COMPLETE))
    assert created_1 < ended_0


async def test_pruned_trials_end_with_state_pruned_in_the_event() -> None:
    class StopAtOne(hpt.Pruner):
        async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
            return hpt.Decision.STOP if step == 1 else hpt.Decision.CONTINUE

    recorder = Recorder()
    await run(make(reporting_objective, plugins=[recorder], pruner=StopAtOne(), max_trials=2))
    assert recorder.for_trial(0) == [
        ("created", recorder.for_trial(0)[0][1]),
        ("started", None),
        ("reported", (0, 0.0)),
        ("reported", (1, 0.1)),
        ("ended", hpt.TrialState.PRUNED),
    ]


async def test_async_hook_implementations_are_awaited() -> None:
    log: list[str] = []

    class AsyncPlugin:
        @hpt.hookimpl
        async def hpt_study_started(self, event: hpt.StudyStarted) -> None:
            await anyio.sleep(0)
            log.append("study_started")

        @hpt.hookimpl
        async def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            await anyio.sleep(0.001)
            log.append(f"ended {event.number}")

        @hpt.hookimpl
        async def hpt_study_ended(self, event: hpt.StudyEnded) -> None:
            await anyio.sleep(0)
            log.append("study_ended")

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    result = await run(make(objective, plugins=[AsyncPlugin()], max_trials=3))
    assert log == ["study_started", "ended 0", "ended 1", "ended 2", "study_ended"]
    assert result.plugin_errors == {}


async def test_an_implementation_may_take_a_subset_of_the_arguments() -> None:
    calls: list[Any] = []

    class Partial:
        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            calls.append("started")

        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            calls.append(event.number)

        @hpt.hookimpl
        def hpt_study_ended(self, study: hpt.StudyView) -> None:
            calls.append(len(study.trials))

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    result = await run(make(objective, plugins=[Partial()], max_trials=2))
    assert calls == ["started", 0, 1, 2]
    assert result.plugin_errors == {}


async def test_module_level_functions_work_as_a_plugin() -> None:
    import types

    seen: list[int] = []
    module = types.ModuleType("my_hpt_plugin")

    @hpt.hookimpl
    def hpt_trial_ended(event: hpt.TrialEnded) -> None:
        seen.append(event.number)

    module.hpt_trial_ended = hpt_trial_ended  # type: ignore[attr-defined]

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    await run(make(objective, plugins=[module], max_trials=2))
    assert seen == [0, 1]


async def test_a_raising_plugin_is_isolated_and_counted(caplog: pytest.LogCaptureFixture) -> None:
    class Broken:
        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            raise RuntimeError("plugin bug")

        @hpt.hookimpl
        async def hpt_trial_started(self, event: hpt.TrialStarted) -> None:
            await anyio.sleep(0)
            raise ValueError("async plugin bug")

    recorder = Recorder()

    async def objective(trial: hpt.Trial) -> float:
        return float(trial.number)

    result = await run(make(objective, plugins=[Broken(), recorder], max_trials=4))
    assert result.count("complete") == 4
    assert result.reason == "max_trials"
    ended_errors = [count for key, count in result.plugin_errors.items() if "hpt_trial_ended" in key]
    started_errors = [count for key, count in result.plugin_errors.items() if "hpt_trial_started" in key]
    assert ended_errors == [4]
    assert started_errors == [4]
    assert all("Broken" in key for key in result.plugin_errors)
    # The other plugin still saw everything.
    assert [n for hook, n, _ in recorder.log if hook == "ended"] == [0, 1, 2, 3]
    assert "plugin bug" in caplog.text


async def test_a_raising_logger_is_isolated() -> None:
    class BadLogger:
        name = "bad-logger"

        @hpt.hookimpl
        def hpt_study_started(self, event: hpt.StudyStarted) -> None:
            raise OSError("disk full")

        @hpt.hookimpl
        def hpt_study_ended(self, event: hpt.StudyEnded) -> None:
            raise OSError("disk full")

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    result = await run(make(objective, loggers=[BadLogger()], max_trials=3))
    assert result.count("complete") == 3
    assert sum(result.plugin_errors.values()) >= 1
    assert any("bad-logger" in key and "hpt_study_started" in key for key in result.plugin_errors)


async def test_a_strategy_whose_ask_raises_makes_run_raise_study_error() -> None:
    class Exploding(hpt.RandomStrategy):
        name = "exploding"

        async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
            if number == 2:
                raise ZeroDivisionError("no more ideas")
            return await super().ask(study, number)

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    with pytest.raises(hpt.StudyError) as info:
        await run(make(objective, strategy=Exploding(), max_trials=10))
    message = str(info.value)
    assert "exploding" in message
    assert "no more ideas" in message
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    assert info.value.result is not None
    assert info.value.result.count("complete") == 2


async def test_a_storage_whose_trial_ended_raises_is_fatal_and_named() -> None:
    class Flaky(CommitSpyStorage):
        name = "flaky-store"

        async def before_commit(self, record: hpt.TrialRecord) -> None:
            if record.number == 1:
                raise OSError("write failed")

    recorder = Recorder()

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    with pytest.raises(hpt.StudyError) as info:
        await run(make(objective, storage=Flaky(), plugins=[recorder], max_trials=10))
    message = str(info.value)
    assert "flaky-store" in message
    assert "write failed" in message
    assert isinstance(info.value.__cause__, OSError)
    ended = [n for hook, n, _ in recorder.log if hook == "ended"]
    assert 1 not in ended
    assert max(ended) < 2
    assert recorder.log[-1][0] == "study_ended"


async def test_trial_ended_is_heard_after_storage_commits_and_the_strategy_learns() -> None:
    order: list[tuple[str, int]] = []

    class OrderedStorage(CommitSpyStorage):
        async def before_commit(self, record: hpt.TrialRecord) -> None:
            await anyio.sleep(0.001)

        def after_commit(self, record: hpt.TrialRecord) -> None:
            order.append(("stored", record.number))

    class OrderedStrategy(hpt.RandomStrategy):
        async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
            order.append(("told", record.number))

    class Listener:
        @hpt.hookimpl
        def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
            order.append(("ended", event.number))

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.001 * (trial.number % 2))
        return 1.0

    await run(
        make(
            objective,
            storage=OrderedStorage(),
            strategy=OrderedStrategy(),
            plugins=[Listener()],
            max_trials=6,
            concurrency=3,
        )
    )
    for n in range(6):
        assert order.index(("stored", n)) < order.index(("told", n)) < order.index(("ended", n))


async def test_the_strategy_is_told_every_finished_record() -> None:
    told: list[hpt.TrialRecord] = []

    class Learning(hpt.RandomStrategy):
        async def tell(self, study: hpt.StudyView, record: hpt.TrialRecord) -> None:
            assert record.state.finished
            assert study.trials[record.number] is record
            told.append(record)

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 1:
            raise RuntimeError("fails")
        if trial.number == 2:
            await trial.report(0.5, step=0)
            raise hpt.TrialPruned()
        if trial.number >= 4:
            await anyio.sleep_forever()
        return 1.0

    result = await run(make(objective, strategy=Learning(), concurrency=2, timeout=0.1))
    assert sorted(r.number for r in told) == [t.number for t in result.trials]
    assert {r.number: r for r in told} == {t.number: t for t in result.trials}
    assert {r.number: r.state for r in told} == {
        0: hpt.TrialState.COMPLETE,
        1: hpt.TrialState.FAILED,
        2: hpt.TrialState.PRUNED,
        3: hpt.TrialState.COMPLETE,
        4: hpt.TrialState.CANCELLED,
        5: hpt.TrialState.CANCELLED,
    }
    assert told[[r.number for r in told].index(2)].value == 0.5


async def test_a_strategy_returning_none_ends_the_study_as_exhausted() -> None:
    class ThreeOnly(hpt.RandomStrategy):
        async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any] | None:
            return None if number >= 3 else await super().ask(study, number)

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    result = await run(make(objective, strategy=ThreeOnly(), concurrency=2))
    assert len(result.trials) == 3
    assert result.reason == "exhausted"


async def test_the_grid_strategy_by_name_ends_when_exhausted() -> None:
    seen: list[str] = []

    async def objective(trial: hpt.Trial) -> float:
        seen.append(trial.params["mode"])
        return 1.0

    tuner = hpt.Tuner(objective, {"mode": hpt.Choice(["a", "b", "c"])}, strategy="grid", concurrency=2, loggers=[])
    result = await run(tuner)
    assert sorted(seen) == ["a", "b", "c"]
    assert result.reason == "exhausted"


# -- the console logger -------------------------------------------------------------------


async def _logged_run(logger: Any, **kwargs: Any) -> hpt.StudyResult:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 1:
            raise ValueError("bad luck")
        return 0.25 + trial.number

    return await run(make(objective, loggers=[logger], study="logged", max_trials=4, **kwargs))


async def test_console_logger_prints_progress_failures_and_summary() -> None:
    stream = io.StringIO()
    result = await _logged_run(hpt.ConsoleLogger(stream=stream, interval=0.0))
    text = stream.getvalue()
    lines = text.splitlines()
    assert "logged" in lines[0] and "seed 0" in lines[0]
    assert any("trial 1 failed" in line and "bad luck" in line for line in lines)
    # With interval 0 every end prints the status line.
    assert sum("running; best" in line for line in lines) >= 4
    assert "4/4 done" in text
    assert "3 complete" in text and "1 failed" in text
    assert result.best is not None
    assert "stopped (max_trials)" in lines[-1]
    assert "0.25" in lines[-1] and "trial 0" in lines[-1]


async def test_console_logger_quiet_prints_only_the_summary() -> None:
    stream = io.StringIO()
    await _logged_run(hpt.ConsoleLogger(stream=stream, interval=0.0, quiet=True))
    text = stream.getvalue()
    assert "seed 0" not in text
    assert "bad luck" not in text
    assert "stopped (max_trials)" in text
    assert "4/4 done" in text
    assert len(text.splitlines()) <= 2


async def test_console_logger_reports_no_completed_trial() -> None:
    stream = io.StringIO()

    async def objective(trial: hpt.Trial) -> float:
        raise RuntimeError("nope")

    await run(make(objective, loggers=[hpt.ConsoleLogger(stream=stream, quiet=True)], max_trials=2))
    assert "no trial completed" in stream.getvalue()


async def test_default_loggers_print_to_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    async def objective(trial: hpt.Trial) -> float:
        return 1.5

    tuner = hpt.Tuner(objective, SPACE, study="noisy", max_trials=2, seed=3, strategy="random")
    assert tuner.loggers and isinstance(tuner.loggers[0], hpt.ConsoleLogger)
    await run(tuner)
    err = capsys.readouterr().err
    assert "[noisy]" in err
    assert "stopped (max_trials)" in err
    assert "1.5" in err


async def test_the_console_logger_by_name(capsys: pytest.CaptureFixture[str]) -> None:
    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    await run(hpt.Tuner(objective, SPACE, study="named", max_trials=1, loggers=["console"], strategy="random"))
    assert "[named]" in capsys.readouterr().err


async def test_empty_loggers_print_nothing(capsys: pytest.CaptureFixture[str]) -> None:
    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 0:
            raise RuntimeError("silent failure")
        return 1.0

    result = await run(hpt.Tuner(objective, SPACE, max_trials=3, loggers=[], strategy="random"))
    assert result.count("failed") == 1
    out, err = capsys.readouterr()
    assert out == ""
    assert err == ""


# -- hook validation and ordering ---------------------------------------------------


class Misspelt:
    @hpt.hookimpl
    def hpt_trial_finished(self, event: Any) -> None:  # no such hook
        raise AssertionError("never called")


class Wrapper:
    @hpt.hookimpl(wrapper=True)
    def hpt_trial_ended(self, event: Any) -> Any:
        yield


class OldStyleWrapper:
    name = "timing"

    @hpt.hookimpl(hookwrapper=True)
    def hpt_trial_started(self, event: Any) -> Any:
        yield


class Unmarked:
    def hpt_trial_ended(self, event: Any) -> None:  # a hook's name, but no @hpt.hookimpl
        raise AssertionError("never called")


@pytest.mark.parametrize(
    ("plugin", "words"),
    [
        (Misspelt(), "hpt_trial_finished"),
        (Wrapper(), "'Wrapper' cannot be activated: 'hpt_trial_ended' is a wrapper (wrapper=True)"),
        (OldStyleWrapper(), "'timing' cannot be activated: 'hpt_trial_started' is a wrapper (hookwrapper=True)"),
        (Unmarked(), "not marked"),
    ],
)
def test_a_hook_that_would_never_run_is_rejected_when_the_tuner_is_built(plugin: object, words: str) -> None:
    with pytest.raises(hpt.PluginError) as info:
        hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, plugins=[plugin], loggers=[], strategy="random")
    assert words in str(info.value)


@pytest.mark.parametrize("where", ["loggers", "plugins"])
@pytest.mark.parametrize("obj", [type("NamedOnly", (), {"name": "csv"})(), object(), 3])
def test_a_logger_or_plugin_that_listens_to_nothing_is_rejected(where: str, obj: object) -> None:
    with pytest.raises(TypeError, match="implements no lifecycle hook"):
        hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, **{"loggers": [], where: [obj]})


def test_hooks_run_in_the_order_the_objects_were_given() -> None:
    calls: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            calls.append(self.name)

    class Strategy(hpt.RandomStrategy):
        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            calls.append("strategy")

    tuner = hpt.Tuner(
        lambda t: 0.0,
        {"x": hpt.Float(0, 1)},
        strategy=Strategy(),
        plugins=[Named("p1"), Named("p2")],
        loggers=[Named("l1")],
        max_trials=1,
    )
    anyio.run(tuner.run)
    assert calls == ["strategy", "p1", "p2", "l1"]


def test_tryfirst_and_trylast_move_an_implementation_across_the_tuner_order() -> None:
    calls: list[str] = []

    class Named:
        def __init__(self, name: str) -> None:
            self.name = name

        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            calls.append(self.name)

    class Early(Named):
        @hpt.hookimpl(tryfirst=True)
        def hpt_study_started(self) -> None:
            calls.append(self.name)

    class Late(Named):
        @hpt.hookimpl(trylast=True)
        def hpt_study_started(self) -> None:
            calls.append(self.name)

    class Strategy(hpt.RandomStrategy):
        @hpt.hookimpl
        def hpt_study_started(self) -> None:
            calls.append("strategy")

    tuner = hpt.Tuner(
        lambda t: 0.0,
        {"x": hpt.Float(0, 1)},
        strategy=Strategy(),
        plugins=[Late("p1"), Named("p2"), Early("p3")],
        loggers=[Early("l1"), Named("l2")],
        max_trials=1,
    )
    anyio.run(tuner.run)
    assert calls == ["p3", "l1", "strategy", "p2", "l2", "p1"]


def test_a_plugin_implementing_hooks_through_specname_is_accepted_and_called() -> None:
    ended: list[int] = []

    class Watch:
        @hpt.hookimpl(specname="hpt_trial_ended")
        def on_trial_end(self, event: hpt.TrialEnded) -> None:
            ended.append(event.number)

    tuner = hpt.Tuner(
        lambda t: 0.0, {"x": hpt.Float(0, 1)}, plugins=[Watch()], loggers=[], max_trials=3, strategy="random"
    )
    anyio.run(tuner.run)
    assert ended == [0, 1, 2]


def test_a_module_plugin_is_labelled_by_its_module_name() -> None:
    import types

    module = types.ModuleType("acme_watch")

    def hpt_trial_ended(event: Any) -> None:
        raise RuntimeError("boom")

    module.hpt_trial_ended = hpt.hookimpl(hpt_trial_ended)  # type: ignore[attr-defined]
    tuner = hpt.Tuner(
        lambda t: 0.0, {"x": hpt.Float(0, 1)}, plugins=[module], loggers=[], max_trials=2, strategy="random"
    )
    result = anyio.run(tuner.run)
    assert result.plugin_errors == {"acme_watch.hpt_trial_ended": 2}


async def test_ask_announces_created_and_started() -> None:
    seen: list[tuple[str, int]] = []

    class Watch:
        @hpt.hookimpl
        def hpt_trial_created(self, event: hpt.TrialCreated) -> None:
            seen.append(("created", event.number))

        @hpt.hookimpl
        def hpt_trial_started(self, event: hpt.TrialStarted) -> None:
            seen.append(("started", event.number))

    tuner = hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, plugins=[Watch()], loggers=[], strategy="random")
    trial = await tuner.ask()
    assert seen == [("created", trial.number), ("started", trial.number)]
    await tuner.tell(trial, 1.0)
    await tuner.close()


async def test_a_failed_start_closes_the_storage_session() -> None:
    closed: list[bool] = []

    class Storage(hpt.MemoryStorage):
        async def open(self, study: str, *, direction: str, space: hpt.Space) -> Any:
            session = await super().open(study, direction=direction, space=space)

            async def close() -> None:
                closed.append(True)

            session.close = close  # type: ignore[method-assign]
            return session

    class Broken(hpt.RandomStrategy):
        async def start(self, study: hpt.StudyView) -> None:
            raise RuntimeError("no start")

    tuner = hpt.Tuner(lambda t: 0.0, {"x": hpt.Float(0, 1)}, strategy=Broken(), storage=Storage(), loggers=[])
    with pytest.raises(hpt.StudyError, match="no start"):
        await tuner.run()
    assert closed == [True]


async def test_console_does_not_repeat_the_closing_status_line() -> None:
    stream = io.StringIO()
    logger = hpt.ConsoleLogger(stream=stream, interval=0.0)
    tuner = hpt.Tuner(
        lambda t: t.params["x"], {"x": hpt.Float(0, 1)}, loggers=[logger], max_trials=3, seed=0, strategy="random"
    )
    await tuner.run()
    lines = stream.getvalue().splitlines()
    final = [line for line in lines if "3/3 done" in line]
    assert len(final) == 1, lines


async def test_a_plugin_failing_at_study_end_is_counted_in_the_result() -> None:
    class FailsAtEnd:
        @hpt.hookimpl
        def hpt_study_ended(self, event: hpt.StudyEnded) -> None:
            raise OSError("could not flush")

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    result = await run(make(objective, plugins=[FailsAtEnd()], max_trials=2))
    assert result.count("complete") == 2
    assert [count for key, count in result.plugin_errors.items() if "hpt_study_ended" in key] == [1]


async def test_the_start_event_names_the_strategy_and_the_pruner() -> None:
    seen: list[hpt.StudyStarted] = []

    class Watcher:
        @hpt.hookimpl
        def hpt_study_started(self, event: hpt.StudyStarted) -> None:
            seen.append(event)

    async def objective(trial: hpt.Trial) -> float:
        return 1.0

    await run(make(objective, plugins=[Watcher()], max_trials=1, strategy="sobol", pruner="median"))
    await run(make(objective, plugins=[Watcher()], max_trials=1))
    assert [(e.strategy, e.pruner, e.max_trials) for e in seen] == [("sobol", "median", 1), ("random", None, 1)]
