"""The TensorBoard and W&B loggers, each study read back from what the library wrote.

TensorBoard's event files are read with TensorBoard's own EventAccumulator
(scalars and the HParams view's experiment and sessions); W&B runs in
offline mode (no network) and its run files are read record by record.
The libraries are needed (``pip install -e '.[test]'``): without them these
tests fail rather than skip.
"""

from __future__ import annotations

import json
import logging
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt
from hpt_async.loggers.tensorboard import TensorBoardLogger, TensorBoardLoggingError
from hpt_async.loggers.wandb import WandbLogger, WandbLoggingError

SPACE: dict[str, hpt.Domain] = {
    "x": hpt.Float(0.0, 1.0),
    "n": hpt.Int(1, 8),
    "opt": hpt.Choice(["adam", "sgd"]),
    "flag": hpt.Choice([True, False]),
}
STEPS = 4
PRUNED = 1  # stopped at step 1
FAILING = 3  # raises
TRIALS = 5
HANG_GUARD = 120.0


class PruneOne(hpt.Pruner):
    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        return hpt.Decision.STOP if trial.number == PRUNED and step >= 1 else hpt.Decision.CONTINUE


def objective(trial: hpt.SyncTrial) -> float:
    if trial.number == FAILING:
        raise ValueError("diverged")
    value = trial.params["x"] * trial.params["n"]
    for step in range(STEPS):
        trial.report(value / (step + 1), step=step)
    return value / STEPS


async def run(logger: Any, study: str = "tb-study") -> hpt.StudyResult:
    tuner = hpt.Tuner(
        objective,
        SPACE,
        pruner=PruneOne(),
        max_trials=TRIALS,
        concurrency=2,
        loggers=[logger],
        study=study,
        seed=3,
    )
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


# -- TensorBoard ------------------------------------------------------------------------------


def accumulator(path: Path) -> Any:
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator

    acc = EventAccumulator(str(path), size_guidance={"scalars": 0, "tensors": 0})
    acc.Reload()
    return acc


def scalars(acc: Any, tag: str) -> dict[int, float]:
    return {e.step: e.value for e in acc.Scalars(tag)} if tag in acc.Tags()["scalars"] else {}


def hparams(acc: Any) -> dict[str, Any]:
    """The HParams plugin data of a run, by kind: experiment, session_start_info, session_end_info."""
    from tensorboard.plugins.hparams import metadata, plugin_data_pb2

    found = {}
    for tag, content in acc.PluginTagToContent(metadata.PLUGIN_NAME).items():
        data = plugin_data_pb2.HParamsPluginData.FromString(content)
        found[data.WhichOneof("data")] = getattr(data, data.WhichOneof("data"))
        assert (
            tag
            == {
                "experiment": metadata.EXPERIMENT_TAG,
                "session_start_info": metadata.SESSION_START_INFO_TAG,
                "session_end_info": metadata.SESSION_END_INFO_TAG,
            }[data.WhichOneof("data")]
        )
    return found


def hparam_python(value: Any) -> Any:
    kind = value.WhichOneof("kind")
    return {"number_value": value.number_value, "string_value": value.string_value, "bool_value": value.bool_value}[
        kind
    ]


