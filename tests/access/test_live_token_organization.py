"""The live WebSocket applies an API token's organisation and scopes as REST does (issue 18): a token bound to one
organisation of a user who belongs to two streams that organisation's data only, and a token without `read` cannot
open the feed. Both failed before: the socket read under all of the user's organisations and ignored scopes."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.test import Client

from analytics_platform.asgi import application
from apps.access.models import ApiToken, Membership
from apps.access.services import api_token_create
from apps.dashboards.consumers import CLOSE_FORBIDDEN
from apps.dashboards.live import live_hub
from tests.dashboards.live_clients import connect, device_points, ingest, iso
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)

QUERY = {"metric": "temperature", "aggregation": "raw", "start": "-10m"}


def _two_organisations_with_data() -> tuple[str, str]:
    """Dana belongs to acme and beta, each with a source and a device; tokens bound to acme and to beta."""
    dana = user_create(username="dana", organization="acme")
    Membership.objects.create(organization=organization_get(slug="beta"), user=dana, role="viewer")
    _, acme_key = source_with_key(slug="plant", organization="acme")
    _, beta_key = source_with_key(slug="mill", organization="beta")
    moment = iso(datetime.now(UTC) - timedelta(seconds=5))
    ingest(acme_key, [{"time": moment, "device": "acme-device", "temperature": 1.0}], slug="plant")
    ingest(beta_key, [{"time": moment, "device": "beta-device", "temperature": 2.0}], slug="mill")
    acme_token = api_token_create(user=dana, name="acme", organization=organization_get(slug="acme"))[1]
    beta_token = api_token_create(user=dana, name="beta", organization=organization_get(slug="beta"))[1]
    return acme_token, beta_token


def _rest_devices(token: str, query: dict) -> set[str]:
    end = datetime.now(UTC)
    body = {**query, "start": (end - timedelta(minutes=10)).isoformat(), "end": end.isoformat()}
    response = Client(headers={"Authorization": f"Bearer {token}"}).post(
        "/api/v1/query", data=json.dumps(body), content_type="application/json"
    )
    assert response.status_code == 200, response.content
    return {series["labels"]["device"] for series in response.json()["series"]}


async def _snapshot_devices(client: WebsocketCommunicator, query: dict, subscription: str) -> set[str]:
    await client.send_json_to({"type": "subscribe", "id": subscription, "query": query})
    message = await client.receive_json_from(timeout=5)
    assert message["type"] == "data", message
    assert message["initial"] is True
    return {device for device, _, _ in device_points(message)}


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_socket_opened_with_an_organisation_bound_token_reads_that_organisation_only():
    acme_token, beta_token = await database_sync_to_async(_two_organisations_with_data)()
    for token, own, other in ((acme_token, "acme", "beta"), (beta_token, "beta", "acme")):
        # The REST answer for the same token is what the socket must match: devices of its organisation only.
        rest = await database_sync_to_async(_rest_devices)(token, QUERY)
        assert f"{own}-device" in rest
        assert all(device.startswith(own) for device in rest)
        client = await connect(token)
        try:
            assert await _snapshot_devices(client, QUERY, "every-source") == rest
            # The other organisation's source answers as a source that does not exist: nothing.
            foreign_source = "mill" if own == "acme" else "plant"
            assert await _snapshot_devices(client, {**QUERY, "source": foreign_source}, "foreign") == set()
            assert await _snapshot_devices(client, {**QUERY, "source": "no-such-source"}, "missing") == set()
            # Pushes too: a point written to the other organisation never reaches this socket.
            _, other_key = await database_sync_to_async(source_with_key)(slug=f"late-{other}", organization=other)
            now = iso(datetime.now(UTC))
            await database_sync_to_async(ingest)(
                other_key, [{"time": now, "device": f"{other}-late", "temperature": 9.0}], slug=f"late-{other}"
            )
            received = []
            while not await client.receive_nothing(timeout=1.5):
                received.extend(device_points(await client.receive_json_from(timeout=1)))
            assert f"{other}-late" not in {device for device, _, _ in received}
        finally:
            await client.disconnect()
            await live_hub().stop()


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_token_without_the_read_scope_cannot_open_the_live_feed():
    def setup() -> tuple[str, str]:
        user = user_create(username="erin")
        reader = api_token_create(user=user, name="reader", scopes=["read"])[1]
        token, writer = api_token_create(user=user, name="writer only")
        ApiToken.objects.filter(pk=token.pk).update(scopes=["write"])  # e.g. an identity provider's narrower token
        return reader, writer

    reader, writer = await database_sync_to_async(setup)()
    refused = WebsocketCommunicator(application, "/ws/live/", headers=[(b"authorization", f"Bearer {writer}".encode())])
    connected, code = await refused.connect()
    assert (connected, code) == (False, CLOSE_FORBIDDEN)
    allowed = await connect(reader)  # the same user with a read token is let in
    await allowed.disconnect()
    # REST refuses the write-only token's reads the same way.
    response = await database_sync_to_async(
        lambda: Client(headers={"Authorization": f"Bearer {writer}"}).get("/api/v1/series")
    )()
    assert response.status_code == 403
