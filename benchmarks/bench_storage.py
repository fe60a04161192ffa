"""Durable storage: hpt-async on SQLite against Optuna's RDB storage on SQLite, in one run.

Both libraries run random search with a trivial objective over the same
three-parameter space, every trial persisted in an SQLite file (hpt-async:
``sqlite:///...``, WAL, synchronous=NORMAL; Optuna: its RDB storage on
``sqlite:///...`` through SQLAlchemy).  Reported, as times per trial and
ratios Optuna / hpt-async:

* one process, concurrency 1 and 64 (Optuna: ``n_jobs`` threads); then, at
  concurrency 1, the two comparisons of equal settings: hpt-async with
  ``synchronous=full`` against Optuna's defaults (rollback journal,
  ``synchronous=FULL``), and Optuna with hpt-async's (WAL,
  ``synchronous=NORMAL``) against hpt-async's;
* two processes sharing one file and one study, with the errors each library
  let through to the user ("database is locked" and others);
* growth: hpt-async's time per trial over 1,000-trial windows of one study
  of ``--growth`` trials (window 2 against the last window).

    python benchmarks/bench_storage.py             # full run
    python benchmarks/bench_storage.py --quick     # smoke run
    python benchmarks/bench_storage.py --growth 100000 --only growth
"""

from __future__ import annotations

import argparse
import gc
import itertools
import math
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import anyio

import hpt_async as hpt

sys.path.insert(0, str(Path(__file__).resolve().parent))

# The same space and objectives as the per-trial overhead benchmark: they return at once.
from bench_overhead import SPACE, hpt_objective, optuna_objective

GOAL = 30.0
GROWTH_GOAL = 1.25
WINDOW = 1_000


def _url(path: Path) -> str:
    return f"sqlite:///{path}"


def _fresh(directory: Path, name: str) -> Path:
    path = directory / name
    for suffix in ("", "-wal", "-shm", "-journal"):
        Path(str(path) + suffix).unlink(missing_ok=True)
    return path


# -- one process ------------------------------------------------------------------


class _Windows:
    """Records the time at every ``WINDOW``-th trial end (a lifecycle plugin)."""

    def __init__(self) -> None:
        self.ended = 0
        self.marks: list[float] = []

    @hpt.hookimpl
    def hpt_trial_ended(self, event: Any) -> None:
        self.ended += 1
        if self.ended % WINDOW == 0:
            self.marks.append(time.perf_counter())


def run_hpt(path: Path, n: int, concurrency: int, windows: _Windows | None = None, query: str = "") -> float:
    """Seconds for ``n`` durable hpt-async trials (opening the file included); ``query`` adds URL options."""
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        tuner = hpt.Tuner(
            hpt_objective,
            SPACE,
            storage=_url(path) + query,
            study="bench",
            loggers=[],
            plugins=[windows] if windows else [],
            concurrency=concurrency,
            max_trials=n,
            seed=0,
            strategy="random",  # as Optuna's RandomSampler (the default strategy, auto, is model-based)
        )
        result = await tuner.run()
        elapsed = time.perf_counter() - t0
        done = result.count(hpt.TrialState.COMPLETE)
        if done != n:
            raise RuntimeError(f"hpt-async finished {done} COMPLETE trials, expected {n}")

    anyio.run(main, backend="asyncio")
    return elapsed


def _optuna_wal(path: Path) -> Any:
    """Optuna's RDB storage on ``path`` with hpt-async's settings: WAL, ``synchronous=NORMAL`` on every connection."""
    import sqlite3

    import optuna
    import sqlalchemy

    con = sqlite3.connect(path)
    con.execute("PRAGMA journal_mode = WAL")  # kept by the file
    con.close()
    storage = optuna.storages.RDBStorage(_url(path))

    @sqlalchemy.event.listens_for(storage.engine, "connect")
    def normal(dbapi_connection: Any, record: Any) -> None:
        dbapi_connection.execute("PRAGMA synchronous = NORMAL")

    storage.engine.dispose()  # connections made from now on get the setting
    with storage.engine.connect() as c:
        settings = (c.exec_driver_sql("PRAGMA journal_mode").scalar(), c.exec_driver_sql("PRAGMA synchronous").scalar())
    if settings != ("wal", 1):
        raise RuntimeError(f"Optuna's connection has journal_mode, synchronous = {settings}, not ('wal', 1)")
    return storage


