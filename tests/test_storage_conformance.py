"""The storage conformance suite (hpt_async.testing.storage) against memory, SQLite and PostgreSQL."""

from __future__ import annotations

from pathlib import Path

import pytest

from hpt_async.contracts.storage import Storage
from hpt_async.storage.memory import MemoryStorage
from hpt_async.storage.sqlite import SQLiteStorage
from hpt_async.testing.storage import StorageContract


class TestMemory(StorageContract):
    @pytest.fixture
    def storage(self) -> Storage:
        return MemoryStorage()


class TestSQLite(StorageContract):
    @pytest.fixture
    def storage(self, tmp_path: Path) -> Storage:
        return SQLiteStorage(f"sqlite:///{tmp_path / 'contract.db'}")

    short_lease = 0.3

    @pytest.fixture
    def short_lease_storage(self, tmp_path: Path) -> Storage:
        return SQLiteStorage(f"sqlite:///{tmp_path / 'contract.db'}?lease=0.3&sync=0.1")


class TestPostgres(StorageContract):
    @pytest.fixture
    def storage(self, postgres_url: str) -> Storage:
        from hpt_async.storage.postgres import PostgresStorage

        return PostgresStorage(postgres_url)

    short_lease = 0.3

    @pytest.fixture
    def short_lease_storage(self, postgres_url: str) -> Storage:
        from hpt_async.storage.postgres import PostgresStorage

        return PostgresStorage(f"{postgres_url}&lease=0.3&sync=0.1")
