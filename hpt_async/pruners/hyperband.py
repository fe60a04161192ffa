"""``pruner="hyperband"``: Hyperband's brackets run as asynchronous successive halving."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from . import _options as opt
from ._halving import Ladder, RungPruner

__all__ = ["HyperbandPruner"]

_MASK = (1 << 64) - 1
_DEFAULT_BRACKETS = 4
_CACHED_CYCLES = 8


def _mix(x: int) -> int:
    """SplitMix64's output function: a well-spread 64-bit hash of ``x``."""
    x = (x + 0x9E3779B97F4A7C15) & _MASK
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & _MASK
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & _MASK
    return x ^ (x >> 31)


def _shuffled(items: list[int], seed: int, cycle: int) -> list[int]:
    """``items`` in an order that depends only on ``(seed, cycle)`` (Fisher-Yates on a counter hash)."""
    out = list(items)
    state = _mix(_mix(seed) ^ cycle)
    for i in range(len(out) - 1, 0, -1):
        state = _mix(state)
        j = state % (i + 1)
        out[i], out[j] = out[j], out[i]
    return out


class HyperbandPruner(RungPruner):
    """Several successive-halving brackets, each asynchronous, with growing minimum resources.

    Bracket ``b`` is an ASHA ladder whose first rung is at ``min_resource *
    eta**b``: bracket 0 prunes most aggressively, the last one least (when
    its first rung reaches ``max_resource`` it is plain full-budget search).
    Trials are dealt to brackets by their number in cycles: each cycle holds
    bracket ``b`` ``ceil(B * eta**s / (s + 1))`` times, with ``B`` brackets
    and ``s = B - 1 - b`` halvings, which is the number of configurations
    Hyperband starts in that bracket so that every bracket gets about the
    same budget.  The order within a cycle is shuffled from ``(seed,
    cycle)``, so a trial's bracket depends on its number and the seed only:
    the same at any concurrency, across processes and on resume.

    Options: ``min_resource`` (> 0, default 1), ``max_resource`` (default
    inferred from COMPLETE trials, as for ``asha``), ``eta`` (> 1, default
    3), ``brackets`` (default ``floor(log_eta(max_resource / min_resource))
    + 1`` when ``max_resource`` is given, else 4) and ``seed`` (default 0;
    kept apart from the study's seed so that a study resumed without its
    seed still deals trials to the same brackets), ``mode`` (``"stop"``,
    the default, or ``"promotion"``: every bracket pauses and promotes as
    ``asha`` does in that mode).
    """

    name = "hyperband"

    def __init__(
        self,
        *,
        min_resource: float = 1,
        max_resource: float | None = None,
        eta: float = 3,
        brackets: int | None = None,
        seed: int = 0,
        mode: str = "stop",
        **unknown: Any,
    ) -> None:
        opt.check_unknown(self.name, unknown, ("min_resource", "max_resource", "eta", "brackets", "seed", "mode"))
        super().__init__(min_resource, eta, max_resource, mode)
        n = opt.integer(self.name, "brackets", brackets, minimum=1, allow_none=True)
        if n is None:
            if self.max_resource is None:
                n = _DEFAULT_BRACKETS
            else:
                n = math.floor(math.log(self.max_resource / self.min_resource) / math.log(self.eta) + 1e-9) + 1
        self.brackets: int = n
        seed = opt.integer(self.name, "seed", seed, minimum=0)  # type: ignore[assignment]
        if seed >= 1 << 64:
            raise ValueError(f"pruner {self.name!r}: seed must be below 2**64, got {seed}")
        self.seed = seed
        counts = [math.ceil(n * self.eta ** (n - 1 - b) / (n - b) - 1e-9) for b in range(n)]
        self._cycle = [b for b, c in enumerate(counts) for _ in range(c)]
        self._perms: dict[int, list[int]] = {}

    def shares(self) -> list[int]:
        """How many trials of each cycle go to each bracket (Hyperband's split)."""
        return [self._cycle.count(b) for b in range(self.brackets)]

    def bracket_of(self, number: int) -> int:
        """The bracket of trial ``number``: a function of the number and ``seed`` only."""
        cycle, pos = divmod(number, len(self._cycle))
        perm = self._perms.get(cycle)
        if perm is None:
            if len(self._perms) >= _CACHED_CYCLES:
                self._perms.pop(next(iter(self._perms)))
            perm = self._perms[cycle] = _shuffled(self._cycle, self.seed, cycle)
        return perm[pos]

    def _make_ladders(self) -> list[Ladder]:
        return [Ladder(self.min_resource * self.eta**b, self.eta) for b in range(self.brackets)]

    def __repr__(self) -> str:
        mode = ", mode='promotion'" if self.promotes else ""
        return (
            f"HyperbandPruner(min_resource={self.min_resource:g}, max_resource={self.max_resource!r}, "
            f"eta={self.eta:g}, brackets={self.brackets}, seed={self.seed}{mode})"
        )


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``hyperband``."""
    register("pruner", "hyperband", HyperbandPruner)
