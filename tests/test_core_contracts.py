"""The core's contracts and the behaviour they promise: declared capabilities, real snapshots,
explicit trial transitions, fail_fast, stored seeds and component specs, concurrent asks."""

from __future__ import annotations

import json
import logging
import threading
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import StopAtStep

import hpt_async as hpt
from hpt_async import contracts
from hpt_async.study import StudyView

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}


async def _quick(trial: hpt.Trial) -> float:
    return trial.params["x"]


# -- contracts in one place -----------------------------------------------------------


def test_contracts_are_one_public_place() -> None:
    assert hpt.Strategy is contracts.Strategy and hpt.Exploit is contracts.Exploit
    assert hpt.Storage is contracts.Storage and hpt.Executor is contracts.Executor
    for name in contracts.__all__:
        assert getattr(contracts, name).__doc__, f"{name} has no contract docstring"


@pytest.mark.parametrize(
    ("module", "name"),
    [
        ("hpt_async.strategies.base", "Strategy"),
        ("hpt_async.pruners.base", "Exploit"),
        ("hpt_async.pruners.base", "Decision"),
        ("hpt_async.executors.base", "Executor"),
        ("hpt_async.storage.base", "StudySession"),
    ],
)
def test_older_import_paths_still_work_and_warn(module: str, name: str) -> None:
    import importlib

    old = importlib.import_module(module)
    with pytest.warns(DeprecationWarning, match=f"import {name} from hpt_async.contracts"):
        value = getattr(old, name)
    assert value is getattr(contracts, name)
    with pytest.raises(AttributeError):
        old.Nothing  # noqa: B018


async def test_ask_batch_defaults_to_one_ask_per_number_and_stops_at_the_first_none() -> None:
    class Three(hpt.Strategy):
        name = "three"

        async def ask(self, study: StudyView, number: int) -> dict[str, Any] | None:
            return {"x": number / 10} if number < 3 else None

    view = StudyView("s", "minimize", hpt.Space(SPACE), 0)
    assert await Three().ask_batch(view, [1, 2, 3, 4]) == [{"x": 0.1}, {"x": 0.2}, None, None]


class _Exploiter(hpt.Strategy):
    """Answers the third report of trial 0 with an EXPLOIT of its own choosing, without a donor."""

    name = "exploiter"
    decides = True

    def __init__(self, answer: Any = None) -> None:
        self.answer = answer
        self.kept: list[hpt.TrialRecord] = []

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        return {"x": 0.5}

    async def decide(self, study: StudyView, trial: hpt.TrialRecord, step: int, value: float, checkpoints: Any) -> Any:
        self.kept.append(trial)
        if step == 2 and trial.number == 0:
            return self.answer if self.answer is not None else hpt.Exploit({"x": 0.25})
        return hpt.Decision.CONTINUE


async def _reports(trial: hpt.Trial) -> float:
    for step in range(4):
        await trial.report(float(step) + trial.params["x"], step=step)
    return trial.params["x"]


async def test_a_record_handed_to_a_strategy_never_changes_afterwards() -> None:
    strategy = _Exploiter()
    tuner = hpt.Tuner(_reports, SPACE, strategy=strategy, max_trials=1, loggers=[], seed=0)
    result = await tuner.run()
    first = strategy.kept[0]
    # Trial 0's record at its first report: one report, the first configuration, although the trial went
    # on to report three more times and changed its configuration at step 2.
    assert dict(first.reports) == {0: 0.5}
    assert dict(first.params) == {"x": 0.5}
    assert first.state is hpt.TrialState.RUNNING
    assert [len(r.reports) for r in strategy.kept] == [1, 2, 3, 4]
    assert dict(strategy.kept[-1].params) == {"x": 0.25}
    assert result.trials[0].params["x"] == 0.25


async def test_a_bare_exploit_decision_is_refused_with_a_message_that_says_what_to_answer() -> None:
    tuner = hpt.Tuner(_reports, SPACE, strategy=_Exploiter(hpt.Decision.EXPLOIT), max_trials=1, loggers=[])
    with pytest.raises(hpt.StudyError, match=r"EXPLOIT is answered as Exploit\(params, donor\)"):
        await tuner.run()


async def test_a_pruner_answering_exploit_is_refused() -> None:
    class Wrong(hpt.Pruner):
        async def decide(self, study: StudyView, trial: hpt.TrialRecord, step: int, value: float) -> Any:
            return hpt.Exploit({"x": 0.1})

    tuner = hpt.Tuner(_reports, SPACE, pruner=Wrong(), max_trials=1, loggers=[], strategy="random")
    with pytest.raises(hpt.StudyError, match="only a strategy that declares decides"):
        await tuner.run()


