"""``bayes`` with several objectives and with constraints: boxes, log EHVI, feasibility, and runs."""

from __future__ import annotations

import math
from typing import Any

import anyio
import numpy as np
import pytest
from scipy import special

import hpt_async as hpt
from hpt_async.strategies import _ehvi, _gp
from hpt_async.strategies._ehvi import MultiModel, box_decomposition, log_ehvi, log_ehvi_grad, nondominated_mask
from hpt_async.strategies._encoding import Encoder
from hpt_async.strategies.bayes import BayesStrategy, _end_game_start

# -- the boxes and log EHVI ------------------------------------------------------------------


def _improvement(lower: np.ndarray, upper: np.ndarray, y: np.ndarray) -> float:
    """Hypervolume improvement of ``y`` over the boxes: the part of each box that ``y`` dominates."""
    return float(np.sum(np.prod(np.clip(upper - np.maximum(y, lower), 0.0, None), axis=1)))


@pytest.mark.parametrize("m", [1, 2, 3])
def test_the_boxes_give_the_hypervolume_improvement_of_any_point(m: int) -> None:
    rng = np.random.default_rng(m)
    for trial in range(12):
        points = rng.random((int(rng.integers(1, 12)), m))
        if trial % 3 == 0 and m > 1:
            points[:, -1] = 1.0 - points[:, 0]  # a front in a plane (equal values across points)
        ref = np.full(m, 1.1)
        lower, upper = box_decomposition(points, ref)
        before = hpt.hypervolume(points.tolist(), ref.tolist())
        for y in rng.random((15, m)) * 1.2 - 0.05:
            after = hpt.hypervolume([*points.tolist(), y.tolist()], ref.tolist())
            assert _improvement(lower, upper, y) == pytest.approx(after - before, abs=1e-9)


def test_points_beyond_the_reference_point_are_left_out_and_no_front_leaves_one_box() -> None:
    lower, upper = box_decomposition(np.array([[2.0, 0.5]]), np.array([1.0, 1.0]))
    assert len(lower) == 1 and np.all(upper == 1.0) and np.all(np.isneginf(lower))
    lower, upper = box_decomposition(np.empty((0, 3)), np.array([1.0, 2.0, 3.0]))
    assert len(lower) == 1 and upper.tolist() == [[1.0, 2.0, 3.0]]


def test_nondominated_mask_keeps_one_of_equal_points() -> None:
    pts = np.array([[1.0, 2.0], [1.0, 2.0], [2.0, 1.0], [2.0, 2.0], [0.5, 3.0]])
    assert nondominated_mask(pts).tolist() == [True, False, True, False, True]


@pytest.mark.parametrize("m", [2, 3])
def test_log_ehvi_matches_monte_carlo(m: int) -> None:
    rng = np.random.default_rng(10 + m)
    front = rng.random((6, m))
    front = front[nondominated_mask(front)]
    ref = np.full(m, 1.2)
    lower, upper = box_decomposition(front, ref)
    mean = rng.random((4, m))
    sd = 0.05 + 0.3 * rng.random((4, m))
    exact = np.exp(log_ehvi(mean, sd, lower, upper))
    draws = 40000
    for i in range(4):
        y = mean[i] + sd[i] * rng.standard_normal((draws, m))
        hvi = np.sum(np.prod(np.clip(upper[None] - np.maximum(y[:, None, :], lower[None]), 0.0, None), axis=2), axis=1)
        se = hvi.std() / math.sqrt(draws)
        assert abs(exact[i] - hvi.mean()) < 5 * se + 1e-12


def test_log_ehvi_of_one_objective_is_log_ei_and_stays_finite_far_from_the_front() -> None:
    lower, upper = box_decomposition(np.array([[0.3], [0.7]]), np.array([2.0]))
    mean = np.array([[0.0], [0.5], [12.0], [40.0]])
    sd = np.array([[0.2], [0.1], [0.3], [0.2]])
    got = log_ehvi(mean, sd, lower, upper)
    expected = _gp.log_h((0.3 - mean[:, 0]) / sd[:, 0]) + np.log(sd[:, 0])
    assert np.allclose(got, expected)
    # Two objectives, hopeless points: EHVI underflows to zero, its log still ranks them.
    lower, upper = box_decomposition(np.array([[0.2, 0.8], [0.8, 0.2]]), np.array([1.0, 1.0]))
    far = log_ehvi(np.array([[30.0, 30.0], [60.0, 60.0]]), np.full((2, 2), 0.5), lower, upper)
    assert np.all(np.isfinite(far)) and far[0] > far[1]


def test_probability_of_feasibility_multiplies_the_improvement_and_alone_without_a_feasible_point() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((10, 1))
    gps = [_gp.GP(x, rng.standard_normal(10), _gp.default_theta(1)) for _ in range(3)]
    front = np.array([[0.0, 0.0]])
    with_front = MultiModel(gps, 2, np.array([0.5]), front, np.array([1.0, 1.0]))
    none_feasible = MultiModel(gps, 2, np.array([0.5]), np.empty((0, 2)), None)
    mean = np.array([[-1.0, -1.0, 0.0], [-1.0, -1.0, 2.0]])
    var = np.full((2, 3), 0.25)
    assert with_front.lower is not None and with_front.upper is not None
    ehvi = log_ehvi(mean[:, :2], np.sqrt(var[:, :2]), with_front.lower, with_front.upper)
    pof = special.log_ndtr((0.5 - mean[:, 2]) / 0.5)
    assert np.allclose(with_front.score(mean, var), ehvi + pof)
    assert np.allclose(none_feasible.score(mean, var), pof)


