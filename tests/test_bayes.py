"""The ``bayes`` strategy: its GP, log EI, encoding, and behaviour through the Tuner."""

from __future__ import annotations

import math
import threading
from typing import Any

import anyio
import numpy as np
import pytest
from common import MIXED, SQUARE, branin, mixed_loss, tune
from scipy import optimize, stats

import hpt_async as hpt
from hpt_async.strategies import _gp
from hpt_async.strategies._encoding import Encoder
from hpt_async.strategies.bayes import BayesStrategy

# -- the GP ------------------------------------------------------------------------------


def test_gp_interpolates_its_data_and_is_uncertain_away_from_it() -> None:
    rng = np.random.default_rng(0)
    x = rng.random((15, 2))
    y = np.sin(5 * x[:, 0]) + np.cos(3 * x[:, 1])
    y = (y - y.mean()) / y.std()
    theta = _gp.fit_theta(x, y, None, rng)
    gp = _gp.GP(x, y, theta)
    mean, var = gp.predict(x)
    assert np.max(np.abs(mean - y)) < 0.05
    assert np.max(var) < 0.01 * gp.s2
    # Far from every point the posterior falls back to the prior.
    far_mean, far_var = gp.predict(np.full((1, 2), 30.0))
    assert abs(far_mean[0]) < 1e-3
    assert far_var[0] == pytest.approx(gp.s2, rel=1e-3)


def test_fit_recovers_a_short_length_scale_where_the_function_varies() -> None:
    rng = np.random.default_rng(1)
    x = rng.random((40, 2))
    y = np.sin(12 * x[:, 0])  # varies along x only
    y = (y - y.mean()) / y.std()
    theta = _gp.fit_theta(x, y, None, rng)
    assert math.exp(theta[0]) < 0.5 < math.exp(theta[1])


def test_marginal_likelihood_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(2)
    x = rng.random((25, 3))
    y = rng.normal(size=25)
    for theta in (np.array([-1.0, -0.3, 0.5, 0.2, -4.0]), np.array([0.1, 1.0, -2.0, -0.5, -1.0])):
        err = optimize.check_grad(
            lambda t: _gp.neg_log_posterior(t, x, y)[0], lambda t: _gp.neg_log_posterior(t, x, y)[1], theta
        )
        scale = np.linalg.norm(_gp.neg_log_posterior(theta, x, y)[1])
        assert err < 1e-5 * max(scale, 1.0)


def test_log_ei_gradient_matches_finite_differences() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((20, 3))
    y = rng.normal(size=20)
    gp = _gp.GP(x, y, np.array([-1.2, -0.8, -0.5, 0.0, -6.0]))
    z = rng.random((6, 3))
    best = float(y.min())
    value, grad = gp.log_ei_grad(z, best)
    np.testing.assert_allclose(value, gp.log_ei(z, best), rtol=1e-6, atol=1e-6)
    eps = 1e-6
    for j in range(3):
        step = np.zeros(3)
        step[j] = eps
        fd = (gp.log_ei(z + step, best) - gp.log_ei(z - step, best)) / (2 * eps)
        np.testing.assert_allclose(grad[:, j], fd, rtol=1e-4, atol=1e-4 * np.abs(grad).max())


def test_the_full_resource_view_holds_the_level_at_one_and_drops_its_gradient() -> None:
    from hpt_async.strategies.bayes import _AtFullResource

    rng = np.random.default_rng(4)
    x = np.hstack([rng.random((24, 2)), rng.choice([0.3, 0.6, 1.0], size=(24, 1))])  # features, then level
    y = rng.normal(size=24)
    gp = _gp.GP(x, y, np.array([-1.0, -0.7, -0.2, 0.0, -6.0]))
    view = _AtFullResource(gp)
    z = rng.random((5, 2))
    at_one = np.hstack([z, np.ones((5, 1))])
    best = float(y.min())
    np.testing.assert_allclose(view.log_ei(z, best), gp.log_ei(at_one, best))
    np.testing.assert_allclose(view.predict(z)[0], gp.predict(at_one)[0])
    assert not np.allclose(view.predict(z)[0], gp.predict(np.hstack([z, np.full((5, 1), 0.3)]))[0])
    value, grad = view.log_ei_grad(z, best)
    assert grad.shape == (5, 2)
    full_value, full_grad = gp.log_ei_grad(at_one, best)
    np.testing.assert_allclose(value, full_value)
    np.testing.assert_allclose(grad, full_grad[:, :2])


