"""Retention on plain PostgreSQL: partitions dropped when every source agrees, rows deleted for shorter overrides."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.storage import tasks
from apps.storage.backends import backend_for
from tests.storage.factories import points_store, series_create, source_create

NOW = datetime(2026, 6, 20, 12, 0, tzinfo=UTC)


def _count(sql: str, params) -> int:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchone()[0]


def _rollup_rows(table: str, series_id: int, bucket: datetime) -> None:
    with connection.cursor() as cursor:
        cursor.execute(
            f"INSERT INTO {table} (bucket, series_id, count, sum, min, max, last, last_time) "  # noqa: S608 (test)
            "VALUES (%s, %s, 1, 1, 1, 1, 1, %s)",
            [bucket, series_id, bucket],
        )


@pytest.fixture
def sources(db):
    # Rollups exist up to here, so the points below arrive late and are rolled up as they are written.
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [NOW])
    keep_long = source_create(slug="archive", raw_retention_days=30)
    default = source_create(slug="plant")
    short = source_create(slug="scratch", raw_retention_days=2, rollup_1m_retention_days=10)
    ids = {
        source.slug: series_create(source=source, metric="temperature", device="d1")
        for source in (keep_long, default, short)
    }
    for series_id in ids.values():
        points_store(
            series_id,
            [(NOW - timedelta(days=age, hours=1), float(age)) for age in (1, 3, 10, 40)],
        )
    return ids


def test_raw_retention_with_overrides(sources):
    result = backend_for().retention_apply(now=NOW)
    # 40 days is past every source's retention (the longest is 30): the partition itself goes.
    assert f"points_p{(NOW - timedelta(days=40, hours=1)):%Y%m%d}" in result.dropped_partitions
    # 10 days: kept for 'archive' (30 d), deleted for 'plant' (default 7 d) and 'scratch' (2 d).
    ages = {
        slug: sorted(
            round((NOW - moment).days)
            for (moment,) in _rows("SELECT time FROM points WHERE series_id = %s", [series_id])
        )
        for slug, series_id in sources.items()
    }
    assert ages == {"archive": [1, 3, 10], "plant": [1, 3], "scratch": [1]}


def test_partition_goes_once_no_source_keeps_it(sources):
    backend_for().retention_apply(now=NOW)
    day = (NOW - timedelta(days=10, hours=1)).date()
    assert f"points_p{day:%Y%m%d}" in backend_for().partitions_list()
    # Forty days on, even the 30-day source no longer needs that day.
    result = backend_for().retention_apply(now=NOW + timedelta(days=30))
    assert f"points_p{day:%Y%m%d}" in result.dropped_partitions


def test_rollup_retention_with_overrides(sources, settings):
    settings.STORAGE_ROLLUP_1M_RETENTION_DAYS = 90
    for series_id in sources.values():
        for age in (5, 20, 100):
            _rollup_rows("points_1m", series_id, NOW - timedelta(days=age))
    backend_for().retention_apply(now=NOW)
    remaining = {
        slug: _count("SELECT count(*) FROM points_1m WHERE series_id = %s", [series_id])
        for slug, series_id in sources.items()
    }
    # Each series also has 1-minute rows for its four raw points (ages 1, 3, 10, 40 days: late points are
    # rolled up at once). Kept: under 90 days, or under 10 days for 'scratch' (ages 1, 3, 5).
    assert remaining == {"archive": 6, "plant": 6, "scratch": 3}


def _rows(sql: str, params) -> list[tuple]:
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


def test_periodic_tasks_run_against_the_real_clock(db):
    source = source_create(slug="live")
    series_id = series_create(source=source, metric="temperature", device="d1")
    now = datetime.now(UTC)
    points_store(series_id, [(now - timedelta(days=20), 1.0), (now - timedelta(minutes=5), 2.0)])
    created = tasks.partitions_prepare.delay().get()
    assert all(name.startswith("points_p") for name in created)
    assert tasks.rollups_refresh.delay().get()["watermark"]
    result = tasks.retention_apply.delay().get()
    assert f"points_p{(now - timedelta(days=20)):%Y%m%d}" in result["dropped_partitions"]
    assert _count("SELECT count(*) FROM points WHERE series_id = %s", [series_id]) == 1