def test_a_pending_point_is_believed_at_its_mean_and_joins_the_front_when_it_looks_feasible() -> None:
    gps: list[Any] = []
    front = np.array([[0.0, 1.0], [1.0, 0.0]])
    model = MultiModel(gps, 2, np.array([0.0]), front, np.array([2.0, 2.0]))
    believed = model.believe(np.array([0.4, 0.4, -3.0]))
    assert believed.tolist() == [0.4, 0.4, -3.0]  # the means, constraints included, while some point is feasible
    grown = model.with_believed(believed)
    assert grown.front.tolist() == [[0.0, 1.0], [1.0, 0.0], [0.4, 0.4]]
    assert grown.lower is not None and grown.upper is not None
    assert _improvement(grown.lower, grown.upper, np.array([0.4, 0.4])) == pytest.approx(0.0, abs=1e-12)
    # Predicted infeasible, or dominated by the front: the front stays.
    assert model.with_believed(np.array([0.4, 0.4, 1.0])) is model
    assert model.with_believed(np.array([1.5, 1.5, -1.0])) is model
    # No feasible point yet: a constraint is believed a little past its threshold, never better.
    none_feasible = MultiModel(gps, 2, np.array([0.0]), np.empty((0, 2)), None)
    assert none_feasible.believe(np.array([0.0, 0.0, -2.0]))[2] > 0.0
    assert none_feasible.believe(np.array([0.0, 0.0, 3.0]))[2] == 3.0


# -- the gradient and the refinement -------------------------------------------------------------


def _hand_made_model(m: int, k: int, *, feasible: bool = True, seed: int = 0) -> MultiModel:
    """GPs of ``m`` objectives and ``k`` constraints on 3 inputs, fitted to smooth functions of 14 points."""
    rng = np.random.default_rng(seed)
    x = rng.random((14, 3))
    theta = np.concatenate([np.log(np.full(3, 0.4)), [0.0, math.log(1e-3)]])
    ys = [np.sin(3.0 * x @ rng.standard_normal(3)) for _ in range(m + k)]
    ys = [(y - y.mean()) / y.std() for y in ys]
    gps = [_gp.GP(x, y, theta) for y in ys]
    thresholds = np.full(k, 0.3)
    losses = np.column_stack(ys[:m])
    ok = np.all(np.column_stack(ys[m:]) <= thresholds, axis=1) if k else np.ones(14, dtype=bool)
    if not feasible:
        return MultiModel(gps, m, thresholds, np.empty((0, m)), None)
    front = losses[ok][nondominated_mask(losses[ok])]
    return MultiModel(gps, m, thresholds, front, losses[ok].max(axis=0) + 0.3)


@pytest.mark.parametrize(("m", "k", "feasible"), [(1, 0, True), (2, 0, True), (3, 0, True), (1, 1, True),
                                                  (2, 2, True), (2, 1, False)])  # fmt: skip
def test_the_acquisition_gradient_matches_finite_differences(m: int, k: int, feasible: bool) -> None:
    model = _hand_made_model(m, k, feasible=feasible, seed=m + 3 * k)
    z = np.random.default_rng(7).random((8, 3))
    value, grad = model.score_grad(z)
    assert np.allclose(value, model.score(*model.moments(z)))
    eps = 1e-6
    numeric = np.empty_like(z)
    for j in range(3):
        step = np.zeros(3)
        step[j] = eps
        up, down = model.score(*model.moments(z + step)), model.score(*model.moments(z - step))
        numeric[:, j] = (up - down) / (2 * eps)
    assert np.all(np.isfinite(value))
    assert np.allclose(grad, numeric, rtol=1e-4, atol=1e-5)


def test_log_ehvi_grad_gives_log_ehvi_and_its_derivatives_far_from_the_front_too() -> None:
    rng = np.random.default_rng(5)
    front = rng.random((5, 2))
    lower, upper = box_decomposition(front[nondominated_mask(front)], np.full(2, 1.2))
    mean = np.vstack([rng.random((3, 2)), [[8.0, 9.0]]])  # the last one is far behind the front
    sd = 0.1 + 0.3 * rng.random((4, 2))
    value, d_mean, d_sd = log_ehvi_grad(mean, sd, lower, upper)
    assert np.allclose(value, log_ehvi(mean, sd, lower, upper))
    eps = 1e-6
    for j in range(2):
        step = np.zeros(2)
        step[j] = eps
        dm = (log_ehvi(mean + step, sd, lower, upper) - log_ehvi(mean - step, sd, lower, upper)) / (2 * eps)
        ds = (log_ehvi(mean, sd + step, lower, upper) - log_ehvi(mean, sd - step, lower, upper)) / (2 * eps)
        assert np.allclose(d_mean[:, j], dm, rtol=1e-4, atol=1e-6)
        assert np.allclose(d_sd[:, j], ds, rtol=1e-4, atol=1e-6)
    assert d_mean[3].max() < 0.0  # far behind: a lower mean always helps


@pytest.mark.parametrize(("m", "k"), [(2, 0), (1, 1), (3, 0)])
def test_refining_the_best_candidates_raises_the_acquisition_of_the_point_chosen(m: int, k: int) -> None:
    model = _hand_made_model(m, k, seed=11 + m + k)
    enc = Encoder(hpt.Space({f"x{i}": hpt.Float(0.0, 1.0) for i in range(3)}))
    anchors = np.random.default_rng(1).random((3, 3))
    gains = []
    for seed in range(4):
        # The same draws either way: the refined points join the same candidates.
        kwargs: dict[str, Any] = {"candidates": 64, "local": 16, "starts": 3}
        _, plain_value = _ehvi.select(model, enc, anchors, np.random.default_rng(seed), 1, **kwargs)
        refined, refined_value = _ehvi.select(model, enc, anchors, np.random.default_rng(seed), 1, refine=3, **kwargs)
        assert refined_value >= plain_value
        assert refined_value == pytest.approx(float(model.score(*model.moments(enc.features(refined)))[0]))
        gains.append(refined_value - plain_value)
    assert max(gains) > 1e-3


