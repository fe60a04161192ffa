"""``strategy="tpe"``: a multivariate tree-structured Parzen estimator.

Completed trials are split by loss into a *good* group (the best
``gamma`` fraction, at most ``max_good``) and a *bad* group.  Each group
becomes a joint density over the unit cube: a mixture with one component
per trial, each component a product over parameters (a truncated Gaussian
for a numeric parameter, a kernel that keeps the observed category with
high probability for a Choice), plus a uniform prior component.  Candidates
are drawn from the good density and the one with the largest ratio of good
to bad density is suggested.  Because components are joint, correlations
between parameters are kept (unlike independent per-parameter TPE).

Conditional spaces: a parameter inactive in a trial leaves that trial's
component uniform on it, and a parameter inactive in a candidate is left
out of its score (the same factor for both groups).  So each trial informs
exactly the parameters it had, and subspaces are compared through their
parents.

Running trials are added to the bad group (a constant liar), so concurrent
suggestions avoid what is already being evaluated; the points of one batch
(:meth:`TPEStrategy.ask_batch`) lie about each other the same way.  With
others running, a batch also chooses points for the next free workers (as
many as trials run at once), and the next such pool is chosen in the
background (a thread, or a forked model process at 32 or more trials at
once) once half of it is used.  FAILED and PRUNED
trials are added there too, as configurations, never with their value as a
final one.  CANCELLED and LOST trials are ignored.

Multi-fidelity (on by default): when trials report intermediate values, as
under ``pruner="asha"`` or ``"hyperband"``, and fewer than ``fidelity_min``
trials have completed, the groups are split by the values every trial
(COMPLETE, PRUNED, PAUSED or RUNNING) reported at the highest step that enough
trials reached; those trials are then ranked, not lied about or avoided
(see ``_model``).  The first trials
follow a scrambled Sobol' design.

Several objectives (multi-objective TPE, Ozaki et al. 2020): the good group
is made by non-dominated sorting, whole fronts first while they fit, then
the points of the next front that add the most hypervolume, chosen
greedily (:func:`split_order`).  Constraints
(:meth:`Trial.set_constraints <hpt_async.Trial.set_constraints>`), with one
objective or several: infeasible trials rank after every feasible one, by
total violation, so the good group holds feasible trials whenever there are
enough of them (the rule of Optuna's ``TPESampler(constraints_func=...)``).
In both cases the groups are made from final values only (intermediate
reports do not carry the constraints, nor a ranking of every objective).  Draws come from ``(seed, trial number)``:
a seeded run at concurrency 1 is reproducible.
"""

from __future__ import annotations

import heapq
import math
import threading
import weakref
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from .._pareto import _front_of, _hv, crowding_distance, default_reference_point, violation
from ..hookspecs import hookimpl
from ._encoding import Encoder
from ._model import ModelData, ModelStrategy, one_blas_thread

if TYPE_CHECKING:
    from ..study import StudyView
    from ..trial import TrialRecord

__all__ = ["ParzenEstimator", "TPEStrategy", "greedy_hypervolume_subset", "split_order"]

_LOG_SQRT_2PI = 0.5 * math.log(2.0 * math.pi)
_PENDING_MODES = ("liar", "ignore")
# A lone suggestion (nothing else running) over at most this many points is made on the event loop; any other
# in a worker thread, so that free workers queue for one batch meanwhile.
_INLINE_WORK = 4096
_POOL_MIN, _POOL_MAX = 8, 256  # extra points a batch chooses for the next free workers
# The good group's default fraction with one objective and with several (chosen on ZDT1 and DTLZ2, see benchmarks).
_GAMMA_ONE, _GAMMA_SEVERAL = 0.15, 0.10
_POOL_SHARE = 1  # ... at least this fraction of the trials running at once


# A group of more than this many points takes its kernel width from its size rounded down to a step of an eighth
# of an octave (a factor 2 ** (1/8)): the widths change (by under 1.8 % in one parameter, less in more) only
# when the group has grown by that factor, so the kernels of the points already in it are kept.
_WIDTH_EXACT = 64
_WIDTH_STEPS = 8


def _width_count(count: int) -> float:
    """The group size a kernel width is taken from: ``count`` itself up to 64, then rounded down to a step."""
    if count <= _WIDTH_EXACT:
        return max(count, 1)
    return _WIDTH_EXACT * 2.0 ** (math.floor(_WIDTH_STEPS * math.log2(count / _WIDTH_EXACT)) / _WIDTH_STEPS)


class _Layout:
    """What a Parzen estimator needs of an encoder's parameters, worked out once per encoder (see ``_layout``)."""

    __slots__ = ("__weakref__", "choices", "dim", "kinds", "num", "plain")

    def __init__(self, enc: Encoder) -> None:
        self.num = np.array([p.index for p in enc.params if p.kind != "choice"], dtype=np.int64)
        self.choices = [p for p in enc.params if p.kind == "choice" and p.n > 1]
        self.kinds = [(p.index, p.kind == "choice", p.n) for p in enc.params]
        self.dim = max(enc.n_params, 1)
        # Unconditional and every parameter a plain float: snapping a unit point is clipping it to [0, 1].
        self.plain = not enc.conditional and all(p.kind == "float" for p in enc.params)


