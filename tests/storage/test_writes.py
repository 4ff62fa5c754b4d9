"""Writes: idempotent COPY, redeliveries through the upsert path, partitions, late points and rollups."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest
from django.db import connection, transaction

from apps.storage.backends import backend_for
from apps.storage.models import Series
from apps.storage.services import points_write, series_key, series_resolve
from tests.storage.factories import points_store, series_create, source_create

T0 = datetime(2026, 1, 5, 12, 0, tzinfo=UTC)


def _rows(sql: str, params=None) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params or [])
        return cursor.fetchall()


def _set_watermark(moment: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [moment])


@pytest.fixture
def source(db):
    return source_create(slug="plant")


def test_series_resolve_creates_in_bulk_and_caches(
    source, django_assert_num_queries, django_capture_on_commit_callbacks
):
    keys = [series_key(source_id=source.pk, metric="temperature", labels={"device": f"d{i}"}) for i in range(50)]
    with django_capture_on_commit_callbacks(execute=True):  # remembered once committed
        ids = series_resolve(keys=keys)
    assert len(set(ids.values())) == 50
    with django_assert_num_queries(0):
        assert series_resolve(keys=keys) == ids
    # Label order does not matter: the same series.
    again = series_key(source_id=source.pk, metric="m", labels={"b": "2", "a": "1"})
    assert series_resolve(keys=[again]) == series_resolve(
        keys=[series_key(source_id=source.pk, metric="m", labels={"a": "1", "b": "2"})]
    )


def test_series_created_by_a_rolled_back_write_are_not_remembered(source):
    """Their ids name nothing after the rollback: a later write given them stored points no series pointed to."""
    key = series_key(source_id=source.pk, metric="temperature", labels={"device": "gone"})
    created = []

    def failing_batch() -> None:
        with transaction.atomic():
            created.append(series_resolve(keys=[key])[key])
            raise RuntimeError("the batch failed after creating its series")

    with pytest.raises(RuntimeError):
        failing_batch()
    created = created[0]
    assert not Series.objects.filter(id=created).exists()
    again = series_resolve(keys=[key])[key]
    assert again != created
    assert Series.objects.filter(id=again, metric="temperature").exists()


def test_copy_then_redelivery_replaces_without_double_counting(source):
    series_id = series_create(source=source, metric="temperature", device="d1")
    first = points_store(series_id, [(T0 + timedelta(seconds=i), float(i)) for i in range(10)])
    assert first.written == 10
    assert first.upserted is False
    # The same batch again (an at-least-once redelivery) plus one changed value.
    batch = [(T0 + timedelta(seconds=i), float(i)) for i in range(10)]
    batch[3] = (T0 + timedelta(seconds=3), 33.0)
    second = points_store(series_id, batch)
    assert second.upserted is True
    assert second.overwritten == 0  # replacing stored points is not an overwrite within the batch
    assert _rows("SELECT count(*), sum(value) FROM points WHERE series_id = %s", [series_id]) == [(10, 75.0)]


def test_duplicates_within_one_batch_keep_the_last_and_are_counted(source):
    series_id = series_create(source=source, metric="temperature", device="d1")
    write = points_store(series_id, [(T0, 1.0), (T0, 2.0), (T0, 3.0), (T0 + timedelta(seconds=1), 4.0)])
    assert (write.written, write.overwritten) == (4, 2)
    assert _rows("SELECT value FROM points WHERE series_id = %s ORDER BY time", [series_id]) == [(3.0,), (4.0,)]


def test_partitions_created_for_any_day(source):
    series_id = series_create(source=source, metric="temperature", device="d1")
    old = datetime(2025, 2, 3, 4, 5, tzinfo=UTC)
    points_store(series_id, [(old, 1.0), (old + timedelta(days=2), 2.0)])
    partitions = backend_for().partitions_list()
    assert {"points_p20250203", "points_p20250204", "points_p20250205"} <= set(partitions)


def test_refresh_materializes_complete_buckets_only(source, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    _set_watermark(T0)
    series_id = series_create(source=source, metric="temperature", device="d1")
    points_store(series_id, [(T0 + timedelta(seconds=10 * i), float(i)) for i in range(400)])  # 66 minutes
    backend_for().rollup_refresh(now=T0 + timedelta(minutes=61, seconds=30))
    minutes = _rows(
        "SELECT bucket, count, sum, min, max, last FROM points_1m WHERE series_id = %s ORDER BY 1", [series_id]
    )
    assert len(minutes) == 61
    assert minutes[0] == (T0, 6, 15.0, 0.0, 5.0, 5.0)
    hours = _rows("SELECT bucket, count, sum, last FROM points_1h WHERE series_id = %s", [series_id])
    assert hours == [(T0, 360, sum(range(360)) * 1.0, 359.0)]
    assert _rows("SELECT count(*) FROM points_1d") == [(0,)]
    assert backend_for().watermark() == T0 + timedelta(minutes=61)


def test_late_points_reaggregate_their_buckets_at_once(source, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    _set_watermark(T0)
    series_id = series_create(source=source, metric="temperature", device="d1")
    points_store(series_id, [(T0 + timedelta(minutes=i), 1.0) for i in range(180)])
    backend_for().rollup_refresh(now=T0 + timedelta(hours=3))
    assert _rows("SELECT count, sum FROM points_1h WHERE series_id = %s AND bucket = %s", [series_id, T0]) == [
        (60, 60.0)
    ]
    # A late point inside the first hour, and a replaced value.
    result = points_store(series_id, [(T0 + timedelta(minutes=5, seconds=30), 10.0), (T0 + timedelta(minutes=7), 5.0)])
    assert result.late_buckets == 2
    assert _rows(
        "SELECT count, sum, last FROM points_1m WHERE series_id = %s AND bucket = %s",
        [series_id, T0 + timedelta(minutes=5)],
    ) == [(2, 11.0, 10.0)]
    assert _rows("SELECT count, sum FROM points_1h WHERE series_id = %s AND bucket = %s", [series_id, T0]) == [
        (61, 60.0 + 10.0 + 4.0)
    ]


def test_write_of_nothing_is_a_no_op(db):
    assert points_write(points=[]).written == 0


def test_point_just_below_the_watermark_is_late(source, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    _set_watermark(T0)
    series_id = series_create(source=source, metric="temperature", device="d1")
    points_store(series_id, [(T0 + timedelta(minutes=i), 1.0) for i in range(10)])
    backend_for().rollup_refresh(now=T0 + timedelta(minutes=10))
    result = points_store(series_id, [(T0 + timedelta(minutes=9, seconds=59), 2.0)])
    # Two delta rows, the minute's for the series and for its label cell (device=d1): the minute is materialized,
    # its hour and day are not yet.
    assert result.late_buckets == 2
    minute = T0 + timedelta(minutes=9)
    row = "SELECT count, sum, last FROM points_1m WHERE series_id = %s AND bucket = %s"
    assert _rows(row, [series_id, minute]) == [(1, 1.0, 1.0)]  # the row is left alone: the write only appended
    assert _rows(
        "SELECT count, sum, last, last_time FROM points_1m_delta WHERE series_id = %s AND bucket = %s",
        [series_id, minute],
    ) == [(1, 2.0, 2.0, minute + timedelta(seconds=59))]
    # The refresh folds the delta into the row.
    backend_for().rollup_refresh(now=T0 + timedelta(minutes=10))
    assert _rows(row, [series_id, minute]) == [(2, 3.0, 2.0)]
    assert _rows("SELECT count(*) FROM points_1m_delta", []) == [(0,)]


def test_a_late_redelivery_folds_the_deltas_and_re_aggregates_exactly(source, settings):
    """A write that replaces a point cannot be a delta: it folds the series' deltas and recomputes its buckets."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    _set_watermark(T0)
    series_id = series_create(source=source, metric="temperature", device="d1")
    points_store(series_id, [(T0 + timedelta(minutes=i), 1.0) for i in range(10)])
    backend_for().rollup_refresh(now=T0 + timedelta(minutes=10))
    points_store(series_id, [(T0 + timedelta(minutes=5, seconds=30), 4.0)])  # new: a delta
    replaced = points_store(series_id, [(T0 + timedelta(minutes=5), 10.0)])  # replaces the 1.0 at minute 5
    assert replaced.upserted is True
    assert _rows("SELECT count(*) FROM points_1m_delta WHERE series_id = %s", [series_id]) == [(0,)]
    assert _rows(
        "SELECT count, sum, last FROM points_1m WHERE series_id = %s AND bucket = %s",
        [series_id, T0 + timedelta(minutes=5)],
    ) == [(2, 14.0, 4.0)]


