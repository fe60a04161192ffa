"""Several objectives: hpt-async's search and early stopping against Optuna's, by hypervolume.

Subcommands (``--help`` on each lists its options):

* ``synthetic``: ZDT1, ZDT2 and ZDT3 (two objectives, d = 6), DTLZ2 (three
  objectives, d = 6), Fonseca-Fleming (d = 2), Kursawe (d = 3), ZDT1 and
  DTLZ2 at d = 10, and DTLZ2 with two objectives (d = 4), minimised.
  Methods: ``hpt-random``, ``hpt-evolution`` (NSGA-II selection),
  ``hpt-tpe`` (multi-objective TPE), ``hpt-bayes`` (one GP per objective,
  log EHVI), ``hpt-auto``, Optuna's ``NSGAIISampler``, ``TPESampler``,
  ``GPSampler`` (``optuna-gp``: log EHVI; needs torch; slow, so choose
  ``--methods`` and ``--trials`` to fit), all with their defaults, and
  ``RandomSampler``; each run has ``--trials`` sequential trials.  The
  table ends with each method's wall time per trial relative to the first
  method's (whole runs, objective included; it is cheap).  The
  figure is the hypervolume of each run's final front against a fixed
  reference point per problem (see ``PROBLEMS``), computed by
  ``hpt.hypervolume`` (tested against Optuna's own).  Larger is better.
* ``mlp``: a real model, a scikit-learn ``MLPClassifier`` on the digits data
  (ships with scikit-learn), two objectives: validation error and
  ``log10`` of the number of weights, both minimised (reference point (1.0,
  log10 of the largest network of the space)).  A full training is
  ``--epochs`` epochs of ``partial_fit``; a configuration's learning curve
  is deterministic (``random_state=0``) and cached, and every method is
  charged the epochs it asks for.  Methods: ``full-random``: random search,
  every trial trained in full, ``--trials`` trials (the budget B = trials x
  epochs); ``asha-random``: random search with the ``asha`` pruner (MO-ASHA,
  ``eta=3``, rungs at 1, 3, 9, ... epochs, the last at ``--epochs``),
  stopped once it has used B/4 epochs;
  ``optuna-nsga2``: Optuna's ``NSGAIISampler``, every trial in full, B/4
  epochs (so a quarter of the trials); ``asha-tpe``: as ``asha-random`` with
  ``tpe``; ``full-tpe``: ``tpe``, every trial in full, B/4 epochs.  ``--eta``
  and ``--min-resource`` set MO-ASHA's reduction factor and first rung,
  ``--mode`` its mode (``promotion``: a paused trial checkpoints its epoch
  count and, resumed, trains on, charged only the epochs it adds),
  ``--pruner hyperband`` runs the ``asha-*`` methods with Hyperband's
  brackets instead (``--brackets`` of them; default one per rung).  The
  front of a run is made of its trials trained in full; a second table
  counts every trained model (a pruned or paused trial's network at its
  last report is a model one could keep).  Then every pair of methods,
  paired by seed, with a two-sided sign test and a paired t-test.  The networks are trained
  with one BLAS thread.  Search at the full budget, every trial trained in
  full, ``--trials`` trials each: ``full-bayes`` (``bayes``),
  ``full-optuna-gp``, ``full-optuna-tpe``, ``full-optuna-nsga2`` (Optuna's
  GPSampler, TPESampler, NSGAIISampler); with ``full-random`` first, the
  table compares them at equal budgets.

Each run appends one JSON line to ``--out``; the table printed at the end
covers the runs of that command.
"""

from __future__ import annotations

import argparse
import json
import math
import statistics
import time
import warnings
from collections.abc import Callable, Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import Any

import anyio
import numpy as np

import hpt_async as hpt

# -- synthetic problems -------------------------------------------------------------------------


def _zdt(kind: int) -> Callable[[Sequence[float]], tuple[float, ...]]:
    def f(x: Sequence[float]) -> tuple[float, ...]:
        f1 = x[0]
        g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
        if kind == 1:
            h = 1 - math.sqrt(f1 / g)
        elif kind == 2:
            h = 1 - (f1 / g) ** 2
        else:
            h = 1 - math.sqrt(f1 / g) - (f1 / g) * math.sin(10 * math.pi * f1)
        return f1, g * h

    return f


