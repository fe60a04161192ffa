"""The MLP loop of ``benchmarks/bench_multi_objective.py``: what it charges, and its sign test."""

from __future__ import annotations

import importlib.util
import json
import math
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

_PATH = Path(__file__).resolve().parents[1] / "benchmarks" / "bench_multi_objective.py"


@pytest.fixture(scope="module")
def bench() -> Any:
    spec = importlib.util.spec_from_file_location("bench_multi_objective", _PATH)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


class FakeCurves:
    """Deterministic curves that record every (configuration, epoch) asked for, in place of the MLP's."""

    def __init__(self) -> None:
        self.asked: Counter[tuple[Any, ...]] = Counter()

    weights = staticmethod(lambda p: int(p["width"]) * (10 + 54 * int(p["layers"])))

    def error(self, p: dict[str, Any], epoch: int) -> float:
        key = tuple(sorted(p.items()))
        self.asked[(key, epoch)] += 1
        return 0.05 + 0.5 * float(p["learning_rate_init"]) ** 0.5 + 1.0 / (epoch * math.log(2 + int(p["width"])))


@pytest.mark.parametrize("mode", ["stop", "promotion"])
def test_asha_uses_a_quarter_of_the_epochs_and_never_trains_an_epoch_twice(bench: Any, mode: str) -> None:
    curves = FakeCurves()
    run = bench.run_mlp("asha-random", seed=3, trials=12, epochs=9, curves=curves, mode=mode)
    assert run["epochs"] == 12 * 9 // 4
    # Each epoch charged is one epoch trained: a resumed trial goes on from its checkpoint.
    assert sum(curves.asked.values()) == run["epochs"]
    assert max(curves.asked.values()) == 1
    assert run["trials"] > 27 // 9  # more configurations than full trainings fit in the budget
    assert all(err < 1.0 for err, _ in run["points"])
    assert len(run["trained"]) >= len(run["points"])


def test_full_budget_random_trains_every_trial_in_full(bench: Any) -> None:
    curves = FakeCurves()
    run = bench.run_mlp("full-random", seed=3, trials=5, epochs=4, curves=curves)
    assert (run["epochs"], run["trials"], len(run["points"])) == (20, 5, 5)
    assert run["points"] == run["trained"]


def test_sign_test_and_pairing(bench: Any) -> None:
    assert bench.sign_test(9, 1) == pytest.approx(22 / 1024)
    assert bench.sign_test(7, 3) == pytest.approx(352 / 1024)
    assert bench.sign_test(0, 0) == 1.0
    assert bench.sign_test(5, 5) == 1.0
    rows = [{"method": "a", "seed": s, "hv": 1.0 + s} for s in range(4)]
    rows += [{"method": "b", "seed": s, "hv": 2.0} for s in range(4)]
    text = bench.paired(rows, "a", "b")
    assert text.startswith("+0.5000 ± ")
    assert "ahead on 2/4 (behind on 1)" in text


def test_report_reads_runs_back_from_several_files_with_tags(bench: Any, tmp_path: Path, capsys: Any) -> None:
    first, second = tmp_path / "anchors.jsonl", tmp_path / "new.jsonl"
    bench.main(["synthetic", "--problems", "fonseca-2", "--seeds", "2", "--trials", "6", "--methods", "hpt-random",
                "optuna-random", "--out", str(first)])  # fmt: skip
    bench.main(["synthetic", "--problems", "fonseca-2", "--seeds", "2", "--trials", "6", "--methods", "hpt-random",
                "--tag=-again", "--out", str(second)])  # fmt: skip
    capsys.readouterr()
    bench.main(["synthetic", "--report", str(first), str(second), "--methods", "hpt-random-again", "hpt-random",
                "optuna-random"])  # fmt: skip
    out = capsys.readouterr().out
    # The same seeded run twice: the tagged copy ties the first on every seed.
    assert "fonseca-2: hpt-random-again - hpt-random: +0.0000 ± 0.0000, ahead on 0/2 (behind on 0)" in out
    assert "fonseca-2: hpt-random-again - optuna-random:" in out
    # A filter that matches no run leaves the table empty.
    bench.main(["synthetic", "--report", str(first), "--trials", "7"])
    assert "fonseca-2" not in capsys.readouterr().out
    with pytest.raises(SystemExit, match="unknown methods"):
        bench.main(["synthetic", "--methods", "no-such-method", "--out", str(first)])


