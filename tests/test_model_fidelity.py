"""Multi-fidelity learning of ``bayes`` and ``tpe``: the model follows the highest step with enough reports."""

from __future__ import annotations

from typing import Any

import anyio
import numpy as np
import pytest

import hpt_async as hpt
from hpt_async.strategies._model import ModelStrategy, default_fidelity_min

SQUARE = {"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)}
STATES = hpt.TrialState


def curve(x: float, steps: range) -> dict[int, float]:
    """Loss-like reports: ``(x - 0.2)^2`` plus a term that shrinks with the step."""
    return {s: (x - 0.2) ** 2 + 1.0 / s for s in steps}


def view(records: list[hpt.TrialRecord], direction: str = "minimize") -> hpt.StudyView:
    study = hpt.StudyView("fidelity", direction, hpt.Space(SQUARE), seed=3)
    for record in records:
        study._put(record)
    return study


async def started(records: list[hpt.TrialRecord], strategy: Any, direction: str = "minimize") -> tuple[Any, Any]:
    """A study view of ``records`` and ``strategy`` started on it."""
    study = view(records, direction)
    await strategy.start(study)
    return study, strategy


def pruned_at_three(n_pruned: int, n_complete: int) -> list[hpt.TrialRecord]:
    """``n_pruned`` trials stopped at step 3, then ``n_complete`` that reported steps 1 to 9 and completed."""
    rng = np.random.default_rng(0)
    records = []
    for number in range(n_pruned + n_complete):
        x, y = float(rng.random()), float(rng.random())
        if number < n_pruned:
            reports = curve(x, range(1, 4))
            records.append(hpt.TrialRecord(number, STATES.PRUNED, {"x": x, "y": y}, reports[3], reports))
        else:
            reports = curve(x, range(1, 10))
            final = reports[9] - 0.5  # the objective's result differs from its last report
            records.append(hpt.TrialRecord(number, STATES.COMPLETE, {"x": x, "y": y}, final, reports))
    return records


def by_number(study: hpt.StudyView, strategy: ModelStrategy, number: int) -> dict[int, float]:
    """The model's observations as {trial number: loss}, matched on the encoded configurations."""
    data = strategy._model_data(study, number)
    assert strategy._enc is not None
    units = {r.number: strategy._enc.unit(r.params) for r in study.trials.values() if r.params}
    out = {}
    for u, loss in zip(data.u_obs, data.losses, strict=True):
        matches = [n for n, v in units.items() if np.allclose(v, u)]
        assert len(matches) == 1
        out[matches[0]] = float(loss)
    return out


def test_default_needs_at_least_six_reports_or_d_plus_two() -> None:
    assert default_fidelity_min(2) == 6
    assert default_fidelity_min(9) == 11


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["tpe", "bayes"])
async def test_most_trials_pruned_at_step_three_teach_the_model_at_step_three(name: str) -> None:
    records = pruned_at_three(n_pruned=12, n_complete=3)
    study, strategy = await started(records, hpt.TPEStrategy() if name == "tpe" else hpt.BayesStrategy())
    data = strategy._model_data(study, 15)
    assert data.step == 3
    observed = by_number(study, strategy, 15)
    assert sorted(observed) == list(range(15))  # the 12 pruned trials and the 3 completed ones
    for record in records:
        assert observed[record.number] == pytest.approx(record.reports[3])
    assert len(data.u_avoid) == 0  # a pruned trial observed at the step is not also avoided
    assert strategy.fidelity_step == 3


@pytest.mark.anyio
async def test_running_trials_that_reached_the_step_are_observations_not_pending() -> None:
    records = pruned_at_three(n_pruned=5, n_complete=0)
    live = curve(0.5, range(1, 5))
    records.append(hpt.TrialRecord(5, STATES.RUNNING, {"x": 0.5, "y": 0.5}, None, live))
    records.append(hpt.TrialRecord(6, STATES.RUNNING, {"x": 0.9, "y": 0.1}, None, curve(0.9, range(1, 2))))
    records.append(hpt.TrialRecord(7, STATES.PRUNED, {"x": 0.7, "y": 0.7}, 1.5, curve(0.7, range(1, 2))))
    study, strategy = await started(records, hpt.TPEStrategy())
    data = strategy._model_data(study, 8)
    assert data.step == 3  # 6 trials reached step 3 (5 pruned, 1 running); step 1 has 8 but is lower
    observed = by_number(study, strategy, 8)
    assert sorted(observed) == [0, 1, 2, 3, 4, 5]
    assert observed[5] == pytest.approx(live[3])
    assert [r.number for r in data.pending] == [6]
    assert len(data.u_avoid) == 1  # trial 7, pruned at step 1, stays an avoided point
    assert np.allclose(data.u_avoid[0], [0.7, 0.7])


