"""Exactness across processes on one SQLite file and on PostgreSQL: SIGKILLs at random moments, eight tuners.

These are the checks of ``benchmarks/bench_exact.py`` at a size that fits
the test suite.  The kill test prints its seed; ``HPT_KILL_SEED`` replays it.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest

import hpt_async as hpt

pytestmark = [pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL"), pytest.mark.anyio]

HANG_GUARD = 120.0

# A tuner with checkpoints: each trial takes three steps, saving its state before reporting each, and a
# retry continues from the state it inherits.  Every committed end is printed.
KILL_CHILD = """
import sys
import anyio
import hpt_async as hpt

url, study, max_trials = sys.argv[1], sys.argv[2], int(sys.argv[3])
SPACE = {"x": hpt.Float(0.0, 1.0)}


class Announce:
    @hpt.hookimpl
    def hpt_trial_ended(self, event):
        r = event.record
        print("ended", r.number, r.state.value, repr(r.value), flush=True)


async def objective(trial):
    start = 0
    if trial.should_restore:
        start = (await trial.restore())["step"] + 1
        trial.set_user_attr("restored_at", start)
    for step in range(start, 3):
        await anyio.sleep(0.01 + 0.01 * (trial.number % 3))
        await trial.checkpoint({"step": step})
        await trial.report(trial.params["x"] + step, step=step)
    return trial.params["x"] * 100


async def main():
    tuner = hpt.Tuner(objective, SPACE, storage=url, study=study, concurrency=3, max_trials=max_trials,
                      loggers=[], plugins=[Announce()], seed=7)
    print("ready", flush=True)
    await tuner.run()
    print("finished", flush=True)


anyio.run(main, backend="asyncio")
"""

# One of several tuners: a random study with max_trials, then a grid study, on one file.
SHARE_CHILD = """
import json
import sys
import anyio
import hpt_async as hpt

url, max_trials, seed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
mine = {"random": [], "grid": []}


class Mine:
    def __init__(self, key):
        self.key = key

    @hpt.hookimpl
    def hpt_trial_created(self, event):
        mine[self.key].append(event.number)


async def objective(trial):
    await anyio.sleep(0.002)
    return float(sum(v for v in trial.params.values() if isinstance(v, (int, float))))


