"""Population-based training: quantiles, explore, exploit decisions, schedules and their replay."""

from __future__ import annotations

import random
from pathlib import Path
from types import MappingProxyType
from typing import Any

import anyio
import numpy as np
import pytest

import hpt_async as hpt
from hpt_async.strategies.pbt import PBTReplayStrategy, PBTStrategy, explore, lineage, quantiles
from hpt_async.study import StudyView

pytestmark = pytest.mark.anyio

TOY = {"h0": hpt.Float(0.0, 1.0), "h1": hpt.Float(0.0, 1.0)}


# -- quantiles and explore ------------------------------------------------------------------


def test_quantile_edges() -> None:
    assert quantiles([], 0.25) == ([], [])
    assert quantiles([7], 0.25) == ([], [])
    assert quantiles([1, 2], 0.25) == ([1], [2])
    assert quantiles([1, 2, 3], 0.5) == ([1], [3])  # never more than half: nobody is in both
    assert quantiles([1, 2, 3, 4], 0.25) == ([1], [4])
    assert quantiles([1, 2, 3, 4], 0.5) == ([1, 2], [3, 4])
    assert quantiles(list(range(8)), 0.25) == ([0, 1], [6, 7])
    assert quantiles(list(range(5)), 0.25) == ([0, 1], [3, 4])  # ceil(1.25) = 2


def test_explore_perturbs_by_the_factors_within_bounds() -> None:
    space = hpt.Space(
        {
            "lr": hpt.Float(1e-4, 1.0, log=True),
            "mom": hpt.Float(0.0, 1.0),
            "stepped": hpt.Float(0.0, 1.0, step=0.1),
            "units": hpt.Int(1, 64, log=True),
            "layers": hpt.Int(1, 9, step=2),
            "act": hpt.Choice(["relu", "tanh", "gelu"]),
        }
    )
    rng = random.Random(0)
    base = {"lr": 0.01, "mom": 0.5, "stepped": 0.5, "units": 1, "layers": 5, "act": "tanh"}
    seen_units, seen_acts = set(), set()
    for _ in range(200):
        out = explore(space, base, rng, resample_probability=0.0)
        assert space.validate(out) == out
        assert out["lr"] == pytest.approx(0.008) or out["lr"] == pytest.approx(0.012)
        assert out["mom"] in (pytest.approx(0.4), pytest.approx(0.6))
        assert out["stepped"] in (pytest.approx(0.4), pytest.approx(0.6))
        assert out["layers"] in (3, 7)  # 5 * 0.8 = 4 and 5 * 1.2 = 6, snapped to the step-2 grid
        seen_units.add(out["units"])
        seen_acts.add(out["act"])
    # 1 * 0.8 and 1 * 1.2 both round to 1: the Int moves by one step upwards, or is clipped at low.
    assert seen_units == {1, 2}
    assert seen_acts == {"relu", "gelu"}  # neighbours of "tanh"
    # At the bounds values are clipped, and a Choice at an end moves inwards.
    edge = {"lr": 1.0, "mom": 1.0, "stepped": 1.0, "units": 64, "layers": 9, "act": "relu"}
    for _ in range(50):
        out = explore(space, edge, rng, resample_probability=0.0)
        assert out["lr"] <= 1.0 and out["mom"] <= 1.0 and out["units"] <= 64 and out["layers"] <= 9
        assert out["act"] == "tanh"
    # Resampling always: every value is drawn anew inside its domain.
    drawn = [explore(space, base, rng, resample_probability=1.0) for _ in range(50)]
    assert len({d["mom"] for d in drawn}) > 40


def test_explore_follows_conditions() -> None:
    space = hpt.Space(
        {
            "layers": hpt.Choice([1, 2]),
            "units2": hpt.Int(4, 64, when={"layers": 2}),
        }
    )
    rng = random.Random(3)
    outs = [explore(space, {"layers": 1}, rng, resample_probability=0.0) for _ in range(20)]
    for out in outs:
        assert out["layers"] == 2 and 4 <= out["units2"] <= 64  # the neighbour of 1 activates units2
    back = explore(space, {"layers": 2, "units2": 32}, rng, resample_probability=0.0)
    assert back == {"layers": 1}  # units2 dropped once inactive


# -- exploit decisions on hand-made populations -----------------------------------------------


def population(values: dict[int, float], direction: str = "maximize") -> StudyView:
    view = StudyView("p", direction, hpt.Space(TOY), seed=11)
    for number, value in values.items():
        params = MappingProxyType({"h0": number / 10, "h1": 0.5})
        reports = MappingProxyType({0: value - 1.0, 4: value})
        view._put(hpt.TrialRecord(number, hpt.TrialState.RUNNING, params, reports=reports))
    return view


