"""``pruner="asha"``: asynchronous successive halving (Li et al., "A System for Massively Parallel
Hyperparameter Tuning")."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..hookspecs import hookimpl
from . import _options as opt
from ._halving import Ladder, RungPruner

__all__ = ["ASHAPruner"]


class ASHAPruner(RungPruner):
    """Stops a trial at a rung where it is not in the top ``1/eta`` of what that rung has seen.

    Rungs sit at resources ``min_resource * eta**k`` (the resource is the
    report's ``step``: epochs, samples, seconds, whatever the objective
    counts, increasing).  A trial reaches a rung with its first report at or
    beyond that level and goes on only if fewer than ``max(1, floor(n /
    eta))`` of the ``n`` values the rung has received, its own included, are
    strictly better.  Nobody waits for a rung to fill, so no worker idles.

    ``max_resource`` is the full budget of a trial; rungs at or above it
    decide nothing.  When omitted it is inferred from the COMPLETE trials
    (their largest final step).  Non-finite reports rank last and stop the
    trial.  On :meth:`start` the rungs are rebuilt from the stored reports,
    so a resumed study continues with the same rungs.

    ``mode="promotion"`` pauses instead of stopping: a trial reaching a
    rung outside the top ``floor(n / eta)`` ends its run PAUSED (its
    objective must checkpoint), and whenever a slot frees the tuner first
    resumes a paused trial that its rung, grown since, now ranks in the top
    (see :meth:`promote`); a trial that ranks in the top on arrival goes
    straight on.

    Options: ``min_resource`` (> 0, default 1), ``eta`` (> 1, default 3),
    ``max_resource`` (default inferred), ``mode`` (``"stop"``, the
    default, or ``"promotion"``).
    """

    name = "asha"

    def __init__(
        self,
        *,
        min_resource: float = 1,
        eta: float = 3,
        max_resource: float | None = None,
        mode: str = "stop",
        **unknown: Any,
    ) -> None:
        opt.check_unknown(self.name, unknown, ("min_resource", "eta", "max_resource", "mode"))
        super().__init__(min_resource, eta, max_resource, mode)

    def _make_ladders(self) -> list[Ladder]:
        return [Ladder(self.min_resource, self.eta)]

    def bracket_of(self, number: int) -> int:
        """Always 0: ASHA has one bracket."""
        return 0

    def __repr__(self) -> str:
        mode = ", mode='promotion'" if self.promotes else ""
        return (
            f"ASHAPruner(min_resource={self.min_resource:g}, eta={self.eta:g}, "
            f"max_resource={self.max_resource!r}{mode})"
        )


@hookimpl
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register ``asha``."""
    register("pruner", "asha", ASHAPruner)
