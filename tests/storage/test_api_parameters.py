"""Read paths refuse odd text with 400 naming the parameter, never 500; metric existence is exact at any count."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from django.db import connection

from apps.storage.services import series_key, series_resolve
from tests.conftest import api_client_for
from tests.ingestion.factories import source_with_key
from tests.storage.factories import points_store, series_create

pytestmark = pytest.mark.django_db

NUL = "bad\x00value"
SQL_WORDS = ("SELECT", "LINE 1", "storage_series", "sources_source", "::", "psycopg")


@pytest.fixture
def plant(db):
    source, _ = source_with_key(slug="plant")
    now = datetime.now(UTC).replace(second=0, microsecond=0)
    for device in ("d1", "d2"):
        series_id = series_create(source=source, metric="temperature", device=device, facility="f1")
        points_store(series_id, [(now - timedelta(minutes=minute), 20.0) for minute in range(10)])
    return source


def _refused(response, field: str) -> dict:
    assert response.status_code == 400, (response.status_code, response.content)
    body = response.json()
    assert body["field"] == field, body
    assert not any(word in body["detail"] for word in SQL_WORDS), body
    return body


@pytest.mark.parametrize(
    ("path", "params", "field"),
    [
        ("/api/v1/series", {"source": NUL}, "source"),
        ("/api/v1/series", {"metric": NUL}, "metric"),
        ("/api/v1/series", {"label.facility": NUL}, "label.facility"),
        ("/api/v1/series", {"label.fac\x00ility": "f1"}, "label.fac\x00ility"),
        ("/api/v1/series/metrics", {"source": NUL}, "source"),
        ("/api/v1/series/label-keys", {"metric": NUL}, "metric"),
        ("/api/v1/series/label-keys", {"source": NUL}, "source"),
        ("/api/v1/series/label-keys", {"limit": "0"}, "limit"),
        ("/api/v1/series/label-values", {"label": NUL}, "label"),
        ("/api/v1/series/label-values", {"label": "facility", "metric": NUL}, "metric"),
        ("/api/v1/series/label-values", {"label": "facility", "source": NUL}, "source"),
        ("/api/v1/dashboards/", {"q": NUL}, "q"),
        ("/api/v1/dashboards/", {"tag": NUL}, "tag"),
        ("/api/v1/dashboards/", {"folder": NUL}, "folder"),
        ("/api/v1/sources/plant/dead-letters/", {"code": NUL}, "code"),
        ("/api/v1/sources/plant/dead-letters/", {"transport": NUL}, "transport"),
        ("/api/v1/sources/plant/dead-letters/", {"since": NUL}, "since"),
    ],
)
def test_a_nul_character_in_a_read_parameter_is_400_naming_it(editor, plant, path, params, field):
    _refused(api_client_for(editor).get(path, params), field)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"label." + "k" * 101: "v"}, "label." + "k" * 54 + "..."),
        ({"label.facility": "v" * 257}, "label.facility"),
        ({"metric": "m" * 201}, "metric"),
        ({"source": "s" * 202}, "source"),  # "<organization>/<slug>", 100 characters each at most
    ],
)
def test_series_filters_longer_than_anything_stored_are_refused(editor, plant, params, field):
    _refused(api_client_for(editor).get("/api/v1/series", params), field)


def test_picker_label_names_are_bounded(editor, plant):
    client = api_client_for(editor)
    _refused(client.get("/api/v1/series/label-values", {"label": "k" * 101}), "label")
    assert client.get("/api/v1/series/label-values", {"label": "k" * 100}).json()["values"] == []


@pytest.mark.parametrize(
    ("body", "field"),
    [
        ({"metric": NUL}, "metric"),
        ({"metric": "temperature", "source": NUL}, "source"),
        ({"metric": "temperature", "filters": {"device": NUL}}, "filters.device"),
        ({"metric": "temperature", "filters": {"device": [NUL]}}, "filters.device"),
        ({"metric": "temperature", "filters": {"device": {"ne": NUL}}}, "filters.device"),
        ({"metric": "temperature", "filters": {"device": {"regex": NUL}}}, "filters.device"),
        ({"metric": "temperature", "filters": {"dev\x00ice": "d1"}}, "filters.dev\x00ice"),
        ({"metric": "temperature", "group_by": [NUL]}, "group_by"),
        ({"metric": "temperature", "start": NUL}, "start"),
        ({"metric": "m" * 201}, "metric"),
        ({"metric": "temperature", "filters": {"device": "d" * 257}}, "filters.device"),
        ({"metric": "temperature", "filters": {"k" * 101: "d1"}}, "filters." + "k" * 100 + "..."),
    ],
)
def test_a_query_with_odd_text_is_400_naming_the_field(editor, plant, body, field):
    _refused(api_client_for(editor).post("/api/v1/query", body), field)


def test_a_regex_postgresql_refuses_names_the_filter_and_shows_no_sql(editor, plant):
    # Python's re takes named groups; PostgreSQL's regular expressions do not.
    body = {"metric": "temperature", "filters": {"device": {"regex": "(?P<name>d1)"}}}
    refused = _refused(api_client_for(editor).post("/api/v1/query", body), "filters.device")
    assert "regular expression" in refused["detail"]


def test_a_metric_past_the_first_5000_names_is_found(editor, plant):
    names = [f"metric_{number:05d}" for number in range(6_000)]
    series_resolve(keys=[series_key(source_id=plant.id, metric=name, labels={"device": "d1"}) for name in names])
    with connection.cursor() as cursor:  # the names a DISTINCT ... LIMIT 5000 scan reads: what the old check saw
        cursor.execute("SELECT DISTINCT metric FROM storage_series LIMIT 5000")
        first = {row[0] for row in cursor.fetchall()}
    beyond = sorted(set(names) - first)[0]
    client = api_client_for(editor)
    # No series matches the filter, so the engine asks whether the metric exists at all.
    response = client.post("/api/v1/query", {"metric": beyond, "filters": {"device": "none"}, "start": "-1h"})
    assert response.status_code == 200, response.content
    assert response.json()["series"] == []
    missing = client.post("/api/v1/query", {"metric": "metric_x", "filters": {"device": "none"}})
    assert (missing.status_code, missing.json()["series"]) == (200, [])  # no data yet: an empty answer


def test_the_metrics_picker_pages_and_says_when_it_truncates(editor, plant):
    names = [f"metric_{number:05d}" for number in range(2_500)]
    series_resolve(keys=[series_key(source_id=plant.id, metric=name, labels={}) for name in names])
    client = api_client_for(editor)
    first = client.get("/api/v1/series/metrics", {"source": "plant"}).json()
    assert (len(first["metrics"]), first["truncated"]) == (1_000, True)
    seen, offset = [], 0
    while True:
        page = client.get("/api/v1/series/metrics", {"source": "plant", "limit": 1_000, "offset": offset}).json()
        seen += page["metrics"]
        offset += 1_000
        if not page["truncated"]:
            break
    assert seen == sorted([*names, "temperature"])
    everything = client.get("/api/v1/series/metrics", {"source": "plant", "limit": 10_000}).json()
    assert (len(everything["metrics"]), everything["truncated"]) == (2_501, False)
    _refused(client.get("/api/v1/series/metrics", {"limit": 10_001}), "limit")


def test_the_label_values_picker_says_when_it_truncates(editor, plant):
    keys = [series_key(source_id=plant.id, metric="load", labels={"device": f"x{n:04d}"}) for n in range(1_200)]
    series_resolve(keys=keys)
    client = api_client_for(editor)
    page = client.get("/api/v1/series/label-values", {"label": "device", "metric": "load"}).json()
    assert (len(page["values"]), page["truncated"]) == (1_000, True)
    rest = client.get("/api/v1/series/label-values", {"label": "device", "metric": "load", "offset": 1_000}).json()
    assert (len(rest["values"]), rest["truncated"]) == (200, False)


def test_a_sum_that_overflows_is_400_naming_the_aggregation(editor, plant):
    series_id = series_create(source=plant, metric="huge", device="d1")
    # Minutes 10 and 11 of the previous hour, inside the last two hours: always one hour bucket (five minutes ago and
    # the minute after straddled an hour once an hour, and each hour's sum was then finite).
    moment = (datetime.now(UTC) - timedelta(hours=1)).replace(minute=10, second=0, microsecond=0)
    # A minute apiece: each minute's own sum is finite; the hour's is not.
    points_store(series_id, [(moment, 1.7e308), (moment + timedelta(minutes=1), 1.7e308)])
    body = {"metric": "huge", "aggregation": "sum", "bucket": "1h", "start": "-2h"}
    refused = _refused(api_client_for(editor).post("/api/v1/query", body), "aggregation")
    assert "overflows" in refused["detail"]
