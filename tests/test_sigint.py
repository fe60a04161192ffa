"""Ctrl-C (SIGINT) and SIGTERM during a run, sent to a real subprocess.

The first signal stops the study gracefully: running trials are recorded
CANCELLED, storage and loggers are closed, the summary is printed and
``run()`` returns its result with reason ``"interrupted"``.  A second
Ctrl-C aborts at once.
"""

from __future__ import annotations

import signal
import sqlite3
import subprocess
import sys
import textwrap
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

SCRIPT = textwrap.dedent(
    """
    import sys
    import anyio
    import hpt_async as hpt

    class Watch:
        @hpt.hookimpl
        def hpt_trial_started(self, event):
            print("started", event.number, flush=True)

        @hpt.hookimpl
        def hpt_trial_ended(self, event):
            print("ended", event.record.number, event.record.state.value, flush=True)

        @hpt.hookimpl
        def hpt_study_ended(self, event, study):
            print("study ended", event.result.reason, len(study.running), flush=True)

    async def objective(trial):
        await anyio.sleep(60)
        return 1.0

    def sync_objective(trial):
        import time
        time.sleep(60)
        return 1.0

    kind, db = sys.argv[1], sys.argv[2]
    tuner = hpt.Tuner(objective if kind == "async" else sync_objective, {"x": hpt.Float(0, 1)},
                      concurrency=3, max_trials=10, loggers=["console", Watch()], seed=0,
                      storage=f"sqlite:///{db}", study="interrupted", strategy="random")
    result = anyio.run(tuner.run)
    print("returned", result.reason, result.count("cancelled"), flush=True)
    """
)


_spawned: list[subprocess.Popen[str]] = []


@pytest.fixture(autouse=True)
def _no_process_left_behind() -> Iterator[None]:
    """Kill what a test started if it failed before its process ended (a stuck one would spin on)."""
    yield
    while _spawned:
        proc = _spawned.pop()
        if proc.poll() is None:
            proc.kill()
            proc.communicate()


