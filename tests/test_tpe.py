"""The ``tpe`` strategy: its Parzen estimator, and its behaviour through the Tuner."""

from __future__ import annotations

import threading
from typing import Any

import anyio
import numpy as np
import pytest
from common import MIXED, SQUARE, branin, mixed_loss, tune

import hpt_async as hpt
from hpt_async.strategies._encoding import Encoder
from hpt_async.strategies.tpe import ParzenEstimator, TPEStrategy

# -- the Parzen estimator ---------------------------------------------------------------


def test_numeric_density_integrates_to_one_and_peaks_at_its_points() -> None:
    enc = Encoder(hpt.Space({"x": hpt.Float(0.0, 1.0)}))
    est = ParzenEstimator(enc, np.array([[0.05], [0.3], [0.32]]))
    grid = np.linspace(0.0, 1.0, 20001)[:, None]
    density = np.exp(est.log_pdf(grid))
    assert np.trapezoid(density, grid[:, 0]) == pytest.approx(1.0, abs=1e-3)
    assert density[int(0.31 * 20000)] > density[int(0.8 * 20000)] > 0  # the uniform prior keeps every point possible


def test_choice_density_sums_to_one_and_favours_observed_values() -> None:
    enc = Encoder(hpt.Space({"c": hpt.Choice(["a", "b", "c", "d"])}))
    est = ParzenEstimator(enc, np.array([[0.125], [0.125], [0.375]]))  # "a" twice, "b" once
    values = np.array([[0.125], [0.375], [0.625], [0.875]])
    p = np.exp(est.log_pdf(values))
    assert p.sum() == pytest.approx(1.0, abs=1e-9)
    assert p[0] > p[1] > p[2] == pytest.approx(p[3])


def test_joint_density_keeps_correlation_between_parameters() -> None:
    """Points on the diagonal: the joint estimate prefers the diagonal over its mirror image."""
    enc = Encoder(hpt.Space(SQUARE))
    t = np.linspace(0.1, 0.9, 9)
    est = ParzenEstimator(enc, np.column_stack([t, t]))
    on = np.exp(est.log_pdf(np.array([[0.2, 0.2], [0.8, 0.8]])))
    off = np.exp(est.log_pdf(np.array([[0.2, 0.8], [0.8, 0.2]])))
    assert on.min() > 3 * off.max()


def test_samples_follow_the_density() -> None:
    enc = Encoder(hpt.Space({"x": hpt.Float(0.0, 1.0)}))
    est = ParzenEstimator(enc, np.array([[0.2], [0.7]]))
    draws = est.sample(40000, np.random.default_rng(0))[:, 0]
    assert draws.min() >= 0.0 and draws.max() <= 1.0
    hist, edges = np.histogram(draws, bins=20, range=(0, 1), density=True)
    centres = (edges[:-1] + edges[1:]) / 2
    expected = np.exp(est.log_pdf(centres[:, None]))
    np.testing.assert_allclose(hist, expected, rtol=0.15, atol=0.05)


def test_inactive_parameters_leave_a_component_uniform() -> None:
    space = hpt.Space({"kind": hpt.Choice(["a", "b"]), "x": hpt.Float(0.0, 1.0, when={"kind": "b"})})
    enc = Encoder(space)
    # Two trials of kind "a" (x inactive) and one of kind "b" with x = 0.9.
    est = ParzenEstimator(enc, np.array([[0.25, np.nan], [0.25, np.nan], [0.75, 0.9]]))
    p_a = np.exp(est.log_pdf(np.array([[0.25, np.nan]])))[0]
    p_b = np.exp(est.log_pdf(np.array([[0.75, 0.9], [0.75, 0.1]])))
    assert p_a > 0 and np.all(p_b > 0)
    assert p_b[0] > p_b[1]  # the one trial with x informs x
    # The density over the two branches integrates to one: P(a) + integral of p(b, x) dx.
    xs = np.linspace(0, 1, 4001)
    p_bx = np.exp(est.log_pdf(np.column_stack([np.full_like(xs, 0.75), xs])))
    assert p_a + np.trapezoid(p_bx, xs) == pytest.approx(1.0, abs=1e-3)


# -- the strategy -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_same_seed_reproduces_the_sequence_and_another_seed_does_not() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    a = await tune(objective, SQUARE, TPEStrategy(), seed=21, max_trials=25)
    b = await tune(objective, SQUARE, "tpe", seed=21, max_trials=25)
    c = await tune(objective, SQUARE, "tpe", seed=22, max_trials=25)
    assert [dict(t.params) for t in a.trials] == [dict(t.params) for t in b.trials]
    assert [dict(t.params) for t in a.trials][10:] != [dict(t.params) for t in c.trials][10:]


