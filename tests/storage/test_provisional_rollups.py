"""Provisional 1-minute rollups (plain PostgreSQL): complete minutes inside the grace window are read from
the 1-minute tier, a write into one marks it dirty (read raw until the next refresh recomputes it), and
live writes past the provisional bound cost nothing extra.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection
from django.test.utils import CaptureQueriesContext

from apps.storage.backends import backend_for
from apps.storage.query.engine import Segment, query_execute
from apps.storage.query.spec import QuerySpec
from apps.storage.services import points_write
from apps.storage.tiers import TIER_1M
from tests.storage.factories import series_create, source_create
from tests.storage.oracle import assert_grouped_answer, close

BASE = datetime(2026, 4, 6, tzinfo=UTC)
MINUTE = timedelta(minutes=1)
# With a 3-minute grace and a 5-second provisional grace, a refresh at NOW leaves the watermark at minute 7
# and rolls up minutes 7, 8 and 9 provisionally, and minute 10 (in progress) as far as 10:05.
NOW = BASE + timedelta(minutes=10, seconds=10)
WATERMARK = BASE + 7 * MINUTE
PROVISIONAL = BASE + timedelta(minutes=10, seconds=5)
CURRENT = BASE + 10 * MINUTE  # the minute in progress, rolled up in part


@pytest.fixture
def plant(db, settings):
    """Four devices in two facilities, a point every 10 s from BASE to NOW, refreshed at NOW."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 180
    settings.STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS = 5
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [BASE])
    source = source_create(slug="provisional-plant")
    labels = {index: {"device": f"d{index}", "facility": f"f{index % 2}"} for index in range(4)}
    ids = {index: series_create(source=source, metric="t", **labels[index]) for index in range(4)}
    truth = {}
    for index, series_id in ids.items():
        for offset in range(0, int((NOW - BASE).total_seconds()), 10):
            truth[(series_id, BASE + timedelta(seconds=offset, milliseconds=index))] = float(offset % 97 + index)
    _write(truth)
    refreshed = backend_for().rollup_refresh(now=NOW)
    return {"ids": ids, "labels": labels, "truth": truth, "refreshed": refreshed}


def _write(points: dict) -> None:
    points_write(points=[(series_id, moment, value) for (series_id, moment), value in points.items()])


def _query(plant, user):
    spec = QuerySpec(
        metric="t",
        start=BASE,
        end=NOW,
        aggregation="avg",
        bucket_seconds=60,
        group_by=("facility",),
        filters=(),
        fill="none",
        max_points=10_000,
        limit=100,
    )
    result = query_execute(spec=spec, principal=user)
    assert_grouped_answer(result, spec, plant["truth"], plant["labels"], plant["ids"])
    return result


def _dirty_marks() -> list[datetime]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT minute FROM storage_rollup_dirty ORDER BY 1")
        return [row[0] for row in cursor.fetchall()]


def _row_versions(minute: datetime) -> set[str]:
    """Physical locations of a minute's 1-minute rows: an upsert that rewrites a row moves it."""
    with connection.cursor() as cursor:
        cursor.execute("SELECT ctid::text FROM points_1m WHERE bucket = %s", [minute])
        return {row[0] for row in cursor.fetchall()}


def test_refresh_rolls_up_complete_minutes_inside_the_grace_window_and_queries_read_them(plant, user):
    refreshed = plant["refreshed"]
    assert refreshed["watermark"] == WATERMARK.isoformat()
    assert refreshed["provisional"] == PROVISIONAL.isoformat()
    assert refreshed["provisional_minutes_built"] == 4  # three whole minutes and five seconds of the fourth
    # The cache must keep to the exact watermark: only the planner sees the provisional bound.
    assert backend_for().tier_materialized_until(TIER_1M) == WATERMARK

    result = _query(plant, user)

    assert result.segments == [
        Segment(TIER_1M, BASE, CURRENT),
        Segment(TIER_1M, CURRENT, PROVISIONAL),
        Segment(None, PROVISIONAL, NOW),
    ]
    assert result.label_rollups  # the provisional minutes have label rows too


