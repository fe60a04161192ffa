"""``tpe``'s kernel widths: taken from the exact group size, or from the size in steps past 64 points (the default).

A group of more than 64 points takes its kernel width from its size
rounded down to an eighth of an octave, so that the kernels of its points
are kept from one suggestion to the next (``hpt_async/strategies/tpe.py``,
``_width_count``).  This changes the width by under 1.8 % and so changes
some decisions; this script shows what it does to the search: both
variants on the problems of ``functions.py``, sequential, the same seeds,
at ``--scale`` times the usual budget (``max(40, 20 x dim)``), with the
median final regret per problem, how many seeds each variant wins, and a
two-sided sign test over the seeds (ties left out)::

    python benchmarks/bench_tpe_widths.py --seeds 10 --first-seed 100 --scale 1 5
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import PROBLEMS

import hpt_async as hpt
from hpt_async.strategies import tpe

SYNTHETIC = ("branin", "rosenbrock4", "levy5", "hartmann6", "styblinski8", "ackley10")


def run(problem_name: str, seed: int, trials: int, exact: bool) -> float:
    """Final regret of one sequential ``tpe`` run (``exact``: widths from the exact group size)."""
    problem = PROBLEMS[problem_name]()
    saved = tpe._WIDTH_EXACT
    tpe._WIDTH_EXACT = 10**12 if exact else saved
    try:
        objective = lambda t: problem.evaluate(t.params)  # noqa: E731
        tuner = hpt.Tuner(objective, problem.space, strategy="tpe", seed=seed, max_trials=trials, loggers=[])
        result = anyio.run(tuner.run)
    finally:
        tpe._WIDTH_EXACT = saved
    assert problem.best is not None
    return float(result.best_value) - problem.best  # type: ignore[arg-type]


def sign_test(wins: int, losses: int) -> float:
    """Two-sided p-value of a sign test (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(SYNTHETIC), choices=SYNTHETIC)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=100)
    parser.add_argument("--scale", type=float, nargs="+", default=[1.0, 5.0])
    args = parser.parse_args(argv)
    seeds = range(args.first_seed, args.first_seed + args.seeds)
    print(f"seeds {args.first_seed}-{args.first_seed + args.seeds - 1}")
    print("| problem (trials) | exact widths | stepped widths (default) | stepped wins / losses / ties | sign test p |")
    print("| --- | --- | --- | --- | --- |")
    for scale in args.scale:
        for name in args.problems:
            trials = round(scale * PROBLEMS[name]().budget)
            start = time.perf_counter()
            exact = [run(name, s, trials, True) for s in seeds]
            stepped = [run(name, s, trials, False) for s in seeds]
            wins = sum(b < a for a, b in zip(exact, stepped, strict=True))
            losses = sum(b > a for a, b in zip(exact, stepped, strict=True))
            ties = len(exact) - wins - losses
            print(
                f"| {name} ({trials}) | {statistics.median(exact):.4g} | {statistics.median(stepped):.4g} |"
                f" {wins} / {losses} / {ties} | {sign_test(wins, losses):.2f} |"
                f"  <!-- {time.perf_counter() - start:.0f} s -->",
                flush=True,
            )


if __name__ == "__main__":
    main()