async def decide(strategy: PBTStrategy, view: StudyView, number: int, step: int, ckpts: Any = None) -> Any:
    record = view.trials[number]
    checkpoints = dict.fromkeys(view.trials, 4) if ckpts is None else ckpts
    return await strategy.decide(
        view, record, step, record.reports[step] if step in record.reports else 0.0, checkpoints
    )


async def test_bottom_member_exploits_a_top_member() -> None:
    values = {0: 0.9, 1: 0.5, 2: 0.4, 3: 0.3, 4: 0.2, 5: 0.1, 6: 0.05, 7: 0.01}  # maximise: 0 and 1 on top
    view = population(values)
    strategy = PBTStrategy(perturbation_interval=4, quantile=0.25, resample_probability=0.0)
    await strategy.start(view)
    for middle in (0, 2, 3, 4, 5):
        assert await decide(strategy, view, middle, 4) is hpt.Decision.CONTINUE
    answer = await decide(strategy, view, 7, 4)
    assert isinstance(answer, hpt.Exploit) and answer.decision is hpt.Decision.EXPLOIT
    assert answer.donor in (0, 1)
    donor_h0 = view.trials[answer.donor].params["h0"]
    assert answer.params["h0"] in (pytest.approx(donor_h0 * 0.8), pytest.approx(donor_h0 * 1.2))
    assert answer.params["h1"] in (pytest.approx(0.4), pytest.approx(0.6))
    assert strategy.events[-1][:3] == (7, 4, answer.donor)
    # Checked again before perturbation_interval more steps: nothing happens.
    assert await decide(strategy, view, 7, 4) is hpt.Decision.CONTINUE
    # Only donors with a checkpoint are eligible; none there: the member goes on.
    answer6 = await decide(strategy, view, 6, 4, ckpts={1: 4})
    assert isinstance(answer6, hpt.Exploit) and answer6.donor == 1
    assert await decide(PBTStrategy(), view, 6, 4, ckpts={}) is hpt.Decision.CONTINUE


async def test_direction_decides_who_is_at_the_bottom() -> None:
    values = {0: 0.9, 1: 0.5, 2: 0.1, 3: 0.05}
    minimise = population(values, "minimize")
    strategy = PBTStrategy(quantile=0.25)
    await strategy.start(minimise)
    assert await decide(strategy, minimise, 3, 4) is hpt.Decision.CONTINUE  # the best when minimising
    answer = await decide(strategy, minimise, 0, 4)
    assert isinstance(answer, hpt.Exploit) and answer.donor == 3
    # A population of one has nobody to copy.
    alone = population({0: 0.1})
    assert await decide(PBTStrategy(), alone, 0, 4) is hpt.Decision.CONTINUE


def test_pbt_settings_are_checked() -> None:
    for kwargs in ({"perturbation_interval": 0}, {"quantile": 0.6}, {"quantile": 0}, {"resample_probability": 2}):
        with pytest.raises(ValueError):
            PBTStrategy(**kwargs)  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="at least one entry"):
        PBTReplayStrategy([])
    with pytest.raises(ValueError, match="decrease"):
        PBTReplayStrategy([(None, {"h0": 0.1, "h1": 0.1}), (5, {"h0": 0.2, "h1": 0.1}), (3, {"h0": 0.3, "h1": 0.1})])


def test_pbt_cannot_be_paired_with_a_pruner() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return 0.0

    with pytest.raises(ValueError, match="cannot be paired with pruner"):
        hpt.Tuner(objective, TOY, strategy="pbt", pruner="median", loggers=[])
    with pytest.raises(ValueError, match="cannot be paired"):
        hpt.Tuner(objective, TOY, strategy=PBTReplayStrategy([(None, {"h0": 0.1, "h1": 0.1})]), pruner="asha")


# -- whole runs on the PBT paper's toy problem ---------------------------------------------------

STEPS = 24


async def toy(trial: hpt.Trial) -> float:
    """Gradient ascent on the surrogate Q_hat(theta | h); reports the true Q(theta)."""
    state = await trial.restore()
    theta = np.array([0.9, 0.9]) if state is None else state["theta"]
    for step in range(STEPS):
        h = np.array([trial.params["h0"], trial.params["h1"]])
        theta = theta - 0.05 * 2 * h * theta
        await trial.checkpoint({"theta": theta})
        await trial.report(1.2 - float(theta @ theta), step=step)
        if trial.should_restore:
            theta = (await trial.restore())["theta"]
    return 1.2 - float(theta @ theta)


