"""The ``jsonl`` logger: one JSON line per lifecycle event, appendable, readable back."""

from __future__ import annotations

import enum
import json
import math
from pathlib import Path

import anyio
import pytest

import hpt_async as hpt
from hpt_async.events import StudyStarted, TrialCreated, TrialEnded
from hpt_async.loggers import jsonl as jsonl_module
from hpt_async.loggers.jsonl import DEFAULT_PATH, PATH_ENV, JsonlLogger, read_events
from hpt_async.plugins import Registry
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


SPACE = hpt.Space({"x": hpt.Float(0.0, 1.0), "n": hpt.Int(1, 4)})


async def reporting(trial: hpt.Trial) -> float:
    for step in range(3):
        await trial.report(trial.params["x"] + step, step=step)
    trial.set_user_attr("tag", f"t{trial.number}")
    return trial.params["x"]


def _tuner(objective: object, path: Path | str, **kwargs: object) -> hpt.Tuner:
    options: dict[str, object] = {
        "max_trials": 5,
        "seed": 1,
        "concurrency": 2,
        "storage": "memory",
        "strategy": "random",
    }
    options.update(kwargs)
    return hpt.Tuner(objective, options.pop("space", SPACE), loggers=[JsonlLogger(path)], **options)


def _check_run(events: list[dict], n_trials: int) -> None:
    assert events[0]["event"] == "study_started"
    assert events[-1]["event"] == "study_ended"
    assert [e["event"] for e in events].count("study_started") == 1
    for number in range(n_trials):
        kinds = [e["event"] for e in events if e.get("number") == number]
        assert kinds[0] == "trial_created"
        assert kinds[1] == "trial_started"
        assert kinds[-1] == "trial_ended"
        assert set(kinds[2:-1]) <= {"trial_reported"}
        times = [e["time"] for e in events if e.get("number") == number]
        assert times == sorted(times)


@pytest.mark.anyio
async def test_run_writes_every_event_in_order(tmp_path: Path) -> None:
    path = tmp_path / "logs" / "events.jsonl"
    result = await _tuner(reporting, path).run()
    events = read_events(path)
    _check_run(events, 5)
    assert all(e["study"] == result.study for e in events)
    start = events[0]
    assert start["direction"] == "minimize" and start["seed"] == 1 and set(start["space"]) == {"x", "n"}
    by_number = {r.number: r for r in result.trials}
    for event in events:
        if event["event"] == "trial_created":
            assert event["params"] == dict(by_number[event["number"]].params)
        if event["event"] == "trial_reported":
            record = by_number[event["number"]]
            assert event["value"] == record.reports[event["step"]]
        if event["event"] == "trial_ended":
            record = by_number[event["number"]]
            assert event["state"] == "complete"
            assert event["value"] == record.value
            assert event["params"] == dict(record.params)
            assert event["user_attrs"] == {"tag": f"t{record.number}"}
            assert event["duration"] == pytest.approx(record.duration)
            assert event["error"] is None
    assert [e["step"] for e in events if e["event"] == "trial_reported" and e["number"] == 0] == [0, 1, 2]
    end = events[-1]
    assert end["reason"] == "max_trials"
    assert end["best"]["number"] == result.best.number and end["best"]["value"] == result.best_value
    assert end["trials"] == {"complete": 5}
    # The file is closed and every line is one JSON object ending with a newline.
    text = path.read_text()
    assert text.endswith("\n") and len(text.splitlines()) == len(events)


