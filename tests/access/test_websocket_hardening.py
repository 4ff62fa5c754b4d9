"""WebSocket hardening: Django's CSRF origin rule on the handshake, sockets closed when their credential ends,
and a cap on sockets per user. Each test here failed on the code before these checks existed."""

from __future__ import annotations

import asyncio
import json
from datetime import timedelta

import pytest
import websockets
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.conf import settings as django_settings
from django.middleware.csrf import CsrfViewMiddleware
from django.test import Client, RequestFactory, override_settings
from django.utils import timezone

from analytics_platform.asgi import application
from apps.access.services import api_token_create, api_token_revoke
from apps.access.websocket import websocket_origin_allowed
from tests.factories import user_create


def _scope(host: str, *, scheme: str = "ws", extra: list[tuple[bytes, bytes]] = ()) -> dict:
    return {"type": "websocket", "scheme": scheme, "path": "/ws/live/", "headers": [(b"host", host.encode()), *extra]}


# The origin rule ---------------------------------------------------------------------------------------------

# (origin, host the socket connects to, ws or wss, allowed?) for a server at 127.0.0.1:8765 without TLS.
ORIGIN_CASES = [
    ("http://127.0.0.1:8765", "127.0.0.1:8765", "ws", True),
    ("http://127.0.0.1:9999", "127.0.0.1:8765", "ws", False),  # other port
    ("http://localhost:1234", "127.0.0.1:8765", "ws", False),  # other host and port
    ("https://127.0.0.1:8765", "127.0.0.1:8765", "ws", False),  # other scheme
    ("http://127.0.0.1", "127.0.0.1:8765", "ws", False),  # default port is another port
    ("https://localhost", "localhost", "wss", True),
    ("http://localhost", "localhost", "wss", False),  # a plain-HTTP page opening the TLS socket
    ("http://evil.example.net", "evil.example.net", "ws", False),  # host not in ALLOWED_HOSTS
    ("null", "localhost", "ws", False),
    ("https://dashboards.example.com", "localhost", "ws", True),  # CSRF_TRUSTED_ORIGINS, exact
    ("https://eu.example.org", "localhost", "ws", True),  # CSRF_TRUSTED_ORIGINS, wildcard
    ("http://eu.example.org", "localhost", "ws", False),  # wildcard, other scheme
]


@override_settings(
    ALLOWED_HOSTS=["localhost", "127.0.0.1"],
    CSRF_TRUSTED_ORIGINS=["https://dashboards.example.com", "https://*.example.org"],
)
@pytest.mark.parametrize(("origin", "host", "scheme", "allowed"), ORIGIN_CASES)
def test_origin_rule_is_djangos_csrf_rule(origin, host, scheme, allowed):
    assert websocket_origin_allowed(origin, _scope(host, scheme=scheme)) is allowed
    # The same request over HTTP, judged by Django's own CSRF middleware, gets the same answer.
    request = RequestFactory().post("/", HTTP_HOST=host, HTTP_ORIGIN=origin, secure=scheme == "wss")
    assert CsrfViewMiddleware(lambda r: None)._origin_verified(request) is allowed


@override_settings(ALLOWED_HOSTS=["analytics.example.com"], SECURE_PROXY_SSL_HEADER=("HTTP_X_FORWARDED_PROTO", "https"))
def test_behind_a_tls_proxy_the_forwarded_scheme_counts_like_on_http():
    behind_proxy = _scope("analytics.example.com", extra=[(b"x-forwarded-proto", b"https")])
    assert websocket_origin_allowed("https://analytics.example.com", behind_proxy)
    assert not websocket_origin_allowed("http://analytics.example.com", behind_proxy)
    assert not websocket_origin_allowed("https://analytics.example.com", _scope("analytics.example.com"))


def _session_cookie_for(user) -> bytes:
    client = Client()
    client.force_login(user)
    return f"{django_settings.SESSION_COOKIE_NAME}={client.cookies[django_settings.SESSION_COOKIE_NAME].value}".encode()


def test_issue_origins_cannot_open_a_signed_in_users_feed_over_daphne(daphne_server):
    """The probe from the issue: pages on another port, host or scheme used a signed-in user's cookie."""
    user = user_create(username="carol")
    cookie = _session_cookie_for(user).decode()
    host, port = daphne_server.split(":")
    url = f"ws://{daphne_server}/ws/live/"

    async def status_for(origin: str) -> int:
        try:
            async with websockets.connect(url, origin=origin, additional_headers={"Cookie": cookie}) as socket:
                assert json.loads(await socket.recv())["type"] == "hello"
                return 101
        except websockets.exceptions.InvalidStatus as refused:
            return refused.response.status_code

    async def scenario() -> dict[str, int]:
        origins = [f"http://{host}:{port}", f"http://{host}:9999", f"http://localhost:{port}", f"https://{host}:{port}"]
        return {origin: await status_for(origin) for origin in origins}

    statuses = asyncio.run(scenario())
    assert statuses == {
        f"http://{host}:{port}": 101,
        f"http://{host}:9999": 403,
        f"http://localhost:{port}": 403,
        f"https://{host}:{port}": 403,
    }


