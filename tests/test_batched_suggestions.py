"""Batched suggestions: the tuner asks once for several free workers; bayes and tpe serve them without a wait."""

from __future__ import annotations

import io
import logging
import threading
from collections.abc import Sequence
from typing import Any

import anyio
import numpy as np
import pytest
from anyio import wait_all_tasks_blocked
from anyio.lowlevel import checkpoint
from common import MIXED, SQUARE, branin, mixed_loss, tune

import hpt_async as hpt
from hpt_async.loggers.console import ConsoleLogger
from hpt_async.strategies import _acquisition, _gp, _model_process
from hpt_async.strategies.bayes import BayesStrategy
from hpt_async.strategies.tpe import TPEStrategy
from hpt_async.study import StudyView
from hpt_async.trial import TrialRecord, TrialState

pytestmark = pytest.mark.anyio


def _study(space: dict[str, Any], n: int, loss: Any, seed: int = 0) -> StudyView:
    """A study holding ``n`` random COMPLETE trials."""
    sp = hpt.Space(space)
    view = StudyView("batch", "minimize", sp, seed)
    for i in range(n):
        params = sp.sample(seed, i)
        view._put(TrialRecord(number=i, state=TrialState.COMPLETE, params=params, value=loss(params), ended=0.0))
    return view


# -- the tuner -----------------------------------------------------------------------------