@pytest.mark.anyio
async def test_failed_and_pruned_trials(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 1:
            raise RuntimeError("boom")
        if trial.number == 2:
            raise hpt.TrialPruned()
        return 1.0

    await _tuner(objective, path, concurrency=1, max_trials=4).run()
    ended = {e["number"]: e for e in read_events(path) if e["event"] == "trial_ended"}
    assert ended[0]["state"] == "complete"
    assert ended[1]["state"] == "failed" and "boom" in ended[1]["error"] and ended[1]["value"] is None
    assert ended[2]["state"] == "pruned"


@pytest.mark.anyio
async def test_a_second_run_appends(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    storage = hpt.MemoryStorage()
    await _tuner(reporting, path, storage=storage, max_trials=3, study="s").run()
    first = read_events(path)
    await _tuner(reporting, path, storage=storage, max_trials=6, study="s").run()
    events = read_events(path)
    assert events[: len(first)] == first
    second = events[len(first) :]
    assert second[0]["event"] == "study_started" and second[0]["resumed_trials"] == 3
    assert second[-1]["event"] == "study_ended"
    assert sorted(e["number"] for e in second if e["event"] == "trial_ended") == [3, 4, 5]


@pytest.mark.anyio
async def test_non_json_values_and_nan_reports(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    space = hpt.Space({"shape": hpt.Choice([(32, 64)]), "colour": hpt.Choice([Colour.RED]), "x": hpt.Float(0, 1)})

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(math.nan, step=0)
        await trial.report(math.inf, step=1)
        trial.set_user_attr("odd", {1, 2})
        trial.set_user_attr("big", 2**70)
        return trial.params["x"]

    await _tuner(objective, path, space=space, concurrency=1, max_trials=2).run()
    text = path.read_text()
    for line in text.splitlines():  # strict JSON: no NaN or Infinity tokens
        json.loads(line, parse_constant=lambda name: pytest.fail(f"non-standard constant {name}"))
    events = read_events(path)
    created = [e for e in events if e["event"] == "trial_created"]
    assert created[0]["params"]["shape"] == [32, 64]
    assert created[0]["params"]["colour"] == repr(Colour.RED)
    reports = [e["value"] for e in events if e["event"] == "trial_reported"]
    assert reports == [None, None, None, None]
    ended = [e for e in events if e["event"] == "trial_ended"]
    assert ended[0]["user_attrs"] == {"odd": repr({1, 2}), "big": 2**70}
    assert ended[0]["params"]["colour"] == repr(Colour.RED)
    assert events[-1]["best"]["params"]["shape"] == [32, 64]


def test_read_events_skips_a_truncated_last_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    good = [{"event": "study_started", "study": "s", "time": 1.0}, {"event": "trial_created", "number": 0}]
    path.write_text("".join(json.dumps(e) + "\n" for e in good) + '{"event": "trial_sta')
    assert read_events(path) == good


def test_read_events_rejects_a_corrupt_line_inside(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "study_started"}\nnot json\n{"event": "trial_created"}\n')
    with pytest.raises(ValueError, match=r"events.jsonl:2"):
        read_events(path)


@pytest.mark.anyio
async def test_a_run_after_a_crash_closes_the_truncated_line(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    path.write_text('{"event": "study_started", "study": "old"}\n{"event": "trial_rep')
    await _tuner(reporting, path, max_trials=2).run()
    events = read_events(path)
    assert events[0] == {"event": "study_started", "study": "old"}
    _check_run(events[1:], 2)


@pytest.mark.anyio
async def test_lines_are_buffered_until_study_end(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[list[str]] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        seen.append([e["event"] for e in read_events(path)])
        return 0.5

    logger = JsonlLogger(path, flush_every=3600)
    await hpt.Tuner(objective, SPACE, max_trials=2, concurrency=1, loggers=[logger], strategy="random").run()
    # Only the study start is written at once; the rest waits for the timer or the study end.
    assert seen == [["study_started"], ["study_started"]]
    assert [e["event"] for e in read_events(path)] == [
        "study_started",
        *["trial_created", "trial_started", "trial_reported", "trial_ended"] * 2,
        "study_ended",
    ]


@pytest.mark.anyio
async def test_a_quiet_study_still_writes_within_flush_every(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[str] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        # No event comes while the trial waits: the timer writes the buffered lines.
        with anyio.fail_after(10):
            while len(read_events(path)) < 4:
                await anyio.sleep(0.01)
        seen.extend(e["event"] for e in read_events(path))
        return 0.5

    await hpt.Tuner(
        objective, SPACE, max_trials=1, loggers=[JsonlLogger(path, flush_every=0.05)], strategy="random"
    ).run()
    assert seen == ["study_started", "trial_created", "trial_started", "trial_reported"]


@pytest.mark.anyio
async def test_flush_every_zero_writes_each_event(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    seen: list[str] = []

    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        seen.append(read_events(path)[-1]["event"])
        return 0.5

    await hpt.Tuner(objective, SPACE, max_trials=1, loggers=[JsonlLogger(path, flush_every=0)], strategy="random").run()
    assert seen == ["trial_reported"]


def test_negative_flush_every_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="flush_every"):
        JsonlLogger(tmp_path / "x.jsonl", flush_every=-1)


def _registry() -> Registry:
    """A registry with the builtins and the ``jsonl`` module (a no-op when it is already a builtin)."""
    registry = Registry(autoload=False)
    registry.register_plugin(jsonl_module, name="hpt_async.loggers.jsonl")
    return registry


def test_factory_by_name_uses_the_env_var(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    path = tmp_path / "from-env.jsonl"
    monkeypatch.setenv(PATH_ENV, str(path))
    tuner = hpt.Tuner(reporting, SPACE, max_trials=2, loggers=["jsonl"], registry=_registry(), strategy="random")
    assert isinstance(tuner.loggers[0], JsonlLogger)
    anyio.run(tuner.run)
    _check_run(read_events(path), 2)


def test_factory_default_path_is_in_the_working_directory(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(PATH_ENV, raising=False)
    monkeypatch.chdir(tmp_path)
    registry = _registry()
    assert registry.owner("logger", "jsonl") == "hpt_async.loggers.jsonl"
    anyio.run(hpt.Tuner(reporting, SPACE, max_trials=1, loggers=["jsonl"], registry=registry, strategy="random").run)
    assert read_events(tmp_path / DEFAULT_PATH)[0]["event"] == "study_started"


def test_without_an_asyncio_loop_trial_ends_are_written_at_once(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"
    logger = JsonlLogger(path, flush_every=3600)
    view = StudyView("s", "minimize", SPACE, 0)
    logger.hpt_study_started(StudyStarted("s", "minimize", SPACE, 0, 1.0), view)
    logger.hpt_trial_created(TrialCreated(0, {"x": 0.5, "n": 2}, 2.0), view)
    assert len(read_events(path)) == 1  # buffered
    record = TrialRecord(0, TrialState.COMPLETE, {"x": 0.5, "n": 2}, value=0.5, started=2.0, ended=3.0)
    logger.hpt_trial_ended(TrialEnded(record), view)
    assert [e["event"] for e in read_events(path)] == ["study_started", "trial_created", "trial_ended"]
    logger.close()


@pytest.mark.anyio
async def test_values_orjson_would_write_differently_follow_the_format(tmp_path: Path) -> None:
    path = tmp_path / "events.jsonl"

    async def objective(trial: hpt.Trial) -> float:
        trial.set_user_attr("wide", 2**64)  # a plain int, but wider than orjson writes
        trial.set_user_attr("state", TrialState.COMPLETE)  # a StrEnum: its text
        trial.set_user_attr("colour", Colour.BLUE)  # a plain Enum: its repr, not its value
        trial.set_user_attr("keys", {1: "one"})  # keys that are not strings: their repr
        return 0.5

    await _tuner(objective, path, concurrency=1, max_trials=1).run()
    ended = [e for e in read_events(path) if e["event"] == "trial_ended"]
    assert ended[0]["user_attrs"] == {
        "wide": 2**64,
        "state": "complete",
        "colour": repr(Colour.BLUE),
        "keys": {"1": "one"},
    }
    assert ended[0]["state"] == "complete" and ended[0]["value"] == 0.5


@pytest.mark.anyio
async def test_many_events_are_encoded_in_batches_and_written_when_too_many_wait(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(jsonl_module, "MAX_BUFFERED", 2 * jsonl_module.ENCODE_EVERY)
    path = tmp_path / "events.jsonl"
    on_disk: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        if trial.number == 59:
            on_disk.append(len(read_events(path)))
        return float(trial.number)

    logger = JsonlLogger(path, flush_every=3600)  # the timer never fires during the test
    result = await hpt.Tuner(objective, SPACE, max_trials=60, seed=0, loggers=[logger], strategy="random").run()
    # 179 events came before trial 59 ran: the study start, then one full buffer of 128, written without the timer.
    assert on_disk == [1 + 2 * jsonl_module.ENCODE_EVERY]
    events = read_events(path)
    assert len(events) == 2 + 3 * 60
    _check_run(events, 60)
    by_number = {r.number: r for r in result.trials}
    for event in events:
        if event["event"] in ("trial_created", "trial_ended"):
            assert event["params"] == dict(by_number[event["number"]].params)


def test_params_changed_while_the_trial_ran_are_written_as_they_ended(tmp_path: Path) -> None:
    # Population-based training changes a running trial's params: its end line must not reuse the created ones.
    path = tmp_path / "events.jsonl"
    logger = JsonlLogger(path, flush_every=3600)
    view = StudyView("s", "minimize", SPACE, 0)
    logger.hpt_study_started(StudyStarted("s", "minimize", SPACE, 0, 1.0), view)
    for number, final in ((0, {"x": 0.5, "n": 2}), (1, {"x": 0.75, "n": 3})):
        logger.hpt_trial_created(TrialCreated(number, {"x": 0.5, "n": 2}, 2.0), view)
        record = TrialRecord(number, TrialState.COMPLETE, final, value=0.5, started=2.0, ended=3.0)
        logger.hpt_trial_ended(TrialEnded(record), view)
    logger.close()
    lines = [(e["event"], e.get("number"), e.get("params")) for e in read_events(path)]
    assert lines[1:] == [
        ("trial_created", 0, {"x": 0.5, "n": 2}),
        ("trial_ended", 0, {"x": 0.5, "n": 2}),
        ("trial_created", 1, {"x": 0.5, "n": 2}),
        ("trial_ended", 1, {"x": 0.75, "n": 3}),
    ]


@pytest.mark.anyio
async def test_several_objectives_and_constraints_are_written(tmp_path: Path) -> None:
    path = tmp_path / "mo.jsonl"

    async def two(trial: hpt.Trial) -> tuple[float, float]:
        x = trial.params["x"]
        await trial.report((x, 2 * x), step=0)
        trial.set_constraints([x - 0.5])
        return x, 1.0 - x

    tuner = hpt.Tuner(two, {"x": hpt.Float(0.0, 1.0)}, directions=["minimize", "minimize"], max_trials=4, seed=3,
                      loggers=[hpt.JsonlLogger(path)], strategy="random")  # fmt: skip
    result = await tuner.run()
    events = read_events(path)
    by_number = {r.number: r for r in result.trials}
    reported = [e for e in events if e["event"] == "trial_reported"]
    assert [e["values"] for e in reported] == [list(by_number[e["number"]].report_values[0]) for e in reported]
    ended = [e for e in events if e["event"] == "trial_ended"]
    for e in ended:
        record = by_number[e["number"]]
        assert e["values"] == list(record.values) and e["constraints"] == list(record.constraints)
        assert e["feasible"] == record.feasible
    end = events[-1]
    assert end["best"] is None and end["best_trials"] == [t.number for t in result.best_trials]
