"""``hpt-async report`` and the command line's help and one-line errors."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import cli

import hpt_async as hpt
from hpt_async.cli import build_parser, main

SPACE = {"lr": hpt.Float(1e-4, 1.0, log=True), "opt": hpt.Choice(["adam", "sgd"])}


async def objective(trial: hpt.Trial) -> float:
    for step in range(3):
        await trial.report(trial.params["lr"] * (3 - step), step=step)
    return trial.params["lr"]


@pytest.fixture(scope="module")
def db(tmp_path_factory: pytest.TempPathFactory) -> str:
    """A database with study 'tune' (10 complete trials)."""
    url = f"sqlite:///{tmp_path_factory.mktemp('cli') / 'tune.db'}"

    async def fill() -> None:
        await hpt.Tuner(
            objective, SPACE, storage=url, study="tune", max_trials=10, concurrency=2, loggers=[], strategy="random"
        ).run()

    anyio.run(fill, backend="asyncio")
    return url


def test_help_lists_every_command_with_an_example(capsys: Any) -> None:
    parser = build_parser()
    commands = next(a for a in parser._actions if a.dest == "command").choices
    assert "report" in commands
    with pytest.raises(SystemExit) as exc:
        main(["--help"])
    assert exc.value.code == 0
    out = capsys.readouterr().out
    for command in commands:
        assert f"hpt-async {command}" in out, command
        assert command in out.split("examples:")[0], command  # listed with its help line too
    assert "hpt-async report resnet --storage sqlite:///tuning.db -o report.html" in out
    with pytest.raises(SystemExit):
        main(["report", "--help"])
    sub = capsys.readouterr().out
    assert "example:" in sub and "-o FILE" in sub and "--storage URL" in sub


def test_report_writes_an_html_file(db: str, tmp_path: Path, capsys: Any) -> None:
    out_file = tmp_path / "report.html"
    code, out, err = cli(capsys, "report", "tune", "--storage", db, "-o", str(out_file))
    assert code == 0 and err == ""
    assert out.strip() == f"wrote the report of study tune (10 trials: 10 complete) to {out_file}"
    html = out_file.read_text(encoding="utf-8")
    assert "<h1>tune" in html
    for key in ("history", "parallel", "importance", "slices", "intermediate", "timeline"):
        assert f'data-chart="{key}"' in html


def test_report_to_stdout_and_to_the_default_name(db: str, tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    code, out, err = cli(capsys, "report", "tune", "--storage", db, "-o", "-", "--title", "Tuning run")
    assert code == 0 and out.startswith("<!DOCTYPE html>") and "<title>Tuning run</title>" in out and err == ""
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli(capsys, "report", "tune", "--storage", db)
    assert code == 0 and (tmp_path / "tune-report.html").is_file()


@pytest.mark.parametrize(
    ("case", "message"),
    [
        ("unknown study", "no study named 'nope'"),
        ("missing database file", "no database file at"),
        ("unknown scheme", "unknown storage 'mongodb'"),
        ("malformed sqlite URL", "malformed SQLite URL"),
        ("no scheme", "has no scheme"),
        ("missing output directory", "cannot write the report to"),
        ("output is a directory", "it is a directory"),
        ("output cannot be written", "cannot write the report to /dev/full: No space left on device"),
    ],
)
def test_report_errors_are_one_line(db: str, tmp_path: Path, capsys: Any, case: str, message: str) -> None:
    good = str(tmp_path / "r.html")
    argv = {
        "unknown study": ["nope", "--storage", db, "-o", good],
        "missing database file": ["tune", "--storage", f"sqlite:///{tmp_path / 'absent.db'}", "-o", good],
        "unknown scheme": ["tune", "--storage", "mongodb://x/y", "-o", good],
        "malformed sqlite URL": ["tune", "--storage", "sqlite:/x.db", "-o", good],
        "no scheme": ["tune", "--storage", "://x", "-o", good],
        "missing output directory": ["tune", "--storage", db, "-o", str(tmp_path / "no" / "such" / "r.html")],
        "output is a directory": ["tune", "--storage", db, "-o", str(tmp_path)],
        "output cannot be written": ["tune", "--storage", db, "-o", "/dev/full"],
    }[case]
    if case == "output cannot be written" and not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full here")
    code, out, err = cli(capsys, "report", *argv)
    assert code == 1 and out == ""
    assert err.count("\n") == 1 and err.startswith("hpt-async: error: ") and message in err, err
    assert "Traceback" not in err
    assert not (tmp_path / "absent.db").exists() and not os.path.exists(good)
    assert not os.path.isfile("/dev/full")  # a device is written through, never replaced by a file


@pytest.mark.skipif(os.geteuid() == 0, reason="root writes into read-only directories")
def test_report_into_a_read_only_directory(db: str, tmp_path: Path, capsys: Any) -> None:
    locked = tmp_path / "locked"
    locked.mkdir()
    locked.chmod(0o500)
    try:
        code, _, err = cli(capsys, "report", "tune", "--storage", db, "-o", str(locked / "r.html"))
    finally:
        locked.chmod(0o700)
    assert code == 1 and err.count("\n") == 1 and "not writable" in err


def test_the_other_commands_name_a_missing_database_file(tmp_path: Path, capsys: Any) -> None:
    url = f"sqlite:///{tmp_path / 'absent.db'}"
    for command in (["trials", "x"], ["best", "x"], ["export", "x"]):
        code, _, err = cli(capsys, *command, "--storage", url)
        assert code == 1 and err == f"hpt-async: error: no database file at {tmp_path / 'absent.db'}\n"
    assert not (tmp_path / "absent.db").exists()


def test_the_installed_script_fails_in_one_line(db: str, tmp_path: Path) -> None:
    script = shutil.which("hpt-async", path=os.path.dirname(sys.executable))
    assert script is not None
    bad = subprocess.run(
        [script, "report", "zz", "--storage", db, "-o", str(tmp_path / "zz.html")],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert bad.returncode == 1 and bad.stderr.strip() == f"hpt-async: error: no study named 'zz' in {db[10:]}"
    assert bad.stdout == "" and not (tmp_path / "zz.html").exists()