async def main():
    sys.stdin.readline()
    space = {"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["p", "q", "r"])}
    await hpt.Tuner(objective, space, storage=url, study="random", concurrency=4, max_trials=max_trials,
                    loggers=[], plugins=[Mine("random")], seed=seed).run()
    grid = {"a": hpt.Int(0, 7), "b": hpt.Int(0, 4)}
    await hpt.Tuner(objective, grid, strategy={"name": "grid", "points": 8}, storage=url, study="grid",
                    concurrency=3, loggers=[], plugins=[Mine("grid")], seed=seed).run()
    print(json.dumps(mine), flush=True)


anyio.run(main, backend="asyncio")
"""


def spawn(script: Path, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    env = dict(os.environ, HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD="1", PYTHONUNBUFFERED="1")
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
    )


def lines(proc: subprocess.Popen[str], guard: float = HANG_GUARD) -> Iterator[str]:
    """The child's stdout lines; the child is killed if it hangs past ``guard`` seconds."""
    timer = threading.Timer(guard, proc.kill)
    timer.start()
    try:
        assert proc.stdout is not None
        for line in proc.stdout:
            yield line.rstrip("\n")
    finally:
        timer.cancel()


def query(db: Path, sql: str, *args: Any) -> list[tuple[Any, ...]]:
    con = sqlite3.connect(db)
    try:
        return con.execute(sql, args).fetchall()
    finally:
        con.close()


class Store:
    """A study store for the children: a SQLite file, or a schema of the test PostgreSQL server."""

    def __init__(self, kind: str, tmp_path: Path, name: str, request: pytest.FixtureRequest) -> None:
        self.kind = kind
        if kind == "sqlite":
            self.db: Path | None = tmp_path / f"{name}.db"
            self.base = f"sqlite:///{self.db}"
        else:
            self.db = None
            self.base = request.getfixturevalue("postgres_url")

    def url(self, options: str) -> str:
        return self.base + ("&" if "?" in self.base else "?") + options

    def query(self, sql: str) -> list[tuple[Any, ...]]:
        if self.db is not None:
            return query(self.db, sql)
        import asyncpg

        from hpt_async.storage.postgres import PostgresStorage

        storage = PostgresStorage(self.base)

        async def fetch() -> list[tuple[Any, ...]]:
            c = await asyncpg.connect(storage.dsn, server_settings={"search_path": storage.schema})
            try:
                return [tuple(r) for r in await c.fetch(sql)]
            finally:
                await c.close()

        return anyio.run(fetch)


@pytest.fixture(params=["sqlite", "postgresql"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


def test_twelve_sigkills_leave_exactly_max_trials_and_no_stranded_checkpoint(
    tmp_path: Path, kind: str, request: pytest.FixtureRequest
) -> None:
    seed = int(os.environ.get("HPT_KILL_SEED", random.randrange(2**32)))
    print(f"SIGKILL test seed: {seed} (set HPT_KILL_SEED={seed} to replay)")
    rng = random.Random(seed)
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    store = Store(kind, tmp_path, "kill", request)
    lease, max_trials, kills = 0.5, 40, 12
    url = store.url(f"lease={lease}&sync=0.1")
    announced: dict[int, float] = {}  # COMPLETE trials whose end storage committed before a kill
    killed = 0
    while killed < kills:
        with spawn(script, url, "k", str(max_trials)) as proc:
            wanted = rng.randint(0, 3)
            for line in lines(proc):
                if line.startswith("ended"):
                    _, number, state, value = line.split()
                    if state == "complete":
                        announced[int(number)] = float(value)
                    wanted -= 1
                if (line == "ready" or line.startswith("ended")) and wanted <= 0:
                    time.sleep(rng.uniform(0.0, 0.05))  # somewhere inside the next steps
                    os.kill(proc.pid, signal.SIGKILL)
                    killed += 1
                    break
                if line == "finished":
                    break
            proc.wait(timeout=30)
        if line == "finished":
            break  # the study completed before all kills: fine, the checks below still hold
    time.sleep(lease + 0.1)
    with spawn(script, url, "k", str(max_trials)) as proc:
        out = list(lines(proc))
        err = proc.stderr.read() if proc.stderr else ""
        assert proc.wait(timeout=30) == 0, err
        assert out[-1] == "finished", err

    rows = store.query("SELECT number, state, value, retry_of, user_attrs FROM trials ORDER BY number")
    numbers = [r[0] for r in rows]
    assert len(numbers) == len(set(numbers))
    states = [r[1] for r in rows]
    counted = sum(s in ("complete", "pruned", "failed", "paused") for s in states)
    assert counted == max_trials, f"{counted} counted trials after {killed} kills"
    assert "running" not in states
    by = {r[0]: r for r in rows}
    for number, value in announced.items():
        assert by[number][1] == "complete" and by[number][2] == value  # values intact
    lost = [r[0] for r in rows if r[1] == "lost"]
    assert len(lost) <= 3 * killed  # at most the trials in flight at each kill
    retries = [r[3] for r in rows if r[3] is not None]
    assert sorted(retries) == sorted(lost), "a LOST trial was retried other than exactly once"
    # No checkpoint stranded: none is left under a LOST trial; a retry of a trial that had reported
    # (so had saved a checkpoint first) continued from that checkpoint.
    kept = {r[0] for r in store.query("SELECT number FROM checkpoints")}
    assert not kept & set(lost)
    reported = {r[0] for r in store.query("SELECT DISTINCT number FROM reports")}
    for r in rows:
        if r[3] is not None and r[3] in reported and r[1] == "complete":
            assert "restored_at" in json.loads(r[4] or "{}"), f"trial {r[0]} did not continue from trial {r[3]}"
    print(f"{killed} kills: {len(lost)} LOST trials, each retried once; {counted} counted")


def test_eight_processes_on_one_study_exactly(tmp_path: Path, kind: str, request: pytest.FixtureRequest) -> None:
    script = tmp_path / "share.py"
    script.write_text(SHARE_CHILD)
    store = Store(kind, tmp_path, "share", request)
    url = store.url("sync=0.05&lease=5")
    total, n_procs = 160, 8
    reports: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        procs = [stack.enter_context(spawn(script, url, str(total), str(seed), stdin=True)) for seed in range(n_procs)]
        for proc in procs:  # start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out = list(lines(proc))
            err = proc.stderr.read() if proc.stderr else ""
            assert proc.wait(timeout=HANG_GUARD) == 0, err
            assert "Error" not in err and "Traceback" not in err, err
            reports.append(json.loads(out[-1]))

    for study in ("random", "grid"):
        created = [n for r in reports for n in r[study]]
        assert len(created) == len(set(created)), f"{study}: a trial number was used twice"
    # Under load a tuner can be taken for dead while it runs (its event loop busy for longer than the lease):
    # its running trials are then LOST and retried once, and the counts stay exact.
    counted_states = ("complete", "pruned", "failed", "paused")
    for study in ("random", "grid"):
        rows = store.query(
            "SELECT t.number, t.state, t.params, t.retry_of FROM trials t JOIN studies s ON s.id = t.study_id"
            f" WHERE s.name = '{study}'"
        )
        states = [r[1] for r in rows]
        assert set(states) <= {"complete", "lost"}, sorted(set(states))
        lost = [r[0] for r in rows if r[1] == "lost"]
        retries = [r[3] for r in rows if r[3] is not None]
        assert sorted(retries) == sorted(lost), f"{study}: a LOST trial was retried other than exactly once"
        counted = [r for r in rows if r[1] in counted_states]
        if study == "random":
            assert len(counted) == total, f"{len(counted)} counted trials for max_trials={total}"
        else:
            points = [tuple(sorted(json.loads(r[2]).items())) for r in counted]
            assert len(points) == 40 and len(set(points)) == 40, "a grid point ran twice or not at all"
    assert sum(bool(r["random"]) for r in reports) >= 2, "the study was not shared"


async def test_a_checkpoint_moves_to_its_retry_in_the_transaction_that_creates_it(tmp_path: Path) -> None:
    """A failure between the retry's creation and anything after leaves the checkpoint with the retry."""
    from hpt_async.storage.sqlite import SQLiteStorage

    space = hpt.Space({"x": hpt.Float(0.0, 1.0)})
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'c.db'}?lease=0.3&sync=0.1")
    a = await storage.open("c", direction="minimize", space=space)
    n = await a.reserve()
    record = hpt.TrialRecord(number=n, state=hpt.TrialState.RUNNING, params={"x": 0.5}, started=1.0)
    await a.trial_created(record)
    await a.put_checkpoint(n, b"state")
    await anyio.sleep(0.5)
    b = await storage.open("c", direction="minimize", space=space)
    try:
        assert [r.number for r in await b.claim_lost()] == [n]
        m = await b.reserve_within(None)
        retry = hpt.TrialRecord(number=m, state=hpt.TrialState.RUNNING, params={"x": 0.5}, started=2.0, retry_of=n)
        statements: list[str] = []
        await b._conn.db.set_trace_callback(statements.append)  # type: ignore[attr-defined]
        assert await b.trial_created_retry(retry)
        await b._conn.db.set_trace_callback(None)  # type: ignore[attr-defined]
        begin, commit = statements.index("BEGIN IMMEDIATE"), statements.index("COMMIT")
        inside = statements[begin:commit]
        assert any(s.startswith("INSERT INTO trials") for s in inside)
        assert any(s.startswith("UPDATE OR REPLACE checkpoints") for s in inside)
        assert await storage.checkpoint("c", m) == b"state" and await storage.checkpoint("c", n) is None
    finally:
        await b.close()
        await a.close()
