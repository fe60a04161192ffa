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
The row ``asha (promotion)`` runs ``asha`` in promotion mode: trials are
paused at rungs instead of stopped and resumed from a checkpoint of the
epoch they reached, so a resumed trial is charged only the epochs it
trains after the pause.

Part ``diagnose`` (run only when asked) explains item 1 and what
``hyperband`` offers a model: where the configuration that sets the target
is stopped by ``asha``, how many trials complete within 1/4 of the budget,
how well early epochs rank configurations, and how an oracle ``asha``
(shown each trial's final accuracy) would do.

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

    python benchmarks/bench_pruners.py                     # both parts, 5 seeds
    python benchmarks/bench_pruners.py --part quality --seeds 0 1 2 3 4 5 6
    python benchmarks/bench_pruners.py --part concurrency
    python benchmarks/bench_pruners.py --part diagnose --seeds 0 1 2
    python benchmarks/bench_pruners.py --quick             # smoke run, small budget
    python benchmarks/bench_pruners.py --part quality --variants   # + min_resource=3 rows
    python benchmarks/bench_pruners.py --part quality --midpoint-rank  # a rung-rule variant
    python benchmarks/bench_pruners.py --part quality --promotion  # + tpe/bayes + hyperband (promotion)
    python benchmarks/bench_pruners.py --part quality --highest-level  # + bayes, one level at a time

``--curve-cache PATH`` keeps the learning curves in a file, so that shards
and later runs read the epochs already trained instead of training them
again (the figures are the same: training is deterministic).
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import functools  # noqa: E402
import math  # noqa: E402
import pickle  # noqa: E402
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


# Learning curves kept across runs (``--curve-cache``): configuration -> accuracy after each epoch.
STORE: dict[tuple[Any, ...], list[float]] = {}


def load_store(path: str) -> None:
    """Read the curves kept in ``path`` (if it exists) into ``STORE``."""
    if os.path.exists(path):
        with open(path, "rb") as f:
            STORE.update(pickle.load(f))


def save_store(path: str) -> None:
    """Merge ``STORE`` into ``path`` (longest curve wins), written atomically: shards may share a file."""
    merged: dict[tuple[Any, ...], list[float]] = {}
    if os.path.exists(path):
        with open(path, "rb") as f:
            merged = pickle.load(f)
    for key, accs in STORE.items():
        if len(accs) > len(merged.get(key, ())):
            merged[key] = accs
    tmp = f"{path}.{os.getpid()}"
    with open(tmp, "wb") as f:
        pickle.dump(merged, f)
    os.replace(tmp, path)


class Curves:
    """Validation accuracy of a configuration after each epoch, trained on demand.

    With ``share=True`` a configuration asked for again continues from the
    epochs already trained (same result: training is deterministic), and
    epochs found in ``STORE`` are read from there instead of trained again.
    """

    def __init__(self, share: bool) -> None:
        self.share = share
        self._entries: dict[Any, tuple[threading.Lock, MLPClassifier, list[float]]] = {}
        self._lock = threading.Lock()
        self.trained = 0

    def accuracy(self, params: dict[str, Any], epoch: int, key: Any = None) -> float:
        """Accuracy after ``epoch`` (1-based) epochs; ``key`` tells apart private entries."""
        config = tuple(sorted(params.items()))
        if self.share:
            kept = STORE.get(config)
            if kept is not None and len(kept) >= epoch:
                return kept[epoch - 1]
        key = (config, None if self.share else key)
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
            if self.share and len(accs) > len(STORE.get(config, ())):
                STORE[config] = list(accs)
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
    # Promotion mode pauses trials: each checkpoints the epoch it reached and, resumed, goes on from there
    # (the model itself lives in ``curves``), so no epoch is trained or charged twice.
    promotion = bool(getattr(pruner, "promotes", False))

    async def objective(trial: hpt.Trial) -> float:
        accuracy = 0.0
        first = 1
        if trial.should_restore:
            state = await trial.restore()
            first = int(state["epoch"]) + 1
        try:
            for epoch in range(first, EPOCHS + 1):
                if meter.exhausted:
                    assert meter.stop is not None
                    meter.stop()
                    await anyio.sleep(0)  # delivers the cancellation
                if threaded:
                    accuracy = await anyio.to_thread.run_sync(curves.accuracy, trial.params, epoch, trial.number)
                else:
                    accuracy = curves.accuracy(trial.params, epoch, trial.number)
                meter.charge(epoch, accuracy)
                if promotion:
                    await trial.checkpoint({"epoch": epoch})
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
    name: str = "bench-pruners",
) -> tuple[Meter, optuna.Study]:
    """One Optuna study until ``budget`` epochs are spent.

    ``name`` is the study's name: Optuna's HyperbandPruner deals trials to
    brackets by a hash of the study name and trial number, so a fixed name
    makes a seeded run repeat.
    """
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
        study_name=name,
        direction="maximize",
        sampler=sampler,
        pruner=pruner if pruner is not None else optuna.pruners.NopPruner(),
    )
    study.optimize(objective, n_trials=100_000, n_jobs=n_jobs)
    return meter, study


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


