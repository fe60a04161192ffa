"""The convergence stop rule: no improvement beyond noise for ``patience`` COMPLETE trials."""

from __future__ import annotations

from typing import Any

import pytest
from common import tune

import hpt_async as hpt

pytestmark = pytest.mark.anyio

SPACE = {"x": hpt.Float(0, 1), "y": hpt.Float(0, 1)}


def plateau(trial: Any) -> float:
    """Improves with every trial up to number 20, then never again."""
    return float(max(0, 20 - trial.number))


async def test_a_search_that_stopped_improving_stops_with_reason_converged() -> None:
    rule = hpt.Convergence(patience=10, min_trials=15)
    result = await tune(plateau, SPACE, "random", max_trials=500, converged=rule)
    assert result.reason == hpt.StopReason.CONVERGED == "converged"
    # Trial 20 is the last improvement; 10 trials later without one (trials 21..30), the run stops.
    assert len(result.trials) == 31


async def test_a_search_that_keeps_improving_runs_to_its_budget() -> None:
    rule = hpt.Convergence(patience=5, min_trials=5)
    result = await tune(lambda t: -float(t.number), SPACE, "random", max_trials=60, converged=rule)
    assert result.reason == "max_trials" and len(result.trials) == 60


async def test_improvements_within_the_noise_do_not_count() -> None:
    def tiny(trial: Any) -> float:
        return 100.0 - 1e-3 * trial.number  # improves at every trial, by far less than the noise

    loose = hpt.Convergence(patience=10, min_trials=10, noise=0.5)
    result = await tune(tiny, SPACE, "random", max_trials=200, converged=loose)
    assert result.reason == "converged" and len(result.trials) == 11
    strict = hpt.Convergence(patience=10, min_trials=10, noise=0.0)
    assert (await tune(tiny, SPACE, "random", max_trials=40, converged=strict)).reason == "max_trials"


def test_the_default_noise_is_a_fraction_of_the_spread_of_values() -> None:
    rule = hpt.Convergence(rel_noise=0.1)
    rule._losses = [float(v) for v in range(101)]
    assert rule.threshold() == pytest.approx(0.1 * (75 - 25))


async def test_running_trials_finish_when_the_rule_fires() -> None:
    import anyio

    async def slow_plateau(trial: hpt.Trial) -> float:
        await anyio.sleep(0.002)
        return float(max(0, 8 - trial.number))

    rule = hpt.Convergence(patience=6, min_trials=6)
    result = await tune(slow_plateau, SPACE, "random", max_trials=400, concurrency=4, converged=rule)
    assert result.reason == "converged"
    assert result.count("cancelled") == 0 and result.count("complete") == len(result.trials)


async def test_maximise_counts_higher_values_as_improvements() -> None:
    rule = hpt.Convergence(patience=5, min_trials=5)
    result = await tune(lambda t: float(t.number), SPACE, "random", max_trials=40, converged=rule, direction="maximize")
    assert result.reason == "max_trials"


async def test_a_resumed_study_counts_its_history() -> None:
    storage = hpt.MemoryStorage()
    await tune(plateau, SPACE, "random", max_trials=28, storage=storage, study="s")
    rule = hpt.Convergence(patience=10, min_trials=15)
    result = await tune(plateau, SPACE, "random", max_trials=500, storage=storage, study="s", converged=rule)
    assert result.reason == "converged" and len(result.trials) == 31


