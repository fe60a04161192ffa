"""``benchmarks/bench_constrained.py``: its engineering problems against their published optima, and its report."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from typing import Any

import pytest

_DIR = Path(__file__).resolve().parents[1] / "benchmarks"


@pytest.fixture(scope="module")
def bench() -> Any:
    sys.path.insert(0, str(_DIR))
    try:
        spec = importlib.util.spec_from_file_location("bench_constrained", _DIR / "bench_constrained.py")
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(_DIR))
    return module


# The best designs reported for each problem (to the digits published), feasible up to their rounding.
BEST_POINTS = {
    "spring": (0.051690, 0.356750, 11.287126),
    "pressure-vessel": (0.778169, 0.384649, 40.319619, 200.0),
    "welded-beam": (0.205730, 3.470489, 9.036624, 0.205730),
}


@pytest.mark.parametrize("name", sorted(BEST_POINTS))
def test_the_published_best_design_is_feasible_and_has_the_published_value(bench: Any, name: str) -> None:
    f, bounds, m = bench.PROBLEMS[name]
    x = BEST_POINTS[name]
    assert m == 1 and len(bounds) == len(x)
    assert all(lo <= v <= hi for v, (lo, hi) in zip(x, bounds, strict=True))
    (value,), constraints = f(x)
    assert value == pytest.approx(bench.BEST_KNOWN[name], rel=1e-4)
    assert max(constraints) <= 1e-4  # active constraints sit at zero, up to the published rounding
    # Shrinking the design's main dimension makes it lighter and infeasible: the optimum is constrained.
    smaller = (x[0] * 0.9, *x[1:])
    (lighter,), broken = f(smaller)
    assert lighter < value and max(broken) > 1e-3


def test_report_pairs_tagged_runs_and_filters_by_trials(bench: Any, tmp_path: Path, capsys: Any) -> None:
    out = tmp_path / "runs.jsonl"
    bench.main(["--problems", "gramacy", "--seeds", "2", "--trials", "5", "--methods", "hpt-random", "--out", str(out)])
    bench.main(["--problems", "gramacy", "--seeds", "2", "--trials", "5", "--methods", "hpt-random", "--tag=-b",
                "--out", str(out)])  # fmt: skip
    rows = [json.loads(line) for line in out.read_text().splitlines()]
    assert {r["method"] for r in rows} == {"hpt-random", "hpt-random-b"}
    capsys.readouterr()
    bench.main(["--report", str(out), "--trials", "5", "--methods", "hpt-random-b", "hpt-random"])
    text = capsys.readouterr().out
    # The same seeded runs: no seed differs.
    assert "gramacy: hpt-random-b vs hpt-random: gain +0 ± 0 (over 2 seeds), better on 0, worse on 0" in text
    bench.main(["--report", str(out), "--trials", "6"])
    assert "gramacy:" not in capsys.readouterr().out


def test_report_refuses_to_pair_runs_of_different_budgets(bench: Any, tmp_path: Path) -> None:
    out = tmp_path / "runs.jsonl"
    for trials in ("4", "5"):
        bench.main(["--problems", "gramacy", "--seeds", "1", "--trials", trials, "--methods", "hpt-random",
                    "--out", str(out)])  # fmt: skip
    with pytest.raises(SystemExit, match="different settings"):
        bench.main(["--report", str(out)])
    bench.main(["--report", str(out), "--trials", "4"])  # one budget chosen: no refusal
