"""Source slugs are unique per organisation (issue 18): another tenant's slug is no oracle, two tenants with the
same slug each write and read only their own source, and a user who sees the slug in two organisations is asked
which one they mean instead of being answered from either. The first tests failed before: creating a slug another
organisation used answered 409."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta

import pytest
from channels.testing import WebsocketCommunicator
from django.conf import settings
from django.test import Client

from analytics_platform.asgi import application
from apps.access.models import Membership
from apps.access.services import api_token_create
from apps.dashboards.live import live_hub
from tests.conftest import api_client_for
from tests.dashboards.live_clients import connect, device_points, iso
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)

NOW = datetime.now(UTC).replace(microsecond=0)


def _create(client, slug: str):
    return client.post("/api/v1/sources/", {"name": slug.title(), "slug": slug}, format="json")


def _masked(response, *names: str) -> tuple[int, str]:
    text = response.content.decode()
    for name in names:
        text = text.replace(name, "X")
    return response.status_code, text


def _ingest(path: str, key: str, body: str, content_type: str) -> int:
    response = Client().post(path, data=body, content_type=content_type, headers={"Authorization": f"Bearer {key}"})
    return response.status_code


def _query(client, source: str) -> tuple[int, dict]:
    window = {"start": (NOW - timedelta(hours=1)).isoformat(), "end": (NOW + timedelta(minutes=1)).isoformat()}
    response = client.post(
        "/api/v1/query", {"metric": "temperature", "source": source, "aggregation": "raw", **window}, format="json"
    )
    return response.status_code, response.json()


def _devices(answer: dict) -> set[str]:
    return {series["labels"]["device"] for series in answer["series"]}


@pytest.mark.django_db
def test_a_slug_used_by_another_organisation_can_be_created_and_409_is_for_your_own_only():
    source_with_key(slug="plant", organization="beta")
    ana = user_create(username="ana", organization="acme", role="editor")
    client = api_client_for(ana)
    created = _create(client, "plant")
    assert created.status_code == 201, created.content
    assert created.json()["organization"] == "acme"
    again = _create(client, "plant")
    assert again.status_code == 409
    assert again.json()["field"] == "slug"


@pytest.mark.django_db
def test_nothing_differs_between_a_slug_that_exists_elsewhere_and_one_that_does_not():
    """The IDOR-style check: creating, reading and changing by a slug another tenant uses answers exactly as by a
    slug nobody uses."""
    source_with_key(slug="their-plant", organization="beta")
    ana = user_create(username="ana", organization="acme", role="editor")
    client = api_client_for(ana)
    for method, suffix, body in [
        ("get", "/", None),
        ("patch", "/", {"name": "x"}),
        ("get", "/keys/", None),
        ("post", "/pause", None),
        ("get", "/schemas/", None),
        ("get", "/stats", None),
        ("get", "/dead-letters/", None),
    ]:
        answers = [
            getattr(client, method)(f"/api/v1/sources/{slug}{suffix}", body, format="json")
            for slug in ("their-plant", "no-such-plant")
        ]
        assert _masked(answers[0], "their-plant") == _masked(answers[1], "no-such-plant"), (method, suffix)
        assert answers[0].status_code == 404
    created = [_create(client, slug) for slug in ("their-plant", "no-such-plant")]
    assert [answer.status_code for answer in created] == [201, 201]
    assert created[0].json()["organization"] == created[1].json()["organization"] == "acme"


@pytest.mark.django_db
def test_two_organisations_with_the_same_slug_each_ingest_and_query_only_their_own():
    _, acme_key = source_with_key(slug="plant", organization="acme")
    _, beta_key = source_with_key(slug="plant", organization="beta")
    moment = iso(NOW - timedelta(minutes=1))
    for key, device in ((acme_key, "acme-1"), (beta_key, "beta-1")):
        body = json.dumps([{"time": moment, "device": device, "temperature": 1.0}])
        assert _ingest("/api/v1/sources/plant/ingest", key, body, "application/json") == 200
    nanoseconds = int((NOW - timedelta(seconds=30)).timestamp()) * 1_000_000_000
    for key, device in ((acme_key, "acme-2"), (beta_key, "beta-2")):
        line = f"temperature,device={device} value=2.0 {nanoseconds}"
        assert _ingest("/api/v2/write?bucket=plant", key, line, "text/plain") == 204
        assert _ingest("/write?db=plant", key, line.replace("-2", "-3"), "text/plain") == 204
    ana = user_create(username="ana", organization="acme")
    bob = user_create(username="bob", organization="beta")
    for user, expected in ((ana, {"acme-1", "acme-2", "acme-3"}), (bob, {"beta-1", "beta-2", "beta-3"})):
        status, answer = _query(api_client_for(user), "plant")
        assert status == 200, answer
        assert _devices(answer) == expected
        own = "acme" if user == ana else "beta"
        assert api_client_for(user).get("/api/v1/sources/plant/").json()["organization"] == own
        series = api_client_for(user).get("/api/v1/series", {"source": "plant"}).json()
        assert {item["labels"]["device"] for item in series["results"]} == expected
    # Naming the other organisation explicitly reads nothing of it (as a source that does not exist would).
    assert _devices(_query(api_client_for(ana), "beta/plant")[1]) == set()
    assert _query(api_client_for(ana), "beta/plant") == _query(api_client_for(ana), "beta/nothing")


@pytest.mark.django_db
def test_a_user_who_sees_the_slug_in_two_organisations_is_asked_which_and_a_bound_token_is_not():
    _, acme_key = source_with_key(slug="plant", organization="acme")
    _, beta_key = source_with_key(slug="plant", organization="beta")
    moment = iso(NOW - timedelta(minutes=1))
    for key, device in ((acme_key, "acme-1"), (beta_key, "beta-1")):
        body = json.dumps([{"time": moment, "device": device, "temperature": 1.0}])
        assert _ingest("/api/v1/sources/plant/ingest", key, body, "application/json") == 200
    carol = user_create(username="carol", organization="acme")
    Membership.objects.create(organization=organization_get(slug="beta"), user=carol, role="viewer")
    client = api_client_for(carol)
    status, answer = _query(client, "plant")
    assert status == 400
    assert answer["field"] == "source"
    assert "acme/plant" in answer["detail"]
    assert "beta" in answer["detail"]
    assert _devices(_query(client, "acme/plant")[1]) == {"acme-1"}
    assert _devices(_query(client, "beta/plant")[1]) == {"beta-1"}
    ambiguous = client.get("/api/v1/sources/plant/")
    assert ambiguous.status_code == 400
    assert ambiguous.json()["field"] == "organization"
    assert client.get("/api/v1/sources/plant/", {"organization": "beta"}).json()["organization"] == "beta"
    # A token bound to one organisation sees one source named plant: the bare slug is enough.
    _, raw = api_token_create(user=carol, name="beta only", organization=organization_get(slug="beta"))
    bound = Client(headers={"Authorization": f"Bearer {raw}"})
    window = {"start": (NOW - timedelta(hours=1)).isoformat(), "end": (NOW + timedelta(minutes=1)).isoformat()}
    response = bound.post(
        "/api/v1/query",
        {"metric": "temperature", "source": "plant", "aggregation": "raw", **window},
        content_type="application/json",
    )
    assert response.status_code == 200, response.content
    assert _devices(response.json()) == {"beta-1"}
    assert bound.get("/api/v1/sources/plant/").json()["organization"] == "beta"


@pytest.mark.django_db
def test_the_source_pages_open_the_named_organisations_source():
    source_with_key(slug="plant", organization="acme")
    source_with_key(slug="plant", organization="beta")
    carol = user_create(username="carol", organization="acme")
    Membership.objects.create(organization=organization_get(slug="beta"), user=carol, role="viewer")
    browser = Client()
    browser.force_login(carol)
    listing = browser.get("/sources/").content.decode()
    assert "/sources/plant/?organization=acme" in listing
    assert "/sources/plant/?organization=beta" in listing
    for organization in ("acme", "beta"):
        page = browser.get("/sources/plant/", {"organization": organization})
        assert page.status_code == 200
        assert page.context["source"].organization.slug == organization


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_live_subscriptions_read_their_own_organisations_source_and_ambiguity_is_refused():
    from channels.db import database_sync_to_async

    def setup() -> tuple[str, str]:
        _, acme_key = source_with_key(slug="plant", organization="acme")
        _, beta_key = source_with_key(slug="plant", organization="beta")
        ana = user_create(username="ana", organization="acme")
        carol = user_create(username="carol", organization="acme")
        Membership.objects.create(organization=organization_get(slug="beta"), user=carol, role="viewer")
        moment = iso(datetime.now(UTC) - timedelta(seconds=5))
        for key, device in ((acme_key, "acme-1"), (beta_key, "beta-1")):
            body = json.dumps([{"time": moment, "device": device, "temperature": 1.0}])
            assert _ingest("/api/v1/sources/plant/ingest", key, body, "application/json") == 200
        browser = Client()
        browser.force_login(carol)  # a user of two organisations signs in (a token is bound to one)
        return api_token_create(user=ana, name="live")[1], browser.cookies[settings.SESSION_COOKIE_NAME].value

    ana_token, carol_session = await database_sync_to_async(setup)()
    query = {"source": "plant", "metric": "temperature", "aggregation": "raw", "start": "-10m"}
    ana = await connect(ana_token)
    carol = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"cookie", f"{settings.SESSION_COOKIE_NAME}={carol_session}".encode())]
    )
    assert (await carol.connect())[0]
    assert (await carol.receive_json_from())["type"] == "hello"
    try:
        await ana.send_json_to({"type": "subscribe", "id": "p", "query": query})
        snapshot = await ana.receive_json_from(timeout=5)
        assert {device for device, _, _ in device_points(snapshot)} == {"acme-1"}
        await carol.send_json_to({"type": "subscribe", "id": "p", "query": query})
        refused = await carol.receive_json_from(timeout=5)
        assert (refused["type"], refused["field"]) == ("error", "query.source")
        await carol.send_json_to({"type": "subscribe", "id": "b", "query": {**query, "source": "beta/plant"}})
        snapshot = await carol.receive_json_from(timeout=5)
        assert {device for device, _, _ in device_points(snapshot)} == {"beta-1"}
    finally:
        await ana.disconnect()
        await carol.disconnect()
        await live_hub().stop()


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_live_feed_keeps_to_the_source_its_slug_named_when_another_organisation_adds_one_later():
    from channels.db import database_sync_to_async

    def setup() -> tuple[str, str]:
        carol = user_create(username="carol", organization="acme")
        Membership.objects.create(organization=organization_get(slug="beta"), user=carol, role="viewer")
        _, acme_key = source_with_key(slug="plant", organization="acme")
        body = json.dumps([{"time": iso(datetime.now(UTC) - timedelta(seconds=5)), "device": "acme-1",
                            "temperature": 1.0}])  # fmt: skip
        assert _ingest("/api/v1/sources/plant/ingest", acme_key, body, "application/json") == 200
        browser = Client()
        browser.force_login(carol)
        return acme_key, browser.cookies[settings.SESSION_COOKIE_NAME].value

    acme_key, session = await database_sync_to_async(setup)()
    carol = WebsocketCommunicator(
        application, "/ws/live/", headers=[(b"cookie", f"{settings.SESSION_COOKIE_NAME}={session}".encode())]
    )
    assert (await carol.connect())[0]
    assert (await carol.receive_json_from())["type"] == "hello"
    try:
        query = {"source": "plant", "metric": "temperature", "aggregation": "raw", "start": "-10m"}
        await carol.send_json_to({"type": "subscribe", "id": "p", "query": query})
        assert {device for device, _, _ in device_points(await carol.receive_json_from(timeout=5))} == {"acme-1"}

        def beta_adds_plant_then_acme_a_device() -> None:
            _, beta_key = source_with_key(slug="plant", organization="beta")
            now = iso(datetime.now(UTC))
            for key, device in ((beta_key, "beta-1"), (acme_key, "acme-2")):  # acme-2: a new series, re-resolved
                body = json.dumps([{"time": now, "device": device, "temperature": 2.0}])
                assert _ingest("/api/v1/sources/plant/ingest", key, body, "application/json") == 200

        await database_sync_to_async(beta_adds_plant_then_acme_a_device)()
        received = []
        while not await carol.receive_nothing(timeout=1.5):
            message = await carol.receive_json_from(timeout=1)
            if message.get("type") == "data":
                received.extend(device_points(message))
        devices = {device for device, _, _ in received}
        assert "acme-2" in devices
        assert "beta-1" not in devices
    finally:
        await carol.disconnect()
        await live_hub().stop()
