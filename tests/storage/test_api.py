"""POST /api/v1/query and the series browsing endpoints: the public contract and its errors."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.access.services import api_token_create
from apps.storage.backends import backend_for
from tests.storage.factories import points_store, series_create, source_create

NOW = datetime.now(UTC).replace(second=0, microsecond=0)


@pytest.fixture
def plant(db, settings):
    settings.STORAGE_ROLLUP_GRACE_SECONDS = 0
    start = NOW - timedelta(hours=3)
    with connection.cursor() as cursor:
        cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s, provisional = NULL", [start])
    source = source_create(slug="plant")
    for number in range(4):
        series_id = series_create(
            source=source, metric="temperature", device=f"d{number}", facility=f"f{number % 2 + 1}"
        )
        points_store(series_id, [(start + timedelta(minutes=m), 20.0 + number) for m in range(180)])
    backend_for().rollup_refresh(now=NOW - timedelta(hours=1))
    return source


@pytest.fixture
def token(user):
    return api_token_create(user=user, name="api")[1]


def _post(api_client, token, body):
    return api_client.post("/api/v1/query", body, format="json", HTTP_AUTHORIZATION=f"Bearer {token}")


def test_documented_request_gets_documented_response(api_client, plant, token):
    response = _post(
        api_client,
        token,
        {
            "source": "plant",
            "metric": "temperature",
            "filters": {"facility": "f1", "device": ["d0", "d2"]},
            "aggregation": "avg",
            "start": "-2h",
            "end": "now",
            "bucket": "1m",
            "group_by": ["facility"],
        },
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert body["tier"] == "1m"
    assert body["bucket"] == "1m"
    assert len(body["series"]) == 1
    series = body["series"][0]
    assert series["labels"] == {"facility": "f1"}
    moment, _ = series["points"][0]
    assert moment.endswith("Z")
    assert datetime.fromisoformat(moment.replace("Z", "+00:00")) >= NOW - timedelta(hours=2, minutes=1)
    values = [value for _, value in series["points"] if value is not None]
    assert values
    assert values == pytest.approx([21.0] * len(values))  # d0 = 20, d2 = 22
    assert len(series["points"]) in (120, 121)


def test_session_auth_works_too(api_client, plant, user):
    api_client.force_login(user)
    response = api_client.post("/api/v1/query", {"metric": "temperature", "start": "-1h"}, format="json")
    assert response.status_code == 200
    assert len(response.json()["series"]) == 4


def test_unauthenticated_is_refused(api_client, plant):
    response = api_client.post("/api/v1/query", {"metric": "temperature"}, format="json")
    assert response.status_code == 401


@pytest.mark.parametrize(
    ("body", "field", "fragment"),
    [
        ({}, "metric", "required"),
        ({"metric": "temperature", "bucket": "500ms"}, "bucket", "smallest bucket is 1s"),
        (
            {"metric": "temperature", "bucket": "1s", "start": "-365d", "exact_bucket": True},
            "bucket",
            "Use a bucket of at least",
        ),
        ({"metric": "temperature", "exact_bucket": True}, "exact_bucket", "give a bucket"),
        ({"metric": "temperature", "exact_bucket": "yes", "bucket": "1m"}, "exact_bucket", "true or false"),
        ({"metric": "temperature", "reduce": "last"}, "reduce", "an object"),
        ({"metric": "temperature", "reduce": {}}, "reduce.calculation", "required"),
        ({"metric": "temperature", "reduce": {"calculation": "median"}}, "reduce.calculation", "use one of"),
        (
            {"metric": "temperature", "reduce": {"calculation": "sum", "combination": "product"}},
            "reduce.combination",
            "use one of",
        ),
        ({"metric": "temperature", "reduce": {"calculation": "sum", "by": "x"}}, "reduce.by", "unknown field"),
        ({"metric": "temperature", "start": "-1h", "end": "-2h"}, "end", "must be after start"),
        ({"metric": "temperature", "start": "yesterday"}, "start", "not a time"),
        ({"metric": "temperature", "aggregation": "median"}, "aggregation", "unknown aggregation"),
        ({"metric": "temperature", "filters": {"device": {"like": "d%"}}}, "filters.device", "unknown operator"),
        ({"metric": "temperature", "filters": {"device": {"regex": "(unclosed"}}}, "filters.device", "invalid"),
        ({"metric": "temperature", "group_by": "facility"}, "group_by", "list of label names"),
        ({"metric": "temperature", "limit": 0}, "limit", "positive"),
        ({"metric": "temperature", "max_points": 10**9}, "max_points", "at most"),
        ({"metric": "temperature", "fill": "zero"}, "fill", "use one of"),
        ({"metric": "temperature", "colour": "red"}, "colour", "unknown field"),
        ({"metric": "temperature", "aggregation": "raw", "group_by": ["facility"]}, "group_by", "cannot be grouped"),
    ],
)
def test_bad_specs_get_400_naming_the_field(api_client, plant, token, body, field, fragment):
    response = _post(api_client, token, body)
    assert response.status_code == 400, response.content
    assert response.json()["field"] == field
    assert fragment in response.json()["detail"]


def test_too_many_series_is_400(api_client, plant, token, settings):
    settings.STORAGE_MAX_SERIES_PER_QUERY = 2
    response = _post(api_client, token, {"metric": "temperature"})
    assert response.status_code == 400
    assert "add filters" in response.json()["detail"]


def test_non_object_body_is_400(api_client, plant, token):
    response = api_client.post("/api/v1/query", [1, 2], format="json", HTTP_AUTHORIZATION=f"Bearer {token}")
    assert response.status_code == 400
    assert response.json()["field"] == "body"


def test_series_list_paginates_and_filters(api_client, plant, user):
    api_client.force_login(user)
    page = api_client.get("/api/v1/series", {"metric": "temperature", "limit": 2}).json()
    assert page["count"] == 4
    assert len(page["results"]) == 2
    assert page["next"]
    assert page["results"][0]["source"] == "plant"
    f2 = api_client.get("/api/v1/series", {"label.facility": "f2"}).json()
    assert sorted(item["labels"]["device"] for item in f2["results"]) == ["d1", "d3"]


def test_metric_and_label_value_pickers(api_client, plant, user):
    api_client.force_login(user)
    assert api_client.get("/api/v1/series/metrics").json() == {"metrics": ["temperature"], "truncated": False}
    values = api_client.get("/api/v1/series/label-values", {"label": "facility", "metric": "temperature"}).json()
    assert values == {"label": "facility", "values": ["f1", "f2"], "truncated": False}
    missing = api_client.get("/api/v1/series/label-values")
    assert missing.status_code == 400
    assert missing.json()["field"] == "label"


def test_the_label_names_picker_lists_every_visible_series_names_and_no_other_organisations(api_client, plant, user):
    # A name only one series carries is listed (not a sample's names), as are the metric's and the source's filters;
    # a series of another organisation, whose labels the user may not see, adds nothing.
    series_create(source=plant, metric="pressure", device="p1", line="l2")
    series_create(source=source_create(slug="elsewhere", organization="other-org"), metric="temperature", zone="z9")
    api_client.force_login(user)
    assert api_client.get("/api/v1/series/label-keys").json() == {
        "labels": ["device", "facility", "line"],
        "truncated": False,
    }
    assert api_client.get("/api/v1/series/label-keys", {"metric": "temperature"}).json()["labels"] == [
        "device",
        "facility",
    ]
    assert api_client.get("/api/v1/series/label-keys", {"source": "plant", "metric": "pressure"}).json() == {
        "labels": ["device", "line"],
        "truncated": False,
    }
    page = api_client.get("/api/v1/series/label-keys", {"limit": 2}).json()
    assert page == {"labels": ["device", "facility"], "truncated": True}
    rest = api_client.get("/api/v1/series/label-keys", {"limit": 2, "offset": 2}).json()
    assert rest == {"labels": ["line"], "truncated": False}
    assert api_client.get("/api/v1/series/label-keys", {"source": "elsewhere"}).json()["labels"] == []
    api_client.logout()
    assert api_client.get("/api/v1/series/label-keys").status_code in (401, 403)


def test_schema_documents_the_query_contract(client):
    schema = client.get("/api/schema/", HTTP_ACCEPT="application/json").json()
    operation = schema["paths"]["/api/v1/query"]["post"]
    assert "200" in operation["responses"]
    assert "400" in operation["responses"]
    assert "/api/v1/series" in schema["paths"]
