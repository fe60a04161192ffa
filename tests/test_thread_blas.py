"""The thread executor limits BLAS/OpenMP pools while it runs several trials, and restores them."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from typing import Any

import anyio
import numpy  # noqa: F401  - loads numpy's BLAS, the pool these tests look at
import pytest
from threadpoolctl import threadpool_info, threadpool_limits

import hpt_async as hpt
from hpt_async.executors.thread import ThreadExecutor, _usable_cores

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0.0, 1.0)}
HANG_GUARD = 30.0


def numpy_blas_threads() -> int:
    """The thread count of numpy's BLAS pool (the test is skipped when threadpoolctl finds none)."""
    pools = [p for p in threadpool_info() if p["user_api"] == "blas"]
    if not pools:
        pytest.skip("threadpoolctl finds no BLAS pool in this process")
    numpy_pools = [p for p in pools if "numpy" in p["filepath"] or "scipy_openblas" in p["filepath"]]
    return int((numpy_pools or pools)[0]["num_threads"])


async def threads_seen(executor: Any, concurrency: int) -> list[int]:
    """Run a small study; what numpy's BLAS pool size was inside each trial."""
    seen: list[int] = []

    def objective(trial: hpt.SyncTrial) -> float:
        seen.append(numpy_blas_threads())
        return trial.params["x"]

    tuner = hpt.Tuner(
        objective,
        SPACE,
        executor=executor,
        concurrency=concurrency,
        max_trials=4,
        loggers=[],
        seed=0,
        strategy="random",
    )
    with anyio.fail_after(HANG_GUARD):
        result = await tuner.run()
    assert result.count(hpt.TrialState.COMPLETE) == 4
    return seen


async def test_two_workers_share_the_cores_and_the_limit_is_undone() -> None:
    before = numpy_blas_threads()
    seen = await threads_seen("thread", concurrency=2)
    assert set(seen) == {max(1, _usable_cores() // 2)}
    assert numpy_blas_threads() == before


async def test_an_explicit_limit_applies_and_the_previous_one_comes_back() -> None:
    numpy_blas_threads()
    with threadpool_limits(limits=3, user_api="blas"):
        seen = await threads_seen(ThreadExecutor(blas_threads=1), concurrency=2)
        assert set(seen) == {1}
        assert numpy_blas_threads() == 3


async def test_blas_threads_none_leaves_the_pools_alone() -> None:
    numpy_blas_threads()
    with threadpool_limits(limits=3, user_api="blas"):
        seen = await threads_seen(ThreadExecutor(blas_threads=None), concurrency=2)
    assert set(seen) == {3}


async def test_one_worker_leaves_the_pools_alone_by_default() -> None:
    numpy_blas_threads()
    with threadpool_limits(limits=3, user_api="blas"):
        seen = await threads_seen("thread", concurrency=1)
    assert set(seen) == {3}


def test_the_automatic_limit_divides_the_cores_among_the_workers() -> None:
    executor = ThreadExecutor()
    cores = _usable_cores()
    assert executor.blas_limit(1) is None
    assert executor.blas_limit(2) == max(1, cores // 2)
    assert executor.blas_limit(cores * 4) == 1
    assert ThreadExecutor(blas_threads=5).blas_limit(1) == 5
    assert ThreadExecutor(blas_threads=None).blas_limit(8) is None


@pytest.mark.parametrize("value", [0, -1, True, 1.5, "unlimited"])
def test_a_bad_blas_threads_is_refused(value: Any) -> None:
    with pytest.raises(ValueError, match="blas_threads"):
        ThreadExecutor(blas_threads=value)


def test_the_thread_executor_needs_threadpoolctl_only_to_limit() -> None:
    # With threadpoolctl unimportable, importing and running without a limit still works.
    script = textwrap.dedent(
        """
        import sys
        sys.modules["threadpoolctl"] = None
        import anyio
        import hpt_async as hpt
        from hpt_async.executors.thread import ThreadExecutor

        def objective(trial):
            return trial.params["x"]

        tuner = hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, executor=ThreadExecutor(blas_threads=None),
                          concurrency=2, max_trials=2, loggers=[], seed=0, strategy="random")
        print(anyio.run(tuner.run).count(hpt.TrialState.COMPLETE))
        """
    )
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(p for p in sys.path if p)}
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, env=env, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "2"
