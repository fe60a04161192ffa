"""Bayesian optimisation benchmarks: hpt-async's ``bayes`` and ``tpe`` against Optuna's samplers.

Subcommands (``--help`` on each lists its options):

* ``quality``: each problem of ``functions.PROBLEMS`` for each seed and each
  method, budget ``max(40, 20 x dim)`` sequential trials; one JSON line per
  run appended to ``--out``.  Methods: ``hpt-bayes``, ``hpt-tpe``,
  ``hpt-random``, ``optuna-random``, ``optuna-tpe``, ``optuna-gp`` (Optuna's
  GPSampler needs torch).  Long: run problems as separate shards.
* ``report``: median final regret with its spread, per problem and method,
  from the JSON lines of ``quality``, as Markdown, with the win counts the
  targets ask for (a problem, method and seed found in several files counts
  once).
* ``speed``: wall and CPU time per trial over 100 sequential trials on
  Hartmann-6, ``bayes`` and Optuna's GPSampler alternated in one process.
* ``growth``: time of one suggestion with 100 and with 1,000 observations
  (amortised over a window that includes the periodic refits), default
  settings against exact refits from scratch.
* ``concurrency``: Hartmann-6 with objectives of random duration, 8 workers
  against 1: wall time to reach a regret, and how far each suggestion lands
  from the trials running when it was made.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import PROBLEMS, Problem

import hpt_async as hpt
from hpt_async.strategies.bayes import BayesStrategy
from hpt_async.strategies.tpe import TPEStrategy
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState

METHODS = ("hpt-bayes", "hpt-tpe", "hpt-random", "optuna-random", "optuna-tpe", "optuna-gp")


# -- running one method --------------------------------------------------------------------


def run_hpt(problem: Problem, method: str, seed: int) -> list[float]:
    """Values of a sequential hpt-async run, in trial order."""
    strategy: Any = {"hpt-bayes": BayesStrategy, "hpt-tpe": TPEStrategy}.get(method, lambda: "random")()

    async def objective(trial: hpt.Trial) -> float:
        return problem.evaluate(trial.params)

    async def main() -> hpt.StudyResult:
        tuner = hpt.Tuner(objective, problem.space, strategy=strategy, seed=seed, max_trials=problem.budget, loggers=[])
        return await tuner.run()

    result = anyio.run(main)
    return [t.value for t in result.trials if t.value is not None]


def optuna_params(trial: Any, space: hpt.Space) -> dict[str, Any]:
    """The configuration of an Optuna trial for an hpt-async space (conditions included)."""
    params: dict[str, Any] = {}
    for name, dom in space.items():
        if not space.is_active(name, params):
            continue
        if isinstance(dom, hpt.Choice):
            params[name] = trial.suggest_categorical(name, list(dom.values))
        elif isinstance(dom, hpt.Int):
            params[name] = trial.suggest_int(name, dom.low, dom.high, step=dom.step, log=dom.log)
        else:
            assert isinstance(dom, hpt.Float)
            params[name] = trial.suggest_float(name, dom.low, dom.high, log=dom.log, step=dom.step)
    return params


def optuna_sampler(method: str, seed: int) -> Any:
    import optuna

    if method == "optuna-random":
        return optuna.samplers.RandomSampler(seed=seed)
    if method == "optuna-tpe":
        return optuna.samplers.TPESampler(seed=seed)
    return optuna.samplers.GPSampler(seed=seed)


def run_optuna(problem: Problem, method: str, seed: int) -> list[float]:
    """Values of a sequential Optuna run, in trial order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = hpt.Space(problem.space)
    study = optuna.create_study(sampler=optuna_sampler(method, seed))
    study.optimize(lambda t: problem.evaluate(optuna_params(t, space)), n_trials=problem.budget)
    return [t.value for t in study.trials if t.value is not None]


def cmd_quality(args: argparse.Namespace) -> None:
    methods = METHODS if args.methods == ["all"] else args.methods
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    for name in args.problems:
        problem = PROBLEMS[name]()
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in methods:
                start = time.perf_counter()
                runner = run_hpt if method.startswith("hpt") else run_optuna
                values = runner(problem, method, seed)
                elapsed = time.perf_counter() - start
                line = {
                    "problem": name,
                    "method": method,
                    "seed": seed,
                    "budget": problem.budget,
                    "best": min(values),
                    "optimum": problem.best,
                    "seconds": elapsed,
                    "values": values,
                }
                with out.open("a") as fh:
                    fh.write(json.dumps(line) + "\n")
                print(f"{name:12s} seed {seed:2d} {method:14s} best {min(values):.6g}  {elapsed:6.1f} s", flush=True)