async def test_an_undeclared_decide_still_works_with_a_deprecation_warning() -> None:
    class Old(hpt.Strategy):
        name = "old"

        async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
            return {"x": 0.5}

        async def decide(self, study: StudyView, trial: Any, step: int, value: float, checkpoints: Any) -> Any:
            return hpt.Decision.STOP

    with pytest.warns(DeprecationWarning, match="declaring decides = True"):
        tuner = hpt.Tuner(_reports, SPACE, strategy=Old(), max_trials=2, loggers=[])
    result = await tuner.run()
    assert result.count("pruned") == 2


# -- the Trial's transitions ---------------------------------------------------------


class _NoSession:
    async def on_report(self, trial: hpt.Trial, step: int, value: float) -> None:
        pass

    async def on_checkpoint(self, trial: hpt.Trial, data: bytes) -> None:
        pass

    async def on_restore(self, trial: hpt.Trial) -> bytes | None:
        return None


async def test_a_trial_ends_once_and_then_takes_no_more_calls() -> None:
    trial = hpt.Trial(3, {"x": 0.5}, _NoSession(), started=100.0)
    await trial.report(1.5, step=0)
    snapshot = trial.snapshot()
    await trial.report(1.0, step=1)
    assert dict(snapshot.reports) == {0: 1.5}  # a snapshot does not follow the trial
    record = trial.end(hpt.TrialState.COMPLETE, 1.0, ended=90.0)
    assert record.duration == 0.0  # an end stamped before the start never gives a negative duration
    assert trial.ended and dict(record.reports) == {0: 1.5, 1: 1.0}
    with pytest.raises(RuntimeError, match="already ended"):
        trial.end(hpt.TrialState.FAILED)
    with pytest.raises(hpt.TrialCancelled):
        await trial.report(0.5, step=2)
    with pytest.raises(ValueError, match="not RUNNING"):
        hpt.Trial(4, {}, _NoSession(), 0.0).end(hpt.TrialState.RUNNING)


async def test_a_resumed_trial_keeps_its_reports_only_with_a_checkpoint() -> None:
    paused = hpt.TrialRecord(5, hpt.TrialState.PAUSED, {"x": 0.5}, 2.0, {0: 3.0, 1: 2.0}, started=10.0)
    kept = hpt.Trial.resume(paused, _NoSession(), restore=True)
    fresh = hpt.Trial.resume(paused, _NoSession(), restore=False)
    assert kept.resumed and kept.should_restore and dict(kept.reports) == {0: 3.0, 1: 2.0}
    assert fresh.resumed and not fresh.should_restore and dict(fresh.reports) == {}
    assert kept.number == 5 and kept.started == 10.0


def test_a_stored_duration_is_never_negative() -> None:
    record = hpt.TrialRecord(0, hpt.TrialState.LOST, {}, started=50.0, ended=40.0)
    assert record.duration == 0.0


# -- safe defaults -----------------------------------------------------------------------


def _always_fails(trial: hpt.SyncTrial) -> float:
    raise RuntimeError(f"broken objective, trial {trial.number}")


async def test_a_study_whose_first_five_trials_all_fail_raises_with_the_first_error() -> None:
    tuner = hpt.Tuner(_always_fails, SPACE, max_trials=50, loggers=[], seed=0, strategy="random")
    with pytest.raises(hpt.StudyFailed, match="first 5 trials all FAILED") as caught:
        await tuner.run()
    assert caught.value.result.reason == hpt.StopReason.FAIL_FAST
    assert caught.value.result.count("failed") == 5
    assert isinstance(caught.value.__cause__, RuntimeError)
    assert "trial 0" in str(caught.value.__cause__)


async def test_fail_fast_false_runs_the_whole_budget() -> None:
    tuner = hpt.Tuner(_always_fails, SPACE, max_trials=12, loggers=[], fail_fast=False, strategy="random")
    result = await tuner.run()
    assert result.count("failed") == 12 and result.reason == "max_trials"


async def test_one_success_among_the_first_five_keeps_the_study_going() -> None:
    def flaky(trial: hpt.SyncTrial) -> float:
        if trial.number == 3:
            return 1.0
        raise RuntimeError("flaky")

    result = await hpt.Tuner(flaky, SPACE, max_trials=12, loggers=[], strategy="random").run()
    assert result.count("failed") == 11 and result.count("complete") == 1


