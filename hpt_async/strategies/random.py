"""``strategy="random"``: independent uniform sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contracts import Strategy
from ..hookspecs import hookimpl
from ..space import unit_uniforms_block

if TYPE_CHECKING:
    from ..study import StudyView

__all__ = ["RandomStrategy"]


class RandomStrategy(Strategy):
    """Each trial's configuration is drawn uniformly (log-uniformly for log
    domains) from a counter-based generator, so trial ``n`` depends only on
    ``(seed, n)``: reproducible at any concurrency and across processes."""

    name = "random"
    multi_objective = True  # it never reads values
    check_output = False

    # The uniforms of a block of consecutive trial numbers are drawn at once (see unit_uniforms_block):
    # the same values as Space.sample's, at a fraction of the cost per trial.
    _BLOCK = 256
    _block: tuple[int, int, int, list[list[float]]] | None = None  # seed, dimensions, first number, rows

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        space = study.space
        seed, count = study.seed, len(space)
        block = self._block
        if block is None or block[0] != seed or block[1] != count or not 0 <= number - block[2] < self._BLOCK:
            if number < 0:
                return space.sample(seed, number)
            first = number - number % self._BLOCK
            block = self._block = (seed, count, first, unit_uniforms_block(seed, first, self._BLOCK, count))
        return space.from_unit(block[3][number - block[2]])


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``random``."""
    register("strategy", "random", RandomStrategy)
