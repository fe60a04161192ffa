"""Exactness of a shared study on SQLite or PostgreSQL: hpt-async against Optuna's RDB storage, side by side.

Two checks, each run for both libraries on a fresh SQLite file, or with
``--storage postgresql`` on a fresh database of a throwaway PostgreSQL
server (``hpt_async.testing.postgres.TemporaryPostgres``; Optuna through
SQLAlchemy and psycopg2):

* ``kills``: a tuner (3 trials at a time, each trial three steps with a
  checkpoint before each report) is SIGKILLed 12 times at random moments,
  a fresh tuner starting after each kill, and one last tuner finishes the
  study.  Counted: finished trials (COMPLETE + PRUNED + FAILED) against
  ``--max-trials``, duplicate numbers, values changed after their end was
  announced, trials left RUNNING, LOST trials and their retries, and
  checkpoints stranded under a LOST trial.  Optuna runs with its
  ``MaxTrialsCallback`` (the budget over the study), ``heartbeat_interval=1``,
  ``grace_period=2`` and ``RetryFailedTrialCallback`` (its way of retrying the
  trials of a dead process), and keeps its checkpoint in a trial's system
  attributes; Optuna marks a dead process's trial FAIL, so its finished
  count includes those.
* ``share``: 8 processes start together on one study: random search with
  ``--max-trials``, then an 8 x 5 = 40-point grid.  Counted: errors reaching
  the user, duplicate numbers, finished trials against ``--max-trials``,
  grid points run more than once or not at all.  Optuna: ``MaxTrialsCallback``
  and ``GridSampler``.

    python benchmarks/bench_exact.py                 # both checks, both libraries
    python benchmarks/bench_exact.py --only share --max-trials 400
    python benchmarks/bench_exact.py --storage postgresql --only kills --max-trials 40
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

HPT_KILL = """
import sys, anyio, hpt_async as hpt
url, n = sys.argv[1], int(sys.argv[2])

class Announce:
    @hpt.hookimpl
    def hpt_trial_ended(self, event):
        r = event.record
        print("ended", r.number, r.state.value, repr(r.value), flush=True)

async def objective(trial):
    start = 0
    if trial.should_restore:
        start = (await trial.restore())["step"] + 1
    for step in range(start, 3):
        await anyio.sleep(0.01 + 0.01 * (trial.number % 3))
        await trial.checkpoint({"step": step})
        await trial.report(trial.params["x"] + step, step=step)
    return trial.params["x"] * 100

async def main():
    tuner = hpt.Tuner(objective, {"x": hpt.Float(0.0, 1.0)}, storage=url, study="k", concurrency=3, max_trials=n,
                      loggers=[], plugins=[Announce()])
    print("ready", flush=True)
    await tuner.run()
    print("finished", flush=True)

anyio.run(main, backend="asyncio")
"""

OPTUNA_KILL = """
import sys, time, optuna
from optuna.storages import RDBStorage, RetryFailedTrialCallback
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, n = sys.argv[1], int(sys.argv[2])
storage = RDBStorage(url, heartbeat_interval=1, grace_period=2,
                     failed_trial_callback=RetryFailedTrialCallback(max_retry=None))
study = optuna.create_study(study_name="k", storage=storage, load_if_exists=True)

def objective(trial):
    x = trial.suggest_float("x", 0.0, 1.0)
    start = 0
    retried = RetryFailedTrialCallback.retried_trial_number(storage.get_trial(trial._trial_id))
    if retried is not None:
        done = storage.get_trial(storage.get_trial_id_from_study_id_trial_number(
            study._study_id, retried)).system_attrs.get("step")
        if done is not None:
            start = done + 1
    for step in range(start, 3):
        time.sleep(0.01 + 0.01 * (trial.number % 3))
        storage.set_trial_system_attr(trial._trial_id, "step", step)
        trial.report(x + step, step)
    return x * 100

import threading
LOCK = threading.Lock()

