"""The write lane (apps/ingestion/write_lane.py): the ASGI shortcut answers exactly as Django's full stack does.

Each case is sent twice, once through the lane as daphne calls it (an ASGI application driven by asgiref's
communicator) and once through Django's test client (the full middleware chain and DRF), and both answers must
agree. The lane runs handlers in its own threads with their own connections, so these tests commit.
"""

from __future__ import annotations

import base64
import gzip
import json
import threading
from datetime import UTC, datetime

import pytest
from asgiref.sync import async_to_sync
from asgiref.testing import ApplicationCommunicator
from django.core.asgi import get_asgi_application
from django.db import connection
from django.test import override_settings

from apps.ingestion import write_lane
from apps.ingestion.write_lane import WriteLane
from apps.sources.services import source_set_enabled
from tests.ingestion.factories import source_with_key, stored_points
from tests.waiting import lock_waiters, wait_for

pytestmark = pytest.mark.usefixtures("storage_committed_cleanup")

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_NS = 1767225600 * 10**9


@pytest.fixture
def lane():
    lane = WriteLane(get_asgi_application())
    yield lane
    lane.close()


def lane_post(lane: WriteLane, path: str, body: bytes, headers: dict[str, str], *, method: str = "POST"):
    """(status, headers, body) of one request through the lane, with the body in two chunks as a proxy may send."""
    path, _, query = path.partition("?")
    scope = {
        "type": "http", "asgi": {"version": "3.0"}, "http_version": "1.1", "method": method, "scheme": "http",
        "path": path, "raw_path": path.encode(), "query_string": query.encode(), "root_path": "",
        "headers": [(b"host", b"testserver"), (b"content-length", str(len(body)).encode()),
                    *((name.lower().encode(), value.encode()) for name, value in headers.items())],
        "client": ("127.0.0.1", 5000), "server": ("testserver", 80),
    }  # fmt: skip

    async def exchange():
        communicator = ApplicationCommunicator(lane, scope)
        half = len(body) // 2
        await communicator.send_input({"type": "http.request", "body": body[:half], "more_body": True})
        await communicator.send_input({"type": "http.request", "body": body[half:], "more_body": False})
        start = await communicator.receive_output(timeout=30)
        content = await communicator.receive_output(timeout=30)
        await communicator.wait(timeout=5)
        return start["status"], {k.decode().lower(): v.decode() for k, v in start["headers"]}, content["body"]

    return async_to_sync(exchange)()


def django_post(client, path: str, body: bytes, headers: dict[str, str]):
    content_type = headers.pop("Content-Type", "text/plain")
    response = client.generic("POST", path, body, content_type=content_type, headers=headers)
    return response.status_code, {k.lower(): v for k, v in response.items()}, response.content


def _json_or_text(body: bytes):
    try:
        return json.loads(body)
    except ValueError:
        return body


