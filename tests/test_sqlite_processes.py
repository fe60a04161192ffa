"""The SQLite storage across processes: SIGKILL in the middle of a study, several tuners on one study."""

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
from hpt_async.storage.sqlite import SQLiteStorage

pytestmark = pytest.mark.anyio

posix_only = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs SIGKILL")

HANG_GUARD = 30.0

GRID = {"a": hpt.Int(0, 5), "b": hpt.Int(0, 3)}
# The grid strategy's default of 5 values per numeric parameter: 20 points.
GRID_POINTS = sorted((p["a"], p["b"]) for p in hpt.Space(GRID).grid(5))

# A tuning script: a grid over GRID, three trials at a time, each sleeping a
# little; every trial end (announced after storage committed it) is printed.
KILL_CHILD = """
import sys
import anyio
import hpt_async as hpt

url, study = sys.argv[1], sys.argv[2]
SPACE = {"a": hpt.Int(0, 5), "b": hpt.Int(0, 3)}


class Announce:
    @hpt.hookimpl
    def hpt_trial_ended(self, event):
        r = event.record
        print("ended", r.number, r.state.value, repr(r.value), flush=True)


async def objective(trial):
    await anyio.sleep(0.03 + 0.01 * (trial.number % 4))
    return trial.params["a"] * 10 + trial.params["b"] + 0.5


async def main():
    tuner = hpt.Tuner(objective, SPACE, strategy="grid", storage=url, study=study, concurrency=3,
                      loggers=[], plugins=[Announce()], seed=7)
    print("ready", flush=True)
    await tuner.run()
    print("finished", flush=True)


anyio.run(main, backend="asyncio")
"""

# One of several tuners sharing a study: reports what it created and what it saw.
SHARE_CHILD = """
import json
import sys
import anyio
import hpt_async as hpt

url, study, max_trials, seed = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
SPACE = {"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["p", "q", "r"])}
mine = []


class Mine:
    @hpt.hookimpl
    def hpt_trial_created(self, event):
        mine.append(event.number)


async def objective(trial):
    await anyio.sleep(0.001)
    return trial.params["x"]


async def main():
    tuner = hpt.Tuner(objective, SPACE, storage=url, study=study, concurrency=4, max_trials=max_trials,
                      loggers=[], plugins=[Mine()], seed=seed, strategy="random")
    print("ready", flush=True)
    sys.stdin.readline()
    result = await tuner.run()
    others = [t.number for t in result.trials if t.number not in set(mine)]
    print(json.dumps({"mine": mine, "seen": len(result.trials), "others": len(others),
                      "counted": sum(t.state.counted for t in result.trials)}), flush=True)


anyio.run(main, backend="asyncio")
"""


