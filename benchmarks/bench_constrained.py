"""Constraints: hpt-async's ``bayes`` against Optuna's samplers with ``constraints_func``, by best feasible value.

Problems (each constraint satisfied when ``<= 0``), minimised:

* ``gardner`` (d = 2): Gardner et al. (2014)'s toy problem,
  ``cos(2 x) cos(y) + sin(x)`` on ``[0, 6]^2`` subject to
  ``cos(x) cos(y) - sin(x) sin(y) <= 0.5``.
* ``gramacy`` (d = 2): Gramacy et al. (2016)'s toy problem, ``x1 + x2`` on
  ``[0, 1]^2`` subject to ``1.5 - x1 - 2 x2 - 0.5 sin(2 pi (x1^2 - 2 x2))
  <= 0`` and ``x1^2 + x2^2 <= 1.5`` (optimum about 0.5998).
* ``branin-disk`` (d = 2): Branin subject to ``(x1 - 2.5)^2 + (x2 - 7.5)^2
  <= 50`` (a disk, as in Gelbart et al. 2014).
* ``hartmann6-l1`` (d = 6): Hartmann-6 subject to ``sum(x) <= 2`` (the
  unconstrained optimum, whose coordinates sum to about 2.08, is infeasible).
* Three engineering designs, the usual constrained benchmarks of the
  optimisation literature (best known values in ``BEST_KNOWN``):
  ``spring`` (d = 3, four constraints: the tension/compression spring's
  weight), ``pressure-vessel`` (d = 4, four constraints; its thicknesses
  continuous) and ``welded-beam`` (d = 4, seven constraints, each written
  as a ratio to its limit minus one).
* ``czdt1`` (d = 4, two objectives): ZDT1 with a disk of the objective
  space cut out, ``0.05 - (f1 - 0.4)^2 - (f2 - 0.4)^2 <= 0``, which removes
  part of the true front.  Its figure is the hypervolume of the feasible
  front against (1.1, 11) (larger is better).

Methods: ``hpt-random``, ``hpt-bayes``, Optuna's ``GPSampler`` and
``TPESampler`` given ``constraints_func`` (``optuna-gp``, ``optuna-tpe``;
GPSampler needs torch), each with ``--trials`` sequential trials.  The
figure of a single-objective run is the best feasible value found
(``inf`` when none is feasible), and the table gives its median and how
many seeds ``hpt-bayes`` beats each other method on (a difference within
``--tie``, absolute, counts as a tie).  For the hpt-async
methods the run also checks what it reports: ``result.best`` must be
feasible whenever a feasible trial exists (a violation is printed and
counted).  ``--torch-threads`` limits torch's threads (``bayes`` computes on
one BLAS thread).  One JSON line per run is appended to ``--out``;
``--report FILE ...`` prints the table of earlier runs instead of running.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
import warnings
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_multi_objective import read_rows, sign_test, t_test

import hpt_async as hpt

Outcome = tuple[tuple[float, ...], tuple[float, ...]]  # (objective values, constraint values)


def gardner(x: Sequence[float]) -> Outcome:
    a, b = x
    c = math.cos(a) * math.cos(b) - math.sin(a) * math.sin(b) - 0.5
    return (math.cos(2 * a) * math.cos(b) + math.sin(a),), (c,)


def gramacy(x: Sequence[float]) -> Outcome:
    a, b = x
    c1 = 1.5 - a - 2 * b - 0.5 * math.sin(2 * math.pi * (a * a - 2 * b))
    return (a + b,), (c1, a * a + b * b - 1.5)


def branin_disk(x: Sequence[float]) -> Outcome:
    a, b = x
    f = (b - 5.1 / (4 * math.pi**2) * a * a + 5 / math.pi * a - 6) ** 2
    f += 10 * (1 - 1 / (8 * math.pi)) * math.cos(a) + 10
    return (f,), ((a - 2.5) ** 2 + (b - 7.5) ** 2 - 50.0,)


_H_ALPHA = np.array([1.0, 1.2, 3.0, 3.2])
_H_A = np.array(
    [[10, 3, 17, 3.5, 1.7, 8], [0.05, 10, 17, 0.1, 8, 14], [3, 3.5, 1.7, 10, 17, 8], [17, 8, 0.05, 10, 0.1, 14]]
)
_H_P = 1e-4 * np.array(
    [
        [1312, 1696, 5569, 124, 8283, 5886],
        [2329, 4135, 8307, 3736, 1004, 9991],
        [2348, 1451, 3522, 2883, 3047, 6650],
        [4047, 8828, 8732, 5743, 1091, 381],
    ]
)


def hartmann6_l1(x: Sequence[float]) -> Outcome:
    v = np.asarray(x, dtype=float)
    f = -float(np.sum(_H_ALPHA * np.exp(-np.sum(_H_A * (v - _H_P) ** 2, axis=1))))
    return (f,), (float(np.sum(v)) - 2.0,)


def czdt1(x: Sequence[float]) -> Outcome:
    f1 = x[0]
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    f2 = g * (1 - math.sqrt(f1 / g))
    return (f1, f2), (0.05 - (f1 - 0.4) ** 2 - (f2 - 0.4) ** 2,)


def spring(x: Sequence[float]) -> Outcome:
    """Tension/compression spring: wire diameter, coil diameter, active coils; four constraints."""
    d, coil, n = x
    f = (n + 2) * coil * d * d
    g1 = 1 - coil**3 * n / (71785 * d**4)
    g2 = (4 * coil * coil - d * coil) / (12566 * (coil * d**3 - d**4)) + 1 / (5108 * d * d) - 1
    g3 = 1 - 140.45 * d / (coil * coil * n)
    g4 = (d + coil) / 1.5 - 1
    return (f,), (g1, g2, g3, g4)


def pressure_vessel(x: Sequence[float]) -> Outcome:
    """Pressure vessel (continuous thicknesses): shell and head thickness, radius, length; four constraints.

    The constraints are divided by a scale of their own (a volume of
    1,296,000 and a length of 240) so that each is of order one.
    """
    ts, th, r, length = x
    f = 0.6224 * ts * r * length + 1.7781 * th * r * r + 3.1661 * ts * ts * length + 19.84 * ts * ts * r
    g1 = -ts + 0.0193 * r
    g2 = -th + 0.00954 * r
    g3 = (1296000 - math.pi * r * r * length - 4 / 3 * math.pi * r**3) / 1296000
    g4 = length / 240 - 1
    return (f,), (g1, g2, g3, g4)


def welded_beam(x: Sequence[float]) -> Outcome:
    """Welded beam: weld height and length, bar thickness and width; seven constraints (as ratios to their limits)."""
    h, weld, t, b = x
    load, span, e_mod, g_mod = 6000.0, 14.0, 30e6, 12e6
    f = 1.10471 * h * h * weld + 0.04811 * t * b * (14 + weld)
    tau_1 = load / (math.sqrt(2) * h * weld)
    moment = load * (span + weld / 2)
    radius = math.sqrt(weld * weld / 4 + ((h + t) / 2) ** 2)
    polar = 2 * (math.sqrt(2) * h * weld * (weld * weld / 12 + ((h + t) / 2) ** 2))
    tau_2 = moment * radius / polar
    tau = math.sqrt(tau_1 * tau_1 + 2 * tau_1 * tau_2 * weld / (2 * radius) + tau_2 * tau_2)
    sigma = 6 * load * span / (b * t * t)
    delta = 4 * load * span**3 / (e_mod * t**3 * b)
    buckling = (
        4.013 * e_mod * math.sqrt(t * t * b**6 / 36) / span**2 * (1 - t / (2 * span) * math.sqrt(e_mod / (4 * g_mod)))
    )
    return (f,), (
        tau / 13600 - 1,
        sigma / 30000 - 1,
        h - b,
        (0.10471 * h * h + 0.04811 * t * b * (14 + weld)) / 5 - 1,
        0.125 - h,
        delta / 0.25 - 1,
        load / buckling - 1,
    )


# name -> (function, bounds of every parameter, dimension, number of objectives)
PROBLEMS: dict[str, tuple[Callable[[Sequence[float]], Outcome], list[tuple[float, float]], int]] = {
    "gardner": (gardner, [(0.0, 6.0)] * 2, 1),
    "gramacy": (gramacy, [(0.0, 1.0)] * 2, 1),
    "branin-disk": (branin_disk, [(-5.0, 10.0), (0.0, 15.0)], 1),
    "hartmann6-l1": (hartmann6_l1, [(0.0, 1.0)] * 6, 1),
    "czdt1": (czdt1, [(0.0, 1.0)] * 4, 2),
    "spring": (spring, [(0.05, 2.0), (0.25, 1.3), (2.0, 15.0)], 1),
    "pressure-vessel": (pressure_vessel, [(0.0625, 6.1875), (0.0625, 6.1875), (10.0, 200.0), (10.0, 200.0)], 1),
    "welded-beam": (welded_beam, [(0.1, 2.0), (0.1, 10.0), (0.1, 10.0), (0.1, 2.0)], 1),
}
# The best values reported in the literature for the three engineering designs (at the points in the tests).
BEST_KNOWN = {"spring": 0.0126652, "pressure-vessel": 5885.33, "welded-beam": 1.724852}
HV_REF = (1.1, 11.0)
METHODS = ("hpt-bayes", "hpt-random", "optuna-gp", "optuna-tpe")


def run(problem: str, method: str, seed: int, trials: int) -> dict[str, Any]:
    """One run: every trial's (values, constraints), and whether the reported best was feasible."""
    f, bounds, m = PROBLEMS[problem]
    dim = len(bounds)
    if method.startswith("hpt"):
        space = {f"x{i}": hpt.Float(lo, hi) for i, (lo, hi) in enumerate(bounds)}

        def objective(trial: hpt.Trial) -> Any:
            values, constraints = f([trial.params[f"x{i}"] for i in range(dim)])
            trial.set_constraints(constraints)
            return values if m > 1 else values[0]

        tuner = hpt.Tuner(objective, space, directions=["minimize"] * m, strategy=method.removeprefix("hpt-"),
                          max_trials=trials, seed=seed, loggers=[])  # fmt: skip
        result = anyio.run(tuner.run)
        points = [(tuple(t.values or (t.value,)), tuple(t.constraints or ())) for t in result.trials
                  if t.value is not None]  # fmt: skip
        any_feasible = any(all(c <= 0 for c in cons) for _, cons in points)
        if m == 1:
            reported_ok = (result.best is not None and result.best.feasible) if any_feasible else result.best is None
        else:
            reported_ok = all(t.feasible for t in result.best_trials) and (bool(result.best_trials) == any_feasible)
        return {"points": points, "reported_ok": reported_ok}
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)

    def constraints_func(trial: optuna.trial.FrozenTrial) -> Sequence[float]:
        return trial.user_attrs["constraints"]

    sampler = {
        "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed, constraints_func=constraints_func),
        "optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed, constraints_func=constraints_func),
    }[method]()
    study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)

    def objective_optuna(t: optuna.Trial) -> Any:
        values, constraints = f([t.suggest_float(f"x{i}", lo, hi) for i, (lo, hi) in enumerate(bounds)])
        t.set_user_attr("constraints", list(constraints))
        return values if m > 1 else values[0]

    study.optimize(objective_optuna, n_trials=trials)
    points = [(tuple(t.values), tuple(t.user_attrs["constraints"])) for t in study.trials if t.values is not None]
    return {"points": points, "reported_ok": None}


