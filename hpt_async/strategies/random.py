"""``strategy="random"``: independent uniform sampling."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from ..contracts import Strategy
from ..hookspecs import hookimpl

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

    async def ask(self, study: StudyView, number: int) -> dict[str, Any]:
        return study.space.sample(study.seed, number)


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``random``."""
    register("strategy", "random", RandomStrategy)
