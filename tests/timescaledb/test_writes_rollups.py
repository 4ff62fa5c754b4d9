"""Writes into the hypertable and the continuous aggregates built from them.

TimescaleDB's real-time aggregation answers from the materialized rows below each aggregate's
watermark and from the finer data above it. A point written below the watermark after a refresh (a
late point, a redelivery with a new value) shows once the next refresh has run: documented
TimescaleDB behaviour, which `rollup_refresh` (NULL window start) covers.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS_FINE_TO_COARSE, bucket_floor
from tests.storage.factories import points_store, series_create, source_create
from tests.timescaledb.helpers import expected_rollups, materialized_rows, rollup_rows, rows

# Relative to now: no retention (90 days raw by default) drops the data, whenever the tests run.
T0 = bucket_floor(timezone.now() - timedelta(days=10), 86_400)


@pytest.fixture
def two_series(tsdb):
    source = source_create(slug="plant")
    return (
        series_create(source=source, metric="temperature", device="d1"),
        series_create(source=source, metric="temperature", device="d2"),
    )


def _two_days(series_id: int, scale: float) -> list[tuple[datetime, float]]:
    """A point every 7 minutes 13 seconds for two days, values that make every aggregate differ."""
    step = timedelta(minutes=7, seconds=13)
    return [(T0 + index * step, scale * ((index * 37) % 101 - 50.5)) for index in range(int(2 * 86_400 / 433))]


def _truth(series_points: dict[int, list[tuple[datetime, float]]]) -> dict[tuple[int, datetime], float]:
    return {(series_id, moment): point for series_id, items in series_points.items() for moment, point in items}


def test_refresh_materializes_every_tier_exactly(tsdb, two_series):
    data = {two_series[0]: _two_days(two_series[0], 1.0), two_series[1]: _two_days(two_series[1], -2.5)}
    for series_id, items in data.items():
        points_store(series_id, items)
    truth = _truth(data)
    now = T0 + timedelta(days=1, hours=5, minutes=30, seconds=20)
    result = tsdb.rollup_refresh(now=now)
    assert result["refreshed_until"] == {
        "1m": (T0 + timedelta(days=1, hours=5, minutes=30)).isoformat(),
        "1h": (T0 + timedelta(days=1, hours=5)).isoformat(),
        "1d": (T0 + timedelta(days=1)).isoformat(),
    }
    for tier in TIERS_FINE_TO_COARSE:
        expected = expected_rollups(truth, tier)
        # The views answer every bucket (materialized rows plus real-time aggregation of the rest) ...
        assert rollup_rows(tier) == expected, tier
        # ... and the refresh materialized exactly the buckets that ended before `now`.
        until = {TIER_1M: now.replace(second=0), TIER_1H: now.replace(minute=0, second=0), TIER_1D: T0 + timedelta(1)}
        assert materialized_rows(tier) == {key: row for key, row in expected.items() if key[1] < until[tier]}, tier


def test_real_time_aggregation_answers_before_any_refresh(tsdb, two_series):
    data = {two_series[0]: [(T0 + timedelta(seconds=20 * index), float(index)) for index in range(200)]}
    points_store(two_series[0], data[two_series[0]])
    for tier in TIERS_FINE_TO_COARSE:
        assert materialized_rows(tier) == {}
        assert rollup_rows(tier) == expected_rollups(_truth(data), tier)
    minute = rollup_rows(TIER_1M)[(two_series[0], T0)]
    assert minute == (3, 3.0, 0.0, 2.0, 2.0, T0 + timedelta(seconds=40))


def test_redelivery_takes_the_upsert_path_and_replaces_values(tsdb, two_series):
    series_id = two_series[0]
    batch = [(T0 + timedelta(seconds=index), float(index)) for index in range(10)]
    first = points_store(series_id, batch)
    assert (first.written, first.upserted, first.late_buckets) == (10, False, 0)
    tsdb.rollup_refresh(now=T0 + timedelta(hours=2))
    # The same batch again (at-least-once delivery) with one value changed, below the watermark.
    batch[3] = (T0 + timedelta(seconds=3), 33.0)
    second = points_store(series_id, batch)
    assert (second.written, second.upserted) == (10, True)
    assert rows("SELECT count(*), sum(value) FROM points WHERE series_id = %s", [series_id]) == [(10, 75.0)]
    tsdb.rollup_refresh(now=T0 + timedelta(hours=2))
    assert rollup_rows(TIER_1M)[(series_id, T0)] == (10, 75.0, 0.0, 33.0, 9.0, T0 + timedelta(seconds=9))
    assert rollup_rows(TIER_1H)[(series_id, T0)][:2] == (10, 75.0)


def test_duplicates_within_one_batch_keep_the_last(tsdb, two_series):
    points_store(two_series[0], [(T0, 1.0), (T0, 2.0), (T0, 3.0)])
    assert rows("SELECT value FROM points WHERE series_id = %s", [two_series[0]]) == [(3.0,)]


def test_late_points_show_after_the_next_refresh(tsdb, two_series):
    series_id = two_series[0]
    points_store(series_id, [(T0 + timedelta(minutes=index), 1.0) for index in range(180)])
    now = T0 + timedelta(hours=3)
    tsdb.rollup_refresh(now=now)
    assert rollup_rows(TIER_1H)[(series_id, T0)][:2] == (60, 60.0)
    late = [(T0 + timedelta(minutes=5, seconds=30), 10.0), (T0 + timedelta(minutes=7), 5.0)]  # new, and replaced
    assert points_store(series_id, late).late_buckets == 0  # TimescaleDB tracks invalidations itself
    assert rows("SELECT count(*) FROM points WHERE series_id = %s", [series_id]) == [(181,)]
    # Below the watermark the views answer from materialized rows, so the late points wait for a refresh.
    assert rollup_rows(TIER_1H)[(series_id, T0)][:2] == (60, 60.0)
    tsdb.rollup_refresh(now=now)
    assert rollup_rows(TIER_1M)[(series_id, T0 + timedelta(minutes=5))] == (
        2, 11.0, 1.0, 10.0, 10.0, T0 + timedelta(minutes=5, seconds=30)
    )  # fmt: skip
    assert rollup_rows(TIER_1H)[(series_id, T0)][:2] == (61, 60.0 + 10.0 + 4.0)
    assert rollup_rows(TIER_1D)[(series_id, T0)][:2] == (181, 180.0 + 10.0 + 4.0)


def test_points_newer_than_the_watermark_need_no_refresh(tsdb, two_series):
    series_id = two_series[0]
    points_store(series_id, [(T0 + timedelta(minutes=index), 1.0) for index in range(120)])
    tsdb.rollup_refresh(now=T0 + timedelta(hours=1))
    points_store(series_id, [(T0 + timedelta(hours=1, minutes=30, seconds=30), 7.0)])
    assert rollup_rows(TIER_1M)[(series_id, T0 + timedelta(hours=1, minutes=30))][:2] == (2, 8.0)
    assert rollup_rows(TIER_1H)[(series_id, T0 + timedelta(hours=1))][:2] == (61, 67.0)
    assert rollup_rows(TIER_1D)[(series_id, T0)][:2] == (121, 127.0)


def test_the_rollups_of_a_tier_read_the_finer_tier(tsdb, two_series):
    """Hierarchical: refreshing 1h without refreshing 1m first would miss points; rollup_refresh orders them."""
    points_store(two_series[0], [(T0 + timedelta(minutes=index), 2.0) for index in range(60)])
    tsdb.rollup_refresh(now=T0 + timedelta(hours=1))
    assert set(materialized_rows(TIER_1H)) == {(two_series[0], T0)}
    assert materialized_rows(TIER_1H)[(two_series[0], T0)][:2] == (60, 120.0)
