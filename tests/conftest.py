"""Shared pytest configuration: async tests on the asyncio backend; a PostgreSQL server for those that need it."""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Pin anyio's pytest plugin to asyncio, the supported backend."""
    return "asyncio"


# -- PostgreSQL ------------------------------------------------------------------------------

REQUIRE_POSTGRES_ENV = "HPT_ASYNC_REQUIRE_POSTGRES"


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    """The URL of a PostgreSQL server for the whole run: ``HPT_ASYNC_TEST_POSTGRES_URL``, else a throwaway one.

    Skips the tests that need it when there is neither (fails instead when
    ``HPT_ASYNC_REQUIRE_POSTGRES=1``, as on CI) or when asyncpg is missing.
    """
    from hpt_async.testing.postgres import URL_ENV, PostgresUnavailable, postgres_url_for_tests

    def missing(why: str) -> None:
        if os.environ.get(REQUIRE_POSTGRES_ENV) == "1":
            pytest.fail(f"{why} ({REQUIRE_POSTGRES_ENV}=1 makes the PostgreSQL tests required)")
        pytest.skip(why)

    try:
        import asyncpg  # noqa: F401
    except ImportError:
        missing("asyncpg is not installed: pip install 'hpt-async[postgres]'")
    try:
        with postgres_url_for_tests() as url:
            if url is None:
                missing(f"no PostgreSQL server: install Debian's 'postgresql' package or set {URL_ENV}")
            yield url  # type: ignore[misc]
    except PostgresUnavailable as exc:
        missing(f"the throwaway PostgreSQL server did not start: {exc}")


@pytest.fixture
def postgres_url(postgres_server: str) -> str:
    """A URL on the test server whose studies live in a schema of their own (this test's only)."""
    sep = "&" if "?" in postgres_server else "?"
    return f"{postgres_server}{sep}schema=t{uuid.uuid4().hex[:16]}"
