"""``median``: warm-up, minimum trials, interval, direction, NaN reports, rebuild, options."""

from __future__ import annotations

import math

import pytest

import hpt_async as hpt
from hpt_async.pruners import MedianPruner
from hpt_async.pruners._replay import Reported, replay

pytestmark = pytest.mark.anyio

C, S = hpt.Decision.CONTINUE, hpt.Decision.STOP


async def feed(pruner: MedianPruner, reports: list[tuple[int, int, float]], direction: str = "minimize") -> list:
    """Start ``pruner`` on an empty study, feed ``(trial, step, value)`` in order; the decisions."""
    return [r.decision for r in await replay(pruner, [Reported(n, s, v, C) for n, s, v in reports], direction)]


def curves(values: list[float], steps: int) -> list[tuple[int, int, float]]:
    """Trial ``n`` reports ``values[n]`` at every step, trial after trial."""
    return [(n, s, v) for n, v in enumerate(values) for s in range(steps)]


async def test_stops_a_trial_worse_than_the_median_of_the_others_at_that_step() -> None:
    pruner = MedianPruner(min_trials=3)
    decisions = await feed(pruner, [(0, 0, 1.0), (1, 0, 2.0), (2, 0, 3.0), (3, 0, 2.5), (4, 0, 2.0), (5, 0, 1.9)])
    # Trial 3: median of 1, 2, 3 is 2 and 2.5 is worse.  Trial 4: median of 1, 2, 2.5, 3 is 2.25.
    # Trial 5: median of 1, 2, 2, 2.5, 3 is 2 and 1.9 is better.
    assert decisions == [C, C, C, S, C, C]
    assert pruner.median(0) == 2.0
    assert pruner.median(7) is None


async def test_a_value_equal_to_the_median_goes_on() -> None:
    assert await feed(MedianPruner(min_trials=1), [(0, 0, 1.0), (1, 0, 1.0), (2, 0, 1.5)]) == [C, C, S]


async def test_only_the_same_step_is_compared() -> None:
    # Trial 3 is the worst at step 1 but nobody else reported step 2 yet.
    reports = [*curves([1.0, 1.0, 1.0], 2), (3, 0, 0.0), (3, 1, 9.0), (3, 2, 9.0)]
    assert (await feed(MedianPruner(min_trials=3), reports))[-3:] == [C, S, C]


async def test_warm_up_steps_are_never_judged() -> None:
    reports = [*curves([1.0, 1.0, 1.0], 4), *[(3, s, 5.0) for s in range(4)]]
    decisions = await feed(MedianPruner(min_trials=1, warmup_steps=2), reports)
    assert decisions[-4:] == [C, C, S, S]
    assert await feed(MedianPruner(min_trials=1), reports[:-3]) == [C] * 12 + [S]


async def test_min_trials_waits_for_enough_others_at_the_step() -> None:
    reports = curves([1.0, 2.0, 3.0, 4.0, 5.0, 6.0], 1)
    # With min_trials=5 the sixth trial is the first judged (five others): 6 > 3 stops it.
    assert await feed(MedianPruner(min_trials=5), reports) == [C, C, C, C, C, S]
    assert await feed(MedianPruner(min_trials=2), reports) == [C, C, S, S, S, S]


async def test_interval_judges_every_kth_step_after_warm_up() -> None:
    reports = [*curves([1.0], 8), *[(1, s, 5.0) for s in range(8)]]
    decisions = await feed(MedianPruner(min_trials=1, warmup_steps=1, interval=3), reports)
    assert decisions[-8:] == [C, S, C, C, S, C, C, S]


async def test_maximize_stops_the_smaller_values() -> None:
    reports = curves([0.9, 0.8, 0.7, 0.6, 0.95], 1)
    assert await feed(MedianPruner(min_trials=2), reports, "maximize") == [C, C, S, S, C]
    assert await feed(MedianPruner(min_trials=2), reports, "minimize") == [C, C, C, C, S]


async def test_nan_reports_are_ignored() -> None:
    reports = [(0, 0, 1.0), (1, 0, math.nan), (2, 0, math.nan), (3, 0, math.inf), (4, 0, 2.0)]
    # NaN and inf are not judged (they would be worst) and not counted toward min_trials.
    assert await feed(MedianPruner(min_trials=2), reports) == [C, C, C, C, C]
    assert await feed(MedianPruner(min_trials=1), reports) == [C, C, C, C, S]


async def test_start_rebuilds_from_every_stored_report() -> None:
    view = hpt.StudyView("s", "minimize", hpt.Space({"x": hpt.Float(0.0, 1.0)}), 0)
    for n, v in enumerate([1.0, 2.0, 3.0]):
        view._put(hpt.TrialRecord(n, hpt.TrialState.PRUNED, {}, value=v, reports={0: v, 1: v}))
    pruner = MedianPruner(min_trials=3)
    await pruner.start(view)
    assert pruner.median(0) == pruner.median(1) == 2.0
    record = hpt.TrialRecord(3, hpt.TrialState.RUNNING, {}, reports={0: 2.5})
    assert await pruner.decide(view, record, 0, 2.5) is S


def test_unknown_and_bad_options() -> None:
    with pytest.raises(
        TypeError, match=r"'warmup'.*did you mean 'warmup_steps'.*interval, min_trials, objective, warmup_steps"
    ):
        MedianPruner(warmup=3)
    with pytest.raises(ValueError, match="min_trials must be an int >= 1"):
        MedianPruner(min_trials=0)
    with pytest.raises(ValueError, match="interval"):
        MedianPruner(interval=1.5)
    with pytest.raises(ValueError, match="warmup_steps"):
        MedianPruner(warmup_steps=-1)
