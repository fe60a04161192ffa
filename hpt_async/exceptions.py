"""Exceptions a user of hpt-async catches or sees."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from .result import StudyResult

__all__ = [
    "MAX_STEP",
    "HptError",
    "MalformedRowWarning",
    "MissingDependency",
    "ObjectiveError",
    "PluginError",
    "PluginNotFound",
    "ReportStepError",
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


class ObjectiveError(HptError):
    """An objective raised a ``BaseException`` that is not an ``Exception``.

    ``SystemExit`` (``sys.exit()`` in an objective), ``GeneratorExit``, a
    ``CancelledError`` the objective raised or let out on its own (not a
    cancellation by the study), or any other direct ``BaseException``
    subclass would otherwise unwind the whole study.  The thread and async
    executors raise this in its place, so that only that trial fails, as for
    any exception.  The message is the original type's name and message,
    ``"SystemExit: 3"``; the original is the ``__cause__``, and its
    traceback comes first in the trial's recorded traceback.
    ``KeyboardInterrupt`` and a cancellation by the study are never wrapped.
    """

    @classmethod
    def wrapping(cls, original: BaseException) -> ObjectiveError:
        """The ObjectiveError standing for ``original`` (raise it ``from original``)."""
        kind = type(original)
        name = kind.__qualname__ if kind.__module__ == "builtins" else f"{kind.__module__}.{kind.__qualname__}"
        text = str(original)
        return cls(f"{name}: {text}" if text else name)


class TrialPruned(HptError):
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


class TrialCancelled(HptError):
    """Raised by a trial method once its trial has been recorded as ended.

    A synchronous objective running in a thread cannot be interrupted; when
    the study stops or the trial times out the trial is recorded at once and
    the thread is abandoned.  Its next ``report()`` raises this so that it
    stops working.
    """


class StudyFailed(HptError):
    """The study reached ``max_failures``.  ``result`` holds what was done."""

    def __init__(self, message: str, result: StudyResult) -> None:
        super().__init__(message)
        self.result = result


class StudyError(HptError, RuntimeError):
    """A strategy, pruner, storage or executor raised; the study stopped.

    The message names the component; ``result`` holds what was done, and the
    original exception is the ``__cause__``.
    """

    def __init__(self, message: str, result: StudyResult | None = None) -> None:
        super().__init__(message)
        self.result = result


class StrategyExhausted(HptError):
    """``tuner.ask()`` found no configuration left to try (e.g. a finished grid)."""


class MissingDependency(HptError, ImportError):
    """A component needs an optional package that is not installed (the message says which extra to install)."""


class PluginError(HptError, RuntimeError):
    """A plugin could not be loaded or registered (the message names it)."""


class PluginNotFound(HptError, LookupError):
    """No plugin of the asked kind is registered under that name."""

    def __str__(self) -> str:  # LookupError would repr() a single argument
        return str(self.args[0]) if self.args else ""


#: The largest report step: steps are stored as signed 64-bit integers by every storage.
MAX_STEP = 2**63 - 1


class ReportStepError(HptError, ValueError):
    """A report's step is negative or larger than :data:`MAX_STEP` (``2**63 - 1``), the range every storage keeps."""


class MalformedRowWarning(HptError, UserWarning):
    """Storage left out rows of a study that do not decode (the rest of the study was read); the message names them.

    A warning (issued with :func:`warnings.warn`), and an :class:`HptError` like every class the package defines.
    """
