"""Concurrency and memory: many sleeping trials at once, against the ideal and a bare pool.

Every trial sleeps 100 ms and returns.  With ``T`` trials and ``C`` slots the
ideal wall time is ``ceil(T / C) * sleep`` (1.0 s for the default scenarios).
Scenarios, each run in a fresh subprocess that reports its wall time, its
CPU time and the part of it spent in the garbage collector, and its peak RSS:

``hpt-1k``
    hpt-async, 10,000 trials, concurrency 1,000 (goal: <= 1.2x the ideal).
``bare-1k``
    a bare anyio worker pool doing the same 10,000 sleeps with 1,000 tasks.
``hpt-10k``
    hpt-async, 100,000 trials, concurrency 10,000 (goal: <= 1.5x ``bare-10k``).
``hpt-10k-nolog``
    the same with ``loggers=[]``: what the default logger adds, by difference.
``bare-10k``
    the bare pool with 10,000 tasks, 100,000 sleeps: the floor of this design.
``floor-10k``
    the bare pool plus the least a tuner must do per trial, written as
    plainly as Python allows: draw the configuration from a block of
    random numbers (the ``random`` strategy's own decoding), hand it to the
    objective, and keep a record of number, configuration, value and times
    in a dict.  No storage, events, loggers or trial objects.  Its ratio to
    ``bare-10k`` bounds from below what any tuner of this shape can reach.
``optuna``
    Optuna's ``study.optimize(n_jobs=500)``, 10,000 trials of ``time.sleep``.
``idle``
    the interpreter with hpt-async and anyio imported and the plugin registry
    loaded, nothing run: the start-up time and memory every scenario pays
    before its clock starts.

The hpt-async scenarios (but ``hpt-10k-nolog``) run the tuner as a user
does, with the default loggers (``loggers=None``: the console logger on
stderr).  The child's stderr is a pipe the parent reads, not a terminal, so
the console logger prints a plain status line every 2 s, as it does for a
run whose output is redirected to a file or a CI log.  ``--console live``
gives the children a pseudo-terminal instead, so that the console logger
draws its live display (a thread redrawing it 4 times a second), as it does
for a user watching a terminal.

The scenarios are run round-robin for ``--repeat`` rounds, each round
starting one scenario later, each in a fresh interpreter (so that noise on
a shared machine falls on all of them, and no run inherits another's
heap); the median wall and CPU times, their ratios to the bare pool of the
same size, and the largest peak RSS of each are reported.

    python benchmarks/bench_concurrency.py                    # everything
    python benchmarks/bench_concurrency.py --quick            # smoke run, about 20 s
    python benchmarks/bench_concurrency.py -s hpt-10k bare-10k  # some scenarios
    python benchmarks/bench_concurrency.py --console live     # the console logger's live display
    python benchmarks/bench_concurrency.py --profile hpt-10k  # cProfile one, in process
"""

from __future__ import annotations

import argparse
import cProfile
import gc
import io
import json
import math
import os
import platform
import pstats
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from typing import Any

SLEEP = 0.1


@dataclass(frozen=True)
class Scenario:
    """One measured configuration: which runner, how many trials, how many at once."""

    name: str
    kind: str  # "hpt", "bare", "floor", "optuna" or "idle"
    trials: int
    concurrency: int
    goal: str = ""
    loggers: str = "default"  # hpt-async only: "default" (loggers=None, the console logger) or "none" (loggers=[])

    @property
    def ideal(self) -> float:
        """Wall time if every slot were busy sleeping all the time."""
        if self.kind == "idle":
            return 0.0
        return math.ceil(self.trials / self.concurrency) * SLEEP


FULL = {
    s.name: s
    for s in (
        Scenario("hpt-1k", "hpt", 10_000, 1_000, "<= 1.2x ideal"),
        Scenario("bare-1k", "bare", 10_000, 1_000),
        Scenario("hpt-10k", "hpt", 100_000, 10_000, "<= 1.5x bare-10k"),
        Scenario("hpt-10k-nolog", "hpt", 100_000, 10_000, loggers="none"),
        Scenario("bare-10k", "bare", 100_000, 10_000),
        Scenario("floor-10k", "floor", 100_000, 10_000),
        Scenario("optuna", "optuna", 10_000, 500),
        Scenario("idle", "idle", 0, 1),
    )
}
# The same shapes, a tenth of the work (ideal still 1.0 s; Optuna's 0.6 s).
QUICK = {
    s.name: s
    for s in (
        Scenario("hpt-1k", "hpt", 1_000, 100, "<= 1.2x ideal"),
        Scenario("bare-1k", "bare", 1_000, 100),
        Scenario("hpt-10k", "hpt", 10_000, 1_000, "<= 1.5x bare-10k"),
        Scenario("hpt-10k-nolog", "hpt", 10_000, 1_000, loggers="none"),
        Scenario("bare-10k", "bare", 10_000, 1_000),
        Scenario("floor-10k", "floor", 10_000, 1_000),
        Scenario("optuna", "optuna", 600, 100),
        Scenario("idle", "idle", 0, 1),
    )
}
BASELINE = {"hpt-1k": "bare-1k", "hpt-10k": "bare-10k", "hpt-10k-nolog": "bare-10k", "floor-10k": "bare-10k"}


