"""The /ws/live/ endpoint: authentication, origin checks, and a real client over daphne."""

from __future__ import annotations

import asyncio
import json

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.test import Client

from analytics_platform.asgi import application
from apps.access.services import api_token_create, api_token_revoke
from tests.factories import user_create


def _session_cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


async def _connect(headers: list[tuple[bytes, bytes]]):
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=headers)
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
