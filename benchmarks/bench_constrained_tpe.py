"""Constraints: the best feasible value of hpt-async's ``tpe`` against Optuna's ``TPESampler(constraints_func=...)``.

Single-objective problems with inequality constraints (each satisfied when
``<= 0``), minimised, ``--trials`` sequential trials per run, ``--seeds``
seeds:

* ``gardner``: after Gardner et al. (2014), ``cos(2x) cos(y) + sin(x)`` on
  ``[0, 6]^2`` subject to ``cos(x) cos(y) - sin(x) sin(y) <= 0.5``.
* ``branin-disk``: Branin on its usual box subject to lying in a disk of
  radius 5 around ``(2.5, 7.5)``, which leaves out two of its three minima.
* ``pressure-vessel``: the pressure-vessel design problem (four continuous
  variables, four constraints, the volume one scaled by 1e-6).
* ``sphere-halfspace-6``: ``sum (x_i - 0.8)^2`` on ``[0, 1]^6`` subject to
  ``sum x_i <= 3`` (optimum 0.54 on the hyperplane).
* ``rosenbrock-disk-4``: Rosenbrock on ``[-1.5, 1.5]^4`` subject to
  ``|x|^2 <= 2`` (a disk that cuts off the optimum at ``(1, 1, 1, 1)``).

Methods: ``hpt-tpe``, ``hpt-random``, ``hpt-evolution`` (Deb's rule) and
Optuna's ``TPESampler`` with ``constraints_func`` (``optuna-tpe``, its
defaults otherwise).  The figure is the best feasible value a run found (a
run that found none counts as worst); for hpt-async runs the script also
checks that ``result.best`` is feasible whenever a feasible trial exists.

Each run appends one JSON line to ``--out``; the table compares every method
to the first, per problem: median best value, and in how many seeds it is
at least as good (paired), with a two-sided sign test.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio

import hpt_async as hpt


def _gardner(x: Sequence[float]) -> tuple[float, list[float]]:
    a, b = x
    return math.cos(2 * a) * math.cos(b) + math.sin(a), [math.cos(a) * math.cos(b) - math.sin(a) * math.sin(b) - 0.5]


def _branin_disk(x: Sequence[float]) -> tuple[float, list[float]]:
    # A disk of radius 5 around (2.5, 7.5): a smaller feasible region than bench_constrained.py's
    # "branin-disk" (radius sqrt(50)); the two scripts' figures for this name are not comparable.
    x1, x2 = x
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    f = (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10
    return f, [(x1 - 2.5) ** 2 + (x2 - 7.5) ** 2 - 25.0]


def _pressure_vessel(x: Sequence[float]) -> tuple[float, list[float]]:
    ts, th, r, length = x
    f = 0.6224 * ts * r * length + 1.7781 * th * r**2 + 3.1661 * ts**2 * length + 19.84 * ts**2 * r
    g = [
        -ts + 0.0193 * r,
        -th + 0.00954 * r,
        (-math.pi * r**2 * length - 4.0 / 3.0 * math.pi * r**3 + 1296000.0) * 1e-6,
        length - 240.0,
    ]
    return f, g


def _sphere_halfspace(x: Sequence[float]) -> tuple[float, list[float]]:
    return sum((xi - 0.8) ** 2 for xi in x), [sum(x) - 3.0]


def _rosenbrock_disk(x: Sequence[float]) -> tuple[float, list[float]]:
    f = sum(100 * (b - a * a) ** 2 + (1 - a) ** 2 for a, b in pairwise(x))
    return f, [sum(xi * xi for xi in x) - 2.0]


# name -> (function, bounds per variable)
PROBLEMS: dict[str, tuple[Callable[[Sequence[float]], tuple[float, list[float]]], list[tuple[float, float]]]] = {
    "gardner": (_gardner, [(0.0, 6.0)] * 2),
    "branin-disk": (_branin_disk, [(-5.0, 10.0), (0.0, 15.0)]),
    "pressure-vessel": (_pressure_vessel, [(0.1, 6.0), (0.1, 6.0), (10.0, 200.0), (10.0, 250.0)]),
    "sphere-halfspace-6": (_sphere_halfspace, [(0.0, 1.0)] * 6),
    "rosenbrock-disk-4": (_rosenbrock_disk, [(-1.5, 1.5)] * 4),
}
METHODS = ("hpt-tpe", "optuna-tpe", "hpt-random", "hpt-evolution")


def run(problem: str, method: str, seed: int, trials: int) -> dict[str, Any]:
    """One run: the best feasible value found (None when none) and whether the reported best is feasible."""
    f, bounds = PROBLEMS[problem]
    names = [f"x{i}" for i in range(len(bounds))]
    if method.startswith("hpt-"):
        space = {n: hpt.Float(lo, hi) for n, (lo, hi) in zip(names, bounds, strict=True)}

        def objective(trial: hpt.Trial) -> float:
            value, constraints = f([trial.params[n] for n in names])
            trial.set_constraints(constraints)
            return value

        tuner = hpt.Tuner(objective, space, strategy=method.removeprefix("hpt-"), max_trials=trials, seed=seed,
                          loggers=[])  # fmt: skip
        result = anyio.run(tuner.run)
        feasible = [t.value for t in result.trials if t.value is not None and t.feasible]
        best = min(feasible) if feasible else None
        honest = (result.best is None) if best is None else (result.best.feasible and result.best.value == best)
        return {"best": best, "best_is_feasible": honest, "feasible": len(feasible)}
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    key = "constraints"

    def constraints_func(t: Any) -> Sequence[float]:
        return t.user_attrs[key]

    sampler = optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def o(t: Any) -> float:
        value, constraints = f([t.suggest_float(n, lo, hi) for n, (lo, hi) in zip(names, bounds, strict=True)])
        t.set_user_attr(key, constraints)
        return value

    study.optimize(o, n_trials=trials)
    feasible = [t.value for t in study.trials if t.value is not None and all(c <= 0 for c in t.user_attrs[key])]
    return {"best": min(feasible) if feasible else None, "best_is_feasible": None, "feasible": len(feasible)}


def _sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value (ties dropped)."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def table(rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """Per problem: the median best feasible value of each method; paired comparison with the first method."""
    anchor = methods[0]
    print("\n| problem | " + " | ".join(f"{m} median" for m in methods) + f" | {anchor} vs the others |")
    print("| --- | " + " | ".join("---" for _ in methods) + " | --- |")
    for problem in dict.fromkeys(r["problem"] for r in rows):
        mine = [r for r in rows if r["problem"] == problem]
        by = {(r["method"], r["seed"]): (math.inf if r["best"] is None else r["best"]) for r in mine}
        seeds = sorted({r["seed"] for r in mine if r["method"] == anchor})
        cells = [f"{statistics.median(by[(m, s)] for s in seeds):.4g}" for m in methods]
        comparisons = []
        for m in methods[1:]:
            better = sum(by[(anchor, s)] < by[(m, s)] for s in seeds)
            worse = sum(by[(anchor, s)] > by[(m, s)] for s in seeds)
            comparisons.append(f"{m}: {better} better, {worse} worse (p={_sign_test(better, worse):.2f})")
        print(f"| {problem} | " + " | ".join(cells) + " | " + "; ".join(comparisons) + " |")
    dishonest = [r for r in rows if r.get("best_is_feasible") is False]
    print(f"\nhpt-async runs whose result.best was not the best feasible trial: {len(dishonest)}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument("--methods", nargs="+", default=list(METHODS), choices=list(METHODS))
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=100)
    parser.add_argument("--out", default="bench-results/constrained_tpe.jsonl")
    parser.add_argument("--report", nargs="*", help="only print the table of these JSON-lines files")
    args = parser.parse_args(argv)
    if args.report:
        rows = [json.loads(line) for p in args.report for line in Path(p).read_text().splitlines() if line.strip()]
        table(rows, args.methods)
        return
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for problem in args.problems:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                start = time.perf_counter()
                r = run(problem, method, seed, args.trials)
                row = {"problem": problem, "method": method, "seed": seed, "trials": args.trials, **r,
                       "seconds": time.perf_counter() - start}  # fmt: skip
                rows.append(row)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                best = "none" if r["best"] is None else f"{r['best']:.5g}"
                print(f"{problem:20s} seed {seed:3d} {method:14s} best {best:>10s} feasible {r['feasible']:3d}",
                      flush=True)  # fmt: skip
    table(rows, args.methods)


if __name__ == "__main__":
    main()