class Announce:
    def __call__(self, study, trial):
        with LOCK:  # callbacks run in the n_jobs threads
            print("ended", trial.number, trial.state.name.lower(), repr(trial.value), flush=True)

print("ready", flush=True)
study.optimize(objective, n_jobs=3, callbacks=[Announce(), MaxTrialsCallback(
    n, states=(TrialState.COMPLETE, TrialState.PRUNED, TrialState.FAIL))])
print("finished", flush=True)
"""

HPT_SHARE = """
import json, sys, anyio, hpt_async as hpt
url, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

async def objective(trial):
    await anyio.sleep(0.002)
    return float(sum(v for v in trial.params.values() if isinstance(v, (int, float))))

async def main():
    sys.stdin.readline()
    errors = 0
    try:
        await hpt.Tuner(objective, {"x": hpt.Float(0.0, 1.0)}, storage=url, study="random", concurrency=4,
                        max_trials=n, loggers=[], seed=seed, strategy="random").run()
        await hpt.Tuner(objective, {"a": hpt.Int(0, 7), "b": hpt.Int(0, 4)}, strategy={"name": "grid", "points": 8},
                        storage=url, study="grid", concurrency=3, loggers=[], seed=seed).run()
    except Exception as exc:
        errors += 1
        print(type(exc).__name__, exc, file=sys.stderr)
    print(json.dumps({"errors": errors}), flush=True)

anyio.run(main, backend="asyncio")
"""

OPTUNA_SHARE = """
import json, sys, time, optuna
from optuna.study import MaxTrialsCallback
from optuna.trial import TrialState
optuna.logging.set_verbosity(optuna.logging.ERROR)
url, n, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])

def objective(trial):
    time.sleep(0.002)
    return trial.suggest_float("x", 0.0, 1.0)

def grid_objective(trial):
    time.sleep(0.002)
    return trial.suggest_int("a", 0, 7) + trial.suggest_int("b", 0, 4)

sys.stdin.readline()
errors = 0
try:
    study = optuna.create_study(study_name="random", storage=url, load_if_exists=True,
                                sampler=optuna.samplers.RandomSampler(seed=seed))
    study.optimize(objective, n_jobs=4, callbacks=[MaxTrialsCallback(n, states=(TrialState.COMPLETE,))])
    sampler = optuna.samplers.GridSampler({"a": list(range(8)), "b": list(range(5))}, seed=seed)
    grid = optuna.create_study(study_name="grid", storage=url, load_if_exists=True, sampler=sampler)
    grid.optimize(grid_objective, n_jobs=3)
except Exception as exc:
    errors += 1
    print(type(exc).__name__, exc, file=sys.stderr)
