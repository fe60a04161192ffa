"""Early stopping on real learning curves: hpt-async's pruners side by side with Optuna 5, in one run.

A small neural network (scikit-learn's ``MLPClassifier``, Adam) is trained epoch
by epoch with ``partial_fit`` on the digits data set that ships with
scikit-learn: 400 training and 1,397 validation images, so that the task does
not saturate (with a 70/30 split the best configurations differ by one or
two validation images) and an epoch costs a few milliseconds.  Each epoch
reports the validation accuracy; a trial's value is its accuracy after the
last epoch (27), maximised.  Five hyperparameters: learning rate, hidden units and L2
penalty (all log-scaled), batch size and activation.

Every method gets the same budget in epochs: what full-budget random search
spends on 32 trials (32 x 27 = 864 epochs).  A method's *incumbent* after
``e`` epochs is the best accuracy of a trial that trained all 27 epochs
within those ``e`` epochs: a trial stopped early never counts, whatever it
had reached.  Epochs are counted as they are trained, across all trials.

Part ``quality`` (one trial at a time) answers:

1. how many epochs ``asha`` needs to reach the accuracy that full-budget
   random search ends with (goal: at most 1/4 of its 864);
2. whether a model-based strategy with ``hyperband`` ends better than Optuna's
   TPESampler + HyperbandPruner at equal epochs on most seeds (needs the
   ``tpe``/``bayes`` strategies; reported as not measurable without them);

with Optuna's RandomSampler + SuccessiveHalvingPruner, full-budget random
search of both libraries and ``hyperband`` with random search alongside.

Part ``concurrency`` runs ``asha`` with 8 trials at once (training in worker
threads) and reports how busy the 8 slots were (slot time over 8 x wall
time; Optuna's ``n_jobs=8`` alongside), and whether replaying the recorded
reports one at a time, in arrival order, into a fresh pruner gives the same
decisions.

A configuration's learning curve does not depend on the method that asks
for it (fixed ``random_state``), so part ``quality`` trains each
configuration once and lets other methods read the epochs already trained
(random search in hpt-async draws the same configurations whatever the
pruner).  That saves wall time only: every method is charged every epoch it
asks for.  Part ``concurrency`` trains everything afresh, so that slot times
are real.

    /work/venv/bin/python benchmarks/bench_pruners.py                     # both parts, 5 seeds
    /work/venv/bin/python benchmarks/bench_pruners.py --part quality --seeds 0 1 2 3 4 5 6
    /work/venv/bin/python benchmarks/bench_pruners.py --part concurrency
    /work/venv/bin/python benchmarks/bench_pruners.py --quick             # smoke run, small budget
    /work/venv/bin/python benchmarks/bench_pruners.py --part quality --variants   # + min_resource=3 rows

The row ``hpt tpe + hyperband (rung model)`` is a prototype kept in this file,
not part of the library: it lets ``tpe`` learn from the highest rung with
enough values (as BOHB does) instead of from completed trials only.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import math  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import sys  # noqa: E402
import threading  # noqa: E402
import time  # noqa: E402
import warnings  # noqa: E402
from collections.abc import Awaitable, Callable  # noqa: E402
from dataclasses import dataclass, field  # noqa: E402
from typing import Any  # noqa: E402

import anyio  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import train_test_split  # noqa: E402
from sklearn.neural_network import MLPClassifier  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

import hpt_async as hpt  # noqa: E402
from hpt_async.pruners import ASHAPruner, HyperbandPruner  # noqa: E402
from hpt_async.pruners._replay import DecisionLog, replay  # noqa: E402

EPOCHS = 27
FULL_TRIALS = 32
ETA = 3

X, Y = load_digits(return_X_y=True)
TRAIN_SIZE = 400
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = train_test_split(X, Y, train_size=TRAIN_SIZE, random_state=0, stratify=Y)
_scaler = StandardScaler().fit(X_TRAIN)
X_TRAIN, X_VALID = _scaler.transform(X_TRAIN), _scaler.transform(X_VALID)
CLASSES = np.unique(Y)

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-4, 0.3, log=True),
        "hidden": hpt.Int(8, 128, log=True),
        "alpha": hpt.Float(1e-6, 1e-1, log=True),
        "batch_size": hpt.Choice([32, 64, 128, 256]),
        "activation": hpt.Choice(["relu", "tanh", "logistic"]),
    }
)


def optuna_params(trial: optuna.Trial) -> dict[str, Any]:
    """The same space, through Optuna's suggest API."""
    return {
        "lr": trial.suggest_float("lr", 1e-4, 0.3, log=True),
        "hidden": trial.suggest_int("hidden", 8, 128, log=True),
        "alpha": trial.suggest_float("alpha", 1e-6, 1e-1, log=True),
        "batch_size": trial.suggest_categorical("batch_size", [32, 64, 128, 256]),
        "activation": trial.suggest_categorical("activation", ["relu", "tanh", "logistic"]),
    }