# -- what runs in the child process ----------------------------------------------


def _space() -> Any:
    import hpt_async as hpt

    return hpt.Space(
        {
            "lr": hpt.Float(1e-5, 1e-1, log=True),
            "layers": hpt.Int(1, 8),
            "optimizer": hpt.Choice(["adam", "sgd", "rmsprop"]),
        }
    )


async def _run_hpt(trials: int, concurrency: int, loggers: str = "default") -> None:
    import anyio

    import hpt_async as hpt

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(SLEEP)
        return trial.params["lr"] * trial.params["layers"]

    tuner = hpt.Tuner(
        objective,
        _space(),
        strategy="random",
        storage="memory",
        loggers=None if loggers == "default" else [],  # None: the default, the console logger on stderr
        concurrency=concurrency,
        max_trials=trials,
        seed=0,
    )
    result = await tuner.run()
    done = result.count(hpt.TrialState.COMPLETE)
    if done != trials:
        raise RuntimeError(f"hpt-async finished {done} COMPLETE trials, expected {trials}")


async def _run_bare(trials: int, concurrency: int) -> None:
    import anyio

    started = 0

    async def worker() -> None:
        nonlocal started
        while started < trials:
            started += 1
            await anyio.sleep(SLEEP)

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    if started != trials:
        raise RuntimeError(f"the bare pool ran {started} sleeps, expected {trials}")


async def _run_floor(trials: int, concurrency: int) -> None:
    import anyio

    from hpt_async.space import unit_uniforms_block

    space = _space()
    records: dict[int, tuple[dict[str, Any], float, float, float]] = {}
    started = 0
    block: tuple[int, list[list[float]]] = (0, unit_uniforms_block(0, 0, 256, len(space)))

    async def worker() -> None:
        nonlocal started, block
        while started < trials:
            number = started
            started += 1
            if number - block[0] >= 256:
                block = (number, unit_uniforms_block(0, number, 256, len(space)))
            params = space.from_unit(block[1][number - block[0]])
            t0 = time.time()
            await anyio.sleep(SLEEP)
            records[number] = (params, params["lr"] * params["layers"], t0, time.time())

    async with anyio.create_task_group() as tg:
        for _ in range(concurrency):
            tg.start_soon(worker)
    if len(records) != trials:
        raise RuntimeError(f"the floor pool recorded {len(records)} trials, expected {trials}")


def _run_optuna(trials: int, concurrency: int) -> None:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-5, 1e-1, log=True)
        layers = trial.suggest_int("layers", 1, 8)
        trial.suggest_categorical("optimizer", ["adam", "sgd", "rmsprop"])
        time.sleep(SLEEP)
        return lr * layers

    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(objective, n_trials=trials, n_jobs=concurrency)
    if len(study.trials) != trials:
        raise RuntimeError(f"Optuna ran {len(study.trials)} trials, expected {trials}")


def _imports(kind: str) -> None:
    """Import what a scenario needs before the clock starts.

    Every scenario pays hpt-async's import and the loading of its plugin
    registry (installed third-party plugins included), so that the start-up
    stays out of the measured run and the memory baselines compare.
    """
    import anyio  # noqa: F401

    import hpt_async

    hpt_async.get_registry()
    if kind == "optuna":
        import optuna  # noqa: F401


def run_scenario(kind: str, trials: int, concurrency: int, loggers: str = "default") -> float:
    """Run one scenario in this process; return its wall time in seconds."""
    import anyio

    _imports(kind)
    if kind == "optuna":
        t0 = time.perf_counter()
        _run_optuna(trials, concurrency)
        return time.perf_counter() - t0
    if kind == "idle":
        return 0.0
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        if kind == "hpt":
            await _run_hpt(trials, concurrency, loggers)
        elif kind == "floor":
            await _run_floor(trials, concurrency)
        else:
            await _run_bare(trials, concurrency)
        elapsed = time.perf_counter() - t0

    anyio.run(main, backend="asyncio")
    return elapsed


