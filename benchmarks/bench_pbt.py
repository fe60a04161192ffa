"""Population-based training against random and grid search at equal compute, and Optuna alongside.

Part ``toy`` is the toy problem of the PBT paper (Jaderberg et al., 2017,
section 4.1): maximise Q(theta) = 1.2 - theta_0^2 - theta_1^2, but train
only by gradient ascent on the surrogate Q_hat(theta | h) = 1.2 - h_0
theta_0^2 - h_1 theta_1^2 with hyperparameters h in [0, 1]^2, from theta =
(0.9, 0.9).  A member takes ``--steps`` gradient steps (step size 0.02) and
reports Q(theta) after each.  Every method spends the same number of
gradient steps, population x steps:

* ``pbt``: ``strategy="pbt"`` with ``--population`` members at once
  (perturbation_interval 4, quantile 0.25, explore by x0.8/x1.2 or
  resampling with probability 0.25), h drawn at random;
* ``random``: ``strategy="random"``, ``--population`` trials of ``--steps``;
* ``grid``: ``strategy="grid"`` over h with sqrt(population) points per
  axis (only for a square population: 4 gives h in {0, 1}^2);
* with ``--population 2``, also the paper's own setting: both PBT and grid
  search start from h = (1, 0) and h = (0, 1).

A method's score is the best Q(theta) reached by any member at the end.
The exploit/explore trace of the first seed's PBT run is printed.

Part ``real`` trains the softmax regression of ``examples/pbt_schedule.py``
(digits, minibatch SGD in numpy, learning rate and L2 penalty searched on a
log scale) for ``--epochs`` epochs per member and compares, at equal
compute (population x epochs), PBT with random search in hpt-async and
Optuna 5's RandomSampler and TPESampler (``--population`` trials each).
The score is the best final validation cross-entropy (lower is better);
the test accuracy of that member is shown too.

    python benchmarks/bench_pbt.py --part toy --seeds 0 1 2 3 4 5 6 7 8 9
    python benchmarks/bench_pbt.py --part toy --population 2 --seeds 0 1 2 3 4 5 6 7 8 9
    python benchmarks/bench_pbt.py --part real --seeds 0 1 2 3 4
    python benchmarks/bench_pbt.py --quick                  # smoke run of both parts
"""

from __future__ import annotations

import argparse
import importlib.util
import os
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import anyio
import numpy as np

import hpt_async as hpt

ROOT = Path(__file__).resolve().parent.parent
TOY_SPACE = {"h0": hpt.Float(0.0, 1.0), "h1": hpt.Float(0.0, 1.0)}
TOY_RATE = 0.02


def q_true(theta: np.ndarray) -> float:
    """Q(theta) = 1.2 - |theta|^2, the objective really maximised."""
    return 1.2 - float(theta @ theta)


def toy_objective(steps: int) -> Any:
    """Gradient ascent on Q_hat(theta | h) for ``steps`` steps, reporting Q(theta)."""

    async def objective(trial: hpt.Trial) -> float:
        state = await trial.restore()
        theta = np.array([0.9, 0.9]) if state is None else state["theta"]
        for step in range(steps):
            h = np.array([trial.params["h0"], trial.params["h1"]])
            theta = theta + TOY_RATE * (-2.0 * h * theta)  # the gradient of Q_hat
            await trial.checkpoint({"theta": theta})
            await trial.report(q_true(theta), step=step)
            if trial.should_restore:
                theta = (await trial.restore())["theta"]
        return q_true(theta)

    return objective


async def run_toy(method: str, population: int, steps: int, seed: int) -> tuple[float, Any]:
    """Best Q of one method; the PBT strategy too (for its trace)."""
    strategy: Any = "random"
    if method.startswith("pbt"):
        strategy = hpt.PBTStrategy(perturbation_interval=4, quantile=0.25)
    elif method == "grid":
        strategy = hpt.GridStrategy(points=round(population**0.5))
    concurrency = population if method.startswith("pbt") else 1
    tuner = hpt.Tuner(
        toy_objective(steps),
        TOY_SPACE,
        strategy=strategy,
        direction="maximize",
        concurrency=concurrency,
        max_trials=population,
        loggers=[],
        seed=seed,
    )
    if method.endswith("-paper"):
        tuner.enqueue({"h0": 1.0, "h1": 0.0})
        tuner.enqueue({"h0": 0.0, "h1": 1.0})
    result = await tuner.run()
    assert result.best is not None and result.best.value is not None
    assert sum(len(t.reports) for t in result.trials) == population * steps  # equal compute
    return result.best.value, strategy