# -- learning curves ----------------------------------------------------------------------------


class Curves:
    """Validation accuracy of a configuration after each epoch, trained on demand.

    With ``share=True`` a configuration asked for again continues from the
    epochs already trained (same result: training is deterministic).
    """

    def __init__(self, share: bool) -> None:
        self.share = share
        self._entries: dict[Any, tuple[threading.Lock, MLPClassifier, list[float]]] = {}
        self._lock = threading.Lock()
        self.trained = 0

    def accuracy(self, params: dict[str, Any], epoch: int, key: Any = None) -> float:
        """Accuracy after ``epoch`` (1-based) epochs; ``key`` tells apart private entries."""
        key = (tuple(sorted(params.items())), None if self.share else key)
        with self._lock:
            entry = self._entries.get(key)
            if entry is None:
                model = MLPClassifier(
                    hidden_layer_sizes=(params["hidden"],),
                    activation=params["activation"],
                    alpha=params["alpha"],
                    learning_rate_init=params["lr"],
                    batch_size=params["batch_size"],
                    random_state=0,
                )
                entry = self._entries[key] = (threading.Lock(), model, [])
        lock, model, accs = entry
        with lock:
            while len(accs) < epoch:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    model.partial_fit(X_TRAIN, Y_TRAIN, classes=CLASSES)
                accs.append(float(model.score(X_VALID, Y_VALID)))
                self.trained += 1
            return accs[epoch - 1]

    def forget(self, params: dict[str, Any], key: Any) -> None:
        """Drop a private entry (its trial ended)."""
        if not self.share:
            with self._lock:
                self._entries.pop((tuple(sorted(params.items())), key), None)


@dataclass
class Meter:
    """Epochs charged to one method run, and its incumbent over them."""

    budget: int
    used: int = 0
    best: float = -math.inf
    curve: list[tuple[int, float]] = field(default_factory=list)  # (epochs used, new incumbent)
    stop: Callable[[], None] | None = None

    @property
    def exhausted(self) -> bool:
        """True once the budget is spent."""
        return self.used >= self.budget

    def charge(self, epoch: int, accuracy: float) -> None:
        """One epoch was trained; ``accuracy`` counts for the incumbent when it is the last one."""
        self.used += 1
        if epoch == EPOCHS and accuracy > self.best and self.used <= self.budget:
            self.best = accuracy
            self.curve.append((self.used, accuracy))

    def epochs_to(self, target: float) -> int | None:
        """Epochs used when the incumbent first reached ``target`` (``None`` if never)."""
        for used, best in self.curve:
            if best >= target - 1e-12:
                return used
        return None


# -- hpt-async runs -----------------------------------------------------------------------------------


