"""The live WebSocket accepts the provider's access tokens on the handshake like API tokens (real provider)."""

from __future__ import annotations

import jwt
import pytest
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from analytics_platform.asgi import application
from apps.sso.models import ServiceClient
from tests.oidc.provider import signing_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)


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


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_socket_opened_with_a_bound_service_clients_token_reads_that_organisation_only(
    transactional_db, oidc_settings, bot_client
):
    """The service account belongs to acme and beta, its client is bound to beta: the socket streams beta's
    devices only, as REST answers for the same token."""
    from channels.db import database_sync_to_async

    from apps.dashboards.live import live_hub
    from tests.access.test_live_token_organization import QUERY, _rest_devices, _snapshot_devices
    from tests.dashboards.live_clients import connect, ingest, iso
    from tests.factories import organization_get, user_create
    from tests.ingestion.factories import source_with_key

    def setup() -> str:
        from datetime import UTC, datetime, timedelta

        from apps.access.models import Membership

        account = user_create(username="svc-ingest-bot", organization="acme")
        Membership.objects.create(organization=organization_get(slug="beta"), user=account, role="viewer")
        ServiceClient.objects.create(client_id=bot_client.client_id, user=account,
                                     organization=organization_get(slug="beta"))  # fmt: skip
        moment = iso(datetime.now(UTC) - timedelta(seconds=5))
        for slug, organization in (("plant", "acme"), ("mill", "beta")):
            _, key = source_with_key(slug=slug, organization=organization)
            ingest(key, [{"time": moment, "device": f"{organization}-device", "temperature": 1.0}], slug=slug)
        return oidc_settings.client_credentials_token(bot_client, scope="api:read")

    token = await database_sync_to_async(setup)()
    assert await database_sync_to_async(_rest_devices)(token, QUERY) == {"beta-device"}
    client = await connect(token)
    try:
        assert await _snapshot_devices(client, QUERY, "every-source") == {"beta-device"}
    finally:
        await client.disconnect()
        await live_hub().stop()