async def test_true_means_the_defaults() -> None:
    tuner = hpt.Tuner(plateau, SPACE, strategy="random", converged=True, loggers=[])
    assert isinstance(tuner.converged, hpt.Convergence) and tuner.converged.patience == 50
    assert tuner.converged.min_trials == 100
    assert hpt.Tuner(plateau, SPACE, strategy="random", converged=False, loggers=[]).converged is None


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"patience": 0}, "patience"),
        ({"patience": 2.5}, "patience"),
        ({"min_trials": 0}, "min_trials"),
        ({"noise": -1.0}, "noise"),
        ({"rel_noise": float("nan")}, "rel_noise"),
    ],
)
def test_bad_settings_are_refused(options: dict[str, Any], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        hpt.Convergence(**options)


def test_what_the_tuner_refuses() -> None:
    with pytest.raises(TypeError, match="converged must be"):
        hpt.Tuner(plateau, SPACE, converged=5, loggers=[])
    with pytest.raises(ValueError, match="judges one objective"):
        hpt.Tuner(plateau, SPACE, direction=("minimize", "maximize"), converged=True, loggers=[])


# -- the model's regret bound ----------------------------------------------------------------


def bowl(trial: Any) -> float:
    """A smooth bowl with its minimum 0 at (0.3, 0.7)."""
    return (trial.params["x"] - 0.3) ** 2 + (trial.params["y"] - 0.7) ** 2


async def test_the_regret_bound_stops_a_converged_search_with_its_own_reason(
    caplog: pytest.LogCaptureFixture,
) -> None:
    import logging

    rule = hpt.RegretBound(error=0.01, min_trials=10, every=5)
    with caplog.at_level(logging.INFO, logger="hpt_async"):
        result = await tune(bowl, SPACE, "bayes", max_trials=120, converged=rule)
    assert result.reason == hpt.StopReason.REGRET_BOUND == "regret_bound"
    assert len(result.trials) < 120
    assert rule.bound is not None and rule.error_used == 0.01 and rule.bound < 0.01
    assert "regret bound" in rule.describe() and "< error 0.01" in rule.describe()
    assert any("regret bound" in r.getMessage() for r in caplog.records)


async def test_an_error_too_small_to_reach_runs_to_the_budget() -> None:
    rule = hpt.RegretBound(error=1e-12, min_trials=10, every=5)
    result = await tune(bowl, SPACE, "random", max_trials=40, converged=rule)
    assert result.reason == "max_trials" and len(result.trials) == 40
    assert rule.bound is not None and rule.bound >= 1e-12
    assert ">= error" in rule.describe()


def _rule_with(points: int, seed: int = 0) -> hpt.RegretBound:
    """A rule that has learnt ``points`` random trials of the bowl (not yet checked)."""
    import numpy as np

    from hpt_async.strategies._encoding import Encoder

    rule = hpt.RegretBound(min_trials=5)
    space = hpt.Space(SPACE)
    rule._enc = Encoder(space)
    rng = np.random.default_rng(seed)
    for _ in range(points):
        x, y = rng.random(2)
        rule._rows.append(rule._enc.unit({"x": x, "y": y}))
        rule._losses.append(float((x - 0.3) ** 2 + (y - 0.7) ** 2))
    return rule


def test_the_bound_shrinks_as_the_data_grows_and_the_default_error_is_the_model_noise() -> None:
    few_bound, _ = _rule_with(8).evaluate()
    many_bound, many_error = _rule_with(150).evaluate()
    assert many_bound < few_bound
    assert few_bound > 0 and many_error > 0  # the fitted noise, in objective units


def test_flat_values_have_nothing_left_to_gain() -> None:
    rule = _rule_with(10)
    rule._losses = [1.0] * 10
    rule.error = 0.5
    assert rule.evaluate() == (0.0, 0.5)


async def test_the_regret_bound_counts_a_resumed_history() -> None:
    storage = hpt.MemoryStorage()
    first = await tune(bowl, SPACE, "random", max_trials=12, study="rb", storage=storage)
    assert len(first.trials) == 12
    rule = hpt.RegretBound(error=1e-12, min_trials=15, every=5)
    await tune(bowl, SPACE, "random", max_trials=16, study="rb", storage=storage, converged=rule)
    # 12 earlier + 4 new COMPLETE trials: the first check came at 15.
    assert rule.bound is not None and rule._checked == 15


async def test_a_resumed_history_is_checked_once_by_the_first_new_trial(monkeypatch: pytest.MonkeyPatch) -> None:
    storage = hpt.MemoryStorage()
    await tune(bowl, SPACE, "random", max_trials=40, study="rb", storage=storage)
    rule = hpt.RegretBound(error=1e-12, min_trials=10, every=5)
    checked_at: list[int] = []
    evaluate = rule.evaluate

    def counting(seed: int = 0) -> tuple[float, float]:
        checked_at.append(len(rule._losses))
        return evaluate(seed)

    monkeypatch.setattr(rule, "evaluate", counting)
    await tune(bowl, SPACE, "random", max_trials=41, study="rb", storage=storage, converged=rule, concurrency=1)
    # No check while the 40 earlier trials were replayed; one, of all 41, at the new trial.
    assert checked_at == [41]


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"error": -1.0}, "error"),
        ({"min_trials": 2}, "min_trials"),
        ({"every": 0}, "every"),
        ({"top": 0.0}, "top"),
        ({"top": 1.5}, "top"),
        ({"delta": 1.0}, "delta"),
        ({"candidates": 0}, "candidates"),
        ({"max_points": True}, "max_points"),
    ],
)
def test_bad_regret_bound_options_are_refused(options: dict[str, Any], match: str) -> None:
    with pytest.raises(ValueError, match=match):
        hpt.RegretBound(**options)


async def test_several_objectives_refuse_the_regret_bound() -> None:
    with pytest.raises(ValueError, match="one objective"):
        hpt.Tuner(lambda t: (1.0, 2.0), SPACE, direction=("minimize", "minimize"), converged=hpt.RegretBound())


def test_the_bound_is_fitted_on_one_blas_thread(monkeypatch: pytest.MonkeyPatch) -> None:
    """The fit's small matrices run on one BLAS thread: several contending for busy cores made checks take seconds."""
    import contextlib

    from hpt_async.strategies import _gp, _model

    inside = [False]
    entered: list[bool] = []
    fits_inside: list[bool] = []
    original_fit = _gp.fit_theta

    @contextlib.contextmanager
    def spy() -> Any:
        inside[0] = True
        entered.append(True)
        try:
            yield
        finally:
            inside[0] = False

    def fit(*args: Any, **kwargs: Any) -> Any:
        fits_inside.append(inside[0])
        return original_fit(*args, **kwargs)

    monkeypatch.setattr(_model, "one_blas_thread", spy)
    monkeypatch.setattr(_gp, "fit_theta", fit)
    bound, error = _rule_with(30).evaluate()
    assert entered == [True] and fits_inside == [True]
    assert bound >= 0 and error > 0
