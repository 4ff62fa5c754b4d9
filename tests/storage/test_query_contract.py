"""POST /api/v1/query: a bucket is a minimum interval, reductions equal the same computation from raw points,
and a query for what has no data yet answers an empty result."""

from __future__ import annotations

import math
from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.access.services import api_token_create
from apps.storage.backends import backend_for
from apps.storage.policies import DataScope, Grant, data_scope_provider_get, data_scope_provider_set
from apps.storage.query.spec import CALCULATIONS, COMBINATIONS
from tests.storage.factories import points_store, series_create, source_create

BUCKET = timedelta(minutes=5)
NOW = datetime.now(UTC)
T0 = datetime.fromtimestamp((NOW - timedelta(hours=4)).timestamp() // 300 * 300, UTC)  # a 5-minute boundary
END = T0 + timedelta(hours=3)


def _raw_points() -> dict[str, list[tuple[datetime, float]]]:
    """Three devices: d0 every minute, d1 with gaps, d2 only in the first hour (its last buckets are empty)."""
    return {
        "d0": [(T0 + timedelta(minutes=m), 10.0 + (m * 7) % 13) for m in range(180)],
        "d1": [(T0 + timedelta(minutes=m, seconds=20), -3.5 + m * 0.25) for m in range(180) if m % 7 not in (3, 4)],
        "d2": [(T0 + timedelta(minutes=m), 100.0 - m) for m in range(60)],
    }


@pytest.fixture
def line(db, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [T0])
    source = source_create(slug="line")
    for device, points in _raw_points().items():
        series_id = series_create(
            source=source, metric="power", device=device, facility="f2" if device == "d2" else "f1"
        )
        points_store(series_id, points)
    # Half the range rolled up: the answer mixes tiers and raw points and must not show it.
    backend_for().rollup_refresh(now=T0 + timedelta(minutes=90))
    return source


@pytest.fixture
def token(user):
    return api_token_create(user=user, name="api")[1]


def _post(api_client, token, body):
    return api_client.post("/api/v1/query", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


# a) A bucket is a minimum interval ---------------------------------------------------------------------------


def test_a_bucket_too_fine_for_the_budget_is_widened_and_the_answer_says_so(api_client, line, token):
    response = _post(api_client, token, {"metric": "power", "bucket": "1m", "start": "-30d", "max_points": 500})
    assert response.status_code == 200, response.content
    body = response.json()
    # 30 days / 500 points = 5,184 s: the smallest nice bucket that fits is 2 hours.
    assert (body["bucket"], body["bucket_requested"], body["downsampled"]) == ("2h", "1m", True)
    assert all(len(series["points"]) <= 500 for series in body["series"])
    assert len(body["series"]) == 3


def test_a_bucket_that_fits_is_used_as_asked(api_client, line, token):
    body = _post(api_client, token, {"metric": "power", "bucket": "1m", "start": "-1h", "max_points": 100}).json()
    assert (body["bucket"], body["bucket_requested"], body["downsampled"]) == ("1m", "1m", False)
    auto = _post(api_client, token, {"metric": "power", "start": "-1h", "max_points": 100}).json()
    assert (auto["bucket"], auto["bucket_requested"]) == ("1m", None)


def test_an_exact_bucket_is_used_exactly_or_refused(api_client, line, token):
    exact = _post(api_client, token, {"metric": "power", "bucket": "1m", "start": "-1d", "exact_bucket": True})
    assert exact.status_code == 200
    assert exact.json()["bucket"] == "1m"  # 1,440 buckets: over the default budget of 1,000, but exact
    assert len(exact.json()["series"][0]["points"]) in (1440, 1441)
    refused = _post(
        api_client, token, {"metric": "power", "bucket": "1m", "start": "-30d", "exact_bucket": True, "max_points": 500}
    )
    assert refused.status_code == 400
    assert refused.json()["field"] == "bucket"
    assert "43,200 points per series" in refused.json()["detail"]


# b) Reductions ------------------------------------------------------------------------------------------------


def _bucketed(points: list[tuple[datetime, float]], aggregation: str) -> list[float | None]:
    """The series' 5-minute buckets over [T0, END), computed here from the raw points."""
    count = int((END - T0) / BUCKET)
    buckets: list[list[float]] = [[] for _ in range(count)]
    for moment, value in points:
        buckets[int((moment - T0) / BUCKET)].append(value)
    operations = {"sum": sum, "max": max, "count": len, "avg": lambda values: sum(values) / len(values)}
    return [float(operations[aggregation](values)) if values else None for values in buckets]


def _calculation(name: str, values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    if name == "count":
        return float(len(present))
    if name == "last":
        return values[-1]
    if not present:
        return None
    return {
        "last_not_null": present[-1],
        "first": present[0],
        "mean": sum(present) / len(present),
        "sum": sum(present),
        "min": min(present),
        "max": max(present),
        "delta": present[-1] - present[0],
        "range": max(present) - min(present),
    }[name]


def _combination(name: str, values: list[float | None]) -> float | None:
    present = [value for value in values if value is not None]
    if not present:
        return None
    return {"sum": sum, "min": min, "max": max, "mean": lambda items: sum(items) / len(items)}[name](present)


def _close(actual: float | None, expected: float | None) -> bool:
    if actual is None or expected is None:
        return actual is expected
    return math.isclose(actual, expected, rel_tol=1e-9, abs_tol=1e-9)


@pytest.mark.parametrize("aggregation", ["sum", "max", "avg"])
def test_every_reduction_equals_the_same_computation_from_raw_points(api_client, line, token, aggregation):
    raw = _raw_points()
    per_device = {device: _bucketed(points, aggregation) for device, points in raw.items()}
    for calculation in CALCULATIONS:
        for combination in COMBINATIONS:
            body = {
                "metric": "power",
                "aggregation": aggregation,
                "bucket": "5m",
                "start": T0.isoformat(),
                "end": END.isoformat(),
                "reduce": {"calculation": calculation, "combination": combination},
            }
            response = _post(api_client, token, body)
            assert response.status_code == 200, response.content
            answer = response.json()
            assert answer["series"] == []
            assert answer["reduce"] == {"calculation": calculation, "combination": combination}
            calculated = {device: _calculation(calculation, values) for device, values in per_device.items()}
            if combination == "none":
                got = {item["labels"]["device"]: item["value"] for item in answer["reduced"]}
                assert all(item["source"] == "line" for item in answer["reduced"])
                assert got.keys() == calculated.keys()
                for device, expected in calculated.items():
                    assert _close(got[device], expected), (calculation, device, got[device], expected)
            else:
                assert [item["labels"] for item in answer["reduced"]] == [{}]
                expected = _combination(combination, list(calculated.values()))
                value = answer["reduced"][0]["value"]
                assert _close(value, expected), (calculation, combination, value, expected)


def test_the_sum_of_a_sum_is_the_total_and_count_counts_points(api_client, line, token):
    raw = _raw_points()
    window = {"start": T0.isoformat(), "end": END.isoformat(), "bucket": "5m", "metric": "power"}
    total = _post(
        api_client, token, {**window, "aggregation": "sum", "reduce": {"calculation": "sum", "combination": "sum"}}
    )
    assert _close(total.json()["reduced"][0]["value"], sum(value for points in raw.values() for _, value in points))
    counted = _post(
        api_client, token, {**window, "aggregation": "count", "reduce": {"calculation": "sum", "combination": "sum"}}
    )
    assert counted.json()["reduced"][0]["value"] == sum(len(points) for points in raw.values())
    buckets = _post(
        api_client, token, {**window, "aggregation": "count", "reduce": {"calculation": "count", "combination": "max"}}
    )
    assert buckets.json()["reduced"][0]["value"] == 36  # d0 has a point in every one of the 36 buckets


def test_a_grouped_reduction_has_one_value_per_group(api_client, line, token):
    body = {
        "metric": "power",
        "aggregation": "sum",
        "bucket": "5m",
        "start": T0.isoformat(),
        "end": END.isoformat(),
        "group_by": ["facility"],
        "reduce": {"calculation": "sum", "combination": "none"},
    }
    reduced = _post(api_client, token, body).json()["reduced"]
    raw = _raw_points()
    assert [item["labels"] for item in reduced] == [{"facility": "f1"}, {"facility": "f2"}]
    assert _close(reduced[0]["value"], sum(value for device in ("d0", "d1") for _, value in raw[device]))
    assert _close(reduced[1]["value"], sum(value for _, value in raw["d2"]))


def test_fill_previous_carries_into_the_last_bucket(api_client, line, token):
    window = {"metric": "power", "filters": {"device": "d2"}, "bucket": "5m", "start": T0.isoformat()}
    window["end"] = END.isoformat()
    plain = _post(api_client, token, {**window, "reduce": {"calculation": "last"}}).json()["reduced"]
    assert plain[0]["value"] is None  # d2's last bucket is empty
    filled = _post(api_client, token, {**window, "fill": "previous", "reduce": {"calculation": "last"}}).json()
    assert _close(filled["reduced"][0]["value"], sum(100.0 - m for m in range(55, 60)) / 5)


# c) No data yet is an empty answer ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "body",
    [
        {"metric": "not_written_yet"},
        {"metric": "power", "source": "no-such-source"},
        {"metric": "power", "filters": {"device": "d9"}},
    ],
)
def test_what_has_no_data_yet_answers_an_empty_result(api_client, line, token, body):
    response = _post(api_client, token, body)
    assert response.status_code == 200, response.content
    assert response.json()["series"] == []
    reduced = _post(api_client, token, {**body, "reduce": {"calculation": "sum", "combination": "sum"}}).json()
    assert (reduced["series"], reduced["reduced"]) == ([], [{"labels": {}, "value": None}])
    per_series = _post(api_client, token, {**body, "reduce": {"calculation": "sum"}}).json()
    assert per_series["reduced"] == []


def test_a_source_you_may_not_read_looks_exactly_like_one_that_does_not_exist(api_client, line, token):
    original = data_scope_provider_get()
    data_scope_provider_set(lambda principal: DataScope.of([Grant.build(source_ids=[line.pk + 1000])]))
    try:
        body = {"metric": "power", "start": T0.isoformat(), "end": END.isoformat()}
        hidden = _post(api_client, token, {**body, "source": "line"})
        missing = _post(api_client, token, {**body, "source": "no-such-source"})
    finally:
        data_scope_provider_set(original)
    assert hidden.status_code == missing.status_code == 200
    assert hidden.json() == missing.json()


def test_a_malformed_spec_is_still_400_naming_the_field(api_client, line, token):
    response = _post(api_client, token, {"metric": "power", "filters": {"device": {"like": "d%"}}})
    assert (response.status_code, response.json()["field"]) == (400, "filters.device")
