"""The one numbered migration chain: every storage with a schema gives every step, numbered alike."""

from __future__ import annotations

import pytest

from hpt_async.storage import migrations, postgres, sqlite
from hpt_async.storage.migrations import SCHEMA_VERSION, STEPS, chain


def test_the_steps_are_numbered_from_one_in_order_and_say_what_they_change() -> None:
    assert [step.number for step in STEPS] == list(range(1, SCHEMA_VERSION + 1))
    assert all(step.change.strip() for step in STEPS)


def test_sqlite_and_postgresql_share_the_chain_and_its_version() -> None:
    assert sqlite.SCHEMA_VERSION == postgres.SCHEMA_VERSION == SCHEMA_VERSION
    assert len(sqlite.MIGRATIONS) == len(postgres.MIGRATIONS) == SCHEMA_VERSION
    # PostgreSQL joined at its first step: the steps before it made SQLite's layout only.
    assert all(step == () for step in postgres.MIGRATIONS[: postgres.FIRST_STEP - 1])
    assert postgres.MIGRATIONS[postgres.FIRST_STEP - 1] and sqlite.MIGRATIONS[0]
    # Every step changes at least one storage.
    assert all(a or b for a, b in zip(sqlite.MIGRATIONS, postgres.MIGRATIONS, strict=True))


def test_a_chain_is_indexed_like_the_steps_with_empty_steps_before_its_first() -> None:
    given = {n: (f"-- step {n}",) for n in range(3, SCHEMA_VERSION + 1)}
    built = chain("test", given, first=3)
    assert built[:2] == ((), ())
    assert built[2:] == tuple((f"-- step {n}",) for n in range(3, SCHEMA_VERSION + 1))


def test_a_chain_missing_a_step_is_refused_by_name() -> None:
    given = {n: () for n in range(1, SCHEMA_VERSION)}  # the last step forgotten
    with pytest.raises(ValueError, match=rf"test migration chain .*missing \[{SCHEMA_VERSION}\]"):
        chain("test", given)


def test_a_chain_with_an_unknown_step_or_a_step_before_its_first_is_refused() -> None:
    given = {n: () for n in range(1, SCHEMA_VERSION + 2)}
    with pytest.raises(ValueError, match=rf"unknown \[{SCHEMA_VERSION + 1}\]"):
        chain("test", given)
    with pytest.raises(ValueError, match=r"unknown \[1\]"):
        chain("test", {n: () for n in range(1, SCHEMA_VERSION + 1)}, first=2)
    with pytest.raises(ValueError, match="must start at a step from 1"):
        chain("test", {}, first=SCHEMA_VERSION + 1)


def test_the_module_documents_every_public_name() -> None:
    for name in migrations.__all__:
        value = getattr(migrations, name)
        assert name.isupper() or (value.__doc__ or "").strip(), name