def test_incremental_update_equals_a_fresh_factorisation() -> None:
    rng = np.random.default_rng(9)
    x = rng.random((30, 3))
    y = rng.normal(size=30)
    theta = np.array([-1.0, -0.5, 0.3, 0.1, -5.0])
    small = _gp.GP(x[:22], y[:22], theta)
    y2 = rng.normal(size=30)  # outputs are re-standardised between suggestions: all of them may change
    grown = small.update(x, y2)
    fresh = _gp.GP(x, y2, theta)
    np.testing.assert_allclose(grown.chol, fresh.chol, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grown.alpha, fresh.alpha, rtol=1e-8, atol=1e-10)
    z = rng.random((50, 3))
    for a, b in zip(grown.predict(z), fresh.predict(z), strict=True):
        np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-12)
    # Fantasies go through the same extension.
    both = small.with_points(x[22:], y[22:])
    np.testing.assert_allclose(both.chol, _gp.GP(x, y, theta).chol, rtol=1e-10, atol=1e-12)
    # Inputs that do not extend the old ones are factored afresh, still correctly.
    other = small.update(x[::-1], y2[::-1])
    np.testing.assert_allclose(other.predict(z)[0], _gp.GP(x[::-1], y2[::-1], theta).predict(z)[0], atol=1e-10)


def test_incremental_update_handles_repeated_points() -> None:
    x = np.array([[0.1, 0.2], [0.5, 0.5], [0.9, 0.1]])
    y = np.array([0.0, 1.0, -1.0])
    theta = np.array([math.log(0.3), math.log(0.3), 0.0, math.log(1e-6)])
    gp = _gp.GP(x, y, theta)
    # The same point twice more, with a tiny noise: the new block is nearly singular.
    grown = gp.update(np.vstack([x, x[:1], x[:1]]), np.array([0.0, 1.0, -1.0, 0.0, 0.0]))
    mean, var = grown.predict(x)
    assert np.all(np.isfinite(mean)) and np.all(var >= 0)
    assert abs(mean[0]) < 1e-3


def test_a_warm_refit_stays_at_an_optimum_and_predicts_like_a_fresh_model() -> None:
    rng = np.random.default_rng(10)
    x = rng.random((40, 2))
    y = np.sin(6 * x[:, 0]) + 0.3 * x[:, 1]
    y = (y - y.mean()) / y.std()
    theta = _gp.fit_theta(x, y, None, rng, maxiter=500)
    warm = _gp.fit_theta(x, y, theta, rng, runs=1, maxiter=50)
    # Started at the optimum, the warm refresh does not wander off it.
    assert _gp.neg_log_posterior(warm, x, y)[0] <= _gp.neg_log_posterior(theta, x, y)[0] + 1e-6
    np.testing.assert_allclose(warm, theta, atol=1e-2)
    z = rng.random((20, 2))
    np.testing.assert_allclose(_gp.GP(x, y, warm).predict(z)[0], _gp.GP(x, y, theta).predict(z)[0], atol=1e-3)


