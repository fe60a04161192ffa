"""examples/nas_mlp.py runs, small, as a reader would run it, and prints what it claims."""

from __future__ import annotations

import ast
import math
import subprocess
import sys
from pathlib import Path

EXAMPLE = Path(__file__).resolve().parent.parent / "examples" / "nas_mlp.py"
# Guards against a hung run only; a small one takes a few seconds.
TIMEOUT = 180


def test_nas_example_evolves_valid_architectures() -> None:
    args = ["--trials", "6", "--population", "3", "--sample-size", "2", "--concurrency", "2", "--seed", "1"]
    proc = subprocess.run(
        [sys.executable, str(EXAMPLE), *args],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
        cwd=EXAMPLE.parent.parent,
    )
    assert proc.returncode == 0, f"stdout:\n{proc.stdout}\nstderr:\n{proc.stderr}"
    assert "Traceback" not in proc.stderr, proc.stderr
    out = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and not line.startswith("["))
    assert out["trials"] == "6 (6 complete, 0 failed)"
    assert out["stopped because"] == "max_trials"
    best = float(out["best value"])
    first = float(out["best of the random first population"])
    assert math.isfinite(best) and 0.8 < best <= 1.0  # ten digit classes: chance is 0.1
    assert best >= first
    params = ast.literal_eval(out["best params"])
    n = params["n_layers"]
    assert 1 <= n <= 3
    # Exactly the layers the network has carry a width; one activation serves them all.
    assert {k for k in params if k.startswith("units_")} == {f"units_{i}" for i in range(1, n + 1)}
    assert params["activation"] in ("relu", "tanh", "logistic")
    widths = " -> ".join(str(params[f"units_{i}"]) for i in range(1, n + 1))
    assert out["best architecture"] == f"{widths} ({params['activation']})"
