"""The query engine on TimescaleDB gives the answers computed from raw points (what the plain backend gives).

A fixed scenario that goes through every tier and the raw tail, and the property of
tests/storage/test_rollup_property.py with fewer examples (PGlite is slow, and each refresh here also refreshes the
label tiers, which grouped scenarios read). TimescaleDB's real-time
aggregation covers points newer than each aggregate's watermark; points written below it after a
refresh (late points, replaced values) count once the next refresh has run, so the property refreshes
once more, at the time of the scenario's latest refresh, before it queries.
"""

from __future__ import annotations

from datetime import datetime, timedelta

import pytest
from django.utils import timezone
from hypothesis import HealthCheck, given, settings

from apps.sources.models import Source
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import LabelFilter, QuerySpec
from apps.storage.services import points_write, series_cache_clear
from apps.storage.tiers import bucket_floor
from tests.storage.factories import series_create, source_create
from tests.storage.oracle import close, oracle_answer, parse_iso
from tests.storage.test_rollup_property import scenarios
from tests.timescaledb.helpers import storage_reinstall

# Relative to now, so no retention drops the data, whenever the tests run: whole weeks (and pairs of days) from the
# buckets' origin, as the property's fixed date was.
T0 = bucket_floor(timezone.now() - timedelta(days=20), 14 * 86_400)
BASE = T0 - timedelta(days=14)
DEVICES = {f"d{number}": {"device": f"d{number}", "facility": f"f{number % 2 + 1}"} for number in range(4)}


def _answer(result, group_by: tuple[str, ...], ids: dict[str, int]) -> dict[tuple, dict[datetime, float]]:
    answer = {}
    for item in result.series:
        labels = item["labels"]
        key = tuple(labels.get(label) for label in group_by) if group_by else (ids[labels["device"]],)
        answer[key] = {parse_iso(moment): point for moment, point in item["points"] if point is not None}
    return answer


def _assert_matches(got: dict, expected: dict, context) -> None:
    assert set(got) >= set(expected), context
    for key, buckets in got.items():
        assert buckets.keys() == expected.get(key, {}).keys(), (key, context)
        for moment, point in buckets.items():
            assert close(point, expected[key][moment]), (key, moment, point, expected[key][moment], context)


@pytest.fixture
def plant(tsdb):
    """Four devices in two facilities: a point every 50 s for 3 days, rolled up to T0 + 2 days 5 hours.

    Two days' points are refreshed, the rest is answered by real-time aggregation; one late point
    and one replaced value are refreshed in, and one late point is written after the last refresh
    at a time the aggregates have not materialized yet.
    """
    source = source_create(slug="plant")
    ids = {name: series_create(source=source, metric="temperature", **labels) for name, labels in DEVICES.items()}
    truth: dict[tuple[int, datetime], float] = {}

    def write(rows):
        points_write(points=rows)
        truth.update({(series_id, moment): point for series_id, moment, point in rows})

    step, n = timedelta(seconds=50), 3 * 86_400 // 50
    for number, series_id in enumerate(ids.values()):
        # Series are a few milliseconds apart, so "last" across series is well defined (as in the oracle).
        offset = timedelta(milliseconds=number)
        write([(series_id, T0 + step * index + offset, float((index * 7 + number * 13) % 97)) for index in range(n)])
    tsdb.rollup_refresh(now=T0 + timedelta(days=2, hours=5))
    late = T0 + timedelta(hours=3, seconds=5)
    replaced = T0 + timedelta(hours=4, milliseconds=2)  # an existing point of d2
    write([(ids["d1"], late, 500.0), (ids["d2"], replaced, -500.0)])
    tsdb.rollup_refresh(now=T0 + timedelta(days=2, hours=5))
    write([(ids["d3"], T0 + timedelta(days=2, hours=7, seconds=1), 250.0)])  # newer than the watermark
    return {"ids": ids, "truth": truth}


QUERIES = [
    # (aggregation, bucket seconds, start offset, end offset, group_by, devices, expected tier)
    ("sum", 3600, timedelta(0), timedelta(hours=6), (), None, "1h"),
    ("avg", 86_400, timedelta(0), timedelta(days=3), ("facility",), None, "1d"),
    ("last", 86_400, timedelta(hours=-3), timedelta(days=3, hours=2), ("facility",), None, "1d"),
    ("max", 3600, timedelta(days=2), timedelta(days=2, hours=12), (), ("d3",), "1h"),
    ("min", 600, timedelta(hours=1, minutes=3), timedelta(hours=5, seconds=10), (), ("d1", "d2"), "1m"),
    ("count", 7200, timedelta(0), timedelta(days=3), ("facility",), None, "1h"),
    ("avg", 90, timedelta(hours=2), timedelta(hours=4), (), ("d0",), "raw"),
    ("last", 60, timedelta(days=2, hours=6, minutes=59), timedelta(days=2, hours=7, minutes=2), (), None, "1m"),
    ("p90", 3600, timedelta(0), timedelta(hours=5), ("facility",), None, "raw"),
]