async def run_hpt(
    strategy: Any,
    pruner: Any,
    seed: int,
    curves: Curves,
    budget: int,
    concurrency: int = 1,
    plugins: tuple[Any, ...] = (),
) -> Meter:
    """One hpt-async study until ``budget`` epochs are spent."""
    meter = Meter(budget)
    threaded = concurrency > 1

    async def objective(trial: hpt.Trial) -> float:
        accuracy = 0.0
        try:
            for epoch in range(1, EPOCHS + 1):
                if meter.exhausted:
                    assert meter.stop is not None
                    meter.stop()
                    await anyio.sleep(0)  # delivers the cancellation
                if threaded:
                    accuracy = await anyio.to_thread.run_sync(curves.accuracy, trial.params, epoch, trial.number)
                else:
                    accuracy = curves.accuracy(trial.params, epoch, trial.number)
                meter.charge(epoch, accuracy)
                await trial.report(accuracy, step=epoch)
            return accuracy
        finally:
            curves.forget(trial.params, trial.number)

    with anyio.CancelScope() as scope:
        meter.stop = scope.cancel
        tuner = hpt.Tuner(
            objective,
            SPACE,
            direction="maximize",
            strategy=strategy,
            pruner=pruner,
            seed=seed,
            concurrency=concurrency,
            loggers=[],
            plugins=list(plugins),
            max_trials=100_000,
        )
        await tuner.run()
    return meter


# -- Optuna runs ------------------------------------------------------------------------------------------


def run_optuna(
    sampler: optuna.samplers.BaseSampler,
    pruner: optuna.pruners.BasePruner | None,
    curves: Curves,
    budget: int,
    n_jobs: int = 1,
) -> tuple[Meter, optuna.Study]:
    """One Optuna study until ``budget`` epochs are spent."""
    meter = Meter(budget)

    def objective(trial: optuna.Trial) -> float:
        params = optuna_params(trial)
        accuracy = 0.0
        try:
            for epoch in range(1, EPOCHS + 1):
                if meter.exhausted:
                    trial.study.stop()
                    raise optuna.TrialPruned()
                accuracy = curves.accuracy(params, epoch, trial.number)
                meter.charge(epoch, accuracy)
                trial.report(accuracy, epoch)
                if trial.should_prune():
                    raise optuna.TrialPruned()
            return accuracy
        finally:
            curves.forget(params, trial.number)

    study = optuna.create_study(
        direction="maximize", sampler=sampler, pruner=pruner if pruner is not None else optuna.pruners.NopPruner()
    )
    study.optimize(objective, n_trials=100_000, n_jobs=n_jobs)
    return meter, study


# -- the rung-model prototype -------------------------------------------------------------------------------


class RungModel(hpt.Strategy):
    """Prototype: a model-based strategy that learns from the highest rung with ``min_count`` values.

    At each ask, every trial with a report at that rung's step is shown to a
    fresh ``inner`` strategy as a COMPLETE trial whose value is the one at
    the rung (running trials stay pending).  Not part of the library.
    """

    name = "rung-model"

    def __init__(self, factory: Callable[[], hpt.Strategy], levels: list[int], min_count: int) -> None:
        self.factory = factory
        self.levels = levels
        self.min_count = min_count

    async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any] | None:
        records = list(study.trials.values())
        level = self.levels[0]
        for candidate in reversed(self.levels):
            if sum(1 for r in records if candidate in r.reports) >= self.min_count:
                level = candidate
                break
        view = hpt.StudyView(study.name, study.direction, study.space, study.seed)
        for r in records:
            if level in r.reports:
                view._put(hpt.TrialRecord(r.number, hpt.TrialState.COMPLETE, r.params, value=r.reports[level]))
            elif r.state is hpt.TrialState.RUNNING:
                view._put(r)
        inner = self.factory()
        await inner.start(view)
        return await inner.ask(view, number)


# -- part: quality ------------------------------------------------------------------------------------------


def model_based() -> dict[str, Callable[[], hpt.Strategy]]:
    """The model-based strategies available in this checkout, by name."""
    found: dict[str, Callable[[], hpt.Strategy]] = {}
    try:
        from hpt_async.strategies.tpe import TPEStrategy

        found["tpe"] = TPEStrategy
    except ImportError:
        pass
    try:
        from hpt_async.strategies.bayes import BayesStrategy

        found["bayes"] = BayesStrategy
    except ImportError:
        pass
    return found


def hyperband() -> HyperbandPruner:
    """hpt-async's Hyperband with the benchmark's resources."""
    return HyperbandPruner(min_resource=1, max_resource=EPOCHS, eta=ETA)


