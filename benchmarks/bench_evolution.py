"""Evolutionary architecture search: hpt-async's ``evolution`` against random search and Optuna's TPE.

The task: choose the architecture and training settings of a scikit-learn
``MLPClassifier`` on the digits data (it ships with scikit-learn), scored by
accuracy on a fixed validation split.  The space is conditional:
``n_layers`` (1-4) says how many hidden layers there are, and the width of
layer ``i`` (``units_i``, 4-256 on a log scale) exists only when the
network has at least ``i`` layers.  ``activation`` (relu, tanh, logistic),
``learning_rate_init``, ``alpha`` (the L2 penalty) and ``batch_size``
complete it.  scikit-learn's MLP takes one activation for all its hidden
layers, so the activation is a setting of the network, not of each layer: a
per-layer activation the model ignored would only add dead parameters.

Every fit is cheap and deterministic: 30 epochs, no early stopping,
``random_state=0``, the same split for every method.  So a configuration
has one score, whichever method proposes it, and the results of repeated
configurations are cached (they still count as trials).

Subcommands (``--help`` on each lists its options):

* ``run``: each method for each seed, ``--trials`` sequential trials; one
  JSON line per run appended to ``--out``.  The cache is shared by all the
  runs of one command, so a run's wall time says little (a configuration
  another method already fitted costs nothing); ``new_fits`` counts the
  fits a run paid for.  Methods: ``hpt-evolution``,
  ``hpt-random``, ``optuna-tpe`` (TPESampler with its defaults),
  ``optuna-random``.  ``hpt-evolution:population=20,sample_size=5`` runs
  the strategy with options (``scale`` may be given too).
* ``report``: mean and median best validation accuracy per method with
  their spread, the per-seed table, and the best-so-far at a few budgets,
  as Markdown.
"""

from __future__ import annotations

import argparse
import json
import statistics
import time
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import anyio
import numpy as np
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.preprocessing import StandardScaler

import hpt_async as hpt

METHODS = ("hpt-evolution", "hpt-random", "optuna-tpe", "optuna-random")
MAX_LAYERS = 4
EPOCHS = 30

SPACE = hpt.Space(
    {
        "n_layers": hpt.Int(1, MAX_LAYERS),
        **{
            f"units_{i}": hpt.Int(4, 256, log=True, when={"n_layers": list(range(i, MAX_LAYERS + 1))})
            for i in range(1, MAX_LAYERS + 1)
        },
        "activation": hpt.Choice(["relu", "tanh", "logistic"]),
        "learning_rate_init": hpt.Float(1e-4, 1e-1, log=True),
        "alpha": hpt.Float(1e-6, 1e-1, log=True),
        "batch_size": hpt.Choice([32, 64, 128, 256]),
    }
)


def load_data() -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """The digits, split half and half (stratified, fixed), standardised on the training half."""
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x, y, test_size=0.5, stratify=y, random_state=0)
    scaler = StandardScaler().fit(x_train)
    return scaler.transform(x_train), scaler.transform(x_valid), y_train, y_valid


X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = load_data()


class Objective:
    """Validation accuracy of a configuration, with a cache of configurations already fitted."""

    def __init__(self) -> None:
        self.cache: dict[tuple[tuple[str, Any], ...], float] = {}
        self.fits = 0

    def __call__(self, params: Mapping[str, Any]) -> float:
        key = tuple(sorted(params.items()))
        if key not in self.cache:
            self.cache[key] = self.fit(params)
            self.fits += 1
        return self.cache[key]

    @staticmethod
    def fit(params: Mapping[str, Any]) -> float:
        n = int(params["n_layers"])
        model = MLPClassifier(
            hidden_layer_sizes=tuple(int(params[f"units_{i}"]) for i in range(1, n + 1)),
            activation=str(params["activation"]),
            learning_rate_init=float(params["learning_rate_init"]),
            alpha=float(params["alpha"]),
            batch_size=int(params["batch_size"]),
            max_iter=EPOCHS,
            early_stopping=False,
            random_state=0,
        )
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            model.fit(X_TRAIN, Y_TRAIN)
        return float(model.score(X_VALID, Y_VALID))


# -- the methods ---------------------------------------------------------------------------------