def _dtlz2(x: Sequence[float]) -> tuple[float, ...]:
    g = sum((xi - 0.5) ** 2 for xi in x[2:])
    a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
    return (
        (1 + g) * math.cos(a) * math.cos(b),
        (1 + g) * math.cos(a) * math.sin(b),
        (1 + g) * math.sin(a),
    )


def _fonseca(x: Sequence[float]) -> tuple[float, ...]:
    # Fonseca and Fleming (1995), on [-4, 4]^d.
    z = [8.0 * xi - 4.0 for xi in x]
    s = 1.0 / math.sqrt(len(z))
    return (
        1.0 - math.exp(-sum((zi - s) ** 2 for zi in z)),
        1.0 - math.exp(-sum((zi + s) ** 2 for zi in z)),
    )


def _kursawe(x: Sequence[float]) -> tuple[float, ...]:
    # Kursawe (1991), on [-5, 5]^d.
    z = [10.0 * xi - 5.0 for xi in x]
    f1 = sum(-10.0 * math.exp(-0.2 * math.sqrt(a * a + b * b)) for a, b in pairwise(z))
    f2 = sum(abs(zi) ** 0.8 + 5.0 * math.sin(zi**3) for zi in z)
    return f1, f2


def _dtlz2_2(x: Sequence[float]) -> tuple[float, ...]:
    # DTLZ2 with two objectives.
    g = sum((xi - 0.5) ** 2 for xi in x[1:])
    a = x[0] * math.pi / 2
    return (1 + g) * math.cos(a), (1 + g) * math.sin(a)


# name -> (function, dimension, number of objectives, reference point)
PROBLEMS: dict[str, tuple[Callable[[Sequence[float]], tuple[float, ...]], int, int, tuple[float, ...]]] = {
    "zdt1": (_zdt(1), 6, 2, (1.1, 11.0)),
    "zdt2": (_zdt(2), 6, 2, (1.1, 11.0)),
    "zdt3": (_zdt(3), 6, 2, (1.1, 11.0)),
    "dtlz2": (_dtlz2, 6, 3, (2.5, 2.5, 2.5)),
    "fonseca-2": (_fonseca, 2, 2, (1.1, 1.1)),
    "kursawe-3": (_kursawe, 3, 2, (-4.0, 30.0)),
    "zdt1-10": (_zdt(1), 10, 2, (1.1, 11.0)),
    "dtlz2-10": (_dtlz2, 10, 3, (2.5, 2.5, 2.5)),
    "dtlz2-2obj-4": (_dtlz2_2, 4, 2, (2.5, 2.5)),
}
SYNTHETIC_METHODS = (
    "hpt-random",
    "hpt-evolution",
    "hpt-tpe",
    "hpt-bayes",
    "hpt-auto",
    "optuna-nsga2",
    "optuna-tpe",
    "optuna-random",
    "optuna-gp",
)