class Recording(hpt.Strategy):
    """Random points; ``ask_batch`` records the numbers it is asked for, and suspends first."""

    name = "recording"

    def __init__(self) -> None:
        self.batches: list[list[int]] = []
        self.asks = 0

    async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
        self.asks += 1
        return study.space.sample(study.seed, number)

    async def ask_batch(self, study: hpt.StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        if not self.batches:
            await wait_all_tasks_blocked()  # as a model fit would: the other workers queue up meanwhile
        self.batches.append(list(numbers))
        return [study.space.sample(study.seed, n) for n in numbers]


async def test_the_tuner_asks_one_batch_for_the_workers_waiting() -> None:
    strategy = Recording()

    async def objective(trial: hpt.Trial) -> float:
        await checkpoint()
        return branin(trial.params)

    result = await tune(objective, SQUARE, strategy, max_trials=30, concurrency=4)
    assert result.count(hpt.TrialState.COMPLETE) == 30
    assert strategy.asks == 0  # a strategy with ask_batch is asked through it
    sizes = [len(b) for b in strategy.batches]
    assert sizes[:2] == [1, 3]  # the first worker alone, then the three that queued behind it, at once
    numbers = [n for b in strategy.batches for n in b]
    assert sorted(numbers) == list(range(30))  # every number once, none left unused
    assert sorted(t.number for t in result.trials) == list(range(30))


async def test_a_batch_never_exceeds_the_budget() -> None:
    strategy = Recording()
    result = await tune(lambda t: 0.0, SQUARE, strategy, max_trials=3, concurrency=8)
    assert result.count(hpt.TrialState.COMPLETE) == 3
    assert sum(len(b) for b in strategy.batches) == 3


async def test_a_strategy_without_ask_batch_is_asked_one_trial_at_a_time() -> None:
    class Plain(hpt.Strategy):
        name = "plain"

        def __init__(self) -> None:
            self.asked: list[int] = []

        async def ask(self, study: hpt.StudyView, number: int) -> dict[str, Any]:
            self.asked.append(number)
            await wait_all_tasks_blocked()
            return study.space.sample(study.seed, number)

    strategy = Plain()
    result = await tune(lambda t: 0.0, SQUARE, strategy, max_trials=12, concurrency=4)
    assert result.count(hpt.TrialState.COMPLETE) == 12
    assert sorted(strategy.asked) == list(range(12))


async def test_a_wrong_length_batch_is_fatal_and_names_the_strategy() -> None:
    class Short(Recording):
        name = "short"

        async def ask_batch(self, study: hpt.StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
            return []

    with pytest.raises(hpt.StudyError, match=r"'short'.*ask_batch"):
        await tune(lambda t: 0.0, SQUARE, Short(), max_trials=4, concurrency=2)


# -- joint points -----------------------------------------------------------------------------


async def test_a_bayes_batch_is_distinct_and_spread() -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy()
    await strategy.start(study)
    for r in range(2):  # the first batch is chosen while the workers wait; the second from the pool
        batch = await strategy.ask_batch(study, list(range(20 + 16 * r, 36 + 16 * r)))
        points = np.array([hpt.Space(SQUARE).to_unit(p) for p in batch])  # type: ignore[arg-type]
        assert len({tuple(p) for p in points}) == 16
        dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1) + 9 * np.eye(16)
        assert dist.min() > 1e-3
        for params in batch:
            study._put(TrialRecord(number=len(study.trials), state=TrialState.RUNNING, params=params))
    if strategy._acq is not None:
        strategy._acq.join()
    assert strategy.direct == 16


def _one_at_a_time(mean: np.ndarray, cov: np.ndarray, p: int, noise: float, best: float) -> tuple[Any, Any]:
    """The first ``p`` points believed one at a time (rank-one steps, as the greedy loop takes its picks)."""
    mean, cov = mean.copy(), cov.copy()
    for j in range(p):
        root = np.sqrt(max(cov[j, j], 1e-12) + noise)
        col = cov[:, j] / root
        mean += col * (max(mean[j], best) - mean[j]) / root
        cov -= np.outer(col, col)
    return mean[p:], cov[p:, p:]


def test_pending_points_are_believed_in_one_block_exactly_as_one_at_a_time() -> None:
    rng = np.random.default_rng(3)
    x = rng.random((30, 2))
    y = _gp.standardise(np.array([branin({"x": a, "y": b}) for a, b in x]))
    gp = _gp.GP(x, y, np.array([-1.5, -1.2, 0.0, -6.0]))
    z = rng.random((45, 2))  # 15 pending points, then a pool of 30
    mean, cov = gp.joint(z)
    for best in (float(np.min(y)), float(np.median(mean[:15]))):  # a quarter to half below it: moved
        got_mean, got_cov = _acquisition._condition_on_pending(mean, cov, 15, gp.noise, best)
        want_mean, want_cov = _one_at_a_time(mean, cov, 15, gp.noise, best)
        np.testing.assert_allclose(got_mean, want_mean, rtol=1e-8, atol=1e-9)
        np.testing.assert_allclose(got_cov, want_cov, rtol=1e-8, atol=1e-9)
    assert not np.allclose(got_mean, mean[15:], atol=1e-3)  # the believed values did move the pool's mean


def test_the_joint_posterior_agrees_with_the_marginal_one() -> None:
    rng = np.random.default_rng(4)
    x = rng.random((25, 2))
    gp = _gp.GP(x, rng.normal(size=25), np.array([-1.0, -0.7, 0.2, -5.0]))
    z = rng.random((12, 2))
    mean, cov = gp.joint(z)
    want_mean, want_var = gp.predict(z)
    np.testing.assert_allclose(mean, want_mean, rtol=1e-12, atol=1e-12)
    np.testing.assert_allclose(np.diag(cov), want_var, rtol=1e-8, atol=1e-10)
    np.testing.assert_allclose(cov, cov.T, atol=1e-12)


async def test_a_tpe_batch_is_distinct_and_valid_on_a_mixed_space() -> None:
    study = _study(MIXED, 40, mixed_loss)
    strategy = TPEStrategy()
    await strategy.start(study)
    batch = await strategy.ask_batch(study, list(range(40, 72)))
    space = hpt.Space(MIXED)
    assert all(space.validate(p) == p for p in batch)  # type: ignore[arg-type]
    assert len({tuple(sorted((k, str(v)) for k, v in p.items())) for p in batch}) == 32  # type: ignore[union-attr]


async def test_a_tpe_batch_lies_about_its_own_points() -> None:
    """With the constant liar, a batch spreads out more than the same number of best-scored candidates."""
    study = _study(SQUARE, 60, branin)
    strategy = TPEStrategy(candidates=64)
    await strategy.start(study)
    batch = await strategy.ask_batch(study, list(range(60, 76)))
    points = np.array([hpt.Space(SQUARE).to_unit(p) for p in batch])  # type: ignore[arg-type]
    dist = np.linalg.norm(points[:, None] - points[None, :], axis=-1) + 9 * np.eye(16)
    assert dist.min(axis=1).min() > 0.0
    assert np.median(dist.min(axis=1)) > 0.01


# -- never waiting on a fit ------------------------------------------------------------------


async def test_free_workers_never_wait_for_a_slow_fit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Once the model exists, a refit blocks until the run has ended: trials go on starting meanwhile."""
    release, entered = threading.Event(), threading.Event()
    gave_up: list[bool] = []  # per blocked refit: whether it stopped waiting (then a worker had needed it)
    original = _gp.fit_theta

    def slow_fit(*args: Any, **kwargs: Any) -> np.ndarray:
        if threading.current_thread().name == "hpt-async-fit":  # a refit in the background, not the first fit
            entered.set()
            gave_up.append(not release.wait(30))
        return original(*args, **kwargs)

    monkeypatch.setattr(_gp, "fit_theta", slow_fit)
    strategy = BayesStrategy()
    started_while_blocked = []

    async def objective(trial: hpt.Trial) -> float:
        if entered.is_set() and not release.is_set():
            started_while_blocked.append(trial.number)
        await anyio.sleep(0.001)
        return branin(trial.params)

    try:
        result = await tune(objective, SQUARE, strategy, max_trials=150, concurrency=6)
    finally:
        release.set()
    assert result.count(hpt.TrialState.COMPLETE) == 150
    assert entered.is_set() and len(started_while_blocked) >= 10  # trials kept starting while a refit hung
    assert not any(gave_up)  # and no worker waited for it (it would have given up first)
    assert strategy.late_fits > 0  # refits fell due meanwhile: the model kept its last hyperparameters


# -- the note when the model falls behind -----------------------------------------------------


async def test_the_console_shows_when_the_model_falls_behind(caplog: pytest.LogCaptureFixture) -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy()
    await strategy.start(study)
    await strategy.ask_batch(study, [20, 21])  # a model, a pool under way
    job = strategy._acq
    assert job is not None
    job.join()
    # As if the acquisition under way had not ended and its points were all handed out:
    # the next workers get the last acquisition's spares, rather than a wait.
    strategy._acq = type(job)(strategy, job.args, 1)  # a job that never runs: never done
    strategy._pool, strategy._spares = [], list(np.random.default_rng(0).random((4, 2)))
    strategy._pool_told, strategy._pool_made = strategy._told, 16  # a pool chosen from the newest data
    with caplog.at_level(logging.WARNING, logger="hpt_async"):
        batch = await strategy.ask_batch(study, [22, 23, 24])
    assert len(batch) == 3 and strategy.behind == 3
    assert "fell behind" in caplog.text and "spare candidates" in caplog.text
    assert "3 suggestions" in study.notes["bayes"]
    line = ConsoleLogger(stream=io.StringIO()).status(study)
    assert "the model fell behind; 3 suggestions" in line


async def test_spares_handed_out_since_are_skipped_and_too_few_mean_the_acquisition_is_awaited() -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy()
    await strategy.start(study)
    await strategy.ask_batch(study, [20, 21])
    job = strategy._acq
    assert job is not None
    job.join()
    enc = strategy._enc
    assert enc is not None
    spares = list(np.random.default_rng(1).random((4, 2)))
    # Two of the spares were handed out from an older pool: they are not served again.
    strategy._pool, strategy._spares = [], list(spares)
    strategy._hand_out(enc, [spares[1], spares[2]])
    assert [tuple(r) for r in strategy._take_spares(3)] == [tuple(spares[0]), tuple(spares[3])]
    assert len(strategy._spares) == 0 and strategy._take_spares(1) == []
    # Asked for three while only two spares are left: no spare is served, the acquisition under way is awaited.
    fresh_rows = np.random.default_rng(2).random((8, 2))
    waiting = type(job)(strategy, job.args, 8)  # never started: it "ends" below
    strategy._acq = waiting
    strategy._pool, strategy._spares = [], [spares[0], spares[3]]
    strategy._pool_told, strategy._pool_made = strategy._told, 16

    def finish() -> None:
        waiting.rows, waiting.spares = fresh_rows, fresh_rows[:0]
        waiting.done.set()

    timer = threading.Timer(0.2, finish)
    timer.start()
    try:
        batch = await strategy.ask_batch(study, [22, 23, 24])
    finally:
        timer.join()
    assert strategy.behind == 0
    got = np.array([hpt.Space(SQUARE).to_unit(p) for p in batch])  # type: ignore[arg-type]
    np.testing.assert_allclose(got, fresh_rows[:3], atol=1e-12)  # the acquisition's own points
    if strategy._acq is not None:
        strategy._acq.join()


async def test_running_trials_are_encoded_once_while_they_run(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy(model_process=False)
    await strategy.start(study)
    for n in (20, 21, 22):
        study._put(TrialRecord(number=n, state=TrialState.RUNNING, params={"x": n / 40, "y": 0.5}))
    enc = strategy._enc
    assert enc is not None
    encoded: list[Any] = []
    original = enc.unit

    def unit(params: Any) -> np.ndarray:
        encoded.append(dict(params))
        return original(params)

    monkeypatch.setattr(enc, "unit", unit)
    for number in (23, 24):  # two batches built from the data, each with the running trials as pending points
        await strategy.ask_batch(study, [number])
        if strategy._acq is not None:
            strategy._acq.join()
        strategy._acq, strategy._pool = None, []  # the next ask builds its data and chooses anew
    assert strategy.direct == 2
    assert len(encoded) == 3  # the three running trials, once each
    done = TrialRecord(number=20, state=TrialState.COMPLETE, params={"x": 0.5, "y": 0.5}, value=1.0, ended=0.0)
    study._put(done)
    await strategy.tell(study, done)
    assert 20 not in strategy._units  # a finished trial's row is dropped with it


async def test_without_reports_the_joint_data_is_not_built(monkeypatch: pytest.MonkeyPatch) -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy(model_process=False)
    await strategy.start(study)
    built: list[int] = []
    original = strategy._joint_data

    def joint_data(view: Any, number: int) -> Any:
        built.append(number)
        return original(view, number)

    monkeypatch.setattr(strategy, "_joint_data", joint_data)
    await strategy.ask_batch(study, [20])
    assert built == []  # no trial reported: the final values are the whole model
    study._put(TrialRecord(number=21, state=TrialState.RUNNING, params={"x": 0.5, "y": 0.5}, reports={1: 3.0}))
    strategy._pool = []  # the next ask builds its data again
    if strategy._acq is not None:
        strategy._acq.join()
    await strategy.ask_batch(study, [22])
    assert built == [22]  # a running trial reported: the joint data may hold levels
    if strategy._acq is not None:
        strategy._acq.join()


# -- the model process ---------------------------------------------------------------------


class _Target:
    """What a model process serves in these tests: a counter and a method that raises."""

    def __init__(self) -> None:
        self.calls = 0

    def add(self, a: int, b: int = 0) -> tuple[int, int]:
        self.calls += 1
        return a + b, self.calls

    def fail(self) -> None:
        raise ValueError("from the child")

    def hang(self) -> None:
        threading.Event().wait()  # as a child stuck on a lock it inherited would


needs_fork = pytest.mark.skipif(not _model_process.supported(), reason="the model process needs fork (Linux)")


@needs_fork
def test_a_model_process_runs_methods_on_its_copy_and_stops() -> None:
    target = _Target()
    remote = _model_process.start(target)
    assert remote is not None
    assert remote.call("add", 2, b=3) == (5, 1)
    assert remote.call("add", 1) == (1, 2)  # the child's copy keeps its state between calls
    assert target.calls == 0  # ... and the parent's is untouched
    with pytest.raises(ValueError, match="from the child"):
        remote.call("fail")
    remote.close()
    with pytest.raises(_model_process.RemoteError):
        remote.call("add", 1)


@needs_fork
def test_a_dead_model_process_raises_remote_error() -> None:
    remote = _model_process.start(_Target())
    assert remote is not None
    remote._process.kill()
    remote._process.join(5)
    with pytest.raises(_model_process.RemoteError):
        remote.call("add", 1)
    assert not remote.alive


@needs_fork
def test_a_model_process_that_never_answers_is_stopped(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_model_process, "CALL_TIMEOUT", 0.5)
    remote = _model_process.start(_Target())
    assert remote is not None
    with pytest.raises(_model_process.RemoteError, match="no answer to hang"):
        remote.call("hang")
    assert not remote.alive
    remote._process.join(5)
    assert not remote._process.is_alive()  # stopped, not left behind
    with pytest.raises(_model_process.RemoteError):
        remote.call("add", 1)


@needs_fork
@pytest.mark.parametrize("name", ["bayes", "tpe"])
async def test_the_model_process_chooses_the_points_at_high_concurrency(name: str) -> None:
    strategy: Any = BayesStrategy(model_process=True) if name == "bayes" else TPEStrategy(model_process=True)

    forked: list[Any] = []

    async def objective(trial: hpt.Trial) -> float:
        remote = strategy._remote
        if remote is not None and remote not in forked:
            forked.append(remote)
        await anyio.sleep(0.002 * (trial.number % 5))
        return branin(trial.params)

    result = await tune(objective, SQUARE, strategy, seed=3, max_trials=60, concurrency=6)
    assert result.count(hpt.TrialState.COMPLETE) == 60
    assert len({tuple(t.params.values()) for t in result.trials}) == 60
    done = strategy.process_acquisitions if name == "bayes" else strategy.process_batches
    assert done > 0 and forked
    # The end of the run stopped the model process (it does not outlive the run).
    assert strategy._remote is None
    for remote in forked:
        remote._process.join(5)
        assert not remote._process.is_alive()


async def test_auto_hands_the_end_of_the_run_to_its_chosen_strategy() -> None:
    ended: list[str] = []

    class Listening(hpt.RandomStrategy):
        @hpt.hookimpl
        def hpt_study_ended(self, event: hpt.StudyEnded, study: Any) -> None:
            ended.append(event.result.study)

    auto = hpt.AutoStrategy()
    result = await tune(lambda t: 0.0, SQUARE, auto, max_trials=3, study="handed")
    assert ended == []  # the strategy auto chose listens to no hook
    auto.delegate = Listening()
    await auto.hpt_study_ended(event=hpt.StudyEnded(result, 0.0), study=None)
    assert ended == ["handed"]


@needs_fork
@pytest.mark.parametrize("name", ["bayes", "tpe"])
async def test_a_dead_model_process_leaves_the_work_to_threads(name: str) -> None:
    # rounds=None: 50 trials 6 at once would otherwise run at most 5 at once, chosen directly (no model process).
    bayes = BayesStrategy(model_process=True, rounds=None)
    strategy: Any = bayes if name == "bayes" else TPEStrategy(model_process=True)
    killed: list[int] = []

    async def objective(trial: hpt.Trial) -> float:
        remote = strategy._remote
        if remote is not None and not killed:
            remote._process.kill()  # the model process dies mid-run
            killed.append(trial.number)
        await anyio.sleep(0.002 * (trial.number % 5))
        return branin(trial.params)

    result = await tune(objective, SQUARE, strategy, seed=4, max_trials=50, concurrency=6)
    assert killed
    assert result.count(hpt.TrialState.COMPLETE) == 50
    assert len({tuple(t.params.values()) for t in result.trials}) == 50


@needs_fork
async def test_the_first_model_batch_is_chosen_in_the_model_process() -> None:
    study = _study(SQUARE, 20, branin)
    strategy = BayesStrategy(model_process=True)
    await strategy.start(study)
    try:
        batch = await strategy.ask_batch(study, [20, 21])
        # Chosen while the workers waited, by the forked child: its fit is taken up by the parent.
        assert strategy.direct == 2 and strategy.process_acquisitions == 1
        assert strategy._remote is not None and strategy._remote.alive
        assert strategy._theta is not None and strategy._fit_n == 20
        assert len({tuple(p.values()) for p in batch}) == 2  # type: ignore[union-attr]
    finally:
        if strategy._acq is not None:
            strategy._acq.join()
        strategy.hpt_study_ended(event=None, study=None)
    threads = BayesStrategy(model_process=False)
    await threads.start(study)
    await threads.ask_batch(study, [20, 21])
    assert threads.direct == 2 and threads.process_acquisitions == 0 and threads._theta is not None
    if threads._acq is not None:
        threads._acq.join()


@needs_fork
async def test_the_model_process_is_forked_while_the_initial_design_runs() -> None:
    study = _study(SQUARE, 0, branin)
    strategy = BayesStrategy(model_process=True)
    await strategy.start(study)
    try:
        points = await strategy.ask_batch(study, [0, 1, 2])
        assert len(points) == 3 and strategy.direct == 0  # design points: no model yet
        assert strategy._remote is not None and strategy._remote.alive  # ... but the child is ready for it
    finally:
        strategy.hpt_study_ended(event=None, study=None)
    default = BayesStrategy()
    await default.start(study)
    await default.ask_batch(study, [0, 1, 2])
    assert default._remote is None  # three at once is below the default's threshold


@pytest.mark.parametrize("cls", [BayesStrategy, TPEStrategy])
async def test_model_process_false_never_forks_and_bad_values_are_refused(cls: Any) -> None:
    strategy = cls(model_process=False)

    async def objective(trial: hpt.Trial) -> float:
        await anyio.sleep(0.001 * (trial.number % 3))
        return branin(trial.params)

    await tune(objective, SQUARE, strategy, seed=5, max_trials=30, concurrency=6)
    assert strategy._remote is None
    with pytest.raises(ValueError, match="model_process"):
        cls(model_process="yes")


def test_below_the_threshold_the_default_keeps_threads() -> None:
    strategy = BayesStrategy()
    strategy._widest = _model_process.PROCESS_MIN - 1
    assert not strategy._wants_process()
    strategy._widest = _model_process.PROCESS_MIN
    assert strategy._wants_process()  # (start() then forks only where supported)
    assert not TPEStrategy()._wants_process(_model_process.PROCESS_MIN - 1)
    assert TPEStrategy()._wants_process(_model_process.PROCESS_MIN)


# -- small budgets, many workers (``rounds``) ------------------------------------------------


async def test_a_batch_never_exceeds_the_strategy_batch_limit() -> None:
    class Limited(Recording):
        name = "limited"

        def batch_limit(self, study: hpt.StudyView) -> int | None:
            return 2 if self.batches else 0  # below 1 counts as 1

    strategy = Limited()

    async def objective(trial: hpt.Trial) -> float:
        await checkpoint()
        return branin(trial.params)

    result = await tune(objective, SQUARE, strategy, max_trials=30, concurrency=6)
    assert result.count(hpt.TrialState.COMPLETE) == 30
    sizes = [len(b) for b in strategy.batches]
    assert sizes[0] == 1 and max(sizes) == 2  # five workers queued behind the first: two numbers at a time
    assert sorted(n for b in strategy.batches for n in b) == list(range(30))


def _view(max_trials: int | None, concurrency: int | None) -> StudyView:
    return StudyView("cap", "minimize", hpt.Space(SQUARE), 0, max_trials=max_trials, concurrency=concurrency)


def test_the_running_cap_is_a_share_of_the_budget_when_workers_outnumber_it() -> None:
    strategy = BayesStrategy()
    assert strategy.running_cap(_view(120, 64)) == 24  # 120 // 5
    assert strategy.running_cap(_view(40, 64)) == 8
    assert strategy.running_cap(_view(5, 64)) == 1
    assert strategy.running_cap(_view(1000, 100)) is None  # 100 at once is within 1000 // 5: not capped
    assert strategy.running_cap(_view(2000, 200)) is None
    assert strategy.running_cap(_view(120, 1)) is None  # concurrency 1: never
    assert strategy.running_cap(_view(None, 64)) is None  # no budget
    assert strategy.running_cap(_view(120, None)) is None  # asked through tuner.ask(): no concurrency known
    assert BayesStrategy(rounds=None).running_cap(_view(120, 64)) is None
    assert BayesStrategy(rounds=10).running_cap(_view(120, 64)) == 12
    assert BayesStrategy(rounds=10).running_cap(_view(120, 12)) is None
    view = _view(120, 64)
    assert strategy.batch_limit(view) == 24
    for i in range(5):
        view._put(TrialRecord(number=i, state=TrialState.RUNNING, params={"x": 0.5, "y": 0.5}))
    assert strategy.batch_limit(view) == 19
    for i in range(5, 30):
        view._put(TrialRecord(number=i, state=TrialState.RUNNING, params={"x": 0.5, "y": 0.5}))
    assert strategy.batch_limit(view) == 1  # full: one number, and that ask waits for a result
    assert BayesStrategy(rounds=None).batch_limit(view) is None


@pytest.mark.parametrize("value", [0, -1, True, 2.5, "10"])
def test_rounds_must_be_a_positive_int_or_none(value: Any) -> None:
    with pytest.raises(ValueError, match="rounds"):
        BayesStrategy(rounds=value)


async def _most_running(strategy: Any, max_trials: int, concurrency: int) -> tuple[int, Any]:
    running, most = [0], [0]

    async def objective(trial: hpt.Trial) -> float:
        running[0] += 1
        most[0] = max(most[0], running[0])
        try:
            await anyio.sleep(0.002 * (1 + trial.number % 4))
        finally:
            running[0] -= 1
        return branin(trial.params)

    result = await tune(objective, SQUARE, strategy, seed=7, max_trials=max_trials, concurrency=concurrency)
    return most[0], result


async def test_bayes_runs_at_most_its_cap_at_once_under_a_small_budget() -> None:
    strategy = BayesStrategy()  # 40 trials, 16 workers: at most 40 // 5 = 8 at once
    most, result = await _most_running(strategy, 40, 16)
    assert result.count(hpt.TrialState.COMPLETE) == 40
    assert len({tuple(t.params.values()) for t in result.trials}) == 40
    assert 2 <= most <= 8
    assert strategy.capped_waits > 0  # asks waited for a result while eight ran
    assert strategy.pooled == 0 and strategy.acquisitions == 0  # each point chosen directly, from every result known
    assert strategy.direct > 0
    # Without the rule every worker is fed at once (the initial design alone is 16 points at the start).
    free = BayesStrategy(rounds=None)
    most_free, _ = await _most_running(free, 40, 16)
    assert most_free > 8 and free.capped_waits == 0


async def test_auto_hands_on_its_strategy_batch_limit() -> None:
    auto = hpt.AutoStrategy()
    view = _view(120, 64)
    assert auto.batch_limit(view) is None  # nothing chosen yet
    auto.delegate = BayesStrategy()
    assert auto.batch_limit(view) == 24


async def test_at_concurrency_one_the_rule_changes_nothing() -> None:
    async def objective(trial: hpt.Trial) -> float:
        return branin(trial.params)

    runs = []
    for rounds in (5, 12, 1, None):  # 12 trials: a cap of 2, 1 or 12, or none; one worker never exceeds any
        result = await tune(objective, SQUARE, BayesStrategy(rounds=rounds), seed=2, max_trials=12, concurrency=1)
        runs.append([t.params for t in sorted(result.trials, key=lambda t: t.number)])
    assert runs[0] == runs[1] == runs[2] == runs[3]
