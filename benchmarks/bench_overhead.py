"""Per-trial overhead: hpt-async against Optuna, side by side in one process.

Both libraries run the same cheap objective over the same three-parameter
space (a log-scaled float, an int, a categorical) with random search, in-memory
storage and no logging, one trial at a time.  The objective returns at once,
so the time per trial is the library's own bookkeeping.

The two are run alternately for several rounds (so that noise on a shared
machine falls on both) and the median time per trial of each is reported,
with the ratio Optuna / hpt-async.  The goal is a ratio of at least 5.

    python benchmarks/bench_overhead.py            # full run
    python benchmarks/bench_overhead.py --quick    # smoke run
    python benchmarks/bench_overhead.py --profile  # cProfile of the hpt-async side

``--loggers`` measures instead what the loggers add to that per-trial time:
the same hpt-async run with no logger, with five empty hooks, with
``console``, ``jsonl``, both, and the console's live display drawing to a
terminal-like sink with ``jsonl``, alternated in rounds with Optuna as a
reference.  The goal there is that console and jsonl
together add at most 50 % (a ratio to no logger of at most 1.5).  Both wall
time and the process's CPU time are reported; the CPU time is the steadier
figure on a shared machine.

    python benchmarks/bench_overhead.py --loggers            # 10,000 trials x 7 rounds
    python benchmarks/bench_overhead.py --loggers --profile  # cProfile with console + jsonl
    python benchmarks/bench_overhead.py --loggers --path           # the loggers' share alone
    python benchmarks/bench_overhead.py --once console+jsonl -n 2010  # one run, for valgrind
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
import tempfile
import time
from collections.abc import Callable
from typing import Any

import anyio

import hpt_async as hpt

GOAL = 5.0
LOGGER_GOAL = 1.5  # console + jsonl against no logger

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


def run_hpt(n: int, loggers: Callable[[], list[Any]] = list) -> float:
    """Run ``n`` hpt-async trials with ``loggers()``; return the seconds they took (set-up included)."""
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        tuner = hpt.Tuner(
            hpt_objective,
            SPACE,
            strategy="random",
            storage="memory",
            loggers=loggers(),
            concurrency=1,
            max_trials=n,
            seed=0,
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


class _EmptyHooks:
    """Five lifecycle hooks that do nothing: the cost of building and delivering events alone."""

    @hpt.hookimpl
    def hpt_study_started(self, event: Any, study: Any) -> None:
        pass

    @hpt.hookimpl
    def hpt_trial_created(self, event: Any, study: Any) -> None:
        pass

    @hpt.hookimpl
    def hpt_trial_started(self, event: Any, study: Any) -> None:
        pass

    @hpt.hookimpl
    def hpt_trial_ended(self, event: Any, study: Any) -> None:
        pass

    @hpt.hookimpl
    def hpt_study_ended(self, event: Any, study: Any) -> None:
        pass


class _Loggers:
    """The logger configurations compared by ``--loggers``: name -> a factory of the ``loggers`` list."""

    def __init__(self, folder: str) -> None:
        self.log = os.path.join(folder, "events.jsonl")
        self.sink = open(os.devnull, "w")  # kept open for the whole run

    def plain(self) -> Any:
        return hpt.ConsoleLogger(stream=self.sink)  # not a terminal: plain lines every 2 s

    def live(self) -> Any:
        from rich.console import Console

        # The live display, drawn 4 times a second as on a terminal, into /dev/null.
        return hpt.ConsoleLogger(console=Console(file=self.sink, force_terminal=True, width=100))

    def jsonl(self) -> Any:
        if os.path.exists(self.log):
            os.remove(self.log)  # every run writes a fresh file
        return hpt.JsonlLogger(self.log)

    def configs(self) -> dict[str, Callable[[], list[Any]]]:
        return {
            "none": list,
            "empty-hooks": lambda: [_EmptyHooks()],
            "console": lambda: [self.plain()],
            "jsonl": lambda: [self.jsonl()],
            "console+jsonl": lambda: [self.plain(), self.jsonl()],
            "live+jsonl": lambda: [self.live(), self.jsonl()],
        }


def bench_loggers(n: int, rounds: int) -> int:
    """Per-trial time with each logger configuration, alternated in rounds; Optuna as a reference."""
    import optuna

    with tempfile.TemporaryDirectory() as folder:
        configs = _Loggers(folder).configs()
        names = [*configs, "optuna"]
        print(f"logger overhead: {n} trials x {rounds} rounds, concurrency 1, random search, memory")
        print(
            f"python {platform.python_version()}, hpt-async {hpt.__version__}, optuna {optuna.__version__}, "
            f"{os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}"
        )
        for name in configs:  # warm-up: imports, first-call costs
            run_hpt(min(n, 200), configs[name])
        run_optuna(min(n, 200))
        wall: dict[str, list[float]] = {name: [] for name in names}
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for i in range(rounds):
            shift = i % len(names)
            order = names[shift:] + names[:shift]  # each configuration takes each place in turn
            for name in order:
                gc.collect()
                c0, w0 = time.process_time(), time.perf_counter()
                if name == "optuna":
                    run_optuna(n)
                else:
                    run_hpt(n, configs[name])
                cpu[name].append(time.process_time() - c0)
                wall[name].append(time.perf_counter() - w0)
            print(
                f"  round {i + 1} (cpu us/trial): "
                + ", ".join(f"{name} {_us(cpu[name][-1], n):.1f}" for name in names),
                flush=True,
            )
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print()
    base_cpu = statistics.median(cpu["none"])
    base_wall = statistics.median(wall["none"])
    best_cpu = min(cpu["none"])
    print("medians of the rounds; 'best cpu': the best round of each, against the best round of none")
    head = f"{'configuration':<15}{'cpu us/trial':>14}{'x none':>8}{'wall us/trial':>15}{'x none':>8}"
    print(f"{head}{'best cpu':>10}{'x':>7}")
    for name in names:
        mc, mw, bc = statistics.median(cpu[name]), statistics.median(wall[name]), min(cpu[name])
        print(
            f"{name:<15}{_us(mc, n):>14.1f}{mc / base_cpu:>8.2f}{_us(mw, n):>15.1f}{mw / base_wall:>8.2f}"
            f"{_us(bc, n):>10.1f}{bc / best_cpu:>7.2f}"
        )
    both_cpu = statistics.median(cpu["console+jsonl"]) / base_cpu
    both_wall = statistics.median(wall["console+jsonl"]) / base_wall
    print()
    print(
        f"console+jsonl / none (medians): cpu {both_cpu:.2f}x, wall {both_wall:.2f}x; "
        f"best rounds, cpu {min(cpu['console+jsonl']) / best_cpu:.2f}x"
    )
    print(f"goal <= {LOGGER_GOAL}x: {'MET' if max(both_cpu, both_wall) <= LOGGER_GOAL else 'NOT MET'} (both clocks)")
    return 0


def bench_logger_path(n: int, rounds: int) -> int:
    """The loggers' share alone: the events of ``n`` trials built and delivered as the tuner does, no tuner."""
    from types import MappingProxyType

    from hpt_async.events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialStarted
    from hpt_async.plugins import HookRelay
    from hpt_async.result import StudyResult

    now = time.time()
    trials = []
    for i in range(n):
        params = {"lr": 1e-3 + i * 1e-9, "layers": 1 + i % 8, "optimizer": "adam"}
        record = hpt.TrialRecord(
            number=i,
            state=hpt.TrialState.COMPLETE,
            params=MappingProxyType(params),
            value=float(i),
            started=now,
            ended=now + 1e-3,
        )
        trials.append((i, params, record))

    def once(loggers: list[Any]) -> float:
        view = hpt.StudyView("path", "minimize", SPACE, 0, n)
        relay = HookRelay(loggers)
        result = StudyResult(study="path", direction="minimize", seed=0, trials=(), best=None, reason="max_trials")

        async def main() -> float:
            await relay.emit("hpt_study_started", event=StudyStarted("path", "minimize", SPACE, 0, now, n), study=view)
            t0 = time.process_time()
            for i, params, record in trials:  # what Tuner._run_trial and Tuner._commit do per trial
                fire = relay.trial_created
                if fire is not None:
                    pending = fire(TrialCreated(i, dict(params), now), view)
                    if pending is not None:
                        await pending
                fire = relay.trial_started
                if fire is not None:
                    pending = fire(TrialStarted(i, time.time()), view)
                    if pending is not None:
                        await pending
                fire = relay.trial_ended
                if fire is not None:
                    pending = fire(TrialEnded(record), view, [0, 0])
                    if pending is not None:
                        await pending
            await relay.emit("hpt_study_ended", event=StudyEnded(result, now), study=view)
            return time.process_time() - t0

        return anyio.run(main, backend="asyncio")

    with tempfile.TemporaryDirectory() as folder:
        configs = _Loggers(folder).configs()
        names = ["empty-hooks", "console", "jsonl", "console+jsonl"]
        print(f"logger path alone: {n} trials x {rounds} rounds, load average {os.getloadavg()[0]:.2f}")
        for name in names:
            once(configs[name]())
        cpu: dict[str, list[float]] = {name: [] for name in names}
        for i in range(rounds):
            for name in names[i % len(names) :] + names[: i % len(names)]:
                gc.collect()
                cpu[name].append(once(configs[name]()))
        print(f"load average at the end {os.getloadavg()[0]:.2f}")
    print(f"{'configuration':<15}{'best cpu us/trial':>19}{'median':>9}")
    for name in names:
        print(f"{name:<15}{_us(min(cpu[name]), n):>19.2f}{_us(statistics.median(cpu[name]), n):>9.2f}")
    return 0


