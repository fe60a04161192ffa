"""Tune a Keras 3 model from an ``async def`` objective; the training runs in a worker thread.

Run it (needs ``pip install torch keras scikit-learn``; Keras on its PyTorch
back end, so no TensorFlow)::

    python examples/keras_model.py                     # 16 trials, 2 at once, 8 epochs each
    python examples/keras_model.py --trials 4 --epochs 3

A small dense network classifies the 8x8 digit images that ship with
scikit-learn.  The objective is ``async def``: it could await I/O of its own
(fetch data, write results) on the event loop, and it runs the blocking
``model.fit`` with ``anyio.to_thread.run_sync``.  The
:class:`~hpt_async.integrations.keras.KerasPruningCallback` gets the
:class:`hpt_async.Trial` and reports through its synchronous form
(``trial.for_thread()``); when the ASHA pruner stops the trial,
``fit`` ends with :class:`hpt_async.TrialPruned`.
"""

from __future__ import annotations

import argparse
import os

os.environ.setdefault("KERAS_BACKEND", "torch")  # before keras is imported

import anyio
import anyio.to_thread
import keras
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import hpt_async as hpt
from hpt_async.integrations.keras import KerasPruningCallback

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-3, 0.3, log=True),
        "hidden": hpt.Int(8, 64, log=True),
        "optimizer": hpt.Choice(["sgd", "adam"]),
    }
)

X, Y = load_digits(return_X_y=True)
X_TRAIN, X_VALID, Y_TRAIN, Y_VALID = train_test_split(X / 16.0, Y, test_size=0.25, random_state=0)


def train(trial: hpt.Trial | hpt.SyncTrial, epochs: int) -> float:
    """Fit the network for ``epochs`` epochs; the callback reports ``val_loss`` after each."""
    params = trial.params
    model = keras.Sequential(
        [keras.Input((64,)), keras.layers.Dense(params["hidden"], activation="relu"), keras.layers.Dense(10)]
    )
    optimizer = (
        keras.optimizers.SGD(params["lr"], momentum=0.9)
        if params["optimizer"] == "sgd"
        else (keras.optimizers.Adam(params["lr"]))
    )
    model.compile(optimizer, keras.losses.SparseCategoricalCrossentropy(from_logits=True), metrics=["accuracy"])
    history = model.fit(
        X_TRAIN,
        Y_TRAIN,
        validation_data=(X_VALID, Y_VALID),
        epochs=epochs,
        batch_size=64,
        verbose=0,
        callbacks=[KerasPruningCallback(trial, monitor="val_loss")],  # raises TrialPruned to stop
    )
    return float(history.history["val_loss"][-1])


def make_objective(epochs: int):  # type: ignore[no-untyped-def]
    async def objective(trial: hpt.Trial) -> float:
        # The blocking fit goes to a worker thread; the event loop keeps serving the other trials.
        return await anyio.to_thread.run_sync(train, trial, epochs)

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="number of trials (default 16)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials at once (default 2)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print the outcome; return the study result."""
    args = parse_args(argv)
    keras.utils.set_random_seed(args.seed)
    tuner = hpt.Tuner(
        make_objective(args.epochs),
        SPACE,
        direction="minimize",
        pruner=hpt.ASHAPruner(eta=2, max_resource=args.epochs),
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        loggers=[],
        study="keras-digits",
    )
    result = anyio.run(tuner.run)
    print(f"trials: {len(result.trials)} ({result.count('complete')} complete, {result.count('failed')} failed)")
    print(f"pruned: {result.count('pruned')}")
    print(f"epochs trained: {sum(len(t.reports) for t in result.trials)} of {len(result.trials) * args.epochs}")
    if result.best is not None:
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")
    return result


if __name__ == "__main__":
    main()
