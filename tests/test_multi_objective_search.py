"""Search and early stopping with several objectives: NSGA-II in evolution, MO-ASHA, median's objective=."""

from __future__ import annotations

import math
import random
from typing import Any

import pytest

import hpt_async as hpt
from hpt_async.pruners._halving import Ladder, ahead_counts, ahead_of
from hpt_async.study import StudyView

pytestmark = pytest.mark.anyio

SPACE = hpt.Space({"x": hpt.Float(0.0, 1.0), "y": hpt.Float(0.0, 1.0)})
MINMIN = ("minimize", "minimize")


def _view(directions: Any = MINMIN, metric_names: Any = None) -> StudyView:
    return StudyView("s", directions, SPACE, 0, metric_names=metric_names)


def _running(number: int, reports: dict[int, tuple[float, ...]]) -> hpt.TrialRecord:
    return hpt.TrialRecord(
        number,
        hpt.TrialState.RUNNING,
        {"x": 0.5, "y": 0.5},
        reports={s: v[0] for s, v in reports.items()},
        report_values=reports,
    )


# -- MO-ASHA: rung decisions on hand-made examples ----------------------------------------------


async def test_mo_asha_ranks_a_rung_by_non_dominated_sorting_then_crowding() -> None:
    pruner = hpt.ASHAPruner(min_resource=1, eta=2, max_resource=8)
    view = _view()
    await pruner.start(view)
    seen = {}
    for number, values in [(0, (1.0, 5.0)), (1, (5.0, 1.0)), (2, (6.0, 6.0)), (3, (0.5, 0.5)), (4, (3.0, 3.0))]:
        record = _running(number, {1: values})
        view._put(record)
        seen[number] = await pruner.decide(view, record, 1, values[0])
    C, S = hpt.Decision.CONTINUE, hpt.Decision.STOP
    # 0: alone, in the top 1. 1: (5, 1) is not dominated by (1, 5): both on front 0, it goes on (on the first
    # objective alone it would rank second of two and stop). 2: dominated by both, out of the top 1 of 3.
    # 3: dominates everything. 4: (3, 3) is on the second front with 0 and 1, which are its extremes (infinite
    # crowding): three trials rank ahead of it, out of the top 2 of 5.
    assert seen == {0: C, 1: C, 2: S, 3: C, 4: S}
    assert dict(pruner.rungs()[0].values) == {0: 1.0, 1: 5.0, 2: 6.0, 3: 0.5, 4: 3.0}


async def test_mo_asha_decides_otherwise_than_asha_on_the_first_objective() -> None:
    single = hpt.ASHAPruner(min_resource=1, eta=2, max_resource=8)
    await single.start(StudyView("s", "minimize", SPACE, 0))
    assert single.observe(0, 1, 1.0) is hpt.Decision.CONTINUE
    assert single.observe(1, 1, 5.0) is hpt.Decision.STOP  # what the front keeps above


def test_ahead_of_counts_better_fronts_and_more_crowded_equals() -> None:
    vectors = {0: (0.0, 4.0), 1: (1.0, 2.0), 2: (3.0, 1.0), 3: (4.0, 0.0), 4: (5.0, 5.0)}
    assert ahead_of(vectors, 0) == 0 and ahead_of(vectors, 3) == 0  # extremes: infinite crowding
    # Front 0 spans 4 in each objective. 1's crowding is 3/4 + 3/4 = 1.5, 2's is 3/4 + 2/4 = 1.25: the
    # extremes rank ahead of 1, and 1 with them ahead of 2.
    assert ahead_of(vectors, 1) == 2 and ahead_of(vectors, 2) == 3
    assert ahead_of(vectors, 4) == 4


async def test_mo_asha_promotion_mode_pauses_and_later_promotes_by_the_front() -> None:
    pruner = hpt.ASHAPruner(min_resource=1, eta=2, max_resource=4, mode="promotion")
    view = _view()
    await pruner.start(view)
    first = _running(0, {1: (1.0, 5.0)})
    view._put(first)
    assert await pruner.decide(view, first, 1, 1.0) is hpt.Decision.PAUSE  # floor(1 / 2) = 0 may go on
    paused = hpt.TrialRecord(0, hpt.TrialState.PAUSED, first.params, value=1.0, reports={1: 1.0},
                             report_values={1: (1.0, 5.0)})  # fmt: skip
    view._put(paused)
    await pruner.tell(view, paused)
    assert await pruner.promote(view) is None  # still alone in its rung
    second = _running(1, {1: (5.0, 1.0)})
    view._put(second)
    # Both on the front: the newcomer ranks with nobody ahead, in the top floor(2 / 2) = 1.
    assert await pruner.decide(view, second, 1, 5.0) is hpt.Decision.CONTINUE
    assert await pruner.promote(view) == 0  # and so does the paused one now