def figure(problem: str, points: list[tuple[tuple[float, ...], tuple[float, ...]]]) -> float:
    """Best feasible value (inf when none), or the feasible front's hypervolume for two objectives."""
    feasible = [v for v, c in points if all(x <= 0 for x in c)]
    if PROBLEMS[problem][2] > 1:
        return hpt.hypervolume(feasible, HV_REF) if feasible else 0.0
    return min((v[0] for v in feasible), default=math.inf)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    parser.add_argument(
        "--methods", nargs="+", default=None, help=f"of {', '.join(METHODS)} (default: all); with --report, any labels"
    )
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    parser.add_argument("--trials", type=int, default=None, help="trials per run (default 40; with --report: any)")
    parser.add_argument("--torch-threads", type=int, default=None, help="torch.set_num_threads (default: torch's)")
    parser.add_argument("--out", default="bench-results/constrained.jsonl")
    parser.add_argument("--tie", type=float, default=1e-3, help="differences up to this count as ties")
    parser.add_argument("--report", nargs="+", metavar="FILE", help="print the table of these JSON lines and stop")
    parser.add_argument(
        "--tag", default="", help="appended to the hpt-async methods' labels in the rows written (e.g. --tag=-new)"
    )
    args = parser.parse_args(argv)
    if args.report:
        rows = read_rows(args.report, args.methods,
                         lambda r: r["problem"] in args.problems and args.trials in (None, r["trials"]))  # fmt: skip
        if rows:
            report(rows, args.methods or list(dict.fromkeys(r["method"] for r in rows)), args.tie)
        else:
            print("no run matches")
        return
    args.methods = args.methods or list(METHODS)
    args.trials = args.trials or 40
    unknown = sorted(set(args.methods) - set(METHODS))
    if unknown:
        parser.error(f"unknown methods {unknown}; choose from {', '.join(METHODS)}")
    if args.torch_threads:
        import torch

        torch.set_num_threads(args.torch_threads)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for problem in args.problems:
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                start = time.perf_counter()
                result = run(problem, method, seed, args.trials)
                seconds = time.perf_counter() - start
                value = figure(problem, result["points"])
                n_feasible = sum(all(x <= 0 for x in c) for _, c in result["points"])
                label = method + args.tag if method.startswith("hpt") else method
                row = {"problem": problem, "method": label, "seed": seed, "trials": args.trials, "figure": value,
                       "feasible": n_feasible, "reported_ok": result["reported_ok"], "seconds": seconds}  # fmt: skip
                rows.append(row)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                flag = "" if result["reported_ok"] is not False else "  REPORTED AN INFEASIBLE BEST"
                print(f"{problem:13s} seed {seed:3d} {method:11s} figure {value:10.5f} feasible {n_feasible:3d} "
                      f"{seconds:7.2f} s{flag}", flush=True)  # fmt: skip
    report(rows, [m + args.tag if m.startswith("hpt") else m for m in args.methods], args.tie)