async def test_a_pbt_run_records_schedules_that_survive_resume_and_replay(tmp_path: Path) -> None:
    url = f"sqlite:///{tmp_path / 'pbt.db'}"
    strategy = PBTStrategy(perturbation_interval=4)
    tuner = hpt.Tuner(
        toy, TOY, strategy=strategy, direction="maximize", storage=url, study="toy", concurrency=4, max_trials=4,
        loggers=[], seed=5,
    )  # fmt: skip
    result = await tuner.run()
    assert strategy.events, "no member was exploited"
    exploited = [t for t in result.trials if t.schedule]
    assert exploited
    for t in exploited:
        assert t.schedule[0].step is None and t.schedule[0].donor is None
        assert dict(t.params) == dict(t.schedule[-1].params)
        assert all(e.donor is not None for e in t.schedule[1:])
    # The events the strategy logged are exactly the schedule entries the records hold.
    logged = sorted((n, s, d) for n, s, d, _, _ in strategy.events)
    stored = sorted((t.number, e.step, e.donor) for t in result.trials for e in t.schedule[1:])
    assert logged == stored
    # Read back from the file (a resume sees the same), schedules are intact.
    loaded = await hpt.SQLiteStorage(url).load("toy", space=hpt.Space(TOY))
    assert [t.schedule for t in loaded] == [t.schedule for t in result.trials]
    rows = (await hpt.load_study_async(url, "toy")).to_rows()
    assert [[(e["step"], e["donor"]) for e in row["schedule"]] for row in rows] == [
        [(e.step, e.donor) for e in t.schedule] for t in result.trials
    ]
    # Replay the best member's lineage in a fresh run: the objective sees the schedule's params.
    best = max(exploited, key=lambda t: t.value or 0.0)
    line = lineage(loaded, best.number)
    assert line[0].step is None and line[-1].params == best.schedule[-1].params
    seen: dict[int, dict[str, float]] = {}

    async def follow(trial: hpt.Trial) -> float:
        for step in range(STEPS):
            seen[step] = dict(trial.params)
            await trial.report(0.0, step=step)
        return 0.0

    replay = await hpt.Tuner(follow, TOY, strategy=PBTReplayStrategy(line), max_trials=1, loggers=[], seed=1).run()
    expected = {}
    current = dict(line[0].params)
    for step in range(STEPS):
        expected[step] = dict(current)
        for e in line[1:]:
            if e.step == step:
                current = dict(e.params)
    assert seen == expected
    assert [e.step for e in replay.trials[0].schedule[1:]] == [e.step for e in line[1:]]


async def test_members_advance_together_when_the_objective_never_suspends() -> None:
    order: list[int] = []

    async def busy(trial: hpt.Trial) -> float:
        for step in range(6):  # computes on the loop and awaits nothing but the trial
            order.append(trial.number)
            await trial.checkpoint(b"w")
            await trial.report(float(step), step=step)
        return 0.0

    tuner = hpt.Tuner(busy, TOY, strategy=PBTStrategy(perturbation_interval=100), concurrency=3, max_trials=3,
                      loggers=[], seed=0)  # fmt: skip
    await tuner.run()
    assert sorted(order) == sorted([0, 1, 2] * 6)
    # Had each member run to its end before the next started, the numbers would come in three blocks.
    assert order != sorted(order)
    assert order[:6].count(0) < 6


async def test_a_seeded_run_at_concurrency_1_is_reproducible() -> None:
    async def once() -> tuple[Any, ...]:
        strategy = PBTStrategy(perturbation_interval=4, quantile=0.5)
        storage = hpt.MemoryStorage()
        result = await hpt.Tuner(
            toy, TOY, strategy=strategy, direction="maximize", storage=storage, study="s", max_trials=5, loggers=[],
            seed=42,
        ).run()  # fmt: skip
        # Left in storage: the best trial's checkpoint and the donors the strategy still keeps, nothing else.
        kept = {t.number for t in result.trials if await storage.checkpoint("s", t.number) is not None}
        assert result.best is not None and result.best.number in kept
        assert kept <= {result.best.number} | set(strategy._kept)
        return tuple((t.number, t.value, t.schedule) for t in result.trials), len(strategy.events)

    first, second = await once(), await once()
    assert first == second
    assert first[1] > 0  # sequential members did exploit finished ones


def remote_toy(trial: Any) -> float:
    """The toy objective in a worker process (module level: picklable)."""
    state = trial.restore()
    theta = np.array([0.9, 0.9]) if state is None else state["theta"]
    restored = 0
    for step in range(12):
        h = np.array([trial.params["h0"], trial.params["h1"]])
        theta = theta - 0.1 * h * theta
        trial.checkpoint({"theta": theta})
        trial.report(1.2 - float(theta @ theta), step=step)
        if trial.should_restore:
            theta = trial.restore()["theta"]
            restored += 1
            if trial.should_restore:
                raise AssertionError("restore() did not clear should_restore")
    trial.set_user_attr("restored", restored)
    trial.set_user_attr("donors", [e.donor for e in trial.schedule])
    return 1.2 - float(theta @ theta)


