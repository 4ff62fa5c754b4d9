"""Storage backends: TimescaleDB and plain PostgreSQL behind one interface; see `backend_for`."""

from apps.storage.backends.base import StorageBackend, backend_for, backend_install, backend_name_choose

__all__ = ["StorageBackend", "backend_for", "backend_install", "backend_name_choose"]
