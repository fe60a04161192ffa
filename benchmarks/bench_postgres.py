"""PostgreSQL storage: hpt-async against Optuna's RDB storage on the same local server, in one run.

A throwaway server (``hpt_async.testing.postgres.TemporaryPostgres``, the server's defaults:
``synchronous_commit=on``, ``fsync=on``) holds both libraries' studies, each in a database of its
own.  Both run random search with a trivial objective over the same three-parameter space.
hpt-async: ``storage="postgresql://..."`` (asyncpg; a trial's end commits with synchronous_commit
on, see the module docstring of ``hpt_async.storage.postgres``); Optuna: ``RDBStorage`` through
SQLAlchemy and psycopg2 (every commit synchronous).  Reported, as times per trial and ratios
Optuna / hpt-async:

* one process, concurrency 1 and 64 (Optuna: ``n_jobs`` threads);
* ``--procs`` processes sharing one study (wall time / trials stored), with errors, duplicate numbers
  and the finished count against ``max_trials``;
* growth: hpt-async's time per trial over 1,000-trial windows of one study of ``--growth`` trials,
  the last window against the first, and the time to resume the study.

    python benchmarks/bench_postgres.py --quick
    python benchmarks/bench_postgres.py --only growth --growth 100000
    python benchmarks/bench_postgres.py --only growth-ab --growth 100000   # robust to a changing load

Needs the ``postgres`` and ``bench`` extras (asyncpg; Optuna, psycopg2-binary) and Debian's
``postgresql`` package (or ``HPT_ASYNC_TEST_POSTGRES_URL`` naming a server whose user may create
databases).
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
import time
from pathlib import Path
from typing import Any

import anyio

import hpt_async as hpt

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_overhead import SPACE, hpt_objective, optuna_objective

GOAL = 15.0
GROWTH_GOAL = 1.25
WINDOW = 1_000


class _Windows:
    """Records the time at every ``WINDOW``-th trial end, and of the first and last ends."""

    def __init__(self) -> None:
        self.ended = 0
        self.marks: list[float] = []
        self.first = self.last = math.nan

    @hpt.hookimpl
    def hpt_trial_ended(self, event: Any) -> None:
        self.ended += 1
        self.last = time.perf_counter()
        if self.ended == 1:
            self.first = self.last
        if self.ended % WINDOW == 0:
            self.marks.append(self.last)

    def per_trial(self) -> float:
        """Seconds per trial between the first and the last end (opening the study left out)."""
        return (self.last - self.first) / (self.ended - 1)


def run_hpt(url: str, n: int, concurrency: int, windows: _Windows | None = None, study: str = "bench") -> float:
    """Seconds for ``n`` hpt-async trials (opening the study included)."""
    elapsed = 0.0

    async def main() -> None:
        nonlocal elapsed
        t0 = time.perf_counter()
        tuner = hpt.Tuner(
            hpt_objective,
            SPACE,
            storage=url,
            study=study,
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


def _optuna_url(url: str) -> str:
    return url.replace("postgresql://", "postgresql+psycopg2://", 1)


def run_optuna(url: str, n: int, concurrency: int, study: str) -> float:
    """Seconds for ``n`` Optuna trials on its RDB storage (creating the study included)."""
    import optuna

    t0 = time.perf_counter()
    s = optuna.create_study(storage=_optuna_url(url), study_name=study, sampler=optuna.samplers.RandomSampler(seed=0))
    s.optimize(optuna_objective, n_trials=n, n_jobs=concurrency)
    elapsed = time.perf_counter() - t0
    if len(s.trials) != n:
        raise RuntimeError(f"Optuna ran {len(s.trials)} trials, expected {n}")
    return elapsed


def worker(url: str, study: str, max_trials: int) -> int:
    """In a child: wait for 'go', run one tuner on the shared study, print 'done <errors>'."""
    print("ready", flush=True)
    sys.stdin.readline()
    errors = 0

    async def main() -> None:
        tuner = hpt.Tuner(
            hpt_objective,
            SPACE,
            storage=url,
            study=study,
            loggers=[],
            max_trials=max_trials,
            seed=os.getpid(),
            strategy="random",
        )
        await tuner.run()

    try:
        anyio.run(main, backend="asyncio")
    except Exception as exc:
        errors += 1
        print(f"error {type(exc).__name__}: {exc}", file=sys.stderr, flush=True)
    print(f"done {errors}", flush=True)
    return 0


def shared(url: str, procs: int, max_trials: int) -> dict[str, Any]:
    """``procs`` tuner processes on one study of ``max_trials``: wall ms per trial, errors, duplicates, counts."""
    study = f"shared-{procs}"
    children = [
        subprocess.Popen(
            [sys.executable, __file__, "--worker", url, study, str(max_trials)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for _ in range(procs)
    ]
    for p in children:
        assert p.stdout is not None and p.stdout.readline().strip() == "ready"
    t0 = time.perf_counter()
    for p in children:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    errors = 0
    for p in children:
        out, err = p.communicate(timeout=3600)
        last = [line for line in out.splitlines() if line.startswith("done")]
        if p.returncode != 0 or not last:
            errors += 1
            print(f"    worker exited {p.returncode}: {err.strip()[-300:]}")
            continue
        errors += int(last[-1].split()[1])
        if err.strip():
            print(f"    worker said: {err.strip().splitlines()[-1][:300]}")
    elapsed = time.perf_counter() - t0
    from hpt_async.studies import open_storage

    records = anyio.run(lambda: open_storage(url).load(study))
    numbers = [r.number for r in records]
    counted = sum(r.state.value in ("complete", "pruned", "failed", "paused") for r in records)
    return {
        "ms": elapsed / max(len(records), 1) * 1e3,
        "stored": len(records),
        "counted": counted,
        "duplicates": len(numbers) - len(set(numbers)),
        "errors": errors,
    }


def growth_ab(url: str, n: int, rounds: int) -> None:
    """Load-robust growth: 1,000 trials added to an ``n``-trial study against 1,000 in a fresh one, alternating.

    Times run from the first trial's end to the last's (opening the study, which reads its whole
    history, is measured apart as the resume time).

    The big study gets 1,000 trials from a tuner, then ``n - 1,000`` copies of its first trial inserted
    by SQL (each with its own number, ``COMPLETE``), so that tables and indexes hold ``n`` trials.
    """
    import asyncpg

    from hpt_async.storage.postgres import PostgresStorage

    run_hpt(url, WINDOW, 1, study="big")
    storage = PostgresStorage(url)

    async def fill() -> None:
        c = await asyncpg.connect(storage.dsn, server_settings={"search_path": storage.schema})
        try:
            sid = await c.fetchval("SELECT id FROM studies WHERE name = 'big'")
            # Triggers off for the bulk copy (a superuser's setting): xid stamps come from the column's
            # default, and the counters are set once below.
            await c.execute("SET session_replication_role = replica")
            await c.execute(
                "INSERT INTO trials (study_id, number, state, params, value, started, ended, session, writer)"
                " SELECT study_id, g, 'complete', params, value, started, ended, session, writer"
                " FROM trials, generate_series($2::bigint, $3::bigint) AS g WHERE study_id = $1 AND number = 0",
                sid,
                WINDOW,
                n - 1,
            )
            await c.execute("RESET session_replication_role")
            await c.execute("UPDATE studies SET next_number = $2, used = $2 WHERE id = $1", sid, n)
            await c.execute("VACUUM ANALYZE trials")
        finally:
            await c.close()

    anyio.run(fill)
    big: list[float] = []
    fresh: list[float] = []
    total = n
    for i in range(rounds):
        total += WINDOW
        w = _Windows()
        run_hpt(url, total, 1, w, study="big")
        big.append(w.per_trial())
        w = _Windows()
        run_hpt(url, WINDOW, 1, w, study=f"fresh-{i}")
        fresh.append(w.per_trial())
        print(
            f"  round {i + 1}: 1,000 trials on a {total - WINDOW}-trial study {big[-1] * 1e3:.3f} ms/trial,"
            f" on a fresh study {fresh[-1] * 1e3:.3f} ms/trial",
            flush=True,
        )
    b, f = statistics.median(big), statistics.median(fresh)
    print(f"  medians: {b * 1e3:.3f} / {f * 1e3:.3f} ms/trial = {b / f:.2f}x (goal <= {GROWTH_GOAL}x)")
    t0 = time.perf_counter()
    run_hpt(url, total, 1, study="big")
    print(f"  resuming the {total}-trial study (open, read its history, close): {time.perf_counter() - t0:.2f} s")


def main(argv: list[str] | None = None) -> int:
    """Command-line entry point."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hpt-trials", type=int, default=3_000)
    parser.add_argument("--optuna-trials", type=int, default=200)
    parser.add_argument("-r", "--rounds", type=int, default=3)
    parser.add_argument("--procs", type=int, default=8)
    parser.add_argument("--shared-trials", type=int, default=4_000, help="max_trials of the shared study")
    parser.add_argument("--growth", type=int, default=100_000)
    parser.add_argument("--only", choices=("single", "shared", "growth", "growth-ab"))
    parser.add_argument("--quick", action="store_true", help="smoke run")
    parser.add_argument("--worker", nargs=3, metavar=("URL", "STUDY", "MAX"), help=argparse.SUPPRESS)
    args = parser.parse_args(argv)
    if args.worker:
        return worker(args.worker[0], args.worker[1], int(args.worker[2]))
    if args.quick:
        args.hpt_trials, args.optuna_trials, args.rounds, args.growth, args.shared_trials = 1000, 60, 1, 5000, 1000

    import optuna

    from hpt_async.testing.postgres import TemporaryPostgres

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    pg = TemporaryPostgres()
    pg.start()
    try:
        hpt_url, optuna_url = pg.create_database("hpt"), pg.create_database("optuna")
        print(
            f"python {platform.python_version()}, hpt-async {hpt.__version__}, optuna {optuna.__version__}, "
            f"{platform.machine()}, {os.cpu_count()} cpus, server {pg.url()}"
        )
        if args.only in (None, "single"):
            run_hpt(hpt_url, 100, 1, study="warm")
            run_optuna(optuna_url, 10, 1, study="warm")
            for concurrency in (1, 64):
                times: dict[str, list[float]] = {"hpt-async": [], "optuna": []}
                for i in range(args.rounds):
                    gc.collect()
                    study = f"c{concurrency}-{i}"
                    times["hpt-async"].append(
                        run_hpt(hpt_url, args.hpt_trials, concurrency, study=study) / args.hpt_trials
                    )
                    try:
                        o = run_optuna(optuna_url, args.optuna_trials, concurrency, study=study) / args.optuna_trials
                    except Exception as exc:
                        print(f"    optuna failed at concurrency {concurrency}: {type(exc).__name__}: {exc}")
                        o = math.nan
                    times["optuna"].append(o)
                    print(
                        f"  concurrency {concurrency:>2}, round {i + 1}: hpt-async {times['hpt-async'][-1] * 1e3:.3f}"
                        f" ms/trial, optuna {o * 1e3:.3f} ms/trial",
                        flush=True,
                    )
                h, o = statistics.median(times["hpt-async"]), statistics.median(times["optuna"])
                print(
                    f"concurrency {concurrency}: hpt-async {h * 1e3:.3f} ms/trial, optuna {o * 1e3:.3f} ms/trial, "
                    f"ratio {o / h:.1f}x (goal >= {GOAL:.0f}x at concurrency 1)"
                )
        if args.only in (None, "shared"):
            r = shared(hpt_url, args.procs, args.shared_trials)
            print(
                f"{args.procs} processes, one study, max_trials {args.shared_trials}: {r['ms']:.3f} ms/trial (wall / "
                f"stored), {r['stored']} stored, {r['counted']} counted, {r['duplicates']} duplicate numbers, "
                f"{r['errors']} errors"
            )
        if args.only in (None, "growth"):
            windows = _Windows()
            t0 = time.perf_counter()
            run_hpt(hpt_url, args.growth, 1, windows, study="growth")
            marks = [t0, *windows.marks]
            per = [(b - a) / WINDOW for a, b in itertools.pairwise(marks)]
            for i in sorted({0, 1, len(per) // 2, len(per) - 1}):
                print(f"  trials {i * WINDOW:>6}-{(i + 1) * WINDOW:<6} {per[i] * 1e3:.3f} ms/trial")
            if len(per) >= 2:
                # The first window includes opening the study (connections, migrations): window 2 is the anchor.
                ratio = per[-1] / per[1]
                print(f"  last window / trials {WINDOW}-{2 * WINDOW}: {ratio:.2f}x (goal <= {GROWTH_GOAL}x)")
            resume = run_hpt(hpt_url, args.growth, 1, study="growth")
            print(f"  resuming the {args.growth}-trial study (open, read its history, close): {resume:.2f} s")
        if args.only == "growth-ab":
            print(f"growth, alternating: 1,000 trials on a {args.growth}-trial study against a fresh one")
            growth_ab(hpt_url, args.growth, args.rounds)
    finally:
        pg.stop()
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