_LAYOUTS: weakref.WeakKeyDictionary[Encoder, _Layout] = weakref.WeakKeyDictionary()


def _layout(enc: Encoder) -> _Layout:
    layout = _LAYOUTS.get(enc)
    if layout is None:
        layout = _LAYOUTS[enc] = _Layout(enc)
    return layout


def _snap(enc: Encoder, layout: _Layout, u: np.ndarray) -> np.ndarray:
    """``enc.snap(u)[0]``, in one step when every parameter is an unconditional plain float."""
    if layout.plain:
        return np.clip(np.nan_to_num(u, nan=0.5), 0.0, 1.0)
    return enc.snap(u)[0]


class ParzenEstimator:
    """A joint kernel density over the unit coordinates of ``points`` (NaN = inactive), plus a uniform prior.

    A numeric parameter's kernel is a Gaussian truncated to ``[0, 1]`` of
    width ``bandwidth * m ** (-1 / (d + 4))`` for ``m`` points in ``d``
    parameters (past 64 points, ``m`` rounded down to an eighth of an
    octave: ``_width_count``); a Choice keeps its value with probability
    ``1 - b`` where ``b`` shrinks as ``2 / (m + 2)``.  Given ``kernels``
    (kept for the observations of a ``_Rows``) and ``index``, the first
    ``len(index)`` points are those observations and their kernel
    constants are taken from ``kernels`` rather than computed again.
    """

    def __init__(
        self,
        enc: Encoder,
        points: np.ndarray,
        prior_weight: float = 1.0,
        bandwidth: float = 0.1,
        *,
        kernels: _Kernels | None = None,
        index: np.ndarray | None = None,
    ) -> None:
        from scipy import special  # imported on first use: most tuners never need scipy.special

        self._special = special
        self.enc = enc
        self._layout = layout = _layout(enc)
        self.points = points
        m = len(points)
        self.log_w = math.log(1.0 / (m + prior_weight)) if m else -math.inf
        self.log_w0 = math.log(prior_weight / (m + prior_weight))
        n_params = enc.n_params
        self.bandwidth = np.zeros(n_params)
        self.switch = np.zeros(n_params)
        nan = np.isnan(points)
        self._full = m and not nan.any()  # every parameter active in every point
        if not m:
            counts = [0] * n_params
        elif self._full:
            counts = [m] * n_params
        else:
            counts = (m - np.count_nonzero(nan, axis=0)).tolist()
        power = -1.0 / (layout.dim + 4)
        for j, choice, n in layout.kinds:
            count = counts[j]
            if choice:
                # Probability that a component moves off its own category.
                self.switch[j] = (n - 1) / n * min(1.0, 2.0 / (count + 2))
            else:
                # A fixed width that narrows slowly as the group grows: the group's own
                # spread would collapse onto a few close good points and crawl.
                self.bandwidth[j] = bandwidth * _width_count(count) ** power
        self._num = layout.num
        self._choices = layout.choices
        self._right: np.ndarray | None = None
        if kernels is not None and index is not None:
            # The first len(index) points are observations whose kernels ``kernels`` keeps; the rest are new.
            right = kernels.right(self, index)
            rest = points[len(index) :]
            if len(rest):
                right = np.vstack([right, self._right_of(rest)])
            self._right = right
        else:
            self._consts = self._constants(points, self._full)

    def _right_of(self, points: np.ndarray) -> np.ndarray:
        """The kernel constants of ``points`` as the rows of the scoring product (see ``log_kernels``)."""
        s2, mu_s2, mu2_s2, const = self._constants(points, len(points) > 0 and not np.isnan(points).any())
        return np.hstack([-0.5 * s2, mu_s2, const - 0.5 * mu2_s2])

    def _constants(self, points: np.ndarray, full: bool = False) -> tuple[np.ndarray, ...]:
        """Per-component constants of the numeric kernels, so that scoring is a few matrix products.

        ``full``: no point has an inactive parameter (the masks are then left out; the values are the same).
        """
        ndtr = self._special.ndtr
        cols = points[:, self._num]
        h = self.bandwidth[self._num]
        if full:
            mu = cols
            mass = ndtr((1.0 - mu) / h) - ndtr(-mu / h)
            s2 = np.broadcast_to(1.0 / (h * h), mu.shape)
            return s2, mu * s2, mu * mu * s2, (-_LOG_SQRT_2PI - np.log(h)) - np.log(mass)
        on = ~np.isnan(cols)
        mu = np.where(on, cols, 0.5)
        mass = ndtr((1.0 - mu) / h) - ndtr(-mu / h)
        # log kernel of component i at x (numeric column d): -(x - mu)^2 s2 / 2 + const, 0 where i lacks d.
        s2 = np.where(on, 1.0 / (h * h), 0.0)
        return s2, mu * s2, mu * mu * s2, np.where(on, -_LOG_SQRT_2PI - np.log(h) - np.log(mass), 0.0)

    def log_kernels(self, s: np.ndarray, centres: np.ndarray | None = None) -> tuple[np.ndarray, np.ndarray]:
        """Log kernels at the snapped unit points ``s`` (rows: points), and the prior's log density.

        The kernels are this density's components, or, given ``centres``,
        components of this density's widths centred there (a lie added to a
        group).
        """
        points = self.points if centres is None else centres
        if centres is None:
            right = self._right
            if right is None:
                s2, mu_s2, mu2_s2, const = self._consts
                right = self._right = np.hstack([-0.5 * s2, mu_s2, const - 0.5 * mu2_s2])
        else:
            right = self._right_of(centres)
        c = len(s)
        cn = s[:, self._num]
        on = ~np.isnan(cn)
        if on.all():
            x = cn
            fon = np.ones(cn.shape)
        else:
            x = np.where(on, cn, 0.0)
            fon = on.astype(float)
        # sum_d on_d [-(x_d - mu_d)^2 s2_d / 2 + const_d], as one matrix product over the numeric columns:
        # [x^2, x, on] . [-s2 / 2, mu s2, const - mu^2 s2 / 2].
        left = np.hstack([x * x, x, fon])
        log_k = left @ right.T
        log_prior = np.zeros(c)
        for p in self._choices:
            j, k = p.index, p.n
            cand = s[:, j]
            cand_on = ~np.isnan(cand)
            comp = points[:, j]
            comp_on = ~np.isnan(comp)
            ci = np.minimum((np.nan_to_num(cand) * k).astype(np.int64), k - 1)
            mi = np.minimum((np.nan_to_num(comp) * k).astype(np.int64), k - 1)
            b = self.switch[j]
            same, other = math.log1p(-b), math.log(b / (k - 1)) if b > 0 else -math.inf
            lk = np.where(ci[:, None] == mi[None, :], same, other)
            lk = np.where(comp_on[None, :], lk, -math.log(k))
            log_prior += np.where(cand_on, -math.log(k), 0.0)
            log_k += np.where(cand_on[:, None], lk, 0.0)
        return log_k, log_prior

    def log_pdf(self, s: np.ndarray) -> np.ndarray:
        """Log density at snapped unit points ``s`` (NaN = inactive)."""
        log_k, log_prior = self.log_kernels(s)
        if not len(self.points):
            return log_prior + self.log_w0
        top = np.max(log_k, axis=1)
        top = np.maximum(top, log_prior + self.log_w0 - self.log_w)
        log_k -= top[:, None]
        np.exp(log_k, out=log_k)
        total = log_k.sum(axis=1) * math.exp(self.log_w)
        total += np.exp(log_prior + self.log_w0 - top)
        return np.log(total) + top

    def sample(self, count: int, rng: np.random.Generator) -> np.ndarray:
        """``count`` unit points drawn from the density (not snapped)."""
        special = self._special
        m = len(self.points)
        weights = np.full(m + 1, math.exp(self.log_w) if m else 0.0)
        weights[m] = math.exp(self.log_w0)
        pick = rng.choice(m + 1, size=count, p=weights / weights.sum())
        out = rng.random((count, self.enc.n_params))
        from_comp = pick < m
        if not from_comp.any():
            return out
        rows = self.points[pick[from_comp]]
        for p in self._choices:
            j, k = p.index, p.n
            centre = rows[:, j]
            on = ~np.isnan(centre)
            keep = rng.random(len(centre)) >= self.switch[j]
            own = np.minimum((np.nan_to_num(centre) * k).astype(np.int64), k - 1)
            # Another category, uniformly among the k - 1 others.
            shift = rng.integers(1, max(k, 2), len(centre))
            idx = np.where(keep, own, (own + shift) % k)
            out[from_comp, j] = np.where(on, (idx + 0.5) / k, out[from_comp, j])
        num = self._num
        if len(num):
            # Every numeric column at once: a draw from each chosen component's truncated Gaussian.
            centre = rows[:, num]
            on = ~np.isnan(centre)
            h = self.bandwidth[num]
            mu = np.where(on, centre, 0.5)
            lo, hi = special.ndtr(-mu / h), special.ndtr((1.0 - mu) / h)
            q = lo + rng.random(mu.shape) * (hi - lo)
            x = np.clip(mu + h * special.ndtri(np.clip(q, 1e-300, 1.0 - 1e-16)), 0.0, 1.0)
            block = out[from_comp][:, num]
            out[np.ix_(np.flatnonzero(from_comp), num)] = np.where(on, x, block)
        return out