async def test_exploit_reaches_an_objective_in_a_worker_process() -> None:
    strategy = PBTStrategy(perturbation_interval=3, quantile=0.5)
    tuner = hpt.Tuner(
        remote_toy, TOY, strategy=strategy, executor=hpt.ProcessExecutor(max_workers=2), direction="maximize",
        concurrency=2, max_trials=2, loggers=[], seed=9,
    )  # fmt: skip
    with anyio.fail_after(60):
        result = await tuner.run()
    assert all(t.state is hpt.TrialState.COMPLETE for t in result.trials), [t.traceback for t in result.trials]
    assert strategy.events
    for t in result.trials:
        # The worker followed every EXPLOIT: it restored once per schedule change, with the new params.
        assert t.user_attrs["restored"] == max(len(t.schedule) - 1, 0)
        # ... and its own view of the schedule names the same donors as the record.
        assert t.user_attrs["donors"] == [e.donor for e in t.schedule]


def test_the_pbt_schedule_example_runs_small() -> None:
    import subprocess
    import sys

    root = Path(__file__).resolve().parent.parent
    proc = subprocess.run(
        [sys.executable, str(root / "examples" / "pbt_schedule.py"), "--population", "4", "--epochs", "9"],
        capture_output=True,
        text=True,
        timeout=180,
        cwd=root,
    )
    assert proc.returncode == 0, proc.stderr
    out = dict(line.split(": ", 1) for line in proc.stdout.splitlines() if ": " in line and not line.startswith(" "))
    assert int(out["exploits"]) >= 1
    assert 0.0 < float(out["best valid loss"]) < 1.0
    assert float(out["best test accuracy"]) > 0.8
    assert out["lr schedule (from epoch)"].startswith("0: ")
    assert 0.0 < float(out["replay valid loss"]) < 1.0


class _Scripted(hpt.Strategy):
    """Answers every report at step 2 with a fixed EXPLOIT."""

    name = "scripted"
    decides = True

    def __init__(self, answer: hpt.Exploit) -> None:
        self.answer = answer

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        return {"h0": 0.5, "h1": 0.5}

    async def decide(self, study: StudyView, trial: Any, step: int, value: float, checkpoints: Any) -> Any:
        return self.answer if step == 2 and trial.number == 1 else hpt.Decision.CONTINUE


async def _reporter(trial: hpt.Trial) -> float:
    for step in range(4):
        await trial.checkpoint(b"w%d" % trial.number) if trial.number == 1 else None
        await trial.report(float(step), step=step)
        if trial.should_restore:
            trial.set_user_attr("restored", await trial.restore())
    return 0.0


async def test_an_invalid_exploit_is_fatal_and_names_the_strategy() -> None:
    tuner = hpt.Tuner(_reporter, TOY, strategy=_Scripted(hpt.Exploit({"h0": 5.0, "h1": 0.5}, 0)), max_trials=2,
                      loggers=[], seed=1)  # fmt: skip
    with pytest.raises(hpt.StudyError, match="'scripted' answered an invalid EXPLOIT"):
        await tuner.run()


async def test_an_exploit_of_a_donor_without_checkpoint_changes_nothing() -> None:
    # Trial 0 never checkpoints: trial 1 goes on with its own params and nothing to restore.
    tuner = hpt.Tuner(_reporter, TOY, strategy=_Scripted(hpt.Exploit({"h0": 0.9, "h1": 0.9}, 0)), max_trials=2,
                      loggers=[], seed=1)  # fmt: skip
    result = await tuner.run()
    one = result.trials[1]
    assert one.state is hpt.TrialState.COMPLETE and one.schedule == () and dict(one.params) == {"h0": 0.5, "h1": 0.5}
    assert "restored" not in one.user_attrs
    # Without a donor the params change and nothing is restored (what pbt-replay relies on).
    tuner = hpt.Tuner(_reporter, TOY, strategy=_Scripted(hpt.Exploit({"h0": 0.9, "h1": 0.9})), max_trials=2,
                      loggers=[], seed=1)  # fmt: skip
    one = (await tuner.run()).trials[1]
    assert [(e.step, e.donor) for e in one.schedule] == [(None, None), (2, None)]
    assert dict(one.params) == {"h0": 0.9, "h1": 0.9} and "restored" not in one.user_attrs
