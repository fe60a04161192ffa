"""CPU time per trial of a SQLite study at concurrency 1: this tree against another checkout, alternating.

Wall time on a shared, loaded machine moves with the load; the CPU time a
process spends per trial (its own threads, aiosqlite's included) moves much
less, so two versions of hpt-async can be compared by it.  Each round runs
``--trials`` trials of bench_overhead's trivial objective in a fresh process
of each tree (random search, concurrency 1, a fresh database file, the
default ``synchronous=normal``), and reports the medians and their ratio.

    python benchmarks/bench_sqlite_cpu.py --other /path/to/older/checkout --trials 3000 --rounds 4
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

CHILD = """
import sys, time, anyio
sys.path.insert(0, sys.argv[1] + "/benchmarks")
import hpt_async as hpt
from bench_overhead import SPACE, hpt_objective
n, url = int(sys.argv[2]), sys.argv[3]

async def main():
    tuner = hpt.Tuner(hpt_objective, SPACE, storage=url, study="cpu", loggers=[], concurrency=1, max_trials=n,
                      seed=0, strategy="random")
    c0, w0 = time.process_time(), time.perf_counter()
    await tuner.run()
    print(time.process_time() - c0, time.perf_counter() - w0)

anyio.run(main, backend="asyncio")
"""


def one(tree: Path, n: int, directory: Path, tag: str) -> tuple[float, float]:
    db = directory / f"{tag}.db"
    for suffix in ("", "-wal", "-shm"):
        Path(f"{db}{suffix}").unlink(missing_ok=True)
    env = dict(os.environ, PYTHONPATH=str(tree), HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD="1")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(tree), str(n), f"sqlite:///{db}"],
        env=env,
        capture_output=True,
        text=True,
        check=True,
        cwd=tree,
    ).stdout.split()
    cpu, wall = float(out[-2]), float(out[-1])
    return cpu / n, wall / n


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--other", required=True, help="a checkout of the hpt-async to compare with")
    parser.add_argument("--trials", type=int, default=3000)
    parser.add_argument("--rounds", type=int, default=4)
    args = parser.parse_args(argv)
    here, other = Path(__file__).resolve().parents[1], Path(args.other).resolve()
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    cpu: dict[str, list[float]] = {"this": [], "other": []}
    wall: dict[str, list[float]] = {"this": [], "other": []}
    with tempfile.TemporaryDirectory() as tmp:
        for i in range(args.rounds):
            for tag, tree in (("other", other), ("this", here)) if i % 2 else (("this", here), ("other", other)):
                c, w = one(tree, args.trials, Path(tmp), tag)
                cpu[tag].append(c)
                wall[tag].append(w)
                print(f"  round {i + 1} {tag:>5}: {c * 1e3:.3f} ms CPU/trial, {w * 1e3:.3f} ms wall/trial", flush=True)
    mc, mo = statistics.median(cpu["this"]), statistics.median(cpu["other"])
    wc, wo = statistics.median(wall["this"]), statistics.median(wall["other"])
    print(f"CPU per trial: this {mc * 1e3:.3f} ms, other {mo * 1e3:.3f} ms, this/other {mc / mo:.2f}x")
    print(f"wall per trial: this {wc * 1e3:.3f} ms, other {wo * 1e3:.3f} ms, this/other {wc / wo:.2f}x")
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
