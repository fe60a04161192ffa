"""The ``hpt-async`` study commands: studies, trials, best, export, delete, rename."""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import numpy as np
import pytest
from common import cli

import hpt_async as hpt
from hpt_async.cli import DEFAULT_STORAGE, STORAGE_ENV, main
from hpt_async.storage.sqlite import SCHEMA_VERSION, SQLiteStorage
from hpt_async.studies import load_study

SPACE = {"lr": hpt.Float(1e-3, 1.0, log=True), "opt": hpt.Choice(["adam", "sgd", None])}
COMMANDS = ("plugins", "studies", "trials", "best", "export", "delete", "rename")


async def objective(trial: hpt.Trial) -> float:
    trial.set_user_attr("note", "naïve; 'quoted'")
    if trial.number == 2:
        raise ValueError("bad trial")
    await trial.report(trial.params["lr"], step=0)
    return trial.params["lr"]


@pytest.fixture
def db(tmp_path: Path) -> str:
    """A file with study 'alpha' (5 trials, one failed) and study 'beta' (2 trials, maximised)."""
    url = f"sqlite:///{tmp_path / 'cli.db'}"

    async def fill() -> None:
        for name, n, direction in (("alpha", 5, "minimize"), ("beta", 2, "maximize")):
            t = hpt.Tuner(
                objective,
                SPACE,
                storage=url,
                study=name,
                max_trials=n,
                direction=direction,
                loggers=[],
                strategy="random",
            )
            await t.run()

    anyio.run(fill, backend="asyncio")
    return url


def test_help_lists_every_command_with_examples(capsys: Any) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in COMMANDS:
        assert command in out
        assert f"hpt-async {command}" in out  # an example of each
    assert "--storage" in out and STORAGE_ENV in out and DEFAULT_STORAGE in out
    for command in COMMANDS[1:]:
        with pytest.raises(SystemExit):
            main([command, "--help"])
        sub = capsys.readouterr().out
        assert "--storage URL" in sub and "example:" in sub


def test_studies_lists_names_directions_and_counts(db: str, capsys: Any) -> None:
    code, out, err = cli(capsys, "studies", "--storage", db)
    assert code == 0 and err == ""
    lines = out.splitlines()
    header = ["STUDY", "DIRECTION", "TRIALS", "COMPLETE", "PRUNED", "PAUSED", "FAILED", "RUNNING"]
    assert lines[0].split()[:8] == header
    assert lines[1].split()[:8] == ["alpha", "minimize", "5", "4", "0", "0", "1", "0"]
    assert lines[2].split()[:8] == ["beta", "maximize", "2", "2", "0", "0", "0", "0"]


def test_studies_counts_paused_trials(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'paused.db'}"

    async def curve(trial: hpt.Trial) -> float:
        start = 1
        if trial.should_restore:
            start = int((await trial.restore())["epoch"]) + 1
        loss = 1.0
        for epoch in range(start, 10):
            loss = trial.params["lr"] / epoch
            await trial.checkpoint({"epoch": np.array(epoch)})
            await trial.report(loss, step=epoch)
        return loss

    async def fill() -> None:
        pruner = hpt.ASHAPruner(min_resource=1, eta=3, max_resource=9, mode="promotion")
        await hpt.Tuner(curve, SPACE, storage=url, study="halving", pruner=pruner, max_trials=8, loggers=[],
                        seed=0, strategy="random").run()  # fmt: skip

    anyio.run(fill, backend="asyncio")
    study = load_study(url, "halving")
    paused = sum(t.state == "paused" for t in study.trials)
    complete = sum(t.state == "complete" for t in study.trials)
    assert paused > 0  # trials left waiting at a rung when the budget ran out
    code, out, err = cli(capsys, "studies", "--storage", url)
    assert code == 0 and err == ""
    row = out.splitlines()[1].split()
    assert row[:8] == ["halving", "minimize", str(len(study.trials)), str(complete), "0", str(paused), "0", "0"]


def test_the_storage_comes_from_the_environment_or_the_default(db: str, capsys: Any, monkeypatch: Any) -> None:
    monkeypatch.setenv(STORAGE_ENV, db)
    code, out, _ = cli(capsys, "studies")
    assert code == 0 and "alpha" in out
    monkeypatch.delenv(STORAGE_ENV)
    monkeypatch.chdir(Path(db.split("///", 1)[1]).parent)
    os.rename("cli.db", "hpt.db")
    code, out, _ = cli(capsys, "studies")
    assert code == 0 and "beta" in out


def test_trials_lists_every_trial_and_filters(db: str, capsys: Any) -> None:
    code, out, _ = cli(capsys, "trials", "alpha", "--storage", db)
    assert code == 0
    lines = out.splitlines()
    assert lines[0].split() == ["NUMBER", "STATE", "VALUE", "SECONDS", "PARAMS"]
    assert [line.split()[0] for line in lines[1:]] == ["0", "1", "2", "3", "4"]
    assert lines[3].split()[1:3] == ["failed", "-"]
    assert "opt=" in lines[1] and "lr=" in lines[1]
    code, out, _ = cli(capsys, "trials", "alpha", "--storage", db, "--state", "failed")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["2"]
    code, out, _ = cli(capsys, "trials", "alpha", "--storage", db, "--limit", "2")
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["3", "4"]
    code, out, _ = cli(capsys, "trials", "alpha", "--storage", db, "--state", "lost")
    assert code == 0 and "no trials in state lost" in out


def test_best_shows_the_best_trial(db: str, capsys: Any) -> None:
    study = load_study(db, "beta")
    assert study.best is not None
    code, out, _ = cli(capsys, "best", "beta", "--storage", db)
    assert code == 0
    assert f"best:      trial {study.best.number}" in out
    assert f"value:     {study.best.value!r}" in out
    assert "maximize" in out and "note = \"naïve; 'quoted'\"" in out


