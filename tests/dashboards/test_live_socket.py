"""The /ws/live/ endpoint: authentication, origin checks, and a real client over daphne."""

from __future__ import annotations

import asyncio
import http.client
import json
import time
from datetime import UTC, datetime, timedelta

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from analytics_platform.asgi import application
from apps.access.services import api_token_create, api_token_revoke
from tests.dashboards.live_clients import RAW_QUERY
from tests.dashboards.live_clients import device_points as _device_points
from tests.dashboards.live_clients import iso as _iso
from tests.dashboards.live_clients import points as _points
from tests.factories import user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)


def _session_cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


async def _connect(headers: list[tuple[bytes, bytes]]):
    # A browser's handshake names the host it connects to; the Origin is checked against it (as CSRF does).
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"host", b"localhost"), *headers])
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_anonymous_refused():
    communicator, connected, code = await _connect([(b"origin", b"http://localhost")])
    assert connected is False
    assert code == 4401
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_session_user_accepted_and_pings():
    user = await database_sync_to_async(user_create)(username="carol")
    cookie = await database_sync_to_async(_session_cookie_for)(user)
    communicator, connected, _ = await _connect([(b"origin", b"http://localhost"), (b"cookie", cookie)])
    assert connected is True
    hello = await communicator.receive_json_from()
    assert hello["type"] == "hello"
    assert hello["user"] == "carol"
    await communicator.send_json_to({"type": "ping", "id": "p1"})
    pong = await communicator.receive_json_from()
    assert pong["type"] == "pong"
    assert pong["id"] == "p1"
    await communicator.send_to(text_data="{not json")
    assert (await communicator.receive_json_from())["type"] == "error"
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_foreign_origin_refused_even_with_valid_session():
    user = await database_sync_to_async(user_create)(username="dave")
    cookie = await database_sync_to_async(_session_cookie_for)(user)
    communicator, connected, _ = await _connect([(b"origin", b"https://evil.example.net"), (b"cookie", cookie)])
    assert connected is False
    await communicator.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_token_auth_and_revoked_token():
    user = await database_sync_to_async(user_create)(username="erin")
    token, raw_key = await database_sync_to_async(api_token_create)(user=user, name="ws")
    communicator, connected, _ = await _connect([(b"authorization", f"Bearer {raw_key}".encode())])
    assert connected is True
    assert (await communicator.receive_json_from())["user"] == "erin"
    await communicator.disconnect()
    await database_sync_to_async(api_token_revoke)(token=token)
    communicator, connected, code = await _connect([(b"authorization", f"Bearer {raw_key}".encode())])
    assert connected is False
    assert code == 4401
    await communicator.disconnect()


def test_real_client_over_daphne(daphne_server):
    """A real WebSocket client against a real daphne: token accepted, foreign origin and no auth refused."""
    user = user_create(username="frank")
    _, raw_key = api_token_create(user=user, name="ws")
    url = f"ws://{daphne_server}/ws/live/"

    async def scenario() -> None:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw_key}"}) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
            await socket.send(json.dumps({"type": "ping", "id": 7}))
            pong = json.loads(await socket.recv())
            assert pong["type"] == "pong"
            assert pong["id"] == 7

        with pytest.raises(websockets.exceptions.InvalidStatus) as refused:
            async with websockets.connect(
                url, origin="https://evil.example.net", additional_headers={"Authorization": f"Bearer {raw_key}"}
            ):
                pass
        assert refused.value.response.status_code == 403
        with pytest.raises(websockets.exceptions.InvalidStatus) as anonymous:
            async with websockets.connect(url):
                pass
        assert anonymous.value.response.status_code == 403

    asyncio.run(scenario())