def hyperband_promotion() -> HyperbandPruner:
    """The same Hyperband in promotion mode."""
    return HyperbandPruner(min_resource=1, max_resource=EPOCHS, eta=ETA, mode="promotion")


Method = Callable[[int, Curves, int], Awaitable[Meter]]
TARGET = "hpt random, full budget"


def quality_methods(
    strategies: dict[str, Callable[[], hpt.Strategy]],
    variants: bool = False,
    promotion: bool = False,
    highest_level: bool = False,
) -> dict[str, Method]:
    """Every method of part ``quality``, by the name printed (``variants`` adds the sensitivity rows,
    ``promotion`` the model-based strategies with ``hyperband`` in promotion mode, ``highest_level``
    ``bayes`` with ``hyperband`` learning from the highest level with enough results only)."""

    def hpt_method(strategy: Callable[[], Any], pruner: Callable[[], Any] | None) -> Method:
        async def method(seed: int, curves: Curves, budget: int) -> Meter:
            return await run_hpt(strategy(), None if pruner is None else pruner(), seed, curves, budget)

        return method

    def optuna_method(sampler: Callable[[int], Any], pruner: Callable[[], Any] | None) -> Method:
        async def method(seed: int, curves: Curves, budget: int) -> Meter:
            return run_optuna(sampler(seed), None if pruner is None else pruner(), curves, budget, name=f"seed-{seed}")[
                0
            ]

        return method

    methods: dict[str, Method] = {
        "hpt random, full budget": hpt_method(hpt.RandomStrategy, None),
        "hpt random + asha": hpt_method(
            hpt.RandomStrategy, lambda: ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS)
        ),
        "hpt random + hyperband": hpt_method(hpt.RandomStrategy, hyperband),
        "hpt random + asha (promotion)": hpt_method(
            hpt.RandomStrategy, lambda: ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS, mode="promotion")
        ),
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
        if promotion:
            methods[f"hpt {name} + hyperband (promotion)"] = hpt_method(factory, hyperband_promotion)
        if highest_level and name == "bayes":
            methods["hpt bayes + hyperband (highest level)"] = hpt_method(
                functools.partial(factory, fidelity_model="highest"),
                hyperband,
            )
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


def sign_test(wins: int, losses: int) -> float:
    """Two-sided sign-test p-value of ``wins`` against ``losses`` (ties left out)."""
    n = wins + losses
    if n == 0:
        return 1.0
    tail = sum(math.comb(n, k) for k in range(min(wins, losses) + 1)) / 2**n
    return min(1.0, 2 * tail)


def fmt(x: float | None, spec: str = ".4f") -> str:
    """A number, or a dash."""
    return "-" if x is None or (isinstance(x, float) and not math.isfinite(x)) else format(x, spec)


async def part_quality(
    seeds: list[int],
    budget: int,
    variants: bool,
    only: list[str] | None = None,
    promotion: bool = False,
    highest_level: bool = False,
) -> None:
    """Items 1 and 2 (``only``: keep the methods whose name contains one of these, and the target)."""
    strategies = model_based()
    methods = quality_methods(strategies, variants, promotion, highest_level)
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
        pairs = list(zip(finals[name], optuna_hb, strict=True))
        wins = sum(1 for a, b in pairs if a > b)
        losses = sum(1 for a, b in pairs if a < b)
        diff = statistics.fmean(a - b for a, b in pairs) * len(Y_VALID)
        print(
            f"item 2: {name} beats optuna TPE + hyperband on {wins}/{len(seeds)} seeds "
            f"({len(pairs) - wins - losses} ties, {losses} losses; mean difference {diff:+.1f} validation images; "
            f"two-sided sign test p = {sign_test(wins, losses):.2f})"
        )
    if not strategies:
        print("item 2: not measurable (no tpe or bayes strategy in this checkout)")


# -- part: diagnose -------------------------------------------------------------------------------------------


