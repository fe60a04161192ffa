"""Neural architecture search for a scikit-learn MLP with regularised evolution.

Run it (needs scikit-learn: ``pip install hpt-async[examples]``)::

    python examples/nas_mlp.py                 # 30 trials, 2 at once
    python examples/nas_mlp.py --trials 100 --population 20

The architecture is a conditional space: ``n_layers`` says how many hidden
layers the network has, and each layer's width exists only when the layer
does (``units_3`` is absent from a two-layer network); one activation
serves every layer, as scikit-learn's MLP has it.  The ``evolution``
strategy samples a first population at random, then breeds each new
network from the best of a few random members by changing one setting,
such as the width of a layer, the activation, or the number of layers (a
new layer gets a random width).  The digits data
set ships with scikit-learn, so nothing is downloaded; the score is the
accuracy on a held-out split, so the study maximises.
"""

from __future__ import annotations

import argparse
import warnings

import anyio
from sklearn.datasets import load_digits
from sklearn.exceptions import ConvergenceWarning
from sklearn.model_selection import train_test_split
from sklearn.neural_network import MLPClassifier
from sklearn.pipeline import Pipeline, make_pipeline
from sklearn.preprocessing import StandardScaler

import hpt_async as hpt

X, Y = load_digits(return_X_y=True)
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = train_test_split(X, Y, test_size=0.3, stratify=Y, random_state=0)
MAX_LAYERS = 3


def width(i: int) -> hpt.Int:
    """The width of hidden layer ``i``, present when the network has at least ``i`` layers."""
    return hpt.Int(8, 128, log=True, when={"n_layers": list(range(i, MAX_LAYERS + 1))})


SPACE = hpt.Space(
    {
        "n_layers": hpt.Int(1, MAX_LAYERS),
        **{f"units_{i}": width(i) for i in range(1, MAX_LAYERS + 1)},
        "activation": hpt.Choice(["relu", "tanh", "logistic"]),
        "alpha": hpt.Float(1e-6, 1e-1, log=True),  # L2 penalty
        "learning_rate_init": hpt.Float(1e-4, 3e-2, log=True),
    }
)


def architecture(params: dict[str, object]) -> str:
    """A short description of a network, e.g. ``64 -> 32 (relu)``."""
    n = int(params["n_layers"])  # type: ignore[call-overload]
    return " -> ".join(str(params[f"units_{i}"]) for i in range(1, n + 1)) + f" ({params['activation']})"


def make_model(params: dict[str, object]) -> Pipeline:
    """The network described by ``params``."""
    n = int(params["n_layers"])  # type: ignore[call-overload]
    sizes = tuple(int(params[f"units_{i}"]) for i in range(1, n + 1))  # type: ignore[call-overload]
    model = MLPClassifier(
        hidden_layer_sizes=sizes,
        activation=str(params["activation"]),
        alpha=float(params["alpha"]),  # type: ignore[arg-type]
        learning_rate_init=float(params["learning_rate_init"]),  # type: ignore[arg-type]
        max_iter=40,
        early_stopping=False,
        random_state=0,
    )
    return make_pipeline(StandardScaler(), model)


def objective(trial: hpt.SyncTrial) -> float:
    """Validation accuracy of the network (a plain function: it runs in a worker thread)."""
    model = make_model(dict(trial.params))
    model.fit(X_TRAIN, Y_TRAIN)
    return float(model.score(X_VALID, Y_VALID))


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=30, help="number of trials (default 30)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials (threads) at once (default 2)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the search (default 0)")
    parser.add_argument("--population", type=int, default=10, help="population size (default 10)")
    parser.add_argument("--sample-size", type=int, default=4, help="members per tournament (default 4)")
    return parser.parse_args(argv)


def make_tuner(args: argparse.Namespace) -> hpt.Tuner:
    """Configure the study (nothing runs yet)."""
    strategy = hpt.EvolutionStrategy(population=args.population, sample_size=args.sample_size)
    return hpt.Tuner(
        objective,
        SPACE,
        direction="maximize",
        strategy=strategy,
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        study="nas-mlp",
    )


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, search, and print the best network; return the study result."""
    args = parse_args(argv)
    # A small max_iter keeps trials fast; some networks stop before converging, which is fine here.
    warnings.filterwarnings("ignore", category=ConvergenceWarning)
    result = anyio.run(make_tuner(args).run)

    complete = [t for t in result.trials if t.state is hpt.TrialState.COMPLETE]
    print(f"trials: {len(result.trials)} ({len(complete)} complete, {result.count('failed')} failed)")
    print(f"stopped because: {result.reason}")
    if complete:
        first = max(t.value for t in complete if t.number < args.population and t.value is not None)
        print(f"best of the random first population: {first:.4f}")
    if result.best is None:
        print("best params: None")
        print("best value: None")
    else:
        print(f"best trial: {result.best.number}")
        print(f"best architecture: {architecture(dict(result.best.params))}")
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")
    return result


if __name__ == "__main__":
    main()
