"""High-dimensional search quality: ``auto`` and ``cmaes`` against Optuna's CmaEsSampler and TPESampler.

Subcommands:

* ``run``: each problem of ``functions.HIGH_DIM`` at each dimension, for each
  seed and method, budget ``20 x d`` sequential trials; one JSON line per
  run appended to ``--out``.  Methods: ``hpt-auto``, ``hpt-cmaes``,
  ``hpt-tpe``, ``hpt-random``, ``hpt-bayes`` (a Gaussian process: slow at
  these budgets), ``optuna-cmaes``, ``optuna-tpe``.
* ``report``: median final regret per problem and method, as Markdown, with
  paired sign tests over the seeds: ``auto`` against the better (by median)
  of Optuna's two samplers (one-sided: is ``auto`` worse?), ``cmaes``
  against CmaEsSampler (two-sided: "within noise" when p > 0.05), and the
  rank of ``auto`` among hpt-async's strategies.  ``--rule`` names the
  problems that chose ``auto``'s rule; the others are reported apart.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import anyio

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import HIGH_DIM, Problem

import hpt_async as hpt

METHODS = ("hpt-auto", "hpt-cmaes", "hpt-tpe", "hpt-random", "hpt-bayes", "optuna-cmaes", "optuna-tpe")
HPT = ("hpt-cmaes", "hpt-tpe", "hpt-random", "hpt-bayes")


def run_hpt(problem: Problem, method: str, seed: int) -> tuple[list[float], str]:
    """Values of a sequential hpt-async run in trial order, and the strategy it ran."""
    strategy = method.removeprefix("hpt-")

    async def objective(trial: hpt.Trial) -> float:
        return problem.evaluate(trial.params)

    async def main() -> tuple[hpt.StudyResult, str]:
        tuner = hpt.Tuner(objective, problem.space, strategy=strategy, seed=seed, max_trials=problem.budget, loggers=[])
        result = await tuner.run()
        chosen = tuner.strategy.choice["name"] if strategy == "auto" else strategy
        return result, chosen

    result, chosen = anyio.run(main)
    return [t.value for t in result.trials if t.value is not None], chosen


def run_optuna(problem: Problem, method: str, seed: int) -> list[float]:
    """Values of a sequential Optuna run, in trial order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    if method == "optuna-cmaes":
        sampler = optuna.samplers.CmaEsSampler(seed=seed)
    else:
        sampler = optuna.samplers.TPESampler(seed=seed)
    study = optuna.create_study(sampler=sampler)
    names = list(problem.space)

    def objective(trial: Any) -> float:
        params = {n: trial.suggest_float(n, problem.space[n].low, problem.space[n].high) for n in names}
        return problem.evaluate(params)

    study.optimize(objective, n_trials=problem.budget)
    return [t.value for t in study.trials if t.value is not None]


def cmd_run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    done = set()
    if out.exists():  # runs already in the file are not run again (an interrupted run continues)
        for text in out.read_text().splitlines():
            row = json.loads(text)
            done.add((row["problem"], row["method"], row["seed"]))
    for name in args.problems:
        for dim in args.dims:
            problem = HIGH_DIM[name](dim)
            for seed in range(args.first_seed, args.first_seed + args.seeds):
                for method in args.methods:
                    if (problem.name, method, seed) in done:
                        continue
                    start = time.perf_counter()
                    if method.startswith("hpt"):
                        values, chosen = run_hpt(problem, method, seed)
                    else:
                        values, chosen = run_optuna(problem, method, seed), method
                    line = {
                        "problem": problem.name,
                        "method": method,
                        "chosen": chosen,
                        "seed": seed,
                        "budget": problem.budget,
                        "regret": min(values) - problem.best,  # type: ignore[operator]
                        "seconds": time.perf_counter() - start,
                    }
                    with out.open("a") as fh:
                        fh.write(json.dumps(line) + "\n")
                    print(json.dumps(line), flush=True)


def sign_test(a: list[float], b: list[float], alternative: str) -> tuple[int, int, float]:
    """Paired sign test of ``a`` against ``b`` (lower is better): (wins of a, wins of b, p); ties dropped."""
    from scipy.stats import binomtest

    wins = sum(x < y for x, y in zip(a, b, strict=True))
    losses = sum(x > y for x, y in zip(a, b, strict=True))
    if wins + losses == 0:
        return wins, losses, 1.0
    # alternative "worse": is a worse than b (more losses than chance)?
    if alternative == "worse":
        return wins, losses, float(binomtest(losses, wins + losses, 0.5, alternative="greater").pvalue)
    return wins, losses, float(binomtest(wins, wins + losses, 0.5).pvalue)