def sequential(
    pruner: hpt.Pruner,
    seed: int,
    curves: Curves,
    budget: int,
    judged: Callable[[dict[str, Any], int], float],
    until: float | None = None,
) -> tuple[list[tuple[int, int, float]], list[tuple[int, int]], list[tuple[int, int, int, int, bool]]]:
    """hpt-async random search with ``pruner``, one trial at a time, replayed without a Tuner.

    The pruner is shown ``judged(params, epoch)`` at each report (the accuracy,
    or anything else).  Returns the completions ``(epochs used, trial,
    accuracy)``, each trial's ``(number, last epoch)`` and, for asha and
    hyperband, every rung entry ``(trial, level, rank, values in the rung,
    went on)``.  With ``until``, it ends at the first completion that
    reaches that accuracy.
    """
    entries: list[tuple[int, int, int, int, bool]] = []
    completions: list[tuple[int, int, float]] = []
    trials: list[tuple[int, int]] = []
    used = number = 0

    async def run() -> None:
        nonlocal used, number
        study = hpt.StudyView("diagnose", "maximize", SPACE, seed)
        await pruner.start(study)
        while used < budget:
            params = SPACE.sample(seed, number)
            reports: dict[int, float] = {}
            state = hpt.TrialState.COMPLETE
            for epoch in range(1, EPOCHS + 1):
                if used >= budget:
                    return
                accuracy = curves.accuracy(params, epoch)
                used += 1
                if epoch == EPOCHS:
                    completions.append((used, number, accuracy))
                    if until is not None and accuracy >= until - 1e-12:
                        return
                value = judged(params, epoch)
                reports[epoch] = value
                record = hpt.TrialRecord(number, hpt.TrialState.RUNNING, params, reports=dict(reports))
                before = _rung_sizes(pruner)
                decision = await pruner.decide(study, record, epoch, value)
                for level, size in _rung_sizes(pruner).items():
                    if size != before.get(level, 0):
                        rank = 1 + sum(1 for v in _rung_values(pruner, level) if v > value)
                        entries.append((number, level, rank, size, decision is hpt.Decision.CONTINUE))
                if decision is hpt.Decision.STOP:
                    state = hpt.TrialState.PRUNED
                    break
            trials.append((number, max(reports)))
            await pruner.tell(study, hpt.TrialRecord(number, state, params, value=value, reports=reports))
            number += 1

    anyio.run(run, backend="asyncio")
    return completions, trials, entries


def _rung_sizes(pruner: hpt.Pruner) -> dict[int, int]:
    """Values per rung level of ``pruner`` (bracket 0 only), or nothing for other pruners."""
    if not isinstance(pruner, ASHAPruner):
        return {}
    return {int(r.level): len(r.values) for r in pruner.rungs()}


def _rung_values(pruner: hpt.Pruner, level: int) -> list[float]:
    assert isinstance(pruner, ASHAPruner)
    return next(list(r.values.values()) for r in pruner.rungs() if int(r.level) == level)