def child_env() -> dict[str, str]:
    env = dict(os.environ)
    env["HPT_ASYNC_DISABLE_PLUGIN_AUTOLOAD"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


def spawn(script: Path, *args: str, stdin: bool = False) -> subprocess.Popen[str]:
    return subprocess.Popen(
        [sys.executable, str(script), *args],
        stdin=subprocess.PIPE if stdin else subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=child_env(),
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


def stored(db: Path) -> list[tuple[int, str, float | None, int | None]]:
    con = sqlite3.connect(db)
    try:
        return con.execute("SELECT number, state, value, retry_of FROM trials ORDER BY number").fetchall()
    finally:
        con.close()


@posix_only
async def test_sigkill_mid_study_loses_nothing_committed_and_no_grid_point(tmp_path: Path) -> None:
    seed = int(os.environ.get("HPT_KILL_SEED", random.randrange(2**32)))
    print(f"SIGKILL test seed: {seed} (set HPT_KILL_SEED={seed} to replay)")
    rng = random.Random(seed)
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    db = tmp_path / "kill.db"
    lease = 0.6
    url = f"sqlite:///{db}?lease={lease}&sync=0.1"
    reported: dict[int, float] = {}  # committed COMPLETE trials, as announced before the kill

    for _ in range(3):
        with spawn(script, url, "grid") as proc:
            wanted = rng.randint(1, 4)
            ended = 0
            for line in lines(proc):
                if line.startswith("ended"):
                    _, number, state, value = line.split()
                    assert state == "complete"
                    reported[int(number)] = float(value)
                    ended += 1
                    if ended == wanted:
                        time.sleep(rng.uniform(0.0, 0.04))  # somewhere inside the next trials
                        os.kill(proc.pid, signal.SIGKILL)
                elif line == "finished":
                    pytest.fail("the child finished the grid before it could be killed")
            assert proc.wait(timeout=10) == -signal.SIGKILL
            assert proc.stderr is not None and "Error" not in proc.stderr.read()

    rows = stored(db)
    numbers = [r[0] for r in rows]
    assert len(numbers) == len(set(numbers))
    by_number = {r[0]: r for r in rows}
    for number, value in reported.items():
        assert by_number[number][1] == "complete" and by_number[number][2] == value
    dead_running = [r[0] for r in rows if r[1] == "running"]
    assert dead_running, "the last kill should leave trials running"

    # Resume once the dead processes' lease is over: their running trials are found LOST and run again.
    await anyio.sleep(lease + 0.1)
    result = await _finish_grid(url)
    final = {t.number: t for t in result.trials}
    assert all(final[n].state is hpt.TrialState.LOST for n in dead_running)
    retried = {t.retry_of: t for t in result.trials if t.retry_of is not None}
    for n in dead_running:
        assert n in retried and dict(retried[n].params) == dict(final[n].params)
    complete = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE]
    points = [(t.params["a"], t.params["b"]) for t in complete]
    assert sorted(points) == GRID_POINTS, "a grid point was lost or run twice"
    for number, value in reported.items():
        assert final[number].value == value
    assert len(final) == len(set(final))
    # Every LOST trial's configuration was completed by some trial.
    for t in result.trials:
        if t.state is hpt.TrialState.LOST:
            assert (t.params["a"], t.params["b"]) in points
    assert not [r for r in stored(db) if r[1] == "running"]


async def _finish_grid(url: str) -> hpt.StudyResult:
    async def objective(trial: hpt.Trial) -> float:
        return trial.params["a"] * 10 + trial.params["b"] + 0.5

    tuner = hpt.Tuner(objective, GRID, strategy="grid", storage=url, study="grid", concurrency=3, loggers=[], seed=7)
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


@posix_only
async def test_sigkill_then_resume_reaches_exactly_max_trials(tmp_path: Path) -> None:
    seed = int(os.environ.get("HPT_KILL_SEED", random.randrange(2**32)))
    print(f"SIGKILL test seed: {seed} (set HPT_KILL_SEED={seed} to replay)")
    rng = random.Random(seed)
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD.replace('strategy="grid", ', "").replace("SPACE, ", "SPACE, max_trials=12, "))
    db = tmp_path / "kill.db"
    lease = 0.5
    url = f"sqlite:///{db}?lease={lease}&sync=0.1"
    with spawn(script, url, "random") as proc:
        wanted = rng.randint(1, 6)
        for line in lines(proc):
            if line.startswith("ended"):
                wanted -= 1
                if wanted == 0:
                    time.sleep(rng.uniform(0.0, 0.03))
                    os.kill(proc.pid, signal.SIGKILL)
        proc.wait(timeout=10)
    await anyio.sleep(lease + 0.1)

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["a"] + 0.5

    tuner = hpt.Tuner(
        objective,
        GRID,
        storage=url,
        study="random",
        max_trials=12,
        loggers=[],
        seed=7,
        concurrency=3,
        strategy="random",
    )
    with anyio.fail_after(HANG_GUARD):
        result = await tuner.run()
    assert sum(t.state.counted for t in result.trials) == 12
    numbers = [t.number for t in result.trials]
    assert numbers == sorted(set(numbers))


# -- several processes, one study -----------------------------------------------------------