async def test_fail_fast_chains_the_error_of_a_trial_that_returned_no_number() -> None:
    tuner = hpt.Tuner(lambda trial: float("nan"), SPACE, max_trials=9, loggers=[], strategy="random")
    with pytest.raises(hpt.StudyFailed) as caught:
        await tuner.run()
    assert "objective returned nan" in str(caught.value.__cause__)


async def test_a_study_without_a_budget_says_it_runs_until_stopped(caplog: pytest.LogCaptureFixture) -> None:
    tuner = hpt.Tuner(_quick, {"x": hpt.Choice([0.1, 0.2])}, strategy="grid", loggers=[])
    with caplog.at_level(logging.WARNING, logger="hpt_async"):
        result = await tuner.run()
    assert result.reason == "exhausted"
    assert any("runs until stopped" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="hpt_async"):
        await hpt.Tuner(_quick, SPACE, max_trials=2, loggers=[], strategy="random").run()
    assert not any("runs until stopped" in r.getMessage() for r in caplog.records)


# -- ask-and-tell -------------------------------------------------------------------------


async def test_ask_and_tell_needs_no_objective_and_run_says_it_does() -> None:
    tuner = hpt.Tuner(None, SPACE, loggers=[], seed=0, strategy="random")
    trial = await tuner.ask()
    await tuner.tell(trial, 0.5)
    result = await tuner.close()
    assert result.count("complete") == 1
    with pytest.raises(TypeError, match="run\\(\\) needs an objective"):
        await hpt.Tuner(None, SPACE, loggers=[], strategy="random").run()


@pytest.mark.parametrize("storage", ["memory", "sqlite"])
async def test_concurrent_first_asks_open_the_study_once(tmp_path: Path, storage: str) -> None:
    started: list[str] = []

    class Count:
        @hpt.hookimpl
        def hpt_study_started(self, event: hpt.StudyStarted) -> None:
            started.append(event.study)

    class SlowToOpen(hpt.MemoryStorage):
        # Opening suspends, as every storage with a file or a server does: the asks overlap the opening.
        async def open(self, study: str, **options: Any) -> Any:
            await anyio.sleep(0.01)
            return await super().open(study, **options)

    url = SlowToOpen() if storage == "memory" else f"sqlite:///{tmp_path / 'asks.db'}"
    tuner = hpt.Tuner(
        None, SPACE, storage=url, study="asks", pruner=StopAtStep(3), loggers=[], plugins=[Count()], strategy="random"
    )
    pruned: list[int] = []

    async def user_loop() -> None:
        trial = await tuner.ask()
        try:
            for step in range(5):
                await trial.report(1.0 / (step + 1), step=step)
                await anyio.sleep(0)
        except hpt.TrialPruned:
            pruned.append(trial.number)
            await tuner.tell(trial, state="pruned")
            return
        await tuner.tell(trial, 0.0)

    with anyio.fail_after(30):
        async with anyio.create_task_group() as tg:
            for _ in range(4):
                tg.start_soon(user_loop)
        result = await tuner.close()
    assert started == ["asks"]
    assert len(result.trials) == 4 and sorted(pruned) == [0, 1, 2, 3]
    assert result.count("pruned") == 4


# -- seeds and component specs kept with the study ---------------------------------------


async def test_a_resumed_study_without_a_seed_continues_with_its_stored_seed(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'seed.db'}"
    first = await hpt.Tuner(_quick, SPACE, storage=url, study="s", max_trials=3, loggers=[], strategy="random").run()
    again = await hpt.Tuner(_quick, SPACE, storage=url, study="s", max_trials=6, loggers=[], strategy="random").run()
    assert again.seed == first.seed
    # The new trials follow the stored seed exactly as a run given that seed would have made them.
    fresh = await hpt.Tuner(_quick, SPACE, max_trials=6, loggers=[], seed=first.seed, strategy="random").run()
    assert [t.params for t in again.trials] == [t.params for t in fresh.trials]
    explicit = await hpt.Tuner(
        _quick, SPACE, storage=url, study="s", max_trials=7, loggers=[], seed=123, strategy="random"
    ).run()
    assert explicit.seed == 123  # a seed given on resume is used for that run