@pytest.mark.anyio
async def test_tensorboard_writes_a_run_per_trial_with_scalars_and_the_hparams_view(tmp_path: Path) -> None:
    from tensorboard.plugins.hparams import api_pb2

    result = await run(TensorBoardLogger(tmp_path / "tb"))
    assert result.plugin_errors == {}
    root = tmp_path / "tb" / "tb-study"
    assert sorted(p.name for p in root.iterdir() if p.is_dir()) == [f"trial-{n}" for n in range(TRIALS)]

    study = accumulator(root)
    experiment = hparams(study)["experiment"]
    infos = {info.name: info for info in experiment.hparam_infos}
    assert set(infos) == set(SPACE)
    assert (infos["x"].domain_interval.min_value, infos["x"].domain_interval.max_value) == (0.0, 1.0)
    assert (infos["n"].domain_interval.min_value, infos["n"].domain_interval.max_value) == (1.0, 8.0)
    assert [v.string_value for v in infos["opt"].domain_discrete.values] == ["adam", "sgd"]
    assert infos["flag"].type == api_pb2.DATA_TYPE_BOOL
    assert {m.name.tag for m in experiment.metric_infos} == {"value", "intermediate_value"}
    complete = {t.number: t.value for t in result.trials if t.state is hpt.TrialState.COMPLETE}
    assert scalars(study, "value") == pytest.approx(complete)
    assert result.best is not None
    assert scalars(study, "best_value") == pytest.approx({result.best.number: result.best.value})

    status = {
        hpt.TrialState.COMPLETE: api_pb2.STATUS_SUCCESS,
        hpt.TrialState.PRUNED: api_pb2.STATUS_UNKNOWN,
        hpt.TrialState.FAILED: api_pb2.STATUS_FAILURE,
    }
    for record in result.trials:
        acc = accumulator(root / f"trial-{record.number}")
        views = hparams(acc)
        start, end = views["session_start_info"], views["session_end_info"]
        assert {k: hparam_python(v) for k, v in start.hparams.items()} == pytest.approx(dict(record.params))
        assert end.status == status[record.state]
        assert scalars(acc, "intermediate_value") == pytest.approx(dict(record.reports))
        if record.state is hpt.TrialState.FAILED:
            assert scalars(acc, "value") == {}
        else:
            assert scalars(acc, "value") == pytest.approx({max(record.reports): record.value})
    pruned = next(t for t in result.trials if t.number == PRUNED)
    assert pruned.state is hpt.TrialState.PRUNED and sorted(pruned.reports) == [0, 1]