@pytest.mark.anyio
async def test_a_resumed_trial_counts_once_at_each_step() -> None:
    # Four trials pruned at step 3 and one PAUSED there (promotion mode): five reached step 3, one short of six.
    records = pruned_at_three(n_pruned=5, n_complete=0)
    paused = records[4]
    records[4] = hpt.TrialRecord(4, STATES.PAUSED, paused.params, paused.value, paused.reports)
    study, strategy = await started(records, hpt.TPEStrategy())
    # The paused trial is resumed: running again with the same reports, it must not count twice.
    study._put(hpt.TrialRecord(4, STATES.RUNNING, paused.params, None, dict(paused.reports)))
    data = strategy._model_data(study, 5)
    assert data.step is None  # five distinct trials at every step: one short of six
    study._put(hpt.TrialRecord(5, STATES.RUNNING, {"x": 0.3, "y": 0.3}, None, curve(0.3, range(1, 4))))
    data = strategy._model_data(study, 6)
    assert data.step == 3  # now six distinct trials reached step 3
    observed = by_number(study, strategy, 6)
    assert sorted(observed) == [0, 1, 2, 3, 4, 5]  # trial 4 once
    assert [r.number for r in data.pending] == []


@pytest.mark.anyio
async def test_enough_completed_trials_give_the_full_budget_values() -> None:
    records = pruned_at_three(n_pruned=12, n_complete=6)
    study, strategy = await started(records, hpt.BayesStrategy())
    data = strategy._model_data(study, 18)
    assert data.step is None
    observed = by_number(study, strategy, 18)
    assert sorted(observed) == list(range(12, 18))
    for record in records[12:]:
        assert observed[record.number] == pytest.approx(record.value)  # the result, not the last report
    assert len(data.u_avoid) == 12  # pruned trials are avoided points again


@pytest.mark.anyio
async def test_the_threshold_is_an_option_and_fidelity_can_be_turned_off() -> None:
    records = pruned_at_three(n_pruned=12, n_complete=3)
    study = view(records)
    at_most = hpt.TPEStrategy(fidelity_min=15)
    await at_most.start(study)
    assert at_most._model_data(study, 15).step == 3  # steps 1 to 3 have 15 reports each
    strict = hpt.TPEStrategy(fidelity_min=16)
    await strict.start(study)
    assert strict._model_data(study, 15).step is None  # no step has 16: back to the completed trials
    assert len(strict._model_data(study, 15).losses) == 3
    loose = hpt.TPEStrategy(fidelity_min=3)
    await loose.start(study)
    assert loose._model_data(study, 15).step is None  # 3 completed trials are enough at this threshold
    off = hpt.TPEStrategy(fidelity=False)
    await off.start(study)
    data = off._model_data(study, 15)
    assert data.step is None and len(data.losses) == 3 and len(data.u_avoid) == 12
    with pytest.raises(ValueError, match="fidelity_min"):
        hpt.BayesStrategy(fidelity_min=1)
    with pytest.raises(ValueError, match="fidelity"):
        hpt.TPEStrategy(fidelity="yes")  # type: ignore[arg-type]


@pytest.mark.anyio
async def test_told_one_by_one_equals_rebuilt_at_start() -> None:
    records = pruned_at_three(n_pruned=10, n_complete=4)
    study = view([])
    told = hpt.TPEStrategy()
    await told.start(study)
    for record in records:
        running = hpt.TrialRecord(record.number, STATES.RUNNING, record.params, None, record.reports)
        study._put(running)
        study._put(record)
        await told.tell(study, record)
    rebuilt = hpt.TPEStrategy()
    await rebuilt.start(study)
    a, b = told._model_data(study, 14), rebuilt._model_data(study, 14)
    assert a.step == b.step == 3
    assert np.allclose(a.u_obs, b.u_obs) and np.allclose(a.losses, b.losses)


