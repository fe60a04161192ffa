"""``strategy="bayes"``: Gaussian-process Bayesian optimisation with expected improvement.

Each suggestion is made the moment a slot frees, from every result that has
arrived so far:

1. The first trials follow a scrambled Sobol' design (the ``sobol``
   strategy), until enough results have arrived to fit a model.
2. Completed trials' losses are standardised robustly (power transform) and
   a GP with a Matern 5/2 ARD kernel is fitted to them (see ``_gp``).
   Hyperparameters are refreshed by a short L-BFGS-B run from the last fit
   whenever the data has grown by ``refit_fraction`` since, and refitted
   with restarts (the last fit and the best of a few fresh points) when it
   has grown by half since the last such refit; in between, only the
   posterior is recomputed, by extending the previous Cholesky factor with
   the new observations rather than factorising afresh.  Beyond
   ``max_points`` observations the model is trained on a subset (the best
   half, the most recent fifth, the rest at random), which bounds the cost
   of a suggestion.
3. Pending trials (``study.running``) enter as fantasies (a kriging
   believer that is never more optimistic than the incumbent: the value of a
   pending point is the larger of the model's mean there and the best loss
   so far).  Uncertainty at those points collapses and improvement there is
   nil, so concurrent suggestions spread out instead of piling onto one
   point.  FAILED and PRUNED trials enter the same way with the median loss
   as the floor: their configuration is not proposed again and its
   neighbourhood is deemed ordinary, but the value they reported (if any)
   never reaches the model as a final value.
   Multi-fidelity (on by default): when trials report intermediate values,
   as under ``pruner="asha"`` or ``"hyperband"``, the GP takes the resource
   as one more input (``fidelity_model="joint"``): it is fitted to every
   trial's values at every level (the steps where finished trials stopped,
   and the final values of COMPLETE trials at the full resource; see
   ``_model``), pruned trials included as observations at the levels they
   reached, and expected improvement is evaluated at the full resource
   against the best final value.  ``fidelity_model="highest"`` instead fits
   the GP to the values at the highest step that ``fidelity_min`` trials
   reached, while fewer than that have completed, and to final values
   after.  While no observation lies below the full resource, ``"joint"``
   falls back to ``"highest"``; without reports, both are exactly the model
   described above.
4. Log expected improvement is maximised over the space (see
   ``_acquisition``), and the winner is decoded to a configuration.

The fit and the acquisition run in a worker thread
(``anyio.to_thread.run_sync``), so the event loop keeps handling reports and
completions meanwhile.  The random draws of a suggestion come from
``(seed, trial number)``: a seeded run at concurrency 1 is reproducible.

Many workers at once (:meth:`BayesStrategy.ask_batch`): once two trials
have run at the same time, free workers are served from a pool of points
chosen jointly in a background thread (a kriging believer over a candidate
pool, ``_acquisition.select_batch``), refilled from the newest data each
time it is drawn from; hyperparameter refits run in a background thread
too, and suggestions keep the last fitted ones meanwhile.  When the pool
runs dry first, workers get the last acquisition's spare candidates, and
the strategy says so in ``study.notes`` (the console prints it) and in one
warning.  At 32 or more trials at once (``model_process``), the background
acquisitions and refits, and the first model batch with its first fit, run
in a forked model process instead of threads, so that their Python-level
work never holds the event loop's interpreter lock; the process is forked
while the initial design runs.  See docs/strategies.md, "Many workers at
once".

Small budgets (``rounds``): with ``max_trials`` and more workers than
``max_trials // rounds``, at most that many trials run at once
(:meth:`BayesStrategy.running_cap`; the tuner hands a batched ask no more
numbers than there are free places, :meth:`BayesStrategy.batch_limit`), an
ask waits for a result while none is free, and each point is chosen
directly from every result known, as at concurrency 1 but with the running
trials as fantasies.  The pool above is not used then.

Several objectives, or constraints (``trial.set_constraints``) with one
objective or several: one GP per objective and one per constraint (the
hyperparameters of each fitted on the schedule above, in the thread that
makes the suggestion), and the acquisition is log expected hypervolume
improvement over the feasible front times the probability of feasibility,
or that probability alone while no trial is feasible (see ``_ehvi``).
Running trials are conditioned on as a kriging believer, and batches for
many workers come from the same pool as above (made in threads: the
model process serves one objective only).  Intermediate reports are
not modelled then: PRUNED and FAILED trials are avoided points.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any, NamedTuple

import anyio.to_thread
import numpy as np

from ..hookspecs import hookimpl
from ..trial import TrialState
from ._encoding import Encoder
from ._model import ModelStrategy, one_blas_thread

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["BayesStrategy"]

log = logging.getLogger("hpt_async")

_PENDING_MODES = ("believer", "ignore")
_FIDELITY_MODELS = ("joint", "highest")
_FIT_RUNS = 2
_STALL_LOG_EI = -8.0  # log EI in standard deviations of the (transformed) losses
_STALL_SHRINKS = 3
_REFINE_ITERS = 20
_REFINE_MAX_OBJECTIVES = 2  # the acquisition of several outcomes is refined by its gradient up to this many objectives
_FLOOR_OBJECTIVES = 2  # objectives with a reached bound floor the boxes of log EHVI with exactly this many objectives
_REFIT_EVERY_OBJECTIVES = 2  # from this many objectives, the models are refitted with restarts at every new result
_REFIT_FRACTION = 0.1  # ``refit_fraction`` left unset, with fewer objectives
_POOL_MIN = 16  # fewest points a background acquisition chooses
_POOL_MAX = 256  # most
_SPARES = 4  # spare candidates kept per point chosen
_BATCH_STARTS = 2  # candidates refined by L-BFGS-B in a batch (the greedy choice then picks among all)
_RESTART_FRACTION = 0.5  # full refits with restarts when the data has grown by half
_WARM_ITERS = 30  # L-BFGS-B iterations of a warm-started refresh of the hyperparameters
_BUSY_FIT_POINTS = 128  # most points a background refit learns from when many trials run at once


def _busy_min() -> int:
    from ._model_process import PROCESS_MIN

    return PROCESS_MIN


def default_initial(space_size: int) -> int:
    """Trials of the initial design for a space of ``space_size`` parameters (6 to 10)."""
    return max(6, min(10, space_size + 2))


def default_initial_several(space_size: int) -> int:
    """Trials of the initial design with several objectives or constraints: twice the parameters, 6 to 10.

    Every objective and constraint has its own model to learn from the
    design; more points (up to the single-objective ceiling) paid off on
    the benchmark problems of four and six parameters (docs/benchmarks.md).
    """
    return max(6, min(10, 2 * space_size))


class BayesStrategy(ModelStrategy):
    """Gaussian-process Bayesian optimisation with log expected improvement.

    With several objectives, or with constraints, one GP per objective and
    per constraint, and log expected hypervolume improvement times the
    probability of feasibility (see the module docstring and
    docs/strategies.md).

    Options (all have working defaults):

    * ``n_initial``: trials of the quasi-random initial design (default: the
      number of parameters plus two, between 6 and 10; with several
      objectives or constraints, twice the number of parameters, between 6
      and 10).
    * ``candidates`` / ``local``: random and near-incumbent points scored per
      suggestion; ``starts``: how many of the best are refined by L-BFGS-B.
      They grow with the number of parameters ``d``: by default
      ``min(2048, 192 d)``, an eighth of that (at least 256), and ``d + 2``
      (between 5 and 10).
    * ``max_points``: largest training set; beyond it a subset is used.
    * ``refit_fraction``: refresh hyperparameters when the data has grown by
      this fraction since the last fit (0 refits fully, with restarts, at
      every suggestion).  Left unset (``None``): 0.1 with one objective, and
      0 with two objectives or more (every model refitted fully, with
      restarts, at each new result).
    * ``pending``: ``"believer"`` (default) conditions on running trials;
      ``"ignore"`` does not (concurrent suggestions then tend to coincide;
      for comparison only).  Failed trials, and pruned ones the model does
      not observe, are conditioned on in both modes.
    * ``fidelity``: learn from intermediate reports (default ``True``);
      ``fidelity_model``: ``"joint"`` (default: one GP over configuration
      and resource, fitted to every level) or ``"highest"`` (the highest
      level with ``fidelity_min`` results); ``fidelity_min``: reports a step
      needs to be modelled under ``"highest"`` (default ``max(6, d + 2)``).
    * ``model_process``: make the background acquisitions and refits in a
      forked process (``_model_process``), off the event loop's interpreter
      lock: ``None`` (default) when ``PROCESS_MIN`` (32) or more trials run
      at once, on Linux; ``True`` as soon as two do; ``False`` never.
    * ``rounds``: with a budget (``max_trials`` = ``B``) and more workers
      than ``B // rounds``, at most ``max(1, B // rounds)`` trials run at
      once (the others wait for a result), so that the budget is spent over
      at least ``rounds`` rounds of results and each point is chosen
      directly from every result known (default 5; ``None``: every worker
      is fed at once, whatever the budget).  See docs/strategies.md,
      "Small budgets, many workers".
    """

    name = "bayes"
    multi_objective = True

    def __init__(
        self,
        *,
        n_initial: int | None = None,
        candidates: int | None = None,
        local: int | None = None,
        starts: int | None = None,
        max_points: int = 256,
        refit_fraction: float | None = None,
        pending: str = "believer",
        fidelity: bool = True,
        fidelity_min: int | None = None,
        fidelity_model: str = "joint",
        model_process: bool | None = None,
        rounds: int | None = 5,
    ) -> None:
        if n_initial is not None and (isinstance(n_initial, bool) or not isinstance(n_initial, int) or n_initial < 1):
            raise ValueError(f"n_initial must be an int >= 1, got {n_initial!r}")
        for name, value, low in (("candidates", candidates, 1), ("local", local, 0), ("starts", starts, 0)):
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value < low):
                raise ValueError(f"{name} must be an int >= {low}, got {value!r}")
        if isinstance(max_points, bool) or not isinstance(max_points, int) or max_points < 10:
            raise ValueError(f"max_points must be an int >= 10, got {max_points!r}")
        if refit_fraction is not None and (
            isinstance(refit_fraction, bool)
            or not (isinstance(refit_fraction, (int, float)) and 0 <= refit_fraction <= 10)
        ):
            raise ValueError(f"refit_fraction must be a number in [0, 10], got {refit_fraction!r}")
        if pending not in _PENDING_MODES:
            raise ValueError(f"pending must be one of {_PENDING_MODES}, got {pending!r}")
        if model_process not in (None, True, False):
            raise ValueError(f"model_process must be None, True or False, got {model_process!r}")
        if rounds is not None and (isinstance(rounds, bool) or not isinstance(rounds, int) or rounds < 1):
            raise ValueError(f"rounds must be None or an int >= 1, got {rounds!r}")
        if fidelity_model not in _FIDELITY_MODELS:
            raise ValueError(f"fidelity_model must be one of {_FIDELITY_MODELS}, got {fidelity_model!r}")
        self.fidelity_model = fidelity_model
        self.n_initial = n_initial
        self.candidates = candidates
        self.local = local
        self.starts = starts
        self.max_points = max_points
        # Left unset, several objectives refit fully at every result (``_several_hyperparameters``).
        self._refit_chosen = refit_fraction is not None
        refit_fraction = _REFIT_FRACTION if refit_fraction is None else refit_fraction
        self.refit_fraction = float(refit_fraction)
        # Full refits (with restarts) when the data has grown by this much; none in between
        # are needed for refit_fraction=0, which refits fully every time.
        self._restart_fraction = _RESTART_FRACTION if refit_fraction > 0 else 0.0
        self.pending = pending
        self.model_process = model_process
        self.rounds = rounds
        super().__init__(fidelity=fidelity, fidelity_min=fidelity_min)
        self._theta: np.ndarray | None = None
        self._fit_n = 0
        self._restart_n = 0
        self._gp: Any = None  # the last suggestion's GP (before fantasies), reused while theta holds
        self._job: _Fit | None = None  # the refit running in the background, if any
        self._acq: _Acquisition | None = None  # the acquisition running in the background, if any
        self._pool: list[np.ndarray] = []  # points it chose, for the next free workers
        self._spares: Any = []  # its next best candidates (rows), for when the pool runs dry
        self._told = 0  # results told so far
        self._pool_told = self._pool_made = 0  # results told when the pool's data was taken; its size
        self._widest = 0  # the most trials ever asked for or running at once
        self._asked = 0  # suggestions served since the last background acquisition started
        #: Suggestions served from the pool of a background acquisition.
        self.pooled = 0
        #: Suggestions chosen while the workers waited (the first batch, or a run at concurrency 1).
        self.direct = 0
        #: Background acquisitions whose points were taken up.
        self.acquisitions = 0
        #: Suggestions made while a refit due for newer data was still running (the fit fell behind).
        self.late_fits = 0
        #: Suggestions served from the last acquisition's spare candidates (the acquisitions fell behind).
        self.behind = 0
        #: Background refits whose hyperparameters were taken up.
        self.background_fits = 0
        #: Acquisitions made in the model process (``model_process``): background ones, and batches chosen
        #: there while the workers waited (the first model batch, say).
        self.process_acquisitions = 0
        self._noted = 0
        self._warned = False
        self._result: anyio.Event | None = None  # set by the next tell (a capped ask waits for it)
        #: Asks that waited for a result because ``running_cap`` trials were running (``rounds``).
        self.capped_waits = 0
        # Several objectives or constraints: every COMPLETE trial's values and constraints, by number.
        self._outcomes: dict[int, tuple[tuple[float, ...], tuple[float, ...] | None]] = {}
        self._n_constraints = 0  # constraints per trial (0: none seen)
        self._multi_mode = False  # the last suggestion used the models of several outcomes
        self._thetas: list[np.ndarray] | None = None  # their hyperparameters, objectives then constraints
        self._mfit_n = self._mrestart_n = 0
        self._remote: Any = None  # the model process (``_model_process``), once forked
        self._remote_tried = False
        self._epoch = 0  # bumped when the model is reset: the model process then takes the new state
        self._served: int | None = None  # in the model process: the epoch of the state it holds
        self._handed: set[bytes] = set()  # the model-chosen points handed out so far (``_keys``)
        self._unkeyed: list[np.ndarray] = []  # points handed out since, not yet in ``_handed``
        self._units: dict[int, tuple[Any, np.ndarray]] = {}  # running trials' unit rows, by number (``_unit``)

    def _reset(self) -> None:
        self._epoch += 1
        self._units = {}
        self._outcomes = {}
        self._n_constraints = 0
        self._thetas = None
        self._mfit_n = self._mrestart_n = 0
        self._theta = None
        self._fit_n = self._restart_n = 0
        self._gp = None
        self._job = None  # a fit still running for other data is dropped when it ends
        self._acq, self._pool, self._spares = None, [], []

    def _level_changed(self) -> None:
        self._epoch += 1
        self._fit_n = self._restart_n = 0  # other values: refit at the next suggestion (warm-started)
        self._mfit_n = self._mrestart_n = 0
        self._gp = None
        self._job = None
        self._acq, self._pool, self._spares = None, [], []

    def _learn(self, record: TrialRecord) -> None:
        super()._learn(record)
        number = record.number
        self._outcomes.pop(number, None)
        if record.state is not TrialState.COMPLETE or not record.params:
            return
        values = record.values if record.values is not None else (record.value,)
        if any(v is None or not math.isfinite(v) for v in values):
            return
        constraints = record.constraints
        if constraints is not None and not self._n_constraints:
            self._n_constraints = len(constraints)
        self._outcomes[number] = (tuple(float(v) for v in values), constraints)

    def _several(self, study: StudyView) -> bool:
        """Whether suggestions model several outcomes (several objectives, or constraints)."""
        multi = len(study.directions) > 1 or self._n_constraints > 0
        if multi != self._multi_mode:
            self._multi_mode = multi
            self._level_changed()  # another model: the pool and the fits of the other one are dropped
        return multi

    def _outcome_data(self, study: StudyView, number: int) -> tuple[np.ndarray, _Outcomes, list[Any], np.ndarray]:
        """Configurations, losses and constraints of the COMPLETE trials; running trials; avoided points.

        Trials without the study's number of constraints are left out (a
        COMPLETE trial has them all: the tuner fails a trial that gives
        another number).
        """
        enc = self._enc
        assert enc is not None
        m, k = len(study.directions), self._n_constraints
        signs = np.array([1.0 if d == "minimize" else -1.0 for d in study.directions])
        rows, values, constraints = [], [], []
        for n in sorted(self._outcomes):
            vals, cons = self._outcomes[n]
            if len(vals) != m or (k and (cons is None or len(cons) != k)):
                continue
            rows.append(self._obs[n][0] if n in self._obs else enc.unit(study.trials[n].params))
            values.append(vals)
            constraints.append(cons if k else ())
        u_obs = np.array(rows) if rows else np.empty((0, enc.n_params))
        losses = np.array(values, dtype=float).reshape(len(rows), m) * signs
        cons_arr = np.array(constraints, dtype=float).reshape(len(rows), k)
        running = [r for _, r in sorted(study.running.items()) if r.number != number and r.params]
        avoided = list(self._failed.values())
        u_avoid = np.array(avoided) if avoided else np.empty((0, enc.n_params))
        return u_obs, _Outcomes(losses, cons_arr), running, u_avoid

    # -- suggestions --------------------------------------------------------------------

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        return (await self.ask_batch(study, [number]))[0]

    async def ask_batch(self, study: StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Configurations for the trials ``numbers``, chosen jointly from one model (see the module docstring)."""
        numbers = list(numbers)
        enc = self._bind(study)
        cap = self.running_cap(study)
        if cap is not None:
            await self._wait_for_room(study, len(numbers), cap)
        need = len(numbers)
        job = self._acq
        if job is not None and job.done.is_set():
            self._collect()
        fresh = self._fresh()
        if job is not None and fresh and len(self._pool) >= need:
            # The fast path: points the model chose in the background, while it chooses the next ones.
            out, self._pool = self._pool[:need], self._pool[need:]
            self.pooled += need
            self._asked += need
            self._note(study)
            return self._hand_out(enc, out)
        elif job is not None and fresh and len(self._pool) + len(self._spares) >= need:
            # The model cannot keep up: the last acquisition's next best candidates, rather than a wait.
            take = need - len(self._pool)
            spares = self._take_spares(take)
            if len(spares) == take:
                out = self._pool + spares
                self._pool = []
                self.pooled += need - take
                self.behind += take
                self._asked += need
                self._note(study)
                return self._hand_out(enc, out)
            self._put_back_spares(spares)  # too few left that were not handed out: as below
        several = self._several(study)
        n_init = self.n_initial or (default_initial_several if several else default_initial)(len(study.space))
        number = numbers[0]
        if several:
            u_obs, outcomes, pending, u_avoid = self._outcome_data(study, number)
            n_obs = len(u_obs)
            if n_obs + len(pending) < n_init or n_obs < max(2, n_init // 2):
                return await self._design_batch(study, numbers)
            return await self._model_batch(study, numbers, enc, u_obs, outcomes, pending, u_avoid, ())  # type: ignore[arg-type]
        # Without any report (finished or running) the joint data is the final values alone: not built.
        reports = bool(self._reported) or any(r.reports for r in study.running.values())
        if self.fidelity and self.fidelity_model == "joint" and reports:
            joint = self._joint_data(study, number)
            if joint.full is not None and bool(np.any(joint.levels < 1.0)):
                seen = set(joint.numbers.tolist())
                waiting = sum(1 for r in joint.pending if r.number not in seen)  # running trials without a value yet
                if joint.trials + waiting < n_init or joint.trials < max(2, n_init // 2):
                    return await self._design_batch(study, numbers)
                extra: tuple[Any, ...] = (joint.levels, joint.final)
                u_obs, losses, u_avoid, pending = joint.u_obs, joint.losses, joint.u_avoid, joint.pending
                return await self._model_batch(study, numbers, enc, u_obs, losses, pending, u_avoid, extra)
        data = self._model_data(study, number)
        n_obs = len(data.losses)
        if n_obs + len(data.pending) < n_init or n_obs < max(2, n_init // 2):
            return await self._design_batch(study, numbers)
        return await self._model_batch(study, numbers, enc, data.u_obs, data.losses, data.pending, data.u_avoid, ())

    async def _design_batch(self, study: StudyView, numbers: list[int]) -> list[dict[str, Any] | None]:
        """Points of the initial design; the model process is forked meanwhile, if it will be wanted.

        Forking takes tens of milliseconds in a large process: made while the
        first trials run, it is not on the way of the first model batch,
        which every free worker waits for.
        """
        self._widest = max(self._widest, len(numbers) + len(study.running))
        if self.running_cap(study) is None:  # under a small budget's cap the points are chosen in threads
            self._fork()
        return [await self._design.ask(study, n) for n in numbers]

    async def _model_batch(
        self,
        study: StudyView,
        numbers: list[int],
        enc: Encoder,
        u_obs: np.ndarray,
        losses: np.ndarray,
        pending: list[Any],
        u_avoid: np.ndarray,
        extra: tuple[Any, ...],
    ) -> list[dict[str, Any] | None]:
        """Suggestions from the model: made now (a run at concurrency 1), else served from the pool.

        The pool holds points the model chose jointly in the background; it
        is refilled from the newest data each time it is drawn from, so a
        free worker waits neither for a fit nor for an acquisition, except
        for the very first batch (there is no model yet) and when the pool
        runs dry before the background acquisition ends.
        """
        need = len(numbers)
        self._widest = max(self._widest, need + len(pending))
        rows = [self._unit(enc, r) for r in pending] if self.pending == "believer" else []
        u_pending = np.array(rows) if rows else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), numbers[0] & (2**64 - 1)]
        levels, final = extra if extra else (None, None)
        args = (enc, u_obs, losses, u_pending, u_avoid, seed, levels, final)
        if self.running_cap(study) is not None:
            # A small budget (``rounds``): chosen now, jointly, from every result known, with the running
            # trials as fantasies; no pool (see _wait_for_room).
            u = await anyio.to_thread.run_sync(lambda: self._suggest(*args, count=need, inline=True))
            self.direct += need
            return self._hand_out(enc, list(u[:need]))
        if self._widest <= 1:
            # Nothing else has ever run at once (concurrency 1): fitted and chosen now, reproducibly.
            u = await anyio.to_thread.run_sync(lambda: self._suggest(*args, count=1, inline=True))
            return [enc.decode(row) for row in u]
        job = self._acq
        if job is not None and job.done.is_set():
            self._collect()
        elif job is not None and (len(self._pool) < need or not self._fresh()):
            # The pool ran dry, or more results have come in since it was chosen than it held: the
            # acquisition under way, on newer data, fills it.
            await anyio.to_thread.run_sync(job.done.wait)
            self._collect()
        out: list[np.ndarray] = []
        if len(self._pool) >= need and self._fresh():
            out, self._pool = self._pool[:need], self._pool[need:]
            self.pooled += need
        self._asked += need
        if not out:
            # No model-chosen points yet (the first batch): chosen now, jointly, for these workers, and at
            # high concurrency for as many more as run at once (the wave of results behind these workers).
            extra = min(_POOL_MAX, self._widest) if self._widest >= _busy_min() else 0
            self._fork()
            u, state = await anyio.to_thread.run_sync(lambda: self._direct_batch(args, need + extra))
            if state is not None:  # chosen in the model process: its fit is the parent's too
                self._adopt(state)
            out = list(u[:need])
            if extra:
                self._pool, self._spares = list(u[need:]), []
                self._pool_told, self._pool_made = self._told, extra
            self.direct += need
            # The pool's acquisition must know of these points: they are running by the time it starts.
            args = (*args[:3], np.vstack([u_pending, u]), *args[4:])
        if self._acq is None:
            # Refill the pool from the newest data, enough for the workers expected to free up meanwhile.
            size = min(_POOL_MAX, max(2 * need, self._asked, _POOL_MIN, self._widest))
            self._asked = 0
            self._fork()
            self._acq = _Acquisition(self, args, size, self._told)
            self._acq.start()
        self._note(study)
        return self._hand_out(enc, out)

    def _unit(self, enc: Encoder, record: TrialRecord) -> np.ndarray:
        """The unit row of a running trial's configuration, encoded once while it runs (not at every batch)."""
        entry = self._units.get(record.number)
        if entry is not None and entry[0] is record.params:
            return entry[1]
        row = enc.unit(record.params)
        self._units[record.number] = (record.params, row)
        return row

    def _hand_out(self, enc: Encoder, rows: list[np.ndarray]) -> list[dict[str, Any] | None]:
        """Configurations of model-chosen ``rows``, remembered so that a later pool never repeats them."""
        self._unkeyed.extend(rows)  # keyed in bulk when a pool or the spares are checked (``_handed_keys``)
        return [enc.decode(row) for row in rows]

    def _handed_keys(self) -> set[bytes]:
        """The keys of every model-chosen point handed out so far."""
        if self._unkeyed:
            self._handed.update(_keys(np.asarray(self._unkeyed)))
            self._unkeyed = []
        return self._handed

    def _take_spares(self, count: int) -> list[np.ndarray]:
        """Up to ``count`` spare candidates from the front of ``_spares``, skipping points handed out since.

        The spares are checked against the points handed out only here, when
        they are drawn from (rarely): not for all of them when a pool arrives.
        """
        spares = np.asarray(self._spares)
        if not len(spares):
            return []
        handed = self._handed_keys()
        taken: list[int] = []
        used = 0
        while len(taken) < count and used < len(spares):
            end = min(len(spares), used + 2 * (count - len(taken)))
            taken.extend(used + i for i, key in enumerate(_keys(spares[used:end])) if key not in handed)
            used = end
        give, back = taken[:count], taken[count:]
        self._spares = np.concatenate([spares[back], spares[used:]]) if back else spares[used:]
        return list(spares[give])

    def _put_back_spares(self, rows: list[np.ndarray]) -> None:
        """Return spare candidates taken by :meth:`_take_spares` to the front of ``_spares``."""
        if rows:
            rest = np.asarray(self._spares)
            self._spares = np.concatenate([np.array(rows), rest]) if len(rest) else np.array(rows)

    def _fork(self) -> None:
        """Fork the model process, once, when it is wanted (``model_process``) and no refit thread runs.

        Forked only while no thread of this strategy runs (a refit would leave
        the child the locks it held); with a refit running, a later batch
        forks instead.
        """
        fitting = self._job is not None and not self._job.done.is_set()
        if not self._remote_tried and not fitting and self._wants_process():
            self._remote_tried = True
            from ._model_process import start

            self._remote = start(self)

    def _direct_batch(self, args: tuple[Any, ...], count: int) -> tuple[np.ndarray, tuple[Any, ...] | None]:
        """``count`` points chosen while the workers wait (in a worker thread), and the model process's state.

        With a live model process (and one objective) they are chosen there,
        off this process's interpreter lock, so that the event loop takes in
        the results arriving meanwhile at full speed; the state is then the
        child's hyperparameters and fit counts, for :meth:`_adopt`.
        Otherwise, or when the child has stopped, they are chosen here and the
        state is ``None``.
        """
        from ._model_process import RemoteError

        remote = self._remote
        if remote is not None and remote.alive and not isinstance(args[2], _Outcomes):
            epoch = self._epoch
            state = (self._theta, self._fit_n, self._restart_n)
            try:
                rows, theta_state, fits, late = remote.call("_remote_batch", args, count, epoch, state, 0)
            except RemoteError:
                pass
            else:
                return rows, (epoch, theta_state, fits, late)
        return self._suggest(*args, count=count, inline=False), None

    def _adopt(self, state: tuple[Any, ...]) -> None:
        """Take up the model process's hyperparameters after a direct batch (unless the model was reset since)."""
        epoch, theta_state, fits, late = state
        self.process_acquisitions += 1
        if epoch == self._epoch:
            self._theta, self._fit_n, self._restart_n = theta_state
            self.background_fits, self.late_fits = fits, late

    def _wants_process(self) -> bool:
        """Whether background acquisitions go to a model process (see ``model_process``)."""
        from ._model_process import PROCESS_MIN

        if self._multi_mode:
            return False  # several objectives or constraints: their models stay in this process
        if self.model_process is None:
            return self._widest >= PROCESS_MIN
        return self.model_process

    def _remote_batch(
        self, args: tuple[Any, ...], size: int, epoch: int, state: tuple[Any, int, int], spares: int | None = None
    ) -> tuple[np.ndarray, tuple[Any, int, int], int, int]:
        """In the model process: an acquisition of ``size`` points (and spares), with the state it leaves.

        The first call, and the first after the parent reset its model
        (``epoch``), take the parent's hyperparameters and fit counts.
        ``spares``: how many spare candidates follow the points (default
        ``_SPARES`` per point; none for a batch chosen while workers wait).
        """
        if self._served != epoch:
            self._served = epoch
            self._job = self._acq = self._remote = None  # the parent's threads do not exist here
            self._gp = None
            self._theta, self._fit_n, self._restart_n = state
        spares = _SPARES * size if spares is None else spares
        rows = self._suggest(*args, count=size, inline=False, spares=spares)
        return rows, (self._theta, self._fit_n, self._restart_n), self.background_fits, self.late_fits

    def _collect(self) -> None:
        """Take up the points of the background acquisition that ended (they replace the older pool)."""
        job, self._acq = self._acq, None
        if job is not None and job.state is not None:
            self.process_acquisitions += 1
        if job is not None and job.state is not None and job.epoch == self._epoch:
            # The model process fitted the hyperparameters: the direct path uses them too.
            self._theta, self._fit_n, self._restart_n = job.state
            self.background_fits, self.late_fits = job.counts
        if job is not None and job.rows is not None:
            # Points handed out from the older pool after this acquisition took its data are not repeated.
            # The keys of a whole pool in one pass: this runs in the event loop, at every pool.
            handed = self._handed_keys()
            rows = job.rows
            self._pool = [row for row, key in zip(rows, _keys(rows), strict=True) if key not in handed]
            self._spares = job.spares if job.spares is not None else []  # checked when drawn from
            self._pool_told, self._pool_made = job.told, len(job.rows)
            self.acquisitions += 1

    def _fresh(self) -> bool:
        """Fewer results have arrived since the pool's data than twice its size, or than the concurrency.

        At concurrency ``c`` every suggestion is made without the ``c - 1``
        results still running; a pool point lacks at most that many more.
        """
        return self._told - self._pool_told < max(2 * self._pool_made, self._widest)

    def _search_sizes(self, d: int) -> tuple[int, int, int]:
        """The acquisition's uniform candidates, local perturbations and refined starts in ``d`` dimensions."""
        candidates = self.candidates or min(2048, 192 * d)
        local = self.local if self.local is not None else max(256, candidates // 8)
        starts = self.starts if self.starts is not None else min(10, max(5, d + 2))
        return candidates, local, starts

    def running_cap(self, study: StudyView) -> int | None:
        """The most trials that run at once under ``rounds``, or ``None`` when the rule does not bind.

        ``max(1, max_trials // rounds)`` when the study has a budget and the
        tuner runs more trials at once than that; ``None`` otherwise (no
        budget, ``rounds=None``, or few enough workers: at concurrency 1,
        always).
        """
        budget, concurrency = study.max_trials, getattr(study, "concurrency", None)
        if self.rounds is None or budget is None or not concurrency:
            return None
        cap = max(1, int(budget) // self.rounds)
        return cap if concurrency > cap else None

    def batch_limit(self, study: StudyView) -> int | None:
        """The most numbers the next :meth:`ask_batch` may be given: the free room under :meth:`running_cap`."""
        cap = self.running_cap(study)
        if cap is None:
            return None
        return max(1, cap - len(study.running))

    async def _wait_for_room(self, study: StudyView, need: int, cap: int) -> None:
        """Under :meth:`running_cap`: wait until ``need`` more trials fit beside the running ones (or none runs).

        The points are then chosen in :meth:`_model_batch`, directly, from
        every result known.
        """
        while len(study.running) + need > cap and study.running:
            self.capped_waits += 1
            event = self._result = anyio.Event()  # a new one each time: never one of an earlier run's loop
            with anyio.move_on_after(1.0):  # a guard: a trial that leaves ``running`` unheard cannot stall the ask
                await event.wait()

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        await super().tell(study, record)
        self._units.pop(record.number, None)
        self._told += 1
        event, self._result = self._result, None
        if event is not None:
            event.set()  # an ask waiting under ``rounds`` for a free place looks again

    def _note(self, study: StudyView) -> None:
        """Tell the console when the model falls behind: the study's notes, and one warning per study."""
        behind = self.behind
        if behind == self._noted:
            return
        self._noted = behind
        text = (
            f"{self.name}: the model fell behind; {behind} suggestion{'s' if behind != 1 else ''} "
            "came from the last acquisition's spare candidates"
        )
        notes = getattr(study, "notes", None)
        if notes is not None:
            notes[self.name] = text
        if not self._warned:
            self._warned = True
            log.warning("study %r: %s (while free workers outpace the model; see docs/strategies.md)", study.name, text)

    def _training_set(self, n: int, losses: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Indices the model trains on: all of them, or a subset past ``max_points``."""
        cap = self.max_points
        if n <= cap:
            return np.arange(n)
        keep = np.zeros(n, dtype=bool)
        keep[np.argsort(losses, kind="stable")[: cap // 2]] = True
        keep[n - cap // 5 :] = True
        rest = np.flatnonzero(~keep)
        need = cap - int(keep.sum())
        if need > 0:
            keep[rng.choice(rest, size=need, replace=False)] = True
        return np.flatnonzero(keep)

    def _suggest(
        self,
        enc: Encoder,
        u_obs: np.ndarray,
        losses: np.ndarray,
        u_pending: np.ndarray,
        u_avoid: np.ndarray,
        seed: list[int],
        levels: np.ndarray | None = None,
        final: np.ndarray | None = None,
        *,
        count: int = 1,
        inline: bool = True,
        spares: int = 0,
    ) -> np.ndarray:
        """Fit the model and maximise the acquisition (runs in a worker thread): ``count`` unit rows (and spares)."""
        with one_blas_thread():
            return self._fit_and_maximise(
                enc, u_obs, losses, u_pending, u_avoid, seed, levels, final, count=count, inline=inline, spares=spares
            )

    def _hyperparameters(self, x: np.ndarray, y: np.ndarray, n: int, rng: np.random.Generator, inline: bool) -> None:
        """Bring ``_theta`` up to date with ``n`` observations: fitted here, or in the background.

        The first fit is always made here (there is no model yet).  Later
        refits are made here when ``inline``; otherwise a due refit starts in
        a background thread on a copy of the data, and the model keeps the
        last fitted hyperparameters until it ends.  A refit that falls due
        while one is still running counts as a suggestion made *behind*.
        """
        from ._gp import fit_theta

        job = self._job
        if job is not None and job.done.is_set():
            self._job = None
            if job.theta is not None and len(job.theta) == x.shape[1] + 2:  # a failed refit keeps the last fit
                self._theta = job.theta
                self.background_fits += 1
        dim = x.shape[1]
        if self._theta is None or len(self._theta) != dim + 2:
            self._theta = fit_theta(x, y, None, rng, runs=_FIT_RUNS + 1)
            self._fit_n = self._restart_n = n
            return
        restart = n >= self._restart_n + max(1, int(self._restart_fraction * self._restart_n))
        refresh = n >= self._fit_n + max(1, int(self.refit_fraction * self._fit_n))
        if not (restart or refresh):
            return
        if restart:
            # Restarts from the prior's pool as well as the warm start: a warm start alone would
            # keep the hyperparameters in the basin of their first fit.
            options: dict[str, Any] = {"runs": _FIT_RUNS}
        else:
            # In between, a short L-BFGS-B run from the last fit only.
            options = {"runs": 1, "maxiter": _WARM_ITERS}
        if inline:
            self._theta = fit_theta(x, y, self._theta, rng, **options)
        elif self._remote is not None and self._remote.alive:
            return  # the model process refits (its hyperparameters come back with its next acquisition)
        elif self._job is not None:
            self.late_fits += 1  # the data outgrew the fit that is running: use the last hyperparameters
            return
        else:
            fx, fy = x, y
            if self._widest >= _busy_min() and len(x) > _BUSY_FIT_POINTS:
                # Many trials at once: the refit learns from a subset (the best quarter, the rest at random),
                # so that it does not hold up the acquisitions that share its process; the posterior still
                # conditions on every point of the training set.
                keep = np.zeros(len(y), dtype=bool)
                keep[np.argsort(y, kind="stable")[: _BUSY_FIT_POINTS // 4]] = True
                rest = np.flatnonzero(~keep)
                keep[rng.choice(rest, size=_BUSY_FIT_POINTS - int(keep.sum()), replace=False)] = True
                fx, fy = x[keep], y[keep]
            self._job = _Fit(fx.copy(), fy.copy(), self._theta.copy(), int(rng.integers(2**63)), options)
            self._job.start()
        self._fit_n = n
        if restart:
            self._restart_n = n

    def _fit_and_maximise(
        self,
        enc: Encoder,
        u_obs: np.ndarray,
        losses: np.ndarray,
        u_pending: np.ndarray,
        u_avoid: np.ndarray,
        seed: list[int],
        levels: np.ndarray | None = None,
        final: np.ndarray | None = None,
        *,
        count: int = 1,
        inline: bool = True,
        spares: int = 0,
    ) -> np.ndarray:
        if isinstance(losses, _Outcomes):
            return self._fit_and_maximise_several(
                enc, u_obs, losses, u_pending, u_avoid, seed, count=count, spares=spares
            )
        # Imported here: scipy.optimize is slow to import and most tuners never need it.
        from ._acquisition import maximise_log_ei, select_batch
        from ._gp import GP, standardise

        rng = np.random.default_rng(seed)
        n = len(losses)
        idx = self._training_set(n, losses, rng)
        x = enc.features(u_obs[idx])
        if levels is not None:
            x = np.hstack([x, levels[idx, None]])
        y = standardise(losses[idx])
        self._hyperparameters(x, y, n, rng, inline)
        candidates, local, starts = self._search_sizes(enc.n_params)
        theta = self._theta
        cached = self._gp
        if cached is not None and cached.theta is theta:
            base = cached.update(x, y)  # same hyperparameters: extend the factor by the new rows
        else:
            base = GP(x, y, theta)
        self._gp = base
        if levels is None:
            best = float(np.min(y))
            anchors = u_obs[np.argsort(losses, kind="stable")[:5]]
        else:
            best, anchors = _full_incumbent(base, enc, u_obs, levels, final, idx, y)
        if count > 1 or spares:
            # Failed points as fantasies in the model; running ones are conditioned on in the batch's pool
            # (cheaper: the candidates are scored against the observations alone).
            gp = base
            if len(u_avoid):
                gp = _with_fantasies(gp, enc, u_pending[:0], u_avoid, best, float(np.median(y)), levels is not None)
            return select_batch(
                gp if levels is None else _AtFullResource(gp),
                enc,
                best,
                anchors,
                rng,
                count,
                pending=u_pending,
                spares=spares,
                believer=self.pending == "believer",
                candidates=candidates,
                local=local,
                starts=min(starts, _BATCH_STARTS),
                maxiter=_REFINE_ITERS,
            )
        for attempt in range(_STALL_SHRINKS + 1):
            gp = base if attempt == 0 else GP(x, y, theta)
            if len(u_pending) or len(u_avoid):
                gp = _with_fantasies(gp, enc, u_pending, u_avoid, best, float(np.median(y)), levels is not None)
            # A retry explores with a less confident model: half the candidates, none refined.
            u, value = maximise_log_ei(
                gp if levels is None else _AtFullResource(gp),
                enc,
                best,
                anchors,
                rng,
                **_search_on(attempt, candidates, local, starts),
                maxiter=_REFINE_ITERS,
            )
            if value >= _STALL_LOG_EI:
                break
            # The model sees no improvement worth having anywhere: it may be overconfident (a basin
            # it has settled in).  Ask a less confident model, with shorter length scales.
            theta = theta.copy()
            theta[: enc.dim] -= math.log(2.0)
        return u[None, :]

    # -- several objectives, constraints ---------------------------------------------------

    def _several_hyperparameters(
        self, x: np.ndarray, ys: list[np.ndarray], n: int, rng: np.random.Generator, *, every: bool = False
    ) -> None:
        """Bring every model's hyperparameters up to date (on the schedule of :meth:`_hyperparameters`).

        The fits are made here, in the worker thread that makes the
        suggestion (there is no separate background refit for these models).
        With ``every``, a full refit with restarts follows every new result
        (the schedule of ``refit_fraction=0``), whatever ``refit_fraction``
        (the caller passes it when the user left ``refit_fraction`` unset).
        """
        from ._gp import fit_theta

        dim = x.shape[1]
        thetas = self._thetas
        if thetas is None or len(thetas) != len(ys) or len(thetas[0]) != dim + 2:
            self._thetas = [fit_theta(x, y, None, rng, runs=_FIT_RUNS + 1) for y in ys]
            self._mfit_n = self._mrestart_n = n
            return
        restart_fraction, refit_fraction = (0.0, 0.0) if every else (self._restart_fraction, self.refit_fraction)
        restart = n >= self._mrestart_n + max(1, int(restart_fraction * self._mrestart_n))
        refresh = n >= self._mfit_n + max(1, int(refit_fraction * self._mfit_n))
        if not (restart or refresh):
            return
        options: dict[str, Any] = {"runs": _FIT_RUNS} if restart else {"runs": 1, "maxiter": _WARM_ITERS}
        self._thetas = [fit_theta(x, y, t, rng, **options) for y, t in zip(ys, thetas, strict=True)]
        self._mfit_n = n
        if restart:
            self._mrestart_n = n

    def _fit_and_maximise_several(
        self,
        enc: Encoder,
        u_obs: np.ndarray,
        outcomes: _Outcomes,
        u_pending: np.ndarray,
        u_avoid: np.ndarray,
        seed: list[int],
        *,
        count: int = 1,
        spares: int = 0,
    ) -> np.ndarray:
        """One GP per objective and per constraint; log EHVI times the probability of feasibility (``_ehvi``)."""
        from ._ehvi import MultiModel, nondominated_mask, reached_floors, select
        from ._gp import GP, standardise

        rng = np.random.default_rng(seed)
        losses, cons = outcomes.losses, outcomes.constraints
        n, m = losses.shape
        k = cons.shape[1]
        violation = np.sum(np.maximum(cons, 0.0), axis=1) if k else np.zeros(n)
        idx = self._several_training_set(losses, violation, rng)
        x = enc.features(u_obs[idx])
        ys = [standardise(losses[idx, j]) for j in range(m)]
        thresholds = np.empty(k)
        for j in range(k):
            c = cons[idx, j]
            centre, scale = float(np.mean(c)), float(np.std(c))
            scale = scale if scale > 0 else max(abs(centre), 1.0)
            ys.append((c - centre) / scale)
            thresholds[j] = -centre / scale
        # With several objectives, unless the user chose a ``refit_fraction``, every model is refitted in full,
        # with restarts, at each new result: it gained on the benchmark problems over the schedule of one
        # objective, for 1.1-1.8x the time per trial (docs/benchmarks.md).
        every = m >= _REFIT_EVERY_OBJECTIVES and not self._refit_chosen
        self._several_hyperparameters(x, ys, n, rng, every=every)
        assert self._thetas is not None
        y_std = np.column_stack(ys[:m])
        feasible = violation[idx] <= 0.0
        front = y_std[feasible]
        front = front[nondominated_mask(front)] if len(front) else np.empty((0, m))
        ref = None
        if len(front):
            # Up to the worst feasible value of each objective, plus a tenth of their range (or of a unit).
            seen = y_std[feasible]
            lo, hi = seen.min(axis=0), seen.max(axis=0)
            ref = hi + np.maximum(0.1 * (hi - lo), 0.1)
        floor = None
        if m == _FLOOR_OBJECTIVES and len(front):
            # An objective's best feasible value reached by two different configurations or more is taken as its bound:
            # the boxes start there instead of at minus infinity.  Without it a point predicted at an end of
            # the front draws, from the tail of its Gaussian past that end, the whole width of the other
            # objective up to the reference point, and the search proposes copies of that end again and again.
            # Distinct configurations only: a configuration tried twice is not a second witness of a bound.
            bound = reached_floors(losses[idx][feasible], configs=_keys(u_obs[idx][feasible]))
            if bound.any():
                floor = np.where(bound, y_std[feasible].min(axis=0), -np.inf)
        z_avoid = enc.features(u_avoid) if len(u_avoid) else None

        def models(thetas: list[np.ndarray]) -> MultiModel:
            gps = [GP(x, y, theta) for y, theta in zip(ys, thetas, strict=True)]
            if z_avoid is not None:
                # FAILED and PRUNED points as fantasies: each objective no better than its median there.
                fantasised = []
                for j, gp in enumerate(gps):
                    mean, _ = gp.predict(z_avoid)
                    if j < m:
                        mean = np.maximum(mean, float(np.median(ys[j])))
                    fantasised.append(gp.with_points(z_avoid, mean))
                gps = fantasised
            return MultiModel(gps, m, thresholds, front, ref, floor)

        thetas = self._thetas
        model = models(thetas)
        if model.feasible:
            u_feasible = u_obs[idx][feasible]
            anchors = u_feasible[nondominated_mask(y_std[feasible])]
            if len(anchors) > 10:
                anchors = anchors[rng.choice(len(anchors), 10, replace=False)]
        else:
            anchors = u_obs[idx][np.argsort(violation[idx], kind="stable")[:5]]
        candidates, local, starts = self._search_sizes(enc.n_params)
        # The two best candidates climb the acquisition's gradient, with one or two objectives (with three
        # the refined points did worse on the benchmark problems; more starts gained nothing: docs/benchmarks.md).
        refine = 0 if m > _REFINE_MAX_OBJECTIVES else min(starts, _BATCH_STARTS)
        # One objective under constraints: the incumbent also climbs, on its own and to a fine tolerance (the
        # end game next to an optimum on the feasible region's boundary: docs/benchmarks.md).
        warm = _end_game_start(u_obs[idx], losses[idx, 0], violation[idx]) if m == 1 and k else None
        tries = _STALL_SHRINKS + 1 if count == 1 and not spares else 1  # a batch is not retried (as with one)
        for attempt in range(tries):
            # A retry explores with a less confident model: half the candidates, none refined.
            rows, value = select(
                model,
                enc,
                anchors,
                rng,
                count,
                pending=u_pending,
                spares=spares,
                believer=self.pending == "believer",
                **_search_on(attempt, candidates, local, starts),
                refine=refine if attempt == 0 else 0,
                maxiter=_REFINE_ITERS,
                warm=warm if attempt == 0 else None,
            )
            if value >= _STALL_LOG_EI or attempt == tries - 1:
                break
            # The models see nothing worth having anywhere: they may be overconfident (as with one objective,
            # in units of the standardised losses).  Ask less confident ones, with shorter length scales.
            thetas = [t.copy() for t in thetas]
            for t in thetas:
                t[: enc.dim] -= math.log(2.0)
            model = models(thetas)
        return rows

    def _several_training_set(self, losses: np.ndarray, violation: np.ndarray, rng: np.random.Generator) -> np.ndarray:
        """Indices the models train on: all, or past ``max_points`` the best fronts (Deb's rule), recent, random."""
        n = len(losses)
        cap = self.max_points
        if n <= cap:
            return np.arange(n)
        feasible = violation <= 0.0
        ranks = np.zeros(n)
        if feasible.sum() <= 2048:
            from .._pareto import front_ranks

            ranks[feasible] = front_ranks(losses[feasible].tolist()) if feasible.any() else []
        else:  # too many for pairwise comparisons: each trial's best rank in any one objective
            ranks[feasible] = np.argsort(np.argsort(losses[feasible], axis=0), axis=0).min(axis=1)
        keep = np.zeros(n, dtype=bool)
        # Feasible trials by front, then infeasible ones by violation (Deb's rule).
        keep[np.lexsort((ranks, violation))[: cap // 2]] = True
        keep[n - cap // 5 :] = True
        rest = np.flatnonzero(~keep)
        need = cap - int(keep.sum())
        if need > 0:
            keep[rng.choice(rest, size=need, replace=False)] = True
        return np.flatnonzero(keep)


class _Outcomes(NamedTuple):
    """What the models of several outcomes are fitted to: one row per COMPLETE trial."""

    losses: np.ndarray  # one column per objective (``sign * value``)
    constraints: np.ndarray  # one column per constraint (satisfied when <= 0); no columns without them


def _end_game_start(u: np.ndarray, losses: np.ndarray, violation: np.ndarray) -> np.ndarray:
    """The unit row (one) of the best feasible observation, or of the least infeasible one when none is feasible.

    ``losses`` are one objective's (lower is better), ``violation`` the
    summed positive parts of the constraints, one per row of ``u``; the
    first of equals is taken.
    """
    feasible = np.flatnonzero(violation <= 0.0)
    i = int(feasible[np.argmin(losses[feasible])]) if len(feasible) else int(np.argmin(violation))
    return u[i : i + 1]


def _search_on(attempt: int, candidates: int, local: int, starts: int) -> dict[str, int]:
    """The acquisition's search sizes on a stall retry's ``attempt`` (0: the first search): a retry explores
    with a less confident model, with half the candidates and none refined."""
    if attempt == 0:
        return {"candidates": candidates, "local": local, "starts": starts}
    return {"candidates": max(1, candidates // 2), "local": local // 2, "starts": 0}


def _keys(rows: np.ndarray) -> list[bytes]:
    """Unit rows as set keys, one per row (NaN for inactive parameters compares equal)."""
    if len(rows) == 0:
        return []
    rows = np.asarray(rows, dtype=float)
    rounded = np.round(np.where(np.isnan(rows), -1.0, rows), 12)
    return [row.tobytes() for row in rounded]


def _with_fantasies(
    gp: Any, enc: Encoder, u_pending: np.ndarray, u_avoid: np.ndarray, best: float, median: float, joint: bool
) -> Any:
    """``gp`` conditioned on fantasies: the model's mean, floored at the incumbent (pending) or the median.

    Pending points are floored at the incumbent, failed and pruned ones at the median loss.
    """
    u_extra = np.vstack([u_pending, u_avoid])
    floor = np.concatenate([np.full(len(u_pending), best), np.full(len(u_avoid), median)])
    z_extra = enc.features(u_extra)
    if joint:
        z_extra = np.hstack([z_extra, np.ones((len(z_extra), 1))])
    believed, _ = gp.predict(z_extra)
    return gp.with_points(z_extra, np.maximum(believed, floor))


class _Acquisition(threading.Thread):
    """A batch of ``size`` points chosen jointly in a background thread; ``rows`` once ``done`` is set."""

    def __init__(self, strategy: BayesStrategy, args: tuple[Any, ...], size: int, told: int = 0) -> None:
        super().__init__(name="hpt-async-acquisition", daemon=True)
        self.strategy, self.args, self.size, self.told = strategy, args, size, told
        self.rows: np.ndarray | None = None
        self.spares: np.ndarray | None = None
        self.state: tuple[Any, int, int] | None = None  # the model process's hyperparameters, if it chose
        self.counts = (0, 0)
        self.epoch = strategy._epoch
        self.error: BaseException | None = None
        self.done = threading.Event()

    def _remote(self) -> np.ndarray | None:
        """The points chosen by the model process, or None without one (or when it has stopped)."""
        from ._model_process import RemoteError

        strategy = self.strategy
        remote = strategy._remote
        if remote is None or not remote.alive or isinstance(self.args[2], _Outcomes):
            return None  # several outcomes are modelled in this process (their fits are not handed across)
        state = (strategy._theta, strategy._fit_n, strategy._restart_n)
        try:
            rows, self.state, *counts = remote.call("_remote_batch", self.args, self.size, self.epoch, state)
        except RemoteError:
            return None
        self.counts = (int(counts[0]), int(counts[1]))
        return rows

    def run(self) -> None:
        try:
            rows = self._remote()
            if rows is None:
                rows = self.strategy._suggest(*self.args, count=self.size, inline=False, spares=_SPARES * self.size)
            self.rows, self.spares = rows[: self.size], rows[self.size :]
        except BaseException as exc:  # the next batch is chosen while the workers wait, and raises it there
            self.error = exc
        finally:
            self.done.set()


class _Fit(threading.Thread):
    """A refit of the hyperparameters in a background thread; ``theta`` once ``done`` is set."""

    def __init__(self, x: np.ndarray, y: np.ndarray, warm: np.ndarray, seed: int, options: dict[str, Any]) -> None:
        super().__init__(name="hpt-async-fit", daemon=True)
        self.x, self.y, self.warm, self.seed, self.options = x, y, warm, seed, options
        self.theta: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        from ._gp import fit_theta

        try:
            # No BLAS limit here: threadpoolctl's limit is process-wide, and a second one entered and left
            # from another thread at the same time would leave the pool at the wrong size.
            if True:
                self.theta = fit_theta(self.x, self.y, self.warm, np.random.default_rng(self.seed), **self.options)
        except BaseException as exc:  # a failed refit keeps the last hyperparameters
            self.error = exc
        finally:
            self.done.set()


class _AtFullResource:
    """A GP over (features, level) seen at level 1: what the acquisition asks of a model."""

    def __init__(self, gp: Any) -> None:
        self.gp = gp

    @staticmethod
    def _with_level(z: np.ndarray) -> np.ndarray:
        return np.hstack([z, np.ones((len(z), 1))])

    def predict(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and variance at the full resource."""
        return self.gp.predict(self._with_level(z))

    def joint(self, z: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Posterior mean and joint covariance at the full resource."""
        return self.gp.joint(self._with_level(z))

    @property
    def noise(self) -> float:
        """The model's noise variance."""
        return float(self.gp.noise)

    def log_ei(self, z: np.ndarray, best: float) -> np.ndarray:
        """Log expected improvement at the full resource."""
        return self.gp.log_ei(self._with_level(z), best)

    def log_ei_grad(self, z: np.ndarray, best: float) -> tuple[np.ndarray, np.ndarray]:
        """Log EI at the full resource and its gradient in the features (the level is held at 1)."""
        value, grad = self.gp.log_ei_grad(self._with_level(z), best)
        return value, grad[:, :-1]


def _full_incumbent(
    gp: Any,
    enc: Encoder,
    u_obs: np.ndarray,
    levels: np.ndarray,
    final: np.ndarray | None,
    idx: np.ndarray,
    y: np.ndarray,
) -> tuple[float, np.ndarray]:
    """The loss to improve on at the full resource, and the configurations predicted best there.

    The incumbent is the best (transformed) final value of a COMPLETE trial
    that the model trains on; before any, the best value at the full
    resource (a trial stopped there), and before that, the best mean the
    model predicts at the full resource for a configuration tried.  The
    anchors of local candidates are the five configurations with the best
    predicted means at the full resource.
    """
    _, first = np.unique(np.nan_to_num(u_obs, nan=-1.0), axis=0, return_index=True)
    tried = u_obs[np.sort(first)]
    mean, _ = _AtFullResource(gp).predict(enc.features(tried))
    anchors = tried[np.argsort(mean, kind="stable")[:5]]
    for rows in (final[idx] if final is not None else np.zeros(len(idx), dtype=bool), levels[idx] >= 1.0):
        if rows.any():
            return float(np.min(y[rows])), anchors
    return float(np.min(mean)), anchors


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``bayes``."""
    register("strategy", "bayes", BayesStrategy)
