"""Model-based search at high concurrency: wall time, busy slots and the best value found.

An ``async def`` objective awaits ``--sleep`` seconds (100 ms) and returns
Hartmann-6 (six parameters, minimum -3.32237) at the configuration it was
given.  ``--trials`` trials run ``--concurrency`` at once with memory
storage and no logger.  The ideal wall time is ``ceil(trials / concurrency)
x sleep``; a strategy that keeps up stays near it.  For each strategy and
seed one line reports the wall time as a multiple of the ideal, the busy
slots (the time objectives spent awaiting, over wall time x concurrency)
and the final regret; a summary gives the medians and, for ``bayes`` and
``tpe``, on how many seeds their final best beat random search's at the
same seed.

Optuna, in the same process: ``optuna-tpe`` runs TPESampler with
``study.optimize(..., n_jobs=concurrency)`` (threads, each sleeping the
same time), ``optuna-gp`` GPSampler likewise with ``--gp-trials`` trials.

    python benchmarks/bench_throughput.py                         # 2,000 trials, 200 at once, 10 seeds
    python benchmarks/bench_throughput.py --trials 1000 --concurrency 100
    python benchmarks/bench_throughput.py --methods optuna-tpe --seeds 3
    python benchmarks/bench_throughput.py --methods optuna-gp --gp-trials 300 --seeds 1

``quality`` runs the synthetic problems of ``bench_bayes.py`` (``functions.py``)
at their budget of ``max(40, 20 x dim)`` trials, each objective awaiting a
random 10-30 ms (seeded by trial number) so that concurrency is real:
``bayes`` at concurrency 1, 8 and 64, random search at 64 and Optuna's
TPESampler with ``n_jobs=64``.  One JSON line per run goes to ``--out``;
``quality-report`` prints the median final regret per problem and method,
the win counts (by median over seeds, and per seed), and how many trials
each method ran at once on average (the objectives' sleeping time over the
wall time: Optuna's threads take turns under the interpreter lock, and
``bayes`` keeps at most ``max_trials // rounds`` running).
``--bayes-options '{"rounds": null}'`` passes options to ``bayes``.

    python benchmarks/bench_throughput.py quality --seeds 10 --first-seed 100
    python benchmarks/bench_throughput.py quality-report bench-results/concurrency-quality.jsonl

``tpe-cost`` times one ``tpe`` suggestion with 1,000 observations (and
Optuna's TPESampler over the same history, side by side, taking turns over
``--repeats`` rounds): with the history fixed, and growing by one
observation before each suggestion as in a sequential run:

    python benchmarks/bench_throughput.py tpe-cost
    python benchmarks/bench_throughput.py tpe-cost --modes grow --repeats 9
"""

from __future__ import annotations

import argparse
import math
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from functions import PROBLEMS

import hpt_async as hpt
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState

METHODS = ("random", "bayes", "tpe", "optuna-tpe", "optuna-gp")


def run_hpt(method: str, seed: int, trials: int, concurrency: int, sleep: float) -> dict[str, Any]:
    """One hpt-async run: wall time, busy time, final best, and what the strategy says about keeping up."""
    problem = PROBLEMS["hartmann6"]()
    busy = [0.0]

    async def objective(trial: hpt.Trial) -> float:
        start = time.perf_counter()
        await anyio.sleep(sleep)
        busy[0] += time.perf_counter() - start
        if "source" not in info:
            info["source"] = tuner._study.source  # type: ignore[union-attr]  # to read its batch counters
        return problem.evaluate(trial.params)

    strategy: Any = hpt.plugins.get_registry().create("strategy", method)

    tuner = hpt.Tuner(
        objective, problem.space, strategy=strategy, seed=seed, max_trials=trials, concurrency=concurrency, loggers=[]
    )
    info: dict[str, Any] = {}
    start = time.perf_counter()
    result = anyio.run(tuner.run)
    wall = time.perf_counter() - start
    assert problem.best is not None
    source = info.pop("source")
    info.update(
        batches=source.batches,
        batched=source.batched_trials,
        wall=wall,
        busy=trials * sleep / (wall * concurrency),
        awaited=busy[0] / (wall * concurrency),
        regret=float(result.best_value) - problem.best,  # type: ignore[arg-type]
        behind=getattr(strategy, "behind", 0),
        fits=getattr(strategy, "background_fits", 0),
        process=getattr(strategy, "process_acquisitions", getattr(strategy, "process_batches", 0)),
    )
    remote = getattr(strategy, "_remote", None)
    if remote is not None:
        remote.close()  # the model process of this run: not left running beside the next one
    return info


