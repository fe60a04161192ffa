"""Ask-and-tell: drive the tuner from a training loop of your own.

Run it::

    python examples/ask_tell.py                          # 40 trials, 4 workers, ASHA, saved in ask_tell.db
    python examples/ask_tell.py --pruner median --workers 8
    python examples/ask_tell.py --study mine             # run it again: 40 more trials in the same study
    hpt-async best mine --storage sqlite:///ask_tell.db

No objective function here: the tuner is made with ``None`` in its place,
and the script keeps control of the loop.  Several anyio tasks ("workers")
each repeat the same cycle::

    trial = await tuner.ask()                 # a configuration to try
    await trial.report(loss, step=epoch)      # after every epoch; may raise TrialPruned
    await tuner.tell(trial, loss)             # or tell(trial, state="pruned")

``ask()`` may be called from many tasks at once: the study is opened by the
first call and the others wait for it.  The pruner compares each trial's
learning curve with the others' and stops the poor ones early, so the study
costs fewer epochs than ``trials x epochs``.  Every trial is written to the
SQLite file as it ends; ``tuner.close()`` ends the study and returns its
result.  Naming a study that the file already holds continues it: the
pruner compares new trials with the earlier ones too.

The "training" is a synthetic learning curve that decays toward a floor set
by the hyperparameters (lowest near ``lr = 1e-2``, ``momentum = 0.9``,
``batch_size = 64``), with a little noise fixed by the trial number.
"""

from __future__ import annotations

import argparse
import math
import random
import time
import uuid
from collections.abc import Mapping
from typing import Any

import anyio

import hpt_async as hpt

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-4, 1.0, log=True),
        "momentum": hpt.Float(0.0, 0.99),
        "batch_size": hpt.Choice([16, 32, 64, 128, 256]),
    }
)


def synthetic_loss(params: Mapping[str, Any], epoch: int, noise: random.Random) -> float:
    """Validation loss after ``epoch`` (0-based): decays from about 1.0 toward a floor of 0.1 or more."""
    floor = 0.1
    floor += 0.05 * (math.log10(params["lr"]) + 2) ** 2
    floor += 0.3 * (params["momentum"] - 0.9) ** 2
    floor += 0.02 * abs(math.log2(params["batch_size"] / 64))
    speed = 0.2 + 0.4 * params["momentum"]  # momentum speeds training up
    return floor + (1.0 - floor) * math.exp(-speed * (epoch + 1)) + noise.uniform(0.0, 0.005)


class Budget:
    """How many trials are still to be asked for, shared by the workers.

    Taking one does not await, so no other task can run between the check
    and the decrement: the workers never start more than ``trials`` trials.
    """

    def __init__(self, trials: int) -> None:
        self.left = trials

    def take(self) -> bool:
        """Claim one trial; False when none is left."""
        if self.left <= 0:
            return False
        self.left -= 1
        return True


class Stats:
    """What the workers did: trials and epochs trained, and the most trials open at once."""

    def __init__(self) -> None:
        self.trials = 0
        self.epochs = 0
        self.open = 0
        self.most_open = 0


async def worker(tuner: hpt.Tuner, budget: Budget, stats: Stats, epochs: int, epoch_seconds: float) -> None:
    """Ask for trials, train each one epoch at a time, and tell the tuner how it ended."""
    while budget.take():
        trial = await tuner.ask()
        stats.trials += 1
        stats.open += 1
        stats.most_open = max(stats.most_open, stats.open)
        noise = random.Random(trial.number)  # the same trial always gives the same curve
        loss = math.inf
        try:
            for epoch in range(epochs):
                await anyio.sleep(epoch_seconds)  # stands in for one epoch of real work
                loss = synthetic_loss(trial.params, epoch, noise)
                stats.epochs += 1
                await trial.report(loss, step=epoch)  # raises TrialPruned when the pruner stops it
        except hpt.TrialPruned:
            await tuner.tell(trial, state="pruned")  # keeps the last reported loss
        else:
            await tuner.tell(trial, loss)
        finally:
            stats.open -= 1


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (all small, so the tests can run this quickly)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=40, help="trials to run (default 40)")
    parser.add_argument("--workers", type=int, default=4, help="tasks asking for trials at once (default 4)")
    parser.add_argument("--epochs", type=int, default=9, help="epochs per trial unless pruned (default 9)")
    parser.add_argument("--epoch-seconds", type=float, default=0.005, help="simulated time per epoch")
    parser.add_argument("--pruner", choices=["asha", "median"], default="asha", help="pruner (default asha)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    parser.add_argument(
        "--storage", default="sqlite:///ask_tell.db", help="storage URL (default sqlite:///ask_tell.db)"
    )
    parser.add_argument("--study", default=None, help="study name (default: a new study named after the time)")
    args = parser.parse_args(argv)
    if args.study is None:
        args.study = "ask-tell-" + time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    return args


async def tune(args: argparse.Namespace) -> tuple[hpt.StudyResult, Stats]:
    """Run the workers until the budget is spent; return the study result and what they did."""
    tuner = hpt.Tuner(
        None,  # ask-and-tell: the workers below run the trials
        SPACE,
        direction="minimize",
        strategy="random",
        pruner=args.pruner,
        storage=args.storage,
        study=args.study,
        seed=args.seed,
        loggers=[],  # silent: this example prints its own summary
    )
    budget, stats = Budget(args.trials), Stats()
    async with anyio.create_task_group() as tg:
        for _ in range(args.workers):
            tg.start_soon(worker, tuner, budget, stats, args.epochs, args.epoch_seconds)
    # Every trial has been told; close() ends the study (a trial still open would be recorded CANCELLED).
    return await tuner.close(), stats


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print a summary and the best trial; return the study result."""
    args = parse_args(argv)
    result, stats = anyio.run(tune, args)

    counts = {state: result.count(state) for state in ("complete", "pruned", "failed")}
    print(f"study: {result.study} in {args.storage}")
    print(f"pruner: {args.pruner}")
    print(
        f"trials: {len(result.trials)} "
        f"({counts['complete']} complete, {counts['pruned']} pruned, {counts['failed']} failed)"
    )
    print(f"epochs trained by this run: {stats.epochs} of {stats.trials * args.epochs} without pruning")
    print(f"most trials open at once: {stats.most_open}")
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
