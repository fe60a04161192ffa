"""Storage backends: where a study's trials are kept."""

from .base import Storage, StudySession, parse_storage_url
from .memory import MemoryStorage

__all__ = ["MemoryStorage", "Storage", "StudySession", "parse_storage_url"]