@pytest.mark.anyio
async def test_tensorboard_that_cannot_write_is_counted_and_the_study_goes_on(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    blocked = tmp_path / "not-a-dir"
    blocked.write_text("a file where the log directory should be")
    with caplog.at_level(logging.ERROR, logger="hpt_async.loggers"):
        result = await run(TensorBoardLogger(blocked))
    assert len(result.trials) == TRIALS and result.count("complete") == TRIALS - 2
    assert result.plugin_errors == {"tensorboard.hpt_study_ended": 1}
    errors = [r for r in caplog.records if r.name == "hpt_async.loggers"]
    assert len(errors) == 1 and "tensorboard logging of study 'tb-study' failed" in errors[0].getMessage()
    assert errors[0].exc_info is not None


def test_tensorboard_logger_is_registered_and_refuses_bad_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    assert {"tensorboard", "wandb"} <= set(hpt.get_registry().names("logger"))
    monkeypatch.setenv("HPT_ASYNC_TENSORBOARD_DIR", "elsewhere")
    assert str(TensorBoardLogger().logdir) == "elsewhere"
    with pytest.raises(ValueError, match="metric and intermediate_metric must differ"):
        TensorBoardLogger(metric="a", intermediate_metric="a")
    with pytest.raises(ValueError, match="drain_timeout"):
        TensorBoardLogger(drain_timeout=0)
    assert issubclass(TensorBoardLoggingError, hpt.HptError)


# -- W&B (offline) --------------------------------------------------------------------------


def wandb_records(path: Path) -> Iterator[Any]:
    """The records of a W&B run file: a 7-byte header, then records in 32 KiB blocks (LevelDB's log format)."""
    from wandb.proto import wandb_internal_pb2

    data = path.read_bytes()
    assert data[:4] == b":W&B", path
    pos, block, parts = 7, 32768, b""
    while pos + 7 <= len(data):
        left = block - pos % block
        if left < 7:  # the rest of a block too short for a record header is padding
            pos += left
            continue
        _crc, length, kind = struct.unpack("<IHB", data[pos : pos + 7])
        chunk = data[pos + 7 : pos + 7 + length]
        pos += 7 + length
        if kind == 1:  # a whole record
            parts = chunk
        elif kind == 2:  # first piece
            parts = chunk
            continue
        elif kind == 3:  # middle
            parts += chunk
            continue
        elif kind == 4:  # last
            parts += chunk
        else:
            continue
        record = wandb_internal_pb2.Record()
        record.ParseFromString(parts)
        yield record
        parts = b""


def wandb_runs(root: Path) -> dict[str, dict[str, Any]]:
    """Every offline run under ``root`` by display name: group, job type, config, history, summary, exit code.

    W&B's service process writes the run files; ``wandb.teardown()`` ends it, so that they are complete.
    """
    import wandb

    wandb.teardown()
    runs = {}
    for path in sorted(root.glob("wandb/offline-run-*/run-*.wandb")):
        run: dict[str, Any] = {"history": [], "summary": {}, "exit_code": None}
        for record in wandb_records(path):
            kind = record.WhichOneof("record_type")
            if kind == "run":
                run["name"] = record.run.display_name
                run["group"] = record.run.run_group
                run["job_type"] = record.run.job_type
                run["project"] = record.run.project
                run["config"] = {
                    item.key: json.loads(item.value_json) for item in record.run.config.update if item.key != "_wandb"
                }
            elif kind == "history":
                row = {"/".join(i.nested_key) or i.key: json.loads(i.value_json) for i in record.history.item}
                run["history"].append({k: v for k, v in row.items() if not k.startswith("_")})
            elif kind == "summary":
                for item in record.summary.update:
                    key = "/".join(item.nested_key) or item.key
                    if not key.startswith("_"):
                        run["summary"][key] = json.loads(item.value_json)
            elif kind == "exit":
                run["exit_code"] = record.exit.exit_code
        runs[run["name"]] = run
    return runs


@pytest.fixture
def offline(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """W&B in offline mode, writing under tmp_path, with nothing of the user's W&B settings."""
    monkeypatch.setenv("WANDB_MODE", "offline")
    monkeypatch.setenv("WANDB_SILENT", "true")
    monkeypatch.setenv("WANDB_DIR", str(tmp_path))
    monkeypatch.setenv("WANDB_CONFIG_DIR", str(tmp_path / "config"))
    monkeypatch.setenv("WANDB_CACHE_DIR", str(tmp_path / "cache"))
    monkeypatch.delenv("WANDB_PROJECT", raising=False)
    monkeypatch.delenv("WANDB_ENTITY", raising=False)
    monkeypatch.chdir(tmp_path)
    return tmp_path


@pytest.mark.anyio
async def test_wandb_offline_runs_one_per_trial_grouped_under_the_study(offline: Path) -> None:
    result = await run(WandbLogger(project="hpt-tests"), study="wb-study")
    assert result.plugin_errors == {}
    runs = wandb_runs(offline)
    assert set(runs) == {"wb-study"} | {f"wb-study-trial-{n}" for n in range(TRIALS)}
    assert {r["group"] for r in runs.values()} == {"wb-study"}
    assert {r["project"] for r in runs.values()} == {"hpt-tests"}

    study = runs["wb-study"]
    assert study["job_type"] == "study"
    assert study["config"]["study"] == "wb-study" and study["config"]["seed"] == 3
    complete = {t.number: t.value for t in result.trials if t.state is hpt.TrialState.COMPLETE}
    assert {row["trial"]: row["value"] for row in study["history"]} == pytest.approx(complete)
    assert result.best is not None
    assert study["summary"]["best_value"] == pytest.approx(result.best.value)
    assert study["summary"]["best_trial"] == result.best.number
    assert {k.removeprefix("best."): v for k, v in study["summary"].items() if k.startswith("best.")} == pytest.approx(
        dict(result.best.params)
    )
    assert study["summary"]["trials_complete"] == TRIALS - 2 and study["summary"]["trials_failed"] == 1

    for record in result.trials:
        trial = runs[f"wb-study-trial-{record.number}"]
        assert trial["job_type"] == "trial"
        assert trial["config"] == pytest.approx(dict(record.params))
        reports = {row["step"]: row["intermediate_value"] for row in trial["history"]}
        assert reports == pytest.approx(dict(record.reports))
        assert trial["summary"]["state"] == record.state.value
        assert trial["summary"]["trial"] == record.number
        if record.state is hpt.TrialState.FAILED:
            assert "value" not in trial["summary"] and "diverged" in trial["summary"]["error"]
            assert trial["exit_code"] == 1
        else:
            assert trial["summary"]["value"] == pytest.approx(record.value)
            assert trial["exit_code"] == 0
    assert runs[f"wb-study-trial-{PRUNED}"]["summary"]["state"] == "pruned"


@pytest.mark.anyio
async def test_wandb_that_fails_is_counted_and_the_study_goes_on(
    offline: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    import wandb.sdk.wandb_run

    def refuse(self: Any, data: Any, *args: Any, **kwargs: Any) -> None:
        if "intermediate_value" in data:
            raise ConnectionError("the tracking store went away")

    monkeypatch.setattr(wandb.sdk.wandb_run.Run, "log", refuse)
    with caplog.at_level(logging.ERROR, logger="hpt_async.loggers"):
        result = await run(WandbLogger(project="hpt-tests"), study="wb-failing")
    assert len(result.trials) == TRIALS and result.count("complete") == TRIALS - 2
    assert result.plugin_errors == {"wandb.hpt_study_ended": 1}
    errors = [r for r in caplog.records if r.name == "hpt_async.loggers"]
    assert len(errors) == 1 and "ConnectionError" in str(errors[0].exc_info)
    # Everything else was still written: every trial's run finished with its final value.
    runs = wandb_runs(offline)
    for record in result.trials:
        if record.state is hpt.TrialState.COMPLETE:
            assert runs[f"wb-failing-trial-{record.number}"]["summary"]["value"] == pytest.approx(record.value)


def test_wandb_logger_refuses_bad_settings() -> None:
    with pytest.raises(ValueError, match="mode must be"):
        WandbLogger(mode="sometimes")
    with pytest.raises(ValueError, match="init must not set group, name"):
        WandbLogger(init={"name": "x", "group": "y"})
    with pytest.raises(ValueError, match="other than 'step'"):
        WandbLogger(intermediate_metric="step")
    assert issubclass(WandbLoggingError, hpt.HptError)


@pytest.mark.anyio
async def test_a_missing_library_names_the_extra_to_install(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    monkeypatch.setitem(__import__("sys").modules, "wandb", None)  # unimportable
    with caplog.at_level(logging.ERROR, logger="hpt_async.loggers"):
        result = await run(WandbLogger(project="p", dir=tmp_path), study="no-wandb")
    assert len(result.trials) == TRIALS and result.plugin_errors == {"wandb.hpt_study_ended": 1}
    assert "pip install hpt-async[wandb]" in caplog.text


@pytest.mark.anyio
async def test_a_study_with_several_objectives_is_logged_with_its_front(tmp_path: Path, offline: Path) -> None:
    def two(trial: hpt.SyncTrial) -> tuple[float, float]:
        trial.report(trial.params["x"], step=0)
        return trial.params["x"], 1.0 - trial.params["x"]

    tuner = hpt.Tuner(
        two,
        {"x": hpt.Float(0.0, 1.0)},
        directions=["minimize", "minimize"],
        max_trials=3,
        loggers=[TensorBoardLogger(tmp_path / "tb"), WandbLogger(project="mo")],
        study="mo",
        seed=0,
    )
    with anyio.fail_after(HANG_GUARD):
        result = await tuner.run()
    assert result.plugin_errors == {}
    runs = wandb_runs(offline)
    assert sorted(runs["mo"]["summary"]["best_trials"]) == sorted(t.number for t in result.best_trials)
    assert "best_value" not in runs["mo"]["summary"]
    assert scalars(accumulator(tmp_path / "tb" / "mo"), "best_value") == {}
