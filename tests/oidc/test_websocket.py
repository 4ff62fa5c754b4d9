"""The live WebSocket accepts the provider's access tokens on the handshake like API tokens (real provider)."""

from __future__ import annotations

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from analytics_platform.asgi import application
from apps.sso.models import ServiceClient
from tests.oidc.provider import signing_key


@pytest.fixture
def bot_tokens(transactional_db, oidc_settings, bot_client) -> tuple[str, str]:
    """A genuine client-credentials token of a registered service client, and a forgery of it."""
    user = get_user_model().objects.create_user(username="svc-ingest-bot")
    ServiceClient.objects.create(client_id=bot_client.client_id, user=user)
    genuine = oidc_settings.client_credentials_token(bot_client)
    forger_key, _ = signing_key("key-1")
    claims = jwt.decode(genuine, options={"verify_signature": False})
    return genuine, jwt.encode(claims, forger_key, algorithm="RS256", headers={"kid": "key-1"})


async def _connect(token: str):
    communicator = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"authorization", f"Bearer {token}".encode())]
    )
    connected, code = await communicator.connect()
    return communicator, connected, code


@pytest.mark.asyncio
async def test_provider_token_on_the_live_socket(bot_tokens):
    genuine, forged = bot_tokens
    communicator, connected, _ = await _connect(genuine)
    assert connected is True
    assert (await communicator.receive_json_from())["user"] == "svc-ingest-bot"
    await communicator.disconnect()
    communicator, connected, code = await _connect(forged)
    assert (connected, code) == (False, 4401)
    await communicator.disconnect()
