"""The watermark lock: a refresh waits for in-flight writes, so no committed point is missed by the rollups."""

from __future__ import annotations

import threading
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, connections, transaction

from apps.storage.backends import backend_for
from tests.storage.factories import series_create, source_create

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


@pytest.mark.django_db(transaction=True)
def test_refresh_waits_for_an_open_write_and_includes_it(settings, storage_committed_cleanup):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0])
    source = source_create(slug="race")
    series_id = series_create(source=source, metric="m", device="d1")
    written, release, refreshed = threading.Event(), threading.Event(), threading.Event()
    errors: list[BaseException] = []

    def writer() -> None:
        try:
            # The outer transaction stays open (as a slow ingest batch would) after the COPY.
            with transaction.atomic():
                backend_for().points_write([(series_id, T0 + timedelta(seconds=s), 1.0) for s in range(120)])
                written.set()
                release.wait(10)
        except BaseException as error:  # surfaced by the assertion below
            errors.append(error)
        finally:
            connections.close_all()

    def refresher() -> None:
        try:
            written.wait(10)
            backend_for().rollup_refresh(now=T0 + timedelta(minutes=5))
            refreshed.set()
        except BaseException as error:
            errors.append(error)
        finally:
            connections.close_all()

    threads = [threading.Thread(target=writer), threading.Thread(target=refresher)]
    for thread in threads:
        thread.start()
    assert written.wait(10)
    # The refresh must not run past the uncommitted write.
    assert not refreshed.wait(1.0)
    release.set()
    for thread in threads:
        thread.join(20)
    assert not errors, errors
    assert refreshed.is_set()
    with connection.cursor() as cursor:
        cursor.execute("SELECT sum(count) FROM points_1m WHERE series_id = %s", [series_id])
        assert cursor.fetchone()[0] == 120