def _status_mib(field: str) -> float | None:
    """A memory field of /proc/self/status (``VmRSS``, ``VmHWM``) in MiB, or None off Linux."""
    try:
        with open("/proc/self/status") as f:
            for line in f:
                if line.startswith(field + ":"):
                    return int(line.split()[1]) / 1024
    except OSError:
        pass
    return None


def _reset_peak() -> bool:
    """Reset the kernel's peak-RSS mark (Linux >= 4.0) so that import-time peaks do not hide the run's."""
    try:
        with open("/proc/self/clear_refs", "w") as f:
            f.write("5")
        return True
    except OSError:
        return False


def _maxrss_mib() -> float:
    kib = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return (kib / 1024 if sys.platform == "darwin" else kib) / 1024


def _cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def child(kind: str, trials: int, concurrency: int, loggers: str) -> None:
    """Run a scenario and print one JSON line: wall and CPU seconds of the run, and memory.

    ``rss_start_mib`` is the resident set once everything is imported,
    ``rss_mib`` the peak resident set during the run (where the peak mark
    cannot be reset, the peak of the whole process, imports included).
    """
    t0 = time.perf_counter()
    _imports(kind)
    startup = time.perf_counter() - t0
    gc.collect()
    gc_time = _GcClock()
    gc.callbacks.append(gc_time)
    exact = _reset_peak()
    rss0 = _status_mib("VmRSS") or _maxrss_mib()
    cpu0 = _cpu()
    wall = run_scenario(kind, trials, concurrency, loggers)
    cpu = _cpu() - cpu0
    peak = _status_mib("VmHWM") if exact else None
    print(
        json.dumps(
            {
                "wall": wall,
                "cpu": cpu,
                "rss_mib": peak or _maxrss_mib(),
                "rss_start_mib": rss0,
                "process_peak_mib": _maxrss_mib(),
                "gc_s": gc_time.total,
                "gc_full": gc_time.full,
                "startup_s": startup,
            }
        )
    )


class _GcClock:
    """A ``gc.callbacks`` entry that adds up the CPU time spent in garbage collection.

    CPU time of the collecting thread, not wall time, so that a busy machine
    descheduling the process mid-collection does not inflate it.
    """

    def __init__(self) -> None:
        self.total = 0.0
        self.full = 0  # collections of the oldest generation
        self._t0 = 0.0

    def __call__(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._t0 = time.thread_time()
        else:
            self.total += time.thread_time() - self._t0
            self.full += info["generation"] == 2


# -- the parent ------------------------------------------------------------------


def spawn(s: Scenario, timeout: float, console: str = "plain") -> dict[str, float]:
    """Run scenario ``s`` in a fresh interpreter and parse its report.

    The child's stderr, where the console logger writes, is a pipe read here
    (``console="plain"``: plain status lines), or with ``console="live"``
    and the default loggers a pseudo-terminal (the live display).
    """
    cmd = [sys.executable, os.path.abspath(__file__), "--child", s.kind, str(s.trials), str(s.concurrency), s.loggers]
    if console == "live" and s.kind == "hpt" and s.loggers == "default":
        out, err, code = _spawn_on_pty(cmd, timeout)
    else:
        proc = subprocess.run(cmd, capture_output=True, text=True, timeout=timeout, check=False)
        out, err, code = proc.stdout, proc.stderr, proc.returncode
    if code != 0:
        raise RuntimeError(f"scenario {s.name} failed (exit {code}):\n{err}")
    report = json.loads(out.strip().splitlines()[-1])
    report["stderr_bytes"] = len(err.encode())
    return report


def _spawn_on_pty(cmd: list[str], timeout: float) -> tuple[str, str, int]:
    """Run ``cmd`` with its stderr on a pseudo-terminal of 100 x 30; return stdout, stderr, exit code."""
    import fcntl
    import pty
    import struct
    import termios
    import threading

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    env = dict(os.environ)
    if env.get("TERM", "").lower() in ("", "dumb", "unknown"):
        env["TERM"] = "xterm-256color"
    chunks: list[bytes] = []

    def drain() -> None:  # the terminal's side: read until the child closes it
        while True:
            try:
                data = os.read(master, 65536)
            except OSError:
                return
            if not data:
                return
            chunks.append(data)

    reader = threading.Thread(target=drain, daemon=True)
    reader.start()
    try:
        proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=slave, text=True, env=env)
    finally:
        os.close(slave)
    try:
        out, _ = proc.communicate(timeout=timeout)
    finally:
        reader.join(5.0)
        os.close(master)
    return out, b"".join(chunks).decode(errors="replace"), proc.returncode