# Ending a credential ends its sockets --------------------------------------------------------------------------


async def _open(headers: list[tuple[bytes, bytes]]) -> WebsocketCommunicator:
    communicator = WebsocketCommunicator(application, "/ws/live/", headers=[(b"host", b"localhost"), *headers])
    connected, _ = await communicator.connect()
    assert connected
    assert (await communicator.receive_json_from())["type"] == "hello"
    return communicator


async def _closed_with(communicator: WebsocketCommunicator, *, timeout: float = 5) -> tuple[int, str]:
    while True:
        message = await communicator.receive_output(timeout=timeout)
        if message["type"] == "websocket.close":
            return message.get("code"), message.get("reason", "")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_revoking_a_token_closes_the_sockets_it_opened_at_once():
    user = await database_sync_to_async(user_create)(username="erin")
    token, raw_key = await database_sync_to_async(api_token_create)(user=user, name="ws")
    _other, other_key = await database_sync_to_async(api_token_create)(user=user, name="other")
    revoked_socket = await _open([(b"authorization", f"Bearer {raw_key}".encode())])
    kept_socket = await _open([(b"authorization", f"Bearer {other_key}".encode())])
    await database_sync_to_async(api_token_revoke)(token=token)
    assert await _closed_with(revoked_socket) == (4401, "token revoked")
    await kept_socket.send_json_to({"type": "ping", "id": 1})
    assert (await kept_socket.receive_json_from())["type"] == "pong"  # another token's socket stays open
    await kept_socket.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_revoking_a_parent_token_closes_the_sockets_of_tokens_it_minted():
    user = await database_sync_to_async(user_create)(username="erin")
    parent, _ = await database_sync_to_async(api_token_create)(user=user, name="parent", scopes=["read", "admin"])
    _child, child_key = await database_sync_to_async(api_token_create)(
        user=user, name="child", scopes=["read"], parent=parent
    )
    socket = await _open([(b"authorization", f"Bearer {child_key}".encode())])
    await database_sync_to_async(api_token_revoke)(token=parent)
    assert await _closed_with(socket) == (4401, "token revoked")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_signing_out_closes_that_sessions_sockets_only():
    user = await database_sync_to_async(user_create)(username="dave")
    browser = Client()
    await database_sync_to_async(browser.force_login)(user)
    cookie = f"{django_settings.SESSION_COOKIE_NAME}={browser.cookies[django_settings.SESSION_COOKIE_NAME].value}"
    other_cookie = await database_sync_to_async(_session_cookie_for)(user)
    signed_out = await _open([(b"origin", b"http://localhost"), (b"cookie", cookie.encode())])
    other_session = await _open([(b"origin", b"http://localhost"), (b"cookie", other_cookie)])
    await database_sync_to_async(browser.post)("/accounts/logout/")
    assert await _closed_with(signed_out) == (4401, "signed out")
    await other_session.send_json_to({"type": "ping", "id": 1})
    assert (await other_session.receive_json_from())["type"] == "pong"
    await other_session.disconnect()


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_a_token_expiring_closes_its_socket_when_it_expires():
    user = await database_sync_to_async(user_create)(username="erin")
    _, raw_key = await database_sync_to_async(api_token_create)(
        user=user, name="short", expires_at=timezone.now() + timedelta(seconds=1.5)
    )
    socket = await _open([(b"authorization", f"Bearer {raw_key}".encode())])
    assert await _closed_with(socket, timeout=5) == (4401, "credentials expired")


@pytest.mark.django_db(transaction=True)
@pytest.mark.asyncio
async def test_sockets_per_user_are_capped_with_4008_and_a_reason(settings):
    settings.WEBSOCKET_MAX_CONNECTIONS_PER_USER = 2
    user = await database_sync_to_async(user_create)(username="gus")
    _, raw_key = await database_sync_to_async(api_token_create)(user=user, name="ws")
    headers = [(b"authorization", f"Bearer {raw_key}".encode())]
    first, second = await _open(headers), await _open(headers)
    third = WebsocketCommunicator(application, "/ws/live/", headers=[(b"host", b"localhost"), *headers])
    connected, _ = await third.connect()
    assert connected  # accepted, then closed with a code and reason the client can show
    code, reason = await _closed_with(third)
    assert code == 4008
    assert "at most 2 per user" in reason
    await first.disconnect()
    fourth = await _open(headers)  # a closed socket frees its place
    for socket in (second, fourth):
        await socket.disconnect()