Method = Callable[[int, Curves, int], Awaitable[Meter]]
TARGET = "hpt random, full budget"


def quality_methods(strategies: dict[str, Callable[[], hpt.Strategy]], variants: bool = False) -> dict[str, Method]:
    """Every method of part ``quality``, by the name printed (``variants`` adds the sensitivity rows)."""

    def hpt_method(strategy: Callable[[], Any], pruner: Callable[[], Any] | None) -> Method:
        async def method(seed: int, curves: Curves, budget: int) -> Meter:
            return await run_hpt(strategy(), None if pruner is None else pruner(), seed, curves, budget)

        return method

    def optuna_method(sampler: Callable[[int], Any], pruner: Callable[[], Any] | None) -> Method:
        async def method(seed: int, curves: Curves, budget: int) -> Meter:
            return run_optuna(sampler(seed), None if pruner is None else pruner(), curves, budget)[0]

        return method

    methods: dict[str, Method] = {
        "hpt random, full budget": hpt_method(hpt.RandomStrategy, None),
        "hpt random + asha": hpt_method(
            hpt.RandomStrategy, lambda: ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS)
        ),
        "hpt random + hyperband": hpt_method(hpt.RandomStrategy, hyperband),
    }
    if variants:
        methods["hpt random + asha, min_resource=3"] = hpt_method(
            hpt.RandomStrategy, lambda: ASHAPruner(min_resource=3, eta=ETA, max_resource=EPOCHS)
        )
        methods["optuna random + SHA, min_resource=3"] = optuna_method(
            lambda s: optuna.samplers.RandomSampler(seed=s),
            lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=3, reduction_factor=ETA),
        )
    for name, factory in strategies.items():
        methods[f"hpt {name}, full budget"] = hpt_method(factory, None)
        methods[f"hpt {name} + hyperband"] = hpt_method(factory, hyperband)
    if "tpe" in strategies:
        levels = [ETA**k for k in range(round(math.log(EPOCHS, ETA)) + 1)]
        tpe = strategies["tpe"]
        methods["hpt tpe + hyperband (rung model)"] = hpt_method(lambda: RungModel(tpe, levels, 10), hyperband)
    methods["optuna random, full budget"] = optuna_method(lambda s: optuna.samplers.RandomSampler(seed=s), None)
    methods["optuna random + SHA"] = optuna_method(
        lambda s: optuna.samplers.RandomSampler(seed=s),
        lambda: optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA),
    )
    methods["optuna TPE + hyperband"] = optuna_method(
        lambda s: optuna.samplers.TPESampler(seed=s),
        lambda: optuna.pruners.HyperbandPruner(min_resource=1, max_resource=EPOCHS, reduction_factor=ETA),
    )
    return methods


