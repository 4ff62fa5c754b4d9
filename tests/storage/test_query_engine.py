"""The query engine: tiers and the raw tail, aggregations, filters, grouping, gaps, budgets, scope, errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.storage.backends import backend_for
from apps.storage.policies import (
    DataAccessDenied,
    DataScope,
    Grant,
    data_scope_provider_get,
    data_scope_provider_set,
)
from apps.storage.query.cache import generation_bump
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import QuerySpecError, query_spec_parse
from tests.storage.factories import points_store, series_create, source_create

T0 = datetime(2026, 2, 2, 0, 0, tzinfo=UTC)


def _query(user, **body):
    spec = query_spec_parse(body, now=T0 + timedelta(days=1))
    return query_execute(spec=spec, principal=user)


def _points(result, index=0):
    return [value for _, value in result.series[index]["points"]]


@pytest.fixture
def plant(db, settings):
    """Two facilities, four devices, one point a minute of temperature for 3 hours, rolled up to T0+2h."""
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0])
    source = source_create(slug="plant")
    ids = {}
    for number in range(4):
        device, facility = f"d{number}", f"f{number % 2 + 1}"
        ids[device] = series_create(source=source, metric="temperature", device=device, facility=facility)
        points_store(ids[device], [(T0 + timedelta(minutes=m), float(number * 100 + m)) for m in range(180)])
    backend_for().rollup_refresh(now=T0 + timedelta(hours=2))
    return {"source": source, "ids": ids}


def test_rollups_and_raw_tail_give_the_newest_bucket(plant, user):
    result = _query(user, metric="temperature", filters={"device": "d0"}, aggregation="sum", bucket="1h",
                    start=T0.isoformat(), end=(T0 + timedelta(hours=3)).isoformat())  # fmt: skip
    assert result.tier == "1h"
    # Hour 3 is not rolled up yet: it comes from raw points, complete.
    assert _points(result) == [float(sum(range(60))), float(sum(range(60, 120))), float(sum(range(120, 180)))]
    # A point written now shows up at once, without a refresh.
    points_store(plant["ids"]["d0"], [(T0 + timedelta(hours=2, minutes=30, seconds=30), 1000.0)])
    again = _query(user, metric="temperature", filters={"device": "d0"}, aggregation="sum", bucket="1h",
                   start=T0.isoformat(), end=(T0 + timedelta(hours=3)).isoformat())  # fmt: skip
    assert _points(again)[2] == float(sum(range(120, 180))) + 1000.0


@pytest.mark.parametrize(
    ("aggregation", "expected"),
    [("avg", 29.5), ("sum", 1770.0), ("count", 60.0), ("min", 0.0), ("max", 59.0), ("last", 59.0), ("p50", 29.5)],
)
def test_aggregations(plant, user, aggregation, expected):
    result = _query(user, metric="temperature", filters={"device": "d0"}, aggregation=aggregation, bucket="1h",
                    start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    assert _points(result) == [expected]
    assert result.tier == ("raw" if aggregation == "p50" else "1h")


def test_group_by_merges_series_exactly(plant, user):
    result = _query(user, metric="temperature", aggregation="avg", bucket="1h", group_by=["facility"],
                    start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    by_facility = {item["labels"]["facility"]: _points(result, index) for index, item in enumerate(result.series)}
    # f1 = d0 and d2 (values m and 200+m), f2 = d1 and d3 (100+m and 300+m).
    assert by_facility == {"f1": [129.5], "f2": [229.5]}
    assert [item["labels"] for item in result.series] == [{"facility": "f1"}, {"facility": "f2"}]


def test_last_across_series_uses_the_latest_point(plant, user):
    # d3's last point in hour 1 is at 00:59; make d1's later (00:59:30) so it must win for f2.
    points_store(plant["ids"]["d1"], [(T0 + timedelta(minutes=59, seconds=30), -5.0)])
    result = _query(user, metric="temperature", aggregation="last", bucket="1h", group_by=["facility"],
                    start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    assert _points(result, 1) == [-5.0]


@pytest.mark.parametrize(
    ("filters", "devices"),
    [
        ({"device": "d1"}, ["d1"]),
        ({"device": ["d1", "d2"]}, ["d1", "d2"]),
        ({"device": {"regex": "^d[23]$"}}, ["d2", "d3"]),
        ({"device": {"ne": "d0"}}, ["d1", "d2", "d3"]),
        ({"device": {"not_in": ["d0", "d1"]}}, ["d2", "d3"]),
        ({"facility": "f2", "device": {"ne": "d3"}}, ["d1"]),
    ],
)
def test_filters(plant, user, filters, devices):
    result = _query(user, metric="temperature", filters=filters, bucket="1h", start=T0.isoformat(),
                    end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    assert sorted(item["labels"]["device"] for item in result.series) == devices
    assert all(item["source"] == "plant" for item in result.series)


def test_gap_fill_modes(plant, user):
    body = {"metric": "temperature", "filters": {"device": "d0"}, "bucket": "1h", "aggregation": "max",
            "start": (T0 - timedelta(hours=1)).isoformat(), "end": (T0 + timedelta(hours=5)).isoformat()}  # fmt: skip
    assert _points(_query(user, **body, fill="null")) == [None, 59.0, 119.0, 179.0, None, None]
    assert _points(_query(user, **body, fill="previous")) == [None, 59.0, 119.0, 179.0, 179.0, 179.0]
    assert _points(_query(user, **body, fill="none")) == [59.0, 119.0, 179.0]


def test_downsamples_to_the_point_budget(plant, user):
    result = _query(user, metric="temperature", filters={"device": "d0"}, bucket="1m", max_points=10,
                    start=T0.isoformat(), end=(T0 + timedelta(hours=3)).isoformat())  # fmt: skip
    assert result.downsampled is True
    assert result.bucket_seconds == 1800  # 3 h / 10 points -> 18 min -> the next nice width, 30 min
    assert len(result.series[0]["points"]) <= 10
    auto = _query(user, metric="temperature", filters={"device": "d0"}, max_points=100,
                  start=T0.isoformat(), end=(T0 + timedelta(hours=3)).isoformat())  # fmt: skip
    assert auto.bucket_seconds == 120
    assert auto.downsampled is False


def test_raw_points_and_their_budget(plant, user):
    result = _query(user, metric="temperature", filters={"device": "d2"}, aggregation="raw",
                    start=T0.isoformat(), end=(T0 + timedelta(minutes=15)).isoformat())  # fmt: skip
    assert result.tier == "raw"
    assert [point[1] for point in result.series[0]["points"]] == [200.0 + m for m in range(15)]
    assert result.series[0]["points"][0][0] == "2026-02-02T00:00:00Z"
    over = _query(user, metric="temperature", filters={"device": "d2"}, aggregation="raw", max_points=20,
                  start=T0.isoformat(), end=(T0 + timedelta(hours=3)).isoformat())  # fmt: skip
    assert over.downsampled is True
    assert len(over.series[0]["points"]) <= 20


def test_raw_point_times_are_written_like_isoformat(plant, user):
    """PostgreSQL formats raw times: whole seconds without a fraction, others with six digits, always UTC 'Z'."""
    points_store(plant["ids"]["d2"], [(T0 + timedelta(minutes=20, seconds=1, microseconds=500_000), 1.0),
                                      (T0 + timedelta(minutes=20, seconds=2, microseconds=7), 2.0)])  # fmt: skip
    result = _query(user, metric="temperature", filters={"device": "d2"}, aggregation="raw",
                    start=(T0 + timedelta(minutes=19, seconds=59)).isoformat(),
                    end=(T0 + timedelta(minutes=21)).isoformat())  # fmt: skip
    expected = [T0 + timedelta(minutes=20), T0 + timedelta(minutes=20, seconds=1, microseconds=500_000),
                T0 + timedelta(minutes=20, seconds=2, microseconds=7)]  # fmt: skip
    assert [point[0] for point in result.series[0]["points"]] == [_iso_z(moment) for moment in expected]


def test_limit_truncates_output_series(plant, user):
    result = _query(user, metric="temperature", limit=3, bucket="1h", start=T0.isoformat(),
                    end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    assert result.truncated is True
    assert [item["labels"]["device"] for item in result.series] == ["d0", "d1", "d2"]


def test_data_scope_limits_what_is_read(plant, user):
    original = data_scope_provider_get()
    data_scope_provider_set(lambda principal: DataScope.of([Grant.build(labels={"facility": ["f2"]})]))
    try:
        result = _query(user, metric="temperature", bucket="1h", start=T0.isoformat(),
                        end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
        assert sorted(item["labels"]["device"] for item in result.series) == ["d1", "d3"]
        grouped = _query(user, metric="temperature", bucket="1h", group_by=["facility"], aggregation="count",
                         start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
        assert [(item["labels"], _points(grouped, i)) for i, item in enumerate(grouped.series)] == [
            ({"facility": "f2"}, [120.0])
        ]
        data_scope_provider_set(lambda principal: DataScope.of([Grant.build(source_ids=[-1])]))
        # What may not be read looks exactly like what does not exist: an empty answer.
        assert (
            _query(user, metric="temperature", start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat()).series
            == []
        )
    finally:
        data_scope_provider_set(original)


def test_anonymous_may_not_read(plant):
    from django.contrib.auth.models import AnonymousUser

    with pytest.raises(DataAccessDenied):
        _query(AnonymousUser(), metric="temperature")


def test_a_metric_with_no_data_yet_is_an_empty_answer(plant, user):
    # As Grafana shows "No data": the panel stays valid and fills in when the first point arrives.
    assert _query(user, metric="temprature").series == []


def test_a_source_with_no_data_yet_is_an_empty_answer(plant, user):
    assert _query(user, metric="temperature", source="nope").series == []


def test_too_many_series(plant, user, settings):
    settings.STORAGE_MAX_SERIES_PER_QUERY = 3
    with pytest.raises(QuerySpecError, match="matches more than 3 series"):
        _query(user, metric="temperature")


def test_filters_matching_nothing_is_empty_not_an_error(plant, user):
    assert _query(user, metric="temperature", filters={"device": "zzz"}).series == []


def test_last_through_the_hour_tier_orders_by_the_real_last_time(db, user, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0])
    source = source_create(slug="sparse")
    early_late = series_create(source=source, metric="level", tank="a", site="s1")
    middle = series_create(source=source, metric="level", tank="b", site="s1")
    points_store(early_late, [(T0 + timedelta(minutes=10), 1.0), (T0 + timedelta(minutes=50), 2.0)])
    points_store(middle, [(T0 + timedelta(minutes=30), 3.0)])
    backend_for().rollup_refresh(now=T0 + timedelta(hours=2))
    result = _query(user, metric="level", aggregation="last", bucket="1h", group_by=["site"],
                    start=T0.isoformat(), end=(T0 + timedelta(hours=1)).isoformat())  # fmt: skip
    assert result.tier == "1h"
    assert _points(result) == [2.0]


@pytest.mark.parametrize("aggregation", ["sum", "count", "max", "avg"])
def test_a_bucket_the_range_cuts_holds_only_what_is_inside_the_range(plant, user, aggregation):
    # "Orders" with daily buckets over the last hour must count that hour, not the day since midnight: the
    # range's start goes down to a whole minute only (rolled-up hours, then minutes, then raw points read the
    # part of the day that is inside), and the bucket keeps the day's start as its time.
    start, end = T0 + timedelta(hours=1, minutes=20, seconds=30), T0 + timedelta(hours=2, minutes=40)
    result = _query(user, metric="temperature", filters={"device": "d0"}, aggregation=aggregation, bucket="1d",
                    start=start.isoformat(), end=end.isoformat())  # fmt: skip
    inside = [float(minute) for minute in range(80, 160)]  # d0's value at minute m is m; 01:20 to 02:39
    expected = {"sum": sum(inside), "count": len(inside), "max": max(inside), "avg": sum(inside) / len(inside)}
    assert result.series[0]["points"] == [[_iso_z(T0), expected[aggregation]]]
    assert result.as_dict()["start"] == _iso_z(T0 + timedelta(hours=1, minutes=20))


def test_buckets_of_different_widths_total_the_same_span(plant, user):
    start, end = T0 + timedelta(minutes=7, seconds=10), T0 + timedelta(hours=1)
    totals = {}
    for bucket in ("1m", "5m", "1h", "1d"):
        result = _query(user, metric="temperature", filters={"device": "d0"}, aggregation="sum", bucket=bucket,
                        start=start.isoformat(), end=end.isoformat())  # fmt: skip
        totals[bucket] = sum(_points(result))
    assert totals == dict.fromkeys(totals, float(sum(range(7, 60))))


def test_the_start_never_goes_into_an_earlier_bucket(plant, user):
    # 90 s buckets: a range from 00:01:45 starts at its bucket's start, 00:01:30, not at the whole minute 00:01:00,
    # which lies in the bucket before (its point, minute 1, is outside the range and counted nowhere).
    start, end = T0 + timedelta(seconds=105), T0 + timedelta(minutes=10)
    result = _query(user, metric="temperature", filters={"device": "d0"}, aggregation="sum", bucket="90s",
                    start=start.isoformat(), end=end.isoformat())  # fmt: skip
    assert result.as_dict()["start"] == _iso_z(T0 + timedelta(seconds=90))
    expected = [(90, 2.0), (180, 3.0 + 4.0), (270, 5.0), (360, 6.0 + 7.0), (450, 8.0), (540, 9.0)]
    assert result.series[0]["points"] == [[_iso_z(T0 + timedelta(seconds=offset)), value] for offset, value in expected]


def test_stable_buckets_come_from_the_cache_until_a_late_write(plant, user, django_capture_on_commit_callbacks):
    body = {"metric": "temperature", "aggregation": "sum", "bucket": "1m", "group_by": ["facility"],
            "start": (T0 + timedelta(seconds=30)).isoformat(),
            "end": (T0 + timedelta(hours=3)).isoformat()}  # fmt: skip
    first = _query(user, **body)
    assert first.cached_buckets == 0
    second = _query(user, **body)
    # Buckets below the watermark (T0+2h): all 120, the first one whole (the start goes down to a minute: T0).
    assert second.cached_buckets == 120
    assert second.as_dict()["start"] == _iso_z(T0)
    assert second.series == first.series
    # A late point below the watermark invalidates the cache once it commits; the answer includes it.
    with django_capture_on_commit_callbacks(execute=True) as callbacks:
        points_store(plant["ids"]["d0"], [(T0 + timedelta(minutes=10, seconds=30), 1000.0)])
    assert [callback for callback in callbacks if callback is generation_bump] == [generation_bump]
    third = _query(user, **body)
    assert third.cached_buckets == 0
    f1 = dict(third.series[0]["points"])
    assert f1[_iso_z(T0 + timedelta(minutes=10))] == 10.0 + 210.0 + 1000.0
    # New points past the watermark are read from storage even while the cache is used.
    points_store(plant["ids"]["d0"], [(T0 + timedelta(hours=2, minutes=30, seconds=5), 5.0)])
    fourth = _query(user, **body)
    assert fourth.cached_buckets == 120
    assert dict(fourth.series[0]["points"])[_iso_z(T0 + timedelta(hours=2, minutes=30))] == 150.0 + 350.0 + 5.0


def test_cache_can_be_switched_off(plant, user, settings):
    settings.STORAGE_QUERY_CACHE_SECONDS = 0
    body = {"metric": "temperature", "bucket": "1m", "start": T0.isoformat(),
            "end": (T0 + timedelta(hours=3)).isoformat()}  # fmt: skip
    _query(user, **body)
    assert _query(user, **body).cached_buckets == 0


def _iso_z(moment: datetime) -> str:
    return moment.isoformat().replace("+00:00", "Z")
