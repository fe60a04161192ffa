"""Exceptions a user of hpt-async catches or sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import StudyResult

__all__ = [
    "HptError",
    "PluginError",
    "PluginNotFound",
    "StrategyExhausted",
    "StudyError",
    "StudyFailed",
    "TrialCancelled",
    "TrialPaused",
    "TrialPruned",
]


class HptError(Exception):
    """The base of every exception hpt-async raises.

    ``except hpt_async.HptError`` catches them all; each subclass also
    derives from the builtin exception a caller would expect (a bad
    argument is a ``ValueError`` too, an unknown name a ``LookupError``).
    """


class TrialPruned(Exception):
    """Raised by ``trial.report`` when the pruner stops the trial.

    An objective may also raise it itself to end its trial as PRUNED.  The
    trial keeps its last reported value.
    """


class TrialPaused(TrialPruned):
    """Raised by ``trial.report`` when a pruner in promotion mode pauses the trial at a rung.

    The trial is recorded PAUSED with its last reported value and its
    checkpoint is kept; the pruner may later resume it (same number and
    configuration, :attr:`Trial.should_restore` true).  A subclass of
    :class:`TrialPruned`, so that an objective that lets ``TrialPruned``
    through, or cleans up on it, handles a pause the same way.
    """


class TrialCancelled(Exception):
    """Raised by a trial method once its trial has been recorded as ended.

    A synchronous objective running in a thread cannot be interrupted; when
    the study stops or the trial times out the trial is recorded at once and
    the thread is abandoned.  Its next ``report()`` raises this so that it
    stops working.
    """


class StudyFailed(Exception):
    """The study reached ``max_failures``.  ``result`` holds what was done."""

    def __init__(self, message: str, result: StudyResult) -> None:
        super().__init__(message)
        self.result = result


class StudyError(RuntimeError):
    """A strategy, pruner, storage or executor raised; the study stopped.

    The message names the component; ``result`` holds what was done, and the
    original exception is the ``__cause__``.
    """

    def __init__(self, message: str, result: StudyResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class StrategyExhausted(Exception):
    """``tuner.ask()`` found no configuration left to try (e.g. a finished grid)."""


class PluginError(HptError, RuntimeError):
    """A plugin could not be loaded or registered (the message names it)."""


class PluginNotFound(HptError, LookupError):
    """No plugin of the asked kind is registered under that name."""

    def __str__(self) -> str:  # LookupError would repr() a single argument
        return str(self.args[0]) if self.args else ""