def run_optuna(method: str, seed: int, trials: int, concurrency: int, sleep: float) -> dict[str, Any]:
    """One Optuna run with ``n_jobs`` threads."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = PROBLEMS["hartmann6"]()
    space = problem.space
    busy = [0.0]
    sampler = optuna.samplers.TPESampler(seed=seed) if method == "optuna-tpe" else optuna.samplers.GPSampler(seed=seed)
    study = optuna.create_study(sampler=sampler)

    def objective(trial: Any) -> float:
        params = {name: trial.suggest_float(name, dom.low, dom.high) for name, dom in space.items()}
        start = time.perf_counter()
        time.sleep(sleep)
        busy[0] += time.perf_counter() - start
        return problem.evaluate(params)

    start = time.perf_counter()
    study.optimize(objective, n_trials=trials, n_jobs=concurrency)
    wall = time.perf_counter() - start
    assert problem.best is not None
    busy_share = trials * sleep / (wall * concurrency)
    awaited = busy[0] / (wall * concurrency)
    return {"wall": wall, "busy": busy_share, "awaited": awaited, "regret": study.best_value - problem.best}


def cmd_run(args: argparse.Namespace) -> None:
    # Imported before any clock starts: a first import of scipy's modules takes seconds on a busy machine.
    import scipy.linalg
    import scipy.optimize
    import scipy.special
    import scipy.stats.qmc

    # The first Sobol' engine of a process loads its direction numbers (about 50 ms): once per process, as the
    # imports are, so not inside the first run that uses a design.
    scipy.stats.qmc.Sobol(d=2, scramble=False)

    ideal = math.ceil(args.trials / args.concurrency) * args.sleep
    regrets: dict[str, list[float]] = {}
    trials = args.gp_trials if args.methods == ["optuna-gp"] else args.trials
    ideal = math.ceil(trials / args.concurrency) * args.sleep
    print(f"{trials} trials, {args.concurrency} at once, objective awaits {args.sleep}s: ideal {ideal:.2f}s")
    for method in args.methods:
        trials = args.gp_trials if method == "optuna-gp" else args.trials
        method_ideal = math.ceil(trials / args.concurrency) * args.sleep
        rows = []
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            run = run_optuna if method.startswith("optuna") else run_hpt
            row = run(method, seed, trials, args.concurrency, args.sleep)
            rows.append(row)
            extra = ""
            if "batches" in row:
                extra = (
                    f", {row['batches']} batches ({row['batched'] / max(row['batches'], 1):.1f} trials each),"
                    f" background fits {row['fits']}, behind {row['behind']} ({100 * row['behind'] / trials:.1f}%),"
                    f" batches in the model process {row['process']}"
                )
            print(
                f"  {method:10s} seed {seed}: {trials} trials, wall {row['wall']:.2f}s = "
                f"{row['wall'] / method_ideal:.2f}x ideal, busy {100 * row['busy']:.0f}%,"
                f" regret {row['regret']:.4f}{extra}",
                flush=True,
            )
        regrets[method] = [r["regret"] for r in rows]
        print(
            f"{method:10s} median: wall {statistics.median(r['wall'] for r in rows) / method_ideal:.2f}x ideal,"
            f" busy {100 * statistics.median(r['busy'] for r in rows):.0f}%,"
            f" regret {statistics.median(regrets[method]):.4f}",
            flush=True,
        )
    if "random" in regrets:
        for method in ("bayes", "tpe"):
            if method in regrets and len(regrets[method]) == len(regrets["random"]):
                wins = sum(a < b for a, b in zip(regrets[method], regrets["random"], strict=True))
                print(f"{method} beats random on {wins}/{len(regrets[method])} seeds (final regret, same seed)")


def _record(number: int, params: dict[str, Any], value: float) -> TrialRecord:
    return TrialRecord(number=number, state=TrialState.COMPLETE, params=dict(params), value=value, ended=0.0)


def cmd_tpe_cost(args: argparse.Namespace) -> None:
    """Time of one suggestion with ``--observations`` results: hpt-async tpe and Optuna's TPESampler, alternated.

    Each of ``--repeats`` rounds times ``--asks`` suggestions of each (the
    first of each round is left out); hpt-async and Optuna take turns by
    round, so that load changes touch both.  ``fixed``: the history stays at
    ``--observations`` (what is kept from one suggestion to the next is all
    reused).  ``grow``: a new observation is told before every suggestion,
    as in a sequential run (the history grows past ``--observations``).
    """
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    problem = PROBLEMS["hartmann6"]()
    space = hpt.Space(problem.space)
    rng = np.random.default_rng(0)
    n = args.observations
    more = args.asks * args.repeats if "grow" in args.modes else 0
    configs = [space.from_unit(rng.random(len(space)).tolist()) for _ in range(n + more)]
    values = [problem.evaluate(c) for c in configs]
    dists = {name: optuna.distributions.FloatDistribution(dom.low, dom.high) for name, dom in problem.space.items()}

    def frozen(i: int) -> optuna.trial.FrozenTrial:
        return optuna.trial.create_trial(params=configs[i], distributions=dists, value=values[i])

    for mode in args.modes:
        _tpe_cost_mode(args, mode, configs, values, dists, frozen)


def _tpe_cost_mode(
    args: argparse.Namespace, mode: str, configs: list[Any], values: list[float], dists: Any, frozen: Any
) -> None:
    """One mode of ``tpe-cost`` (see ``cmd_tpe_cost``)."""
    import optuna

    from hpt_async.strategies.tpe import TPEStrategy

    grow = mode == "grow"
    n = args.observations
    space = hpt.Space(PROBLEMS["hartmann6"]().space)
    study = StudyView("cost", "minimize", space, 0)
    for i in range(n):
        study._put(_record(i, configs[i], values[i]))
    strategy = TPEStrategy()
    anyio.run(strategy.start, study)
    ostudy = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=0))
    ostudy.add_trials([frozen(i) for i in range(n)])
    told = [n, n]  # next observation for hpt-async, for Optuna
    asked = [len(configs)]  # trial numbers asked of hpt-async, past every observation

    async def hpt_round() -> list[float]:
        out = []
        for _ in range(args.asks):
            if grow:
                record = _record(told[0], configs[told[0]], values[told[0]])
                study._put(record)
                await strategy.tell(study, record)
                told[0] += 1
            t0 = time.perf_counter()
            await strategy.ask(study, asked[0])
            out.append(time.perf_counter() - t0)
            asked[0] += 1
        return out[1:]

    def optuna_round() -> list[float]:
        out = []
        for _ in range(args.asks):
            if grow:
                ostudy.add_trial(frozen(told[1]))
                told[1] += 1
            t0 = time.perf_counter()
            trial = ostudy.ask(dists)
            out.append(time.perf_counter() - t0)
            ostudy.tell(trial, state=optuna.trial.TrialState.FAIL)  # not an observation
        return out[1:]

    rounds = []
    for r in range(args.repeats):
        h = statistics.median(anyio.run(hpt_round))
        o = statistics.median(optuna_round())
        rounds.append((h, o))
        print(f"{mode} round {r + 1}: hpt-async tpe {1e3 * h:.3f} ms, Optuna TPESampler {1e3 * o:.3f} ms", flush=True)
    h = statistics.median(x for x, _ in rounds)
    o = statistics.median(y for _, y in rounds)
    lo, hi = min(x for x, _ in rounds), max(x for x, _ in rounds)
    print(
        f"{mode}: one suggestion with {n} observations{' and up' if grow else ''} (median over {args.repeats}"
        f" rounds of the median of {args.asks - 1}): hpt-async tpe {1e3 * h:.3f} ms (rounds {1e3 * lo:.3f}"
        f"-{1e3 * hi:.3f}), Optuna TPESampler {1e3 * o:.3f} ms, ratio {o / h:.1f}",
        flush=True,
    )


QUALITY_METHODS = ("bayes@1", "bayes@8", "bayes@64", "random@64", "optuna-tpe@64")
QUALITY_PROBLEMS = ("branin", "rosenbrock4", "levy5", "hartmann6", "styblinski8", "ackley10")


def quality_run(
    problem_name: str, method: str, seed: int, options: dict[str, Any] | None = None
) -> tuple[float, float]:
    """Final regret of one run of ``method`` (``name@concurrency``) on a problem of ``functions.py``.

    Also returns the trials running on average: the time objectives spent
    sleeping (their simulated work), summed, over the run's wall time.
    ``options`` are passed to an hpt-async strategy (``--bayes-options``).
    """
    problem = PROBLEMS[problem_name]()
    name, workers = method.split("@")
    concurrency = int(workers)
    budget = problem.budget
    durations = np.random.default_rng(seed).uniform(0.01, 0.03, budget + 1024)
    assert problem.best is not None
    slept = [0.0]
    if name == "optuna-tpe":
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=seed))

        def objective(trial: Any) -> float:
            params = {k: trial.suggest_float(k, dom.low, dom.high) for k, dom in problem.space.items()}
            start = time.perf_counter()
            time.sleep(float(durations[trial.number]))
            slept[0] += time.perf_counter() - start
            return problem.evaluate(params)

        start = time.perf_counter()
        study.optimize(objective, n_trials=budget, n_jobs=concurrency)
        wall = time.perf_counter() - start
        return study.best_value - problem.best, slept[0] / wall

    async def hpt_objective(trial: hpt.Trial) -> float:
        start = time.perf_counter()
        await anyio.sleep(float(durations[trial.number]))
        slept[0] += time.perf_counter() - start
        return problem.evaluate(trial.params)

    strategy: Any = hpt.plugins.get_registry().create("strategy", {"name": name, **(options or {})})
    tuner = hpt.Tuner(
        hpt_objective,
        problem.space,
        strategy=strategy,
        seed=seed,
        max_trials=budget,
        concurrency=concurrency,
        loggers=[],
    )
    start = time.perf_counter()
    result = anyio.run(tuner.run)
    wall = time.perf_counter() - start
    return float(result.best_value) - problem.best, slept[0] / wall  # type: ignore[arg-type]


def cmd_quality(args: argparse.Namespace) -> None:
    import json

    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    options_of = {"bayes": json.loads(args.bayes_options)} if args.bayes_options else {}
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for problem_name in args.problems:
            for method in args.methods:
                start = time.perf_counter()
                options = options_of.get(method.split("@")[0])
                regret, running = quality_run(problem_name, method, seed, options)
                row = {
                    "problem": problem_name,
                    "method": method,
                    "seed": seed,
                    "regret": regret,
                    "running": running,
                    "seconds": time.perf_counter() - start,
                }
                if options:
                    row["options"] = options
                with out.open("a") as f:
                    f.write(json.dumps(row) + "\n")
                print(json.dumps(row), flush=True)


def cmd_quality_report(args: argparse.Namespace) -> None:
    import json

    runs: dict[tuple[str, str], dict[int, float]] = {}
    running: dict[str, list[float]] = {}
    for name in args.files:
        for line in Path(name).read_text().splitlines():
            row = json.loads(line)
            runs.setdefault((row["problem"], row["method"]), {})[row["seed"]] = row["regret"]
            if "running" in row:
                running.setdefault(row["method"], []).append(row["running"])
    methods = [m for m in QUALITY_METHODS if any(k[1] == m for k in runs)]
    problems = [p for p in QUALITY_PROBLEMS if any(k[0] == p for k in runs)]
    print("| problem | " + " | ".join(methods) + " |")
    print("| --- |" + " --- |" * len(methods))
    for problem in problems:
        cells = []
        for m in methods:
            r = runs.get((problem, m), {})
            cells.append(f"{statistics.median(r.values()):.3g} ({len(r)})" if r else "-")
        print(f"| {problem} | " + " | ".join(cells) + " |")
    for rival in ("random@64", "optuna-tpe@64", "bayes@1", "bayes@8"):
        wins = seeds_won = seeds = 0
        for problem in problems:
            a, b = runs.get((problem, "bayes@64"), {}), runs.get((problem, rival), {})
            common = sorted(set(a) & set(b))
            if not common:
                continue
            wins += statistics.median(a[s] for s in common) < statistics.median(b[s] for s in common)
            seeds_won += sum(a[s] < b[s] for s in common)
            seeds += len(common)
        print(
            f"bayes@64 vs {rival}: lower median regret on {wins}/{len(problems)} problems; "
            f"lower regret on {seeds_won}/{seeds} (problem, seed) pairs"
        )
    for m in methods:
        if running.get(m):
            r = running[m]
            print(
                f"{m}: trials running on average (objective time / wall), median over runs"
                f" {statistics.median(r):.1f} (range {min(r):.1f}-{max(r):.1f}, {len(r)} runs)"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(dest="command")
    parser.add_argument("--methods", nargs="+", default=["random", "bayes", "tpe"], choices=METHODS)
    parser.add_argument("--trials", type=int, default=2000)
    parser.add_argument("--gp-trials", type=int, default=300)
    parser.add_argument("--concurrency", type=int, default=200)
    parser.add_argument("--sleep", type=float, default=0.1)
    parser.add_argument("--seeds", type=int, default=10)
    parser.add_argument("--first-seed", type=int, default=0)
    cost = sub.add_parser("tpe-cost", help="time of one tpe suggestion at 1,000 observations, against Optuna")
    cost.add_argument("--observations", type=int, default=1000)
    cost.add_argument("--asks", type=int, default=21)
    cost.add_argument("--repeats", type=int, default=7)
    cost.add_argument("--modes", nargs="+", default=["fixed", "grow"], choices=["fixed", "grow"])
    quality = sub.add_parser("quality", help="bayes at concurrency 1, 8, 64 against random and Optuna TPE")
    quality.add_argument("--problems", nargs="+", default=list(QUALITY_PROBLEMS), choices=QUALITY_PROBLEMS)
    quality.add_argument("--methods", nargs="+", default=list(QUALITY_METHODS), choices=QUALITY_METHODS)
    quality.add_argument("--seeds", type=int, default=10)
    quality.add_argument("--first-seed", type=int, default=100)
    quality.add_argument("--out", default="bench-results/concurrency-quality.jsonl")
    quality.add_argument("--bayes-options", default="", help="options for bayes, as JSON: '{\"rounds\": null}'")
    report = sub.add_parser("quality-report", help="medians and win counts from quality's JSON lines")
    report.add_argument("files", nargs="+")
    args = parser.parse_args(argv)
    if args.command == "tpe-cost":
        cmd_tpe_cost(args)
    elif args.command == "quality":
        cmd_quality(args)
    elif args.command == "quality-report":
        cmd_quality_report(args)
    else:
        cmd_run(args)


if __name__ == "__main__":
    main()