def _best_feasible_input(model: MultiModel) -> np.ndarray:
    """The training input of a hand-made model (one objective) with the lowest mean among those that look feasible."""
    x = model.gps[0].x
    mean, _ = model.moments(x)
    ok = np.flatnonzero(np.all(mean[:, model.m :] <= model.thresholds, axis=1))
    i = ok[np.argmin(mean[ok, 0])]
    return x[i : i + 1]


def test_a_warm_start_climbs_on_its_own_to_a_fine_tolerance(monkeypatch: pytest.MonkeyPatch) -> None:
    model = _hand_made_model(1, 1, seed=0)
    enc = Encoder(hpt.Space({f"x{i}": hpt.Float(0.0, 1.0) for i in range(3)}))
    warm = _best_feasible_input(model)
    real = _ehvi.ascend
    climbs: list[tuple[np.ndarray, int, float]] = []

    def watched(value_grad: Any, enc: Encoder, z0: np.ndarray, s0: np.ndarray, maxiter: int, *args: Any) -> Any:
        climbs.append((z0.copy(), maxiter, args[0] if args else 1e-3))
        return real(value_grad, enc, z0, s0, maxiter, *args)

    monkeypatch.setattr(_ehvi, "ascend", watched)
    kwargs: dict[str, Any] = {"candidates": 64, "local": 16, "starts": 3, "refine": 2, "maxiter": 20}
    _ehvi.select(model, enc, model.gps[0].x[:3], np.random.default_rng(0), 1, **kwargs)
    assert [(len(z), it, tol) for z, it, tol in climbs] == [(2, 20, 1e-3)]  # without: the two candidates only
    climbs.clear()
    _ehvi.select(model, enc, model.gps[0].x[:3], np.random.default_rng(0), 1, warm=warm, **kwargs)
    end_game = (1, _ehvi._END_GAME_ITERS, _ehvi._END_GAME_FTOL)
    assert [(len(z), it, tol) for z, it, tol in climbs] == [(2, 20, 1e-3), end_game]
    assert np.array_equal(climbs[1][0], enc.features(warm))  # the warm start climbs from where it is, alone
    assert _ehvi._END_GAME_FTOL < 1e-3 and _ehvi._END_GAME_ITERS > 20


@pytest.mark.parametrize("model_seed", [0, 4])
def test_a_warm_start_raises_the_acquisition_of_the_point_chosen(model_seed: int) -> None:
    model = _hand_made_model(1, 1, seed=model_seed)
    enc = Encoder(hpt.Space({f"x{i}": hpt.Float(0.0, 1.0) for i in range(3)}))
    warm = _best_feasible_input(model)
    gains = []
    for seed in range(4):
        # The same draws either way: the warm start's climb joins the same candidates and refined points.
        kwargs: dict[str, Any] = {"candidates": 64, "local": 16, "starts": 3, "refine": 2}
        _, plain_value = _ehvi.select(model, enc, model.gps[0].x[:3], np.random.default_rng(seed), 1, **kwargs)
        rows, value = _ehvi.select(model, enc, model.gps[0].x[:3], np.random.default_rng(seed), 1, warm=warm, **kwargs)
        assert value >= plain_value
        assert value == pytest.approx(float(model.score(*model.moments(enc.features(rows)))[0]))
        gains.append(value - plain_value)
    assert max(gains) > 0.1


def test_the_end_game_starts_from_the_best_feasible_point_or_the_least_infeasible() -> None:
    u = np.array([[0.1, 0.1], [0.2, 0.2], [0.3, 0.3], [0.4, 0.4]])
    losses = np.array([0.5, 0.2, 0.1, 0.2])
    violation = np.array([0.0, 0.0, 0.3, 0.0])  # the lowest loss is infeasible; two feasible ones tie at 0.2
    assert np.array_equal(_end_game_start(u, losses, violation), u[1:2])
    assert np.array_equal(_end_game_start(u, losses, np.array([0.4, 0.2, 0.3, 0.2])), u[1:2])  # none feasible


