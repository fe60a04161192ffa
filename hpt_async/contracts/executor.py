"""The executor contract: where and how an objective runs."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, ClassVar

if TYPE_CHECKING:
    from ..trial import Trial

__all__ = ["Executor"]


class Executor:
    """Runs an objective for one trial and returns what it returned.

    Who calls it, and when: the Tuner, on the event loop.

    * :meth:`check` is called when the Tuner is built and raises
      ``TypeError`` when the objective does not suit this executor.
    * :meth:`open` is awaited when a run starts, with the study's
      ``concurrency``, and sets :attr:`capacity` if it can run fewer trials
      at once; :meth:`close` is awaited when the run ends.
    * :meth:`run` is awaited once per trial, many at once.  It may be
      cancelled (study stopped, trial timed out): it must then return
      promptly, leaving nothing running that still affects the study.  The
      trial is recorded as ended before any work left behind (an abandoned
      thread) can call it again, and such calls raise
      :class:`~hpt_async.TrialCancelled`.
    * What the objective raises: :class:`~hpt_async.TrialPruned` (and
      :class:`~hpt_async.TrialPaused`) propagate unchanged.  Every other
      exception, ``BaseException`` included (``SystemExit``,
      ``GeneratorExit``, a ``CancelledError`` the objective raised itself),
      must reach the tuner as an ``Exception`` so that it fails that trial
      alone; only a real cancellation of :meth:`run` and
      ``KeyboardInterrupt`` may propagate as themselves.
    * An exception of the executor itself from :meth:`open` or
      :meth:`close` is fatal to the study, and the error names the executor.

    A trial's handle (:class:`~hpt_async.Trial`) is the only way back to the
    tuner: ``await trial.report(...)``, ``trial.checkpoint``,
    ``trial.restore``.  Executors that run objectives in other processes
    build on :mod:`hpt_async.executors.remote`.
    """

    #: The name the executor is registered under.
    name: ClassVar[str] = "executor"
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
        raise NotImplementedError(f"{type(self).__name__} must implement run(objective, trial)")