def test_a_write_into_a_provisional_minute_marks_it_and_it_is_read_raw_until_the_refresh_recomputes_it(plant, user):
    late = {(plant["ids"][0], BASE + timedelta(minutes=8, seconds=31)): 500.0}
    _write(late)
    plant["truth"].update(late)
    assert _dirty_marks() == [BASE + 8 * MINUTE]

    result = _query(plant, user)  # includes the late point exactly

    assert result.segments == [
        Segment(TIER_1M, BASE, BASE + 8 * MINUTE),
        Segment(None, BASE + 8 * MINUTE, BASE + 9 * MINUTE),
        Segment(TIER_1M, BASE + 9 * MINUTE, CURRENT),
        Segment(TIER_1M, CURRENT, PROVISIONAL),
        Segment(None, PROVISIONAL, NOW),
    ]

    refreshed = backend_for().rollup_refresh(now=NOW)

    assert refreshed["dirty_minutes_recomputed"] == 1
    assert _dirty_marks() == []
    result = _query(plant, user)  # the late point now comes from the recomputed rollup rows
    # The minutes below the watermark come from the query cache the first query filled; it never holds
    # provisional minutes.
    assert result.cached_buckets == 7
    assert result.segments == [
        Segment(TIER_1M, WATERMARK, CURRENT),
        Segment(TIER_1M, CURRENT, PROVISIONAL),
        Segment(None, PROVISIONAL, NOW),
    ]


def test_a_write_into_the_minute_in_progress_before_the_bound_marks_it_and_the_next_refresh_rebuilds_it(plant, user):
    early = {(plant["ids"][2], CURRENT + timedelta(seconds=3)): 77.0}  # before 10:05: the partial row lacks it
    _write(early)
    plant["truth"].update(early)
    assert _dirty_marks() == [CURRENT]

    result = _query(plant, user)

    assert result.segments == [Segment(TIER_1M, BASE, CURRENT), Segment(None, CURRENT, NOW)]
    later = NOW + timedelta(seconds=20)  # 10:30: the minute in progress is rolled up to 10:25
    backend_for().rollup_refresh(now=later)
    assert _dirty_marks() == []
    plant["truth"][(plant["ids"][2], CURRENT + timedelta(seconds=15))] = 3.0
    _write({(plant["ids"][2], CURRENT + timedelta(seconds=15)): 3.0})  # 10:15 < 10:25: marked again
    assert _dirty_marks() == [CURRENT]
    backend_for().rollup_refresh(now=later)
    spec_end = later
    result = query_execute(
        spec=QuerySpec(metric="t", start=BASE, end=spec_end, aggregation="sum", bucket_seconds=60, fill="none",
                       max_points=10_000, limit=100),
        principal=user,
    )  # fmt: skip
    bound = later - timedelta(seconds=5)
    assert result.segments == [
        Segment(TIER_1M, BASE, CURRENT),
        Segment(TIER_1M, CURRENT, bound),
        Segment(None, bound, spec_end),
    ]
    sums = {}
    for item in result.series:
        for moment, value in item["points"]:
            sums[moment] = sums.get(moment, 0.0) + value
    expected = sum(value for (_, moment), value in plant["truth"].items() if CURRENT <= moment < spec_end)
    assert close(sums["2026-04-06T00:10:00Z"], expected)


def test_the_watermark_passing_provisional_minutes_recomputes_only_the_dirty_ones(plant, user):
    late = {(plant["ids"][1], BASE + timedelta(minutes=8, seconds=2)): -40.0}
    _write(late)
    plant["truth"].update(late)
    clean_before, dirty_before = _row_versions(BASE + 7 * MINUTE), _row_versions(BASE + 8 * MINUTE)

    refreshed = backend_for().rollup_refresh(now=NOW + 2 * MINUTE)  # the watermark moves from minute 7 to 9

    assert refreshed["watermark"] == (BASE + 9 * MINUTE).isoformat()
    assert refreshed["dirty_minutes_recomputed"] == 1
    assert _row_versions(BASE + 7 * MINUTE) == clean_before  # exact already: not aggregated again
    assert _row_versions(BASE + 8 * MINUTE).isdisjoint(dirty_before)
    assert _dirty_marks() == []
    _query(plant, user)


def test_live_writes_past_the_provisional_bound_add_no_statement(plant):
    series_id = plant["ids"][0]
    with CaptureQueriesContext(connection) as live:
        _write({(series_id, PROVISIONAL + timedelta(seconds=20)): 1.0, (series_id, PROVISIONAL): 2.0})
    with CaptureQueriesContext(connection) as into_provisional:
        _write(
            {(series_id, PROVISIONAL + timedelta(seconds=21)): 1.0, (series_id, WATERMARK + timedelta(seconds=1)): 2.0}
        )

    assert not [query for query in live.captured_queries if "storage_rollup_dirty" in query["sql"]]
    assert len(into_provisional) == len(live) + 1  # the one INSERT of the marks
    assert _dirty_marks() == [WATERMARK]