LINE = f"cpu,host=h1 usage=12.5 {T0_NS}\n".encode()
BAD_LINE = f"cpu,host=h1 usage=12.5 {T0_NS}\ncpu,host=h2 usage= {T0_NS}\n".encode()
RECORDS = json.dumps([{"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 21.5}]).encode()


def _cases(key: str) -> list[tuple[str, bytes, dict[str, str]]]:
    basic = base64.b64encode(f"user:{key}".encode()).decode()
    return [
        ("/api/v2/write?bucket=plant&precision=ns", LINE, {"Authorization": f"Token {key}"}),
        ("/api/v2/write?bucket=plant", BAD_LINE, {"Authorization": f"Token {key}"}),
        ("/api/v2/write?bucket=other", LINE, {"Authorization": f"Token {key}"}),
        ("/api/v2/write?bucket=plant&precision=fortnight", LINE, {"Authorization": f"Token {key}"}),
        ("/api/v2/write?bucket=plant", LINE, {"Authorization": "Token not-a-key"}),
        ("/api/v2/write?bucket=plant", LINE, {}),
        ("/write?db=plant&precision=s", f"cpu,host=h3 usage=1 {T0_NS // 10**9}\n".encode(),
         {"Authorization": f"Basic {basic}"}),
        (f"/write?db=plant&p={key}", LINE, {}),
        ("/write", LINE, {"Authorization": f"Token {key}"}),
        ("/api/v1/sources/plant/ingest", RECORDS,
         {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}),
        ("/api/v1/sources/plant/ingest", gzip.compress(RECORDS),
         {"Authorization": f"Bearer {key}", "Content-Type": "application/json", "Content-Encoding": "gzip"}),
        ("/api/v1/sources/plant/ingest", b"[{", {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}),
        ("/api/v1/sources/other/ingest", RECORDS, {"Authorization": f"Bearer {key}"}),
        ("/api/v1/sources/plant/ingest", b"x" * 2048, {"Authorization": f"Bearer {key}"}),
    ]  # fmt: skip


@override_settings(INGEST_MAX_BODY_BYTES=1024)
def test_the_lane_answers_every_write_as_django_does_and_stores_the_same(lane, client):
    source, key = source_with_key(slug="plant")
    answers = []
    for path, body, headers in _cases(key):
        through_lane = lane_post(lane, path, body, dict(headers))
        stored_by_lane = stored_points(source=source)
        through_django = django_post(client, path, body, dict(headers))
        assert stored_points(source=source) == stored_by_lane  # the second send stored nothing new: idempotent
        assert through_lane[0] == through_django[0], path
        assert _json_or_text(through_lane[2]) == _json_or_text(through_django[2]), path
        for header in ("retry-after", "www-authenticate", "content-type", "x-content-type-options",
                       "x-frame-options", "referrer-policy"):  # fmt: skip
            assert through_lane[1].get(header) == through_django[1].get(header), (path, header)
        answers.append(through_lane[0])
    # The cases cover success, partial writes, every refusal and the 413 of a body over the limit.
    assert answers == [204, 400, 404, 400, 401, 401, 204, 204, 404, 200, 200, 400, 403, 413]
    assert {metric for metric, *_ in stored_points(source=source)} == {"cpu.usage", "temperature"}
    assert len(stored_points(source=source)) == 3  # h1 (v2, and v1 with ?p=: the same point), h3 (v1), d1 (JSON)


def test_other_requests_go_to_django(lane):
    source, key = source_with_key(slug="plant")
    status, headers, _ = lane_post(lane, "/api/v2/write?bucket=plant", b"", {}, method="GET")
    assert status == 405  # DRF's answer: the lane serves POSTs only
    status, headers, _ = lane_post(lane, "/ping", b"", {}, method="GET")
    assert status == 204
    assert "x-influxdb-version" in headers
    status, _, _ = lane_post(lane, "/api/v1/sources/plant/stats", b"", {"Authorization": f"Token {key}"})
    assert status in (401, 405)  # not a write view: Django's API authentication answers
    assert stored_points(source=source) == []


def test_a_host_django_would_refuse_is_refused_as_django_does(lane, client):
    _, key = source_with_key(slug="plant")
    auth = {"Authorization": f"Token {key}"}
    with override_settings(ALLOWED_HOSTS=["analytics.example.com"]):
        status, headers, _ = lane_post(lane, "/api/v2/write?bucket=plant", LINE, dict(auth))
        django_status, django_headers, _ = django_post(client, "/api/v2/write?bucket=plant", LINE, dict(auth))
    assert status == django_status == 400
    # The refusal passes back through the outer middleware, as in Django's chain: it gets the security headers.
    assert headers.get("x-content-type-options") == django_headers.get("x-content-type-options") == "nosniff"


def test_a_paused_source_is_refused_by_the_lane_with_409(lane):
    source, key = source_with_key(slug="plant")
    source_set_enabled(source=source, enabled=False)
    status, _, body = lane_post(lane, "/api/v1/sources/plant/ingest", RECORDS, {"Authorization": f"Bearer {key}"})
    assert status == 409
    assert json.loads(body)["error"] == "source_paused"


@override_settings(INGEST_MAX_IN_FLIGHT=1)
def test_a_write_finding_every_lane_thread_busy_gets_429_and_the_busy_one_completes():
    lane = WriteLane(get_asgi_application())
    source, key = source_with_key(slug="plant")
    auth = {"Authorization": f"Token {key}"}
    first: dict = {}
    try:
        with connection.cursor() as cursor:
            # Hold the rollup watermark row: a write waits for it in its transaction (writers take it FOR SHARE).
            cursor.execute("BEGIN; SELECT 1 FROM storage_rollup_watermark FOR UPDATE")
            writer = threading.Thread(
                target=lambda: first.update(answer=lane_post(lane, "/api/v2/write?bucket=plant", LINE, auth))
            )
            writer.start()
            wait_for(lambda: lock_waiters() > 0, timeout=20, what="the first write waiting for the lock")
            status, headers, body = lane_post(lane, "/api/v2/write?bucket=plant", LINE, auth)
            assert status == 429
            assert headers["retry-after"] == "1"
            assert json.loads(body) == {"code": "too many requests", "message": json.loads(body)["message"]}
            cursor.execute("COMMIT")
        writer.join(timeout=30)
        assert first["answer"][0] == 204
        assert len(stored_points(source=source)) == 1
    finally:
        lane.close()


def test_a_lost_database_connection_is_answered_503_then_replaced(lane):
    source, key = source_with_key(slug="plant")
    auth = {"Authorization": f"Token {key}"}
    assert lane_post(lane, "/api/v2/write?bucket=plant", LINE, auth)[0] == 204
    with connection.cursor() as cursor:  # end every other session: the lane thread's connection is gone
        cursor.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    answers = [lane_post(lane, "/api/v2/write?bucket=plant", LINE, auth)[0] for _ in range(2)]
    assert answers[0] in (204, 503)  # a fresh connection from the pool, or the dead one found and given back
    assert answers[1] == 204
    assert len(stored_points(source=source)) == 1


def test_a_write_path_with_its_trailing_slash_is_served_by_the_lane(lane, client):
    """`/api/.../ingest/` with a slash is the same endpoint (analytics_platform/api_paths.py), taken by the lane
    itself rather than passed to Django's full stack."""
    source, key = source_with_key(slug="plant")
    slashed = "/api/v1/sources/plant/ingest/"
    assert write_lane._route({"type": "http", "method": "POST", "path": slashed}).url_name == "source-ingest"
    assert write_lane._route({"type": "http", "method": "POST", "path": "/api/v2/write/"}) is not None
    assert write_lane._route({"type": "http", "method": "POST", "path": "/api/v1/sources/plant/nothing/"}) is None
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    through_lane = lane_post(lane, slashed, RECORDS, dict(headers))
    through_django = django_post(client, slashed, RECORDS, dict(headers))
    assert through_lane[0] == through_django[0] == 200
    assert _json_or_text(through_lane[2]) == _json_or_text(through_django[2])
    assert len(stored_points(source=source)) == 1
