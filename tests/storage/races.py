"""A rollup refresh raced against a write whose transaction is still open (the watermark lock protocol)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from apps.storage.backends import backend_for
from tests.waiting import database_thread


def refresh_during_open_write(write: Callable[[], object], *, now: datetime) -> None:
    """Run `write` in a transaction held open (as a slow ingest batch would) and a rollup refresh meanwhile:
    the refresh must wait for the write's commit, and both must succeed."""
    written, release, refreshed = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def write_held_open() -> None:
        with transaction.atomic():  # the caller's transaction stays open after the write
            write()
            written.set()
            release.wait(10)

    def refresh() -> None:
        written.wait(10)
        backend_for().rollup_refresh(now=now)
        refreshed.set()

    threads = [database_thread(write_held_open, errors), database_thread(refresh, errors)]
    for thread in threads:
        thread.start()
    assert written.wait(10)
    assert not refreshed.wait(1.0)  # the refresh must not run past the uncommitted write
    release.set()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    assert refreshed.is_set()
