"""Property: the engine's answer through rollup tiers equals the answer computed from raw points.

Random series, points, refreshes (which move the watermark and fold late points' deltas), late points (new ones
appended as deltas, replaced ones re-aggregated) and replaced values, then random queries (bucket, range,
aggregation, filters, grouping) on the plain PostgreSQL backend.
Queries grouped by facility over whole facilities read the label rollups; device subsets cannot.
Random grace periods leave provisional minutes past the watermark, and later batches land in them
(marking them dirty) before and after refreshes, which may also run with a clock that went back.
The TimescaleDB backend runs the same property in tests/timescaledb/.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.contrib.auth import get_user_model
from django.core.cache import cache
from django.db import connection
from hypothesis import HealthCheck, event, example, given, settings
from hypothesis import strategies as st

from apps.access.models import Membership
from apps.storage.backends import backend_for
from apps.storage.query import engine
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import LabelFilter, QuerySpec
from apps.storage.services import points_write, series_cache_clear
from apps.storage.tiers import TIER_1M
from tests.factories import organization_get
from tests.storage.factories import series_create, source_create
from tests.storage.oracle import close, oracle_answer, parse_iso

BASE = datetime(2026, 1, 5, tzinfo=UTC)
SPAN_SECONDS = 3 * 86_400
BUCKETS = [30, 60, 90, 120, 300, 900, 3600, 7200, 21_600, 86_400, 172_800]
AGGREGATIONS = ["avg", "sum", "count", "min", "max", "last"]

SPANS = [900, 6 * 3600, SPAN_SECONDS]  # dense minutes, whole hours, whole days


@st.composite
def scenarios(draw):
    span = draw(st.sampled_from(SPANS))
    grace = draw(st.sampled_from([0, 60, 300, 1800]))
    provisional_grace = draw(st.sampled_from([0, 5, 45, 120, 7200]))  # at or above the grace: none provisional

    def points(earliest: int = 0, latest: int = span - 1):
        return st.tuples(
            st.integers(0, 3),  # series index
            st.integers(earliest, latest),  # second offset
            st.floats(-1000, 1000, allow_nan=False, allow_infinity=False).map(lambda value: round(value, 3)),
        )

    # Refreshes happen between batches only, so the last batch always leaves points not yet rolled up.
    # Some near the end of the data, so the grace window holds points (provisional minutes, dirty marks).
    refresh = st.integers(0, span + 7200) | st.integers(max(0, span - 900), span + 900)
    refreshes = draw(st.lists(refresh, min_size=1, max_size=2))
    if draw(st.booleans()):
        refreshes.sort()  # else the second refresh may see an earlier "now" (clocks of two workers)
    if draw(st.booleans()):
        refreshes[-1] = span + 7200  # everything old enough is materialized: the tiers carry the answer
    batches = [draw(st.lists(points(), min_size=1, max_size=150))]
    for previous in refreshes[:2]:
        # A batch after a refresh may land in the minutes it left provisional (and mark them dirty).
        earliest, latest = max(0, previous - grace - 60), min(span - 1, previous)
        near = points(earliest, latest) if earliest <= latest else points()
        batches.append(draw(st.lists(points() | near, min_size=1, max_size=150)))
    while len(batches) < 3:
        batches.append(draw(st.lists(points(), min_size=1, max_size=150)))
    if span == SPAN_SECONDS and draw(st.booleans()):
        bucket = draw(st.sampled_from([3600, 86_400, 172_800]))
    else:
        bucket = draw(st.sampled_from(BUCKETS))
    length = draw(st.integers(1, span + 3600))
    if length / bucket > 5000:
        length = bucket * 5000
    if draw(st.booleans()):
        start = draw(st.integers(-3600, span))
    else:  # like a dashboard: a range that ends just after the newest rollup
        start = refreshes[-1] + draw(st.integers(0, 3600)) - length
    return {
        "batches": batches,
        "refreshes": refreshes,
        "grace": grace,
        "provisional_grace": provisional_grace,
        "bucket": bucket,
        "start": start,
        "end": start + length,
        "aggregation": draw(st.sampled_from(AGGREGATIONS)),
        "group_by": draw(st.sampled_from([(), ("facility",)])),
        "devices": draw(st.none() | st.sets(st.integers(0, 3), min_size=1, max_size=3)),
        # A facility filter selects whole label groups: the label rollups answer those.
        "facility": draw(st.none() | st.sampled_from(["f0", "f1"])),
        # Raw points found by series id (primary key) or by time and the group map: both must answer the same.
        "raw_by_time": draw(st.booleans()),
    }


def _reset_storage() -> None:
    # TRUNCATE is not a write the query cache hears about (in production data only changes through
    # writes and retention, which invalidate it): forget cached buckets with it.
    cache.clear()
    with connection.cursor() as cursor:
        cursor.execute(
            "TRUNCATE points, points_1m, points_1h, points_1d, points_1m_labels, points_1h_labels, points_1d_labels, "
            "points_1m_delta, points_1m_labels_delta, points_1h_labels_delta, "
            "points_1d_labels_delta"
        )
        cursor.execute("TRUNCATE storage_rollup_dirty")
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [BASE])


def _moment(series_index: int, offset: int) -> datetime:
    # Distinct times across series (a few ms apart) keep "last" well defined within a group.
    return BASE + timedelta(seconds=offset, milliseconds=series_index)


# Every provisional path at once, whatever the random draw: a refresh leaves minutes 10-14 provisional, a
# batch marks minutes 10 and 12, the next refresh moves the watermark past 10 (recomputing it) and
# recomputes 12 and rolls up minute 16 as far as 16:05, and the last batch marks 11 and 15, which the final
# query must read raw.
PROVISIONAL_PATHS = {
    "batches": [
        [(index, offset, float(offset % 7 + index)) for index in range(4) for offset in (10, 200, 500, 700, 850)],
        [(0, 650, 100.0), (1, 720, -100.0), (2, 100, 5.0), (1, 962, 3.0), (3, 967, 4.0)],
        [(3, 700, 42.0), (0, 930, 7.0), (2, 955, 1.5)],
    ],
    "refreshes": [905, 970],
    "grace": 300,
    "provisional_grace": 5,
    "bucket": 60,
    "start": 0,
    "end": 1000,
    "aggregation": "avg",
    "group_by": ("facility",),
    "devices": None,
    "facility": None,
    "raw_by_time": False,
    "expect_provisional_paths": True,
}


@pytest.mark.django_db
@pytest.mark.timeout(900)  # 300 examples: about 3 minutes alone, several times that on a busy machine
@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
@example(scenario=PROVISIONAL_PATHS)
def test_rollup_path_equals_raw_answer(scenario, django_settings_for_property, django_capture_on_commit_callbacks):
    django_settings_for_property.STORAGE_ROLLUP_GRACE_SECONDS = scenario["grace"]
    django_settings_for_property.STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS = scenario["provisional_grace"]
    _reset_storage()
    series_cache_clear()
    source = source_create(slug="prop") if not _source_exists() else _source()
    labels = {index: {"device": f"d{index}", "facility": f"f{index % 2}"} for index in range(4)}
    ids = {index: series_create(source=source, metric="m", **labels[index]) for index in range(4)}
    truth: dict[tuple[int, datetime], float] = {}
    backend = backend_for()
    filters = ()
    selected_indexes = set(range(4))
    if scenario["devices"] is not None:
        selected_indexes = scenario["devices"]
        filters = (LabelFilter("device", "in", tuple(f"d{index}" for index in sorted(selected_indexes))),)
    if scenario["facility"] is not None:
        selected_indexes = {index for index in selected_indexes if labels[index]["facility"] == scenario["facility"]}
        filters = (*filters, LabelFilter("facility", "eq", (scenario["facility"],)))
    spec = QuerySpec(
        metric="m",
        start=BASE + timedelta(seconds=scenario["start"]),
        end=BASE + timedelta(seconds=scenario["end"]),
        aggregation=scenario["aggregation"],
        bucket_seconds=scenario["bucket"],
        group_by=scenario["group_by"],
        filters=filters,
        fill="none",
        max_points=10_000,
        limit=100,
    )
    last = len(scenario["batches"]) - 1
    recomputed = 0
    for batch_number, batch in enumerate(scenario["batches"]):
        if batch_number == last:
            # Ask once before the last batch (this also fills the query cache), then again after it:
            # late points in it must invalidate cached buckets, new ones extend the tail.
            _check(spec, scenario, ids, labels, selected_indexes, truth)
        rows = [(ids[index], _moment(index, offset), value) for index, offset, value in batch]
        # The test runs in a transaction: run what the write schedules for after its commit.
        with django_capture_on_commit_callbacks(execute=True):
            points_write(points=rows)
        for series_id, moment, value in rows:
            truth[(series_id, moment)] = value
        if batch_number < len(scenario["refreshes"]):
            refreshed = backend.rollup_refresh(now=BASE + timedelta(seconds=scenario["refreshes"][batch_number]))
            recomputed += refreshed["dirty_minutes_recomputed"]
    event(f"a refresh recomputed dirty provisional minutes: {recomputed > 0}")
    paths = _check(spec, scenario, ids, labels, selected_indexes, truth)
    if scenario.get("expect_provisional_paths"):
        assert recomputed == 2
        assert paths == {
            "provisional minutes read": True,
            "dirty minutes read raw": True,
            "part of the minute in progress read": True,
        }


def _check(spec, scenario, ids, labels, selected_indexes, truth) -> None:
    with connection.cursor() as cursor:
        pending = backend_for().deltas_pending(cursor)
    event(f"late points' deltas read beside the rollups: {bool(pending)}")
    share = engine.RAW_BY_TIME_MIN_SHARE
    # Test databases hold many series from other tests: force the choice either way.
    engine.RAW_BY_TIME_MIN_SHARE = 10**9 if scenario["raw_by_time"] else 0
    try:
        result = query_execute(spec=spec, principal=_principal())
    finally:
        engine.RAW_BY_TIME_MIN_SHARE = share
    event(f"label rollups read: {result.label_rollups}")  # --hypothesis-show-statistics: how often each path ran
    paths = _provisional_paths(result)
    for name, taken in paths.items():
        event(f"{name}: {taken}")
    expected = oracle_answer(
        points=truth,
        series_labels={ids[index]: labels[index] for index in range(4)},
        selected={ids[index] for index in selected_indexes},
        aggregation=spec.aggregation,
        start=spec.start,
        end=spec.end,
        bucket_seconds=scenario["bucket"],
        group_by=spec.group_by,
    )
    got = {}
    for item in result.series:
        if spec.group_by:
            key = tuple(item["labels"].get(label) for label in spec.group_by)
        else:
            key = (ids[int(item["labels"]["device"][1:])],)
        got[key] = {parse_iso(moment): value for moment, value in item["points"]}
    if not selected_indexes:  # the filters contradict each other: nothing is selected, nothing answered
        assert result.series == []
        return
    assert result.bucket_seconds == scenario["bucket"]
    for key in set(got) | set(expected):
        buckets = got.get(key, {})
        assert buckets.keys() == expected.get(key, {}).keys(), (key, result.tier, result.cached_buckets)
        for moment, value in buckets.items():
            assert close(value, expected[key][moment]), (key, moment, value, expected[key][moment], result.tier)
    return paths


def _provisional_paths(result) -> dict[str, bool]:
    """Whether the query read provisional minutes from the 1-minute tier, and dirty ones from raw points."""
    backend = backend_for()
    with connection.cursor() as cursor:
        provisional = backend.provisional_rollups(cursor)
    watermark = backend.watermark()
    dirty = set(provisional[1]) if provisional is not None else set()
    return {
        "provisional minutes read": any(
            segment.tier is TIER_1M and segment.end > watermark for segment in result.segments
        ),
        "dirty minutes read raw": any(segment.tier is None and segment.start in dirty for segment in result.segments),
        "part of the minute in progress read": any(
            segment.tier is TIER_1M and segment.end.second != 0 for segment in result.segments
        ),
    }


def _source_exists() -> bool:
    from apps.sources.models import Source

    return Source.objects.filter(slug="prop").exists()


def _source():
    from apps.sources.models import Source

    return Source.objects.get(slug="prop")


def _principal():
    user, _ = get_user_model().objects.get_or_create(username="property")
    # A member of the organisation that owns the test sources, so the data scope lets it read them.
    Membership.objects.get_or_create(organization=organization_get(), user=user)
    return user


@pytest.fixture
def django_settings_for_property(settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    return settings