def _spawn(*args: str) -> subprocess.Popen[str]:
    proc = subprocess.Popen([sys.executable, *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _spawned.append(proc)
    return proc


def _finish(proc: subprocess.Popen[str], timeout: float) -> tuple[str, str]:
    """``proc``'s output once it exits; killed (and the test failed) if it has not within ``timeout``."""
    try:
        return proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.communicate()
        raise


def _start(tmp_path: Path, kind: str) -> tuple[subprocess.Popen[str], Path]:
    db = tmp_path / "study.db"
    proc = _spawn("-c", SCRIPT, kind, str(db))
    assert proc.stdout is not None
    started = 0
    deadline = time.monotonic() + 30
    while started < 3 and time.monotonic() < deadline:
        line = proc.stdout.readline()
        if not line:
            break
        started += line.startswith("started")
    assert started == 3, "the three concurrent trials never started"
    return proc, db


def _states(db: Path) -> list[str]:
    with sqlite3.connect(db) as conn:
        return sorted(row[0] for row in conn.execute("SELECT state FROM trials"))


@pytest.mark.parametrize("kind", ["async", "sync"])
@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_signal_stops_the_study_gracefully_and_run_returns(tmp_path: Path, signum: int, kind: str) -> None:
    proc, db = _start(tmp_path, kind)
    proc.send_signal(signum)
    out, err = _finish(proc, 30)
    lines = out.splitlines()
    ended = [line for line in lines if line.startswith("ended")]
    assert sorted(ended) == ["ended 0 cancelled", "ended 1 cancelled", "ended 2 cancelled"]
    assert "study ended interrupted 0" in lines
    assert "returned interrupted 3" in lines  # the code after run() saw the result
    assert proc.returncode == 0, err
    assert "Traceback" not in err
    assert "interrupted" in err  # the console logger's summary line names the reason
    assert _states(db) == ["cancelled", "cancelled", "cancelled"]  # no RUNNING rows are left


def test_a_second_ctrl_c_aborts_at_once(tmp_path: Path) -> None:
    script = textwrap.dedent(
        """
        import anyio
        import hpt_async as hpt

        class Stubborn:
            # Holds the graceful stop up: ending a trial takes a minute.
            @hpt.hookimpl
            async def hpt_trial_ended(self, event):
                print("ending", flush=True)
                with anyio.CancelScope(shield=True):
                    await anyio.sleep(60)

        async def objective(trial):
            print("started", flush=True)
            await anyio.sleep(60)
            return 1.0

        tuner = hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, max_trials=2, loggers=[], plugins=[Stubborn()],
                          strategy="random")
        anyio.run(tuner.run)
        print("returned", flush=True)
        """
    )
    proc = _spawn("-c", script)
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "started"
    proc.send_signal(signal.SIGINT)
    assert proc.stdout.readline().strip() == "ending"  # the graceful stop is under way, and stuck
    proc.send_signal(signal.SIGINT)
    out, err = _finish(proc, 20)  # well before the hook's minute is up
    assert "returned" not in out
    assert proc.returncode != 0
    assert "KeyboardInterrupt" in err


def _script_result(script: str, signum: int | None = None, after: str | None = None) -> tuple[str, str, int]:
    proc = _spawn("-c", script)
    assert proc.stdout is not None
    if after is not None:
        for line in proc.stdout:
            if line.strip() == after:
                break
        assert signum is not None
        proc.send_signal(signum)
    out, err = _finish(proc, 30)
    return out, err, proc.returncode


def test_a_handler_the_event_loop_set_itself_still_runs_after_a_study() -> None:
    script = textwrap.dedent(
        """
        import asyncio, os, signal
        import hpt_async as hpt

        async def objective(trial):
            return 1.0

        async def main():
            heard = asyncio.Event()
            asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, heard.set)
            await hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, max_trials=3, loggers=[], strategy="random").run()
            os.kill(os.getpid(), signal.SIGTERM)
            await asyncio.wait_for(heard.wait(), 10)
            print("the loop's own handler ran")

        asyncio.run(main())
        """
    )
    out, err, code = _script_result(script)
    assert "the loop's own handler ran" in out, err
    assert code == 0


def test_ctrl_c_stops_a_study_still_running_after_another_one_ended() -> None:
    script = textwrap.dedent(
        """
        import anyio
        import hpt_async as hpt

        async def quick(trial):
            return 1.0

        async def slow(trial):
            await anyio.sleep(60)
            return 1.0

        async def main():
            results = {}

            async def run(name, objective, trials):
                results[name] = await hpt.Tuner(objective, {"x": hpt.Float(0, 1)}, max_trials=trials,
                                                 loggers=[], strategy="random").run()
                if name == "quick":
                    print("quick ended", flush=True)

            async with anyio.create_task_group() as tg:
                tg.start_soon(run, "slow", slow, 2)
                tg.start_soon(run, "quick", quick, 3)
            print("slow", results["slow"].reason, flush=True)

        anyio.run(main)
        """
    )
    out, err, code = _script_result(script, signal.SIGINT, after="quick ended")
    assert "slow interrupted" in out, err
    assert code == 0


def test_one_ctrl_c_stops_every_study_running_at_once() -> None:
    script = textwrap.dedent(
        """
        import anyio
        import hpt_async as hpt

        async def slow(trial):
            await anyio.sleep(60)
            return 1.0

        class Started:
            count = 0

            @hpt.hookimpl
            def hpt_trial_started(self):
                Started.count += 1
                if Started.count == 2:
                    print("both started", flush=True)

        async def main():
            reasons = []

            async def run():
                tuner = hpt.Tuner(slow, {"x": hpt.Float(0, 1)}, max_trials=2, loggers=[], plugins=[started],
                                  strategy="random")
                reasons.append((await tuner.run()).reason)

            async with anyio.create_task_group() as tg:
                tg.start_soon(run)
                tg.start_soon(run)
            print("reasons", sorted(reasons), flush=True)

        started = Started()
        anyio.run(main)
        """
    )
    out, err, code = _script_result(script, signal.SIGINT, after="both started")
    assert "reasons ['interrupted', 'interrupted']" in out, err
    assert code == 0