@pytest.mark.anyio
async def test_maximised_reports_become_losses_with_the_right_sign() -> None:
    records = pruned_at_three(n_pruned=8, n_complete=0)
    study, strategy = await started(records, hpt.TPEStrategy(), direction="maximize")
    observed = by_number(study, strategy, 8)
    for record in records:
        assert observed[record.number] == pytest.approx(-record.reports[3])


@pytest.mark.anyio
async def test_suggestions_follow_the_values_at_the_modelled_step() -> None:
    """Only pruned trials, all good near x = 0.2 at step 3: the model-based suggestion goes there."""
    rng = np.random.default_rng(1)
    records = []
    for number in range(30):
        x, y = float(rng.random()), float(rng.random())
        reports = curve(x, range(1, 4))
        records.append(hpt.TrialRecord(number, STATES.PRUNED, {"x": x, "y": y}, reports[3], reports))
    study = view(records)
    xs = []
    for number in range(30, 36):
        strategy = hpt.TPEStrategy()
        await strategy.start(study)
        xs.append((await strategy.ask(study, number))["x"])
    assert np.median(np.abs(np.array(xs) - 0.2)) < 0.15
    off = []
    for number in range(30, 36):
        strategy = hpt.TPEStrategy(fidelity=False)
        await strategy.start(study)
        off.append((await strategy.ask(study, number))["x"])
    assert off != xs  # without fidelity there is no model yet (Sobol points)


async def hyperband_run(strategy: str, seed: int, concurrency: int = 1) -> tuple[hpt.StudyResult, list[Any]]:
    steps: list[Any] = []
    cls = hpt.TPEStrategy if strategy == "tpe" else hpt.BayesStrategy
    spy = cls()
    original = spy._model_data

    def recording(study: hpt.StudyView, number: int) -> Any:
        data = original(study, number)
        steps.append(data.step)
        return data

    spy._model_data = recording  # type: ignore[method-assign]
    if strategy == "bayes":
        joint = spy._joint_data

        def recording_joint(study: hpt.StudyView, number: int) -> Any:
            data = joint(study, number)
            if len(data.levels) and data.levels.min() < 1.0:
                steps.append(min(round(np.expm1(lv * np.log1p(data.full))) for lv in data.levels))
            return data

        spy._joint_data = recording_joint  # type: ignore[method-assign]

    async def objective(trial: hpt.Trial) -> float:
        x, y = trial.params["x"], trial.params["y"]
        value = 0.0
        for epoch in range(1, 10):
            value = (x - 0.3) ** 2 + (y - 0.6) ** 2 + 0.5 / epoch
            await trial.report(value, step=epoch)
        return value

    tuner = hpt.Tuner(
        objective,
        SQUARE,
        strategy=spy,
        pruner=hpt.HyperbandPruner(min_resource=1, max_resource=9, eta=3),
        seed=seed,
        max_trials=40,
        concurrency=concurrency,
        loggers=[],
    )
    with anyio.fail_after(60):
        result = await tuner.run()
    return result, steps


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["tpe", "bayes"])
async def test_a_tuner_with_hyperband_learns_from_rungs_end_to_end(name: str) -> None:
    result, steps = await hyperband_run(name, seed=4)
    assert result.count(STATES.PRUNED) >= 10
    assert result.count(STATES.COMPLETE) >= 1
    assert any(s is not None and s < 9 for s in steps)  # a rung below the full budget was modelled
    assert result.best_value < 0.3
    again, _ = await hyperband_run(name, seed=4)
    assert [dict(t.params) for t in again.trials] == [dict(t.params) for t in result.trials]


@pytest.mark.anyio
@pytest.mark.parametrize("name", ["tpe", "bayes"])
async def test_concurrent_hyperband_run_completes(name: str) -> None:
    result, steps = await hyperband_run(name, seed=5, concurrency=4)
    assert result.count(STATES.PRUNED) + result.count(STATES.COMPLETE) == 40
    assert any(s is not None for s in steps)


# -- the joint model of ``bayes``: every level at once ----------------------------------------------------