def parse_method(spec: str) -> tuple[str, dict[str, Any]]:
    """``hpt-evolution:population=20,sample_size=5`` -> (``hpt-evolution``, options)."""
    name, _, rest = spec.partition(":")
    if name not in METHODS:
        raise argparse.ArgumentTypeError(f"unknown method {name!r}; one of {', '.join(METHODS)}")
    options: dict[str, Any] = {}
    for item in filter(None, rest.split(",")):
        key, _, value = item.partition("=")
        if name != "hpt-evolution" or key not in ("population", "sample_size", "scale"):
            raise argparse.ArgumentTypeError(f"option {key!r} does not apply to {name}")
        options[key] = None if value == "None" else (float(value) if key == "scale" else int(value))
    return name, options


def run_hpt(
    name: str, options: dict[str, Any], seed: int, trials: int, objective: Objective
) -> list[tuple[dict[str, Any], float]]:
    """Configurations and accuracies of a sequential hpt-async run, in trial order."""
    strategy: Any = hpt.EvolutionStrategy(**options) if name == "hpt-evolution" else "random"

    async def evaluate(trial: hpt.Trial) -> float:
        return objective(trial.params)

    async def main() -> hpt.StudyResult:
        tuner = hpt.Tuner(
            evaluate, SPACE, direction="maximize", strategy=strategy, seed=seed, max_trials=trials, loggers=[]
        )
        return await tuner.run()

    result = anyio.run(main)
    return [(dict(t.params), t.value) for t in sorted(result.trials, key=lambda t: t.number) if t.value is not None]


def optuna_params(trial: Any) -> dict[str, Any]:
    """The same conditional space through Optuna's define-by-run API."""
    n = trial.suggest_int("n_layers", 1, MAX_LAYERS)
    params: dict[str, Any] = {"n_layers": n}
    for i in range(1, n + 1):
        params[f"units_{i}"] = trial.suggest_int(f"units_{i}", 4, 256, log=True)
    params["activation"] = trial.suggest_categorical("activation", ["relu", "tanh", "logistic"])
    params["learning_rate_init"] = trial.suggest_float("learning_rate_init", 1e-4, 1e-1, log=True)
    params["alpha"] = trial.suggest_float("alpha", 1e-6, 1e-1, log=True)
    params["batch_size"] = trial.suggest_categorical("batch_size", [32, 64, 128, 256])
    return params


def run_optuna(name: str, seed: int, trials: int, objective: Objective) -> list[tuple[dict[str, Any], float]]:
    """Configurations and accuracies of a sequential Optuna run, in trial order."""
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    sampler = optuna.samplers.TPESampler(seed=seed) if name == "optuna-tpe" else optuna.samplers.RandomSampler(seed)
    study = optuna.create_study(direction="maximize", sampler=sampler)
    study.optimize(lambda t: objective(optuna_params(t)), n_trials=trials)
    return [(t.params, t.value) for t in study.trials if t.value is not None]


def label(name: str, options: Mapping[str, Any]) -> str:
    """How a method and its options appear in the results."""
    return name + (":" + ",".join(f"{k}={v}" for k, v in options.items()) if options else "")


def cmd_run(args: argparse.Namespace) -> None:
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    objective = Objective()
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for spec in args.methods:
            name, options = parse_method(spec)
            fits_before = objective.fits
            start = time.perf_counter()
            if name.startswith("hpt"):
                history = run_hpt(name, options, seed, args.trials, objective)
            else:
                history = run_optuna(name, seed, args.trials, objective)
            values = [v for _, v in history]
            elapsed = time.perf_counter() - start
            line = {
                "method": label(name, options) + args.tag,
                "seed": seed,
                "trials": args.trials,
                "best": max(values),
                "best_params": max(history, key=lambda h: h[1])[0],
                "distinct": len({json.dumps(p, sort_keys=True) for p, _ in history}),
                "new_fits": objective.fits - fits_before,
                "seconds": elapsed,
                "values": values,
            }
            with out.open("a") as fh:
                fh.write(json.dumps(line) + "\n")
            print(f"seed {seed:3d} {line['method']:40s} best {max(values):.4f}  {elapsed:6.1f} s", flush=True)


# -- the report ----------------------------------------------------------------------------------


def best_at(values: list[float], n: int) -> float:
    """The best accuracy among the first ``n`` trials."""
    return max(values[:n])


