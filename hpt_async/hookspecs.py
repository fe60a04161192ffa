"""Every hook of hpt-async, with its contract.

Two families:

* ``hpt_register`` is called once per process, when the registry of names is
  built, on every builtin and installed plugin module.
* The lifecycle hooks (``hpt_study_started`` ... ``hpt_study_ended``) are
  notifications, called on the objects a Tuner was given (loggers, plugins,
  and its strategy, pruner and storage when they implement a hook).  An
  implementation may be a plain function or ``async def``; the tuner awaits
  what comes back.  One implementation that raises is reported and skipped;
  the study goes on.  None of them decides anything: decisions are direct
  calls on the strategy and pruner.
* They run on the event loop, between the steps of a trial, so they should
  be quick: a plain function costs one call (no coroutine, no await), and an
  event is only built for a hook that some object implements.  A logger
  that needs to write or draw does it in batches or off the loop (see
  :mod:`hpt_async.loggers`).

Implementations may accept any subset of a hook's arguments (pluggy's rule),
so hooks can gain arguments without breaking plugins.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    from .events import StudyEnded, StudyStarted, TrialCreated, TrialEnded, TrialReported, TrialStarted
    from .study import StudyView

PROJECT = "hpt_async"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)

__all__ = [
    "hookimpl",
    "hookspec",
    "hpt_register",
    "hpt_study_ended",
    "hpt_study_started",
    "hpt_trial_created",
    "hpt_trial_ended",
    "hpt_trial_reported",
    "hpt_trial_started",
]


# -- discovery ---------------------------------------------------------------


@hookspec
def hpt_register(register: Callable[[str, str, Callable[..., Any]], None]) -> None:
    """Register named components with ``register(kind, name, factory)``.

    ``kind`` is one of ``"strategy"``, ``"pruner"``, ``"storage"``,
    ``"logger"``, ``"executor"``.  ``factory`` is called with no arguments
    when a Tuner is given ``name`` (storage factories get the URL).  A name is
    unique within its kind: registering it twice raises
    :class:`~hpt_async.PluginError` naming both plugins.
    """


# -- lifecycle notifications -------------------------------------------------


@hookspec
def hpt_study_started(event: StudyStarted, study: StudyView) -> Any:
    """The study is open and about to ask for its first trial.

    ``study`` already holds the trials of a resumed study.
    """


@hookspec
def hpt_trial_created(event: TrialCreated, study: StudyView) -> Any:
    """A trial has its number and configuration and storage has persisted it."""


@hookspec
def hpt_trial_started(event: TrialStarted, study: StudyView) -> Any:
    """The objective of trial ``event.number`` is about to run (again, for a PAUSED trial resumed)."""


@hookspec
def hpt_trial_reported(event: TrialReported, study: StudyView) -> Any:
    """A report was stored; called before the pruner decides on it."""


@hookspec
def hpt_trial_ended(event: TrialEnded, study: StudyView) -> Any:
    """A trial ended; storage has committed it and the strategy has been told.

    ``event.record.state`` is COMPLETE, PRUNED, FAILED or CANCELLED, or
    PAUSED when a pruner in promotion mode paused it: such a trial may be
    resumed (``hpt_trial_started`` again) and end once more.
    """


@hookspec
def hpt_study_ended(event: StudyEnded, study: StudyView) -> Any:
    """The tuner has stopped: every trial it ran is recorded as ended.

    Emitted before the executor closes.  A thread abandoned by the thread
    executor (a sync objective that ignored cancellation) may still be
    winding down; its trial is already recorded.
    """