@pytest.mark.parametrize("query", QUERIES, ids=[f"{query[0]}-{query[1]}s-{query[6]}" for query in QUERIES])
def test_engine_answers_equal_the_raw_answer(plant, principal, query):
    aggregation, bucket, start, end, group_by, devices, tier = query
    filters = (LabelFilter("device", "in", devices),) if devices else ()
    spec = QuerySpec(metric="temperature", start=T0 + start, end=T0 + end, aggregation=aggregation,
                     bucket_seconds=bucket, group_by=group_by, filters=filters, fill="none",
                     max_points=10_000)  # fmt: skip
    result = query_execute(spec=spec, principal=principal)
    assert result.tier == tier
    assert result.bucket_seconds == bucket
    ids = plant["ids"]
    selected = {ids[name] for name in (devices or ids)}
    if aggregation == "p90":  # percentiles read raw points; the oracle has none, so check the shape only
        assert [item["labels"] for item in result.series] == [{"facility": "f1"}, {"facility": "f2"}]
        assert all(len(item["points"]) == 5 for item in result.series)
        return
    expected = oracle_answer(
        points=plant["truth"], series_labels={ids[name]: DEVICES[name] for name in ids}, selected=selected,
        aggregation=aggregation, start=spec.start, end=spec.end, bucket_seconds=bucket, group_by=group_by,
    )  # fmt: skip
    assert expected, "the query should find points"
    _assert_matches(_answer(result, group_by, ids), expected, (query, result.tier))


def _moment(series_index: int, offset: int) -> datetime:
    return BASE + timedelta(seconds=offset, milliseconds=series_index)  # as tests/storage/test_rollup_property does


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(scenario=scenarios())
def test_rollup_path_equals_raw_answer(scenario, principal):
    backend = storage_reinstall()
    series_cache_clear()
    source = Source.objects.filter(slug="prop").first() or source_create(slug="prop")
    labels = {index: {"device": f"d{index}", "facility": f"f{index % 2}"} for index in range(4)}
    ids = {index: series_create(source=source, metric="m", **labels[index]) for index in range(4)}
    truth: dict[tuple[int, datetime], float] = {}
    for batch_number, batch in enumerate(scenario["batches"]):
        rows = [(ids[index], _moment(index, offset), point) for index, offset, point in batch]
        points_write(points=rows)
        truth.update({(series_id, moment): point for series_id, moment, point in rows})
        if batch_number < len(scenario["refreshes"]):
            backend.rollup_refresh(now=BASE + timedelta(seconds=scenario["refreshes"][batch_number]))
    # The latest refresh: a scenario's refreshes may go back in time (the clocks of two workers).
    backend.rollup_refresh(now=BASE + timedelta(seconds=max(scenario["refreshes"])))

    selected = set(range(4))
    filters = ()
    if scenario["devices"] is not None:
        selected = scenario["devices"]
        filters = (LabelFilter("device", "in", tuple(f"d{index}" for index in sorted(selected))),)
    spec = QuerySpec(metric="m", start=BASE + timedelta(seconds=scenario["start"]),
                     end=BASE + timedelta(seconds=scenario["end"]), aggregation=scenario["aggregation"],
                     bucket_seconds=scenario["bucket"], group_by=scenario["group_by"], filters=filters,
                     fill="none", max_points=10_000, limit=100)  # fmt: skip
    expected = oracle_answer(
        points=truth, series_labels={ids[index]: labels[index] for index in range(4)},
        selected={ids[index] for index in selected}, aggregation=spec.aggregation, start=spec.start, end=spec.end,
        bucket_seconds=scenario["bucket"], group_by=spec.group_by,
    )  # fmt: skip
    result = query_execute(spec=spec, principal=principal)
    assert result.bucket_seconds == scenario["bucket"]
    _assert_matches(_answer(result, spec.group_by, {f"d{index}": ids[index] for index in range(4)}), expected,
                    result.tier)  # fmt: skip
