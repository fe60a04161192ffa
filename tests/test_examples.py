"""The examples in examples/ run, small, and print what they claim.

Each example runs as a script in a fresh interpreter (``sys.executable``, so
any virtual environment works), exactly as a reader would run it; a few also
run in-process through their ``main(argv)`` to check the returned result.
"""

from __future__ import annotations

import ast
import importlib.util
import math
import subprocess
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

import hpt_async as hpt

EXAMPLES = Path(__file__).resolve().parent.parent / "examples"
# Guards against a hung example only; a healthy small run takes a second or two.
TIMEOUT = 180


def run_example(name: str, *args: str) -> dict[str, str]:
    """Run ``examples/<name>`` with ``args``; return its ``key: value`` output lines as a dict."""
    proc = subprocess.run(
        [sys.executable, str(EXAMPLES / name), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=EXAMPLES.parent,
    )
    assert proc.returncode == 0, (
        f"{name} {args} exited {proc.returncode}\nstdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    )
    assert "Traceback" not in proc.stderr, proc.stderr
    out: dict[str, str] = {}
    for line in proc.stdout.splitlines():
        key, sep, value = line.partition(": ")
        if sep and not line.startswith(" "):
            out[key] = value
    return out


def load_example(name: str) -> ModuleType:
    """Import ``examples/<name>`` as a module without running its ``__main__`` block."""
    spec = importlib.util.spec_from_file_location(f"example_{Path(name).stem}", EXAMPLES / name)
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def number(text: str) -> float:
    """Parse a printed number, failing the test when it is not a finite one."""
    value = float(text)
    assert math.isfinite(value), text
    return value


def trial_counts(out: dict[str, str]) -> tuple[int, int, int]:
    """``(total, complete, failed)`` from a ``trials: N (C complete, F failed)`` line."""
    total, _, rest = out["trials"].partition(" (")
    complete, _, failed = rest.rstrip(")").partition(" complete, ")
    return int(total), int(complete), int(failed.removesuffix(" failed"))


def best_params(out: dict[str, str]) -> dict[str, Any]:
    """The printed best configuration, parsed back into a dict."""
    params = ast.literal_eval(out["best params"])
    assert isinstance(params, dict)
    return params


# -- quickstart -----------------------------------------------------------------

QUICK = ["--trials", "12", "--concurrency", "4", "--epochs", "3", "--epoch-seconds", "0"]


def test_quickstart_runs_the_trials_asked_and_prints_the_best(tmp_path: Path) -> None:
    out = run_example("quickstart.py", *QUICK, "--seed", "0", "--storage", f"sqlite:///{tmp_path / 'q.db'}")
    assert trial_counts(out) == (12, 12, 0)
    value = number(out["best value"])
    # The synthetic loss never goes below its floor of 0.05 (and starts at 1.0).
    assert 0.05 < value < 1.5
    params = best_params(out)
    assert set(params) >= {"lr", "layers", "optimizer"}
    assert 1e-5 <= params["lr"] <= 1e-1
    assert params["optimizer"] in ("adam", "sgd")
    # Conditional parameters: a layer's width exists exactly when the layer does.
    assert ("units_3" in params) == (params["layers"] >= 3)
    assert ("units_4" in params) == (params["layers"] == 4)
    assert 0 <= int(out["best trial"]) < 12


def test_quickstart_is_reproducible_from_its_seed_whatever_the_concurrency(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    # Trial n's configuration depends only on (seed, n), and the synthetic loss only on
    # the configuration and n, so no result can depend on completion order.
    quickstart = load_example("quickstart.py")
    small = ["--trials", "12", "--epochs", "3", "--epoch-seconds", "0", "--storage", f"sqlite:///{tmp_path / 'q.db'}"]
    first = quickstart.main([*small, "--concurrency", "4", "--seed", "3"])
    again = quickstart.main([*small, "--concurrency", "1", "--seed", "3"])
    other = quickstart.main([*small, "--concurrency", "4", "--seed", "4"])
    capsys.readouterr()

    def trials(result: hpt.StudyResult) -> list[tuple[int, dict[str, Any], float | None]]:
        return [(t.number, dict(t.params), t.value) for t in result.trials]

    assert trials(first) == trials(again)
    assert first.best is not None and again.best is not None
    assert (first.best.number, first.best.value) == (again.best.number, again.best.value)
    assert [p for _, p, _ in trials(other)] != [p for _, p, _ in trials(first)]


def test_quickstart_main_reports_every_epoch(capsys: pytest.CaptureFixture[str]) -> None:
    quickstart = load_example("quickstart.py")
    args = ["--trials", "6", "--concurrency", "3", "--epochs", "4", "--epoch-seconds", "0", "--storage", "memory"]
    result = quickstart.main(args)
    assert isinstance(result, hpt.StudyResult)
    assert len(result.trials) == 6
    assert all(t.state is hpt.TrialState.COMPLETE for t in result.trials)
    for t in result.trials:
        assert sorted(t.reports) == [0, 1, 2, 3]
        assert t.value == t.reports[3]  # the objective returns its last reported loss
    assert result.best is not None
    assert result.best.value == min(t.value for t in result.trials)
    assert f"best value: {result.best.value}" in capsys.readouterr().out


# -- async_io -------------------------------------------------------------------


def test_async_io_runs_the_trials_asked_and_prints_a_speedup() -> None:
    out = run_example("async_io.py", "--trials", "16", "--concurrency", "8", "--seed", "0")
    assert trial_counts(out) == (16, 16, 0)
    assert out["concurrency"] == "8"
    assert number(out["wall time"].removesuffix(" s")) > 0
    sequential = number(out["sequential time (sum of trial durations)"].removesuffix(" s"))
    speedup = number(out["speedup over sequential"].removesuffix("x"))
    assert sequential > 0 and speedup > 0
    slowest = [number(d.removesuffix(" s")) for d in out["slowest trials"].split(", ")]
    assert len(slowest) == 3 and slowest == sorted(slowest, reverse=True)
    number(out["best value"])
    params = best_params(out)
    assert params["batch_size"] in (32, 64, 128, 256)
    assert 1 <= params["replicas"] <= 8


def test_async_io_main_waits_for_every_replica(capsys: pytest.CaptureFixture[str]) -> None:
    async_io = load_example("async_io.py")
    result = async_io.main(["--trials", "8", "--concurrency", "8", "--seed", "1"])
    assert len(result.trials) == 8
    for t in result.trials:
        assert t.state is hpt.TrialState.COMPLETE
        # A trial lasts at least as long as its slowest remote reply.
        slowest = t.user_attrs["slowest_reply_s"]
        assert 0.05 <= slowest <= t.duration + 1e-3
    assert "speedup over sequential: " in capsys.readouterr().out


# -- sklearn_model --------------------------------------------------------------


def test_sklearn_example_tunes_with_sobol() -> None:
    pytest.importorskip("sklearn")
    out = run_example("sklearn_model.py", "--trials", "8", "--concurrency", "2", "--seed", "0")
    assert trial_counts(out) == (8, 8, 0)
    assert out["stopped because"] == "max_trials"
    assert 0.0 <= number(out["default SGDClassifier accuracy"]) <= 1.0
    accuracy = number(out["best value"])
    assert 0.5 < accuracy <= 1.0  # the best of 8 linear models on this data set is far above chance
    params = best_params(out)
    assert params["loss"] in ("hinge", "log_loss", "modified_huber")
    assert ("l1_ratio" in params) == (params["penalty"] == "elasticnet")


def test_sklearn_example_grid_visits_each_point_once(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    sklearn_model = load_example("sklearn_model.py")
    # 2 alphas x 3 losses x (l2 + l1 + elasticnet with 2 l1_ratios) = 24 points, fewer than asked.
    result = sklearn_model.main(["--strategy", "grid", "--grid-points", "2", "--trials", "100", "--concurrency", "3"])
    assert result.reason == hpt.StopReason.EXHAUSTED
    assert len(result.trials) == 24
    assert all(t.state is hpt.TrialState.COMPLETE for t in result.trials)
    points = {tuple(sorted(t.params.items())) for t in result.trials}
    assert len(points) == 24
    for t in result.trials:
        assert sorted(t.reports) == list(range(sklearn_model.FOLDS))  # one report per fold, synchronously
    assert result.best is not None and result.best.value == max(t.value for t in result.trials)
    out = capsys.readouterr().out
    assert "trials: 24 (24 complete, 0 failed)" in out
    assert f"best value: {result.best.value}" in out


def test_quickstart_saves_its_study_and_a_second_run_resumes_it(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    quickstart = load_example("quickstart.py")
    url = f"sqlite:///{tmp_path / 'q.db'}"
    common = ["--epochs", "2", "--epoch-seconds", "0", "--storage", url, "--study", "mine", "--seed", "5"]
    first = quickstart.main(["--trials", "5", *common])
    stored = hpt.load_study(url, "mine")
    assert [t.number for t in stored.trials] == [0, 1, 2, 3, 4]
    second = quickstart.main(["--trials", "9", *common])
    capsys.readouterr()
    assert [t.number for t in second.trials] == list(range(9))
    # The first five trials are the stored ones, not run again.
    assert [(t.number, t.value) for t in second.trials[:5]] == [(t.number, t.value) for t in first.trials]
    assert len(hpt.load_study(url, "mine").trials) == 9


# -- ask_tell -------------------------------------------------------------------

ASK_TELL = ["--trials", "24", "--workers", "4", "--epochs", "9", "--epoch-seconds", "0", "--seed", "0"]


def ask_tell_counts(out: dict[str, str]) -> tuple[int, int, int, int]:
    """``(total, complete, pruned, failed)`` from a ``trials: N (C complete, P pruned, F failed)`` line."""
    total, _, rest = out["trials"].partition(" (")
    parts = [part.split(" ") for part in rest.rstrip(")").split(", ")]
    counts = {state: int(n) for n, state in parts}
    assert set(counts) == {"complete", "pruned", "failed"}, out["trials"]
    return int(total), counts["complete"], counts["pruned"], counts["failed"]


def test_ask_tell_runs_its_own_loop_prunes_and_prints_the_best(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'at.db'}"
    out = run_example("ask_tell.py", *ASK_TELL, "--storage", url, "--study", "at")
    total, complete, pruned, failed = ask_tell_counts(out)
    assert (total, failed) == (24, 0)
    assert complete + pruned == 24
    assert complete > 0 and pruned > 0  # ASHA stops some trials and lets the best finish
    assert out["pruner"] == "asha"
    assert out["study"] == f"at in {url}"
    trained, _, rest = out["epochs trained by this run"].partition(" of ")
    assert rest == f"{24 * 9} without pruning"
    assert 9 * complete < int(trained) < 24 * 9  # pruned trials stopped early
    assert 1 <= int(out["most trials open at once"]) <= 4
    assert 0.1 < number(out["best value"]) < 1.5  # the synthetic loss never goes below its floor of 0.1
    params = best_params(out)
    assert set(params) == {"lr", "momentum", "batch_size"}
    assert params["batch_size"] in (16, 32, 64, 128, 256)
    # Every trial the script told is in the SQLite file, ended as printed.
    stored = hpt.load_study(url, "at")
    assert sorted(t.number for t in stored.trials) == list(range(24))
    assert stored.count("complete") == complete and stored.count("pruned") == pruned
    assert stored.best is not None and stored.best.number == int(out["best trial"])


def test_ask_tell_main_with_the_median_pruner_tells_each_trial_how_it_ended(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    ask_tell = load_example("ask_tell.py")
    url = f"sqlite:///{tmp_path / 'at.db'}"
    result = ask_tell.main([*ASK_TELL, "--pruner", "median", "--storage", url, "--study", "m"])
    assert isinstance(result, hpt.StudyResult)
    assert len(result.trials) == 24
    assert {t.state for t in result.trials} == {hpt.TrialState.COMPLETE, hpt.TrialState.PRUNED}
    for t in result.trials:
        if t.state is hpt.TrialState.COMPLETE:
            assert sorted(t.reports) == list(range(9))
            assert t.value == t.reports[8]  # told the last epoch's loss
        else:
            assert len(t.reports) < 9
            assert t.value == t.reports[max(t.reports)]  # a pruned trial keeps its last reported loss
    assert result.best is not None
    assert result.best.value == min(t.value for t in result.trials if t.state is hpt.TrialState.COMPLETE)
    out = capsys.readouterr().out
    assert "pruner: median" in out
    assert f"best value: {result.best.value}" in out
    # The same study named again goes on from where it stopped.
    again = ask_tell.main([*ASK_TELL, "--trials", "6", "--pruner", "median", "--storage", url, "--study", "m"])
    capsys.readouterr()
    assert [t.number for t in again.trials] == list(range(30))


# -- sklearn_search_cv ------------------------------------------------------------


def test_sklearn_search_cv_example_prunes_and_scores(tmp_path: Path) -> None:
    pytest.importorskip("sklearn")
    small = ("--samples", "300", "--folds", "3", "--jobs", "2", "--storage", f"sqlite:///{tmp_path / 's.db'}")
    out = run_example("sklearn_search_cv.py", "--trials", "10", *small)
    total, rest = out["candidates"].split(" ", 1)
    complete, pruned = (int(part.split()[0]) for part in rest.strip("()").split(", "))
    assert int(total) == 10 and complete + pruned == 10 and complete >= 1
    fits, of = (int(n) for n in out["fold fits"].split(" of "))
    assert of == 30 and 10 <= fits <= 30
    assert (fits < 30) == (pruned > 0)  # a pruned candidate skipped folds
    assert 0.5 < number(out["best cv accuracy"]) <= 1.0
    assert 0.5 < number(out["held-out accuracy"]) <= 1.0
    assert "svc__kernel" in out["best params"]
    # Run again on the same storage with a larger budget: the search resumes and adds 2 candidates.
    again = run_example("sklearn_search_cv.py", "--trials", "12", *small)
    assert again["candidates"].startswith("12 ")


# -- multi_objective -------------------------------------------------------------


def test_multi_objective_example_prints_a_feasible_front(capsys: pytest.CaptureFixture[str]) -> None:
    pytest.importorskip("sklearn")
    example = load_example("multi_objective.py")
    result = example.main(["--trials", "10", "--epochs", "3", "--max-weights", "3000", "--seed", "1"])
    out = capsys.readouterr().out
    assert len(result.trials) == 10 and result.directions == ("minimize", "minimize")
    assert result.metric_names == ("error", "weights")
    front = result.best_trials
    assert front and all(t.feasible and t.values[1] <= 3000 for t in front)
    assert all(t.constraints == (t.values[1] - 3000,) for t in result.trials if t.state is hpt.TrialState.COMPLETE)
    assert f"pareto front: {len(front)} trials" in out
    assert number(out.split("hypervolume: ")[1].split()[0]) > 0
    for t in front:
        assert f"trial {t.number:3d}  error {t.values[0]:.4f}" in out
    # Every report carried both objectives, as the pruner ranks by both.
    assert all(len(t.report_values) == len(t.reports) for t in result.trials if t.reports)


def test_multi_objective_example_runs_as_a_script() -> None:
    pytest.importorskip("sklearn")
    out = run_example("multi_objective.py", "--trials", "6", "--epochs", "2", "--concurrency", "1")
    assert out["trials"].startswith("6 (")
    assert "pareto front" in out


# -- framework examples (hpt_async.integrations) ------------------------------------------------


def check_framework_example(out: dict[str, str], trials: int, steps: int, unit: str) -> None:
    """Every trial ended COMPLETE or PRUNED; pruned ones trained fewer steps; the best value is a number."""
    total, complete, failed = trial_counts(out)
    pruned = int(out["pruned"])
    assert (total, failed) == (trials, 0) and complete + pruned == trials
    trained, _, planned = out[f"{unit} trained"].partition(" of ")
    assert int(planned) == trials * steps
    assert complete * steps <= int(trained) <= trials * steps
    assert int(trained) < trials * steps or pruned == 0  # a pruned trial stopped before its last step
    assert math.isfinite(number(out["best value"]))


@pytest.mark.parametrize(
    ("name", "args", "steps", "unit"),
    [
        ("lightning_model.py", ["--trials", "3", "--epochs", "3"], 3, "epochs"),
        ("keras_model.py", ["--trials", "3", "--epochs", "3"], 3, "epochs"),
        ("xgboost_model.py", ["--trials", "6", "--rounds", "9"], 9, "rounds"),
        ("lightgbm_model.py", ["--trials", "6", "--rounds", "9"], 9, "rounds"),
    ],
)
def test_framework_examples_run_small(name: str, args: list[str], steps: int, unit: str) -> None:
    out = run_example(name, *args, "--concurrency", "2")
    check_framework_example(out, int(args[1]), steps, unit)
    assert set(best_params(out)) == set(load_example(name).SPACE)
