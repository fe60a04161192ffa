"""Population-based training finds a learning-rate schedule, which is then replayed.

Run it (needs scikit-learn for the data set: ``pip install hpt-async[examples]``)::

    python examples/pbt_schedule.py                        # 8 members, 30 epochs each
    python examples/pbt_schedule.py --population 4 --epochs 12

The model is a softmax regression on the digits data set (it ships with
scikit-learn, nothing is downloaded), trained epoch by epoch with minibatch
SGD written in numpy, so that its whole state is two arrays.  The ``pbt``
strategy trains a population of such models at once.  Every few epochs a
member among the worst copies the weights and hyperparameters of one among
the best and perturbs them (learning rate and L2 penalty times 0.8 or 1.2,
or drawn anew).  The result is a schedule: the learning rate the best model
was trained with, epoch by epoch.  The schedule (its lineage, through the
members it copied) is then replayed from scratch in a final run with the
``pbt-replay`` strategy.  The study minimises the validation cross-entropy.
"""

from __future__ import annotations

import argparse
from typing import Any

import anyio
import numpy as np

import hpt_async as hpt
from hpt_async.strategies.pbt import lineage

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-3, 3.0, log=True),
        "l2": hpt.Float(1e-6, 1e-1, log=True),
    }
)
BATCH = 32


def load_data(seed: int = 0) -> dict[str, np.ndarray]:
    """Digits, standardised, split 60/20/20 into train, validation and test."""
    from sklearn.datasets import load_digits

    x, y = load_digits(return_X_y=True)
    rng = np.random.default_rng(seed)
    order = rng.permutation(len(y))
    x, y = x[order].astype(np.float64), y[order]
    n = len(y)
    a, b = int(0.6 * n), int(0.8 * n)
    mean, std = x[:a].mean(axis=0), x[:a].std(axis=0) + 1e-8
    x = (x - mean) / std
    return {"x_train": x[:a], "y_train": y[:a], "x_valid": x[a:b], "y_valid": y[a:b], "x_test": x[b:], "y_test": y[b:]}


DATA = load_data()


def init_state(data: dict[str, np.ndarray] = DATA) -> dict[str, np.ndarray]:
    """Zero weights: every run starts from the same model."""
    return {"w": np.zeros((data["x_train"].shape[1], 10)), "b": np.zeros(10)}


def _softmax(z: np.ndarray) -> np.ndarray:
    z = z - z.max(axis=1, keepdims=True)
    e = np.exp(z)
    return e / e.sum(axis=1, keepdims=True)


def loss(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Mean cross-entropy of the model on ``(x, y)``."""
    p = _softmax(x @ state["w"] + state["b"])
    return float(-np.mean(np.log(p[np.arange(len(y)), y] + 1e-12)))


def accuracy(state: dict[str, np.ndarray], x: np.ndarray, y: np.ndarray) -> float:
    """Share of ``(x, y)`` classified right."""
    return float(np.mean(np.argmax(x @ state["w"] + state["b"], axis=1) == y))


def train_epoch(
    state: dict[str, np.ndarray], lr: float, l2: float, rng: np.random.Generator, data: dict[str, np.ndarray] = DATA
) -> dict[str, np.ndarray]:
    """One epoch of minibatch SGD at learning rate ``lr`` with L2 penalty ``l2``; returns the new state."""
    w, b = state["w"].copy(), state["b"].copy()
    x, y = data["x_train"], data["y_train"]
    order = rng.permutation(len(y))
    for i in range(0, len(y), BATCH):
        idx = order[i : i + BATCH]
        p = _softmax(x[idx] @ w + b)
        p[np.arange(len(idx)), y[idx]] -= 1.0
        grad_w = x[idx].T @ p / len(idx) + l2 * w
        grad_b = p.mean(axis=0)
        w -= lr * grad_w
        b -= lr * grad_b
        if not np.all(np.isfinite(w)):
            break
    return {"w": w, "b": b}


def make_objective(epochs: int, data: dict[str, np.ndarray] = DATA) -> Any:
    """The objective: ``epochs`` epochs, reporting the validation loss after each, checkpointing the weights."""

    async def objective(trial: hpt.Trial) -> float:
        state = await trial.restore() or init_state(data)
        rng = np.random.default_rng(1000 + trial.number)
        value = float("inf")
        for epoch in range(epochs):
            state = train_epoch(state, trial.params["lr"], trial.params["l2"], rng, data)
            value = loss(state, data["x_valid"], data["y_valid"])
            if not np.isfinite(value):
                value = 1e3  # diverged: the worst score, so that the member is replaced
            await trial.checkpoint(state)
            await trial.report(value, step=epoch)
            if trial.should_restore:  # exploited: the donor's weights, new hyperparameters in trial.params
                state = await trial.restore()
        trial.set_user_attr("test_loss", loss(state, data["x_test"], data["y_test"]))
        trial.set_user_attr("test_accuracy", accuracy(state, data["x_test"], data["y_test"]))
        return value

    return objective


async def tune(population: int, epochs: int, interval: int, seed: int) -> tuple[hpt.StudyResult, hpt.PBTStrategy]:
    """PBT with ``population`` members trained ``epochs`` epochs each."""
    strategy = hpt.PBTStrategy(perturbation_interval=interval, quantile=0.25)
    tuner = hpt.Tuner(
        make_objective(epochs),
        SPACE,
        strategy=strategy,
        concurrency=population,
        max_trials=population,
        loggers=[],
        seed=seed,
    )
    return await tuner.run(), strategy


async def replay(schedule: list[hpt.ScheduleEntry], epochs: int, seed: int) -> hpt.StudyResult:
    """One fresh run that follows ``schedule``."""
    tuner = hpt.Tuner(
        make_objective(epochs), SPACE, strategy=hpt.PBTReplayStrategy(schedule), max_trials=1, loggers=[], seed=seed
    )
    return await tuner.run()


def describe(schedule: list[hpt.ScheduleEntry]) -> str:
    """``lr`` over epochs, e.g. ``0: 0.52 | 8: 0.41 | 16: 0.33``."""
    parts = []
    for e in schedule:
        start = 0 if e.step is None else e.step + 1
        parts.append(f"{start}: {e.params['lr']:.3g}")
    return " | ".join(parts)


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run PBT, print the best member's schedule, replay it; return the figures."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--population", type=int, default=8)
    parser.add_argument("--epochs", type=int, default=30)
    parser.add_argument("--interval", type=int, default=4, help="perturbation_interval, in epochs")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)

    result, strategy = anyio.run(tune, args.population, args.epochs, args.interval, args.seed)
    best = result.best
    assert best is not None
    schedule = lineage(result, best.number)
    for number, step, donor, before, after in strategy.events:
        print(
            f"  epoch {step:3d}: trial {number} copies trial {donor}: "
            f"lr {before['lr']:.3g} -> {after['lr']:.3g}, l2 {before['l2']:.3g} -> {after['l2']:.3g}"
        )
    print(f"exploits: {len(strategy.events)}")
    print(f"best trial: {best.number}")
    print(f"best valid loss: {best.value:.4f}")
    print(f"best test accuracy: {best.user_attrs['test_accuracy']:.4f}")
    print(f"lr schedule (from epoch): {describe(schedule)}")
    replayed = anyio.run(replay, schedule, args.epochs, args.seed)
    final = replayed.trials[0]
    print(f"replay valid loss: {final.value:.4f}")
    print(f"replay test accuracy: {final.user_attrs['test_accuracy']:.4f}")
    return {"result": result, "schedule": schedule, "replay": replayed, "events": strategy.events}


if __name__ == "__main__":
    main()