@pytest.mark.anyio
async def test_tpe_beats_random_on_a_smooth_function() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    tpe, rand = [], []
    for seed in range(3):
        tpe.append((await tune(objective, SQUARE, "tpe", seed=seed, max_trials=60)).best_value)
        rand.append((await tune(objective, SQUARE, "random", seed=seed, max_trials=60)).best_value)
    assert np.median(tpe) < np.median(rand)
    assert np.median(tpe) < 0.6


@pytest.mark.anyio
async def test_every_domain_kind_and_conditions_work_end_to_end() -> None:
    space = hpt.Space(MIXED)
    result = await tune(lambda trial: mixed_loss(trial.params), MIXED, "tpe", seed=4, max_trials=60)
    assert result.count(hpt.TrialState.COMPLETE) == 60
    for t in result.trials:
        params = dict(t.params)
        assert space.validate(params) == params
        assert ("units" in params) == (params["layers"] in (3, 4))
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
    later = [dict(t.params) for t in result.trials[30:]]
    assert sum(p["optimizer"] == ("sgd", "nesterov") for p in later) >= 15
    assert result.best_value < 1.5


@pytest.mark.anyio
async def test_running_trials_spread_concurrent_suggestions() -> None:
    """Eight suggestions asked with nothing told in between: the liar keeps them apart."""

    async def spread(pending: str) -> tuple[float, np.ndarray]:
        tuner = hpt.Tuner(lambda t: 0.0, SQUARE, strategy=TPEStrategy(pending=pending), seed=2, loggers=[])
        for _ in range(30):
            trial = await tuner.ask()
            await tuner.tell(trial, branin(trial.params))
        space = hpt.Space(SQUARE)
        points = np.array([space.to_unit((await tuner.ask()).params) for _ in range(8)])
        await tuner.close()
        dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1) + 9 * np.eye(8)
        return float(dist.min(axis=1).mean()), points

    with anyio.fail_after(60):
        liar, liar_points = await spread("liar")
        ignore, ignore_points = await spread("ignore")
    assert np.allclose(liar_points[0], ignore_points[0])  # nothing pending yet: the same suggestion
    assert liar > 1.3 * ignore


@pytest.mark.anyio
async def test_failed_and_pruned_trials_never_feed_the_model() -> None:
    async def objective(trial: hpt.Trial) -> float:
        x = trial.params["x"]
        if x < 0.3:
            await trial.report(-1e6, step=0)  # a tempting value on a pruned trial
            raise hpt.TrialPruned()
        if x > 0.85:
            raise RuntimeError("diverged")
        return (x - 0.7) ** 2 + (trial.params["y"] - 0.4) ** 2

    result = await tune(objective, SQUARE, "tpe", seed=7, max_trials=60)
    assert result.count(hpt.TrialState.PRUNED) >= 1
    assert result.count(hpt.TrialState.FAILED) >= 1
    assert result.best_value < 0.01
    late = [t.params["x"] for t in result.trials[30:]]
    assert sum(x < 0.3 for x in late) <= 4


@pytest.mark.anyio
async def test_concurrent_run_completes_with_valid_suggestions() -> None:
    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.001 * (trial.number % 3))
        return branin(trial.params)

    result = await tune(objective, SQUARE, "tpe", seed=6, max_trials=40, concurrency=8)
    assert result.count(hpt.TrialState.COMPLETE) == 40
    assert len({tuple(t.params.values()) for t in result.trials}) == 40


@pytest.mark.anyio
async def test_small_suggestions_run_on_the_loop_and_large_ones_off_it(monkeypatch: pytest.MonkeyPatch) -> None:
    """A suggestion over a few results is made in place; one over many, or a large batch, in a worker thread."""
    from hpt_async.strategies import tpe

    threads: list[bool] = []
    original = TPEStrategy._suggest

    def spy(self: TPEStrategy, *args: Any) -> np.ndarray:
        threads.append(threading.current_thread() is threading.main_thread())
        return original(self, *args)

    monkeypatch.setattr(TPEStrategy, "_suggest", spy)
    await tune(lambda t: branin(t.params), SQUARE, "tpe", max_trials=14)
    assert threads and all(threads)
    threads.clear()
    monkeypatch.setattr(tpe, "_INLINE_WORK", 5)  # as if the study held thousands of results
    await tune(lambda t: branin(t.params), SQUARE, "tpe", max_trials=14)
    assert threads and not any(threads)
    threads.clear()
    monkeypatch.setattr(tpe, "_INLINE_WORK", 10_000)
    await tune(lambda t: branin(t.params), SQUARE, "tpe", max_trials=20, concurrency=3)  # others running: a thread
    assert threads and not any(threads)
