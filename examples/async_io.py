"""An I/O-bound objective: each trial waits on simulated remote evaluations.

Run it::

    python examples/async_io.py                       # 64 trials, all 64 at once
    python examples/async_io.py --trials 128 --concurrency 32

Many tuning jobs spend their time waiting: on a training cluster, a remote
GPU, an HTTP inference endpoint.  Such an objective is an ``async def`` that
awaits, so hpt-async runs dozens of trials on one event loop with no threads
at all.  Here each trial sends ``replicas`` evaluation requests at once and
waits for all of them; a request's latency grows with the batch size it
evaluates (``anyio.sleep`` stands in for the network).  With every trial in
flight together, the study takes about as long as its slowest trials rather
than the sum of all of them; the script measures that and prints the speedup.
"""

from __future__ import annotations

import argparse
import math
import random
import time

import anyio

import hpt_async as hpt

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-4, 1e-1, log=True),
        "batch_size": hpt.Choice([32, 64, 128, 256]),
        "replicas": hpt.Int(1, 8),  # how many remote evaluators a trial queries at once
    }
)


async def remote_evaluate(lr: float, batch_size: int, rng: random.Random) -> tuple[float, float]:
    """Pretend to ask a remote service for a validation error; return ``(error, latency)``.

    Latency: 50 ms plus up to about 300 ms for the largest batches, with
    jitter.  Error: lowest near ``lr = 1e-2`` and ``batch_size = 64``, plus
    noise that averaging over replicas smooths out.
    """
    latency = 0.05 + 0.25 * (batch_size / 256) * rng.uniform(0.6, 1.2)
    await anyio.sleep(latency)  # the network round trip: the loop runs other trials meanwhile
    error = 0.1 + 0.05 * (math.log10(lr) + 2) ** 2 + 0.02 * abs(math.log2(batch_size / 64))
    return error + rng.gauss(0.0, 0.02), latency


async def objective(trial: hpt.Trial) -> float:
    """Query ``replicas`` evaluators concurrently and return their mean error."""
    p = trial.params
    replies: list[tuple[float, float]] = []

    async def ask_one(replica: int) -> None:
        # Each replica's noise and latency depend only on (trial number, replica).
        rng = random.Random(trial.number * 1000 + replica)
        replies.append(await remote_evaluate(p["lr"], p["batch_size"], rng))

    # Fan out inside the trial too: the trial lasts as long as its slowest reply.
    async with anyio.create_task_group() as tg:
        for replica in range(p["replicas"]):
            tg.start_soon(ask_one, replica)
    trial.set_user_attr("slowest_reply_s", max(latency for _, latency in replies))
    return sum(error for error, _ in replies) / len(replies)


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=64, help="number of trials (default 64)")
    parser.add_argument("--concurrency", type=int, default=64, help="trials run at once (default 64)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    return parser.parse_args(argv)


async def tune(args: argparse.Namespace) -> tuple[hpt.StudyResult, float]:
    """Run the study; return its result and the wall time it took."""
    tuner = hpt.Tuner(
        objective,
        SPACE,
        direction="minimize",
        strategy="random",
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        study="async-io",
        loggers=[],  # silent: this example prints its own timing summary
    )
    start = time.perf_counter()
    result = await tuner.run()
    return result, time.perf_counter() - start


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print timings and the best trial; return the study result."""
    args = parse_args(argv)
    result, wall = anyio.run(tune, args)

    complete = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE]
    durations = sorted((t.duration or 0.0 for t in result.trials), reverse=True)
    # Run one after another, the trials would take the sum of their durations.
    sequential = sum(durations)
    print(f"trials: {len(result.trials)} ({len(complete)} complete, {result.count('failed')} failed)")
    print(f"concurrency: {args.concurrency}")
    print(f"wall time: {wall:.3f} s")
    print(f"slowest trials: {', '.join(f'{d:.3f} s' for d in durations[:3])}")
    print(f"sequential time (sum of trial durations): {sequential:.3f} s")
    print(f"speedup over sequential: {sequential / wall:.1f}x")
    if result.best is None:
        print("best params: None")
        print("best value: None")
    else:
        print(f"best trial: {result.best.number}")
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")
    return result


if __name__ == "__main__":
    main()