def joint_rows(study: hpt.StudyView, strategy: ModelStrategy, number: int) -> list[tuple[int, float, float]]:
    """The joint data as sorted (trial number, level, loss) rows, matched on the encoded configurations."""
    data = strategy._joint_data(study, number)
    assert strategy._enc is not None
    units = {r.number: strategy._enc.unit(r.params) for r in study.trials.values() if r.params}
    rows = []
    for u, level, loss in zip(data.u_obs, data.levels, data.losses, strict=True):
        matches = [n for n, v in units.items() if np.allclose(v, u)]
        assert len(matches) == 1
        rows.append((matches[0], round(float(level), 9), float(loss)))
    return sorted(rows)


@pytest.mark.anyio
async def test_joint_data_holds_every_trial_at_every_level_it_reached() -> None:
    records = pruned_at_three(n_pruned=12, n_complete=6)
    study, strategy = await started(records, hpt.BayesStrategy())
    data = strategy._joint_data(study, 18)
    assert data.full == 9 and data.trials == 18 and len(data.u_avoid) == 0
    at3 = round(np.log(4) / np.log(10), 9)  # log(1 + step) / log(1 + full)
    expected = [(r.number, at3, r.reports[3]) for r in records]  # the levels: steps 3 (pruned) and 9 (complete)
    expected += [(r.number, 1.0, r.value) for r in records[12:]]  # the result, not the last report
    rows, expected = joint_rows(study, strategy, 18), sorted(expected)
    assert [r[:2] for r in rows] == [e[:2] for e in expected]
    assert np.allclose([r[2] for r in rows], [e[2] for e in expected])
    # The level-by-level rule would model final values only here, the pruned trials avoided.
    assert strategy._model_data(study, 18).step is None


@pytest.mark.anyio
async def test_joint_data_takes_running_reports_once_and_keeps_failed_trials_avoided() -> None:
    records = pruned_at_three(n_pruned=4, n_complete=2)
    paused = records[3]
    records[3] = hpt.TrialRecord(3, STATES.PAUSED, paused.params, paused.value, paused.reports)
    records.append(hpt.TrialRecord(6, STATES.FAILED, {"x": 0.9, "y": 0.9}, None, {}))
    study, strategy = await started(records, hpt.BayesStrategy(), direction="maximize")
    study._put(hpt.TrialRecord(3, STATES.RUNNING, paused.params, None, curve(paused.params["x"], range(1, 6))))
    study._put(hpt.TrialRecord(7, STATES.RUNNING, {"x": 0.5, "y": 0.5}, None, curve(0.5, range(1, 4))))
    data = strategy._joint_data(study, 8)
    rows = joint_rows(study, strategy, 8)
    assert [n for n, _, _ in rows].count(3) == 1  # the resumed trial's step 3 counts once
    assert (7, round(np.log(4) / np.log(10), 9), pytest.approx(-curve(0.5, range(3, 4))[3])) in rows  # maximised
    assert sorted(r.number for r in data.pending) == [3, 7]
    assert np.allclose(data.u_avoid, [[0.9, 0.9]])


@pytest.mark.anyio
async def test_without_reports_the_joint_model_is_the_usual_one() -> None:
    """No trial reported: ``fidelity_model="joint"`` suggests exactly what the level rule does."""
    rng = np.random.default_rng(2)
    records = []
    for number in range(12):
        x, y = float(rng.random()), float(rng.random())
        records.append(hpt.TrialRecord(number, STATES.COMPLETE, {"x": x, "y": y}, (x - 0.2) ** 2 + y, {}))
    records.append(hpt.TrialRecord(12, STATES.PRUNED, {"x": 0.4, "y": 0.4}, None, {}))
    study = view(records)
    joint, highest = hpt.BayesStrategy(), hpt.BayesStrategy(fidelity_model="highest")
    await joint.start(study)
    await highest.start(study)
    assert joint._joint_data(study, 13).full is None
    for number in (13, 14):
        assert await joint.ask(study, number) == await highest.ask(study, number)
    with pytest.raises(ValueError, match="fidelity_model"):
        hpt.BayesStrategy(fidelity_model="rungs")