def test_t_test_of_paired_differences(bench: Any) -> None:
    from scipy import stats

    d = [0.3, -0.1, 0.5, 0.2, 0.4]
    assert bench.t_test(d) == pytest.approx(stats.ttest_rel([x + 1 for x in d], [1.0] * 5).pvalue)
    assert bench.t_test([0.0, 0.0, 0.0]) == 1.0
    assert bench.t_test([0.2, 0.2]) == 0.0
    assert bench.t_test([0.5]) == 1.0


def test_hyperband_runs_within_the_same_budget_and_never_trains_an_epoch_twice(
    bench: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    pruners: list[Any] = []
    tuner = bench.hpt.Tuner

    def recording(*args: Any, **kwargs: Any) -> Any:
        made = tuner(*args, **kwargs)
        pruners.append(kwargs["pruner"])
        return made

    monkeypatch.setattr(bench.hpt, "Tuner", recording)
    curves = FakeCurves()
    run = bench.run_mlp("asha-random", seed=3, trials=12, epochs=9, curves=curves, mode="promotion",
                        pruner_name="hyperband", brackets=2)  # fmt: skip
    assert pruners == [{"name": "hyperband", "min_resource": 1, "eta": 3, "max_resource": 9, "mode": "promotion",
                        "brackets": 2}]  # fmt: skip
    assert run["epochs"] == 12 * 9 // 4
    assert sum(curves.asked.values()) == run["epochs"]
    assert max(curves.asked.values()) == 1


def test_the_pruner_of_the_asha_methods(bench: Any) -> None:
    assert bench.mlp_pruner("asha", 1, 3, 81, "promotion") == {
        "name": "asha", "min_resource": 1, "eta": 3, "max_resource": 81, "mode": "promotion"}  # fmt: skip
    assert bench.mlp_pruner("hyperband", 1, 3, 81, "stop", brackets=3)["brackets"] == 3
    assert "brackets" not in bench.mlp_pruner("hyperband", 1, 3, 81, "stop")
    with pytest.raises(ValueError, match="brackets is an option of hyperband"):
        bench.mlp_pruner("asha", 1, 3, 81, "stop", brackets=2)
    with pytest.raises(SystemExit):
        bench.main(["mlp", "--pruner", "asha", "--brackets", "2", "--seeds", "0"])


def test_mlp_report_keeps_the_runs_of_one_pruner(bench: Any, tmp_path: Path, capsys: Any) -> None:
    def row(method: str, seed: int, hv: float, **extra: Any) -> str:
        r = {"problem": "mlp-digits", "method": method, "seed": seed, "hv": hv, "hv_trained": hv, "full_trials": 4,
             "eta": 3, "min_resource": 1, "mode": "promotion", "max_epochs": 9, "epochs": 9, "trials": 4,
             "complete": 4, "seconds": 0.0, **extra}  # fmt: skip
        return json.dumps(r) + "\n"

    runs = tmp_path / "runs.jsonl"
    # Rows written before --pruner (asha), and rows of a hyperband run.
    lines = [row(m, s, 1.0) for m in ("full-random", "asha-random") for s in (0, 1)]
    lines += [
        row(m, s, 2.0 + s, pruner="hyperband", brackets=2) for m in ("full-random", "asha-random") for s in (0, 1)
    ]
    runs.write_text("".join(lines))
    bench.main(["mlp", "--report", str(runs), "--pruner", "hyperband", "--methods", "full-random", "asha-random"])
    out = capsys.readouterr().out
    assert "2.5000 ± 0.7071 (1.000)" in out and "1.0000 ±" not in out
    bench.main(["mlp", "--report", str(runs), "--pruner", "asha", "--methods", "full-random", "asha-random"])
    out = capsys.readouterr().out
    assert "1.0000 ± 0.0000 (1.000)" in out and "2.5000" not in out