# -- the report --------------------------------------------------------------------------------


def _fmt(x: float) -> str:
    return f"{x:.3g}" if x != 0 else "0"


def cmd_report(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    seen: set[tuple[str, str, int]] = set()
    for path in args.files:
        with open(path) as fh:
            for line in fh:
                if not line.strip():
                    continue
                row = json.loads(line)
                key = (row["problem"], row["method"], row["seed"])
                if key not in seen:  # a run repeated in another shard counts once (the first)
                    seen.add(key)
                    rows.append(row)
    problems = list(dict.fromkeys(r["problem"] for r in rows))
    methods = [m for m in METHODS if any(r["method"] == m for r in rows)]
    medians: dict[tuple[str, str], float] = {}
    print("| problem (dim, budget) | " + " | ".join(methods) + " |")
    print("| --- | " + " | ".join("---" for _ in methods) + " |")
    for name in problems:
        mine = [r for r in rows if r["problem"] == name]
        optimum = mine[0]["optimum"]
        if optimum is None:  # unknown: regret from the best any run found
            optimum = min(r["best"] for r in mine)
        cells = []
        for method in methods:
            regrets = [r["best"] - optimum for r in mine if r["method"] == method]
            if not regrets:
                cells.append("-")
                continue
            med = statistics.median(regrets)
            q1, q3 = np.percentile(regrets, [25, 75])
            medians[(name, method)] = med
            cells.append(f"{_fmt(med)} [{_fmt(q1)}, {_fmt(q3)}] (n={len(regrets)})")
        dim = PROBLEMS[name]().dim if name in PROBLEMS else "?"
        budget = mine[0]["budget"]
        print(f"| {name} ({dim}, {budget}) | " + " | ".join(cells) + " |")
    print()

    def wins(a: str, b: str, strict: bool = True) -> str:
        both = [p for p in problems if (p, a) in medians and (p, b) in medians]
        if strict:
            won = [p for p in both if medians[(p, a)] < medians[(p, b)]]
        else:
            won = [p for p in both if medians[(p, a)] <= medians[(p, b)]]
        return f"{len(won)}/{len(both)} ({', '.join(won) or 'none'})"

    if "hpt-bayes" in methods and "optuna-gp" in methods:
        print(f"- bayes lower than optuna-gp: {wins('hpt-bayes', 'optuna-gp')}")
    if "hpt-bayes" in methods and "optuna-tpe" in methods:
        print(f"- bayes lower than optuna-tpe: {wins('hpt-bayes', 'optuna-tpe')}")
    if "hpt-tpe" in methods and "optuna-tpe" in methods:
        print(f"- tpe no worse than optuna-tpe: {wins('hpt-tpe', 'optuna-tpe', strict=False)}")
    secs: dict[str, list[float]] = {}
    for r in rows:
        secs.setdefault(r["method"], []).append(r["seconds"] / r["budget"])
    print(
        "- mean wall time per trial (whole runs, objective included): "
        + ", ".join(f"{m} {1000 * statistics.mean(secs[m]):.1f} ms" for m in methods)
    )


# -- speed --------------------------------------------------------------------------------------


def cmd_speed(args: argparse.Namespace) -> None:
    """Wall and CPU time per trial, ``bayes`` and GPSampler alternated in one process.

    CPU time (``time.process_time``, all threads of the process) is reported
    next to wall time: on a shared machine the wall time of a single-threaded
    run also counts the time other processes held the core.
    """
    problem = PROBLEMS["hartmann6"]()
    # Warm-up (not timed): first use imports scipy.optimize on one side and torch on the other.
    _run_n(problem, 12, 99)
    _run_optuna_n(problem, 12, 99)
    wall: dict[str, list[float]] = {"hpt-bayes": [], "optuna-gp": []}
    cpu: dict[str, list[float]] = {"hpt-bayes": [], "optuna-gp": []}
    for r in range(args.rounds):
        for method in ("hpt-bayes", "optuna-gp"):
            start, start_cpu = time.perf_counter(), time.process_time()
            if method == "hpt-bayes":
                values = _run_n(problem, args.trials, r)
            else:
                values = _run_optuna_n(problem, args.trials, r)
            per = (time.perf_counter() - start) / args.trials
            per_cpu = (time.process_time() - start_cpu) / args.trials
            wall[method].append(per)
            cpu[method].append(per_cpu)
            print(
                f"round {r} {method:10s} wall {1000 * per:7.1f} ms/trial, cpu {1000 * per_cpu:7.1f} ms/trial,"
                f" best regret {min(values) - problem.best:.3g}",
                flush=True,
            )
    for label, table in (("wall", wall), ("cpu", cpu)):
        a, b = statistics.median(table["hpt-bayes"]), statistics.median(table["optuna-gp"])
        ratios = [x / y for x, y in zip(table["hpt-bayes"], table["optuna-gp"], strict=True)]
        print(
            f"{label} (median of {args.rounds} rounds): hpt-bayes {1000 * a:.1f} ms/trial,"
            f" optuna-gp {1000 * b:.1f} ms/trial, ratio {a / b:.3f}"
            f" (per-round ratios {', '.join(f'{x:.3f}' for x in ratios)})"
        )


def _run_n(problem: Problem, trials: int, seed: int) -> list[float]:
    async def objective(trial: hpt.Trial) -> float:
        return problem.evaluate(trial.params)

    async def main() -> hpt.StudyResult:
        tuner = hpt.Tuner(objective, problem.space, strategy="bayes", seed=seed, max_trials=trials, loggers=[])
        return await tuner.run()

    return [t.value for t in anyio.run(main).trials if t.value is not None]


def _run_optuna_n(problem: Problem, trials: int, seed: int) -> list[float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    space = hpt.Space(problem.space)
    study = optuna.create_study(sampler=optuna.samplers.GPSampler(seed=seed))
    study.optimize(lambda t: problem.evaluate(optuna_params(t, space)), n_trials=trials)
    return [t.value for t in study.trials]


# -- growth -------------------------------------------------------------------------------------


def _record(number: int, params: Mapping[str, Any], value: float) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.COMPLETE, params=dict(params), value=value, ended=0.0)


async def _time_asks(
    strategy: BayesStrategy, size: int, asks: int, warmup: int, seed: int
) -> list[tuple[float, float]]:
    """Wall and CPU seconds of each of ``asks`` suggestions made after ``size`` random observations (Hartmann-6)."""
    problem = PROBLEMS["hartmann6"]()
    space = hpt.Space(problem.space)
    view = StudyView("growth", "minimize", space, seed)
    for n in range(size):
        params = space.sample(seed, n)
        view._put(_record(n, params, problem.evaluate(params)))  # a study that already holds `size` results
    await strategy.start(view)
    times = []
    for i in range(warmup + asks):
        number = size + i
        start, start_cpu = time.perf_counter(), time.process_time()
        params = await strategy.ask(view, number)
        elapsed, elapsed_cpu = time.perf_counter() - start, time.process_time() - start_cpu
        record = _record(number, params, problem.evaluate(params))
        view._put(record)
        await strategy.tell(view, record)
        if i >= warmup:
            times.append((elapsed, elapsed_cpu))
    return times


def cmd_growth(args: argparse.Namespace) -> None:
    results: dict[tuple[str, int], tuple[float, float]] = {}
    for label in args.variants:
        for size in args.sizes:
            if label == "default":
                strategy = BayesStrategy()
                # A window as long as the refit period, so the refits are in the mean in their proportion.
                asks = max(args.asks, math.ceil(0.1 * size))
            else:  # exact: every observation, hyperparameters refitted at every suggestion
                strategy = BayesStrategy(max_points=10**9, refit_fraction=0.0)
                asks = args.exact_asks
            pairs = anyio.run(_time_asks, strategy, size, asks, args.warmup, 0)
            times = [w for w, _ in pairs]
            cpu = [c for _, c in pairs]
            mean, mean_cpu = statistics.mean(times), statistics.mean(cpu)
            results[(label, size)] = (mean, mean_cpu)
            print(
                f"{label:8s} n={size:5d}: mean {1000 * mean:8.1f} ms, median {1000 * statistics.median(times):8.1f} ms,"
                f" max {1000 * max(times):8.1f} ms; cpu mean {1000 * mean_cpu:8.1f} ms over {len(times)} suggestions",
                flush=True,
            )
    for label in args.variants:
        small, large = min(args.sizes), max(args.sizes)
        if (label, small) in results and (label, large) in results:
            (w0, c0), (w1, c1) = results[(label, small)], results[(label, large)]
            print(f"{label}: growth {small} -> {large}: wall x{w1 / w0:.1f}, cpu x{c1 / c0:.1f}")


# -- concurrency --------------------------------------------------------------------------------


def _spread(trials: list[TrialRecord], space: hpt.Space) -> list[float]:
    """For each trial created while others ran: unit-cube distance to the nearest of those."""
    out = []
    units = {t.number: np.array(space.to_unit(t.params)) for t in trials}
    for t in trials:
        running = [s for s in trials if s.number != t.number and s.started <= t.started < (s.ended or math.inf)]
        if running:
            out.append(min(float(np.linalg.norm(units[t.number] - units[s.number])) for s in running))
    return out


def cmd_concurrency(args: argparse.Namespace) -> None:
    problem = PROBLEMS["hartmann6"]()
    space = hpt.Space(problem.space)
    budget = args.trials

    async def one(strategy: Any, workers: int, seed: int) -> hpt.StudyResult:
        rng = np.random.default_rng(seed)
        durations = rng.uniform(args.min_duration, args.max_duration, budget + 64)

        async def objective(trial: hpt.Trial) -> float:
            await anyio.sleep(float(durations[trial.number]))
            return problem.evaluate(trial.params)

        tuner = hpt.Tuner(
            objective, problem.space, strategy=strategy, seed=seed, max_trials=budget, concurrency=workers, loggers=[]
        )
        return await tuner.run()

    settings = [
        ("bayes", 1, lambda: BayesStrategy()),
        ("bayes", args.workers, lambda: BayesStrategy()),
        ("bayes-ignore-pending", args.workers, lambda: BayesStrategy(pending="ignore")),
        ("random", args.workers, lambda: "random"),
    ]
    for label, workers, make in settings:
        reach, finals, spreads, walls, close = [], [], [], [], []
        for seed in range(args.seeds):
            start = time.time()
            result = anyio.run(one, make(), workers, seed)
            wall = time.time() - start
            trials = [t for t in result.trials if t.value is not None]
            first = min((t.started for t in result.trials), default=start)
            hit = [t.ended for t in trials if t.value - problem.best <= args.regret and t.ended is not None]
            reach.append((min(hit) - first) if hit else math.inf)
            finals.append(min(t.value for t in trials) - problem.best)
            s = _spread(list(result.trials), space)
            spreads += s
            close.append(sum(d < 0.05 for d in s))
            walls.append(wall)
        med_reach = statistics.median(reach)
        print(
            f"{label:22s} workers {workers}: wall {statistics.median(walls):6.1f} s,"
            f" time to regret <= {args.regret}: median {med_reach:6.1f} s"
            f" ({sum(math.isfinite(r) for r in reach)}/{len(reach)} reached),"
            f" final regret median {statistics.median(finals):.3g},"
            f" distance to nearest running trial: median {statistics.median(spreads) if spreads else float('nan'):.3f},"
            f" suggestions within 0.05 of one: {sum(close)}/{len(spreads)}",
            flush=True,
        )


# -- command line ---------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command", required=True)

    q = sub.add_parser("quality", help="final regret per problem, method and seed (JSON lines)")
    q.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    q.add_argument("--methods", nargs="+", default=["all"], choices=[*METHODS, "all"])
    q.add_argument("--seeds", type=int, default=10)
    q.add_argument("--first-seed", type=int, default=0)
    q.add_argument("--out", default="bench-results/quality.jsonl")
    q.set_defaults(func=cmd_quality)

    r = sub.add_parser("report", help="Markdown table from quality results")
    r.add_argument("files", nargs="+")
    r.set_defaults(func=cmd_report)

    s = sub.add_parser("speed", help="time per trial, 100 sequential trials in 6-D, against Optuna's GPSampler")
    s.add_argument("--trials", type=int, default=100)
    s.add_argument("--rounds", type=int, default=3)
    s.set_defaults(func=cmd_speed)

    g = sub.add_parser("growth", help="suggestion time with 100 and 1,000 observations")
    g.add_argument("--sizes", type=int, nargs="+", default=[100, 1000])
    g.add_argument("--asks", type=int, default=20)
    g.add_argument("--exact-asks", type=int, default=3)
    g.add_argument("--warmup", type=int, default=2)
    g.add_argument("--variants", nargs="+", default=["default", "exact"], choices=["default", "exact"])
    g.set_defaults(func=cmd_growth)

    c = sub.add_parser("concurrency", help="8 workers against 1 on Hartmann-6 with random trial durations")
    c.add_argument("--workers", type=int, default=8)
    c.add_argument("--trials", type=int, default=120)
    c.add_argument("--seeds", type=int, default=5)
    c.add_argument("--min-duration", type=float, default=0.2)
    c.add_argument("--max-duration", type=float, default=1.0)
    c.add_argument("--regret", type=float, default=0.5)
    c.set_defaults(func=cmd_concurrency)

    args = parser.parse_args(argv)
    args.func(args)


if __name__ == "__main__":
    main()