@pytest.mark.parametrize("directions", [["minimize"], ["minimize", "minimize"]])
def test_one_objective_under_constraints_warm_starts_from_its_incumbent(
    monkeypatch: pytest.MonkeyPatch, directions: list[str]
) -> None:
    """With one objective and constraints, each suggestion's ``warm`` start is the best feasible trial so far;
    with several objectives there is none."""
    real = _ehvi.select
    calls: list[tuple[int, np.ndarray | None]] = []

    def watched(model: MultiModel, *args: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        calls.append((len(model.gps[0].x), kwargs.get("warm")))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(_ehvi, "select", watched)

    def objective(trial: hpt.SyncTrial) -> Any:
        value = _gardner(trial)
        return value if len(directions) == 1 else (value, trial.params["x"])

    result = _run(objective, GARDNER_SPACE, "bayes", 3, 14, directions=directions)
    assert len(calls) >= 4
    for n, warm in calls:
        if len(directions) > 1:
            assert warm is None
            continue
        done = [t for t in result.trials if t.number < n]
        best = min((t for t in done if t.feasible), key=lambda t: t.value)
        assert warm is not None and warm.shape == (1, 2)
        assert np.allclose(6.0 * warm[0], [best.params["x"], best.params["y"]])


def test_points_the_models_hold_are_not_proposed_again() -> None:
    enc = Encoder(hpt.Space({"a": hpt.Int(0, 2), "b": hpt.Int(0, 2)}))  # nine configurations
    every, _ = enc.snap(np.array([[a, b] for a in (0.0, 0.5, 1.0) for b in (0.0, 0.5, 1.0)]))
    z_all = enc.features(every)
    x = z_all[:8]  # all but the last one observed
    y = np.array([-3.0, 0.5, 1.0, 0.5, 1.0, 0.8, 1.0, 0.9])  # the first far ahead, observed with much noise
    theta = np.concatenate([np.zeros(x.shape[1]), [0.0, 0.0]])
    gps = [_gp.GP(x, y, theta), _gp.GP(x, y, theta)]
    losses = np.column_stack([y, y])
    model = MultiModel(gps, 2, np.empty(0), losses[nondominated_mask(losses)], losses.max(axis=0) + 0.3)
    scores = model.score(*model.moments(z_all))
    assert int(np.argmax(scores)) == 0  # the noisy best observation has the best acquisition
    for seed in range(3):
        rows, _ = _ehvi.select(model, enc, every[:2], np.random.default_rng(seed), 1, candidates=64, local=32, refine=2)
        assert np.array_equal(enc.features(rows)[0], z_all[8])  # the one configuration not held


# -- through the Tuner -------------------------------------------------------------------------


def _zdt1(x: list[float]) -> tuple[float, float]:
    g = 1 + 9 * sum(x[1:]) / (len(x) - 1)
    return x[0], g * (1 - math.sqrt(x[0] / g))


ZDT_SPACE = {f"x{i}": hpt.Float(0.0, 1.0) for i in range(3)}


def _zdt_objective(trial: hpt.SyncTrial) -> tuple[float, float]:
    return _zdt1([trial.params[f"x{i}"] for i in range(3)])


def _run(objective: Any, space: dict[str, Any], strategy: Any, seed: int, trials: int, **options: Any) -> Any:
    tuner = hpt.Tuner(objective, space, strategy=strategy, max_trials=trials, seed=seed, loggers=[], **options)
    return anyio.run(tuner.run)


def test_bayes_declares_several_objectives() -> None:
    assert BayesStrategy.multi_objective
    hpt.Tuner(None, ZDT_SPACE, directions=["minimize", "minimize"], strategy="bayes", loggers=[])


def test_several_objectives_improve_the_hypervolume_over_random_search() -> None:
    ref = (1.1, 11.0)
    gains = []
    for seed in range(3):
        hv = {}
        for strategy in ("bayes", "random"):
            result = _run(_zdt_objective, ZDT_SPACE, strategy, seed, 25, directions=["minimize", "minimize"])
            assert result.count(hpt.TrialState.COMPLETE) == 25
            hv[strategy] = hpt.hypervolume([t.values for t in result.trials], ref)
        gains.append(hv["bayes"] - hv["random"])
    # ZDT1's best hypervolume against (1.1, 11) is about 11.77; random search ends near 10, bayes near 11.7.
    assert min(gains) > 0.3, gains


def test_maximised_objectives_are_turned_into_losses() -> None:
    def objective(trial: hpt.SyncTrial) -> tuple[float, float]:
        f1, f2 = _zdt1([trial.params[f"x{i}"] for i in range(3)])
        return -f1, f2  # the first one maximised

    result = _run(objective, ZDT_SPACE, "bayes", 0, 25, directions=["maximize", "minimize"])
    losses = [(-t.values[0], t.values[1]) for t in result.trials]
    random = _run(objective, ZDT_SPACE, "random", 0, 25, directions=["maximize", "minimize"])
    random_losses = [(-t.values[0], t.values[1]) for t in random.trials]
    assert hpt.hypervolume(losses, (1.1, 11.0)) > hpt.hypervolume(random_losses, (1.1, 11.0)) + 0.3


def test_three_objectives_run_and_give_a_front() -> None:
    def dtlz2(trial: hpt.SyncTrial) -> tuple[float, float, float]:
        x = [trial.params[f"x{i}"] for i in range(3)]
        g = (x[2] - 0.5) ** 2
        a, b = x[0] * math.pi / 2, x[1] * math.pi / 2
        return (1 + g) * math.cos(a) * math.cos(b), (1 + g) * math.cos(a) * math.sin(b), (1 + g) * math.sin(a)

    result = _run(dtlz2, ZDT_SPACE, "bayes", 1, 20, directions=["minimize"] * 3)
    assert result.count(hpt.TrialState.COMPLETE) == 20
    assert result.best_trials
    assert len({tuple(t.params.values()) for t in result.trials}) == 20


def _gardner(trial: hpt.SyncTrial) -> float:
    x, y = trial.params["x"], trial.params["y"]
    trial.set_constraints([math.cos(x) * math.cos(y) - math.sin(x) * math.sin(y) - 0.5])
    return math.cos(2 * x) * math.cos(y) + math.sin(x)


GARDNER_SPACE = {"x": hpt.Float(0.0, 6.0), "y": hpt.Float(0.0, 6.0)}


def test_one_objective_with_a_constraint_finds_a_feasible_optimum_and_reports_it() -> None:
    for seed in range(3):
        result = _run(_gardner, GARDNER_SPACE, "bayes", seed, 25)
        assert result.best is not None and result.best.feasible
        feasible = [t.value for t in result.trials if t.feasible]
        assert result.best.value == min(feasible)
        assert any(not t.feasible for t in result.trials)  # infeasible trials existed and were not chosen
        # The constrained minimum is -2 (at cos(x + y) = 0.5 or below); random search stays above -1.9 here.
        assert result.best.value < -1.95


@pytest.mark.parametrize("stalled", [True, False])
def test_a_stalled_acquisition_is_asked_again_of_less_confident_models(
    monkeypatch: pytest.MonkeyPatch, stalled: bool
) -> None:
    """Below the stall level, the choice is made again with every length scale halved (up to three times)."""
    real = _ehvi.select
    calls: list[tuple[np.ndarray, int, int]] = []

    def watched(model: MultiModel, *args: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        rows, value = real(model, *args, **kwargs)
        scales = np.array([gp.theta[:2] for gp in model.gps])
        calls.append((scales, kwargs["candidates"], kwargs["refine"]))
        return rows, (-100.0 if stalled else max(value, 0.0))

    monkeypatch.setattr(_ehvi, "select", watched)
    strategy = BayesStrategy(n_initial=6)
    result = _run(_gardner, GARDNER_SPACE, strategy, 0, 8)
    assert result.count(hpt.TrialState.COMPLETE) == 8
    assert len(calls) == (8 if stalled else 2)  # two suggestions by the models
    for first in (0, 4) if stalled else (0, 1):
        scales, candidates, refine = calls[first]
        assert refine > 0
        if not stalled:
            continue
        for attempt in range(1, 4):
            retry_scales, retry_candidates, retry_refine = calls[first + attempt]
            assert np.allclose(retry_scales, scales - attempt * math.log(2.0))
            assert retry_candidates == candidates // 2 and retry_refine == 0


def test_a_stalled_batch_is_not_asked_again(monkeypatch: pytest.MonkeyPatch) -> None:
    """Only a single suggestion is retried with less confident models: a batch (or one with spares) is not."""
    real = _ehvi.select
    calls: list[tuple[int, int, int]] = []

    def stalled(model: MultiModel, enc: Any, anchors: Any, rng: Any, count: int, **kwargs: Any) -> Any:
        rows, _ = real(model, enc, anchors, rng, count, **kwargs)
        calls.append((count, kwargs["spares"], kwargs["refine"]))
        return rows, -100.0

    monkeypatch.setattr(_ehvi, "select", stalled)

    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        await anyio.sleep(0.002 * (1 + trial.number % 3))
        return _zdt1([trial.params[f"x{i}"] for i in range(3)])

    result = _run(objective, ZDT_SPACE, BayesStrategy(rounds=None), 4, 24, directions=["minimize", "minimize"],
                  concurrency=4)  # fmt: skip
    assert result.count(hpt.TrialState.COMPLETE) == 24
    batches = [c for c in calls if c[0] > 1 or c[1] > 0]
    assert batches  # the models chose for several workers at once
    # every batch was asked once, with its refinement (a retry has none)
    assert all(refine > 0 for _, _, refine in batches)
    singles = [c for c in calls if not (c[0] > 1 or c[1] > 0)]
    assert len(singles) % 4 == 0  # a single suggestion: the first try and three retries


def test_the_initial_design_is_larger_with_several_outcomes(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpt_async.strategies.bayes import default_initial, default_initial_several

    assert [default_initial_several(d) for d in range(1, 8)] == [6, 6, 6, 8, 10, 10, 10]
    assert [default_initial(d) for d in range(1, 8)] == [6, 6, 6, 6, 7, 8, 9]
    calls: list[int] = []
    real = _ehvi.select

    def counted(*args: Any, **kwargs: Any) -> Any:
        calls.append(1)
        return real(*args, **kwargs)

    monkeypatch.setattr(_ehvi, "select", counted)
    space = {f"x{i}": hpt.Float(0.0, 1.0) for i in range(4)}  # d = 4: 8 design points (6 with one objective)

    def objective(trial: hpt.SyncTrial) -> float:
        x = [trial.params[f"x{i}"] for i in range(4)]
        trial.set_constraints([sum(x) - 2.0])
        return sum((v - 0.3) ** 2 for v in x)

    result = _run(objective, space, "bayes", 0, 10)
    assert result.count(hpt.TrialState.COMPLETE) == 10
    assert len(calls) == 2  # the models chose trials 8 and 9 only


def test_with_no_feasible_trial_yet_the_search_heads_for_feasibility() -> None:
    space = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)}

    def corner(trial: hpt.SyncTrial) -> float:
        x, y = trial.params["x"], trial.params["y"]
        trial.set_constraints([math.hypot(x - 0.85, y - 0.85) - 0.12])  # a disk of 1% of the square
        return x + y

    found = {"bayes": 0, "random": 0}
    for seed in range(4):
        for strategy in found:
            result = _run(corner, space, strategy, seed, 30)
            n = sum(t.feasible for t in result.trials)
            found[strategy] += n
            if strategy == "bayes":
                assert n >= 1 and result.best is not None and result.best.feasible
    assert found["bayes"] >= 3 * max(found["random"], 1), found


def test_when_every_trial_is_infeasible_bayes_goes_on_and_there_is_no_best() -> None:
    def never(trial: hpt.SyncTrial) -> tuple[float, float]:
        trial.set_constraints([1.0, trial.params["x0"] + 0.5])
        return _zdt1([trial.params[f"x{i}"] for i in range(3)])

    result = _run(never, ZDT_SPACE, "bayes", 2, 16, directions=["minimize", "minimize"])
    assert result.count(hpt.TrialState.COMPLETE) == 16
    assert result.best_trials == []
    one = _run(lambda t: (t.set_constraints([1.0]), t.params["x0"])[1], ZDT_SPACE, "bayes", 2, 14)
    assert one.count(hpt.TrialState.COMPLETE) == 14 and one.best is None


def test_several_objectives_with_a_constraint_keep_to_the_feasible_front() -> None:
    def czdt(trial: hpt.SyncTrial) -> tuple[float, float]:
        f1, f2 = _zdt1([trial.params[f"x{i}"] for i in range(3)])
        trial.set_constraints([0.05 - (f1 - 0.4) ** 2 - (f2 - 0.4) ** 2])
        return f1, f2

    result = _run(czdt, ZDT_SPACE, "bayes", 0, 25, directions=["minimize", "minimize"])
    front = result.best_trials
    assert front and all(t.feasible for t in front)
    feasible = [t.values for t in result.trials if t.feasible]
    assert result.hypervolume((1.1, 11.0)) == pytest.approx(hpt.hypervolume(feasible, (1.1, 11.0)))
    random = _run(czdt, ZDT_SPACE, "random", 0, 25, directions=["minimize", "minimize"])
    assert result.hypervolume((1.1, 11.0)) > random.hypervolume((1.1, 11.0)) + 0.3


def test_constant_objectives_and_constraints_do_not_break_the_models() -> None:
    def flat(trial: hpt.SyncTrial) -> tuple[float, float]:
        trial.set_constraints([-1.0])
        return 1.0, 2.0

    result = _run(flat, ZDT_SPACE, "bayes", 0, 14, directions=["minimize", "minimize"])
    assert result.count(hpt.TrialState.COMPLETE) == 14
    assert len(result.best_trials) == 14  # all equal: all on the front


def test_concurrent_suggestions_with_several_objectives_are_distinct_and_pooled() -> None:
    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        await anyio.sleep(0.005 * (1 + trial.number % 3))
        f1, f2 = _zdt1([trial.params[f"x{i}"] for i in range(3)])
        trial.set_constraints([f2 - 3.0])
        return f1, f2

    strategy = BayesStrategy(rounds=None)  # every worker fed at once: the pool, not the small-budget cap
    result = _run(objective, ZDT_SPACE, strategy, 4, 32, directions=["minimize", "minimize"], concurrency=6)
    assert result.count(hpt.TrialState.COMPLETE) == 32
    assert len({tuple(t.params.values()) for t in result.trials}) == 32
    assert strategy.pooled + strategy.direct > 0  # the model chose points for several workers at once
    assert strategy.capped_waits == 0


@pytest.mark.anyio
async def test_pending_points_move_the_next_suggestion_away_with_several_objectives() -> None:
    async def suggestions(pending: str) -> tuple[np.ndarray, np.ndarray]:
        tuner = hpt.Tuner(None, ZDT_SPACE, directions=["minimize", "minimize"],
                          strategy=BayesStrategy(pending=pending), seed=5, loggers=[])  # fmt: skip
        for _ in range(12):
            trial = await tuner.ask()
            await tuner.tell(trial, _zdt1([trial.params[f"x{i}"] for i in range(3)]))
        first = await tuner.ask()
        second = await tuner.ask()
        await tuner.close()
        space = hpt.Space(ZDT_SPACE)
        return np.array(space.to_unit(first.params)), np.array(space.to_unit(second.params))

    with anyio.fail_after(60):
        a1, a2 = await suggestions("believer")
        b1, b2 = await suggestions("ignore")
    assert np.allclose(a1, b1)  # the same history gives the same first suggestion
    # ZDT1's front is x1 = x2 = 0: the suggestions differ in x0, the point on the front.
    assert abs(a2[0] - a1[0]) > 3 * max(abs(b2[0] - b1[0]), 0.01)


def test_pruned_trials_of_a_several_objective_study_are_avoided_not_modelled() -> None:
    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        f1, f2 = _zdt1([trial.params[f"x{i}"] for i in range(3)])
        for step in range(1, 4):
            await trial.report((f1 + 1.0 / step, f2), step=step)
        return f1, f2

    result = _run(objective, ZDT_SPACE, "bayes", 3, 24, directions=["minimize", "minimize"],
                  pruner={"name": "asha", "max_resource": 3})  # fmt: skip
    assert result.count(hpt.TrialState.PRUNED) >= 1
    configs = [tuple(t.params.values()) for t in result.trials]
    assert len(set(configs)) == len(configs)


@pytest.mark.anyio
async def test_a_resumed_strategy_learns_values_and_constraints_at_start() -> None:
    tuner = hpt.Tuner(_gardner, GARDNER_SPACE, strategy=BayesStrategy(), seed=8, max_trials=12, loggers=[])
    with anyio.fail_after(60):
        await tuner.run()
        fresh = BayesStrategy()
        await fresh.start(tuner.study)
        params = await fresh.ask(tuner.study, 12)
    design = await hpt.SobolStrategy().ask(tuner.study, 12)
    assert params != design  # the models are used, not the design
    assert hpt.Space(GARDNER_SPACE).validate(params) == params


def test_the_same_seed_reproduces_a_constrained_several_objective_run() -> None:
    def czdt(trial: hpt.SyncTrial) -> tuple[float, float]:
        f1, f2 = _zdt1([trial.params[f"x{i}"] for i in range(3)])
        trial.set_constraints([0.05 - (f1 - 0.4) ** 2 - (f2 - 0.4) ** 2])
        return f1, f2

    a = _run(czdt, ZDT_SPACE, "bayes", 9, 14, directions=["minimize", "minimize"])
    b = _run(czdt, ZDT_SPACE, "bayes", 9, 14, directions=["minimize", "minimize"])
    assert [dict(t.params) for t in a.trials] == [dict(t.params) for t in b.trials]


def test_every_domain_kind_and_conditions_work_with_several_objectives_and_constraints() -> None:
    from common import MIXED, mixed_loss

    def objective(trial: hpt.SyncTrial) -> tuple[float, float]:
        p = trial.params
        trial.set_constraints([math.log2(p["batch"]) - 8.0])  # batch <= 256
        return mixed_loss(p), p["layers"] * p.get("units", 16)

    result = _run(objective, MIXED, "bayes", 3, 24, directions=["minimize", "minimize"], concurrency=3)
    assert result.count(hpt.TrialState.COMPLETE) == 24
    space = hpt.Space(MIXED)
    assert all(space.validate(dict(t.params)) == dict(t.params) for t in result.trials)
    assert result.best_trials and all(t.params["batch"] <= 256 for t in result.best_trials)


def test_past_max_points_the_models_train_on_the_best_fronts_the_recent_trials_and_some_others() -> None:
    rng = np.random.default_rng(0)
    losses = rng.random((40, 2))
    violation = np.where(rng.random(40) < 0.3, rng.random(40), 0.0)
    idx = BayesStrategy(max_points=10)._several_training_set(losses, violation, rng)
    assert len(idx) == 10 and len(set(idx.tolist())) == 10
    assert {38, 39} <= set(idx.tolist())  # the most recent fifth
    feasible = violation <= 0
    front = np.flatnonzero(feasible)[nondominated_mask(losses[feasible])]
    assert 0 < len(front) <= 5 and set(front.tolist()) <= set(idx.tolist())  # the first feasible front comes first

    # Through the Tuner, with constraints: the subset is used from trial 11 on.
    def czdt(trial: hpt.SyncTrial) -> tuple[float, float]:
        trial.set_constraints([trial.params["x1"] - 0.5])
        return _zdt1([trial.params[f"x{i}"] for i in range(3)])

    result = _run(czdt, ZDT_SPACE, BayesStrategy(max_points=10), 1, 18, directions=["minimize", "minimize"])
    assert result.count(hpt.TrialState.COMPLETE) == 18 and result.best_trials


# -- a bound an objective reaches: the floor of the boxes (two objectives) ----------------------------


def test_reached_floors_marks_the_objectives_whose_best_value_two_rows_share() -> None:
    losses = np.array([[0.0, 3.0], [0.0, 2.0], [0.5, 1.0], [1.0, 1.5]])
    assert _ehvi.reached_floors(losses).tolist() == [True, False]
    losses[1, 0] = 1e-12  # within 1e-9 of the range: the same value
    assert _ehvi.reached_floors(losses).tolist() == [True, False]
    losses[1, 0] = 1e-3
    assert _ehvi.reached_floors(losses).tolist() == [False, False]
    assert _ehvi.reached_floors(np.array([[1.0, 2.0]])).tolist() == [False, False]  # one row: nothing shared


def test_a_floor_starts_the_boxes_there_and_counts_no_improvement_past_it() -> None:
    front = np.array([[0.0, 1.0], [0.5, 0.4], [1.0, 0.0]])
    ref = np.array([1.2, 4.0])  # far above the front's end in the second objective (bad points were seen)
    floor = np.array([0.0, -np.inf])
    x = np.zeros((1, 1))
    gps = [_gp.GP(x, np.zeros(1), _gp.default_theta(1)) for _ in range(2)]
    plain = MultiModel(gps, 2, np.empty(0), front, ref)
    floored = MultiModel(gps, 2, np.empty(0), front, ref, floor)
    assert np.all(floored.lower[:, 0] >= 0.0) and np.isneginf(plain.lower[:, 0]).any()
    rng = np.random.default_rng(3)
    for y in rng.random((40, 2)) * [1.6, 4.6] - 0.3:
        # the improvement of a point is that of the point held at the floor
        held = np.maximum(y, [0.0, -np.inf])
        assert _improvement(floored.lower, floored.upper, y) == pytest.approx(
            _improvement(plain.lower, plain.upper, held), abs=1e-12
        )
    # At the front's end on the bound, the tail of the first objective past the bound drew the whole width
    # of the second up to the reference point: there, the acquisition of a copy of that end is far smaller.
    mean, sd = np.array([[0.0, 1.0]]), np.full((1, 2), 0.05)
    gap = log_ehvi(mean, sd, plain.lower, plain.upper)[0] - log_ehvi(mean, sd, floored.lower, floored.upper)[0]
    assert gap > 1.5
    # A pending point believed onto the front keeps the floor.
    assert floored.with_believed(np.array([0.2, 0.5])).floor is floor


def _capture_floors(monkeypatch: pytest.MonkeyPatch) -> list[Any]:
    real = _ehvi.select
    seen: list[Any] = []

    def watched(model: MultiModel, *args: Any, **kwargs: Any) -> tuple[np.ndarray, float]:
        seen.append((model.floor, model.front.min(axis=0) if len(model.front) else None))
        return real(model, *args, **kwargs)

    monkeypatch.setattr(_ehvi, "select", watched)
    return seen


@pytest.mark.parametrize("m", [2, 3])
def test_with_two_objectives_a_bound_reached_twice_floors_the_boxes(monkeypatch: pytest.MonkeyPatch, m: int) -> None:
    """The first objective is zero over half the box (a bound reached by many points); the others are not."""
    seen = _capture_floors(monkeypatch)

    def objective(trial: hpt.SyncTrial) -> tuple[float, ...]:
        x = [trial.params[f"x{i}"] for i in range(3)]
        first = max(x[0] - 0.5, 0.0)
        return (first, (1 - x[0]) + x[1] ** 2, *([x[2] + x[1]] if m == 3 else []))

    result = _run(objective, ZDT_SPACE, "bayes", 0, 12, directions=["minimize"] * m)
    assert result.count(hpt.TrialState.COMPLETE) == 12
    assert seen
    for floor, best in seen:
        if m == 3:
            assert floor is None  # three objectives: the boxes reach down as before
            continue
        assert floor is not None
        assert floor[0] == best[0] and np.isneginf(floor[1])


def test_one_objective_with_constraints_has_no_floor(monkeypatch: pytest.MonkeyPatch) -> None:
    seen = _capture_floors(monkeypatch)
    result = _run(_gardner, GARDNER_SPACE, "bayes", 0, 9)
    assert result.count(hpt.TrialState.COMPLETE) == 9
    assert seen and all(floor is None for floor, _ in seen)


def test_with_two_objectives_the_search_stops_proposing_copies_of_an_end_of_the_front() -> None:
    """DTLZ2 with two objectives (both bounded below by zero, reached at either end of the front).

    Without the floor, most of the models' proposals sat at an exact end (one objective at zero): 42 of
    the 66 here; with it, 29.
    """

    def objective(trial: hpt.SyncTrial) -> tuple[float, float]:
        x = [trial.params[f"x{i}"] for i in range(4)]
        g = sum((v - 0.5) ** 2 for v in x[1:])
        return (1 + g) * math.cos(x[0] * math.pi / 2), (1 + g) * math.sin(x[0] * math.pi / 2)

    space = {f"x{i}": hpt.Float(0.0, 1.0) for i in range(4)}
    at_an_end = 0
    for seed in range(3):
        result = _run(objective, space, "bayes", seed, 30, directions=["minimize", "minimize"])
        values = np.array([t.values for t in result.trials])
        at_an_end += int(np.sum(np.any(values[8:] < 1e-9, axis=1)))  # after the design of 8
    assert at_an_end <= 35


@pytest.mark.parametrize(("m", "refit_fraction"), [(1, None), (2, None), (2, 0.1)])
def test_with_several_objectives_the_models_are_refitted_with_restarts_at_every_result(
    monkeypatch: pytest.MonkeyPatch, m: int, refit_fraction: float | None
) -> None:
    """Two objectives: every suggestion after the first refits each model from restarts (``runs`` of 2 or more).

    One objective with a constraint keeps the schedule of ``refit_fraction`` (warm refreshes in between), and
    so do two objectives when the user sets ``refit_fraction``.
    """
    real = _gp.fit_theta
    fits: list[tuple[int, bool]] = []

    def counted(x: np.ndarray, y: np.ndarray, warm: Any, rng: Any, **kwargs: Any) -> np.ndarray:
        fits.append((len(y), kwargs.get("runs", 2) >= 2))
        return real(x, y, warm, rng, **kwargs)

    monkeypatch.setattr(_gp, "fit_theta", counted)

    def objective(trial: hpt.SyncTrial) -> Any:
        x = [trial.params[f"x{i}"] for i in range(3)]
        trial.set_constraints([x[2] - 0.9])
        return _zdt1(x) if m == 2 else sum(x)

    strategy = BayesStrategy(n_initial=6, refit_fraction=refit_fraction)
    result = _run(objective, ZDT_SPACE, strategy, 0, 14, directions=["minimize"] * m)
    assert result.count(hpt.TrialState.COMPLETE) == 14
    models = m + 1  # the objectives and the constraint
    sizes = sorted({n for n, _ in fits})
    assert sizes == list(range(6, 14))  # a fit at every new result
    restarts = [n for n, full in fits if full]
    if m == 2 and refit_fraction is None:
        assert restarts == [n for n in sizes for _ in range(models)]  # every model, every time, from restarts
    else:
        assert len(restarts) < len(fits)  # warm refreshes in between


def test_a_front_on_every_floor_keeps_the_open_boxes_and_a_batch_has_no_repeats() -> None:
    """One point at the best of both objectives, each reached twice: floored, no box would be left."""
    x = np.random.default_rng(0).random((6, 3))
    theta = np.concatenate([np.log(np.full(3, 0.4)), [0.0, math.log(1e-3)]])
    gps = [_gp.GP(x, np.sin(3.0 * x @ w), theta) for w in (np.ones(3), np.arange(3.0))]
    front, ref = np.array([[0.0, 0.0]]), np.array([1.0, 1.0])
    plain = MultiModel(gps, 2, np.empty(0), front, ref)
    floored = MultiModel(gps, 2, np.empty(0), front, ref, np.array([0.0, 0.0]))
    assert len(floored.lower) == len(plain.lower) > 0
    assert np.array_equal(floored.lower, plain.lower) and np.array_equal(floored.upper, plain.upper)
    z = np.random.default_rng(1).random((16, 3))
    assert np.all(np.isfinite(floored.score(*floored.moments(z))))
    # A floor on one objective only still raises the boxes.
    one = MultiModel(gps, 2, np.empty(0), front, ref, np.array([0.0, -np.inf]))
    assert len(one.lower) and np.all(one.lower[:, 0] >= 0.0)
    enc = Encoder(hpt.Space({f"x{i}": hpt.Float(0.0, 1.0) for i in range(3)}))
    pending = np.random.default_rng(2).random((2, 3))
    rows, _ = _ehvi.select(floored, enc, x[:2], np.random.default_rng(3), 4, pending=pending, candidates=64, local=16)
    assert len({r.tobytes() for r in rows}) == 4


def test_when_every_candidate_scores_minus_infinity_a_batch_takes_distinct_ones() -> None:
    from hpt_async.strategies._acquisition import take_best

    p, pool = 2, 5
    chosen = np.zeros(p + pool, dtype=bool)
    chosen[:p] = True  # the pending points
    picks: list[int] = []
    for _ in range(4):
        take_best(np.full(p + pool, -np.inf), chosen, picks, p, 0)
    assert picks == [0, 1, 2, 3]
    picks = []
    chosen = np.zeros(pool, dtype=bool)
    acq = np.array([-np.inf, 2.0, -np.inf, 1.0, -np.inf])
    assert [take_best(acq.copy(), chosen, picks, 0, 0) for _ in range(4)] == [1, 3, 0, 2]


def test_reached_floors_counts_a_configuration_tried_twice_once() -> None:
    losses = np.array([[0.0, 3.0], [0.0, 2.0], [0.5, 1.0], [1.0, 1.0]])
    assert _ehvi.reached_floors(losses).tolist() == [True, True]
    assert _ehvi.reached_floors(losses, configs=["a", "a", "b", "c"]).tolist() == [False, True]
    assert _ehvi.reached_floors(losses, configs=["a", "b", "c", "c"]).tolist() == [True, False]


def test_a_configuration_tried_twice_at_the_best_value_floors_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    """The first objective's unique minimum (zero), tried twice through the queue, is not taken as a bound."""
    seen = _capture_floors(monkeypatch)

    def objective(trial: hpt.SyncTrial) -> tuple[float, float]:
        x = [trial.params[f"x{i}"] for i in range(3)]
        return (x[0] - 0.25) ** 2 + (x[1] - 0.5) ** 2 + (x[2] - 0.5) ** 2, (1 - x[0]) + x[1] ** 2

    best = {"x0": 0.25, "x1": 0.5, "x2": 0.5}
    tuner = hpt.Tuner(
        objective, ZDT_SPACE, strategy=BayesStrategy(n_initial=6), max_trials=10, seed=0, loggers=[],
        directions=["minimize", "minimize"],
    )  # fmt: skip
    tuner.enqueue(best)
    tuner.enqueue(best)
    result = anyio.run(tuner.run)
    assert sum(1 for t in result.trials if t.values[0] == 0.0) == 2
    assert seen and all(floor is None or np.isneginf(floor[0]) for floor, _ in seen)
