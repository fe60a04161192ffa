"""The executor contract."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..trial import Trial

__all__ = ["Executor"]


class Executor:
    """Runs an objective for one trial and returns what it returned.

    * :meth:`check` is called when the Tuner is built and raises ``TypeError``
      when the objective does not suit this executor.
    * :meth:`open` is awaited when a run starts, with the study's
      ``concurrency``, and sets :attr:`capacity` if it can run fewer trials
      at once; :meth:`close` is awaited when the run ends.
    * :meth:`run` may be cancelled (study stopped, trial timed out): it
      must then return promptly, leaving nothing running that still affects
      the study.  The trial is recorded as ended before any work left behind
      (an abandoned thread) can call it again, and such calls raise
      :class:`~hpt_async.TrialCancelled`.
    * Exceptions of the objective propagate unchanged, including
      :class:`~hpt_async.TrialPruned`.
    """

    name = "executor"

    #: How many trials this executor can run at once after :meth:`open`, or
    #: ``None`` for as many as the tuner starts.  The tuner never runs more
    #: trials at once than this, so none waits as RUNNING for a free worker.
    capacity: int | None = None

    def check(self, objective: Callable[..., Any]) -> None:
        """Raise ``TypeError`` if ``objective`` cannot run here."""

    async def open(self, concurrency: int) -> None:
        """Prepare to run up to ``concurrency`` trials at once."""

    async def close(self) -> None:
        """Release workers."""

    async def run(self, objective: Callable[..., Any], trial: Trial) -> Any:
        """Run ``objective`` for ``trial`` and return its result."""
        raise NotImplementedError