def part_diagnose(seeds: list[int], budget: int) -> None:
    """Why ``asha`` misses item 1 on some seeds, and what ``hyperband`` leaves a model to learn from."""
    from scipy.stats import spearmanr

    quarter = budget // 4
    full = budget // EPOCHS
    print(f"\n## part diagnose: budget {budget} epochs, seeds {seeds}")
    print(
        "  target = best final accuracy of the first "
        f"{full} random configurations (trial c*); asha = ASHAPruner(min_resource=1, eta={ETA}, "
        f"max_resource={EPOCHS}); oracle = the same asha shown each trial's final accuracy at every report"
    )
    met = oracle_met = same_with_pruned = 0
    rhos: dict[int, list[float]] = {1: [], 3: [], 9: []}
    for seed in seeds:
        curves = Curves(share=True)
        finals = [curves.accuracy(SPACE.sample(seed, n), EPOCHS) for n in range(full)]
        target = max(finals)
        star = finals.index(target)
        for e in rhos:
            early = [curves.accuracy(SPACE.sample(seed, n), e) for n in range(full)]
            rhos[e].append(float(spearmanr(early, finals).statistic))
        asha = ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS)
        done, trials, entries = sequential(asha, seed, curves, budget, curves.accuracy)
        reach = next((u for u, _, a in done if a >= target - 1e-12), None)
        oracle_done, _, _ = sequential(
            ASHAPruner(min_resource=1, eta=ETA, max_resource=EPOCHS),
            seed,
            curves,
            budget,
            lambda p, e, curves=curves: curves.accuracy(p, EPOCHS),
            until=target,
        )
        oracle = next((u for u, _, a in oracle_done if a >= target - 1e-12), None)
        # Counting pruned trials too, each with its last value (what a PRUNED trial keeps).
        ended = 0
        any_reach = None
        for n, last in trials:
            ended += last
            if curves.accuracy(SPACE.sample(seed, n), last) >= target - 1e-12:
                any_reach = ended
                break
        same_with_pruned += any_reach == reach
        met += reach is not None and reach <= quarter
        oracle_met += oracle is not None and oracle <= quarter
        in_quarter = [a for u, _, a in done if u <= quarter]
        spent = 0
        started = 0
        for _, last in trials:
            if spent >= quarter:
                break
            started += 1
            spent += last
        path = " ".join(f"{lv}:{rank}/{size}{'' if ok else ' STOP'}" for n, lv, rank, size, ok in entries if n == star)
        gap = (target - max(in_quarter, default=0.0)) * len(Y_VALID)
        end_jitter = statistics.pstdev(curves.accuracy(SPACE.sample(seed, star), e) for e in range(22, 28))
        print(
            f"  seed {seed}: target {target:.4f} (c* = trial {star}); asha epochs to target {fmt(reach, 'd')}, "
            f"oracle {fmt(oracle, 'd')}; in the first {quarter} epochs asha started {started} trials and completed "
            f"{len(in_quarter)}, best {fmt(max(in_quarter, default=None))} ({gap:+.0f} images from the target); "
            f"c* at the rungs (level:rank/values): {path}; c*'s accuracy over epochs 22-27 varies by "
            f"{end_jitter * len(Y_VALID):.1f} images (s.d.)"
        )
        sys.stdout.flush()
    print(
        f"\nasha within 1/4 on {met}/{len(seeds)} seeds; oracle asha on {oracle_met}/{len(seeds)}; counting "
        f"pruned trials' last values changes the epochs to target on {len(seeds) - same_with_pruned} seeds. Spearman "
        f"correlation of the accuracy after 1, 3, 9 epochs with the final one (first {full} configurations), median "
        f"over seeds: " + ", ".join(f"{statistics.median(v):.2f} (min {min(v):.2f})" for v in rhos.values())
    )
    print(f"\nhyperband = HyperbandPruner(min_resource=1, max_resource={EPOCHS}, eta={ETA}) with random search:")
    for seed in seeds:
        band = hyperband()
        curves = Curves(share=True)
        done, trials, _ = sequential(band, seed, curves, budget, curves.accuracy)
        reached = {lv: sum(1 for _, last in trials if last >= lv) for lv in (1, 3, 9, 27)}
        by_bracket = [0] * band.brackets
        for n, last in trials:
            by_bracket[band.bracket_of(n)] += last
        seventh = done[6][0] if len(done) >= 7 else None
        print(
            f"  seed {seed}: {len(trials)} trials, {len(done)} completed (the 7th after {fmt(seventh, 'd')} epochs); "
            f"trials with a report at step 1/3/9/27: {'/'.join(str(reached[lv]) for lv in (1, 3, 9, 27))}; "
            f"epochs per bracket {by_bracket}"
        )


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
            name=f"seed-{seed}",
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
    parser.add_argument("--part", choices=["quality", "concurrency", "diagnose", "all"], default="all")
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
        "--promotion",
        action="store_true",
        help="add the model-based strategies with hyperband in promotion mode to part quality",
    )
    parser.add_argument(
        "--highest-level",
        action="store_true",
        help="add bayes + hyperband modelling only the highest level with enough results (the earlier rule)",
    )
    parser.add_argument(
        "--methods",
        nargs="+",
        metavar="TEXT",
        help="part quality: only the methods whose name contains one of these (and the target)",
    )
    parser.add_argument(
        "--midpoint-rank",
        action="store_true",
        help="rungs judge by midpoint rank, keeping max(1, floor(n / eta + 1/2)) of n (a variant, for comparison)",
    )
    parser.add_argument(
        "--curve-cache",
        metavar="PATH",
        help="keep learning curves in this file across runs (training is deterministic: same figures, less time)",
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
            await part_quality(args.seeds, budget, args.variants, args.methods, args.promotion, args.highest_level)
        if args.part in ("concurrency", "all"):
            await part_concurrency(args.seeds, budget, args.workers)

    if args.midpoint_rank:
        from hpt_async.pruners import _halving

        _halving.top_count = lambda n, eta: max(1, math.floor(n / eta + 0.5 + 1e-9))
        print("rungs: midpoint rank, top max(1, floor(n / eta + 1/2))")
    if args.curve_cache:
        load_store(args.curve_cache)
    try:
        if args.part == "diagnose":
            part_diagnose(args.seeds, budget)
        else:
            anyio.run(run, backend="asyncio")
    finally:
        if args.curve_cache:
            save_store(args.curve_cache)
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