async def test_mo_asha_rebuilds_its_rungs_from_stored_reports() -> None:
    view = _view()
    for number, values in [(0, (1.0, 5.0)), (1, (5.0, 1.0)), (2, (6.0, 6.0))]:
        view._put(_running(number, {1: values}))
    pruner = hpt.ASHAPruner(min_resource=1, eta=2, max_resource=8)
    await pruner.start(view)
    assert pruner.rungs()[0].values == {0: 1.0, 1: 5.0, 2: 6.0}
    record = _running(3, {1: (5.5, 5.5)})  # dominated by 0 and 1, not by 2
    assert await pruner.decide(view, record, 1, 5.5) is hpt.Decision.STOP


async def test_a_tuner_with_mo_asha_prunes_by_every_objective() -> None:
    async def objective(trial: hpt.Trial) -> tuple[float, float]:
        x, y = trial.params["x"], trial.params["y"]
        for step in range(1, 10):
            await trial.report((x + 1 / step, y + 1 / step), step=step)
        return x, y

    for pruner in ({"name": "asha", "max_resource": 9}, {"name": "hyperband", "max_resource": 9}):
        result = await hpt.Tuner(objective, SPACE, directions=list(MINMIN), pruner=pruner, max_trials=30, seed=1,
                                 loggers=[], strategy="random").run()  # fmt: skip
        assert result.count("pruned") > 0 and result.count("complete") > 0
        front = result.best_trials
        assert front and all(t.state is hpt.TrialState.COMPLETE for t in front)


# -- median with objective= --------------------------------------------------------------------


def test_median_in_a_study_with_several_objectives_needs_objective() -> None:
    with pytest.raises(ValueError, match="give pruner 'median' the objective to judge: objective="):
        hpt.Tuner(None, SPACE, directions=list(MINMIN), pruner="median", loggers=[], strategy="random")
    hpt.Tuner(
        None, SPACE, directions=list(MINMIN), pruner={"name": "median", "objective": 1}, loggers=[], strategy="random"
    )
    with pytest.raises(ValueError, match="objective is an index or a metric name"):
        hpt.MedianPruner(objective=1.5)


@pytest.mark.parametrize("objective", [1, "latency"])
async def test_median_judges_the_objective_it_is_given(objective: Any) -> None:
    pruner = hpt.MedianPruner(min_trials=2, objective=objective)
    view = _view(("maximize", "minimize"), ("accuracy", "latency"))
    await pruner.start(view)
    for number, values in [(0, (0.9, 1.0)), (1, (0.1, 3.0))]:
        record = _running(number, {0: values})
        assert await pruner.decide(view, record, 0, values[0]) is hpt.Decision.CONTINUE
    # Median latency is 2: a latency of 2.5 is worse, however good the accuracy.
    worse = _running(2, {0: (0.99, 2.5)})
    assert await pruner.decide(view, worse, 0, 0.99) is hpt.Decision.STOP
    better = _running(3, {0: (0.01, 1.5)})
    assert await pruner.decide(view, better, 0, 0.01) is hpt.Decision.CONTINUE


async def test_median_refuses_an_unknown_metric_name() -> None:
    pruner = hpt.MedianPruner(objective="memory")
    with pytest.raises(ValueError, match="no objective named 'memory'; its metric names are"):
        await pruner.start(_view(MINMIN, ("error", "latency")))
    with pytest.raises(ValueError, match="has 2 objectives; objective=5"):
        await hpt.MedianPruner(objective=5).start(_view())


# -- NSGA-II in evolution ----------------------------------------------------------------------


def _complete(number: int, values: tuple[float, ...], constraints: Any = None, x: float = 0.5) -> hpt.TrialRecord:
    return hpt.TrialRecord(number, hpt.TrialState.COMPLETE, {"x": x, "y": 0.5}, value=values[0], values=values,
                           constraints=constraints)  # fmt: skip


async def test_nsga2_keeps_the_best_fronts_and_drops_the_most_crowded() -> None:
    strategy = hpt.EvolutionStrategy(population=4)
    view = _view()
    await strategy.start(view)
    points = [(0.0, 4.0), (4.0, 0.0), (9.0, 9.0), (2.0, 2.0), (1.0, 3.1), (8.0, 9.5)]
    for n, values in enumerate(points):
        record = _complete(n, values, x=n / 10)
        view._put(record)
        await strategy.tell(view, record)
    # Front 0 is {0, 1, 3, 4}: exactly the population, the dominated 2 and 5 leave, old as 2 is.
    assert strategy.members == [0, 1, 3, 4]
    extra = _complete(6, (3.0, 1.05), x=0.65)  # on the front too: the most crowded of five leaves
    view._put(extra)
    await strategy.tell(view, extra)
    assert len(strategy.members) == 4 and {0, 1} <= set(strategy.members)  # the extremes always stay


