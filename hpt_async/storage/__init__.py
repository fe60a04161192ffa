"""Storage backends: where a study's trials are kept."""

from ..contracts.storage import Storage, StudyNotFound, StudySession, StudySummary, parse_storage_url
from .memory import MemoryStorage
from .sqlite import SQLiteStorage, StorageBusyError, StorageFileError

__all__ = [
    "MemoryStorage",
    "SQLiteStorage",
    "Storage",
    "StorageBusyError",
    "StorageFileError",
    "StudyNotFound",
    "StudySession",
    "StudySummary",
    "parse_storage_url",
]