def _http_ingest(address: str, key: str, records: list[dict], slug: str = "plant") -> float:
    """POST records to the real ingest endpoint; returns when the call started (time.monotonic())."""
    started = time.monotonic()
    connection = http.client.HTTPConnection(*address.split(":"), timeout=10)
    connection.request(
        "POST",
        f"/api/v1/sources/{slug}/ingest",
        body=json.dumps(records),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = connection.getresponse()
    assert response.status == 200, response.read()
    connection.close()
    return started


async def _next_data(socket, *, timeout: float) -> dict:
    while True:
        message = json.loads(await asyncio.wait_for(socket.recv(), timeout))
        if message["type"] != "pong":
            return message


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_point_ingested_over_http_arrives_within_a_second(daphne_server):
    """Bearer token on the upgrade, a subscription, then a point through POST .../ingest: pushed in < 1 s."""
    user = user_create(username="grace")
    _, raw_key = api_token_create(user=user, name="ws")
    _, write_key = source_with_key(slug="plant")
    now = datetime.now(UTC)
    _http_ingest(
        daphne_server, write_key, [{"time": _iso(now - timedelta(seconds=10)), "device": "d1", "temperature": 1.0}]
    )
    url = f"ws://{daphne_server}/ws/live/"

    async def scenario() -> None:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw_key}"}) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
            await socket.send(json.dumps({"type": "subscribe", "id": "t", "query": RAW_QUERY}))
            snapshot = await _next_data(socket, timeout=5)
            assert snapshot["initial"] is True
            assert len(_points(snapshot)) == 1
            for offset, value in ((3, 2.0), (2, 3.0)):
                record = {"time": _iso(now - timedelta(seconds=offset)), "device": "d1", "temperature": value}
                started = await asyncio.to_thread(_http_ingest, daphne_server, write_key, [record])
                delta = await _next_data(socket, timeout=1)
                assert time.monotonic() - started < 1.0
                assert delta["id"] == "t"
                assert _points(delta) == [(record["time"], value)]

    asyncio.run(scenario())


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_resume_after_reconnect_has_no_gap_and_no_duplicates(daphne_server):
    """The client reconnects with `since` = its last point: it gets exactly what it missed, then live deltas."""
    user = user_create(username="heidi")
    _, raw_key = api_token_create(user=user, name="ws")
    _, write_key = source_with_key(slug="plant")
    start = datetime.now(UTC) - timedelta(seconds=60)
    url = f"ws://{daphne_server}/ws/live/"
    headers = {"Authorization": f"Bearer {raw_key}"}
    bucket_query = {**RAW_QUERY, "aggregation": "sum", "bucket": "1s", "fill": "none", "group_by": ["facility"]}
    start = start.replace(microsecond=0)

    def record(second: int, device: str = "d1") -> dict:
        moment = _iso(start + timedelta(seconds=second))
        return {"time": moment, "device": device, "facility": "f1", "temperature": float(second)}

    async def scenario() -> None:
        received: list[tuple[str, str, float]] = []  # (device, time, value)
        await asyncio.to_thread(_http_ingest, daphne_server, write_key, [record(0), record(1)])
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.recv()
            await socket.send(json.dumps({"type": "subscribe", "id": "raw", "query": RAW_QUERY}))
            await socket.send(json.dumps({"type": "subscribe", "id": "sum", "query": bucket_query}))
            for _ in range(2):
                message = await _next_data(socket, timeout=5)
                if message["id"] == "raw":
                    received += _device_points(message)
            await asyncio.to_thread(_http_ingest, daphne_server, write_key, [record(2)])
            message = await _next_data(socket, timeout=2)
            message = message if message["id"] == "raw" else await _next_data(socket, timeout=2)
            received += _device_points(message)
        assert [value for _, _, value in received] == [0.0, 1.0, 2.0]
        since = received[-1][1]
        # While disconnected: more points, one at the very time the client has last (another device).
        await asyncio.to_thread(_http_ingest, daphne_server, write_key, [record(2, "d2"), record(3), record(4)])
        async with websockets.connect(url, additional_headers=headers) as socket:
            await socket.recv()
            await socket.send(json.dumps({"type": "subscribe", "id": "raw", "query": RAW_QUERY, "since": since}))
            await socket.send(json.dumps({"type": "subscribe", "id": "sum", "query": bucket_query, "since": since}))
            resumed: dict[str, dict] = {}
            for _ in range(2):
                message = await _next_data(socket, timeout=5)
                resumed[message["id"]] = message
            assert resumed["raw"]["initial"] is True
            assert resumed["raw"]["since"] == since
            missed = _device_points(resumed["raw"])
            # Nothing older than `since` comes again; points at `since` itself do (a point is its series and
            # time, so merging replaces): merged, every point is there exactly once.
            assert all(moment >= since for _, moment, _ in missed)
            merged = {(device, moment): value for device, moment, value in received + missed}
            assert sorted(merged.values()) == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0]
            # Buckets from the one holding `since` on, the grown one with its new sum.
            assert dict(_points(resumed["sum"])) == {
                _iso(start + timedelta(seconds=2)): 4.0,
                _iso(start + timedelta(seconds=3)): 3.0,
                _iso(start + timedelta(seconds=4)): 4.0,
            }
            await asyncio.to_thread(_http_ingest, daphne_server, write_key, [record(5)])
            live = {}
            for _ in range(2):
                message = await _next_data(socket, timeout=2)
                live[message["id"]] = message
            assert _points(live["raw"]) == [(_iso(start + timedelta(seconds=5)), 5.0)]
            assert _points(live["sum"]) == [(_iso(start + timedelta(seconds=5)), 5.0)]

    asyncio.run(scenario())


def test_idle_connection_stays_open(daphne_server):
    """A connection with nothing to receive for longer than Redis's 5 s socket timeout is still served."""
    user = user_create(username="ivan")
    _, raw_key = api_token_create(user=user, name="ws")
    url = f"ws://{daphne_server}/ws/live/"

    async def scenario() -> None:
        async with websockets.connect(url, additional_headers={"Authorization": f"Bearer {raw_key}"}) as socket:
            assert json.loads(await socket.recv())["type"] == "hello"
            await asyncio.sleep(6.5)
            await socket.send(json.dumps({"type": "ping", "id": 1}))
            assert json.loads(await asyncio.wait_for(socket.recv(), 2))["type"] == "pong"

    asyncio.run(scenario())