async def test_nsga2_constrained_domination_prefers_feasible_members() -> None:
    strategy = hpt.EvolutionStrategy(population=2)
    view = _view()
    await strategy.start(view)
    for n, values, c in [(0, (0.0, 0.0), (1.0,)), (1, (5.0, 5.0), (0.0,)), (2, (6.0, 6.0), (-1.0,))]:
        record = _complete(n, values, c, x=n / 10)
        view._put(record)
        await strategy.tell(view, record)
    assert strategy.members == [1, 2]  # the infeasible one leaves, though it dominates both


async def test_single_objective_tournaments_prefer_feasible_members() -> None:
    import random

    strategy = hpt.EvolutionStrategy(population=3, sample_size=3)
    view = StudyView("s", "minimize", SPACE, 0)
    await strategy.start(view)
    for n, value, c in [(0, 0.0, (1.0,)), (1, 5.0, (0.0,)), (2, 6.0, (-1.0,))]:
        record = hpt.TrialRecord(n, hpt.TrialState.COMPLETE, {"x": n / 10, "y": 0.5}, value=value, constraints=c)
        view._put(record)
        await strategy.tell(view, record)
    assert strategy.select(random.Random(0)) == 1  # 0 has the best value but violates its constraint


async def test_evolution_runs_a_constrained_study_with_several_objectives() -> None:
    def zdt1(trial: hpt.SyncTrial) -> tuple[float, float]:
        x, y = trial.params["x"], trial.params["y"]
        g = 1 + 9 * y
        trial.set_constraints([0.1 - x])  # x >= 0.1
        return x, g * (1 - math.sqrt(x / g))

    result = await hpt.Tuner(zdt1, SPACE, directions=list(MINMIN), strategy="evolution", max_trials=60, seed=0,
                             loggers=[]).run()  # fmt: skip
    assert result.count("complete") == 60
    front = result.best_trials
    assert front and all(t.params["x"] >= 0.1 for t in front)
    assert result.hypervolume([1.1, 11.0]) > 0.0


def test_ahead_counts_equals_ahead_of_for_every_trial() -> None:
    rng = random.Random(7)
    for size in (1, 2, 3, 5, 12, 40, 90):
        for _ in range(5):
            grid = [0.0, 0.5, 1.0, 2.0, math.inf]  # ties, duplicates and non-finite losses
            m = rng.choice((2, 3))
            vectors = {
                3 * i + 1: tuple(rng.choice(grid) if rng.random() < 0.3 else rng.random() for _ in range(m))
                for i in range(size)
            }
            counts = ahead_counts(vectors)
            assert counts == {n: ahead_of(vectors, n) for n in vectors}


def test_a_ladder_ranks_anew_after_each_entry() -> None:
    ladder = Ladder(1, 2)
    ladder.level(0)
    ladder.enter(0, 0, 0.0, 0.0, (1.0, 1.0))
    ladder.enter(0, 1, 0.0, 0.0, (2.0, 2.0))
    assert ladder.ahead(0, 1) == 1
    ladder.enter(0, 2, 0.0, 0.0, (0.5, 0.5))  # dominates both
    assert ladder.ahead(0, 1) == 2 and ladder.ahead(0, 0) == 1 and ladder.ahead(0, 2) == 0
    assert ladder.position(0, 1, 0.0) == 2.0


def test_a_rung_is_sorted_once_per_entry_however_often_it_is_asked(monkeypatch: pytest.MonkeyPatch) -> None:
    from hpt_async.pruners import _halving

    rng = random.Random(3)
    vectors = [(rng.random(), rng.random()) for _ in range(12)]
    expected = []  # after each entry: whether it went on, then each trial's promotability and position (ahead_of)
    for number in range(12):
        rung = dict(enumerate(vectors[: number + 1]))
        ahead = [ahead_of(rung, n) for n in rung]
        went_on = ahead[number] < _halving.top_count(len(rung), 3)
        promotable = [a < _halving.promoted_count(len(rung), 3) for a in ahead]
        expected.append((went_on, promotable, [float(a) for a in ahead]))
    sorts: list[int] = []
    real = _halving.front_ranks
    monkeypatch.setattr(_halving, "front_ranks", lambda points: sorts.append(len(points)) or real(points))
    ladder = Ladder(1, 3)
    ladder.level(0)
    for number, vector in enumerate(vectors):
        went_on = ladder.enter(0, number, vector[0], vector[0], vector)
        # promotion mode asks about every paused trial of the rung: whether it may go on, then which first
        waiting = [ladder.promotable(0, 0.0, n) for n in range(number + 1)]
        positions = [ladder.position(0, n, 0.0) for n in range(number + 1)]
        assert (went_on, waiting, positions) == expected[number]
    assert sorts == list(range(1, 13))  # one non-dominated sort per entry, none per question