def profile_loggers(n: int, top: int) -> None:
    """Print the hottest functions of an hpt-async run of ``n`` trials with console + jsonl."""
    with tempfile.TemporaryDirectory() as folder:
        both = _Loggers(folder).configs()["console+jsonl"]
        run_hpt(min(n, 500), both)
        prof = cProfile.Profile()
        prof.enable()
        run_hpt(n, both)
        prof.disable()
    out = io.StringIO()
    pstats.Stats(prof, stream=out).strip_dirs().sort_stats("tottime").print_stats(top)
    print(f"--- hpt-async with console + jsonl, {n} trials, sorted by tottime ---")
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
    parser.add_argument("--loggers", action="store_true", help="measure what the console and jsonl loggers add")
    parser.add_argument(
        "--path", action="store_true", help="with --loggers: the loggers' share alone, events delivered without a tuner"
    )
    parser.add_argument(
        "--encode-every", type=int, metavar="N", help="with --loggers: set the jsonl logger's ENCODE_EVERY to N"
    )
    parser.add_argument(
        "--once",
        metavar="CONFIG",
        help="run one logger configuration once, without warm-up (for an instruction counter such as valgrind)",
    )
    args = parser.parse_args(argv)
    if args.loggers and args.rounds == parser.get_default("rounds"):
        args.rounds = 7
    if args.quick:
        args.trials, args.rounds = 1_000, 2
    if args.trials < 1 or args.rounds < 1:
        parser.error("--trials and --rounds must be >= 1")

    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    if args.profile:
        if args.loggers:
            profile_loggers(args.trials, args.top)
        else:
            profile_hpt(args.trials, args.top)
        return 0
    if args.encode_every is not None:
        from hpt_async.loggers import jsonl

        jsonl.ENCODE_EVERY = args.encode_every
        print(f"jsonl.ENCODE_EVERY = {args.encode_every}")
    if args.loggers and args.path:
        return bench_logger_path(args.trials, args.rounds)
    if args.once:
        with tempfile.TemporaryDirectory() as folder:
            configs = _Loggers(folder).configs()
            if args.once not in configs:
                parser.error(f"--once takes one of {', '.join(configs)}")
            seconds = run_hpt(args.trials, configs[args.once])
        print(f"{args.once}: {args.trials} trials, {_us(seconds, args.trials):.1f} us/trial")
        return 0
    if args.loggers:
        return bench_loggers(args.trials, args.rounds)

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
    cpu: dict[str, list[float]] = {name: [] for name, _ in runners}
    for i in range(args.rounds):
        order = runners if i % 2 == 0 else runners[::-1]
        for name, fn in order:
            gc.collect()
            c0 = time.process_time()
            times[name].append(fn(args.trials))
            cpu[name].append(time.process_time() - c0)  # includes the event loop's start and stop, ~1 ms
        print(
            f"  round {i + 1}: "
            + ", ".join(
                f"{name} {_us(times[name][-1], args.trials):.1f} us/trial (cpu {_us(cpu[name][-1], args.trials):.1f})"
                for name, _ in runners
            ),
            flush=True,
        )
    print(f"load average at the end {os.getloadavg()[0]:.2f}")

    med = {name: _us(statistics.median(ts), args.trials) for name, ts in times.items()}
    best = {name: _us(min(ts), args.trials) for name, ts in times.items()}
    ratio = med["optuna"] / med["hpt-async"]
    print()
    med_cpu = {name: _us(statistics.median(ts), args.trials) for name, ts in cpu.items()}
    print(f"{'library':<12}{'median us/trial':>18}{'best us/trial':>16}{'median cpu us/trial':>22}")
    for name, _ in runners:
        print(f"{name:<12}{med[name]:>18.1f}{best[name]:>16.1f}{med_cpu[name]:>22.1f}")
    print()
    print(
        f"ratio optuna / hpt-async (medians): {ratio:.2f}x   (best rounds: {best['optuna'] / best['hpt-async']:.2f}x; "
        f"cpu medians: {med_cpu['optuna'] / med_cpu['hpt-async']:.2f}x)"
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