def test_the_strategy_reuses_its_factor_while_the_hyperparameters_hold(monkeypatch: pytest.MonkeyPatch) -> None:
    """Between hyperparameter refits the model is extended, and it equals a model built afresh."""
    space = hpt.Space(SQUARE)
    enc = Encoder(space)
    rng = np.random.default_rng(11)
    u = rng.random((40, 2))
    losses = np.array([branin(space.from_unit(r.tolist())) for r in u])
    strategy = BayesStrategy()
    empty = np.empty((0, 2))
    updates: list[int] = []
    original = _gp.GP.update

    def spy(self: _gp.GP, x: np.ndarray, y: np.ndarray) -> _gp.GP:
        updates.append(len(self.x))
        return original(self, x, y)

    monkeypatch.setattr(_gp.GP, "update", spy)
    strategy._suggest(enc, u[:30], losses[:30], empty, empty, [0, 30])
    theta = strategy._theta
    strategy._suggest(enc, u[:31], losses[:31], empty, empty, [0, 31])
    # 31 < 30 * 1.1: no refit, so the factor of 30 points was extended by one.
    assert strategy._theta is theta and updates == [30]
    model = strategy._gp
    fresh = _gp.GP(enc.features(u[:31]), _gp.standardise(losses[:31]), theta)
    np.testing.assert_allclose(model.chol, fresh.chol, rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(model.alpha, fresh.alpha, rtol=1e-8, atol=1e-10)
    strategy._suggest(enc, u[:40], losses[:40], empty, empty, [0, 40])
    assert strategy._theta is not theta  # grown by a third: refitted


def test_log_h_matches_the_direct_formula_and_stays_finite_in_the_tail() -> None:
    z = np.linspace(-6, 6, 121)
    direct = np.log(stats.norm.pdf(z) + z * stats.norm.cdf(z))
    np.testing.assert_allclose(_gp.log_h(z), direct, rtol=1e-9, atol=1e-12)
    tail = -np.logspace(0, 100, 50)
    out = _gp.log_h(tail)
    assert np.all(np.isfinite(out))
    # Strictly increasing in z: the order of candidates survives underflow of EI itself.
    assert np.all(np.diff(_gp.log_h(np.sort(tail))) > 0)
    # Where EI underflows to zero, log EI is still informative.
    assert stats.norm.pdf(-40.0) + -40.0 * stats.norm.cdf(-40.0) <= 0.0
    assert math.isfinite(_gp.log_h(np.array([-40.0]))[0])


def test_the_dense_log_h_equals_the_masked_one_in_every_regime() -> None:
    rng = np.random.default_rng(5)
    z = np.concatenate(
        [
            rng.normal(0.0, 2.0, 200),  # the direct formula
            -(10.0 ** rng.uniform(0, 7, 200)),  # erfcx
            -(10.0 ** rng.uniform(8, 100, 50)),  # the asymptote
            np.array([-1.0, np.nextafter(-1.0, 0.0), np.nextafter(-1.0, -2.0), 0.0, 8.0]),
        ]
    )
    rng.shuffle(z)
    np.testing.assert_array_equal(_gp.log_h_dense(z), _gp.log_h(z))
    assert np.all(np.isfinite(_gp.log_h_dense(z)))


def test_log_ei_is_finite_far_from_data_and_where_improvement_is_hopeless() -> None:
    x = np.array([[0.1], [0.5], [0.9]])
    y = np.array([-1.0, 0.0, 1.0])
    gp = _gp.GP(x, y, np.array([math.log(0.2), 0.0, math.log(1e-6)]))
    z = np.array([[0.1], [0.5], [0.9], [1e3], [-1e3]])
    for best in (-1.0, -1e6):
        value = gp.log_ei(z, best)
        assert np.all(np.isfinite(value))
        _, grad = gp.log_ei_grad(z, best)
        assert np.all(np.isfinite(grad))
    # Near the worst point improvement is least likely.
    value = gp.log_ei(z, -1.0)
    assert value[2] < value[1] < value[3]


def test_standardise_is_monotone_and_tames_outliers() -> None:
    rng = np.random.default_rng(4)
    y = np.concatenate([rng.normal(size=40), [1e9]])
    t = _gp.standardise(y)
    assert np.all(np.isfinite(t))
    assert np.array_equal(np.argsort(t, kind="stable"), np.argsort(y, kind="stable"))
    # The outlier does not squash the others into one value.
    assert np.std(t[:40]) > 0.3
    assert np.all(_gp.standardise(np.full(5, 3.0)) == 0.0)


def test_encoder_snaps_exactly_as_the_space_decodes() -> None:
    space = hpt.Space(MIXED)
    enc = Encoder(space)
    u = np.random.default_rng(5).random((300, len(space)))
    snapped, active = enc.snap(u)
    for row, srow, arow in zip(u, snapped, active, strict=True):
        params = space.from_unit(row.tolist())
        assert list(arow) == [name in params for name in space]
        np.testing.assert_allclose(np.nan_to_num(srow, nan=-1), np.nan_to_num(space.to_unit(params), nan=-1))
        assert enc.decode(srow) == params
    z = enc.features(snapped)
    assert z.shape == (300, enc.dim) and enc.dim == len(space) + 2  # the Choice takes three columns
    again, _ = enc.snap(enc.unit_of_features(z))
    np.testing.assert_allclose(np.nan_to_num(again, nan=-1), np.nan_to_num(snapped, nan=-1))


# -- the strategy -----------------------------------------------------------------------


@pytest.mark.anyio
async def test_bayes_is_registered_and_configurable_by_name() -> None:
    result = await tune(lambda t: branin(t.params), SQUARE, "bayes", max_trials=12)
    assert result.count(hpt.TrialState.COMPLETE) == 12
    with pytest.raises(ValueError, match="pending"):
        BayesStrategy(pending="nope")
    for bad in (-0.1, 11, True, "0.1"):
        with pytest.raises(ValueError, match="refit_fraction"):
            BayesStrategy(refit_fraction=bad)  # type: ignore[arg-type]
    assert BayesStrategy().refit_fraction == 0.1  # unset: 0.1 with one objective
    assert BayesStrategy(refit_fraction=0).refit_fraction == 0.0


@pytest.mark.anyio
async def test_same_seed_reproduces_the_sequence_and_another_seed_does_not() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    a = await tune(objective, SQUARE, BayesStrategy(), seed=11, max_trials=16)
    b = await tune(objective, SQUARE, BayesStrategy(), seed=11, max_trials=16)
    c = await tune(objective, SQUARE, BayesStrategy(), seed=12, max_trials=16)
    assert [dict(t.params) for t in a.trials] == [dict(t.params) for t in b.trials]
    assert [dict(t.params) for t in a.trials][8:] != [dict(t.params) for t in c.trials][8:]


@pytest.mark.anyio
async def test_bayes_beats_random_on_a_smooth_function() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    bayes, rand = [], []
    for seed in range(3):
        bayes.append((await tune(objective, SQUARE, "bayes", seed=seed, max_trials=25)).best_value)
        rand.append((await tune(objective, SQUARE, "random", seed=seed, max_trials=25)).best_value)
    assert np.median(bayes) < 0.45  # within 0.05 of the optimum, 0.398
    assert np.median(bayes) < np.median(rand) - 0.2


@pytest.mark.anyio
async def test_maximise_direction_is_respected() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return -branin(trial.params)

    result = await tune(objective, SQUARE, "bayes", seed=3, max_trials=25, direction="maximize")
    # Near a minimum of branin (0.398), or stuck on the box edge next to one (1.94): maximising
    # branin itself would end beyond -100.
    assert result.best_value > -3.0


@pytest.mark.anyio
async def test_every_domain_kind_and_conditions_work_end_to_end() -> None:
    space = hpt.Space(MIXED)
    result = await tune(lambda trial: mixed_loss(trial.params), MIXED, "bayes", seed=4, max_trials=30)
    assert result.count(hpt.TrialState.COMPLETE) == 30
    for t in result.trials:
        params = dict(t.params)
        assert space.validate(params) == params  # right types, values on their grid, conditions honoured
        assert ("units" in params) == (params["layers"] in (3, 4))
        assert ("momentum" in params) == (params["optimizer"] == "sgd")
    later = [dict(t.params) for t in result.trials[15:]]
    # The model has learned which category and which layer count pay off.
    assert sum(p["optimizer"] == ("sgd", "nesterov") for p in later) >= 8
    assert result.best_value < 1.0


@pytest.mark.anyio
async def test_pending_points_change_the_suggestion() -> None:
    """Asked twice with nothing told in between, the second suggestion avoids the first."""

    async def suggestions(pending: str) -> tuple[np.ndarray, np.ndarray]:
        tuner = hpt.Tuner(lambda t: 0.0, SQUARE, strategy=BayesStrategy(pending=pending), seed=5, loggers=[])
        for _ in range(12):
            trial = await tuner.ask()
            await tuner.tell(trial, branin(trial.params))
        first = await tuner.ask()
        second = await tuner.ask()
        await tuner.close()
        space = hpt.Space(SQUARE)
        return np.array(space.to_unit(first.params)), np.array(space.to_unit(second.params))

    with anyio.fail_after(60):
        a1, a2 = await suggestions("believer")
        b1, b2 = await suggestions("ignore")
    assert np.allclose(a1, b1)  # the same history gives the same first suggestion
    assert np.linalg.norm(b2 - b1) < 0.02  # without pending points the second piles onto the first
    assert np.linalg.norm(a2 - a1) > 0.05  # with them it moves away


@pytest.mark.anyio
async def test_eight_pending_suggestions_spread_out() -> None:
    """Eight asks in a row with nothing told, as eight free workers would make them."""

    async def batch(pending: str) -> np.ndarray:
        strategy = BayesStrategy(pending=pending)
        tuner = hpt.Tuner(lambda t: 0.0, SQUARE, strategy=strategy, seed=6, loggers=[])
        for _ in range(10):
            trial = await tuner.ask()
            await tuner.tell(trial, branin(trial.params))
        space = hpt.Space(SQUARE)
        points = []
        for _ in range(8):
            # A model that keeps up (as on a quiet machine): the background acquisition ends before the next
            # ask, so no ask is served the spare candidates that a model left behind hands out.
            job = strategy._acq
            if job is not None:
                await anyio.to_thread.run_sync(job.done.wait)
            points.append(space.to_unit((await tuner.ask()).params))
        await tuner.close()
        assert strategy.behind == 0
        return np.array(points)

    def nearest(points: np.ndarray) -> np.ndarray:
        dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1) + 9 * np.eye(len(points))
        return dist.min(axis=1)

    with anyio.fail_after(60):
        spread = nearest(await batch("believer"))
        piled = nearest(await batch("ignore"))
    assert spread.min() > 0.02  # no two on top of each other
    # Without conditioning on each other they crowd around the acquisition's peak.
    assert np.median(piled) < np.median(spread) / 4
    assert np.median(spread) > 5 * np.median(piled)


