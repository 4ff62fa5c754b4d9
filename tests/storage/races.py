"""A rollup refresh raced against a write whose transaction is still open (the watermark lock protocol)."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from django.db import connections, transaction

from apps.storage.backends import backend_for


def refresh_during_open_write(write: Callable[[], object], *, now: datetime) -> None:
    """Run `write` in a transaction held open (as a slow ingest batch would) and a rollup refresh meanwhile:
    the refresh must wait for the write's commit, and both must succeed."""
    written, release, refreshed = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            with transaction.atomic():  # the caller's transaction stays open after the write
                write()
                written.set()
                release.wait(10)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    def refresher() -> None:
        try:
            written.wait(10)
            backend_for().rollup_refresh(now=now)
            refreshed.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer), threading.Thread(target=refresher)]
    for thread in threads:
        thread.start()
    assert written.wait(10)
    assert not refreshed.wait(1.0)  # the refresh must not run past the uncommitted write
    release.set()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    assert refreshed.is_set()
