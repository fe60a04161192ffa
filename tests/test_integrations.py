"""The framework callbacks of hpt_async.integrations with the real frameworks, on tiny models.

For each of PyTorch Lightning, Keras 3 (PyTorch back end), XGBoost and
LightGBM, a study of two trials runs one small training per trial, each time
in a plain objective on the thread executor, in an ``async def`` objective
that trains in ``anyio.to_thread.run_sync``, and in a plain objective on the
process executor.  A pruner stops trial 1 at step ``PRUNE_AT``: its training
must end there (the framework's own log of the metric stops at that epoch
or round), while trial 0 trains all ``EPOCHS``.  Each training writes the
metric as the framework logged it (Lightning's CSVLogger, Keras' CSVLogger,
XGBoost's evaluation history, LightGBM's ``record_evaluation``) to a JSON
file, and the trial's reports must equal it.

The frameworks are needed (``pip install -e '.[test]'``): without them
these tests fail rather than skip.
"""

from __future__ import annotations

import csv
import functools
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

os.environ.setdefault("KERAS_BACKEND", "torch")

import anyio
import anyio.to_thread
import numpy as np
import pytest

import hpt_async as hpt
from hpt_async.integrations import MetricNotFoundError

# The frameworks' own warnings about their internals, not about these tests.
pytestmark = [
    pytest.mark.filterwarnings("ignore:__array__ implementation doesn't accept a copy keyword:DeprecationWarning"),
    pytest.mark.filterwarnings(r"ignore:.*isinstance\(treespec, LeafSpec\)"),
    pytest.mark.filterwarnings("ignore:The number of training batches:UserWarning"),
]

EPOCHS = 5
PRUNE_AT = 2  # trial PRUNED_TRIAL is stopped when it reports this step
PRUNED_TRIAL = 1
SPACE = {"lr": hpt.Float(0.05, 0.1)}
HANG_GUARD = 300.0  # seconds; only reached when something hangs (a worker process importing torch is slow)


class PruneOne(hpt.Pruner):
    """Stops trial ``PRUNED_TRIAL`` once it reports step ``PRUNE_AT``; every other trial goes on."""

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        if trial.number == PRUNED_TRIAL and step >= PRUNE_AT:
            return hpt.Decision.STOP
        return hpt.Decision.CONTINUE


