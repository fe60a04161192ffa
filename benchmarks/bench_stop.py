"""Knowing when to stop: ``hpt.RegretBound`` against Optuna's Terminator on the problems of ``functions.py``.

For each problem and seed, one sequential run of an hpt-async strategy
(``--strategy``, default ``tpe``) to ``--scale`` times the usual budget
(``max(40, 20 x dim)``) gives a trajectory of trials.  Both stop rules
then read that trajectory trial by trial, as they would in a live run at
concurrency 1 (a stop rule does not change the trials before it fires, so
the trials used and the best value at the stop are those of a live run
that used the rule).  Both check every ``--every`` (10) trials from the
20th:

* ``RegretBound(every=10)`` (hpt-async): its bound and the noise its GP
  estimates are recorded at every check.  It stops at the first check
  whose bound is below the error: the GP's noise (rule ``default``, no
  constant), or a given ``error`` (rule ``error=<r>``: ``r`` times the
  problem's scale, the interquartile range of its values at 1,000 random
  points, a property of the problem that a user would know roughly).
* Optuna's ``Terminator`` with its ``RegretBoundEvaluator`` (Optuna's own
  GP), checked at the same trials (Optuna's ``TerminatorCallback`` checks
  after every trial: it could stop up to nine trials earlier).  Its
  default error evaluator needs cross-validation scores, which these
  problems do not have; so its error is a ``StaticErrorEvaluator`` of the
  same ``r`` times the scale (rule ``static=<r>``), or, with ``--median``,
  Optuna's ``MedianErrorEvaluator`` (rule ``median=<ratio>``: ``ratio``
  times the median bound at trials 11 to 30; 20 more fits per run).

For each rule: the trials it used (the budget when it never fired), the
share of the budget saved, and the regret at the stop against the regret
after the full budget.  ``--out`` keeps one JSON line per run (the bounds
at every check), so that ``report`` applies any constant without running
again; choose the constants on some seeds, then report others::

    python benchmarks/bench_stop.py run --seeds 10 --first-seed 0 --out stop-0.jsonl
    python benchmarks/bench_stop.py report stop-0.jsonl --choose
    python benchmarks/bench_stop.py run --seeds 10 --first-seed 100 --out stop-100.jsonl
    python benchmarks/bench_stop.py report stop-100.jsonl --detail default error=0.1 static=0.1
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
import warnings
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import PROBLEMS

import hpt_async as hpt
from hpt_async.study import StudyView

SYNTHETIC = ("branin", "rosenbrock4", "levy5", "hartmann6", "styblinski8", "ackley10")
GRID = (0.001, 0.003, 0.01, 0.03, 0.1, 0.3, 1.0)


def problem_scale(name: str) -> float:
    """The interquartile range of the problem's values at 1,000 random points (a fixed seed)."""
    problem = PROBLEMS[name]()
    space = hpt.Space(problem.space)
    values = [problem.evaluate(space.sample(12345, k)) for k in range(1000)]
    q1, _, q3 = statistics.quantiles(values, n=4)
    return q3 - q1


def trajectory(name: str, strategy: str, seed: int, trials: int) -> list[Any]:
    """The trials of one sequential run, in order."""
    problem = PROBLEMS[name]()
    tuner = hpt.Tuner(
        lambda t: problem.evaluate(t.params),
        problem.space,
        strategy=strategy,
        seed=seed,
        max_trials=trials,
        loggers=[],
    )
    return list(anyio.run(tuner.run).trials)


def hpt_bounds(name: str, seed: int, trials: list[Any], every: int) -> list[tuple[int, float, float]]:
    """(trials seen, bound, the GP's noise sd) at every check of ``RegretBound(every=every)`` reading ``trials``."""
    problem = PROBLEMS[name]()
    study = StudyView(name, "minimize", hpt.Space(problem.space), seed)
    rule = hpt.RegretBound(every=every)
    rule.reset(study)
    out = []
    for n, record in enumerate(trials, start=1):
        study._put(record)
        before = rule._checked
        rule.observe(study, record)
        if rule._checked != before:  # a check was made
            assert rule.bound is not None and rule.error_used is not None
            out.append((n, rule.bound, rule.error_used))
    return out