def part_toy(args: argparse.Namespace) -> None:
    methods = ["pbt", "random"]
    if round(args.population**0.5) ** 2 == args.population and args.population > 1:
        methods.append("grid")
    if args.population == 2:
        methods += ["pbt-paper", "grid-paper"]
    steps = args.steps
    print(f"toy: population {args.population}, {steps} steps each, step size {TOY_RATE}, seeds {args.seeds}")
    bound = q_true(np.full(2, 0.9 * (1 - 2 * TOY_RATE) ** steps))
    print(f"best possible after {steps} steps (h = (1, 1) throughout): {bound:.4f}")
    scores: dict[str, list[float]] = {m: [] for m in methods}
    trace: Any = None
    t0 = time.perf_counter()
    for seed in args.seeds:
        for method in methods:
            value, strategy = anyio.run(run_toy, method, args.population, steps, seed)
            scores[method].append(value)
            if method == "pbt" and trace is None:
                trace = strategy
    print(f"{'method':<12} {'mean best Q':>12} {'min':>8} {'max':>8}   per seed")
    for method in methods:
        v = scores[method]
        per = " ".join(f"{x:.4f}" for x in v)
        print(f"{method:<12} {statistics.mean(v):12.4f} {min(v):8.4f} {max(v):8.4f}   {per}")
    for other in methods[1:]:
        wins = sum(p > o for p, o in zip(scores["pbt"], scores[other], strict=True))
        print(f"pbt better than {other}: {wins}/{len(args.seeds)} seeds")
    print(f"wall time {time.perf_counter() - t0:.1f} s")
    if trace is not None:
        print(f"\nexploit/explore trace, pbt, seed {args.seeds[0]} (trial, step, donor, h before -> h after):")
        for number, step, donor, before, after in trace.events:
            print(
                f"  step {step:3d}: trial {number} <- trial {donor}: "
                f"h ({before['h0']:.3f}, {before['h1']:.3f}) -> ({after['h0']:.3f}, {after['h1']:.3f})"
            )


# -- part real ------------------------------------------------------------------------------------


def load_example() -> Any:
    spec = importlib.util.spec_from_file_location("pbt_schedule", ROOT / "examples" / "pbt_schedule.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["pbt_schedule"] = module
    spec.loader.exec_module(module)
    return module


async def run_hpt(ex: Any, strategy: str, population: int, epochs: int, seed: int) -> tuple[float, float]:
    strat: Any = hpt.PBTStrategy(perturbation_interval=4, quantile=0.25) if strategy == "pbt" else strategy
    tuner = hpt.Tuner(
        ex.make_objective(epochs),
        ex.SPACE,
        strategy=strat,
        concurrency=population if strategy == "pbt" else 1,
        max_trials=population,
        loggers=[],
        seed=seed,
    )
    result = await tuner.run()
    assert sum(len(t.reports) for t in result.trials) == population * epochs  # equal compute
    best = result.best
    assert best is not None and best.value is not None
    return best.value, best.user_attrs["test_accuracy"]


def run_optuna(ex: Any, sampler_name: str, population: int, epochs: int, seed: int) -> tuple[float, float]:
    import optuna

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(seed=seed) if sampler_name == "tpe" else optuna.samplers.RandomSampler(seed)
    study = optuna.create_study(direction="minimize", sampler=sampler)

    def objective(trial: Any) -> float:
        lr = trial.suggest_float("lr", 1e-3, 3.0, log=True)
        l2 = trial.suggest_float("l2", 1e-6, 1e-1, log=True)
        state = ex.init_state()
        rng = np.random.default_rng(1000 + trial.number)
        value = float("inf")
        for _ in range(epochs):
            state = ex.train_epoch(state, lr, l2, rng)
            value = ex.loss(state, ex.DATA["x_valid"], ex.DATA["y_valid"])
            if not np.isfinite(value):
                value = 1e3
        trial.set_user_attr("test_accuracy", ex.accuracy(state, ex.DATA["x_test"], ex.DATA["y_test"]))
        return value

    study.optimize(objective, n_trials=population)
    return study.best_value, study.best_trial.user_attrs["test_accuracy"]


def part_real(args: argparse.Namespace) -> None:
    ex = load_example()
    population, epochs = args.population, args.epochs
    methods = ["hpt pbt", "hpt random", "optuna random", "optuna tpe"]
    print(f"real: softmax regression on digits, population {population}, {epochs} epochs each, seeds {args.seeds}")
    losses: dict[str, list[float]] = {m: [] for m in methods}
    accs: dict[str, list[float]] = {m: [] for m in methods}
    t0 = time.perf_counter()
    for seed in args.seeds:
        for method in methods:
            lib, name = method.split()
            if lib == "hpt":
                value, acc = anyio.run(run_hpt, ex, name, population, epochs, seed)
            else:
                value, acc = run_optuna(ex, name, population, epochs, seed)
            losses[method].append(value)
            accs[method].append(acc)
    print(f"{'method':<14} {'mean best valid loss':>20} {'/ random':>9} {'test acc':>9}   per seed (valid loss)")
    base = statistics.mean(losses["hpt random"])
    for method in methods:
        v = losses[method]
        per = " ".join(f"{x:.4f}" for x in v)
        print(
            f"{method:<14} {statistics.mean(v):20.4f} {statistics.mean(v) / base:9.3f} "
            f"{statistics.mean(accs[method]):9.4f}   {per}"
        )
    for other in methods[1:]:
        wins = sum(p < o for p, o in zip(losses["hpt pbt"], losses[other], strict=True))
        print(f"pbt better than {other}: {wins}/{len(args.seeds)} seeds")
    print(f"wall time {time.perf_counter() - t0:.1f} s")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--part", choices=["toy", "real", "both"], default="both")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4])
    parser.add_argument("--population", type=int, default=None, help="default: 4 (toy), 8 (real)")
    parser.add_argument("--steps", type=int, default=40, help="toy: gradient steps per member")
    parser.add_argument("--epochs", type=int, default=30, help="real: epochs per member")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, short runs")
    args = parser.parse_args(argv)
    if args.quick:
        args.seeds, args.steps, args.epochs = args.seeds[:2], 12, 8
    print(f"load average: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    population = args.population
    if args.part in ("toy", "both"):
        args.population = population or 4
        part_toy(args)
    if args.part in ("real", "both"):
        args.population = population or 8
        print()
        part_real(args)


if __name__ == "__main__":
    main()
