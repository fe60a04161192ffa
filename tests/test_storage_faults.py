"""Faults of storage and its readers: malformed rows, formula cells in CSV, escapes in the CLI."""

from __future__ import annotations

import csv
import io
import sqlite3
from pathlib import Path

import anyio
import pytest

import hpt_async as hpt
import hpt_async.cli as cli
from hpt_async._csv import guard_cell, unguard_cell
from hpt_async.exceptions import MalformedRowWarning
from hpt_async.storage.sqlite import SQLiteStorage

SPACE = {"x": hpt.Float(0.0, 1.0), "kind": hpt.Choice(["a", "b"])}


def make_study(db: Path, n: int = 5, attrs: dict[str, object] | None = None, space: dict | None = None) -> None:
    async def objective(trial: hpt.Trial) -> float:
        await trial.report(0.5, step=0)
        for key, value in (attrs or {}).items():
            trial.set_user_attr(key, value)
        return min(v for v in trial.params.values() if isinstance(v, float))

    tuner = hpt.Tuner(
        objective,
        space or SPACE,
        storage=f"sqlite:///{db}",
        study="s",
        max_trials=n,
        loggers=[],
        seed=1,
        strategy="random",
    )
    anyio.run(tuner.run, backend="asyncio")


def test_malformed_rows_are_left_out_and_named_and_the_rest_loads(tmp_path: Path) -> None:
    db = tmp_path / "bad.db"
    make_study(db)
    con = sqlite3.connect(db)
    con.execute("UPDATE trials SET params = '{not json' WHERE number = 1")
    con.execute("UPDATE trials SET state = 'bogus' WHERE number = 3")
    con.execute("UPDATE reports SET objective_values = '[oops' WHERE number = 4")
    con.commit()
    con.close()
    with pytest.warns(MalformedRowWarning) as caught:
        study = hpt.load_study(f"sqlite:///{db}", "s")
    assert [t.number for t in study.trials] == [0, 2, 4]
    assert dict(study.trials[2].reports) == {}  # its malformed report is left out, the trial is not
    message = str(caught[0].message)
    assert "trial 1" in message and "trial 3" in message and "trial 4 at step 0" in message

    async def watch() -> list[int]:
        reader = await SQLiteStorage(f"sqlite:///{db}").watch("s")
        try:
            return [r.number for r in await reader.read()]
        finally:
            await reader.close()

    with pytest.warns(MalformedRowWarning):
        assert anyio.run(watch, backend="asyncio") == [0, 2, 4]
    with pytest.warns(MalformedRowWarning):
        assert cli.main(["trials", "s", "--storage", f"sqlite:///{db}"]) == 0


def test_guard_cell_and_its_inverse() -> None:
    for text in ('=HYPERLINK("http://x")', "+1", "-cmd", "@SUM(A1)", "\tx", "\rx", "'=x", "''+y"):
        guarded = guard_cell(text)
        assert guarded == "'" + text
        assert unguard_cell(guarded) == text
    for text in ("plain", "'quoted", "", "a=b", "'", "''"):
        assert guard_cell(text) == text and unguard_cell(text) == text
    for number in (-1, -0.5, 3, True):
        assert guard_cell(number) is number


def test_csv_export_neutralises_formula_text_and_never_numbers(tmp_path: Path) -> None:
    db = tmp_path / "f.db"
    space = {"x": hpt.Float(-1.0, -0.5), "kind": hpt.Choice(["=1+1", "-x", "@a"])}
    make_study(db, n=4, attrs={"link": '=HYPERLINK("http://evil")', "neg": -3}, space=space)
    text = hpt.load_study(f"sqlite:///{db}", "s").to_csv()
    assert text is not None
    rows = list(csv.DictReader(io.StringIO(text)))
    for row in rows:
        assert row["user_attrs_link"] == '\'=HYPERLINK("http://evil")'
        assert row["user_attrs_neg"] == "-3"  # a number: untouched
        assert row["params_x"].startswith("-") and float(row["params_x"]) < 0
        assert row["params_kind"][0] == "'" and unguard_cell(row["params_kind"]) in ("=1+1", "-x", "@a")
        assert row["value"].startswith("-")


def test_trials_and_best_print_control_characters_escaped(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    db = tmp_path / "esc.db"
    space = {"x\x1b]0;pwned\x07": hpt.Float(0.0, 1.0), "kind": hpt.Choice(["a\x1b[2J", "b"])}
    make_study(db, n=2, attrs={"k\x1b[2Jey": "v\x9b"}, space=space)
    assert cli.main(["trials", "s", "--storage", f"sqlite:///{db}"]) == 0
    assert cli.main(["best", "s", "--storage", f"sqlite:///{db}"]) == 0
    out = capsys.readouterr().out
    assert "\x1b" not in out and "\x07" not in out and "\x9b" not in out
    assert "\\x1b]0;pwned\\x07" in out and "k\\x1b[2Jey" in out