print(json.dumps({"errors": errors}), flush=True)
"""


def spawn(code: str, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, "-c", code, *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def guarded_lines(proc: subprocess.Popen[str], guard: float = 300.0) -> Any:
    timer = threading.Timer(guard, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            yield line.rstrip("\n")
    finally:
        timer.cancel()


class Store:
    """Where one check of one library keeps its study: a SQLite file, or a database of a PostgreSQL server."""

    def __init__(self, directory: Path, server: Any, name: str) -> None:
        self.server = server
        if server is None:
            self.db: Path | None = directory / f"{name}.db"
            self.url = f"sqlite:///{self.db}"
        else:
            self.db = None
            self.url = server.create_database(name.replace("-", "_"))

    def url_for(self, hpt_lib: bool, options: str = "") -> str:
        if hpt_lib:
            if not options:
                return self.url
            return self.url + ("&" if "?" in self.url else "?") + options
        if self.server is None:
            return self.url
        return self.url.replace("postgresql://", "postgresql+psycopg2://", 1)

    def query(self, sql: str, schema: str = "hpt_async") -> list[tuple[Any, ...]]:
        if self.db is not None:
            con = sqlite3.connect(self.db)
            try:
                return con.execute(sql).fetchall()
            finally:
                con.close()
        import psycopg2

        con = psycopg2.connect(self.url)
        try:
            with con.cursor() as cur:
                cur.execute(f"SET search_path TO {schema}, public")
                cur.execute(sql)
                return [tuple(r) for r in cur.fetchall()]
        finally:
            con.close()


def kills(lib: str, store: Store, max_trials: int, n_kills: int, seed: int) -> dict[str, Any]:
    rng = random.Random(seed)
    hpt_lib = lib == "hpt-async"
    url = store.url_for(hpt_lib, "lease=0.5&sync=0.1")
    query = store.query
    code = HPT_KILL if hpt_lib else OPTUNA_KILL
    announced: dict[int, float] = {}
    killed = 0
    finished = False
    while killed < n_kills and not finished:
        with spawn(code, url, str(max_trials)) as proc:
            wanted = rng.randint(0, 3)
            for line in guarded_lines(proc):
                if line.startswith("ended"):
                    _, number, state, value = line.split()
                    if state == "complete":
                        announced[int(number)] = float(value)
                    wanted -= 1
                if (line == "ready" or line.startswith("ended")) and wanted <= 0:
                    time.sleep(rng.uniform(0.0, 0.05))
                    os.kill(proc.pid, signal.SIGKILL)
                    killed += 1
                    break
                if line == "finished":
                    finished = True
                    break
            proc.wait(timeout=60)
    time.sleep(2.5)  # past hpt-async's lease and Optuna's grace period
    with spawn(code, url, str(max_trials)) as proc:
        last = list(guarded_lines(proc))[-1:]
        err = proc.stderr.read() if proc.stderr else ""
        final_exit = proc.wait(timeout=300)
    final_error = "" if final_exit == 0 else (err.strip().splitlines() or ["?"])[-1]
    if hpt_lib:
        rows = query("SELECT number, state, value, retry_of FROM trials")
        stranded = len(query("SELECT 1 FROM checkpoints c JOIN trials t USING (study_id, number) "
                             "WHERE t.state = 'lost'"))  # fmt: skip
        counted_states = ("complete", "pruned", "failed", "paused")
        lost_state = "lost"
    else:
        rows = query("SELECT number, state, (SELECT value FROM trial_values v WHERE v.trial_id = t.trial_id),"
                     " NULL FROM trials t", "public")  # fmt: skip
        stranded = None
        counted_states = ("COMPLETE", "PRUNED", "FAIL")
        lost_state = "FAIL"
    numbers = [r[0] for r in rows]
    by = {r[0]: r for r in rows}
    changed = sum(1 for n, v in announced.items() if n not in by or by[n][2] != v)
    counted = sum(r[1] in counted_states for r in rows)
    return {
        "kills": killed,
        "finished (counted)": counted,
        "max_trials": max_trials,
        "duplicate numbers": len(numbers) - len(set(numbers)),
        "announced values changed or missing": changed,
        "left RUNNING": sum(r[1] in ("running", "RUNNING") for r in rows),
        "LOST (Optuna: FAIL)": sum(r[1] == lost_state for r in rows),
        "LOST retried other than once": None
        if not hpt_lib
        else sum(1 for r in rows if r[1] == "lost" and sum(x[3] == r[0] for x in rows) != 1),
        "checkpoints stranded under a LOST trial": stranded,
        "last run": f"exit {final_exit} {final_error}".strip()
        + ("" if last == ["finished"] else f", last line {last}"),
    }


def share(lib: str, store: Store, max_trials: int, n_procs: int) -> dict[str, Any]:
    hpt_lib = lib == "hpt-async"
    url = store.url_for(hpt_lib, "sync=0.05")
    query = store.query
    if not hpt_lib:
        import optuna

        optuna.logging.set_verbosity(optuna.logging.ERROR)
        optuna.create_study(study_name="random", storage=url)  # created once, before the processes race
        optuna.create_study(study_name="grid", storage=url)
    code = HPT_SHARE if hpt_lib else OPTUNA_SHARE
    procs = [spawn(code, url, str(max_trials), str(seed), stdin=True) for seed in range(n_procs)]
    t0 = time.perf_counter()
    for p in procs:
        assert p.stdin is not None
        p.stdin.write("go\n")
        p.stdin.flush()
    errors, stderr_lines = 0, 0
    for p in procs:
        out = list(guarded_lines(p))
        err = p.stderr.read() if p.stderr else ""
        p.wait(timeout=300)
        errors += json.loads(out[-1])["errors"] if out and out[-1].startswith("{") else 1
        stderr_lines += sum(1 for line in err.splitlines() if "Error" in line or "locked" in line)
    seconds = time.perf_counter() - t0
    if hpt_lib:
        rnd = query(
            "SELECT t.number, t.state FROM trials t JOIN studies s ON s.id = t.study_id WHERE s.name = 'random'"
        )
        grid = query("SELECT t.params FROM trials t JOIN studies s ON s.id = t.study_id "
                     "WHERE s.name = 'grid' AND t.state = 'complete'")  # fmt: skip
        points = [tuple(sorted(json.loads(p).items())) for (p,) in grid]
        finished = sum(s == "complete" for _, s in rnd)
    else:
        rnd = query("SELECT t.number, t.state FROM trials t JOIN studies s USING (study_id) "
                    "WHERE s.study_name = 'random'", "public")  # fmt: skip
        rows = query(
            "SELECT p.trial_id, p.param_name, p.param_value FROM trial_params p JOIN trials t USING (trial_id)"
            " JOIN studies s USING (study_id) WHERE s.study_name = 'grid' AND t.state = 'COMPLETE'",
            "public",
        )
        by: dict[int, dict[str, float]] = {}
        for tid, name, value in rows:
            by.setdefault(tid, {})[name] = value
        points = [tuple(sorted(d.items())) for d in by.values()]
        finished = sum(s == "COMPLETE" for _, s in rnd)
    numbers = [n for n, _ in rnd]
    return {
        "processes": n_procs,
        "errors reaching the user": errors,
        "error lines on stderr": stderr_lines,
        "duplicate numbers": len(numbers) - len(set(numbers)),
        "finished": finished,
        "max_trials": max_trials,
        "grid points run (of 40)": len(set(points)),
        "grid points run more than once": sum(points.count(p) > 1 for p in set(points)),
        "grid trials complete": len(points),
        "seconds": round(seconds, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--only", choices=("kills", "share"))
    parser.add_argument("--libs", default="hpt-async,optuna")
    parser.add_argument("--max-trials", type=int, default=None, help="default: 60 (kills), 400 (share)")
    parser.add_argument("--kills", type=int, default=12)
    parser.add_argument("--processes", type=int, default=8)
    parser.add_argument("--seed", type=int, default=None)
    parser.add_argument("--storage", choices=("sqlite", "postgresql"), default="sqlite")
    args = parser.parse_args(argv)
    seed = args.seed if args.seed is not None else random.randrange(2**32)
    print(f"load average {os.getloadavg()}; seed {seed}; storage {args.storage}")
    libs = args.libs.split(",")
    server = None
    if args.storage == "postgresql":
        from hpt_async.testing.postgres import TemporaryPostgres

        server = TemporaryPostgres()
        server.start()
    try:
        with tempfile.TemporaryDirectory() as tmp:
            directory = Path(tmp)
            if args.only in (None, "kills"):
                for lib in libs:
                    store = Store(directory, server, f"kills-{lib}")
                    result = kills(lib, store, args.max_trials or 60, args.kills, seed)
                    print(f"kills {lib}: {result}", flush=True)
            if args.only in (None, "share"):
                for lib in libs:
                    store = Store(directory, server, f"share-{lib}")
                    result = share(lib, store, args.max_trials or 400, args.processes)
                    print(f"share {lib}: {result}", flush=True)
    finally:
        if server is not None:
            server.stop()
    print(f"load average {os.getloadavg()}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