async def test_a_component_spec_with_options_from_a_json_file_is_used_and_stored(tmp_path: Path) -> None:
    spec_file = tmp_path / "strategy.json"
    spec_file.write_text(json.dumps({"name": "tpe", "n_initial": 3, "gamma": 0.2}))
    url = f"sqlite:///{tmp_path / 'spec.db'}"
    tuner = hpt.Tuner(_quick, SPACE, strategy=json.loads(spec_file.read_text()), storage=url, study="spec",
                      pruner={"name": "median"}, max_trials=4, loggers=[], seed=1)  # fmt: skip
    assert tuner.strategy.n_initial == 3 and tuner.strategy.gamma == 0.2
    await tuner.run()
    summary = await hpt.SQLiteStorage(url).summary("spec")
    assert summary.settings["strategy"] == {"name": "tpe", "n_initial": 3, "gamma": 0.2}
    assert summary.settings["pruner"] == {"name": "median"}
    assert summary.settings["seed"] == 1


def test_an_unknown_option_is_refused_with_the_valid_ones() -> None:
    with pytest.raises(hpt.PluginError, match="n_initial"):
        hpt.Tuner(_quick, SPACE, strategy={"name": "tpe", "n_inital": 3}, loggers=[])


def test_disable_plugins_hides_a_plugin_from_one_tuner_only() -> None:
    with pytest.raises(hpt.PluginNotFound, match="disabled"):
        hpt.Tuner(_quick, SPACE, strategy="tpe", disable_plugins=["hpt_async.strategies.tpe"], loggers=[])
    assert hpt.Tuner(_quick, SPACE, strategy="tpe", loggers=[]).strategy.name == "tpe"
    with pytest.raises(TypeError, match="list of plugin names"):
        hpt.Tuner(_quick, SPACE, disable_plugins="hpt_async.strategies.tpe", loggers=[], strategy="random")  # type: ignore[arg-type]


# -- where it runs -----------------------------------------------------------------------


def test_a_study_runs_from_a_thread_that_is_not_the_main_one() -> None:
    out: list[Any] = []

    def in_thread() -> None:
        tuner = hpt.Tuner(_quick, SPACE, max_trials=5, loggers=[], seed=0, strategy="random")
        out.append(anyio.run(tuner.run))

    worker = threading.Thread(target=in_thread)
    worker.start()
    worker.join(30)
    assert out and out[0].count("complete") == 5


async def test_a_study_runs_inside_an_event_loop_that_is_already_running() -> None:
    # As in a notebook: `await tuner.run()` from code the loop already runs; the handler found before is put back
    # (tests/test_sigint.py checks a handler the loop registered itself).
    import signal

    before = signal.getsignal(signal.SIGINT)
    result = await hpt.Tuner(_quick, SPACE, max_trials=5, loggers=[], seed=0, strategy="random").run()
    assert result.count("complete") == 5
    assert signal.getsignal(signal.SIGINT) is before


# -- the hot path's hand-written pieces keep their promises ---------------------------------


def test_the_hand_written_record_init_takes_every_field_in_order() -> None:
    import dataclasses
    import inspect

    names = [f.name for f in dataclasses.fields(hpt.TrialRecord)]
    assert list(inspect.signature(hpt.TrialRecord.__init__).parameters)[1:] == names
    values = {name: object() for name in names}
    record = hpt.TrialRecord(**values)
    assert all(getattr(record, name) is value for name, value in values.items())


@pytest.mark.parametrize("seed", [0, 1, 7, 2**32 + 5, 2**64 - 1])
async def test_random_draws_by_block_exactly_what_the_space_samples(seed: int) -> None:
    from common import MIXED

    space = hpt.Space(MIXED)
    view = StudyView("s", "minimize", space, seed)
    strategy = hpt.RandomStrategy()
    for number in [*range(0, 300, 7), 255, 256, 257, 5000, 3]:
        assert await strategy.ask(view, number) == space.sample(seed, number)


def test_the_remote_reply_type_has_a_name_of_its_own_and_the_old_one_warns() -> None:
    from hpt_async.executors import remote

    assert "Reply" in remote.__all__ and "Decision" not in remote.__all__
    with pytest.warns(DeprecationWarning, match="now Reply"):
        assert remote.Decision is remote.Reply