@pytest.mark.parametrize("schema_id", [None, 7])
def test_binary_copy_stores_exact_times_values_and_schema(source, schema_id):
    """The hand-packed COPY rows: microsecond times (before 2000 too, other offsets), every float, NULL schema."""
    series_id = series_create(source=source, metric="temperature", device="d1")
    plus_two = timezone(timedelta(hours=2))
    points = [
        (series_id, datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC), -1.5),
        (series_id, datetime(2026, 1, 5, 14, 0, 0, 123_456, tzinfo=plus_two), 1e308),
        (series_id, datetime(2026, 1, 5, 12, 0, 1, tzinfo=UTC), 3),  # an integer value is stored as a float
        (series_id, datetime(2026, 1, 5, 12, 0, 2, tzinfo=UTC), -0.0),
    ]
    assert points_write(points=points, schema_id=schema_id).upserted is False
    stored = _rows("SELECT time, value, schema_id FROM points WHERE series_id = %s ORDER BY time", [series_id])
    assert stored == [(moment.astimezone(UTC), float(value), schema_id) for _, moment, value in sorted(
        points, key=lambda point: point[1])]  # fmt: skip
    # The upsert path (a redelivery) packs its staging rows the same way.
    changed = [(series_id, moment, value + 1) for series_id, moment, value in points]
    assert points_write(points=changed, schema_id=schema_id).upserted is True
    stored = _rows("SELECT time, value FROM points WHERE series_id = %s ORDER BY time", [series_id])
    assert stored == [(moment.astimezone(UTC), float(value)) for _, moment, value in sorted(
        changed, key=lambda point: point[1])]  # fmt: skip
