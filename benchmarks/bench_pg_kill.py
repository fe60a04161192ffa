"""SIGKILLs at random moments on one PostgreSQL study: is anything lost, repeated or over-counted?

A child tuner (random search, concurrency 4, ``max_trials=--trials``, trials that sleep a little and
announce each end the storage committed) is SIGKILLed ``--kills`` times at random moments; after the
last kill a tuner runs to the end.  Checked: finished (counted) trials against ``max_trials``, unique
trial numbers, every announced value intact in storage, no trial left RUNNING.

    python benchmarks/bench_pg_kill.py [--kills 12] [--trials 200] [--seed 0]
"""

from __future__ import annotations

import argparse
import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import anyio

CHILD = """
import sys
import anyio
import hpt_async as hpt

url, max_trials = sys.argv[1], int(sys.argv[2])
SPACE = {"x": hpt.Float(0.0, 1.0)}


class Announce:
    @hpt.hookimpl
    def hpt_trial_ended(self, event):
        r = event.record
        print("ended", r.number, r.state.value, repr(r.value), flush=True)


async def objective(trial):
    await anyio.sleep(0.01 + 0.02 * trial.params["x"])
    return trial.params["x"]


async def main():
    tuner = hpt.Tuner(objective, SPACE, storage=url, study="kill", concurrency=4, max_trials=max_trials,
                      loggers=[], plugins=[Announce()], seed=3)
    await tuner.run()
    print("finished", flush=True)


anyio.run(main, backend="asyncio")
"""


def main() -> int:
    """Command-line entry point."""
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--kills", type=int, default=12)
    ap.add_argument("--trials", type=int, default=200)
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args()
    from hpt_async.storage.postgres import PostgresStorage
    from hpt_async.testing.postgres import TemporaryPostgres

    rng = random.Random(args.seed)
    print("load average at start:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    with TemporaryPostgres() as server:
        url = f"{server}?lease=1&sync=0.2"
        script = Path(os.environ.get("TMPDIR", "/tmp")) / f"hpt-kill-child-{os.getpid()}.py"
        script.write_text(CHILD)
        announced: dict[int, float] = {}
        kills = 0
        try:
            while True:
                proc = subprocess.Popen(
                    [sys.executable, str(script), url, str(args.trials)], stdout=subprocess.PIPE, text=True
                )
                kill_at = rng.randint(1, max(2, args.trials // (args.kills + 2))) if kills < args.kills else None
                ended = 0
                assert proc.stdout is not None
                for line in proc.stdout:
                    if line.startswith("ended"):
                        _, number, state, value = line.split()
                        if state == "complete":
                            announced[int(number)] = float(value)
                        ended += 1
                        if kill_at is not None and ended == kill_at:
                            time.sleep(rng.uniform(0.0, 0.03))
                            os.kill(proc.pid, signal.SIGKILL)
                            kills += 1
                            break
                proc.wait()
                if kill_at is None or proc.returncode == 0:
                    break
                time.sleep(1.1)  # the dead tuner's lease runs out
        finally:
            script.unlink(missing_ok=True)
        records = anyio.run(lambda: PostgresStorage(url).load("kill"))
    numbers = [r.number for r in records]
    counted = sum(r.state.counted for r in records)
    intact = all(
        any(r.number == n and r.value == v and r.state.value == "complete" for r in records)
        for n, v in announced.items()
    )
    running = sum(r.state.value == "running" for r in records)
    lost = sum(r.state.value == "lost" for r in records)
    print(
        f"{kills} SIGKILLs, max_trials {args.trials}: {counted} counted trials "
        f"({'exactly max_trials' if counted == args.trials else f'{counted - args.trials:+d} against max_trials'}), "
        f"{len(numbers) - len(set(numbers))} duplicate numbers, {lost} LOST, {running} left RUNNING, "
        f"announced values intact: {intact} ({len(announced)} announced)"
    )
    print("load average at end:", " ".join(f"{x:.2f}" for x in os.getloadavg()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
