"""import_optuna and ``hpt-async import-optuna`` on real Optuna SQLite studies."""

from __future__ import annotations

import math
import sys
from pathlib import Path
from typing import Any

import anyio
import pytest

optuna = pytest.importorskip("optuna")

import hpt_async as hpt  # noqa: E402
from hpt_async.cli import main  # noqa: E402
from hpt_async.optuna_import import OptunaImportError, OptunaNotInstalled, import_optuna  # noqa: E402

optuna.logging.set_verbosity(optuna.logging.ERROR)


def objective(trial: Any) -> float:
    lr = trial.suggest_float("lr", 1e-4, 1e-1, log=True)
    dropout = trial.suggest_float("dropout", 0.0, 0.5, step=0.1)
    units = trial.suggest_int("units", 16, 256, log=True)
    layers = trial.suggest_int("layers", 1, 7, step=2)
    model = trial.suggest_categorical("model", ["mlp", "svm", None])
    loss = math.log10(lr) ** 2 / 10 + dropout + layers / 10 + (0 if units > 64 else 0.3)
    if model == "svm":
        loss += trial.suggest_float("gamma", 0.01, 1.0)
    trial.set_user_attr("units_seen", units)
    if trial.number == 3:
        raise ArithmeticError("diverged")
    for step in range(4):
        trial.report(loss + (3 - step) * 0.1, step)
        if trial.should_prune():
            raise optuna.TrialPruned()
    return loss


def make_optuna_study(path: Path, name: str = "opt", n: int = 24) -> Any:
    study = optuna.create_study(
        study_name=name,
        storage=f"sqlite:///{path}",
        sampler=optuna.samplers.RandomSampler(seed=0),
        pruner=optuna.pruners.MedianPruner(n_startup_trials=4, n_warmup_steps=0),
    )
    study.optimize(objective, n_trials=n, catch=(ArithmeticError,))
    study.enqueue_trial({"lr": 0.01})  # left WAITING: not imported
    return study


def test_an_optuna_study_becomes_a_hpt_async_study(tmp_path: Path) -> None:
    source = make_optuna_study(tmp_path / "optuna.db")
    url = f"sqlite:///{tmp_path / 'hpt.db'}"
    summary = import_optuna(f"sqlite:///{tmp_path / 'optuna.db'}", "opt", url)

    space = summary.space
    expected = hpt.Space(
        {
            "lr": hpt.Float(1e-4, 1e-1, log=True),
            "dropout": hpt.Float(0.0, 0.5, step=0.1),
            "units": hpt.Int(16, 256, log=True),
            "layers": hpt.Int(1, 7, step=2),
            "model": hpt.Choice(["mlp", "svm", None]),
            "gamma": hpt.Float(0.01, 1.0, when={"model": ["svm"]}),
        }
    )
    assert space.describe() == expected.describe()
    assert summary.direction == "minimize"

    theirs = [t for t in source.get_trials() if t.state.is_finished()]
    ours = hpt.load_study(url, "opt", space=space).trials
    assert summary.imported == len(ours) == len(theirs) == 24 and summary.skipped == 1
    states = {"COMPLETE": "complete", "PRUNED": "pruned", "FAIL": "failed"}
    assert {t.state.name for t in theirs} == set(states)  # the fixture has every state
    for mine, t in zip(ours, theirs, strict=True):
        assert mine.state.value == states[t.state.name]
        assert dict(mine.params) == t.params
        assert dict(mine.reports) == pytest.approx(dict(t.intermediate_values))
        assert dict(mine.user_attrs) == t.user_attrs
        assert mine.started == pytest.approx(t.datetime_start.timestamp())
        if t.state.name == "COMPLETE":
            assert mine.value == pytest.approx(t.value)
        if t.state.name == "PRUNED":
            assert mine.value == pytest.approx(t.intermediate_values[max(t.intermediate_values)])
        if t.state.name == "FAIL":
            assert mine.error == t.system_attrs.get("fail_reason", "FAIL in Optuna (which keeps no error message)")

    # A Tuner goes on from there: the imported trials count toward max_trials and inform the strategy.
    async def loss(trial: hpt.Trial) -> float:
        return trial.params["lr"]

    tuner = hpt.Tuner(loss, space, strategy="tpe", storage=url, study="opt", max_trials=27, loggers=[], seed=0)
    result = anyio.run(tuner.run)
    assert len(result.trials) == 27 and [t.number for t in result.trials] == list(range(27))


def test_several_objectives_keep_every_value(tmp_path: Path) -> None:
    study = optuna.create_study(
        study_name="two", storage=f"sqlite:///{tmp_path / 'o.db'}", directions=["minimize", "maximize"]
    )
    study.optimize(lambda t: (t.suggest_float("x", 0, 1), t.suggest_int("n", 1, 3)), n_trials=5)
    summary = import_optuna(f"sqlite:///{tmp_path / 'o.db'}", None, f"sqlite:///{tmp_path / 'h.db'}")
    assert summary.direction == ("minimize", "maximize")
    ours = hpt.load_study(f"sqlite:///{tmp_path / 'h.db'}", "two").trials
    assert [r.values for r in ours] == [tuple(t.values) for t in study.trials]


def test_the_command_imports_and_refuses_a_second_import(tmp_path: Path, capsys: Any, monkeypatch: Any) -> None:
    make_optuna_study(tmp_path / "optuna.db", n=6)
    monkeypatch.chdir(tmp_path)
    argv = ["import-optuna", "--from", "sqlite:///optuna.db", "--study", "opt", "--storage", "hpt.db"]
    assert main(argv) == 0
    out = capsys.readouterr().out
    assert "imported 6 trials" in out and "1 unfinished" in out and "study opt of sqlite:///hpt.db" in out
    assert len(hpt.load_study("sqlite:///hpt.db", "opt").trials) == 6
    assert main(argv) == 1
    assert "already holds a study named 'opt'" in capsys.readouterr().err
    assert main([*argv, "--as", "opt-2"]) == 0
    assert main(["import-optuna", "--from", "sqlite:///optuna.db", "--study", "nope", "--storage", "hpt.db"]) == 1
    assert "no Optuna study named 'nope'" in capsys.readouterr().err


def test_a_parameter_no_choice_decides_is_refused(tmp_path: Path) -> None:
    def sometimes(trial: Any) -> float:
        x = trial.suggest_float("x", 0, 1)
        if x > 0.5:
            return x + trial.suggest_float("y", 0, 1)
        return x

    study = optuna.create_study(study_name="s", storage=f"sqlite:///{tmp_path / 'o.db'}")
    study.optimize(sometimes, n_trials=12)
    with pytest.raises(OptunaImportError, match="parameter 'y' is set in only some trials"):
        import_optuna(f"sqlite:///{tmp_path / 'o.db'}", "s", f"sqlite:///{tmp_path / 'h.db'}")


def test_without_optuna_the_error_says_how_to_install_it(tmp_path: Path, monkeypatch: Any, capsys: Any) -> None:
    monkeypatch.setitem(sys.modules, "optuna", None)
    with pytest.raises(OptunaNotInstalled, match="pip install optuna"):
        import_optuna("sqlite:///x.db", "s", f"sqlite:///{tmp_path / 'h.db'}")
    assert main(["import-optuna", "--from", "sqlite:///x.db", "--storage", str(tmp_path / "h.db")]) == 1
    assert "pip install optuna" in capsys.readouterr().err
