"""Shared pytest configuration: async tests run on anyio's asyncio backend."""

from __future__ import annotations

import pytest


@pytest.fixture
def anyio_backend() -> str:
    """Pin anyio's pytest plugin to asyncio, the supported backend."""
    return "asyncio"
