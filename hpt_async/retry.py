"""Retries of trials that failed through no fault of their configuration.

``Tuner(retry_failed=RetryPolicy(match=(MemoryError, "preempted"), max_retries=2))``
runs a FAILED trial again when its error matches, with the same
configuration, at most ``max_retries`` times per configuration.  A retry is
a new trial whose ``retry_of`` is the number of the trial it retries, as
for the retry of a LOST trial; its checkpoint, if the failed trial left one,
moves to the retry, which continues from it.  Storage creates each retry in
one transaction with the claim, so that a failed trial is retried once
however many tuners share the study and even when the tuner retrying it
dies (see :meth:`StudySession.trial_created_retry
<hpt_async.contracts.StudySession.trial_created_retry>`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from .exceptions import HptError
from .trial import TrialRecord, TrialState

__all__ = ["RetryPolicy", "RetryPolicyError", "check_retry_failed", "retries_so_far"]


class RetryPolicy:
    """Which FAILED trials run again, and how many times.

    ``match`` is an exception class, a string, or a sequence of them.  A
    class matches a trial whose error was raised as that class, by name (the
    error is stored as ``"Name: message"``, so a subclass is named itself:
    list it too); the class's qualified name (``"torch.OutOfMemoryError"``)
    matches as well.  A string matches when it occurs in the error text
    (``"preempted"``, ``"KilledWorker"``).  Names and text, rather than
    ``isinstance``, so that a tuner decides alike for a failure of its own
    and for one stored by another tuner that died before retrying it.

    ``max_retries`` (default 1) bounds the retries of one configuration
    because of matching failures: a trial whose chain of ``retry_of``
    already holds that many FAILED trials is not retried again.
    """

    def __init__(self, match: type[BaseException] | str | Iterable[type[BaseException] | str], max_retries: int = 1):
        items = (match,) if isinstance(match, (str, type)) else tuple(match)
        if not items:
            raise RetryPolicyError("RetryPolicy needs at least one exception class or string to match")
        names: list[str] = []
        texts: list[str] = []
        for item in items:
            if isinstance(item, type) and issubclass(item, BaseException):
                names.append(item.__name__)
                names.append(f"{item.__module__}.{item.__qualname__}")
            elif isinstance(item, str) and item:
                texts.append(item)
            else:
                raise RetryPolicyError(f"RetryPolicy matches exception classes or non-empty strings, got {item!r}")
        if isinstance(max_retries, bool) or not isinstance(max_retries, int) or max_retries < 1:
            raise RetryPolicyError(f"RetryPolicy max_retries must be an int >= 1, got {max_retries!r}")
        self.match = items
        self.max_retries = max_retries
        self._names = frozenset(names)
        self._texts = tuple(texts)

    def __repr__(self) -> str:
        return f"RetryPolicy(match={self.match!r}, max_retries={self.max_retries})"

    def matches(self, error: str | None) -> bool:
        """True when a FAILED trial's ``error`` text matches the policy."""
        if not error:
            return False
        name = error.split(":", 1)[0].strip()
        if name in self._names:
            return True
        return any(text in error for text in self._texts)

    def retries(self, record: TrialRecord, trials: Mapping[int, TrialRecord]) -> bool:
        """True when ``record`` (FAILED) is to be retried: it matches and its configuration has retries left."""
        return (
            record.state is TrialState.FAILED
            and self.matches(record.error)
            and retries_so_far(record, trials) < self.max_retries
        )


def retries_so_far(record: TrialRecord, trials: Mapping[int, TrialRecord]) -> int:
    """How many FAILED trials come before ``record`` in its chain of ``retry_of``."""
    count = 0
    seen = {record.number}
    of = record.retry_of
    while of is not None and of not in seen:
        seen.add(of)
        earlier = trials.get(of)
        if earlier is None:
            break
        if earlier.state is TrialState.FAILED:
            count += 1
        of = earlier.retry_of
    return count


class RetryPolicyError(HptError, ValueError):
    """A :class:`RetryPolicy` was given something it cannot match on."""


def check_retry_failed(value: Any) -> RetryPolicy | None:
    """``value`` as a Tuner takes it for ``retry_failed``: ``None`` or a :class:`RetryPolicy`."""
    if value is None or isinstance(value, RetryPolicy):
        return value
    raise RetryPolicyError(f"retry_failed must be None or a hpt_async.RetryPolicy, got {value!r}")
