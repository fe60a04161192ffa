"""Small pieces several test modules use: a pruner that stops at a step, spaces, a test function."""

from __future__ import annotations

import math
from collections.abc import Mapping
from types import ModuleType
from typing import Any

import hpt_async as hpt


class StopAtStep(hpt.Pruner):
    """Stops every trial once it reports ``step``; ``seen`` keeps every report it decided on."""

    def __init__(self, step: int) -> None:
        self.step = step
        self.seen: list[tuple[int, int, float]] = []

    async def decide(self, study: hpt.StudyView, trial: hpt.TrialRecord, step: int, value: float) -> hpt.Decision:
        self.seen.append((trial.number, step, value))
        return hpt.Decision.STOP if step >= self.step else hpt.Decision.CONTINUE


# -- for the model-based strategies ------------------------------------------------------

MIXED = {
    "lr": hpt.Float(1e-5, 1e-1, log=True),
    "layers": hpt.Int(1, 4),
    "units": hpt.Int(16, 256, when={"layers": [3, 4]}),
    "batch": hpt.Int(8, 512, log=True),
    "dropout": hpt.Float(0.0, 0.5, step=0.1),
    "optimizer": hpt.Choice(["adam", "sgd", ("sgd", "nesterov")]),
    "momentum": hpt.Float(0.0, 0.99, when={"optimizer": ["sgd"]}),
}

SQUARE = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)}


def mixed_loss(params: Mapping[str, Any]) -> float:
    """A loss over MIXED that every kind of domain and both conditions shape; smallest near lr 1e-3, 3 layers."""
    loss = (math.log10(params["lr"]) + 3) ** 2 + abs(params["layers"] - 3) + (params["dropout"] - 0.2) ** 2
    loss += abs(math.log2(params["batch"]) - 6) / 3
    loss += 0.0 if params["optimizer"] == ("sgd", "nesterov") else 1.0
    if "units" in params:
        loss += abs(params["units"] - 128) / 128
    return loss


async def tune(
    objective: Any, space: Any, strategy: Any, *, seed: int = 0, max_trials: int | None = 20, **options: Any
) -> hpt.StudyResult:
    """One silent run, guarded against hangs; ``options`` go to the Tuner (concurrency, storage, study...)."""
    import anyio

    tuner = hpt.Tuner(objective, space, strategy=strategy, seed=seed, max_trials=max_trials, loggers=[], **options)
    with anyio.fail_after(60):
        return await tuner.run()


def branin(params: Mapping[str, Any]) -> float:
    """Branin on the unit square (rescaled to its usual box); minimum about 0.398."""
    x1, x2 = 15 * params["x"] - 5, 15 * params["y"]
    b, c = 5.1 / (4 * math.pi**2), 5 / math.pi
    return (x2 - b * x1**2 + c * x1 - 6) ** 2 + 10 * (1 - 1 / (8 * math.pi)) * math.cos(x1) + 10


def cli(capsys: Any, *argv: str) -> tuple[int, str, str]:
    """Run the ``hpt-async`` command in-process: its exit code, stdout and stderr."""
    from hpt_async.cli import main

    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def installed_plugin(dist_name: str, entry_point: str, module: str, *, needs: tuple[str, ...] = ()) -> ModuleType:
    """The module of an installed plugin distribution; the calling test fails (never skips) when it is missing.

    ``entry_point`` is the one ``name = module`` pair the distribution must
    declare in the ``hpt_async`` group; ``needs`` lists modules it depends on.
    """
    import importlib
    from importlib.metadata import PackageNotFoundError, distribution

    import pytest

    from hpt_async.plugins import ENTRY_POINT_GROUP

    install = f"pip install -e plugins/{dist_name}"
    try:
        dist = distribution(dist_name)
    except PackageNotFoundError:
        pytest.fail(f"the {dist_name} distribution is not installed; run `{install}` from the repository root")
    points = [(ep.name, ep.value) for ep in dist.entry_points if ep.group == ENTRY_POINT_GROUP]
    if points != [(entry_point, f"{module}.plugin")]:
        pytest.fail(f"{dist_name} is installed without its entry point (found {points}); reinstall: `{install}`")
    for name in needs:
        try:
            importlib.import_module(name)
        except ImportError:
            pytest.fail(f"{name} (a dependency of {dist_name}) is missing; run `{install}`")
    return importlib.import_module(module)
