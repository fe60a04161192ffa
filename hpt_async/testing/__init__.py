"""Helpers for testing hpt-async and its plugins.

:mod:`hpt_async.testing.storage` is the storage conformance suite (a class
of pytest tests any :class:`~hpt_async.contracts.Storage` can be run
against); :mod:`hpt_async.testing.postgres` starts a throwaway PostgreSQL
server for tests and benchmarks.  Neither is imported by ``import
hpt_async``.
"""
