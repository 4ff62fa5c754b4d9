"""Ingestion fixtures: the storage cleanup for tests that commit."""

from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (re-exported fixture)