@posix_only
def test_four_processes_share_one_study(tmp_path: Path) -> None:
    script = tmp_path / "share.py"
    script.write_text(SHARE_CHILD)
    db = tmp_path / "share.db"
    url = f"sqlite:///{db}?sync=0.05&lease=2"
    total, n_procs = 1000, 4
    reports: list[dict[str, Any]] = []
    with contextlib.ExitStack() as stack:
        procs = [
            stack.enter_context(spawn(script, url, "shared", str(total), str(seed), stdin=True))
            for seed in range(n_procs)
        ]
        for proc in procs:
            assert next(lines(proc)) == "ready"
        for proc in procs:  # start together
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        for proc in procs:
            out = list(lines(proc))
            err = proc.stderr.read() if proc.stderr else ""
            assert proc.wait(timeout=HANG_GUARD) == 0, err
            assert "locked" not in err and "Error" not in err, err
            reports.append(json.loads(out[-1]))

    created = [n for r in reports for n in r["mine"]]
    assert len(created) == len(set(created)), "a trial number was used twice"
    rows = stored(db)
    assert sorted(created) == [r[0] for r in rows]
    assert all(r[1] == "complete" for r in rows)
    counted = len(rows)
    per_process = [len(r["mine"]) for r in reports]
    print(f"{n_procs} processes, max_trials={total}: {counted} trials in all, per process {per_process}")
    # Storage hands out numbers within max_trials in one transaction: exactly max_trials, never more.
    assert counted == total
    for r in reports:
        assert r["others"] > 0, "a process never saw the other processes' trials"
        assert r["mine"], "a process got no work"
        assert r["seen"] >= total


def test_sync_interval_and_lease_reach_the_session(tmp_path: Path) -> None:
    storage = SQLiteStorage(f"sqlite:///{tmp_path / 'x.db'}?sync=0.25&lease=2")

    async def main() -> None:
        session = await storage.open("s", direction="minimize", space=hpt.Space(GRID))
        try:
            assert session.sync_interval == 0.25
            before = time.time()
            await session.heartbeat()
            rows = await session._conn.fetch("SELECT expires FROM sessions")  # type: ignore[attr-defined]
            assert before + 2 <= rows[0][0] <= time.time() + 2
        finally:
            await session.close()

    anyio.run(main, backend="asyncio")


# -- behaviour the tuner owes a durable study (see the storage documentation) ------------------


async def test_a_grid_resumed_before_the_lease_ends_still_recovers_the_dead_points(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'g.db'}?lease=0.4&sync=0.1"
    storage = SQLiteStorage(url)
    space = hpt.Space({"a": hpt.Int(0, 3)})
    dead = await storage.open("g", direction="minimize", space=space)
    await dead.trial_created(
        hpt.TrialRecord(number=await dead.reserve(), state=hpt.TrialState.RUNNING, params={"a": 0}, started=1.0)
    )

    async def objective(trial: hpt.Trial) -> float:
        return float(trial.params["a"])

    tuner = hpt.Tuner(objective, space, strategy="grid", storage=storage, study="g", loggers=[], seed=0)
    with anyio.fail_after(HANG_GUARD):
        result = await tuner.run()
    await dead.close()
    done = sorted(t.params["a"] for t in result.trials if t.state is hpt.TrialState.COMPLETE)
    assert done == [0, 1, 2, 3]


async def test_max_trials_is_reached_when_resumed_before_the_lease_ends(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'm.db'}?lease=0.4&sync=0.1"
    storage = SQLiteStorage(url)
    space = hpt.Space(GRID)
    dead = await storage.open("m", direction="minimize", space=space)
    await dead.trial_created(
        hpt.TrialRecord(number=await dead.reserve(), state=hpt.TrialState.RUNNING, params={"a": 0, "b": 0}, started=1.0)
    )

    async def objective(trial: hpt.Trial) -> float:
        return float(trial.params["a"])

    tuner = hpt.Tuner(objective, space, storage=storage, study="m", max_trials=3, loggers=[], seed=0, strategy="random")
    with anyio.fail_after(HANG_GUARD):
        result = await tuner.run()
    await dead.close()
    assert sum(t.state.counted for t in result.trials) == 3