def report(rows: list[dict[str, Any]], methods: Sequence[str], tie: float = 1e-3) -> None:
    """Median figure per problem and method, and the seeds on which the first method does better."""
    anchor = methods[0]
    print()
    print("| problem | " + " | ".join(methods) + f" | {anchor} better / worse / seeds (ties within {tie:g}) |")
    print("| --- | " + " | ".join("---" for _ in methods) + " | --- |")
    paired_lines: list[str] = []
    for problem in dict.fromkeys(r["problem"] for r in rows):
        larger = PROBLEMS[problem][2] > 1
        by = {(r["method"], r["seed"]): r["figure"] for r in rows if r["problem"] == problem}
        seeds = sorted(s for s in {s for (_, s) in by} if all((m, s) in by for m in methods))  # complete seeds
        cells = []
        for m in methods:
            mine = [by[(m, s)] for s in seeds]
            cells.append(f"{statistics.median(mine):.4f} (mean {statistics.mean(mine):.4f})")

        def better(a: float, b: float, larger: bool = larger) -> bool:
            if math.isfinite(a) and math.isfinite(b) and abs(a - b) <= tie:
                return False
            return a > b if larger else a < b

        wins = ", ".join(
            f"vs {m} {sum(better(by[(anchor, s)], by[(m, s)]) for s in seeds)}"
            f"/{sum(better(by[(m, s)], by[(anchor, s)]) for s in seeds)}/{len(seeds)}"
            for m in methods[1:]
        )
        print(f"| {problem}{' (hypervolume)' if larger else ''} | " + " | ".join(cells) + f" | {wins} |")
        for m in methods[1:]:
            ahead = sum(better(by[(anchor, s)], by[(m, s)]) for s in seeds)
            behind = sum(better(by[(m, s)], by[(anchor, s)]) for s in seeds)
            # Improvement of the first method over m, in the figure's own direction, where both are finite.
            gains = [(by[(anchor, s)] - by[(m, s)]) * (1 if larger else -1) for s in seeds
                     if math.isfinite(by[(anchor, s)]) and math.isfinite(by[(m, s)])]  # fmt: skip
            se = statistics.stdev(gains) / math.sqrt(len(gains)) if len(gains) > 1 else 0.0
            gain = f"{statistics.mean(gains):+.4g} ± {se:.2g}" if gains else "n/a"
            paired_lines.append(
                f"- {problem}: {anchor} vs {m}: gain {gain} (over {len(gains)} seeds), better on {ahead}, "
                f"worse on {behind}, sign test p = {sign_test(ahead, behind):.3f}, t-test p = {t_test(gains):.3f}"
            )
    print()
    print("Paired by seed (gain: how much better the first method's figure is, mean ± standard error; "
          "two-sided sign test over the seeds that differ; paired t-test over the gains):")  # fmt: skip
    print("\n".join(paired_lines))
    bad = [r for r in rows if r["reported_ok"] is False]
    print()
    print(f"hpt-async runs that reported an infeasible best (or none) while a feasible trial existed: {len(bad)}")
    per = {m: statistics.mean(r["seconds"] / r["trials"] for r in rows if r["method"] == m) for m in methods}
    print("time per trial: " + ", ".join(f"{m} {per[m]:.4f} s ({per[m] / per[anchor]:.3f})" for m in methods))


if __name__ == "__main__":
    main()