async def test_a_snapshot_shows_the_reports_made_before_it_and_no_later_one() -> None:
    import pickle

    trial = hpt.Trial(0, {"x": 0.5}, _NoSession(), started=0.0)
    for step in (5, 2, 9):
        await trial.report(float(step), step=step)
    early = trial.snapshot()
    await trial.report(1.0, step=3)
    late = trial.snapshot()
    assert list(early.reports) == [5, 2, 9] and len(early.reports) == 3
    assert 3 not in early.reports and 9 in early.reports and early.reports[2] == 2.0
    with pytest.raises(KeyError):
        early.reports[3]
    assert early.reports == {5: 5.0, 2: 2.0, 9: 9.0} and dict(late.reports) == {5: 5.0, 2: 2.0, 9: 9.0, 3: 1.0}
    assert pickle.loads(pickle.dumps(early.reports)) == {5: 5.0, 2: 2.0, 9: 9.0}
    assert early.params is late.params  # one read-only copy, shared until exploit() changes the configuration
    trial.exploit({"x": 0.1}, 3, None)
    assert dict(trial.snapshot().params) == {"x": 0.1} and dict(early.params) == {"x": 0.5}


async def test_memory_storage_shows_a_running_trials_reports_to_every_reader() -> None:
    storage = hpt.MemoryStorage()
    space = hpt.Space(SPACE)
    session = await storage.open("s", direction="minimize", space=space)
    await session.trial_created(hpt.TrialRecord(0, hpt.TrialState.RUNNING, {"x": 0.5}, started=1.0))
    for step in range(3):
        await session.trial_reported(0, step, float(step))
    (loaded,) = await storage.load("s")
    assert dict(loaded.reports) == {0: 0.0, 1: 1.0, 2: 2.0} and loaded.state is hpt.TrialState.RUNNING
    await session.trial_reported(0, 3, 3.0)
    (again,) = await storage.load("s")
    assert len(again.reports) == 4 and len(loaded.reports) == 3  # the record read before never changes
    await session.close()


@pytest.mark.parametrize("backend", ["memory", "sqlite"])
async def test_resuming_from_a_stale_record_keeps_every_stored_report(tmp_path: Path, backend: str) -> None:
    storage = hpt.MemoryStorage() if backend == "memory" else hpt.SQLiteStorage(f"sqlite:///{tmp_path / 's.db'}")
    space = hpt.Space(SPACE)
    session = await storage.open("s", direction="minimize", space=space)
    number = await session.reserve()
    start = hpt.TrialRecord(number, hpt.TrialState.RUNNING, {"x": 0.5}, started=1.0)
    await session.trial_created(start)
    four = {0: 4.0, 1: 3.0, 2: 2.0, 3: 1.0}
    for step, value in four.items():
        await session.trial_reported(number, step, value)
    # Paused after four reports; another tuner's view saw it paused after two only.
    await session.trial_ended(hpt.TrialRecord(number, hpt.TrialState.PAUSED, {"x": 0.5}, 1.0, four, started=1.0))
    stale = hpt.TrialRecord(number, hpt.TrialState.RUNNING, {"x": 0.5}, reports={0: 4.0, 1: 3.0}, started=1.0)
    claimed = await session.trial_resumed(stale)
    assert isinstance(claimed, hpt.TrialRecord) and dict(claimed.reports) == four
    assert claimed.state is hpt.TrialState.RUNNING
    (loaded,) = await storage.load("s", space=space)
    assert dict(loaded.reports) == four
    assert await session.trial_resumed(stale) is False  # no longer PAUSED: claimed once
    await session.close()


async def test_ask_opens_no_executor_and_run_after_it_does() -> None:
    opened: list[int] = []

    class Counting(hpt.AsyncExecutor):
        async def open(self, concurrency: int) -> None:
            opened.append(concurrency)

    tuner = hpt.Tuner(_quick, SPACE, executor=Counting(), max_trials=3, loggers=[], seed=0, strategy="random")
    trial = await tuner.ask()
    await tuner.tell(trial, 0.5)
    assert opened == []  # ask-and-tell runs no objective: no worker pool is started for it
    result = await tuner.run()
    assert opened == [1] and result.count("complete") == 3


async def test_tasks_waiting_on_a_failed_opening_get_its_error() -> None:
    attempts: list[str] = []

    class Broken(hpt.MemoryStorage):
        async def open(self, study: str, **options: Any) -> Any:
            attempts.append(study)
            await anyio.sleep(0.01)
            raise OSError("disk gone")

    tuner = hpt.Tuner(None, SPACE, storage=Broken(), loggers=[], strategy="random")
    errors: list[BaseException] = []

    async def ask() -> None:
        try:
            await tuner.ask()
        except Exception as exc:
            errors.append(exc)

    async with anyio.create_task_group() as tg:
        for _ in range(3):
            tg.start_soon(ask)
    assert len(attempts) == 1  # one opening, whose failure every waiting task reports
    assert len(errors) == 3 and all("disk gone" in str(e) for e in errors)
    assert all(isinstance(e, hpt.StudyError) for e in errors)