def cmd_report(args: argparse.Namespace) -> None:
    runs: dict[tuple[str, str, int], dict[str, Any]] = {}
    for file in args.files:
        for line in Path(file).read_text().splitlines():
            row = json.loads(line)
            runs[(row["problem"], row["method"], row["seed"])] = row
    seeds = set(range(args.first_seed, args.first_seed + args.seeds))
    table: dict[str, dict[str, list[tuple[int, float]]]] = defaultdict(lambda: defaultdict(list))
    chosen: dict[str, set[str]] = defaultdict(set)
    for (problem, method, seed), row in sorted(runs.items()):
        if seed in seeds:
            table[problem][method].append((seed, row["regret"]))
            if method == "hpt-auto":
                chosen[problem].add(row["chosen"])
    shown = [m for m in METHODS if any(m in t for t in table.values())]
    print(
        "| problem | " + " | ".join(shown) + " | auto chose | auto vs best Optuna (W-L, p worse) "
        "| cmaes vs CmaEsSampler (W-L, p) | auto's rank in hpt-async |"
    )
    print("| --- " * (len(shown) + 5) + "|")
    counts = defaultdict(int)
    for problem in sorted(table, key=lambda p: (p.rstrip("0123456789"), int(p[len(p.rstrip("0123456789")) :]))):
        # Methods run on fewer seeds than the most complete one (a run cut short) are shown with their
        # count and left out of the tests, which pair the seeds common to the rest.
        methods = table[problem]
        full = max(len(v) for v in methods.values())
        partial = {m: v for m, v in methods.items() if len(v) < full}
        methods = {m: v for m, v in methods.items() if len(v) == full}
        common = set.intersection(*(set(s for s, _ in v) for v in methods.values()))
        regret = {m: [r for s, r in sorted(v) if s in common] for m, v in methods.items()}
        median = {m: statistics.median(v) for m, v in regret.items() if v}
        cells = [
            f"{median[m]:.3g}"
            if m in median
            else f"{statistics.median(r for _, r in partial[m]):.3g} (n={len(partial[m])})"
            if m in partial
            else ""
            for m in shown
        ]
        extra = []
        extra.append(", ".join(sorted(chosen[problem])))
        optuna = [m for m in ("optuna-cmaes", "optuna-tpe") if m in median]
        if "hpt-auto" in median and optuna:
            # Against the better of Optuna's samplers by median (the one measured, when only one was).
            best = min(optuna, key=lambda m: median[m])
            w, lo, p = sign_test(regret["hpt-auto"], regret[best], "worse")
            ok = p > 0.05
            counts["auto_ok"] += ok
            counts["auto_n"] += 1
            alone = "" if len(optuna) == 2 else " (only)"
            extra.append(f"{w}-{lo} vs {best.removeprefix('optuna-')}{alone}, p={p:.3f}{'' if ok else ' (worse)'}")
        else:
            extra.append("")
        if {"hpt-cmaes", "optuna-cmaes"} <= set(median):
            w, lo, p = sign_test(regret["hpt-cmaes"], regret["optuna-cmaes"], "two-sided")
            ok = p > 0.05
            counts["cmaes_ok"] += ok
            counts["cmaes_n"] += 1
            extra.append(f"{w}-{lo}, p={p:.3f}{'' if ok else ' (differs)'}")
        else:
            extra.append("")
        if "hpt-auto" in median:
            ranked = sorted((median[m], m) for m in HPT if m in median)
            rank = 1 + sum(v < median["hpt-auto"] for v, _ in ranked)
            counts["rank_ok"] += rank <= 2
            counts["rank_n"] += 1
            extra.append(f"{rank} of {len(ranked)}")
        else:
            extra.append("")
        print(f"| {problem} | " + " | ".join(cells + extra) + " |")
    print()
    print(
        f"auto no worse than the best Optuna sampler: {counts['auto_ok']} of {counts['auto_n']}; "
        f"cmaes within noise of CmaEsSampler: {counts['cmaes_ok']} of {counts['cmaes_n']}; "
        f"auto within the best two hpt-async strategies: {counts['rank_ok']} of {counts['rank_n']}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="run problems x dims x seeds x methods")
    run.add_argument("--problems", nargs="+", default=list(HIGH_DIM), choices=list(HIGH_DIM))
    run.add_argument("--dims", nargs="+", type=int, default=[10, 20])
    run.add_argument("--methods", nargs="+", default=[m for m in METHODS if m != "hpt-bayes"], choices=METHODS)
    run.add_argument("--first-seed", type=int, default=0)
    run.add_argument("--seeds", type=int, default=10)
    run.add_argument("--out", default="highdim.jsonl")
    run.set_defaults(func=cmd_run)
    report = sub.add_parser("report", help="Markdown table and sign tests from the JSON lines of run")
    report.add_argument("files", nargs="+")
    report.add_argument("--first-seed", type=int, default=0)
    report.add_argument("--seeds", type=int, default=10)
    report.set_defaults(func=cmd_report)
    args = parser.parse_args()
    args.func(args)


if __name__ == "__main__":
    main()