class TPEStrategy(ModelStrategy):
    """Multivariate tree-structured Parzen estimator.

    Options: ``n_initial`` (quasi-random trials first, default 10),
    ``gamma`` (fraction of trials in the good group, default 0.15 with one
    objective and 0.10 with several, capped at ``max_good`` = 25), ``candidates`` drawn per suggestion (default 24),
    ``prior_weight`` of the uniform component (default 1), ``pending``:
    ``"liar"`` (default: running trials count as bad) or ``"ignore"``,
    ``fidelity``: learn from intermediate reports (default ``True``),
    ``fidelity_min``: reports a step needs to be modelled (default
    ``max(6, d + 2)``), ``model_process``: choose the batches in a forked
    process (``None``, the default: at 32 or more trials at once, on
    Linux; ``True``; ``False``; see ``_model_process``).
    """

    name = "tpe"
    multi_objective = True

    def __init__(
        self,
        *,
        n_initial: int = 10,
        gamma: float | None = None,
        max_good: int = 25,
        candidates: int = 24,
        prior_weight: float = 1.0,
        pending: str = "liar",
        fidelity: bool = True,
        fidelity_min: int | None = None,
        model_process: bool | None = None,
    ) -> None:
        for name, value in (("n_initial", n_initial), ("max_good", max_good), ("candidates", candidates)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{name} must be an int >= 1, got {value!r}")
        if gamma is not None and not (isinstance(gamma, (int, float)) and 0 < gamma < 1):
            raise ValueError(f"gamma must be in (0, 1), got {gamma!r}")
        if not (isinstance(prior_weight, (int, float)) and prior_weight > 0):
            raise ValueError(f"prior_weight must be > 0, got {prior_weight!r}")
        if pending not in _PENDING_MODES:
            raise ValueError(f"pending must be one of {_PENDING_MODES}, got {pending!r}")
        if model_process not in (None, True, False):
            raise ValueError(f"model_process must be None, True or False, got {model_process!r}")
        self.model_process = model_process
        self._remote: Any = None  # the model process (``_model_process``), once forked
        self._remote_tried = False
        self.n_initial = n_initial
        #: The good group's fraction as given (``None``: 0.15 with one objective, 0.10 with several).
        self.gamma = None if gamma is None else float(gamma)
        self._several = False
        self.max_good = max_good
        self.candidates = candidates
        self.prior_weight = float(prior_weight)
        self.pending = pending
        super().__init__(fidelity=fidelity, fidelity_min=fidelity_min)
        self._pool: list[np.ndarray] = []  # points of the last batch beyond those asked for
        self._told = self._pool_told = self._pool_made = 0
        self._job: _Batch | None = None  # the next pool, being chosen in the background
        self._span = 0  # the most trials asked for or running at once
        #: Suggestions served from the points of an earlier batch.
        self.pooled = 0
        #: Batches of points chosen for the pool (in the background or while workers waited).
        self.batches = 0
        #: Batches chosen in the model process (``model_process``).
        self.process_batches = 0
        # COMPLETE trials' values and constraints (number -> (values, constraints)); how many have constraints.
        self._values: dict[int, tuple[tuple[float, ...], tuple[float, ...] | None]] = {}
        self._constrained = 0
        self._rows: _Rows | None = None  # the COMPLETE trials as arrays, grown as results arrive (None: rebuild)

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        return (await self.ask_batch(study, [number]))[0]  # type: ignore[return-value]

    async def ask_batch(self, study: StudyView, numbers: Sequence[int]) -> list[dict[str, Any] | None]:
        """Configurations for the trials ``numbers``, each lying about the ones before it (see the module docstring)."""
        numbers = list(numbers)
        enc = self._bind(study)
        need = len(numbers)
        job = self._job
        if job is not None and job.done.is_set():
            self._take(job)
        if self._usable(need):
            return self._serve(study, enc, numbers)
        data = self._model_data(study, numbers[0])
        n_obs = len(data.losses)
        if n_obs + len(data.pending) < self.n_initial or n_obs < 2:
            return [await self._design.ask(study, n) for n in numbers]
        u_obs = data.u_obs
        self._several = len(study.directions) > 1
        order = self._ranking(study, data)
        extra = list(data.u_avoid)
        if self.pending == "liar":
            extra += [enc.unit(r.params) for r in data.pending]
        u_extra = np.array(extra) if extra else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), numbers[0] & (2**64 - 1)]
        if not data.pending and need == 1 and n_obs + len(extra) <= _INLINE_WORK:
            # Nothing else running (concurrency 1) and a small model: made in place, well under a millisecond.
            rows = self._suggest(enc, u_obs, order, u_extra, seed, 1)
            return [enc.decode(row) for row in rows]
        self._span = max(self._span, need + len(data.pending))  # the most trials running at once
        job = self._job
        if job is not None:
            # The next pool, on newer data, is being chosen: wait for it rather than choose another.
            await anyio.to_thread.run_sync(job.done.wait)
            self._take(job)
            if self._usable(need):
                return self._serve(study, enc, numbers)
        # Others running: as many more points as asked for (at least 8, and a share of the trials running)
        # for the workers that free up next, all in one batch of lies; in a thread, so that free workers
        # queue for one batch meanwhile.
        if not self._remote_tried and self._wants_process(self._span):
            self._remote_tried = True
            from ._model_process import start

            self._remote = start(self)  # forked now: no thread of this strategy runs meanwhile
        size = self._size(need) if data.pending else 0
        rows = await anyio.to_thread.run_sync(self._compute, (enc, u_obs, order, u_extra, seed, need + size))
        self._pool = list(rows[need:])
        self._pool_told, self._pool_made = self._told, len(self._pool)
        self.batches += 1
        return [enc.decode(row) for row in rows[:need]]

    def _size(self, need: int) -> int:
        """Points a batch chooses for the pool: a share of the trials running at once (8 to 256)."""
        return min(_POOL_MAX, max(need, _POOL_MIN, self._span // _POOL_SHARE))

    def _usable(self, need: int) -> bool:
        """The pool holds ``need`` points and fewer results arrived since its data than the concurrency.

        At concurrency ``c`` every suggestion is made without the ``c - 1``
        results still running; a pool point lacks at most that many more.
        """
        return len(self._pool) >= need and self._told - self._pool_told < max(self._pool_made, self._span)

    def _serve(self, study: StudyView, enc: Encoder, numbers: list[int]) -> list[dict[str, Any] | None]:
        """Points from the pool; the next pool starts in the background once half of this one is used or stale."""
        need = len(numbers)
        out, self._pool = self._pool[:need], self._pool[need:]
        self.pooled += need
        half = self._pool_made // 2
        if self._job is None and (len(self._pool) <= half or self._told - self._pool_told >= half):
            self._refill(study, enc, numbers, out)
        return [enc.decode(row) for row in out]

    def _wants_process(self, span: int) -> bool:
        """Whether batches go to a model process (see ``model_process``)."""
        from ._model_process import PROCESS_MIN

        return span >= PROCESS_MIN if self.model_process is None else self.model_process

    def _compute(self, args: tuple[Any, ...]) -> np.ndarray:
        """``_suggest(*args)`` in the model process when there is one (and it answers), else here."""
        remote = self._remote
        if remote is not None and remote.alive:
            from ._model_process import RemoteError

            try:
                rows = remote.call("_suggest", *args)
            except RemoteError:
                pass
            else:
                self.process_batches += 1  # read on the loop only after the batch is taken up
                return rows
        return self._suggest(*args)

    def _refill(self, study: StudyView, enc: Encoder, numbers: list[int], handed: list[np.ndarray]) -> None:
        """Start choosing the next pool in the background, on the newest data (see ``_Batch``)."""
        data = self._model_data(study, numbers[-1])
        extra = list(data.u_avoid)
        if self.pending == "liar":
            # The running trials, the points just handed out (not running yet) and the pool left: all lies.
            extra += [enc.unit(r.params) for r in data.pending] + handed + self._pool
        u_extra = np.array(extra) if extra else np.empty((0, enc.n_params))
        seed = [study.seed & (2**64 - 1), (numbers[-1] + 1) & (2**64 - 1)]
        args = (enc, data.u_obs, self._ranking(study, data), u_extra, seed, self._size(len(numbers)))
        self._job = _Batch(self, args, self._told)
        self._job.start()

    def _take(self, job: _Batch) -> None:
        """The background batch ended: its points, on newer data, replace the pool (or its error is raised)."""
        self._job = None
        if job.error is not None:
            raise job.error
        assert job.rows is not None
        self._pool = list(job.rows)
        self._pool_told, self._pool_made = job.told, len(job.rows)
        self.batches += 1

    async def tell(self, study: StudyView, record: TrialRecord) -> None:
        await super().tell(study, record)
        self._told += 1

    def _reset(self) -> None:
        self._pool = []
        self._job = None  # a batch under way for other data is dropped when it ends
        self._values.clear()
        self._constrained = 0
        self._rows = None

    def _learn(self, record: TrialRecord) -> None:
        old = self._values.pop(record.number, None)
        if old is not None and old[1] is not None:
            self._constrained -= 1
        known = record.number in self._obs
        super()._learn(record)
        rows = self._rows
        if rows is not None and (known or (record.number in self._obs and not rows.add(record.number, self._obs))):
            self._rows = None  # a result replaced, or one older than the newest: rebuilt on next use
        if record.number in self._obs:
            values = record.values if record.values is not None else (record.value,)
            self._values[record.number] = (tuple(float(v) for v in values), record.constraints)  # type: ignore[arg-type]
            if record.constraints is not None:
                self._constrained += 1

    def _pick_step(self, study: StudyView, running: list[TrialRecord]) -> int | None:
        # Intermediate reports carry neither every objective's ranking nor constraints: final values only then.
        if len(study.directions) > 1 or self._constrained:
            return None
        return super()._pick_step(study, running)

    def _n_good(self, n: int) -> int:
        gamma = self.gamma if self.gamma is not None else (_GAMMA_SEVERAL if self._several else _GAMMA_ONE)
        return min(max(1, math.ceil(gamma * n)), self.max_good)

    def _observed(self, study: StudyView) -> tuple[np.ndarray, np.ndarray]:
        """The COMPLETE trials' unit points and losses, by number (kept as arrays, see ``_Rows``)."""
        u, values = self._observations().view()
        return u, study.sign() * values

    def _observations(self) -> _Rows:
        rows = self._rows
        if rows is None:
            assert self._enc is not None
            rows = self._rows = _Rows(self._enc.n_params, self._obs)
        return rows

    def _ranking(self, study: StudyView, data: ModelData) -> np.ndarray:
        """The observations' indices, the good group first (see :func:`split_order`)."""
        if data.step is None and len(study.directions) == 1 and not self._constrained:
            rows = self._rows
            if rows is not None and rows.n == len(data.losses):
                return rows.order(study.sign())  # by loss, kept sorted as results arrive
        if data.step is not None or (len(study.directions) == 1 and not self._constrained):
            return np.argsort(data.losses, kind="stable")
        numbers = sorted(self._obs)  # the order of data.u_obs at the final level
        signs = np.array([1.0 if d == "minimize" else -1.0 for d in study.directions])
        values = [self._values[k][0] for k in numbers]
        if any(len(v) != len(signs) for v in values):
            raise ValueError(f"strategy 'tpe': a trial gave a number of values other than {len(signs)}")
        loss = np.array(values, dtype=float).reshape(len(numbers), len(signs)) * signs
        viol = np.array([violation(self._values[k][1]) for k in numbers])
        return split_order(loss, viol, self._n_good(len(numbers)))

    def _suggest(
        self, enc: Encoder, u_obs: np.ndarray, order: np.ndarray, u_extra: np.ndarray, seed: list[int], count: int = 1
    ) -> np.ndarray:
        """Split, build both densities, and pick ``count`` of the candidates, each a lie for the next (rows)."""
        if count == 1:
            return self._choose(enc, u_obs, order, u_extra, seed, count)
        with one_blas_thread():  # a batch's larger products: one BLAS thread beats several contending ones
            return self._choose(enc, u_obs, order, u_extra, seed, count)

    def _choose(
        self, enc: Encoder, u_obs: np.ndarray, order: np.ndarray, u_extra: np.ndarray, seed: list[int], count: int
    ) -> np.ndarray:
        rng = np.random.default_rng(seed)
        n_good = self._n_good(len(order))
        good = ParzenEstimator(enc, u_obs[order[:n_good]], self.prior_weight)
        rows, bad_index = self._rows, order[n_good:]
        # The bad group's kernels from those kept for the observations, when u_obs is a view of this process's rows.
        kernels = rows.kernels if rows is not None and u_obs.base is rows.u else None
        bad = ParzenEstimator(
            enc, np.vstack([u_obs[bad_index], u_extra]), self.prior_weight, kernels=kernels, index=bad_index
        )
        # A batch draws fewer candidates per point past 8 points: the lies, not the draws, spread it out.
        total = self.candidates * count if count <= 8 else max(self.candidates * 8, 6 * count)
        s = _snap(enc, good._layout, good.sample(total, rng))
        if count == 1:
            score = good.log_pdf(s) - bad.log_pdf(s)
            return s[None, int(np.argmax(score))]
        _, first = np.unique(np.nan_to_num(s, nan=-1.0), axis=0, return_index=True)
        s = s[np.sort(first)]
        log_good = good.log_pdf(s)
        # The bad density as a running sum: its components' kernels plus the prior, over its total weight.
        log_k, log_prior = bad.log_kernels(s)
        m = len(bad.points)
        log_sum = np.logaddexp(_logsumexp_rows(log_k), log_prior + math.log(self.prior_weight))
        # Only the best few candidates can be chosen: the lies are scored among them, all pairs at once.
        score = log_good - log_sum
        top = np.argsort(-score, kind="stable")[: 4 * count + 32]
        s, log_good, log_sum = s[top], log_good[top], log_sum[top]
        lies, _ = bad.log_kernels(s, s)  # lies[i, j]: the kernel a lie at candidate j puts on candidate i
        chosen = np.zeros(len(s), dtype=bool)
        picks: list[int] = []
        for t in range(min(count, len(s))):
            score = log_good - (log_sum - math.log(m + t + self.prior_weight))
            score[chosen] = -np.inf
            j = int(np.argmax(score))
            chosen[j] = True
            picks.append(j)
            # A constant liar: the chosen point joins the bad group before the next choice.
            log_sum = np.logaddexp(log_sum, lies[:, j])
        out = s[picks]
        if len(out) < count:  # a space with fewer distinct candidates than workers: the rest at random
            more, _ = enc.snap(rng.random((count - len(out), enc.n_params)))
            out = np.vstack([out, more])
        return out


class _Rows:
    """The COMPLETE trials' unit points and values as arrays in trial-number order, grown in place.

    Results usually arrive in number order; one that does not (or that
    replaces another) makes the owner rebuild this from ``_obs``.  ``view``
    hands out read-only slices: rows added later lie past them, and a full
    buffer is replaced, not resized, so slices already handed to a
    background batch never change.  ``order`` keeps the indices sorted by
    loss (a stable sort, ties by number) and inserts new results into it.
    """

    __slots__ = ("_order", "kernels", "last", "n", "u", "values")

    def __init__(self, n_params: int, obs: dict[int, tuple[np.ndarray, float]]) -> None:
        numbers = sorted(obs)
        self.n = len(numbers)
        size = max(64, 2 * self.n)
        self.u = np.empty((size, n_params))
        self.values = np.empty(size)
        for i, k in enumerate(numbers):
            self.u[i], self.values[i] = obs[k]
        self.last = numbers[-1] if numbers else -1
        self._order: tuple[int, float, np.ndarray, np.ndarray] | None = None
        self.kernels = _Kernels(self)

    def add(self, number: int, obs: dict[int, tuple[np.ndarray, float]]) -> bool:
        """Append the result of trial ``number`` (False when it is not newer than every other: rebuild)."""
        if number <= self.last:
            return False
        n = self.n
        if n == len(self.values):
            u, values = np.empty((2 * n, self.u.shape[1])), np.empty(2 * n)
            u[:n], values[:n] = self.u[:n], self.values[:n]
            self.u, self.values = u, values
        self.u[n], self.values[n] = obs[number]
        self.n, self.last = n + 1, number
        return True

    def view(self) -> tuple[np.ndarray, np.ndarray]:
        u, values = self.u[: self.n], self.values[: self.n]
        u.flags.writeable = values.flags.writeable = False
        return u, values

    def order(self, sign: float) -> np.ndarray:
        """Indices sorted by loss ``sign * value``, as ``np.argsort(kind="stable")`` gives them."""
        n, cached = self.n, self._order
        if cached is not None and cached[1] == sign and cached[0] == n:
            return cached[2]
        losses = sign * self.values[:n]
        if cached is not None and cached[1] == sign and n - cached[0] <= 16:
            _, _, order, ranked = cached
            for i in range(cached[0], n):
                # After every equal loss: the newest index goes last among ties, as a stable sort puts it.
                at = int(ranked.searchsorted(losses[i], side="right"))
                longer, after = np.empty(len(ranked) + 1), np.empty(len(order) + 1, dtype=order.dtype)
                longer[:at], longer[at], longer[at + 1 :] = ranked[:at], losses[i], ranked[at:]
                after[:at], after[at], after[at + 1 :] = order[:at], i, order[at:]
                ranked, order = longer, after
        else:
            order = np.argsort(losses, kind="stable")
            ranked = losses[order]
        self._order = (n, sign, order, ranked)
        return order


class _Kernels:
    """The numeric kernel constants of the observations in a ``_Rows`` at one set of widths, grown as rows arrive.

    A bad group's widths change only when the group has grown by a step
    (see ``_width_count``): until then each observation's constants are
    computed once, when it arrives, not at every suggestion.  Shared by the
    event loop and the background batches (a lock).
    """

    def __init__(self, rows: _Rows) -> None:
        self.rows = rows
        self.lock = threading.Lock()
        self.h: np.ndarray | None = None
        self.done = 0  # rows of ``rows`` whose constants ``table`` holds
        self.table = np.empty((0, 0))

    def right(self, est: ParzenEstimator, index: np.ndarray) -> np.ndarray:
        """The rows of ``est``'s scoring product for the observations ``index`` (est's widths)."""
        h = est.bandwidth[est._num]
        need = int(index.max()) + 1 if len(index) else 0
        with self.lock:
            if self.h is None or not np.array_equal(h, self.h):
                self.h, self.done = h.copy(), 0  # new widths: every observation's constants anew
            if need > self.done:
                new = est._right_of(self.rows.u[self.done : need])
                if need > len(self.table):
                    table = np.empty((max(need, 2 * len(self.table)), new.shape[1]))
                    if self.done:
                        table[: self.done] = self.table[: self.done]
                    self.table = table
                self.table[self.done : need] = new
                self.done = need
            return self.table[index]


class _Batch(threading.Thread):
    """The next pool of points, chosen in a background thread on the data of its start; ``rows`` once ``done``."""

    def __init__(self, strategy: TPEStrategy, args: tuple[Any, ...], told: int) -> None:
        super().__init__(name="hpt-async-tpe-batch", daemon=True)
        self.strategy, self.args, self.told = strategy, args, told
        self.rows: np.ndarray | None = None
        self.error: BaseException | None = None
        self.done = threading.Event()

    def run(self) -> None:
        try:
            self.rows = self.strategy._compute(self.args)
        except BaseException as exc:  # raised to the next worker that takes the batch
            self.error = exc
        finally:
            self.done.set()


# A last front whose size times the places left in the good group exceeds this is cut by crowding distance, not by
# greedy hypervolume contributions (whose cost grows with both).
_HSSP_MAX_WORK = 4000


def split_order(losses: np.ndarray, violations: np.ndarray, n_good: int) -> np.ndarray:
    """Indices of the rows of ``losses`` (one row per trial, one column per objective), the ``n_good`` good first.

    Feasible trials (violation ``<= 0``) come before infeasible ones, and
    infeasible ones are ordered by their total violation (Optuna's rule for
    TPE with constraints).  Among feasible trials, one objective is ordered
    by its loss; several by non-dominated sorting (Ozaki et al. 2020): whole
    fronts join the good group while they fit, and the places left are
    filled from the next front greedily, each time with the point that adds
    the most hypervolume to those of its front already chosen (reference
    point: the front's worst loss in each objective plus 10% of its range).
    Only the first ``n_good`` places are ordered this way; the other
    feasible trials follow (in no particular order), then the infeasible
    ones by violation.
    """
    n, m = losses.shape
    n_good = min(n_good, n)
    feasible = np.flatnonzero(violations <= 0.0)
    infeasible = np.flatnonzero(violations > 0.0)
    infeasible = infeasible[np.argsort(violations[infeasible], kind="stable")]
    if m == 1:
        feasible = feasible[np.argsort(losses[feasible, 0], kind="stable")]
        return np.concatenate([feasible, infeasible]).astype(np.int64)
    if len(feasible) == 0:
        return infeasible.astype(np.int64)
    pts = np.where(np.isnan(losses[feasible]), np.inf, losses[feasible])
    # A trial dominated by n_good others or more cannot reach the good group (they all rank ahead of it); every
    # trial that dominates one that can is dominated by fewer, so the fronts among those that can are the fronts
    # of the whole set.  Domination is counted against a few leaders (the best in each objective and in their
    # rank sum): a count there is a lower bound of the true one, and it keeps the work O(n).
    leaders = _leaders(pts, 2 * max(n_good, 1))
    dominated_by = _dominated_counts(pts, pts[leaders])
    near = np.flatnonzero(dominated_by < max(n_good, 1))
    far = np.flatnonzero(dominated_by >= max(n_good, 1))
    chosen: list[int] = []
    rest: list[int] = []
    for members in _first_fronts(pts[near], n_good):
        members = near[members]
        room = n_good - len(chosen)
        if room <= 0:
            rest.extend(members.tolist())
        elif len(members) <= room:
            chosen.extend(members.tolist())
        else:
            picked = greedy_hypervolume_subset(pts[members], room)
            chosen.extend(members[picked].tolist())
            left = np.ones(len(members), dtype=bool)
            left[picked] = False
            rest.extend(members[left].tolist())
    order = np.array(chosen + rest + far.tolist(), dtype=np.int64)
    return np.concatenate([feasible[order], infeasible]).astype(np.int64)


def _first_fronts(points: np.ndarray, need: int) -> list[np.ndarray]:
    """The non-dominated fronts of ``points`` (index arrays, best first) until they hold ``need`` rows, then the rest.

    The last array holds every row past those fronts (unsorted), so all
    rows appear once.
    """
    n = len(points)
    le = (points[:, None, :] <= points[None, :, :]).all(axis=2)
    lt = (points[:, None, :] < points[None, :, :]).any(axis=2)
    dom = le & lt  # dom[i, j]: i dominates j
    count = dom.sum(axis=0)
    left = np.ones(n, dtype=bool)
    fronts: list[np.ndarray] = []
    taken = 0
    while left.any() and taken < need:
        front = left & (count == 0)
        fronts.append(np.flatnonzero(front))
        taken += len(fronts[-1])
        left &= ~front
        count = count - dom[front].sum(axis=0)
    if left.any():
        fronts.append(np.flatnonzero(left))
    return fronts


def _leaders(points: np.ndarray, k: int) -> np.ndarray:
    """Indices of the ``k`` best rows of ``points`` in each column and by the sum of their ranks in every column."""
    n, m = points.shape
    if n <= k * (m + 1):
        return np.arange(n)
    ranks = np.argsort(np.argsort(points, axis=0, kind="stable"), axis=0, kind="stable")
    picked = [np.argsort(points[:, j], kind="stable")[:k] for j in range(m)]
    picked.append(np.argsort(ranks.sum(axis=1), kind="stable")[:k])
    return np.unique(np.concatenate(picked))


def _dominated_counts(points: np.ndarray, by: np.ndarray) -> np.ndarray:
    """For each row of ``points`` (losses), how many rows of ``by`` dominate it; blocks of rows bound the memory."""
    n = len(points)
    out = np.zeros(n, dtype=np.int64)
    block = max(1, 2_000_000 // max(1, len(by) * points.shape[1]))
    for lo in range(0, n, block):
        p = points[lo : lo + block]
        le = (by[None, :, :] <= p[:, None, :]).all(axis=2)
        lt = (by[None, :, :] < p[:, None, :]).any(axis=2)
        out[lo : lo + block] = (le & lt).sum(axis=1)
    return out


def greedy_hypervolume_subset(front: np.ndarray, k: int) -> list[int]:
    """``k`` rows of ``front`` (mutually non-dominated losses) chosen greedily for the largest hypervolume.

    Each step adds the row that adds the most hypervolume to those already
    chosen, against the front's worst loss in each objective plus 10% of
    its range.  Gains only shrink as rows are added (the hypervolume is
    submodular), so a row's last gain bounds its next one and only rows
    whose bound leads are re-evaluated (lazy greedy).  A front with
    ``len(front) * k`` above ``_HSSP_MAX_WORK`` (4,000) is cut by NSGA-II's
    crowding distance instead, extremes first.
    """
    n = len(front)
    if k >= n:
        return list(range(n))
    rows = [tuple(float(x) for x in r) for r in front]
    if not all(math.isfinite(x) for r in rows for x in r) or n * k > _HSSP_MAX_WORK:
        distance = crowding_distance(rows)
        return sorted(range(n), key=lambda i: (-distance[i], i))[:k]
    ref = default_reference_point(rows)
    chosen: list[tuple[float, ...]] = []

    def gain(c: tuple[float, ...]) -> float:
        # The volume c dominates alone, less what the chosen rows already cover of it.
        box = math.prod(r - x for x, r in zip(c, ref, strict=True))
        covered = [tuple(max(a, b) for a, b in zip(c, s, strict=True)) for s in chosen]
        covered = [p for p in covered if all(x < r for x, r in zip(p, ref, strict=True))]
        return box - (_hv(_front_of(covered), ref) if covered else 0.0)

    heap = [(-gain(rows[i]), i) for i in range(n)]
    heapq.heapify(heap)
    out: list[int] = []
    while len(out) < k:
        bound, i = heapq.heappop(heap)
        fresh = gain(rows[i]) if out else -bound
        if heap and fresh < -heap[0][0] - 1e-12 * max(1.0, abs(fresh)):
            heapq.heappush(heap, (-fresh, i))  # another row's bound is higher now: look at it first
            continue
        out.append(i)
        chosen.append(rows[i])
    return out


def _logsumexp_rows(a: np.ndarray) -> np.ndarray:
    """``log(sum(exp(a), axis=1))``, -inf for rows of no columns; ``a`` is overwritten (no copy of it is made)."""
    if a.shape[1] == 0:
        return np.full(a.shape[0], -np.inf)
    top = np.max(a, axis=1)
    top = np.where(np.isfinite(top), top, 0.0)
    a -= top[:, None]
    np.exp(a, out=a)
    return np.log(a.sum(axis=1)) + top


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``tpe``."""
    register("strategy", "tpe", TPEStrategy)
