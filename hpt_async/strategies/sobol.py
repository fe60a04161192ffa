"""``strategy="sobol"``: a scrambled Sobol' sequence (scipy.stats.qmc)."""

from __future__ import annotations

import sys
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import anyio.to_thread
import numpy as np

from ..contracts import Strategy
from ..hookspecs import hookimpl

if TYPE_CHECKING:
    from ..study import StudyView

__all__ = ["SobolStrategy"]


class SobolStrategy(Strategy):
    """Low-discrepancy points that cover the unit cube more evenly than random.

    Trial ``n`` gets point ``n`` of the sequence scrambled by ``seed``, so its
    configuration depends only on ``(seed, n)``.  Points are generated in
    blocks of powers of two, which keeps the sequence's balance properties.
    Conditional parameters use their own coordinate and are dropped when
    inactive.

    ``scipy.stats``, which makes the sequence, takes most of a second to
    import (several seconds on a loaded machine): the first :meth:`ask`
    imports it in a worker thread, so that the event loop goes on running
    trials and renewing the study's lease meanwhile.
    """

    name = "sobol"
    multi_objective = True  # it never reads values
    check_output = False

    def __init__(self) -> None:
        self._points: np.ndarray | None = None
        self._key: tuple[int, int] | None = None

    def _point(self, dim: int, seed: int, number: int) -> np.ndarray:
        if self._key != (dim, seed) or self._points is None:
            self._key = (dim, seed)
            self._points = np.empty((0, dim))
        if number >= len(self._points):
            from scipy.stats import qmc  # imported by the first ask, in a worker thread (see the class docstring)

            m = max(4, int(number).bit_length())
            sampler = qmc.Sobol(d=dim, scramble=True, seed=seed)
            self._points = sampler.random_base2(m)
        return self._points[number]

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        if _QMC not in sys.modules:
            await anyio.to_thread.run_sync(_import_qmc)
        return study.space.from_unit(self._point(len(study.space), study.seed, number))


_QMC = "scipy.stats.qmc"


def _import_qmc() -> None:
    from scipy.stats import qmc  # noqa: F401


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``sobol``."""
    register("strategy", "sobol", SobolStrategy)
