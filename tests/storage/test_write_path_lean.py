"""The write path's one savepoint: a redelivery still takes the upsert path, and the lock still holds a refresh."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection, transaction
from django.test.utils import CaptureQueriesContext

from apps.storage.backends import backend_for
from apps.storage.services import points_write
from tests.storage.conftest import storage_tables_reset
from tests.storage.factories import series_create, source_create
from tests.storage.races import refresh_during_open_write

T0 = datetime(2026, 4, 1, 8, 0, tzinfo=UTC)


def _points(series_id: int, value: float, *, start: datetime = T0) -> list[tuple[int, datetime, float]]:
    return [(series_id, start + timedelta(seconds=second), value) for second in range(120)]


def _stored(sql: str, params: list) -> tuple:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()


def _statements(captured: CaptureQueriesContext) -> list[str]:
    return [query["sql"].split()[0] for query in captured.captured_queries]


@pytest.mark.django_db
def test_live_write_in_a_transaction_takes_one_savepoint(django_capture_on_commit_callbacks):
    """Each savepoint is a subtransaction PostgreSQL pays for on every batch: the COPY gets none of its own."""
    storage_tables_reset(watermark=T0)
    series_id = series_create(source=source_create(slug="lean"), metric="m", device="d1")
    with django_capture_on_commit_callbacks(execute=True):  # as if committed: the day's partition is remembered
        points_write(points=_points(series_id, 1.0))  # creates the day's partition, if this process has not yet
    with transaction.atomic(), CaptureQueriesContext(connection) as captured:
        points_write(points=_points(series_id, 1.0, start=T0 + timedelta(minutes=2)))
    assert _statements(captured) == ["SAVEPOINT", "SELECT", "COPY", "RELEASE"]


@pytest.mark.django_db
def test_redelivery_in_a_transaction_upserts_and_keeps_the_callers_work():
    storage_tables_reset(watermark=T0)
    series_id = series_create(source=source_create(slug="lean"), metric="m", device="d1")
    with transaction.atomic():
        assert points_write(points=_points(series_id, 1.0)).upserted is False
        # The same batch again, with a duplicate key inside it: the last one wins.
        again = [*_points(series_id, 2.0), (series_id, T0, 5.0)]
        assert points_write(points=again).upserted is True
        # The caller's transaction is intact: the first write is still there, replaced, and queries still run.
        assert _stored("SELECT count(*), sum(value) FROM points WHERE series_id = %s", [series_id]) == (120, 243.0)


@pytest.mark.django_db(transaction=True)
def test_redelivery_outside_a_transaction_upserts(storage_committed_cleanup):
    """Without a caller's transaction the failed COPY's transaction is rolled back and the upsert runs in a new one."""
    storage_tables_reset(watermark=T0)
    series_id = series_create(source=source_create(slug="lean"), metric="m", device="d1")
    with CaptureQueriesContext(connection) as captured:
        assert points_write(points=_points(series_id, 1.0)).upserted is False
    assert "SAVEPOINT" not in _statements(captured)  # the write's atomic block is the transaction
    assert points_write(points=_points(series_id, 2.0)).upserted is True
    assert _stored("SELECT count(*), sum(value) FROM points WHERE series_id = %s", [series_id]) == (120, 240.0)


@pytest.mark.django_db(transaction=True)
def test_refresh_waits_for_an_open_redelivery_and_includes_its_values(settings, storage_committed_cleanup):
    """The upsert path takes the watermark lock again after its COPY's rollback released it."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    storage_tables_reset(watermark=T0)
    series_id = series_create(source=source_create(slug="lean"), metric="m", device="d1")
    points_write(points=_points(series_id, 1.0))

    def redeliver() -> None:
        assert backend_for().points_write(_points(series_id, 2.0)).upserted is True

    refresh_during_open_write(redeliver, now=T0 + timedelta(minutes=5))
    assert _stored("SELECT sum(count), sum(sum) FROM points_1m WHERE series_id = %s", [series_id]) == (120, 240.0)