def optuna_bounds(name: str, seed: int, trials: list[Any], every: int, median: bool) -> list[tuple[int, float]]:
    """(trials seen, Optuna's regret bound) every ``every`` trials from 20, and at 11-30 with ``median``."""
    import optuna
    from optuna.terminator import RegretBoundEvaluator

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.filterwarnings("ignore", category=optuna.exceptions.ExperimentalWarning)
    try:
        import torch

        torch.set_num_threads(1)  # small matrices: one thread, as RegretBound's fit runs on one BLAS thread
    except ImportError:
        pass
    problem = PROBLEMS[name]()
    dists = {k: optuna.distributions.FloatDistribution(d.low, d.high) for k, d in problem.space.items()}
    evaluator = RegretBoundEvaluator(seed=seed)
    study = optuna.create_study(direction="minimize")
    out = []
    for n, record in enumerate(trials, start=1):
        study.add_trial(optuna.trial.create_trial(params=dict(record.params), distributions=dists, value=record.value))
        if (median and 11 <= n <= 30) or (n >= 20 and (n - 20) % every == 0):
            frozen = study.get_trials(deepcopy=False)
            out.append((n, float(evaluator.evaluate(frozen, study.direction))))
    return out


def cmd_run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.problems:
        problem = PROBLEMS[name]()
        budget = round(args.scale * problem.budget)
        scale = problem_scale(name)
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            t0 = time.perf_counter()
            trials = trajectory(name, args.strategy, seed, budget)
            t1 = time.perf_counter()
            hpt_b = hpt_bounds(name, seed, trials, args.every)
            t2 = time.perf_counter()
            opt_b = optuna_bounds(name, seed, trials, args.every, args.median) if not args.no_optuna else []
            t3 = time.perf_counter()
            line = {
                "problem": name,
                "seed": seed,
                "strategy": args.strategy,
                "every": args.every,
                "budget": budget,
                "optimum": problem.best,
                "scale": scale,
                "values": [t.value for t in trials],
                "hpt": hpt_b,
                "optuna": opt_b,
                "seconds": {"search": t1 - t0, "hpt": t2 - t1, "optuna": t3 - t2},
            }
            with out.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
            print(
                f"{name:12s} seed {seed:3d}: search {t1 - t0:5.1f} s, RegretBound checks {t2 - t1:5.1f} s,"
                f" Terminator checks {t3 - t2:5.1f} s",
                flush=True,
            )


def stop_at(run: dict[str, Any], rule: str) -> int | None:
    """Trials used when ``rule`` stops this run (None: it never fires within the budget)."""
    kind, _, value = rule.partition("=")
    r = float(value) if value else 0.0
    if kind == "default":
        return next((n for n, bound, noise in run["hpt"] if bound < noise), None)
    if kind == "error":
        return next((n for n, bound, _ in run["hpt"] if bound < r * run["scale"]), None)
    every = run["every"]
    checks = [(n, b) for n, b in run["optuna"] if n >= 20 and (n - 20) % every == 0]
    if kind == "static":
        return next((n for n, b in checks if b < r * run["scale"]), None)
    if kind == "median":
        # Optuna's MedianErrorEvaluator: the ratio times the median bound at trials 11-30 (warm-up 10, 20 initial).
        initial = [b for n, b in run["optuna"] if 11 <= n <= 30]
        if len(initial) < 20:
            return None
        threshold = r * float(np.median(initial))
        return next((n for n, b in checks if n >= 30 and b < threshold), None)
    raise SystemExit(f"unknown rule {rule!r}")


