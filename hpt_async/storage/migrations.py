"""One numbered chain of schema versions, shared by every storage that keeps a schema.

A *schema version* names a layout of a study database: version ``N`` is
the layout after every change of steps 1 to ``N`` of :data:`STEPS`, on
every storage.  Each storage with a schema (SQLite, PostgreSQL) gives, for
each step, the statements that make that change on its database; a step
with nothing to do on one storage (the change concerns another database,
or its first layout already had it) has no statements there, but its
number is taken all the same, so that a number means one thing everywhere.

A storage that joined the chain later starts at the step that created its
first layout: a new PostgreSQL schema runs steps 6 and up, and records
their number.  A database records the version it was brought to; opening
it runs the steps after that, in order, in one transaction; a database of
a higher version than :data:`SCHEMA_VERSION` is refused (it was written by
a newer hpt-async).

A change of layout appends a step here, with a line saying what it
changes, and gives its statements in *every* storage's chain (an empty
tuple where there is nothing to do): :func:`chain` refuses a storage's
chain that misses a step, so that no storage can fall behind unnoticed.
A step is never edited once databases have run it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

__all__ = ["SCHEMA_VERSION", "STEPS", "Step", "chain"]


@dataclass(frozen=True)
class Step:
    """One step of the chain: its number (from 1) and what it changes, in words."""

    number: int
    change: str


#: The steps of the chain, in order; step ``k`` brings a database from version ``k - 1`` to ``k``.
STEPS: tuple[Step, ...] = (
    Step(1, "the first layout: studies, the sessions holding leases, trials and their reports"),
    Step(2, "a trial's schedule of hyperparameters, and checkpoints"),
    Step(3, "a study's settings; several objectives (directions, and every objective's value of a trial)"),
    Step(4, "a trial's constraint values"),
    Step(5, "exactness of a shared study: the budget's units in use, reservations of numbers, claims"),
    Step(
        6,
        "PostgreSQL's first layout, with every change of steps 1-5, indexes for every query, "
        "transaction stamps for readers and notifications (nothing to do on SQLite)",
    ),
    Step(
        7,
        "a session taken for dead cannot push a study past its budget on PostgreSQL (SQLite has it since "
        "step 5), and notifications name the session that wrote (nothing to do on SQLite)",
    ),
    Step(
        8,
        "PostgreSQL reserves a trial's number ahead while the previous end flushes, and notifies only while "
        "another session of the study exists (nothing to do on SQLite)",
    ),
)

#: The newest schema version this hpt-async writes and reads.
SCHEMA_VERSION = len(STEPS)


def chain(storage: str, statements: Mapping[int, Sequence[str]], *, first: int = 1) -> tuple[tuple[str, ...], ...]:
    """A storage's migrations, indexed like :data:`STEPS` (entry ``k - 1`` holds step ``k``'s statements).

    ``statements`` maps each step number from ``first`` (the step that
    creates the storage's first layout) to :data:`SCHEMA_VERSION` to the
    statements that make it, an empty sequence when it has nothing to do;
    steps before ``first`` are empty.  A step missing or unknown raises
    ``ValueError``: it is a mistake in hpt-async (or in a storage plugin
    using this chain), found at import.
    """
    if not 1 <= first <= SCHEMA_VERSION:
        raise ValueError(f"the {storage} chain must start at a step from 1 to {SCHEMA_VERSION}, not {first}")
    expected = set(range(first, SCHEMA_VERSION + 1))
    missing = sorted(expected - set(statements))
    unknown = sorted(set(statements) - expected)
    if missing or unknown:
        raise ValueError(
            f"the {storage} migration chain does not match the steps {first}-{SCHEMA_VERSION}: "
            f"missing {missing}, unknown {unknown} (give an empty tuple for a step with nothing to do)"
        )
    return tuple(tuple(statements.get(step.number, ())) for step in STEPS)