def test_export_csv_and_json(db: str, tmp_path: Path, capsys: Any) -> None:
    out_csv, out_json = tmp_path / "a.csv", tmp_path / "a.json"
    code, _, err = cli(capsys, "export", "alpha", "--storage", db, "--format", "csv", "-o", str(out_csv))
    assert code == 0 and "wrote 5 trials" in err
    with open(out_csv, encoding="utf-8", newline="") as f:
        rows = list(csv.DictReader(f))
    assert [r["number"] for r in rows] == ["0", "1", "2", "3", "4"]
    assert rows[2]["state"] == "failed" and rows[2]["error"] == "ValueError: bad trial"
    assert "bad trial" in rows[2]["traceback"]
    assert all(r["user_attrs_note"] == "naïve; 'quoted'" for r in rows)
    code, _, _ = cli(capsys, "export", "alpha", "--storage", db, "-o", str(out_json))  # format from the suffix
    assert code == 0
    data = json.loads(out_json.read_text(encoding="utf-8"))
    assert [d["number"] for d in data] == [0, 1, 2, 3, 4]
    assert data[0]["params_opt"] in ("adam", "sgd", None)
    code, out, _ = cli(capsys, "export", "beta", "--storage", db, "--format", "json")
    assert code == 0 and len(json.loads(out)) == 2
    code, out, _ = cli(capsys, "export", "beta", "--storage", db)
    assert code == 0 and len(list(csv.DictReader(io.StringIO(out)))) == 2


def test_rename_and_delete(db: str, capsys: Any) -> None:
    code, out, _ = cli(capsys, "rename", "alpha", "gamma; 'x'", "--storage", db)
    assert code == 0 and "renamed" in out
    code, out, err = cli(capsys, "delete", "beta", "--storage", db)
    assert code == 1 and "--yes" in err and out == ""
    code, out, _ = cli(capsys, "delete", "beta", "--yes", "--storage", db)
    assert code == 0 and "deleted study beta" in out
    _, out, _ = cli(capsys, "studies", "--storage", db)
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["gamma;"]
    assert "gamma; 'x'" in out


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["trials", "nope"], "no study named 'nope'"),
        (["best", "nope"], "no study named 'nope'"),
        (["export", "nope", "--format", "csv"], "no study named 'nope'"),
        (["delete", "nope", "--yes"], "no study named 'nope'"),
        (["rename", "nope", "x"], "no study named 'nope'"),
        (["rename", "alpha", "beta"], "exists already"),
    ],
)
def test_errors_are_one_line(db: str, capsys: Any, argv: list[str], message: str) -> None:
    code, _, err = cli(capsys, *argv, "--storage", db)
    assert code == 1
    assert err.count("\n") == 1 and err.startswith("hpt-async: error: ") and message in err
    assert "Traceback" not in err


def test_bad_storages_are_one_line_errors(tmp_path: Path, capsys: Any) -> None:
    notdb = tmp_path / "notes.txt"
    notdb.write_text("hello")
    future = tmp_path / "future.db"
    con = sqlite3.connect(future)
    con.execute("CREATE TABLE schema_version (version INTEGER, written_by TEXT, created REAL)")
    con.execute("INSERT INTO schema_version VALUES (?, 'hpt-async 9', 0)", (SCHEMA_VERSION + 1,))
    con.commit()
    con.close()
    cases = [
        (f"sqlite:///{tmp_path / 'missing.db'}", "no database file"),
        (f"sqlite:///{notdb}", "not an SQLite database"),
        (f"sqlite:///{future}", "newer hpt-async"),
        ("sqlite://host/x.db", "malformed SQLite URL"),
        ("mongodb://x", "unknown storage 'mongodb'"),
        ("sqlite:///x.db?bogus=1", "unknown sqlite option"),
    ]
    for url, message in cases:
        code, _, err = cli(capsys, "studies", "--storage", url)
        assert code == 1, url
        assert err.count("\n") == 1 and message in err and "Traceback" not in err, err
    assert notdb.read_text() == "hello"
    assert not (tmp_path / "missing.db").exists()


def test_no_studies_and_no_complete_trial(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'e.db'}"

    async def failing(trial: hpt.Trial) -> float:
        raise RuntimeError("always")

    async def fill() -> None:
        await hpt.Tuner(failing, SPACE, storage=url, study="bad", max_trials=2, loggers=[], strategy="random").run()

    anyio.run(fill, backend="asyncio")
    code, out, _ = cli(capsys, "best", "bad", "--storage", url)
    assert code == 1 and "no complete trial" in out
    anyio.run(hpt_delete, url, backend="asyncio")
    code, out, _ = cli(capsys, "studies", "--storage", url)
    assert code == 0 and "no studies" in out


async def hpt_delete(url: str) -> None:
    await SQLiteStorage(url).delete("bad")


def test_the_installed_script(db: str) -> None:
    script = shutil.which("hpt-async", path=os.path.dirname(sys.executable))
    assert script is not None, "the hpt-async console script is not installed next to the interpreter"
    done = subprocess.run(
        [script, "trials", "alpha", "--storage", db], capture_output=True, text=True, timeout=60, check=False
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines()[0].split()[0] == "NUMBER" and len(done.stdout.splitlines()) == 6
    bad = subprocess.run(
        [script, "best", "zz", "--storage", db], capture_output=True, text=True, timeout=60, check=False
    )
    assert bad.returncode == 1 and bad.stderr.strip() == f"hpt-async: error: no study named 'zz' in {db[10:]}"
