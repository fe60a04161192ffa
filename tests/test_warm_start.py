"""Warm starts: Tuner.add_trials from records, a stored study, a DataFrame or a CSV file."""

from __future__ import annotations

import enum
import logging
from pathlib import Path
from typing import Any

import pytest

import hpt_async as hpt
from hpt_async.warm_start import WarmStartError, read_trials, unguard_cell

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["a", "b"])}


class Colour(enum.Enum):
    RED = 1
    BLUE = 2


RICH = {
    "lr": hpt.Float(1e-4, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "units": hpt.Int(16, 256, when={"layers": [3, 4]}),
    "optimizer": hpt.Choice(["adam", ("sgd", "nesterov"), None, "=cmd|' /C calc'!A0", "-x"]),
    "flag": hpt.Choice([True, False]),
    "colour": hpt.Choice([Colour.RED, Colour.BLUE]),
}


async def square(trial: hpt.Trial) -> float:
    return (trial.params["x"] - 0.8) ** 2


async def reporting(trial: hpt.Trial) -> float:
    for step in range(3):
        await trial.report(trial.params["x"] + step, step=step)
    trial.set_user_attr("note", f"n{trial.number}")
    return trial.params["x"]


async def rich_objective(trial: hpt.Trial) -> float:
    await trial.report(trial.params["lr"], step=0)
    trial.set_user_attr("tag", "@home" if trial.number % 2 else "+1")
    trial.set_user_attr("shape", [trial.params["layers"], 2])
    return trial.params["lr"] * trial.params["layers"]


async def source_study(objective: Any = square, space: Any = SPACE, n: int = 20, **kw: Any) -> hpt.StudyResult:
    kw.setdefault("strategy", "random")
    return await hpt.Tuner(objective, space, max_trials=n, loggers=[], seed=1, **kw).run()


def comparable(record: hpt.TrialRecord) -> tuple[Any, ...]:
    return (record.state, dict(record.params), record.value, dict(record.reports), dict(record.user_attrs))


async def test_added_trials_get_study_numbers_and_count_toward_max_trials() -> None:
    source = await source_study(reporting, n=6)
    tuner = hpt.Tuner(reporting, SPACE, max_trials=9, loggers=[], seed=0, strategy="random")
    assert tuner.add_trials(source) == 6
    result = await tuner.run()
    assert [t.number for t in result.trials] == list(range(9))
    assert [comparable(t) for t in result.trials[:6]] == [comparable(t) for t in source.trials]
    assert [t.started for t in result.trials[:6]] == [t.started for t in source.trials]
    assert result.reason == "max_trials"


async def test_a_model_based_strategy_learns_from_added_trials() -> None:
    source = await source_study(n=24)

    async def first_suggestions(added: bool, strategy: Any) -> list[float]:
        tuner = hpt.Tuner(None, SPACE, strategy=strategy, loggers=[], seed=0)
        if added:
            tuner.add_trials(source.trials)
        xs = []
        for _ in range(4):
            trial = await tuner.ask()
            xs.append(trial.params["x"])
            await tuner.tell(trial, (trial.params["x"] - 0.8) ** 2)
        await tuner.close()
        return xs

    for strategy in ({"name": "tpe", "n_initial": 10}, {"name": "bayes", "n_initial": 10}):
        cold = await first_suggestions(False, strategy)
        warm = await first_suggestions(True, strategy)
        assert warm != cold
        # Cold, the first ten are random draws; warm, the model knows the optimum is near 0.8.
        assert max(abs(x - 0.8) for x in warm) < 0.2, (strategy, warm)
        assert max(abs(x - 0.8) for x in cold) > 0.2, (strategy, cold)


async def test_a_pruner_learns_from_added_reports() -> None:
    source = await source_study(reporting, n=6)

    async def worse(trial: hpt.Trial) -> float:
        for step in range(3):
            await trial.report(10.0 + step, step=step)
        return 10.0

    pruner = {"name": "median", "min_trials": 3}
    cold = await hpt.Tuner(worse, SPACE, pruner=pruner, max_trials=1, loggers=[], seed=0, strategy="random").run()
    assert cold.trials[0].state is hpt.TrialState.COMPLETE  # no other trial to compare with
    tuner = hpt.Tuner(worse, SPACE, pruner=pruner, max_trials=7, loggers=[], seed=0, strategy="random")
    tuner.add_trials(source)
    warm = await tuner.run()
    assert warm.trials[6].state is hpt.TrialState.PRUNED
    assert dict(warm.trials[6].reports) == {0: 10.0}


async def test_a_dataframe_from_load_study_round_trips(tmp_path: Path) -> None:
    pytest.importorskip("pandas")
    url = f"sqlite:///{tmp_path / 'a.db'}"
    source = await source_study(rich_objective, RICH, n=12, storage=url, study="src")
    frame = (await hpt.load_study_async(url, "src", space=RICH)).to_dataframe()
    tuner = hpt.Tuner(rich_objective, RICH, max_trials=12, loggers=[], seed=0, strategy="random")
    assert tuner.add_trials(frame) == 12
    result = await tuner.run()
    assert [comparable(t) for t in result.trials] == [comparable(t) for t in source.trials]


async def test_a_study_loaded_without_its_space_is_read_back(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    source = await source_study(rich_objective, RICH, n=8, storage=url, study="src")
    described = await hpt.load_study_async(url, "src")  # Choice values as JSON descriptions
    assert any(not isinstance(t.params["colour"], Colour) for t in described.trials)
    tuner = hpt.Tuner(rich_objective, RICH, max_trials=8, loggers=[], seed=0, strategy="random")
    assert tuner.add_trials(described) == 8
    result = await tuner.run()
    assert [comparable(t) for t in result.trials] == [comparable(t) for t in source.trials]


async def test_a_csv_export_round_trips_and_its_formula_guard_is_undone(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'a.db'}"
    source = await source_study(rich_objective, RICH, n=12, storage=url, study="src")
    path = tmp_path / "src.csv"
    (await hpt.load_study_async(url, "src")).to_csv(path)
    # The export guards text cells a spreadsheet would run as formulas; guard them here whether or not it did.
    text = path.read_text(encoding="utf-8")
    for raw in ("=cmd|' /C calc'!A0", "@home", "+1"):
        text = text.replace(f"''{raw}", raw).replace(f"'{raw}", raw)
        text = text.replace(raw, "'" + raw)
    path.write_text(text, encoding="utf-8")
    assert "'@home" in text
    tuner = hpt.Tuner(rich_objective, RICH, max_trials=12, loggers=[], seed=0, strategy="random")
    assert tuner.add_trials(path) == 12
    assert tuner.add_trials(str(path)) == 12  # a str path works too; equal records are stored once
    result = await tuner.run()
    assert [comparable(t) for t in result.trials] == [comparable(t) for t in source.trials]
    assert {t.user_attrs["tag"] for t in result.trials} == {"@home", "+1"}


def test_unguard_cell_undoes_the_export_guard_exactly() -> None:
    assert unguard_cell("'=SUM(A1)") == "=SUM(A1)"
    assert unguard_cell("'-x") == "-x"
    assert unguard_cell("'@a") == "@a"
    assert unguard_cell("'\tx") == "\tx"
    assert unguard_cell("''=x") == "'=x"  # a text that began with a quote and a formula start got one more
    assert unguard_cell("'plain") == "'plain"
    assert unguard_cell("'") == "'"
    assert unguard_cell("-0.5") == "-0.5"
    assert unguard_cell("=x") == "=x"


@pytest.mark.parametrize(
    ("params", "named"),
    [
        ({"x": 0.5}, "'k' is missing"),
        ({"x": 0.5, "k": "a", "z": 1}, "'z'"),
        ({"x": 1.5, "k": "a"}, "'x'"),
        ({"x": 0.5, "k": "c"}, "'k'"),
    ],
)
def test_a_record_that_does_not_fit_is_refused_naming_the_parameter(params: dict[str, Any], named: str) -> None:
    good = hpt.TrialRecord(0, hpt.TrialState.COMPLETE, {"x": 0.1, "k": "a"}, 0.5)
    bad = hpt.TrialRecord(7, hpt.TrialState.COMPLETE, params, 0.25)
    tuner = hpt.Tuner(square, SPACE, loggers=[], strategy="random")
    with pytest.raises(WarmStartError, match=named) as info:
        tuner.add_trials([good, bad])
    assert "record 1 (trial 7)" in str(info.value)
    assert isinstance(info.value, hpt.HptError) and isinstance(info.value, ValueError)
    assert tuner._added == []  # nothing added


async def test_on_invalid_skip_drops_the_bad_records_with_a_warning(caplog: Any) -> None:
    rows = [
        {"number": 0, "state": "complete", "value": 0.5, "params_x": 0.2, "params_k": "a"},
        {"number": 1, "state": "complete", "value": 0.5, "params_x": 3.0, "params_k": "a"},
        {"number": 2, "state": "running", "value": None, "params_x": 0.3, "params_k": "b"},
        {"number": 3, "state": "pruned", "value": None, "params_x": 0.4, "params_k": "b", "reports": {"0": 2.5}},
        {"number": 4, "state": "complete", "value": None, "params_x": 0.4, "params_k": "b"},
    ]
    tuner = hpt.Tuner(square, SPACE, max_trials=3, loggers=[], seed=0, strategy="random")
    with caplog.at_level(logging.WARNING, logger="hpt_async"):
        assert tuner.add_trials(rows, on_invalid="skip") == 2
    assert "row 1 (trial 1)" in caplog.text and "'x'" in caplog.text
    assert "row 4 (trial 4)" in caplog.text and "finite value" in caplog.text
    result = await tuner.run()
    assert [t.state.value for t in result.trials] == ["complete", "pruned", "complete"]
    assert result.trials[1].value == 2.5 and dict(result.trials[1].reports) == {0: 2.5}
    with pytest.raises(ValueError, match="on_invalid"):
        tuner.add_trials(rows, on_invalid="ignore")


async def test_add_trials_after_the_study_opened_is_refused() -> None:
    tuner = hpt.Tuner(None, SPACE, loggers=[], strategy="random")
    await tuner.ask()
    with pytest.raises(RuntimeError, match="before run"):
        tuner.add_trials([])
    await tuner.close()


async def test_a_resumed_script_adds_its_trials_once(tmp_path: Path) -> None:
    source = await source_study(n=5)
    url = f"sqlite:///{tmp_path / 'b.db'}"
    for budget in (7, 9):
        tuner = hpt.Tuner(
            square, SPACE, storage=url, study="warm", max_trials=budget, loggers=[], seed=0, strategy="random"
        )
        tuner.add_trials(source)
        result = await tuner.run()
        assert len(result.trials) == budget
    stored = await hpt.load_study_async(url, "warm", space=SPACE)
    assert [comparable(t) for t in stored.trials[:5]] == [comparable(t) for t in source.trials]
    assert len(stored.trials) == 9


async def test_several_objectives_need_records_with_every_value() -> None:
    async def two(trial: hpt.Trial) -> tuple[float, float]:
        return trial.params["x"], 1 - trial.params["x"]

    source = await hpt.Tuner(
        two, SPACE, direction=("minimize", "minimize"), max_trials=4, loggers=[], strategy="random"
    ).run()
    tuner = hpt.Tuner(two, SPACE, direction=("minimize", "minimize"), max_trials=6, loggers=[], strategy="random")
    assert tuner.add_trials(source) == 4
    result = await tuner.run()
    assert [t.values for t in result.trials[:4]] == [t.values for t in source.trials]
    rows = [{"state": "complete", "value": 0.5, "params_x": 0.5, "params_k": "a"}]
    with pytest.raises(WarmStartError, match="one value per objective"):
        hpt.Tuner(two, SPACE, direction=("minimize", "minimize"), strategy="random").add_trials(rows)
    with pytest.raises(WarmStartError, match="one objective"):
        hpt.Tuner(square, SPACE, strategy="random").add_trials(source)


def test_read_trials_refuses_what_it_cannot_read(tmp_path: Path) -> None:
    space = hpt.Space(SPACE)
    with pytest.raises(WarmStartError, match="cannot read"):
        read_trials(tmp_path / "missing.csv", space)
    with pytest.raises(TypeError, match="add_trials"):
        read_trials(42, space)
    with pytest.raises(WarmStartError, match="not a trial state"):
        read_trials([{"state": "done", "params_x": 0.1, "params_k": "a"}], space)
    with pytest.raises(WarmStartError, match="reports"):
        read_trials([{"state": "complete", "value": 1, "params_x": 0.1, "params_k": "a", "reports": "[1]"}], space)


def test_failed_rows_keep_their_error() -> None:
    rows = [{"state": "failed", "params_x": 0.1, "params_k": "b", "error": "boom", "started": "5.0"}]
    (record,) = read_trials(rows, hpt.Space(SPACE))
    assert record.state is hpt.TrialState.FAILED and record.error == "boom" and record.value is None
    assert record.started == record.ended == 5.0