@pytest.mark.anyio
@pytest.mark.parametrize("rounds", [5, None])  # 24 trials 8 at once: capped at 4 running, or not capped
async def test_concurrent_run_gives_valid_suggestions(rounds: int | None) -> None:
    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.01 * (1 + trial.number % 3))
        return branin(trial.params)

    result = await tune(objective, SQUARE, BayesStrategy(rounds=rounds), seed=6, max_trials=24, concurrency=8)
    assert result.count(hpt.TrialState.COMPLETE) == 24
    assert len({tuple(t.params.values()) for t in result.trials}) == 24


@pytest.mark.anyio
async def test_failed_and_pruned_trials_never_feed_the_model() -> None:
    """Pruned trials report a tempting value and failed ones return nothing; neither lures the search."""

    async def objective(trial: hpt.Trial) -> float:
        x = trial.params["x"]
        if x < 0.3:
            await trial.report(-1e6, step=0)  # looks excellent, but the trial is pruned
            raise hpt.TrialPruned()
        if x > 0.85:
            raise RuntimeError("diverged")
        if 0.5 < x < 0.55:
            return math.nan  # FAILED as well
        return (x - 0.7) ** 2 + (trial.params["y"] - 0.4) ** 2

    result = await tune(objective, SQUARE, "bayes", seed=7, max_trials=40)
    assert result.count(hpt.TrialState.PRUNED) >= 1
    assert result.count(hpt.TrialState.FAILED) >= 1
    assert result.best_value < 0.01
    late = [t.params["x"] for t in result.trials[20:]]
    # The -1e6 of pruned trials, were it a value, would draw nearly all of them there; a search that
    # ignores it visits x < 0.3 at about the rate of random search (6 of 20) once the optimum is found.
    assert sum(x < 0.3 for x in late) <= 10
    pruned = [dict(t.params) for t in result.trials if t.state is hpt.TrialState.PRUNED]
    assert len({tuple(p.values()) for p in pruned}) == len(pruned)  # a pruned configuration is not retried


@pytest.mark.anyio
async def test_model_work_runs_off_the_event_loop(monkeypatch: pytest.MonkeyPatch) -> None:
    threads: list[bool] = []
    original = BayesStrategy._suggest

    def spy(self: BayesStrategy, *args: Any, **kwargs: Any) -> np.ndarray:
        threads.append(threading.current_thread() is threading.main_thread())
        return original(self, *args, **kwargs)

    monkeypatch.setattr(BayesStrategy, "_suggest", spy)
    await tune(lambda t: branin(t.params), SQUARE, "bayes", max_trials=12)
    assert threads and not any(threads)


@pytest.mark.anyio
async def test_a_resumed_strategy_learns_the_history_at_start() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    tuner = hpt.Tuner(objective, SQUARE, strategy=BayesStrategy(), seed=8, max_trials=12, loggers=[])
    with anyio.fail_after(60):
        await tuner.run()
        fresh = BayesStrategy()
        await fresh.start(tuner.study)
        params = await fresh.ask(tuner.study, 12)
    # With twelve results known the model is used, not the design.
    design = await hpt.SobolStrategy().ask(tuner.study, 12)
    assert params != design
    assert hpt.Space(SQUARE).validate(params) == params
