"""Quickstart: tune a (simulated) neural network with hpt-async.

Run it::

    python examples/quickstart.py                 # 200 trials, 16 at once, seed 0, saved in hpt.db
    python examples/quickstart.py --trials 50 --concurrency 4 --seed 1
    python examples/quickstart.py --study mine    # run it again later: the study resumes
    hpt-async studies                             # what hpt.db holds
    hpt-async best mine

Every trial is saved in the SQLite file ``hpt.db`` (``--storage`` picks
another) as it ends.  Each run is a new study unless ``--study`` names one:
running the same study again continues it, up to ``--trials`` trials in all.

The "model" here is a cheap synthetic stand-in for real training: its loss
after each epoch is a deterministic function of the hyperparameters and the
epoch, plus a little noise fixed by the trial number.  Every epoch awaits a
few milliseconds, as a real training step would await a GPU or a remote
worker, so the tuner has something to overlap.  The best configuration is
known in advance, so you can see how close random search gets::

    lr = 3e-3, layers = 3, units_3 = 128, optimizer = "adam"  ->  loss about 0.05
"""

from __future__ import annotations

import argparse
import math
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

import anyio

import hpt_async as hpt

# The search space.  ``units_3`` (the width of the third layer) exists only
# when there is a third layer, ``units_4`` only when there is a fourth: a
# trial whose ``layers`` is 1 or 2 has neither key in ``trial.params``.
SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-5, 1e-1, log=True),
        "layers": hpt.Int(1, 4),
        "optimizer": hpt.Choice(["adam", "sgd"]),
        "units_3": hpt.Int(16, 256, log=True, when={"layers": [3, 4]}),
        "units_4": hpt.Int(16, 256, log=True, when={"layers": 4}),
    }
)

BEST_LR = 3e-3
BEST_LAYERS = 3
BEST_UNITS = 128


def loss_floor(params: Mapping[str, Any]) -> float:
    """The loss a configuration converges to: 0.05 at the optimum, more elsewhere."""
    floor = 0.05
    floor += 0.04 * (math.log10(params["lr"]) - math.log10(BEST_LR)) ** 2  # too small or too large a step
    floor += 0.03 * abs(params["layers"] - BEST_LAYERS)  # too shallow or too deep
    for key in ("units_3", "units_4"):  # only the layers that exist count
        if key in params:
            floor += 0.02 * math.log2(params[key] / BEST_UNITS) ** 2
    if params["optimizer"] == "sgd":
        floor += 0.02
    return floor


def synthetic_loss(params: Mapping[str, Any], epoch: int, noise: random.Random) -> float:
    """Validation loss after ``epoch`` (0-based): decays from 1.0 toward :func:`loss_floor`."""
    floor = loss_floor(params)
    # A larger learning rate learns faster (the floor above punishes one that is too large).
    speed = 0.1 + 0.3 * min(1.0, params["lr"] / BEST_LR)
    return floor + (1.0 - floor) * math.exp(-speed * (epoch + 1)) + noise.uniform(0.0, 0.002)


def make_objective(epochs: int, epoch_seconds: float) -> Callable[[hpt.Trial], Awaitable[float]]:
    """Build the objective: an ``async def`` that "trains" for ``epochs`` epochs."""

    async def objective(trial: hpt.Trial) -> float:
        # Noise drawn from the trial number: the same trial always gives the same curve.
        noise = random.Random(trial.number)
        loss = math.inf
        for epoch in range(epochs):
            await anyio.sleep(epoch_seconds)  # stands in for one epoch of real work
            loss = synthetic_loss(trial.params, epoch, noise)
            # Report the learning curve; with a pruner, this is where a bad trial is stopped.
            await trial.report(loss, step=epoch)
        return loss  # the value the tuner minimises

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options (all small, so the tests can run this quickly)."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=200, help="number of trials (default 200)")
    parser.add_argument("--concurrency", type=int, default=16, help="trials run at once (default 16)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    parser.add_argument("--epochs", type=int, default=20, help="epochs per trial (default 20)")
    parser.add_argument("--epoch-seconds", type=float, default=0.005, help="simulated time per epoch")
    parser.add_argument("--storage", default="sqlite:///hpt.db", help="storage URL (default sqlite:///hpt.db)")
    parser.add_argument("--study", default=None, help="study name (default: a new study named after the time)")
    args = parser.parse_args(argv)
    if args.study is None:
        args.study = "quickstart-" + time.strftime("%Y%m%d-%H%M%S-") + uuid.uuid4().hex[:4]
    return args


async def tune(args: argparse.Namespace) -> hpt.StudyResult:
    """Run the study and return its result."""
    tuner = hpt.Tuner(
        make_objective(args.epochs, args.epoch_seconds),
        SPACE,
        direction="minimize",
        strategy="random",
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        storage=args.storage,  # every trial is committed to the SQLite file as it ends
        study=args.study,
    )  # progress goes to stderr through the default console logger
    return await tuner.run()


def print_summary(result: hpt.StudyResult, top: int = 5) -> None:
    """Print the best few trials, then the best configuration and value."""
    complete = sorted(
        (t for t in result.trials if t.state is hpt.TrialState.COMPLETE),
        key=lambda t: t.value,  # type: ignore[arg-type,return-value]
    )
    print(f"trials: {len(result.trials)} ({len(complete)} complete, {result.count('failed')} failed)")
    print(f"top {min(top, len(complete))} of {len(complete)}:")
    for t in complete[:top]:
        shown = ", ".join(f"{k}={v:.3g}" if isinstance(v, float) else f"{k}={v}" for k, v in t.params.items())
        print(f"  #{t.number:<4} loss {t.value:.4f}  {shown}")
    print(f"known optimum: lr={BEST_LR}, layers={BEST_LAYERS}, units_3={BEST_UNITS}, optimizer=adam, loss about 0.05")
    if result.best is None:
        print("best params: None")
        print("best value: None")
        return
    # The hpt-async command sits beside this Python (in its virtual environment's bin/).
    command = Path(sys.executable).with_name("hpt-async")
    cli = str(command) if command.exists() else "hpt-async"
    print(f"study {result.study!r} is saved; see it again with: {cli} best {result.study}")
    print(f"best trial: {result.best.number}")
    print(f"best params: {dict(result.best.params)}")
    print(f"best value: {result.best.value}")


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print the summary; return the study result."""
    args = parse_args(argv)
    result = anyio.run(tune, args)
    print_summary(result)
    return result


if __name__ == "__main__":
    main()
