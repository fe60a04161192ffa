"""The cost of one intermediate report, against Optuna's, for trials of growing length.

One trial reports ``N`` values, one per step, and the CPU time of the
reports is divided by ``N``.  hpt-async: an ``async def`` objective awaiting
``trial.report(value, step=...)`` (stored, put in the study view as a new
RUNNING record, decided by the pruner when there is one), memory storage,
``loggers=[]``.  Optuna: ``trial.report(value, step)`` followed by
``trial.should_prune()``, in-memory storage.  Each measurement runs twice in
a fresh interpreter and the second run is kept (the first pays the imports);
hpt-async and Optuna alternate, and the ratio is taken per round.

    python benchmarks/bench_reports.py                  # N = 1,000 and 10,000, 5 rounds
    python benchmarks/bench_reports.py -n 100 1000 -r 3
    python benchmarks/bench_reports.py --pruner median  # hpt-async with a pruner, Optuna with MedianPruner
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys

_HPT = """
import sys, time, anyio
import hpt_async as hpt
n, pruner = int(sys.argv[1]), sys.argv[2]

async def objective(trial):
    for step in range(n):
        await trial.report(1.0 / (step + 1), step=step)
    return 0.0

async def once():
    tuner = hpt.Tuner(objective, {"x": hpt.Float(0.0, 1.0)}, max_trials=1, loggers=[], seed=0,
                      pruner=None if pruner == "none" else pruner)
    start = time.process_time()
    await tuner.run()
    return time.process_time() - start

anyio.run(once)
print(anyio.run(once))
"""

_OPTUNA = """
import sys, time, optuna
n, pruner = int(sys.argv[1]), sys.argv[2]
optuna.logging.set_verbosity(optuna.logging.WARNING)

def objective(trial):
    trial.suggest_float("x", 0.0, 1.0)
    for step in range(n):
        trial.report(1.0 / (step + 1), step)
        trial.should_prune()
    return 0.0

def once():
    chosen = optuna.pruners.NopPruner() if pruner == "none" else optuna.pruners.MedianPruner()
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0), pruner=chosen)
    start = time.process_time()
    study.optimize(objective, n_trials=1)
    return time.process_time() - start

once()
print(once())
"""


def _run(code: str, n: int, pruner: str) -> float:
    env = dict(os.environ, HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD="1")
    out = subprocess.run(
        [sys.executable, "-c", code, str(n), pruner], capture_output=True, text=True, check=True, env=env
    )
    return float(out.stdout.strip().splitlines()[-1]) * 1e6 / n


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("-n", "--reports", type=int, nargs="+", default=[1000, 10000], help="reports per trial")
    parser.add_argument("-r", "--rounds", type=int, default=5, help="rounds of each (default 5)")
    parser.add_argument("--pruner", choices=["none", "median"], default="none", help="with a median pruner")
    args = parser.parse_args(argv)
    print(f"load average at the start: {os.getloadavg()[0]:.2f}")
    print(f"{'reports':>8} {'hpt-async us':>13} {'optuna us':>10} {'optuna / hpt-async':>19}")
    for n in args.reports:
        hpt_us, optuna_us, ratios = [], [], []
        for _ in range(args.rounds):
            a = _run(_HPT, n, args.pruner)
            b = _run(_OPTUNA, n, args.pruner)
            hpt_us.append(a)
            optuna_us.append(b)
            ratios.append(b / a)
        print(
            f"{n:>8} {statistics.median(hpt_us):>13.2f} {statistics.median(optuna_us):>10.2f} "
            f"{statistics.median(ratios):>18.1f}x   (per-round ratios {', '.join(f'{r:.1f}' for r in ratios)})"
        )
    print(f"load average at the end: {os.getloadavg()[0]:.2f}")


if __name__ == "__main__":
    main()