def profile(s: Scenario, top: int) -> None:
    """Profile one scenario in this process with cProfile and print the hot spots."""
    prof = cProfile.Profile()
    prof.enable()
    wall = run_scenario(s.kind, s.trials, s.concurrency, s.loggers)
    prof.disable()
    print(
        f"{s.name}: {s.trials} trials at {s.concurrency} at once, {wall:.2f} s under the profiler "
        f"(ideal {s.ideal:.1f} s)"
    )
    for key in ("tottime", "cumulative"):
        out = io.StringIO()
        pstats.Stats(prof, stream=out).strip_dirs().sort_stats(key).print_stats(top)
        print(f"--- sorted by {key} ---")
        print(out.getvalue())


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "-s", "--scenarios", nargs="+", metavar="NAME", help=f"scenarios to run (default: all of {', '.join(FULL)})"
    )
    parser.add_argument("-r", "--repeat", type=int, help="rounds of every scenario (default 3, 1 with --quick)")
    parser.add_argument("--quick", action="store_true", help="a tenth of the work, one round")
    parser.add_argument("--timeout", type=float, default=600.0, help="seconds before a scenario is abandoned")
    parser.add_argument("--profile", metavar="NAME", help="profile one scenario in process instead")
    parser.add_argument("--top", type=int, default=30, help="functions shown by --profile (default 30)")
    parser.add_argument(
        "--console",
        choices=("plain", "live"),
        default="plain",
        help="the children's stderr, where the default console logger writes: a pipe (plain lines, the default) "
        "or a pseudo-terminal (its live display)",
    )
    parser.add_argument(
        "--child", nargs=4, metavar=("KIND", "TRIALS", "CONCURRENCY", "LOGGERS"), help=argparse.SUPPRESS
    )
    args = parser.parse_args(argv)

    if args.child:
        kind, trials, concurrency, loggers = args.child
        child(kind, int(trials), int(concurrency), loggers)
        return 0

    table = QUICK if args.quick else FULL
    if args.repeat is None:
        args.repeat = 1 if args.quick else 3
    if args.profile:
        if args.profile not in table:
            parser.error(f"unknown scenario {args.profile!r}; choose from {', '.join(table)}")
        profile(table[args.profile], args.top)
        return 0
    names = args.scenarios or list(table)
    unknown = [n for n in names if n not in table]
    if unknown:
        parser.error(f"unknown scenario(s) {', '.join(unknown)}; choose from {', '.join(table)}")
    if args.repeat < 1:
        parser.error("--repeat must be >= 1")
    chosen = [table[n] for n in names]

    import optuna

    import hpt_async as hpt

    print(
        f"concurrency: {args.repeat} round(s), each scenario in a fresh process, sleep {SLEEP * 1000:.0f} ms per trial"
    )
    print(
        f"python {platform.python_version()}, hpt-async {hpt.__version__}, anyio {_version('anyio')}, "
        f"optuna {optuna.__version__}, {os.cpu_count()} CPUs, load average {_load()}"
    )
    print(f"hpt-async loggers: as each scenario says; the console logger's stderr: {_CONSOLE[args.console]}")
    runs: dict[str, list[dict[str, float]]] = {s.name: [] for s in chosen}
    for i in range(args.repeat):
        shift = i % len(chosen)
        for s in chosen[shift:] + chosen[:shift]:  # each scenario takes each place in turn
            r = spawn(s, args.timeout, args.console)
            runs[s.name].append(r)
            print(
                f"  round {i + 1} {s.name:<13} wall {r['wall']:7.2f} s  cpu {r['cpu']:7.2f} s  "
                f"gc {r['gc_s']:5.2f} s ({r['gc_full']} full)  peak RSS {r['rss_mib']:7.1f} MiB  "
                f"stderr {r['stderr_bytes']} bytes",
                flush=True,
            )
        print(f"  load average after round {i + 1}: {_load()}", flush=True)

    summary = {
        name: {
            "wall": statistics.median(r["wall"] for r in rs),
            "cpu": statistics.median(r["cpu"] for r in rs),
            "gc": statistics.median(r["gc_s"] for r in rs),
            "startup": statistics.median(r["startup_s"] for r in rs),
            "rss": max(r["rss_mib"] for r in rs),
            "rss0": statistics.median(r["rss_start_mib"] for r in rs),
        }
        for name, rs in runs.items()
    }
    print()
    header = (
        f"{'scenario':<14}{'trials':>9}{'at once':>9}{'ideal s':>9}{'wall s':>9}{'x ideal':>9}"
        f"{'x bare':>8}{'cpu s':>8}{'x bare':>8}{'gc s':>7}{'start MiB':>10}{'peak MiB':>10}{'+run MiB':>10}  goal"
    )
    print(header)
    print("-" * len(header))
    for s in chosen:
        m = summary[s.name]
        x_ideal = f"{m['wall'] / s.ideal:.2f}" if s.ideal else "-"
        base = BASELINE.get(s.name)
        x_bare = f"{m['wall'] / summary[base]['wall']:.2f}" if base in summary else "-"
        x_bare_cpu = f"{m['cpu'] / summary[base]['cpu']:.2f}" if base in summary else "-"
        verdict = ""
        if s.goal:
            verdict = s.goal + ": " + _verdict(s, summary)
        trials = f"{s.trials:,}" if s.trials else "-"
        at_once = f"{s.concurrency:,}" if s.kind != "idle" else "-"
        ideal = f"{s.ideal:.1f}" if s.ideal else "-"
        wall = f"{m['wall']:.2f}" if s.kind != "idle" else "-"
        print(
            f"{s.name:<14}{trials:>9}{at_once:>9}{ideal:>9}{wall:>9}{x_ideal:>9}{x_bare:>8}"
            f"{m['cpu']:>8.2f}{x_bare_cpu:>8}{m['gc']:>7.2f}"
            f"{m['rss0']:>10.1f}{m['rss']:>10.1f}{m['rss'] - m['rss0']:>10.1f}"
            f"  {verdict}"
        )
    print(
        "\nstart: resident set once everything is imported; peak: peak resident set during the run; +run: peak - start."
    )
    print("cpu: CPU seconds of the run itself (imports excluded); gc: the part of them spent in the garbage collector;")
    print("x ideal, x bare: ratios of the median wall times (after cpu s: of the median CPU times).")
    for name, base in BASELINE.items():
        if name in runs and base in runs:
            # Paired by round: the two ran back to back, so each ratio shares that moment's load.
            walls = [a["wall"] / b["wall"] for a, b in zip(runs[name], runs[base], strict=True)]
            cpus = [a["cpu"] / b["cpu"] for a, b in zip(runs[name], runs[base], strict=True)]
            print(
                f"{name} / {base}, ratio per round: wall {', '.join(f'{x:.2f}' for x in walls)} "
                f"(median {statistics.median(walls):.2f}); cpu {', '.join(f'{x:.2f}' for x in cpus)} "
                f"(median {statistics.median(cpus):.2f})"
            )
    print(f"load average at the end: {_load()}")
    startup = {name: m["startup"] for name, m in summary.items()}
    print(
        "start-up before each clock (import hpt-async, load its plugin registry): "
        + ", ".join(f"{name} {t:.2f} s" for name, t in startup.items())
    )
    if "hpt-10k" in summary and "bare-10k" in summary:
        hpt10, bare10 = summary["hpt-10k"], summary["bare-10k"]
        extra = hpt10["rss"] - bare10["rss"]
        print(
            f"peak RSS of the {table['hpt-10k'].concurrency:,}-at-once run: {hpt10['rss']:.1f} MiB, "
            f"bare pool {bare10['rss']:.1f} MiB: hpt-async adds {extra:.1f} MiB for "
            f"{table['hpt-10k'].trials:,} trials ({extra * 1024 * 1024 / table['hpt-10k'].trials:.0f} bytes a trial)"
        )
    return 0


_CONSOLE = {
    "plain": "a pipe (not a terminal: plain status lines every 2 s)",
    "live": "a pseudo-terminal (the live display, redrawn 4 times a second)",
}


def _load() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def _verdict(s: Scenario, summary: dict[str, dict[str, float]]) -> str:
    wall = summary[s.name]["wall"]
    if s.name == "hpt-1k":
        return "MET" if wall <= 1.2 * s.ideal else "NOT MET"
    base = BASELINE.get(s.name)
    if base in summary:
        return "MET" if wall <= 1.5 * summary[base]["wall"] else "NOT MET"
    return "(run the baseline too)"


def _version(dist: str) -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version(dist)
    except PackageNotFoundError:
        return "?"


if __name__ == "__main__":
    sys.exit(main())
