"""Start-up cost: ``import hpt_async`` and ``hpt-async --help`` against Optuna.

Every measurement is a fresh interpreter (``sys.executable``) timed from
spawn to exit, so it includes what a user, a CLI command or a process
worker pays before doing any work.  The cases run in alternation, one
round after another, so that noise on a shared machine falls on all of
them alike; the median of ``--runs`` rounds is reported with the median
of a bare interpreter (``python -c pass``) subtracted.  Next to the wall
time each run's CPU time (user + system, from ``getrusage`` of the
children) is reported: a busy machine stretches it far less.

Cases:

* ``pass``: ``python -c pass``, the start-up subtracted from the others;
* ``import hpt_async`` and ``import optuna``;
* ``hpt-async --help`` and ``optuna --help``: each library's CLI entry
  point (``main``) called with ``--help``, output discarded.  The Optuna
  case is skipped when ``optuna.cli`` cannot be imported;
* ``process worker``: the import a worker of ``executor="process"`` starts
  with (``from hpt_async.executors._worker import main``), before it reads
  its first message.  It has no Optuna counterpart.

The children import ``hpt_async`` from the checkout this script lives in
(they run there, and it is put first on ``PYTHONPATH``); to measure another version,
run a copy of the script placed in that version's ``benchmarks/`` directory
(for example in an export made with ``git archive``).

    python benchmarks/bench_import.py              # 7 rounds
    python benchmarks/bench_import.py --runs 15
"""

from __future__ import annotations

import argparse
import datetime
import os
import resource
import statistics
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

CASES: dict[str, str] = {
    "pass": "pass",
    "import hpt_async": "import hpt_async",
    "import optuna": "import optuna",
    "hpt-async --help": "import sys; sys.argv[1:] = ['--help']; from hpt_async.cli import main; sys.exit(main())",
    "optuna --help": "import sys; sys.argv[1:] = ['--help']; from optuna.cli import main; sys.exit(main())",
    "process worker": "from hpt_async.executors._worker import main",
}

PAIRS = [("import hpt_async", "import optuna"), ("hpt-async --help", "optuna --help")]


def _env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env.pop("PYTHONSTARTUP", None)
    return env


def _cpu_of_children() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def _time_once(code: str, env: dict[str, str]) -> tuple[float, float]:
    """Wall and CPU seconds of one fresh interpreter running ``code``; raises if it fails."""
    cpu = _cpu_of_children()
    start = time.perf_counter()
    proc = subprocess.run(
        [sys.executable, "-c", code],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        check=False,
    )
    elapsed = time.perf_counter() - start
    if proc.returncode != 0:
        raise RuntimeError(f"{code!r} exited with {proc.returncode}: {proc.stderr.decode(errors='replace')}")
    return elapsed, _cpu_of_children() - cpu


def _available(code: str, env: dict[str, str]) -> bool:
    proc = subprocess.run([sys.executable, "-c", code], cwd=ROOT, env=env, capture_output=True, check=False)
    return proc.returncode == 0


def measure(runs: int) -> dict[str, list[tuple[float, float]]]:
    """(wall, CPU) seconds of every available case over ``runs`` alternating rounds."""
    env = _env()
    cases = dict(CASES)
    if not _available("import optuna", env):
        print("optuna not importable: skipping the Optuna cases")
        cases = {k: v for k, v in cases.items() if "optuna" not in k}
    elif not _available("import optuna.cli", env):
        print("optuna.cli not importable: skipping 'optuna --help'")
        del cases["optuna --help"]
    # One untimed round warms the file-system cache and the .pyc files.
    for code in cases.values():
        _time_once(code, env)
    times: dict[str, list[tuple[float, float]]] = {name: [] for name in cases}
    for _ in range(runs):
        for name, code in cases.items():
            times[name].append(_time_once(code, env))
    return times


def report(times: dict[str, list[tuple[float, float]]]) -> None:
    """Print the medians (start-up subtracted) and the ratios hpt_async / optuna, wall and CPU."""
    wall = {name: [w for w, _ in values] for name, values in times.items()}
    cpu = {name: [c for _, c in values] for name, values in times.items()}
    base_wall, base_cpu = statistics.median(wall["pass"]), statistics.median(cpu["pass"])
    print(
        f"python -c pass: median {base_wall * 1e3:.1f} ms wall, {base_cpu * 1e3:.1f} ms CPU"
        f" over {len(wall['pass'])} runs (subtracted below)"
    )
    print(f"{'case':<20} {'wall ms':>8} {'min':>7} {'max':>7} {'CPU ms':>8}")
    net_wall: dict[str, float] = {}
    net_cpu: dict[str, float] = {}
    for name in times:
        if name == "pass":
            continue
        net_wall[name] = statistics.median(wall[name]) - base_wall
        net_cpu[name] = statistics.median(cpu[name]) - base_cpu
        low, high = (min(wall[name]) - base_wall) * 1e3, (max(wall[name]) - base_wall) * 1e3
        print(f"{name:<20} {net_wall[name] * 1e3:>8.1f} {low:>7.1f} {high:>7.1f} {net_cpu[name] * 1e3:>8.1f}")
    for ours, theirs in PAIRS:
        if ours in net_wall and theirs in net_wall and net_wall[theirs] > 0 and net_cpu[theirs] > 0:
            print(
                f"ratio {ours} / {theirs}: {net_wall[ours] / net_wall[theirs]:.2f} wall,"
                f" {net_cpu[ours] / net_cpu[theirs]:.2f} CPU"
            )


def main(argv: list[str] | None = None) -> None:
    """Run the benchmark and print the figures with the date and load average."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=7, help="alternating rounds (default 7)")
    args = parser.parse_args(argv)
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M UTC")
    load = Path("/proc/loadavg").read_text().split()[:3] if Path("/proc/loadavg").exists() else ["?"]
    print(f"{stamp}, Python {sys.version.split()[0]}, load average {' '.join(load)}, {args.runs} rounds")
    report(measure(args.runs))


if __name__ == "__main__":
    main()
