"""Rollup maintenance raced against writes (the watermark lock protocol): a refresh against a write whose
transaction is still open, and late and live writes against a maintenance step held open."""

from __future__ import annotations

import threading
from collections.abc import Callable
from datetime import datetime

from django.db import transaction

from apps.storage.backends import backend_for
from tests.waiting import database_thread, lock_waiters, wait_for


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


def writes_during_paused_step(
    run: Callable[[], object],
    *,
    in_step: threading.Event,
    release: threading.Event,
    live: Callable[[], object],
    late: Callable[[], object],
    what: str,
    late_waits: bool = True,
) -> None:
    """Run `run` (a drain or history build whose step, patched by the caller, sets `in_step` and then waits for
    `release`) in a thread; while the step is held open, `live` (a write of live points) must finish and `late` (a
    write of late, new points) must wait for a lock (or, without `late_waits`, finish too); all finish once it is
    released."""
    errors: list[BaseException] = []
    live_done, late_done = threading.Event(), threading.Event()

    def done_after(write: Callable[[], object], done: threading.Event) -> Callable[[], None]:
        return lambda: (write(), done.set())

    runner = database_thread(run, errors)
    runner.start()
    assert in_step.wait(10), f"the {what} did not reach its step"
    writers = [
        database_thread(done_after(live, live_done), errors),
        database_thread(done_after(late, late_done), errors),
    ]
    for thread in writers:
        thread.start()
    try:
        assert live_done.wait(10), f"a live write waited for the {what}"
        if late_waits:
            wait_for(lambda: lock_waiters() >= 1, timeout=10, what=f"the late write waiting for the {what}")
            assert not late_done.is_set()
        else:
            assert late_done.wait(10), f"a late write waited for the {what}"
    finally:
        release.set()
        for thread in [runner, *writers]:
            thread.join(30)
    assert not errors, errors
    assert late_done.is_set()