def run_synthetic(
    problem: str, method: str, seed: int, trials: int, options: Mapping[str, Any] | None = None
) -> list[tuple[float, ...]]:
    """Every trial's objective values of one run, in order (``options``: the hpt-async strategy's, if any)."""
    f, dim, m, _ = PROBLEMS[problem]
    if method.startswith("hpt"):
        space = {f"x{i}": hpt.Float(0.0, 1.0) for i in range(dim)}

        async def objective(trial: hpt.Trial) -> tuple[float, ...]:
            return f([trial.params[f"x{i}"] for i in range(dim)])

        strategy: Any = method.removeprefix("hpt-")
        if options:
            strategy = {"name": strategy, **options}
        tuner = hpt.Tuner(objective, space, directions=["minimize"] * m, strategy=strategy, max_trials=trials,
                          seed=seed, loggers=[])  # fmt: skip
        result = anyio.run(tuner.run)
        return [t.values for t in result.trials if t.values is not None]
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    sampler = {
        "optuna-nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "optuna-tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "optuna-random": lambda: optuna.samplers.RandomSampler(seed=seed),
        "optuna-gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }[method]()
    study = optuna.create_study(directions=["minimize"] * m, sampler=sampler)
    study.optimize(lambda t: f([t.suggest_float(f"x{i}", 0.0, 1.0) for i in range(dim)]), n_trials=trials)
    return [tuple(t.values) for t in study.trials if t.values is not None]


def cmd_synthetic(args: argparse.Namespace) -> None:
    if args.report:
        rows = read_rows(args.report, args.methods,
                         lambda r: r["problem"] in args.problems and args.trials in (None, r["trials"]))  # fmt: skip
        synthetic_tables(rows, args.methods or list(dict.fromkeys(r["method"] for r in rows)))
        return
    args.methods = _methods(args.methods, SYNTHETIC_METHODS)
    args.trials = args.trials or 100
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    rows = []
    for problem in args.problems:
        ref = PROBLEMS[problem][3]
        for seed in range(args.first_seed, args.first_seed + args.seeds):
            for method in args.methods:
                start = time.perf_counter()
                options = json.loads(args.options) if args.options and method.startswith("hpt") else None
                values = run_synthetic(problem, method, seed, args.trials, options)
                seconds = time.perf_counter() - start
                hv = hpt.hypervolume(values, ref)
                row = {"problem": problem, "method": label(method, args.tag), "seed": seed, "trials": args.trials,
                       "hv": hv, "seconds": seconds}  # fmt: skip
                if options:
                    row["options"] = options
                rows.append(row)
                with out.open("a") as fh:
                    fh.write(json.dumps(row) + "\n")
                print(f"{problem:6s} seed {seed:3d} {row['method']:14s} hv {hv:9.4f} {seconds:6.2f} s", flush=True)
    synthetic_tables(rows, [label(m, args.tag) for m in args.methods])


def synthetic_tables(rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """The table of mean hypervolumes, the first method paired with each other one per problem, and the times."""
    if not rows:
        print("no run matches")
        return
    report(rows, "problem", methods)
    print(
        "\nPaired by seed (first minus second, mean ± standard error, seeds ahead, two-sided sign test, paired t-test):"
    )
    for problem in dict.fromkeys(r["problem"] for r in rows):
        mine = [r for r in rows if r["problem"] == problem]
        for b in methods[1:]:
            print(f"- {problem}: {methods[0]} - {b}: {paired(mine, methods[0], b)}")
    times(rows, methods)


def label(method: str, tag: str) -> str:
    """The name a run of ``method`` is recorded under: hpt-async's methods get ``tag`` appended (``--tag``)."""
    return method if "optuna" in method else method + tag


def read_rows(
    files: Sequence[str], methods: Sequence[str] | None, keep: Callable[[dict[str, Any]], bool]
) -> list[dict[str, Any]]:
    """The rows of these JSON lines files that ``keep`` accepts (of ``methods``, if given); a run's last row wins.

    Runs of one method and seed under different settings (trials, epochs,
    pruner...) would be paired as if they were one: that is refused, and
    the options of ``--report`` choose among them.
    """
    rows: dict[tuple[Any, ...], dict[str, Any]] = {}
    for name in files:
        for line in Path(name).read_text().splitlines():
            if not line.strip():
                continue
            r = json.loads(line)
            if (methods and r["method"] not in methods) or not keep(r):
                continue
            mlp = "max_epochs" in r  # an MLP run: its "trials" counts the trials it started
            settings = (r.get("full_trials") if mlp else r.get("trials"), r.get("pruner", "asha") if mlp else None,
                        *(r.get(k) for k in ("max_epochs", "eta", "min_resource", "mode", "brackets")))  # fmt: skip
            rows[(r["problem"], r["method"], r["seed"], json.dumps(r.get("options")), settings)] = r
    seen: dict[tuple[Any, ...], tuple[Any, ...]] = {}
    for problem, method, seed, options, settings in rows:
        first = seen.setdefault((problem, method, seed, options), settings)
        if first != settings:
            raise SystemExit(
                f"{method} on {problem}, seed {seed}, has runs of different settings ({first} and {settings}): "
                "choose one with the options of --report (--trials, --epochs, --eta, --mode, --pruner...)"
            )
    return list(rows.values())


# -- the real model ---------------------------------------------------------------------------------

MLP_SPACE = {
    "layers": hpt.Int(1, 2),
    "width": hpt.Int(4, 128, log=True),
    "learning_rate_init": hpt.Float(1e-3, 1e-1, log=True),
    "alpha": hpt.Float(1e-6, 1e-1, log=True),
    "batch_size": hpt.Choice([32, 64, 128]),
}
MLP_METHODS = (
    "full-random",
    "asha-random",
    "optuna-nsga2",
    "asha-tpe",
    "full-tpe",
    "full-bayes",
    "full-optuna-gp",
    "full-optuna-tpe",
    "full-optuna-nsga2",
)


class Curves:
    """Learning curves of the MLP on digits, computed epoch by epoch on demand and cached per configuration."""

    def __init__(self) -> None:
        from sklearn.datasets import load_digits
        from sklearn.model_selection import train_test_split
        from sklearn.preprocessing import StandardScaler

        x, y = load_digits(return_X_y=True)
        xt, xv, self.yt, self.yv = train_test_split(x, y, test_size=0.3, stratify=y, random_state=0)
        scaler = StandardScaler().fit(xt)
        self.xt, self.xv = scaler.transform(xt), scaler.transform(xv)
        self.classes = np.unique(y)
        self.cache: dict[tuple[Any, ...], tuple[Any, list[float]]] = {}
        self.fits = 0

    @staticmethod
    def weights(p: Mapping[str, Any]) -> int:
        sizes = [64] + [int(p["width"])] * int(p["layers"]) + [10]
        return sum((a + 1) * b for a, b in pairwise(sizes))

    def error(self, p: Mapping[str, Any], epoch: int) -> float:
        """Validation error after ``epoch`` epochs (1-based)."""
        from sklearn.exceptions import ConvergenceWarning
        from sklearn.neural_network import MLPClassifier

        key = tuple(sorted(p.items()))
        model, errors = self.cache.get(key, (None, []))
        if model is None:
            model = MLPClassifier(
                hidden_layer_sizes=(int(p["width"]),) * int(p["layers"]),
                learning_rate_init=float(p["learning_rate_init"]),
                alpha=float(p["alpha"]),
                batch_size=int(p["batch_size"]),
                random_state=0,
            )
        while len(errors) < epoch:
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", ConvergenceWarning)
                model.partial_fit(self.xt, self.yt, classes=self.classes)
            errors.append(1.0 - float(model.score(self.xv, self.yv)))
            self.fits += 1
        self.cache[key] = (model, errors)
        return errors[epoch - 1]


def _mlp_ref() -> tuple[float, float]:
    return 1.0, math.log10(Curves.weights({"layers": 2, "width": 128}))


def mlp_pruner(
    name: str, min_resource: int, eta: int, epochs: int, mode: str, brackets: int | None = None
) -> dict[str, Any]:
    """The pruner of the ``asha-*`` methods: ``asha`` or ``hyperband`` (``brackets``: its own default when
    ``None``), rungs from ``min_resource`` up to a full training of ``epochs``."""
    if brackets is not None and name != "hyperband":
        raise ValueError(f"brackets is an option of hyperband, not of {name!r}")
    pruner: dict[str, Any] = {"name": name, "min_resource": min_resource, "eta": eta, "max_resource": epochs,
                              "mode": mode}  # fmt: skip
    if brackets is not None:
        pruner["brackets"] = brackets
    return pruner


def run_mlp(
    method: str,
    seed: int,
    trials: int,
    epochs: int,
    curves: Curves,
    eta: int = 3,
    min_resource: int = 1,
    mode: str = "stop",
    pruner_name: str = "asha",
    brackets: int | None = None,
) -> dict[str, Any]:
    """One run: its full-budget points (error, log10 weights), every trained model's, epochs used, trials started.

    ``mode`` is MO-ASHA's (``stop`` or ``promotion``).  In promotion mode a
    paused trial checkpoints its epoch count and, resumed, trains on from
    there: only the epochs it adds are charged.  ``pruner_name`` is the
    pruner of the ``asha-*`` methods: ``asha`` (one bracket) or ``hyperband``
    (``brackets`` brackets, ``None``: its default, one per rung).
    """
    budget = trials * epochs
    if method in ("full-random", "asha-random", "asha-tpe", "full-tpe", "full-bayes"):
        asha = method.startswith("asha")
        pruner = mlp_pruner(pruner_name, min_resource, eta, epochs, mode, brackets) if asha else None
        promotion = asha and mode == "promotion"
        limit = budget // 4 if asha or method == "full-tpe" else budget
        strategy = method.split("-")[1]

        async def main() -> dict[str, Any]:
            tuner = hpt.Tuner(None, MLP_SPACE, directions=["minimize", "minimize"], pruner=pruner, seed=seed,
                              strategy=strategy, loggers=[])  # fmt: skip
            used, started, points = 0, 0, []
            trained: dict[int, tuple[float, float]] = {}  # trial -> its network at its last report
            while used < limit:
                trial = await tuner.ask()
                first = 1
                if trial.should_restore:
                    first = int((await trial.restore()).decode()) + 1
                else:
                    started += 1
                size = math.log10(curves.weights(trial.params))
                try:
                    error = 1.0
                    for epoch in range(first, epochs + 1):
                        if used >= limit:
                            break
                        error = curves.error(trial.params, epoch)
                        used += 1
                        trained[trial.number] = (error, size)
                        if promotion:
                            await trial.checkpoint(str(epoch).encode())
                        await trial.report((error, size), step=epoch)
                    else:
                        await tuner.tell(trial, (error, size))
                        points.append((error, size))
                        continue
                    trained.pop(trial.number, None)  # the budget ran out in the middle of its training
                    await tuner.tell(trial, state="cancelled")
                except hpt.TrialPaused:
                    await tuner.tell(trial, state="paused")
                except hpt.TrialPruned:
                    await tuner.tell(trial, state="pruned")
            await tuner.close()
            return {"points": points, "trained": list(trained.values()), "epochs": used, "trials": started}

        return anyio.run(main)
    import optuna

    optuna.logging.set_verbosity(optuna.logging.ERROR)
    warnings.simplefilter("ignore", optuna.exceptions.ExperimentalWarning)
    full = method.startswith("full-")
    n = trials if full else max(1, budget // 4 // epochs)
    points: list[tuple[float, float]] = []

    def objective(t: Any) -> tuple[float, float]:
        p = {
            "layers": t.suggest_int("layers", 1, 2),
            "width": t.suggest_int("width", 4, 128, log=True),
            "learning_rate_init": t.suggest_float("learning_rate_init", 1e-3, 1e-1, log=True),
            "alpha": t.suggest_float("alpha", 1e-6, 1e-1, log=True),
            "batch_size": t.suggest_categorical("batch_size", [32, 64, 128]),
        }
        value = (curves.error(p, epochs), math.log10(curves.weights(p)))
        points.append(value)
        return value

    sampler = {
        "nsga2": lambda: optuna.samplers.NSGAIISampler(seed=seed),
        "tpe": lambda: optuna.samplers.TPESampler(seed=seed),
        "gp": lambda: optuna.samplers.GPSampler(seed=seed),
    }[method.rsplit("-", 1)[1]]()
    study = optuna.create_study(directions=["minimize", "minimize"], sampler=sampler)
    study.optimize(objective, n_trials=n)
    return {"points": points, "trained": points, "epochs": n * epochs, "trials": n}


def cmd_mlp(args: argparse.Namespace) -> None:
    from threadpoolctl import threadpool_limits

    # One BLAS thread: the networks are small, and on a shared machine threads that wait for each other
    # made each epoch several times slower; single-threaded, the curves do not depend on the thread count.
    with threadpool_limits(1):
        _cmd_mlp(args)


def _cmd_mlp(args: argparse.Namespace) -> None:
    if args.report:

        def keep(r: dict[str, Any]) -> bool:
            return all(getattr(args, k) in (None, r.get(f)) for k, f in
                       (("trials", "full_trials"), ("epochs", "max_epochs"), ("eta", "eta"),
                        ("min_resource", "min_resource"), ("mode", "mode"), ("brackets", "brackets"))) and (
                args.pruner in (None, r.get("pruner", "asha")))  # rows written before --pruner: asha  # fmt: skip

        rows = read_rows(args.report, args.methods, keep)
        mlp_tables(rows, args.methods or list(dict.fromkeys(r["method"] for r in rows)))
        return
    args.methods = _methods(args.methods, MLP_METHODS)
    for k, default in (("trials", 40), ("epochs", 9), ("eta", 3), ("min_resource", 1), ("mode", "stop"),
                       ("pruner", "asha")):  # fmt: skip
        setattr(args, k, default if getattr(args, k) is None else getattr(args, k))
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    curves = Curves()
    ref = _mlp_ref()
    rows = []
    for seed in range(args.first_seed, args.first_seed + args.seeds):
        for method in args.methods:
            start = time.perf_counter()
            run = run_mlp(
                method,
                seed,
                args.trials,
                args.epochs,
                curves,
                args.eta,
                args.min_resource,
                args.mode,
                args.pruner,
                args.brackets,
            )
            hv = hpt.hypervolume(run["points"], ref) if run["points"] else 0.0
            hv_trained = hpt.hypervolume(run["trained"], ref) if run["trained"] else 0.0
            row = {"problem": "mlp-digits", "method": label(method, args.tag), "seed": seed, "hv": hv,
                   "hv_trained": hv_trained, "full_trials": args.trials, "eta": args.eta,
                   "min_resource": args.min_resource, "mode": args.mode, "max_epochs": args.epochs,
                   "pruner": args.pruner, "brackets": args.brackets,
                   "epochs": run["epochs"], "trials": run["trials"], "complete": len(run["points"]),
                   "seconds": time.perf_counter() - start}  # fmt: skip
            rows.append(row)
            with out.open("a") as fh:
                fh.write(json.dumps(row) + "\n")
            print(f"seed {seed:3d} {row['method']:13s} hv {hv:.4f} epochs {run['epochs']:4d} trials {run['trials']:3d} "
                  f"full {len(run['points']):3d}", flush=True)  # fmt: skip
    mlp_tables(rows, [label(m, args.tag) for m in args.methods])


def mlp_tables(rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """The MLP's tables: trained in full, every trained model, every pair of methods by seed, epochs and trials."""
    if not rows:
        print("no run matches")
        return
    report(rows, "problem", methods)
    print("\nCounting every trained model (a pruned trial's last report is a model one can keep):")
    report([{**r, "hv": r["hv_trained"]} for r in rows], "problem", methods)
    print(
        "\nPaired by seed (first minus second, mean ± standard error, seeds ahead, two-sided sign test, paired t-test):"
    )
    for key, what in (("hv", "trained in full"), ("hv_trained", "every trained model")):
        for i, a in enumerate(methods):
            for b in methods[i + 1 :]:
                print(f"- {a} - {b} ({what}): {paired(rows, a, b, key)}")
    for m in methods:
        mine = [r for r in rows if r["method"] == m]
        print(f"- {m}: mean epochs {statistics.mean(r['epochs'] for r in mine):.0f}, trials started "
              f"{statistics.mean(r['trials'] for r in mine):.1f}, trained in full "
              f"{statistics.mean(r['complete'] for r in mine):.1f}")  # fmt: skip


# -- the table ------------------------------------------------------------------------------------------


def report(rows: list[dict[str, Any]], group: str, methods: Sequence[str]) -> None:
    """Mean hypervolume per problem and method, its ratio to the first method, and paired wins."""
    print()
    anchor = methods[0]
    print(f"| {group} | " + " | ".join(methods) + f" | wins vs {anchor} (per method) |")
    print("| --- | " + " | ".join("---" for _ in methods) + " | --- |")
    for g in dict.fromkeys(r[group] for r in rows):
        mine = [r for r in rows if r[group] == g]
        by = {(r["method"], r["seed"]): r["hv"] for r in mine}
        seeds = sorted(s for s in {r["seed"] for r in mine} if all((m, s) in by for m in methods))  # complete seeds
        if not seeds:
            print(f"| {g} | no seed has a run of every method |")
            continue
        cells = []
        base = statistics.mean(by[(anchor, s)] for s in seeds)
        for m in methods:
            hv = [by[(m, s)] for s in seeds]
            sd = statistics.stdev(hv) if len(hv) > 1 else 0.0
            ratio = statistics.mean(hv) / base if base else float("nan")
            cells.append(f"{statistics.mean(hv):.4f} ± {sd:.4f} ({ratio:.3f})")
        wins = ", ".join(f"{m} {sum(by[(m, s)] > by[(anchor, s)] for s in seeds)}/{len(seeds)}" for m in methods[1:])
        print(f"| {g} | " + " | ".join(cells) + f" | {wins} |")


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign test: the chance of a split at least this uneven between ``wins`` and ``losses`` (ties
    dropped) when either side is as likely."""
    n = wins + losses
    if n == 0:
        return 1.0
    k = min(wins, losses)
    return min(1.0, 2 * sum(math.comb(n, i) for i in range(k + 1)) / 2**n)


def t_test(d: Sequence[float]) -> float:
    """Two-sided paired t-test of differences ``d`` against zero (1.0 for fewer than two, or none that differ)."""
    from scipy import stats

    if len(d) < 2 or not any(d):
        return 1.0
    if statistics.pstdev(d) == 0.0:
        return 0.0  # every seed moved by the same amount
    return float(stats.ttest_1samp(d, 0.0).pvalue)


def paired(rows: list[dict[str, Any]], a: str, b: str, key: str = "hv") -> str:
    """Method ``a`` minus method ``b`` paired by seed on ``key``: mean ± standard error, seeds ahead, sign test."""
    by = {(r["method"], r["seed"]): r[key] for r in rows}
    seeds = sorted({r["seed"] for r in rows if (a, r["seed"]) in by and (b, r["seed"]) in by})
    d = [by[(a, s)] - by[(b, s)] for s in seeds]
    if not d:
        return "no common seeds"
    se = statistics.stdev(d) / math.sqrt(len(d)) if len(d) > 1 else 0.0
    wins, losses = sum(x > 0 for x in d), sum(x < 0 for x in d)
    return (f"{statistics.mean(d):+.4f} ± {se:.4f}, ahead on {wins}/{len(d)} (behind on {losses}), "
            f"sign test p = {sign_test(wins, losses):.3f}, t-test p = {t_test(d):.3f}")  # fmt: skip


def times(rows: list[dict[str, Any]], methods: Sequence[str]) -> None:
    """Each method's wall time per trial, and its ratio to the first method's, over all the rows."""
    anchor = methods[0]
    per = {m: statistics.mean(r["seconds"] / r["trials"] for r in rows if r["method"] == m) for m in methods}
    print()
    print("time per trial: " + ", ".join(f"{m} {per[m]:.4f} s ({per[m] / per[anchor]:.3f})" for m in methods))


def _methods(given: Sequence[str] | None, known: Sequence[str]) -> list[str]:
    unknown = sorted(set(given or ()) - set(known))
    if unknown:
        raise SystemExit(f"unknown methods {unknown}; choose from {', '.join(known)}")
    return list(given or known)


def _shared_options(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--tag", default="", help="appended to the hpt-async methods' labels in the rows written (e.g. --tag=-new)"
    )
    p.add_argument(
        "--report", nargs="+", metavar="FILE",
        help="print the tables of the runs in these JSON lines files (the other options filter them) and stop",
    )  # fmt: skip


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = parser.add_subparsers(required=True)
    s = sub.add_parser("synthetic", help="ZDT/DTLZ problems, hypervolume per method and seed")
    s.add_argument("--problems", nargs="+", default=list(PROBLEMS), choices=list(PROBLEMS))
    s.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help=f"of {', '.join(SYNTHETIC_METHODS)} (default: all); with --report, any labels",
    )
    s.add_argument("--seeds", type=int, default=10)
    s.add_argument("--first-seed", type=int, default=0)
    s.add_argument("--trials", type=int, default=None, help="trials per run (default 100; with --report: any)")
    s.add_argument(
        "--options", default=None, help="JSON object of options for the hpt-async strategies (e.g. '{\"starts\": 10}')"
    )
    s.add_argument("--out", default="bench-results/multi_objective.jsonl")
    _shared_options(s)
    s.set_defaults(func=cmd_synthetic)
    m = sub.add_parser("mlp", help="MO-ASHA at a quarter of the epochs against full-budget search, on an MLP")
    m.add_argument(
        "--methods",
        nargs="+",
        default=None,
        help=f"of {', '.join(MLP_METHODS)} (default: all); with --report, any labels",
    )
    m.add_argument("--seeds", type=int, default=10)
    m.add_argument("--first-seed", type=int, default=0)
    m.add_argument("--trials", type=int, default=None, help="trials of the full-budget run (default 40)")
    m.add_argument("--epochs", type=int, default=None, help="epochs of a full training (default 9)")
    m.add_argument("--eta", type=int, default=None, help="MO-ASHA's reduction factor (default 3)")
    m.add_argument("--min-resource", type=int, default=None, help="MO-ASHA's first rung, in epochs (default 1)")
    m.add_argument(
        "--mode",
        default=None,
        choices=["stop", "promotion"],
        help="MO-ASHA's mode (default stop; promotion pauses and resumes from a checkpoint)",
    )
    m.add_argument(
        "--pruner",
        default=None,
        choices=["asha", "hyperband"],
        help="the pruner of the asha-* methods (default asha; hyperband runs several brackets)",
    )
    m.add_argument("--brackets", type=int, default=None, help="hyperband's number of brackets (default: one per rung)")
    m.add_argument("--out", default="bench-results/multi_objective_mlp.jsonl")
    _shared_options(m)
    m.set_defaults(func=cmd_mlp)
    args = parser.parse_args(argv)
    if getattr(args, "brackets", None) is not None and args.pruner != "hyperband":
        m.error("--brackets needs --pruner hyperband")
    args.func(args)


if __name__ == "__main__":
    main()