def data(n: int = 64, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """A small linear regression problem: ``y = X @ w + noise``."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, 4)).astype(np.float32)
    y = (x @ np.array([1.0, -2.0, 0.5, 0.0], dtype=np.float32) + 0.1 * rng.normal(size=n)).astype(np.float32)
    return x, y


def save(workdir: Path, number: int, logged: list[float]) -> None:
    (workdir / f"{number}.json").write_text(json.dumps(logged))


# -- one training per framework: trial -> (writes workdir/<number>.json) -> final value ------------------


def train_lightning(trial: Any, workdir: Path) -> float:
    import lightning.pytorch as pl
    import torch
    from lightning.pytorch.loggers import CSVLogger

    from hpt_async.integrations.lightning import LightningPruningCallback

    torch.set_num_threads(1)
    torch.manual_seed(0)
    x, y = data()

    class Regressor(pl.LightningModule):
        def __init__(self) -> None:
            super().__init__()
            self.layer = torch.nn.Linear(4, 1)

        def training_step(self, batch: Any, _: int) -> Any:
            xb, yb = batch
            return torch.nn.functional.mse_loss(self.layer(xb).squeeze(-1), yb)

        def validation_step(self, batch: Any, _: int) -> None:
            xb, yb = batch
            self.log("val_loss", torch.nn.functional.mse_loss(self.layer(xb).squeeze(-1), yb))

        def configure_optimizers(self) -> Any:
            return torch.optim.SGD(self.parameters(), lr=trial.params["lr"])

    loader = torch.utils.data.DataLoader(torch.utils.data.TensorDataset(torch.tensor(x), torch.tensor(y)), 32)
    logger = CSVLogger(workdir, name=f"trial-{trial.number}", version=0)
    trainer = pl.Trainer(
        max_epochs=EPOCHS,
        logger=logger,
        callbacks=[LightningPruningCallback(trial, monitor="val_loss")],
        enable_progress_bar=False,
        enable_model_summary=False,
        enable_checkpointing=False,
        accelerator="cpu",
        devices=1,
    )
    try:
        trainer.fit(Regressor(), loader, loader)
    finally:
        with open(Path(logger.log_dir) / "metrics.csv") as f:
            save(workdir, trial.number, [float(row["val_loss"]) for row in csv.DictReader(f) if row["val_loss"]])
    return float(trainer.callback_metrics["val_loss"])


def train_keras(trial: Any, workdir: Path) -> float:
    import keras
    import torch

    from hpt_async.integrations.keras import KerasPruningCallback

    assert keras.backend.backend() == "torch"
    torch.set_num_threads(1)
    keras.utils.set_random_seed(0)
    x, y = data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer=keras.optimizers.SGD(trial.params["lr"]), loss="mse")
    log = workdir / f"trial-{trial.number}.csv"
    try:
        history = model.fit(
            x,
            y,
            validation_data=(x, y),
            epochs=EPOCHS,
            batch_size=32,
            verbose=0,
            callbacks=[keras.callbacks.CSVLogger(str(log)), KerasPruningCallback(trial, monitor="val_loss")],
        )
    finally:
        with open(log) as f:
            save(workdir, trial.number, [float(row["val_loss"]) for row in csv.DictReader(f)])
    return float(history.history["val_loss"][-1])


def train_xgboost(trial: Any, workdir: Path) -> float:
    import xgboost as xgb

    from hpt_async.integrations.xgboost import XGBoostPruningCallback

    class History(xgb.callback.TrainingCallback):
        """Keeps XGBoost's own evaluation history (the dict it fills round by round)."""

        log: Any = None

        def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
            self.log = evals_log
            return False

    x, y = data()
    dtrain, dvalid = xgb.DMatrix(x[:48], y[:48]), xgb.DMatrix(x[48:], y[48:])
    history = History()
    params = {"eta": trial.params["lr"], "max_depth": 2, "nthread": 1, "eval_metric": "rmse"}
    try:
        xgb.train(
            params,
            dtrain,
            num_boost_round=EPOCHS,
            evals=[(dtrain, "train"), (dvalid, "valid")],
            verbose_eval=False,
            callbacks=[history, XGBoostPruningCallback(trial, monitor="valid-rmse")],
        )
    finally:
        save(workdir, trial.number, [float(v) for v in (history.log or {}).get("valid", {}).get("rmse", [])])
    return float(history.log["valid"]["rmse"][-1])


def train_lightgbm(trial: Any, workdir: Path) -> float:
    import lightgbm as lgb

    from hpt_async.integrations.lightgbm import LightGBMPruningCallback

    x, y = data()
    dtrain = lgb.Dataset(x[:48], y[:48])
    dvalid = lgb.Dataset(x[48:], y[48:], reference=dtrain)
    recorded: dict[str, Any] = {}
    params = {
        "objective": "regression",
        "learning_rate": trial.params["lr"],
        "num_leaves": 4,
        "min_data_in_leaf": 4,
        "num_threads": 1,
        "verbose": -1,
    }
    try:
        lgb.train(
            params,
            dtrain,
            num_boost_round=EPOCHS,
            valid_sets=[dvalid],
            valid_names=["valid"],
            callbacks=[lgb.record_evaluation(recorded), LightGBMPruningCallback(trial, monitor="valid-l2")],
        )
    finally:
        save(workdir, trial.number, [float(v) for v in recorded.get("valid", {}).get("l2", [])])
    return float(recorded["valid"]["l2"][-1])


TRAINERS: dict[str, Callable[[Any, Path], float]] = {
    "lightning": train_lightning,
    "keras": train_keras,
    "xgboost": train_xgboost,
    "lightgbm": train_lightgbm,
}


async def train_async(train: Callable[[Any, Path], float], explicit: bool, trial: hpt.Trial, workdir: Path) -> float:
    """An ``async def`` objective: the training runs in a worker thread, given the Trial or its for_thread()."""
    handle: Any = trial.for_thread() if explicit else trial
    return await anyio.to_thread.run_sync(train, handle, workdir)


async def study(objective: Any, executor: str) -> hpt.StudyResult:
    tuner = hpt.Tuner(
        objective, SPACE, pruner=PruneOne(), executor=executor, max_trials=2, concurrency=1, loggers=[], seed=0
    )
    with anyio.fail_after(HANG_GUARD):
        return await tuner.run()


def check(result: hpt.StudyResult, workdir: Path) -> None:
    """Trial 0 trained every epoch, trial 1 stopped at PRUNE_AT; reports equal the framework's own log."""
    by_number = {t.number: t for t in result.trials}
    assert set(by_number) == {0, 1}, result.trials
    done, pruned = by_number[0], by_number[PRUNED_TRIAL]
    assert done.state is hpt.TrialState.COMPLETE, done.error
    assert pruned.state is hpt.TrialState.PRUNED, pruned.error
    logged = {n: json.loads((workdir / f"{n}.json").read_text()) for n in (0, 1)}
    assert len(logged[0]) == EPOCHS
    assert len(logged[PRUNED_TRIAL]) == PRUNE_AT + 1  # the training stopped at the pruned epoch
    for record in (done, pruned):
        assert sorted(record.reports) == list(range(len(logged[record.number])))
        assert [record.reports[s] for s in sorted(record.reports)] == pytest.approx(logged[record.number], rel=1e-6)
    assert done.value == pytest.approx(logged[0][-1], rel=1e-6)
    assert pruned.value == pytest.approx(logged[PRUNED_TRIAL][-1], rel=1e-6)


FRAMEWORKS = list(TRAINERS)


@pytest.mark.anyio
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_thread_executor_plain_objective(framework: str, tmp_path: Path) -> None:
    result = await study(functools.partial(TRAINERS[framework], workdir=tmp_path), "thread")
    check(result, tmp_path)


@pytest.mark.anyio
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_async_objective_training_in_a_worker_thread(framework: str, tmp_path: Path) -> None:
    explicit = framework in ("lightning", "xgboost")  # the others hand the callback the Trial itself
    objective = functools.partial(train_async, TRAINERS[framework], explicit, workdir=tmp_path)
    result = await study(objective, "async")
    check(result, tmp_path)


@pytest.mark.anyio
@pytest.mark.parametrize("framework", FRAMEWORKS)
async def test_process_executor_plain_objective(framework: str, tmp_path: Path) -> None:
    result = await study(functools.partial(TRAINERS[framework], workdir=tmp_path), "process")
    check(result, tmp_path)


# -- errors -----------------------------------------------------------------------------------


class Reports:
    """A stand-in trial with a synchronous ``report`` that keeps what it is given."""

    def __init__(self) -> None:
        self.number = 0
        self.params = {"lr": 0.1}
        self.reports: dict[int, float] = {}

    def report(self, value: float, *, step: int) -> None:
        self.reports[step] = value


def test_a_metric_that_was_not_logged_is_named_with_those_that_were(tmp_path: Path) -> None:
    import lightgbm as lgb
    import xgboost as xgb

    from hpt_async.integrations.lightgbm import LightGBMPruningCallback
    from hpt_async.integrations.xgboost import XGBoostPruningCallback

    x, y = data()
    with pytest.raises(MetricNotFoundError, match=r"XGBoost: no metric 'valid-auc'.*'valid-rmse'") as info:
        xgb.train(
            {"nthread": 1, "eval_metric": "rmse"},
            xgb.DMatrix(x, y),
            num_boost_round=2,
            evals=[(xgb.DMatrix(x, y), "valid")],
            verbose_eval=False,
            callbacks=[XGBoostPruningCallback(Reports(), monitor="valid-auc")],
        )
    assert isinstance(info.value, hpt.HptError) and info.value.available == ["valid-rmse"]
    with pytest.raises(MetricNotFoundError, match=r"LightGBM: no metric \('valid', 'auc'\).*'valid-l2'"):
        lgb.train(
            {"objective": "regression", "verbose": -1, "num_threads": 1},
            lgb.Dataset(x, y),
            num_boost_round=2,
            valid_sets=[lgb.Dataset(x, y)],
            valid_names=["valid"],
            callbacks=[LightGBMPruningCallback(Reports(), monitor=("valid", "auc"))],
        )


def test_keras_and_lightning_name_the_metrics_they_have(tmp_path: Path) -> None:
    import keras

    from hpt_async.integrations.keras import KerasPruningCallback
    from hpt_async.integrations.lightning import LightningPruningCallback

    x, y = data()
    model = keras.Sequential([keras.Input((4,)), keras.layers.Dense(1)])
    model.compile(optimizer="sgd", loss="mse")
    with pytest.raises(MetricNotFoundError, match=r"Keras: no metric 'val_loss'.*'loss'"):
        model.fit(x, y, epochs=1, verbose=0, callbacks=[KerasPruningCallback(Reports())])
    with pytest.raises(ValueError, match="step must be 'epoch' or 'global_step'"):
        LightningPruningCallback(Reports(), step="batch")  # type: ignore[arg-type]


def test_defaults_pick_the_metric_early_stopping_watches() -> None:
    import lightgbm as lgb
    import xgboost as xgb

    from hpt_async.integrations.lightgbm import LightGBMPruningCallback
    from hpt_async.integrations.xgboost import XGBoostPruningCallback

    x, y = data()
    seen: dict[str, Any] = {}
    trial = Reports()
    xgb.train(
        {"nthread": 1, "eval_metric": ["rmse", "mae"]},
        xgb.DMatrix(x[:48], y[:48]),
        num_boost_round=3,
        evals=[(xgb.DMatrix(x[:48], y[:48]), "train"), (xgb.DMatrix(x[48:], y[48:]), "valid")],
        evals_result=seen,
        verbose_eval=False,
        callbacks=[XGBoostPruningCallback(trial)],
    )
    assert list(trial.reports.values()) == pytest.approx(seen["valid"]["mae"])  # the last metric of the last set
    recorded: dict[str, Any] = {}
    trial = Reports()
    train_set = lgb.Dataset(x[:48], y[:48])
    lgb.train(
        {"objective": "regression", "metric": ["l1", "l2"], "verbose": -1, "num_threads": 1},
        train_set,
        num_boost_round=3,
        valid_sets=[train_set, lgb.Dataset(x[48:], y[48:], reference=train_set)],
        callbacks=[lgb.record_evaluation(recorded), LightGBMPruningCallback(trial)],
    )
    assert list(trial.reports.values()) == pytest.approx(recorded["valid_1"]["l1"])  # not the training set
    for bad in ("rmse", ("valid",), 3):
        with pytest.raises(ValueError, match="monitor must be None"):
            XGBoostPruningCallback(Reports(), monitor=bad)  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_training_on_the_event_loop_thread_fails_the_trial_with_advice(tmp_path: Path) -> None:
    async def on_the_loop(trial: hpt.Trial) -> float:
        return train_xgboost(trial, tmp_path)  # no worker thread: the report could not wait for the pruner

    result = await study(on_the_loop, "async")
    assert {t.state for t in result.trials} == {hpt.TrialState.FAILED}
    assert "anyio.to_thread.run_sync" in (result.trials[0].error or "")


def test_a_callback_refuses_something_that_is_not_a_trial() -> None:
    from hpt_async.integrations.xgboost import XGBoostPruningCallback

    with pytest.raises(TypeError, match="the trial the objective received"):
        XGBoostPruningCallback(object())


@pytest.mark.anyio
async def test_for_thread_reports_from_a_plain_thread_and_is_pruned() -> None:
    """``Trial.for_thread()`` taken on the loop works from any thread, not only anyio's."""
    import threading

    def work(handle: hpt.SyncTrial, out: list[Any]) -> None:
        try:
            for step in range(EPOCHS):
                handle.report(float(step), step=step)
            out.append("done")
        except hpt.TrialPruned:
            out.append(("pruned", dict(handle.reports)))

    async def objective(trial: hpt.Trial) -> float:
        out: list[Any] = []
        thread = threading.Thread(target=work, args=(trial.for_thread(), out))
        thread.start()
        await anyio.to_thread.run_sync(thread.join)
        if out[0] != "done":
            raise hpt.TrialPruned(out[0][0])
        return 0.0

    result = await study(objective, "async")
    by_number = {t.number: t for t in result.trials}
    assert by_number[0].state is hpt.TrialState.COMPLETE and len(by_number[0].reports) == EPOCHS
    assert by_number[1].state is hpt.TrialState.PRUNED and sorted(by_number[1].reports) == [0, 1, 2]