def run_optuna(path: Path, n: int, concurrency: int, wal: bool = False) -> float:
    """Seconds for ``n`` Optuna trials on its RDB storage (creating the study included).

    With ``wal``, the file and connections have hpt-async's settings (WAL, ``synchronous=NORMAL``)
    instead of SQLite's defaults (rollback journal, ``synchronous=FULL``).
    """
    import optuna

    t0 = time.perf_counter()
    storage = _optuna_wal(path) if wal else _url(path)
    study = optuna.create_study(storage=storage, study_name="bench", sampler=optuna.samplers.RandomSampler(seed=0))
    study.optimize(optuna_objective, n_trials=n, n_jobs=concurrency)
    elapsed = time.perf_counter() - t0
    done = len(study.trials)
    if done != n:
        raise RuntimeError(f"Optuna ran {done} trials, expected {n}")
    return elapsed


def single(directory: Path, n_hpt: int, n_optuna: int, rounds: int, concurrency: int) -> tuple[float, float]:
    """Median seconds per trial of each library at ``concurrency``, alternating rounds."""
    times: dict[str, list[float]] = {"hpt-async": [], "optuna": []}
    for i in range(rounds):
        order = ["hpt-async", "optuna"] if i % 2 == 0 else ["optuna", "hpt-async"]
        for name in order:
            gc.collect()
            if name == "hpt-async":
                times[name].append(run_hpt(_fresh(directory, "hpt.db"), n_hpt, concurrency) / n_hpt)
            else:
                try:
                    times[name].append(run_optuna(_fresh(directory, "optuna.db"), n_optuna, concurrency) / n_optuna)
                except Exception as exc:  # Optuna's threads on SQLite may fail
                    print(f"    optuna failed at concurrency {concurrency}: {type(exc).__name__}: {exc}")
                    times[name].append(math.nan)
        h, o = times["hpt-async"][-1], times["optuna"][-1]
        print(
            f"  concurrency {concurrency:>2}, round {i + 1}: hpt-async {h * 1e3:.3f} ms/trial, "
            f"optuna {o * 1e3:.3f} ms/trial, ratio {o / h:.1f}x",
            flush=True,
        )
    ratios = [o / h for h, o in zip(times["hpt-async"], times["optuna"], strict=True) if not math.isnan(o)]
    if ratios:
        print(f"  concurrency {concurrency:>2}, ratios of the rounds: {min(ratios):.1f}x to {max(ratios):.1f}x")
    return statistics.median(times["hpt-async"]), statistics.median(times["optuna"])


# -- two processes --------------------------------------------------------------------


