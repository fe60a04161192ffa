"""Tune a PyTorch Lightning model; a pruner stops poor trials through the Lightning callback.

Run it (needs ``pip install torch lightning scikit-learn``)::

    python examples/lightning_model.py                 # 16 trials, 2 at once, 8 epochs each
    python examples/lightning_model.py --trials 4 --epochs 3

A small multilayer perceptron classifies the 8x8 digit images that ship with
scikit-learn (nothing is downloaded).  The objective is a plain ``def``: it
runs in a worker thread and hands its :class:`hpt_async.SyncTrial` to
:class:`~hpt_async.integrations.lightning.LightningPruningCallback`, which
reports the validation loss after every epoch.  When the ASHA pruner stops
the trial, the report raises :class:`hpt_async.TrialPruned`, Lightning ends
``fit``, and the trial is recorded PRUNED.
"""

from __future__ import annotations

import argparse
import logging
import warnings

import anyio
import lightning.pytorch as pl
import torch
from sklearn.datasets import load_digits
from sklearn.model_selection import train_test_split

import hpt_async as hpt
from hpt_async.integrations.lightning import LightningPruningCallback

SPACE = hpt.Space(
    {
        "lr": hpt.Float(1e-3, 0.3, log=True),
        "hidden": hpt.Int(8, 64, log=True),
        "dropout": hpt.Float(0.0, 0.5),
    }
)


def loaders() -> tuple[torch.utils.data.DataLoader, torch.utils.data.DataLoader]:
    """Training and validation batches of the digits data set."""
    x, y = load_digits(return_X_y=True)
    x_train, x_valid, y_train, y_valid = train_test_split(x / 16.0, y, test_size=0.25, random_state=0)

    def loader(x: object, y: object, shuffle: bool) -> torch.utils.data.DataLoader:
        data = torch.utils.data.TensorDataset(torch.tensor(x, dtype=torch.float32), torch.tensor(y))
        return torch.utils.data.DataLoader(data, batch_size=64, shuffle=shuffle)

    return loader(x_train, y_train, True), loader(x_valid, y_valid, False)


class Classifier(pl.LightningModule):
    """One hidden layer; logs ``val_loss`` and ``val_acc`` each validation epoch."""

    def __init__(self, lr: float, hidden: int, dropout: float) -> None:
        super().__init__()
        self.lr = lr
        self.net = torch.nn.Sequential(
            torch.nn.Linear(64, hidden), torch.nn.ReLU(), torch.nn.Dropout(dropout), torch.nn.Linear(hidden, 10)
        )

    def training_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> torch.Tensor:
        x, y = batch
        return torch.nn.functional.cross_entropy(self.net(x), y)

    def validation_step(self, batch: tuple[torch.Tensor, torch.Tensor], _: int) -> None:
        x, y = batch
        logits = self.net(x)
        self.log("val_loss", torch.nn.functional.cross_entropy(logits, y))
        self.log("val_acc", (logits.argmax(-1) == y).float().mean())

    def configure_optimizers(self) -> torch.optim.Optimizer:
        return torch.optim.SGD(self.parameters(), lr=self.lr, momentum=0.9)


def make_objective(epochs: int):  # type: ignore[no-untyped-def]
    def objective(trial: hpt.SyncTrial) -> float:
        """Train for ``epochs`` epochs; the callback reports the validation loss after each one."""
        torch.manual_seed(trial.number)
        train, valid = loaders()
        trainer = pl.Trainer(
            max_epochs=epochs,
            callbacks=[LightningPruningCallback(trial, monitor="val_loss")],
            logger=False,
            enable_checkpointing=False,
            enable_progress_bar=False,
            enable_model_summary=False,
            accelerator="cpu",
            devices=1,
        )
        trainer.fit(Classifier(**trial.params), train, valid)  # raises TrialPruned when the pruner says so
        return float(trainer.callback_metrics["val_loss"])

    return objective


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    """Command-line options."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", type=int, default=16, help="number of trials (default 16)")
    parser.add_argument("--concurrency", type=int, default=2, help="trials (threads) at once (default 2)")
    parser.add_argument("--epochs", type=int, default=8, help="epochs per trial (default 8)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the random strategy (default 0)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> hpt.StudyResult:
    """Parse options, tune, print the outcome; return the study result."""
    args = parse_args(argv)
    logging.getLogger("lightning.pytorch").setLevel(logging.ERROR)  # no banner per trial
    warnings.filterwarnings("ignore", module=r"lightning\.")
    torch.set_num_threads(1)  # the trials run in parallel threads
    tuner = hpt.Tuner(
        make_objective(args.epochs),
        SPACE,
        direction="minimize",
        pruner=hpt.ASHAPruner(eta=2, max_resource=args.epochs),
        max_trials=args.trials,
        concurrency=args.concurrency,
        seed=args.seed,
        loggers=[],
        study="lightning-digits",
    )
    result = anyio.run(tuner.run)
    report(result, args.epochs)
    return result


def report(result: hpt.StudyResult, epochs: int) -> None:
    """Print the lines the tests read: counts, epochs trained, best trial."""
    print(f"trials: {len(result.trials)} ({result.count('complete')} complete, {result.count('failed')} failed)")
    print(f"pruned: {result.count('pruned')}")
    print(f"epochs trained: {sum(len(t.reports) for t in result.trials)} of {len(result.trials) * epochs}")
    if result.best is not None:
        print(f"best params: {dict(result.best.params)}")
        print(f"best value: {result.best.value}")


if __name__ == "__main__":
    main()
