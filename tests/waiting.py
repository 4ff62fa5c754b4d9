"""Threads that race on the database, polling for a condition another thread, process or server brings about,
and PostgreSQL's lock waiters."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from django.db import connection, connections


def database_thread(work: Callable[[], object], errors: list[BaseException]) -> threading.Thread:
    """A thread (not started) running `work` with its own connections, closed at the end; whatever `work`
    raises goes into `errors`, for the test to assert on in its own thread."""

    def run() -> None:
        try:
            work()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    return threading.Thread(target=run)


def wait_for(predicate: Callable[[], object], *, timeout: float = 5.0, what: str = "condition") -> None:
    """Return once `predicate()` is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.02)
    raise AssertionError(f"{what} not met within {timeout} s")


def lock_waiters(kind: str | None = None) -> int:
    """How many sessions of the test database are waiting for a lock (of that `kind` only, PostgreSQL's wait event
    name, when given: 'advisory', 'tuple', 'transactionid', ...)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s AND wait_event_type = 'Lock' "
            "AND (%s::text IS NULL OR wait_event = %s)",
            [connection.settings_dict["NAME"], kind, kind],
        )
        return cursor.fetchone()[0]
