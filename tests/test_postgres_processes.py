"""The PostgreSQL storage across processes: several tuners and a Dask cluster on one study, SIGKILLs mid-study."""

from __future__ import annotations

import json
import os
import random
import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import anyio
import pytest
from common import installed_plugin
from test_sqlite_processes import GRID_POINTS, KILL_CHILD, SHARE_CHILD, lines, posix_only, spawn

import hpt_async as hpt
from hpt_async.storage.postgres import PostgresStorage

pytestmark = pytest.mark.anyio

HANG_GUARD = 120.0
SHARE_SPACE = {"x": hpt.Float(0.0, 1.0), "k": hpt.Choice(["p", "q", "r"])}


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two single-threaded Dask worker processes."""
    installed_plugin("hpt-async-dask", "dask", "hpt_async_dask")
    from distributed import LocalCluster

    with LocalCluster(
        n_workers=2, threads_per_worker=1, processes=True, dashboard_address=None, silence_logs=40
    ) as local:
        yield local


def on_a_worker(trial: hpt.SyncTrial) -> float:
    """Runs on a Dask worker: records the worker's pid."""
    trial.set_user_attr("pid", os.getpid())
    time.sleep(0.01)
    return float(trial.params["x"])


@posix_only
async def test_tuner_processes_and_a_dask_cluster_share_one_postgres_study(
    postgres_url: str, cluster: Any, tmp_path: Path
) -> None:
    """Three tuner processes and one tuner whose trials run on a Dask LocalCluster, one study."""
    url = f"{postgres_url}&sync=0.2&lease=2"
    script = tmp_path / "share.py"
    script.write_text(SHARE_CHILD)
    max_trials = 120
    procs = [spawn(script, url, "shared", str(max_trials), str(seed), stdin=True) for seed in range(3)]
    try:
        for proc in procs:
            assert next(lines(proc)) == "ready"
        for proc in procs:
            assert proc.stdin is not None
            proc.stdin.write("go\n")
            proc.stdin.flush()
        dask_tuner = hpt.Tuner(
            on_a_worker,
            SHARE_SPACE,
            executor={"name": "dask", "address": cluster.scheduler_address},
            storage=url,
            study="shared",
            concurrency=2,
            max_trials=max_trials,
            loggers=[],
            seed=99,
        )
        with anyio.fail_after(HANG_GUARD):
            dask_result = await dask_tuner.run()
        outputs = []
        for proc in procs:
            out, err = await anyio.to_thread.run_sync(lambda p=proc: p.communicate(timeout=HANG_GUARD))
            assert proc.returncode == 0, err
            outputs.append(json.loads(out.strip().splitlines()[-1]))
    finally:
        for proc in procs:
            if proc.poll() is None:
                proc.kill()
    records = await PostgresStorage(url).load("shared", space=hpt.Space(SHARE_SPACE))
    numbers = [r.number for r in records]
    assert len(numbers) == len(set(numbers))
    counted = sum(r.state.counted for r in records)
    assert counted >= max_trials
    # Every process and the Dask tuner ran trials, and saw the others'.
    assert all(o["mine"] for o in outputs) and all(o["others"] > 0 for o in outputs)
    on_dask = [r for r in records if "pid" in r.user_attrs]
    assert on_dask and {r.user_attrs["pid"] for r in on_dask} <= set((await _worker_pids(cluster)).values())
    assert all(r.value == r.params["x"] for r in records if r.state is hpt.TrialState.COMPLETE)
    assert len(dask_result.trials) >= max_trials


async def _worker_pids(cluster: Any) -> dict[str, int]:
    from distributed import Client

    async with Client(cluster.scheduler_address, asynchronous=True) as client:
        return await client.run(os.getpid)


@posix_only
async def test_sigkills_mid_study_lose_nothing_committed_on_postgres(postgres_url: str, tmp_path: Path) -> None:
    seed = int(os.environ.get("HPT_KILL_SEED", random.randrange(2**32)))
    print(f"SIGKILL test seed: {seed} (set HPT_KILL_SEED={seed} to replay)")
    rng = random.Random(seed)
    script = tmp_path / "child.py"
    script.write_text(KILL_CHILD)
    lease = 0.6
    url = f"{postgres_url}&lease={lease}&sync=0.1"
    reported: dict[int, float] = {}
    kills = 4
    for _ in range(kills):
        with spawn(script, url, "grid") as proc:
            wanted = rng.randint(1, 3)
            ended = 0
            for line in lines(proc, HANG_GUARD):
                if line.startswith("ended"):
                    _, number, state, value = line.split()
                    assert state == "complete"
                    reported[int(number)] = float(value)
                    ended += 1
                    if ended == wanted:
                        time.sleep(rng.uniform(0.0, 0.04))
                        os.kill(proc.pid, signal.SIGKILL)
                elif line == "finished":
                    break
            proc.wait(timeout=10)
    await anyio.sleep(lease + 0.2)
    space = {"a": hpt.Int(0, 5), "b": hpt.Int(0, 3)}

    async def objective(trial: hpt.Trial) -> float:
        return trial.params["a"] * 10 + trial.params["b"] + 0.5

    with anyio.fail_after(HANG_GUARD):
        result = await hpt.Tuner(objective, space, strategy="grid", storage=url, study="grid", loggers=[]).run()
    final = {t.number: t for t in result.trials}
    assert len(final) == len(result.trials)
    for number, value in reported.items():  # every end the tuners announced is stored, value intact
        assert final[number].state is hpt.TrialState.COMPLETE and final[number].value == value
    complete = sorted((t.params["a"], t.params["b"]) for t in result.trials if t.state is hpt.TrialState.COMPLETE)
    assert complete == GRID_POINTS, "a grid point was lost or run twice"
    assert not [t for t in result.trials if t.state is hpt.TrialState.RUNNING]