def worker(lib: str, path: str, n: int) -> int:
    """Run in a child: wait for 'go' on stdin, tune, print 'done <trials> <errors> <seconds>'."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print("ready", flush=True)
    sys.stdin.readline()
    errors, done = 0, 0
    t0 = time.perf_counter()
    if lib == "hpt-async":

        async def main() -> int:
            tuner = hpt.Tuner(
                hpt_objective,
                SPACE,
                storage=_url(Path(path)) + "?sync=0.1",
                study="shared",
                loggers=[],
                max_trials=2 * n,
                seed=os.getpid(),
                strategy="random",
            )
            result = await tuner.run()
            return result.count(hpt.TrialState.COMPLETE)

        try:
            anyio.run(main, backend="asyncio")
            done = n
        except Exception as exc:
            errors += 1
            print(f"error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    else:
        study = optuna.load_study(
            storage=_url(Path(path)), study_name="shared", sampler=optuna.samplers.RandomSampler(seed=os.getpid())
        )
        while done < n:
            try:
                trial = study.ask()
                study.tell(trial, optuna_objective(trial))
                done += 1
            except Exception as exc:
                errors += 1
                if errors <= 3:
                    print(f"error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
                if errors > 10 * n:
                    break
    print(f"done {done} {errors} {time.perf_counter() - t0}", flush=True)
    return 0


def shared(directory: Path, lib: str, n: int) -> tuple[float, int, int]:
    """``(seconds per trial, trials in the file, errors)`` for two processes of ``n`` trials each."""
    path = _fresh(directory, f"shared-{lib}.db")
    if lib == "optuna":
        import optuna

        optuna.create_study(storage=_url(path), study_name="shared")
    procs = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", lib, str(path), str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(2)
    ]
    for p in procs:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    errors = 0
    for p in procs:
        out, err = p.communicate(timeout=3600)
        last = [line for line in out.splitlines() if line.startswith("done")]
        if p.returncode != 0 or not last:
            errors += 1
            print(f"    {lib} worker exited {p.returncode}: {err.strip()[-300:]}")
            continue
        errors += int(last[-1].split()[2])
        if err.strip():
            print(f"    {lib} worker said: {err.strip().splitlines()[0][:200]}")
    elapsed = time.perf_counter() - t0
    import sqlite3

    con = sqlite3.connect(path)
    table = "trials"
    stored = con.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
    con.close()
    return elapsed / max(stored, 1), stored, errors


# -- growth ---------------------------------------------------------------------------------


def growth(directory: Path, n: int) -> tuple[list[float], float]:
    """Seconds per trial of each ``WINDOW``-trial window of one study of ``n`` trials,
    and the seconds a tuner then takes to open (resume) that study."""
    windows = _Windows()
    path = _fresh(directory, "growth.db")
    t0 = time.perf_counter()
    run_hpt(path, n, 1, windows)
    marks = [t0, *windows.marks]
    per = [(b - a) / WINDOW for a, b in itertools.pairwise(marks)]
    resume = run_hpt(path, n, 1)  # max_trials is already reached: open, read the history, close
    return per, resume


# -- main ---------------------------------------------------------------------------------------


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hpt-trials", type=int, default=5_000, help="hpt-async trials per round (default 5000)")
    parser.add_argument("--optuna-trials", type=int, default=300, help="Optuna trials per round (default 300)")
    parser.add_argument("-r", "--rounds", type=int, default=3, help="rounds per library and concurrency (default 3)")
    parser.add_argument("--shared-trials", type=int, default=300, help="Optuna trials per process (default 300)")
    parser.add_argument("--shared-hpt-trials", type=int, default=3000, help="hpt-async trials per process (3000)")
    parser.add_argument("--growth", type=int, default=100_000, help="trials of the growth study (default 100000)")
    parser.add_argument("--only", choices=("single", "shared", "growth"), help="run only this part")
    parser.add_argument("--dir", help="directory for the database files (default: a temporary one)")
    parser.add_argument("--quick", action="store_true", help="smoke run: few trials, one round, growth 5000")
    parser.add_argument("--worker", nargs=3, metavar=("LIB", "PATH", "N"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        lib, path, n = args.worker
        return worker(lib, path, int(n))
    if args.quick:
        args.hpt_trials, args.optuna_trials, args.rounds, args.growth = 1000, 60, 1, 5000
        args.shared_trials, args.shared_hpt_trials = 60, 600

    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        directory = Path(tmp)
        print("load average at the start:", " ".join(f"{x:.2f}" for x in os.getloadavg()), flush=True)
        print(
            f"python {platform.python_version()}, hpt-async {hpt.__version__}, optuna {optuna.__version__}, "
            f"sqlite {__import__('sqlite3').sqlite_version}, {platform.machine()}, {os.cpu_count()} cpus"
        )
        if args.only in (None, "single"):
            print(f"one process: hpt-async {args.hpt_trials} trials, Optuna {args.optuna_trials} trials per round")
            run_hpt(_fresh(directory, "warm.db"), 200, 1)  # imports and first calls, not measured
            run_optuna(_fresh(directory, "warm-o.db"), 20, 1)
            optuna_c1 = hpt_c1 = math.nan
            for concurrency in (1, 64):
                h, o = single(directory, args.hpt_trials, args.optuna_trials, args.rounds, concurrency)
                optuna_c1 = o if concurrency == 1 else optuna_c1
                hpt_c1 = h if concurrency == 1 else hpt_c1
                ratio = o / h
                print(
                    f"concurrency {concurrency}: hpt-async {h * 1e3:.3f} ms/trial, optuna {o * 1e3:.3f} ms/trial, "
                    f"ratio {ratio:.1f}x (goal >= {GOAL:.0f}x: {'MET' if ratio >= GOAL else 'NOT MET'})"
                )
            # Optuna's file keeps SQLite's defaults (rollback journal, synchronous=FULL: fsyncs on every
            # commit); hpt-async with synchronous=full pays an fsync per commit too.
            n_full = min(args.hpt_trials, 1000)
            full = statistics.median(
                run_hpt(_fresh(directory, "hpt-full.db"), n_full, 1, query="?synchronous=full") / n_full
                for _ in range(args.rounds)
            )
            print(
                f"hpt-async with synchronous=full, concurrency 1 ({n_full} trials): {full * 1e3:.3f} ms/trial, "
                f"optuna at concurrency 1 / that: {optuna_c1 / full:.1f}x"
            )
            # The other equal comparison: Optuna with hpt-async's settings (WAL, synchronous=NORMAL).
            wal = statistics.median(
                run_optuna(_fresh(directory, "optuna-wal.db"), args.optuna_trials, 1, wal=True) / args.optuna_trials
                for _ in range(args.rounds)
            )
            print(
                f"optuna with WAL and synchronous=normal, concurrency 1 ({args.optuna_trials} trials): "
                f"{wal * 1e3:.3f} ms/trial, that / hpt-async at concurrency 1 (above): {wal / hpt_c1:.1f}x"
            )
        if args.only in (None, "shared"):
            print(
                f"two processes on one file and one study: hpt-async {args.shared_hpt_trials} trials each, "
                f"Optuna {args.shared_trials} trials each"
            )
            sizes = {"hpt-async": args.shared_hpt_trials, "optuna": args.shared_trials}
            results = {lib: shared(directory, lib, n) for lib, n in sizes.items()}
            for lib, (per, stored, errors) in results.items():
                print(f"  {lib:<10} {per * 1e3:.3f} ms/trial (wall / trials), {stored} trials stored, {errors} errors")
            print(f"  ratio {results['optuna'][0] / results['hpt-async'][0]:.1f}x")
        if args.only in (None, "growth"):
            print(f"growth: one hpt-async study of {args.growth} trials, concurrency 1, windows of {WINDOW}")
            per, resume = growth(directory, args.growth)
            for i in sorted({0, 1, len(per) // 4, len(per) // 2, len(per) - 2, len(per) - 1}):
                if 0 <= i < len(per):
                    print(f"  trials {i * WINDOW:>6}-{(i + 1) * WINDOW:<6} {per[i] * 1e3:.3f} ms/trial")
            if len(per) >= 2:
                ratio = per[-1] / per[1]
                print(
                    f"  last window / trials {WINDOW}-{2 * WINDOW}: {ratio:.2f}x "
                    f"(goal <= {GROWTH_GOAL}x: {'MET' if ratio <= GROWTH_GOAL else 'NOT MET'})"
                )
            if len(per) >= 12:
                # Single windows are noisy on a shared machine: also the medians of windows 2-6 and of the last 5.
                first, last = statistics.median(per[1:6]), statistics.median(per[-5:])
                print(
                    f"  median of the last 5 windows / median of windows 2-6: {last / first:.2f}x "
                    f"({last * 1e3:.3f} / {first * 1e3:.3f} ms/trial)"
                )
            print(f"  resuming the {args.growth}-trial study (open, read its history, close): {resume:.2f} s")
        print("load average at the end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
