"""The contracts between the core and its plugins, in one place.

Every kind of component a Tuner works with is defined here by a base class
whose docstring is its contract: who calls each method, when, on which
thread, what it may raise, and what is durable when.  Builtin components
and third-party plugins import them from here alike:

* :class:`Strategy` — which configuration each new trial gets.
* :class:`Pruner` — whether a trial goes on after each report.
* :class:`Storage` and :class:`StudySession` — where a study is kept, and
  one tuner's connection to it.
* :class:`Executor` — where and how an objective runs.
* :class:`Decision` and :class:`Exploit` — the answers given at a report.
* :class:`TrialSession` — what a live trial calls back into.

Optional capabilities are declared as class attributes
(:attr:`Strategy.decides`, :attr:`Strategy.retains_checkpoints`,
:attr:`Pruner.promotes`, :attr:`StudySession.sync_interval`) and read once
when a Tuner is built.  The lifecycle notifications are pluggy hooks,
specified in :mod:`hpt_async.hookspecs`.
"""

from ..trial import TrialSession
from .decisions import Decision, Exploit
from .executor import Executor
from .pruner import Pruner
from .storage import Storage, StudyNotFound, StudyReader, StudySession, StudySummary, TrialSummary
from .strategy import Strategy

__all__ = [
    "Decision",
    "Executor",
    "Exploit",
    "Pruner",
    "Storage",
    "Strategy",
    "StudyNotFound",
    "StudyReader",
    "StudySession",
    "StudySummary",
    "TrialSession",
    "TrialSummary",
]