def summarise(runs: list[dict[str, Any]], rule: str) -> dict[str, dict[str, float]]:
    """Per problem: median trials used, share saved, median regret at the stop and at the full budget."""
    out: dict[str, dict[str, float]] = {}
    for name in dict.fromkeys(r["problem"] for r in runs):
        used, saved, at_stop, full, worse, fired = [], [], [], [], 0, 0
        for run in (r for r in runs if r["problem"] == name):
            values = run["values"]
            n = stop_at(run, rule)
            fired += n is not None
            n = len(values) if n is None else n
            regret_stop = min(values[:n]) - run["optimum"]
            regret_full = min(values) - run["optimum"]
            used.append(n)
            saved.append(1 - n / len(values))
            at_stop.append(regret_stop)
            full.append(regret_full)
            worse += regret_stop > regret_full
        out[name] = {
            "seeds": len(used),
            "budget": next(r["budget"] for r in runs if r["problem"] == name),
            "fired": fired,
            "used": statistics.median(used),
            "saved": statistics.mean(saved),
            "regret_stop": statistics.median(at_stop),
            "regret_full": statistics.median(full),
            "worse": worse,
        }
    return out


def cmd_report(args: argparse.Namespace) -> None:
    runs = [json.loads(line) for path in args.files for line in Path(path).read_text().splitlines() if line.strip()]
    with_median = any(n < 20 for run in runs for n, _ in run["optuna"])
    rules = args.rules or (
        ["default"]
        + [f"error={r}" for r in GRID]
        + [f"static={r}" for r in GRID]
        + ([f"median={r}" for r in GRID] if with_median else [])
    )
    seeds = sorted({r["seed"] for r in runs})
    print(f"{len(runs)} runs, seeds {seeds[0]}-{seeds[-1]}, strategy {runs[0]['strategy']}")
    print()
    print("| rule | budget saved (mean over problems) | problems where regret at stop > full (median) | fired |")
    print("| --- | --- | --- | --- |")
    for rule in rules:
        s = summarise(runs, rule)
        saved = statistics.mean(v["saved"] for v in s.values())
        worse = sum(v["regret_stop"] > v["regret_full"] for v in s.values())
        fired = sum(v["fired"] for v in s.values())
        print(f"| {rule} | {100 * saved:.0f} % | {worse} of {len(s)} | {fired} of {len(runs)} runs |")
    if args.choose:
        # Per family, the largest constant whose median regret at the stop exceeds the full budget's on at most
        # one problem: the most budget saved at (almost) no cost in regret.
        print()
        for family in ("error", "static", "median"):
            ok = [r for r in GRID if f"{family}={r}" in rules]
            ok = [
                r
                for r in ok
                if sum(v["regret_stop"] > v["regret_full"] for v in summarise(runs, f"{family}={r}").values()) <= 1
            ]
            if ok:
                print(f"chosen: {family}={max(ok)}")
    if args.detail:
        for rule in args.detail:
            print()
            print(f"`{rule}`:")
            print()
            print("| problem (budget) | trials used (median) | saved | regret at stop | regret, full | seeds worse |")
            print("| --- | --- | --- | --- | --- | --- |")
            for name, v in summarise(runs, rule).items():
                print(
                    f"| {name} ({v['budget']}) | {v['used']:.0f} | {100 * v['saved']:.0f} % |"
                    f" {v['regret_stop']:.3g} | {v['regret_full']:.3g} | {v['worse']} of {v['seeds']} |"
                )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="trajectories and the bounds both rules see (JSON lines)")
    run.add_argument("--problems", nargs="+", default=list(SYNTHETIC), choices=SYNTHETIC)
    run.add_argument("--seeds", type=int, default=10)
    run.add_argument("--first-seed", type=int, default=0)
    run.add_argument("--strategy", default="tpe")
    run.add_argument("--scale", type=float, default=1.0)
    run.add_argument("--every", type=int, default=10, help="trials between checks, both rules")
    run.add_argument("--median", action="store_true", help="also Optuna's bounds at 11-30 (median error)")
    run.add_argument("--no-optuna", action="store_true")
    run.add_argument("--out", default="bench-results/stop.jsonl")
    report = sub.add_parser("report", help="trials used and regret at the stop, per rule")
    report.add_argument("files", nargs="+")
    report.add_argument("--rules", nargs="+")
    report.add_argument("--detail", nargs="+", help="rules to show per problem")
    report.add_argument(
        "--choose", action="store_true", help="per family, the largest constant worse on at most one problem"
    )
    args = parser.parse_args(argv)
    if args.command == "run":
        cmd_run(args)
    else:
        cmd_report(args)


if __name__ == "__main__":
    main()
