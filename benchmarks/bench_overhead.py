"""Per-trial overhead: hpt-async against Optuna, side by side in one process.

Both libraries run the same cheap objective over the same three-parameter
space (a log-scaled float, an int, a categorical) with random search, in-memory
storage and no logging, one trial at a time.  The objective returns at once,
so the time per trial is the library's own bookkeeping.

The two are run alternately for several rounds (so that noise on a shared
machine falls on both) and the median time per trial of each is reported,
with the ratio Optuna / hpt-async.  The goal is a ratio of at least 5.

    /work/venv/bin/python benchmarks/bench_overhead.py            # full run
    /work/venv/bin/python benchmarks/bench_overhead.py --quick    # smoke run
    /work/venv/bin/python benchmarks/bench_overhead.py --profile  # cProfile of the hpt-async side
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import math
import os
import platform
import pstats
import statistics
import sys
import time
from collections.abc import Callable
from typing import Any

import anyio

import hpt_async as hpt

GOAL = 5.0

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-5, 1e-1, log=True),
        "layers": hpt.Int(1, 8),
        "optimizer": hpt.Choice(["adam", "sgd", "rmsprop"]),
    }
)
_PENALTY = {"adam": 0.0, "sgd": 0.5, "rmsprop": 0.25}


def _score(lr: float, layers: int, optimizer: str) -> float:
    """The cheap objective both libraries evaluate."""
    return (math.log10(lr) + 3.0) ** 2 + 0.1 * layers + _PENALTY[optimizer]


async def hpt_objective(trial: hpt.Trial) -> float:
    """hpt-async's objective: returns at once."""
    p = trial.params
    return _score(p["lr"], p["layers"], p["optimizer"])


def optuna_objective(trial: Any) -> float:
    """Optuna's objective over the same space."""
    lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
    layers = trial.suggest_int("layers", 1, 8)
    optimizer = trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"])
    return _score(lr, layers, optimizer)


def run_hpt(n: int) -> float:
    """Run ``n`` hpt-async trials; return the seconds they took (set-up included)."""
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        tuner = hpt.Tuner(
            hpt_objective, SPACE, strategy="random", storage="memory", loggers=[], concurrency=1, max_trials=n, seed=0
        )
        result = await tuner.run()
        elapsed = time.perf_counter() - t0
        done = result.count(hpt.TrialState.COMPLETE)
        if done != n:
            raise RuntimeError(f"hpt-async finished {done} COMPLETE trials, expected {n}")

    anyio.run(main, backend="asyncio")
    return elapsed


def run_optuna(n: int) -> float:
    """Run ``n`` Optuna trials; return the seconds they took (set-up included)."""
    import optuna

    t0 = time.perf_counter()
    study = optuna.create_study(direction="minimize", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(optuna_objective, n_trials=n)
    elapsed = time.perf_counter() - t0
    done = len(study.trials)
    if done != n:
        raise RuntimeError(f"Optuna ran {done} trials, expected {n}")
    return elapsed


def profile_hpt(n: int, top: int) -> None:
    """Print the hottest functions of an hpt-async run of ``n`` trials."""
    run_hpt(min(n, 500))  # warm imports and caches
    prof = cProfile.Profile()
    prof.enable()
    run_hpt(n)
    prof.disable()
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(f"--- hpt-async, {n} trials, sorted by {key} ---")
        print(out.getvalue())


def _us(seconds: float, n: int) -> float:
    return seconds / n * 1e6


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("-n", "--trials", type=int, default=10_000, help="trials per round (default 10000)")
    parser.add_argument("-r", "--rounds", type=int, default=5, help="rounds of each library (default 5)")
    parser.add_argument("--quick", action="store_true", help="smoke run: 1000 trials, 2 rounds")
    parser.add_argument("--profile", action="store_true", help="profile the hpt-async side with cProfile instead")
    parser.add_argument("--top", type=int, default=25, help="functions shown by --profile (default 25)")
    args = parser.parse_args(argv)
    if args.quick:
        args.trials, args.rounds = 1_000, 2
    if args.trials < 1 or args.rounds < 1:
        parser.error("--trials and --rounds must be >= 1")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.profile:
        profile_hpt(args.trials, args.top)
        return 0

    print(f"per-trial overhead: {args.trials} trials x {args.rounds} rounds, concurrency 1, random search, memory")
    print(
        f"python {platform.python_version()}, hpt-async {hpt.__version__}, optuna {optuna.__version__}, "
        f"anyio {_version('anyio')}, {platform.machine()}, {os.cpu_count()} CPUs, "
        f"load average {os.getloadavg()[0]:.2f}"
    )
    # Warm-up: imports, caches, first-call costs of both, not measured.
    run_hpt(min(args.trials, 200))
    run_optuna(min(args.trials, 200))

    runners: list[tuple[str, Callable[[int], float]]] = [("hpt-async", run_hpt), ("optuna", run_optuna)]
    times: dict[str, list[float]] = {name: [] for name, _ in runners}
    for i in range(args.rounds):
        order = runners if i % 2 == 0 else runners[::-1]
        for name, fn in order:
            gc.collect()
            times[name].append(fn(args.trials))
        print(
            f"  round {i + 1}: "
            + ", ".join(f"{name} {_us(times[name][-1], args.trials):.1f} us/trial" for name, _ in runners),
            flush=True,
        )

    med = {name: _us(statistics.median(ts), args.trials) for name, ts in times.items()}
    best = {name: _us(min(ts), args.trials) for name, ts in times.items()}
    ratio = med["optuna"] / med["hpt-async"]
    print()
    print(f"{'library':<12}{'median us/trial':>18}{'best us/trial':>16}")
    for name, _ in runners:
        print(f"{name:<12}{med[name]:>18.1f}{best[name]:>16.1f}")
    print()
    print(
        f"ratio optuna / hpt-async (medians): {ratio:.2f}x   (best rounds: {best['optuna'] / best['hpt-async']:.2f}x)"
    )
    print(f"goal >= {GOAL:.0f}x: {'MET' if ratio >= GOAL else 'NOT MET'}")
    return 0


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