def fmt(x: float | None, spec: str = ".4f") -> str:
    """A number, or a dash."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


async def part_quality(seeds: list[int], budget: int, variants: bool, only: list[str] | None = None) -> None:
    """Items 1 and 2 (``only``: keep the methods whose name contains one of these, and the target)."""
    strategies = model_based()
    methods = quality_methods(strategies, variants)
    if only:
        methods = {k: m for k, m in methods.items() if k == TARGET or any(o in k for o in only)}
    finals: dict[str, list[float]] = {m: [] for m in methods}
    to_target: dict[str, list[int | None]] = {m: [] for m in methods}
    seconds: dict[str, float] = dict.fromkeys(methods, 0.0)
    targets: list[float] = []
    print(f"\n## part quality: budget {budget} epochs per method, {EPOCHS} epochs per full trial, seeds {seeds}")
    if not strategies:
        print("(no model-based strategy in this checkout: item 2 is not measurable)")
    for seed in seeds:
        curves = Curves(share=True)
        meters: dict[str, Meter] = {}
        for name, method in methods.items():
            t0 = time.perf_counter()
            meters[name] = await method(seed, curves, budget)
            seconds[name] += time.perf_counter() - t0
        target = meters[TARGET].best
        targets.append(target)
        print(f"\nseed {seed}: target (hpt random, full budget, final incumbent) = {target:.4f}")
        print(f"  {'method':40s} {'final':>7s} {'epochs to target':>17s} {'fraction':>9s}")
        for name, meter in meters.items():
            reach = meter.epochs_to(target)
            finals[name].append(meter.best)
            to_target[name].append(reach)
            frac = None if reach is None else reach / budget
            print(f"  {name:40s} {fmt(meter.best):>7s} {fmt(reach, 'd'):>17s} {fmt(frac, '.3f'):>9s}")
        sys.stdout.flush()

    print()
    print(f"### summary over {len(seeds)} seeds (budget {budget} epochs)")
    print(
        f"{'method':40s} {'median final':>12s} {'mean final':>10s} {'reached target':>15s} "
        f"{'median fraction':>15s} {'seconds':>8s}"
    )
    for name in methods:
        reached = [r for r in to_target[name] if r is not None]
        fracs = [budget if r is None else r for r in to_target[name]]
        print(
            f"{name:40s} {statistics.median(finals[name]):12.4f} {statistics.fmean(finals[name]):10.4f} "
            f"{len(reached):>8d}/{len(seeds):<6d} {statistics.median(fracs) / budget:15.3f} {seconds[name]:8.1f}"
        )

    print()
    for name in [m for m in methods if "+ asha" in m or "+ SHA" in m]:
        reach = to_target[name]
        met = sum(1 for r in reach if r is not None and r <= budget / 4)
        fr = ", ".join(fmt(None if r is None else r / budget, ".3f") for r in reach)
        print(
            f"item 1: {name} reaches the full-budget random search's final accuracy within 1/4 of its epochs "
            f"on {met}/{len(seeds)} seeds (fractions: {fr})"
        )
    optuna_hb = finals.get("optuna TPE + hyperband", [])
    model_hb = [m for m in methods if m.startswith("hpt ") and "+ hyperband" in m and "random" not in m]
    for name in model_hb if optuna_hb else []:
        wins = sum(1 for a, b in zip(finals[name], optuna_hb, strict=True) if a > b)
        ties = sum(1 for a, b in zip(finals[name], optuna_hb, strict=True) if a == b)
        print(f"item 2: {name} beats optuna TPE + hyperband on {wins}/{len(seeds)} seeds ({ties} ties)")
    if not strategies:
        print("item 2: not measurable (no tpe or bayes strategy in this checkout)")


# -- part: concurrency ------------------------------------------------------------------------------------------


class Slots:
    """Start and end times of every trial, from the lifecycle hooks."""

    def __init__(self) -> None:
        self.started: dict[int, float] = {}
        self.ended: dict[int, float] = {}

    @hpt.hookimpl
    def hpt_trial_started(self, event: hpt.TrialStarted) -> None:
        self.started[event.number] = time.perf_counter()

    @hpt.hookimpl
    def hpt_trial_ended(self, event: hpt.TrialEnded) -> None:
        self.ended[event.number] = time.perf_counter()


class RunningAtDecision(DecisionLog):
    """A decision log that also counts the trials running at each decision."""

    def __init__(self, inner: hpt.Pruner) -> None:
        super().__init__(inner)
        self.running: list[int] = []

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        self.running.append(len(study.running))
        return await super().decide(study, trial, step, value)


def utilisation(intervals: list[tuple[float, float]], slots: int) -> float:
    """Slot time over ``slots`` x wall time (from the first start to the last end)."""
    start = min(s for s, _ in intervals)
    end = max(e for _, e in intervals)
    return sum(e - s for s, e in intervals) / (slots * (end - start))


async def part_concurrency(seeds: list[int], budget: int, workers: int) -> None:
    """Item 3."""
    print(f"\n## part concurrency: asha with {workers} trials at once, budget {budget} epochs, seeds {seeds}")
    print(
        f"  {'seed':>4s} {'hpt slots busy':>15s} {'mean running':>13s} {'decisions':>10s} {'stops':>6s} "
        f"{'replay identical':>17s} {'final':>7s} {'ep. to target':>14s} {'optuna slots busy':>18s}"
    )
    rows = []
    for seed in seeds:
        log = RunningAtDecision(ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS))
        slots = Slots()
        curves = Curves(share=False)
        meter = await run_hpt(hpt.RandomStrategy(), log, seed, curves, budget, concurrency=workers, plugins=(slots,))
        hpt_busy = utilisation([(s, slots.ended[n]) for n, s in slots.started.items() if n in slots.ended], workers)
        replayed = await replay(ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS), log.events, "maximize")
        recorded = log.decisions()
        same = [r.decision for r in replayed] == [r.decision for r in recorded]
        stops = sum(r.decision is hpt.Decision.STOP for r in recorded)
        # The target: the final incumbent of full-budget random search with this seed (one at a time).
        reference = await run_hpt(hpt.RandomStrategy(), None, seed, Curves(share=True), budget)
        reach = meter.epochs_to(reference.best)
        _, study = run_optuna(
            optuna.samplers.RandomSampler(seed=seed),
            optuna.pruners.SuccessiveHalvingPruner(min_resource=1, reduction_factor=ETA),
            Curves(share=False),
            budget,
            n_jobs=workers,
        )
        spans = [
            (t.datetime_start.timestamp(), t.datetime_complete.timestamp())
            for t in study.trials
            if t.datetime_start is not None and t.datetime_complete is not None
        ]
        optuna_busy = utilisation(spans, workers)
        mean_running = statistics.fmean(log.running)
        rows.append((hpt_busy, mean_running, same, optuna_busy, reach))
        print(
            f"  {seed:4d} {hpt_busy:15.3f} {mean_running:13.2f} {len(recorded):10d} {stops:6d} {same!s:>17s} "
            f"{fmt(meter.best):>7s} {fmt(reach, 'd'):>14s} {optuna_busy:18.3f}"
        )
        sys.stdout.flush()
    print(
        f"\nitem 3: hpt slots busy median {statistics.median(r[0] for r in rows):.3f} "
        f"(min {min(r[0] for r in rows):.3f}); trials running at a decision, mean "
        f"{statistics.fmean(r[1] for r in rows):.2f} of {workers}; replay identical on "
        f"{sum(r[2] for r in rows)}/{len(rows)} seeds; optuna n_jobs={workers} slots busy median "
        f"{statistics.median(r[3] for r in rows):.3f}; asha at {workers} workers reached the target within 1/4 "
        f"of the budget on {sum(1 for r in rows if r[4] is not None and r[4] <= budget / 4)}/{len(rows)} seeds"
    )


# -- main ----------------------------------------------------------------------------------------------------------


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--part", choices=["quality", "concurrency", "all"], default="all")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2, 3, 4], help="seeds (default 0-4)")
    parser.add_argument(
        "--budget-trials",
        type=int,
        default=FULL_TRIALS,
        help=f"budget in full trials of {EPOCHS} epochs (default {FULL_TRIALS})",
    )
    parser.add_argument("--workers", type=int, default=8, help="trials at once in part concurrency (default 8)")
    parser.add_argument(
        "--variants",
        action="store_true",
        help="add sensitivity rows to part quality (asha and SHA with min_resource=3)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="TEXT",
        help="part quality: only the methods whose name contains one of these (and the target)",
    )
    parser.add_argument("--quick", action="store_true", help="smoke run: 2 seeds, a budget of 6 full trials")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> None:
    """Run the chosen parts and print the tables."""
    args = parse_args(argv)
    if args.quick:
        args.seeds, args.budget_trials = args.seeds[:2], 6
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    budget = args.budget_trials * EPOCHS
    print(
        f"python {platform.python_version()}, optuna {optuna.__version__}, {os.cpu_count()} cores, "
        f"{platform.platform()}"
    )
    print("command: " + " ".join([os.path.basename(sys.executable), *sys.argv]))
    t0 = time.perf_counter()

    async def run() -> None:
        if args.part in ("quality", "all"):
            await part_quality(args.seeds, budget, args.variants, args.methods)
        if args.part in ("concurrency", "all"):
            await part_concurrency(args.seeds, budget, args.workers)

    anyio.run(run, backend="asyncio")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