def cmd_report(args: argparse.Namespace) -> None:
    rows: list[dict[str, Any]] = []
    for path in args.files:
        with open(path) as fh:
            rows += [json.loads(line) for line in fh if line.strip()]
    if args.methods:
        rows = [r for r in rows if r["method"] in args.methods]
    complete = list(dict.fromkeys(r["method"] for r in rows))
    # Only the seeds every method has run, so that each comparison is paired seed by seed.
    seeds = sorted(set.intersection(*({r["seed"] for r in rows if r["method"] == m} for m in complete)))
    rows = [r for r in rows if r["seed"] in seeds]
    trials = min(r["trials"] for r in rows)
    best = {(r["method"], r["seed"]): best_at(r["values"], trials) for r in rows}

    print(f"{len(seeds)} seeds ({', '.join(map(str, seeds))}), {trials} trials each\n")
    print("| method | mean ± sd | median [q1, q3] | min | mean best error | error / optuna-tpe |")
    print("| --- | --- | --- | --- | --- | --- |")
    tpe_error = None
    if "optuna-tpe" in complete:
        tpe_error = statistics.mean(1 - best[("optuna-tpe", s)] for s in seeds)
    for m in complete:
        accs = [best[(m, s)] for s in seeds]
        q1, q3 = np.percentile(accs, [25, 75])
        error = statistics.mean(1 - a for a in accs)
        ratio = f"{error / tpe_error:.2f}" if tpe_error else "-"
        sd = statistics.stdev(accs) if len(accs) > 1 else 0.0
        print(
            f"| {m} | {statistics.mean(accs):.4f} ± {sd:.4f} | {statistics.median(accs):.4f} "
            f"[{q1:.4f}, {q3:.4f}] | {min(accs):.4f} | {error:.4f} | {ratio} |"
        )
    print()
    print("Per seed (best validation accuracy):\n")
    print("| seed | " + " | ".join(complete) + " |")
    print("| --- | " + " | ".join("---" for _ in complete) + " |")
    for s in seeds:
        cells = [best[(m, s)] for m in complete]
        top = max(cells)
        print(f"| {s} | " + " | ".join(f"**{c:.4f}**" if c == top else f"{c:.4f}" for c in cells) + " |")
    print()
    marks = sorted({trials // 4, trials // 2, 3 * trials // 4, trials})
    print("Mean best-so-far after n trials:\n")
    print("| method | " + " | ".join(f"n={n}" for n in marks) + " | distinct configurations |")
    print("| --- | " + " | ".join("---" for _ in marks) + " | --- |")
    for m in complete:
        mine = [r for r in rows if r["method"] == m]
        cells = [statistics.mean(best_at(r["values"], n) for r in mine) for n in marks]
        distinct = statistics.mean(r["distinct"] for r in mine)
        print(f"| {m} | " + " | ".join(f"{c:.4f}" for c in cells) + f" | {distinct:.1f} |")
    print()
    evolution = [m for m in complete if m.startswith("hpt-evolution")]
    for m in evolution:
        for other in ("hpt-random", "optuna-tpe", "optuna-random"):
            if other not in complete:
                continue
            mine = statistics.mean(best[(m, s)] for s in seeds)
            theirs = statistics.mean(best[(other, s)] for s in seeds)
            ahead = sum(best[(m, s)] > best[(other, s)] for s in seeds)
            tied = sum(best[(m, s)] == best[(other, s)] for s in seeds)
            verdict = "at least" if mine >= theirs else "BELOW"
            diffs = [best[(m, s)] - best[(other, s)] for s in seeds]
            se = statistics.stdev(diffs) / len(diffs) ** 0.5 if len(diffs) > 1 else float("nan")
            print(
                f"- {m} mean {mine:.4f} is {verdict} {other}'s {theirs:.4f}: paired difference "
                f"{statistics.mean(diffs):+.4f} ± {se:.4f} (standard error); ahead on {ahead}, tied on {tied}, "
                f"behind on {len(seeds) - ahead - tied} of {len(seeds)} seeds"
            )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)

    r = sub.add_parser("run", help="best validation accuracy per method and seed (JSON lines)")
    r.add_argument("--methods", nargs="+", default=list(METHODS))
    r.add_argument("--seeds", type=int, default=10)
    r.add_argument("--first-seed", type=int, default=0)
    r.add_argument("--trials", type=int, default=80)
    r.add_argument("--out", default="bench-results/evolution.jsonl")
    r.add_argument("--tag", default="", help="appended to the method names in the results (e.g. a version)")
    r.set_defaults(func=cmd_run)

    p = sub.add_parser("report", help="Markdown tables from run results")
    p.add_argument("files", nargs="+")
    p.add_argument("--methods", nargs="+", help="only these methods (as named in the results)")
    p.set_defaults(func=cmd_report)

    args = parser.parse_args(argv)
    if args.func is cmd_run:
        for spec in args.methods:
            parse_method(spec)  # fail before any work
        if args.trials < 1:
            parser.error("--trials must be >= 1")
    args.func(args)


if __name__ == "__main__":
    main()
