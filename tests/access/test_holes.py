"""The cross-tenant holes issue 18 found, each written to fail on the code before it: an existence oracle for
other tenants' sources, the home page listing every organisation's sources, and a live feed that read under its
first subscriber's identity for everyone who shared it."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from apps.access.models import DataPolicy, Membership
from apps.access.services import api_token_create
from apps.dashboards.consumers import CLOSE_SCOPE_CHANGED
from apps.dashboards.live import live_hub
from tests.conftest import api_client_for
from tests.dashboards.live_clients import connect, device_points, ingest, iso
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)
from tests.storage.factories import points_store, series_create, source_create


def _without(text: str, *names: str) -> str:
    for name in names:
        text = text.replace(name, "X")
    return text


@pytest.mark.django_db
def test_a_source_you_may_not_read_answers_exactly_like_one_that_does_not_exist(user):
    rival = source_create(slug="rival-plant", organization="rival-org")
    series_id = series_create(source=rival, metric="temperature", device="r1")
    points_store(series_id, [(datetime.now(UTC) - timedelta(minutes=1), 1.0)])
    source_create(slug="plant")  # the user's own source, without data
    client = api_client_for(user)
    end = datetime.now(UTC)  # one window for both, so the answers' start and end agree
    window = {"start": (end - timedelta(hours=1)).isoformat(), "end": end.isoformat()}
    for path in ("/api/v1/query", "/api/v1/query/csv"):
        answers = [
            client.post(path, {"metric": "temperature", "source": slug, **window}, format="json")
            for slug in ("rival-plant", "no-such-plant")
        ]
        assert answers[0].status_code == answers[1].status_code
        assert _without(answers[0].content.decode(), "rival-plant") == _without(
            answers[1].content.decode(), "no-such-plant"
        )
    for path in ("/api/v1/series", "/api/v1/series/metrics"):
        foreign, missing = (client.get(path, {"source": slug}) for slug in ("rival-plant", "no-such-plant"))
        assert (foreign.status_code, foreign.json()) == (missing.status_code, missing.json())


@pytest.mark.django_db
def test_the_home_page_lists_only_your_organisations_sources(user):
    source_create(slug="rival-plant", organization="rival-org", name="Rival secret plant")
    source_create(slug="plant", name="Our plant")
    browser = Client()
    browser.force_login(user)
    page = browser.get("/").content.decode()
    assert "Our plant" in page
    assert "rival-plant" not in page
    assert "Rival secret plant" not in page


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_shared_feed_never_reads_under_another_subscribers_wider_access():
    """Olive and Pearl watch the same query with the same access, so they share one feed. Olive then joins another
    organisation: her access widens and her connection is closed to re-scope. Pearl's feed must not start reading
    the other organisation's series (it read under Olive's identity before)."""

    def setup() -> tuple[str, str, str, str]:
        olive, pearl = user_create(username="olive"), user_create(username="pearl")
        _, own_key = source_with_key(slug="plant")
        _, rival_key = source_with_key(slug="rival-plant", organization="rival-org")
        ingest(own_key, [{"time": iso(datetime.now(UTC)), "device": "own", "temperature": 1.0}])
        return (
            api_token_create(user=olive, name="live")[1],
            api_token_create(user=pearl, name="live")[1],
            own_key,
            rival_key,
        )

    olive_token, pearl_token, own_key, rival_key = await database_sync_to_async(setup)()
    query = {"metric": "temperature", "aggregation": "raw", "start": "-10m"}
    olive, pearl = await connect(olive_token), await connect(pearl_token)
    try:
        for client in (olive, pearl):
            await client.send_json_to({"type": "subscribe", "id": "all", "query": query})
            assert (await client.receive_json_from(timeout=5))["initial"] is True
        assert len(live_hub().feeds) == 1  # same query, same access: one feed

        def olive_joins_the_rival() -> None:
            Membership.objects.create(organization=organization_get(slug="rival-org"), user=olive_user(), role="viewer")

        def olive_user():
            from django.contrib.auth import get_user_model

            return get_user_model().objects.get(username="olive")

        await database_sync_to_async(olive_joins_the_rival)()
        assert await olive.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_SCOPE_CHANGED}
        now = datetime.now(UTC)
        await database_sync_to_async(ingest)(
            rival_key, [{"time": iso(now), "device": "rival", "temperature": 9.0}], slug="rival-plant"
        )
        await database_sync_to_async(ingest)(own_key, [{"time": iso(now), "device": "own", "temperature": 2.0}])
        received = []
        while not await pearl.receive_nothing(timeout=1.0):
            received.extend(device_points(await pearl.receive_json_from(timeout=1)))
        assert {device for device, _, _ in received} == {"own"}
    finally:
        await pearl.disconnect()
        await olive.disconnect()
        await live_hub().stop()


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_a_policy_change_re_scopes_open_connections_at_once():
    def setup() -> str:
        user = user_create(username="olive")
        _, key = source_with_key(slug="plant")
        ingest(key, [{"time": iso(datetime.now(UTC)), "device": "d1", "temperature": 1.0}])
        return api_token_create(user=user, name="live")[1]

    token = await database_sync_to_async(setup)()
    client = await connect(token)
    try:
        query = {"metric": "temperature", "aggregation": "raw", "start": "-10m"}
        await client.send_json_to({"type": "subscribe", "id": "all", "query": query})
        assert (await client.receive_json_from(timeout=5))["initial"] is True
        await database_sync_to_async(lambda: DataPolicy.objects.filter(organization__slug="test-org").delete())()
        assert await client.receive_output(timeout=5) == {"type": "websocket.close", "code": CLOSE_SCOPE_CHANGED}
        again = await connect(token)
        await again.send_json_to({"type": "subscribe", "id": "all", "query": query})
        refused = await again.receive_json_from(timeout=5)
        assert refused["type"] == "error" or not refused["series"]  # deny by default: nothing left to read
        await again.disconnect()
    finally:
        await client.disconnect()
        await live_hub().stop()


@pytest.mark.django_db(transaction=True)
def test_a_policy_change_takes_effect_at_once_for_queries():
    """Scopes are cached per process by a generation every committed change bumps: the next query sees it."""
    user = user_create(username="olive")
    source = source_create(slug="plant")
    for device, facility in (("d1", "f1"), ("d2", "f2")):
        series_id = series_create(source=source, metric="temperature", device=device, facility=facility)
        points_store(series_id, [(datetime.now(UTC) - timedelta(minutes=1), 1.0)])
    client = api_client_for(user)

    def devices() -> set[str]:
        answer = client.post("/api/v1/query", {"metric": "temperature", "aggregation": "raw", "start": "-1h"},
                             format="json").json()  # fmt: skip
        return {item["labels"]["device"] for item in answer["series"]}

    assert devices() == {"d1", "d2"}
    policy = DataPolicy.objects.get(organization__slug="test-org")
    policy.labels = {"facility": ["f2"]}
    policy.save()
    assert devices() == {"d2"}
    policy.delete()
    assert client.get("/api/v1/series/metrics").json()["metrics"] == []