@pytest.mark.anyio
async def test_the_joint_model_learns_from_pruned_trials_that_final_values_alone_miss() -> None:
    """Pruned trials are good near x = 0.2 at step 3; the few completed ones all lie far from it."""
    rng = np.random.default_rng(5)
    records = []
    for number in range(40):
        x, y = float(rng.random()), float(rng.random())
        if number < 34:
            reports = curve(x, range(1, 4))
            records.append(hpt.TrialRecord(number, STATES.PRUNED, {"x": x, "y": y}, reports[3], reports))
        else:
            x = 0.6 + 0.4 * x
            reports = curve(x, range(1, 10))
            records.append(hpt.TrialRecord(number, STATES.COMPLETE, {"x": x, "y": y}, reports[9], reports))
    study = view(records)
    xs = {}
    for model in ("joint", "highest"):
        found = []
        for number in range(40, 46):
            strategy = hpt.BayesStrategy(fidelity_model=model)
            await strategy.start(study)
            found.append((await strategy.ask(study, number))["x"])
        xs[model] = float(np.median(np.abs(np.array(found) - 0.2)))
    assert xs["joint"] < 0.15
    assert xs["highest"] > xs["joint"]


@pytest.mark.anyio
async def test_joint_data_stops_at_the_full_resource_and_marks_the_final_values() -> None:
    # Six trials complete at step 9; one ran on to step 20 before a pruner stopped it.
    records = pruned_at_three(n_pruned=0, n_complete=6)
    long = curve(0.3, range(1, 21))
    records.append(hpt.TrialRecord(6, STATES.PRUNED, {"x": 0.3, "y": 0.3}, long[20], long))
    records.append(hpt.TrialRecord(7, STATES.PRUNED, {"x": 0.6, "y": 0.6}, 9.0, curve(0.6, range(1, 4))))
    study, strategy = await started(records, hpt.BayesStrategy())
    data = strategy._joint_data(study, 8)
    assert data.full == 9
    assert data.levels.max() == 1.0
    # Trial 6 is seen where it passed the full resource (step 9), once, and not as a final value.
    assert data.numbers.tolist().count(6) == 2  # steps 3 and 9
    assert not data.final[data.numbers == 6].any()
    assert data.final.tolist() == [
        n in range(6) and level == 1.0 for n, level in zip(data.numbers, data.levels, strict=True)
    ]
    assert int(data.final.sum()) == 6


def test_the_incumbent_at_the_full_resource_is_a_completed_trials_final_value() -> None:
    from hpt_async.strategies._encoding import Encoder
    from hpt_async.strategies._gp import GP, default_theta
    from hpt_async.strategies.bayes import _full_incumbent

    enc = Encoder(hpt.Space({"x": hpt.Float(0.0, 1.0)}))
    u = np.array([[0.1], [0.5], [0.9], [0.5]])
    levels = np.array([1.0, 1.0, 0.5, 1.0])
    y = np.array([0.3, -2.0, -5.0, 0.1])  # trial at 0.5 stopped at the full resource with a better value
    final = np.array([True, False, False, True])
    x = np.hstack([enc.features(u), levels[:, None]])
    gp = GP(x, y, default_theta(2))
    idx = np.arange(4)
    best, _ = _full_incumbent(gp, enc, u, levels, final, idx, y)
    assert best == 0.1  # the completed trials' best, not the stopped trial's -2.0 nor the lower level's -5.0
    best, _ = _full_incumbent(gp, enc, u, levels, np.zeros(4, dtype=bool), idx, y)
    assert best == -2.0  # none completed: the best value at the full resource
    best, _ = _full_incumbent(gp, enc, u[2:3], levels[2:3], final[2:3], np.arange(1), y[2:3])
    assert np.isfinite(best) and best != -5.0  # nothing at the full resource: a predicted mean


@pytest.mark.anyio
async def test_a_running_trial_with_values_counts_once_towards_the_initial_design() -> None:
    records = pruned_at_three(n_pruned=3, n_complete=1)
    study, strategy = await started(records, hpt.BayesStrategy(n_initial=6))
    # One running trial with values at step 3: five trials with values, five trials in all.
    assert strategy._joint_data(study, 5).levels.min() < 1.0  # the joint model's own gate decides
    study._put(hpt.TrialRecord(4, STATES.RUNNING, {"x": 0.5, "y": 0.5}, None, curve(0.5, range(1, 4))))
    calls: list[str] = []

    async def design(study: Any, number: int) -> dict[str, float]:
        calls.append("design")
        return {"x": 0.5, "y": 0.5}

    strategy._design.ask = design  # type: ignore[method-assign]
    with anyio.fail_after(30):
        await strategy.ask(study, 5)
    assert calls == ["design"]  # 5 < n_initial: still the design, though the trial is both observed and running
