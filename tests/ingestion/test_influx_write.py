"""InfluxDB-compatible writes: real influxdb-client against daphne, v1 options, and InfluxDB's error format."""

from __future__ import annotations

import base64
from datetime import UTC, datetime

import pytest
from influxdb_client import InfluxDBClient, Point, WritePrecision
from influxdb_client.client.exceptions import InfluxDBError
from influxdb_client.client.write_api import SYNCHRONOUS

from apps.access.services import api_token_create
from apps.ingestion.models import DeadLetter
from tests.factories import user_create
from tests.ingestion.factories import source_with_key, stored_points

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_NS = 1767225600 * 10**9


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_official_influxdb_client_writes_and_the_data_is_queryable(daphne_server):
    source, key = source_with_key(slug="telegraf")
    points = [
        Point("cpu").tag("host", "h1").tag("region", "eu west").field("usage_user", 12.5).field("cores", 8)
        .field("up", True).field("note", "text is not a number").time(T0, WritePrecision.S),
        Point("cpu").tag("host", "h2").field("usage_user", 7.25).time(T0, WritePrecision.S),
        Point("mem").tag("host", "h1").field("value", 1024.0).time(T0, WritePrecision.S),
    ]  # fmt: skip
    with InfluxDBClient(url=f"http://{daphne_server}", token=key, org="ignored") as client:
        assert client.ping()
        client.write_api(write_options=SYNCHRONOUS).write(bucket="telegraf", record=points, write_precision="s")
        with pytest.raises(InfluxDBError) as refused:
            client.write_api(write_options=SYNCHRONOUS).write(bucket="elsewhere", record=points[:1])
        assert refused.value.response.status == 404
    assert stored_points(source=source) == [
        ("cpu.cores", {"host": "h1", "region": "eu west"}, T0, 8.0, 1),
        ("cpu.up", {"host": "h1", "region": "eu west"}, T0, 1.0, 1),
        ("cpu.usage_user", {"host": "h1", "region": "eu west"}, T0, 12.5, 1),
        ("cpu.usage_user", {"host": "h2"}, T0, 7.25, 1),
        ("mem", {"host": "h1"}, T0, 1024.0, 1),
    ]
    # Queryable through the public query API, with a personal API token.
    import json
    import urllib.request

    user = user_create(username="querier")
    _, token = api_token_create(user=user, name="test")
    request = urllib.request.Request(
        f"http://{daphne_server}/api/v1/query",
        data=json.dumps({"source": "telegraf", "metric": "cpu.usage_user", "aggregation": "max",
                         "start": "2025-12-31T23:00:00Z", "end": "2026-01-01T01:00:00Z", "bucket": "1h"}).encode(),
        headers={"Authorization": f"Bearer {token}", "Content-Type": "application/json"},
    )  # fmt: skip
    with urllib.request.urlopen(request, timeout=10) as response:
        body = json.loads(response.read())
    values = sorted(point[1] for series in body["series"] for point in series["points"] if point[1] is not None)
    assert values == [7.25, 12.5]


pytestmark = pytest.mark.django_db


def test_v2_partial_write_stores_good_lines_and_answers_400_in_influx_format(client):
    source, key = source_with_key(slug="plant")
    body = f"m,device=d1 t=1 {T0_NS}\nm,device=d2 t= {T0_NS}\nm,device=d3 t=3 {T0_NS}\n"
    response = client.post(
        "/api/v2/write?bucket=plant&org=x", data=body, content_type="text/plain",
        headers={"Authorization": f"Token {key}"},
    )  # fmt: skip
    assert response.status_code == 400
    error = response.json()
    assert error["code"] == "invalid"
    assert error["message"].startswith("partial write: ")
    assert "m,device=d2 t=" in error["message"]
    assert [labels["device"] for _, labels, *_ in stored_points(source=source)] == ["d1", "d3"]
    letter = DeadLetter.objects.get(source=source)
    assert (letter.record_index, letter.raw, letter.context) == (1, f"m,device=d2 t= {T0_NS}", {"precision": "ns"})


def test_v2_success_is_204_and_precision_scales_timestamps(client):
    source, key = source_with_key(slug="plant")
    response = client.post(
        "/api/v2/write?bucket=plant&precision=ms", data=f"m t=1.5 {T0_NS // 10**6}", content_type="text/plain",
        headers={"Authorization": f"Token {key}"},
    )  # fmt: skip
    assert response.status_code == 204
    assert stored_points(source=source) == [("m.t", {}, T0, 1.5, 1)]


@pytest.mark.parametrize(
    ("auth", "query"),
    [
        ("token", ""),
        ("basic", ""),
        (None, "&u=agent&p={key}"),
    ],
)
def test_v1_write_accepts_token_basic_and_query_credentials(client, auth, query):
    source, key = source_with_key(slug="plant")
    headers = {}
    if auth == "token":
        headers["Authorization"] = f"Token {key}"
    elif auth == "basic":
        headers["Authorization"] = "Basic " + base64.b64encode(f"agent:{key}".encode()).decode()
    response = client.post(
        f"/write?db=plant&precision=s{query.format(key=key)}", data=f"m,host=a v=2i {T0_NS // 10**9}",
        content_type="text/plain", headers=headers,
    )  # fmt: skip
    assert response.status_code == 204, response.content
    assert stored_points(source=source) == [("m.v", {"host": "a"}, T0, 2.0, 1)]


def test_v1_errors_use_the_error_key(client):
    _, key = source_with_key(slug="plant")
    unauthorised = client.post("/write?db=plant", data="m v=1", content_type="text/plain")
    assert unauthorised.status_code == 401
    assert set(unauthorised.json()) == {"error"}
    missing_db = client.post("/write?db=nope", data="m v=1", content_type="text/plain",
                             headers={"Authorization": f"Token {key}"})  # fmt: skip
    assert missing_db.status_code == 404
    assert missing_db.json() == {"error": 'database not found: "nope"'}


def test_v2_unknown_token_is_401_in_influx_format(client):
    source_with_key(slug="plant")
    response = client.post("/api/v2/write?bucket=plant", data="m v=1", content_type="text/plain",
                           headers={"Authorization": "Token swk_nope"})  # fmt: skip
    assert response.status_code == 401
    assert response.json()["code"] == "unauthorized"


def test_invalid_precision_is_400_and_nothing_is_kept(client):
    source, key = source_with_key(slug="plant")
    response = client.post("/api/v2/write?bucket=plant&precision=fortnights", data="m v=1",
                           content_type="text/plain", headers={"Authorization": f"Token {key}"})  # fmt: skip
    assert response.status_code == 400
    assert "precision" in response.json()["message"]
    assert not DeadLetter.objects.filter(source=source).exists()


def test_ping(client):
    response = client.get("/ping")
    assert response.status_code == 204
    assert response["X-Influxdb-Version"]
