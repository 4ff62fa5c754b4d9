"""The access matrix, generated: users x roles x policy scenarios x read paths (REST query, CSV export, series list,
metric and label-value pickers, dashboard page, WebSocket subscription and pushes). Each user sees exactly the
series the oracle (tests/access/matrix.py) grants, and nothing else, on every path."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from django.test import Client

from apps.access.services import api_token_create
from apps.dashboards.live import live_hub
from tests.access.matrix import SCENARIOS, SERIES, SOURCES, USERS, granted, scenario_apply, users_create
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_make
from tests.dashboards.live_clients import connect, ingest, iso
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)
from tests.storage.factories import points_store, series_create, source_create

METRICS = ("temperature", "pressure")


def _world_store(moment: datetime) -> None:
    sources = {key: source_create(slug=key[1], organization=key[0]) for key in sorted(SOURCES)}
    for spec in SERIES:
        series_id = series_create(
            source=sources[(spec.organization, spec.source)], metric=spec.metric, **dict(spec.labels)
        )
        points_store(series_id, [(moment, 1.0)])


def _query(client, path: str, metric: str):
    return client.post(path, {"metric": metric, "aggregation": "raw", "start": "-1h"}, format="json")


def _empty_answer(response) -> bool:
    """What may be read of nothing: a 400 naming the metric or (since no data is not an error) an empty 200."""
    if response.status_code == 400:
        return response.json()["field"] == "metric"
    if response.status_code == 200 and response["Content-Type"].startswith("text/csv"):
        return not list(csv.DictReader(io.StringIO(response.content.decode())))
    return response.status_code == 200 and not response.json()["series"]


@pytest.mark.django_db
@pytest.mark.parametrize("scenario_name", sorted(SCENARIOS))
def test_rest_paths_show_exactly_what_the_policies_grant(scenario_name):
    scenario = SCENARIOS[scenario_name]
    users = users_create()
    _world_store(datetime.now(UTC) - timedelta(minutes=5))
    scenario_apply(scenario)
    dashboard = dashboard_make(title="Plant")
    for username, user in users.items():
        expected = granted(scenario, username)
        client = api_client_for(user)
        where = f"{scenario_name}/{username} ({USERS[username][1]})"
        for metric in METRICS:
            wanted = {(spec.source, spec.device) for spec in expected if spec.metric == metric}
            answer = _query(client, "/api/v1/query", metric)
            if wanted:
                assert answer.status_code == 200, (where, answer.content)
                got = {(item["source"], item["labels"]["device"]) for item in answer.json()["series"]}
                assert got == wanted, (where, "query", metric)
            else:
                assert _empty_answer(answer), (where, "query", metric, answer.content)
            exported = _query(client, "/api/v1/query/csv", metric)
            if wanted:
                rows = list(csv.DictReader(io.StringIO(exported.content.decode())))
                assert {(row["source"], row["device"]) for row in rows} == wanted, (where, "csv", metric)
            else:
                assert _empty_answer(exported), (where, "csv", metric)
        listed = client.get("/api/v1/series", {"limit": 100}).json()["results"]
        assert {(item["source"], item["metric"], item["labels"]["device"]) for item in listed} == {
            (spec.source, spec.metric, spec.device) for spec in expected
        }, (where, "series")
        metrics = client.get("/api/v1/series/metrics").json()["metrics"]
        assert set(metrics) == {spec.metric for spec in expected}, (where, "metrics picker")
        for label in ("device", "facility", "line"):
            values = client.get("/api/v1/series/label-values", {"label": label}).json()["values"]
            assert set(values) == {dict(spec.labels)[label] for spec in expected}, (where, f"{label} picker")
        names = client.get("/api/v1/series/label-keys").json()["labels"]
        assert set(names) == {name for spec in expected for name in dict(spec.labels)}, (where, "label names picker")
        browser = Client()
        browser.force_login(user)
        page = browser.get(f"/dashboards/{dashboard.uid}/")
        if USERS[username][0] == "test-org":
            assert page.status_code == 200, where
            hidden = {spec.device for spec in SERIES} - {spec.device for spec in expected}
            assert not [device for device in hidden if f'"{device}"' in page.content.decode()], where
        else:
            assert page.status_code == 404, where


def _live_world(moment: datetime) -> dict[str, str]:
    keys = {}
    for organization, slug in sorted(SOURCES):
        _, keys[slug] = source_with_key(slug=slug, organization=organization)
    _live_ingest(keys, moment, 1.0)
    return keys


def _live_ingest(keys: dict[str, str], moment: datetime, value: float) -> None:
    by_source: dict[str, dict[str, dict]] = {}
    for spec in SERIES:
        record = by_source.setdefault(spec.source, {}).setdefault(
            spec.device, {"time": iso(moment), **dict(spec.labels)}
        )
        record[spec.metric] = value
    for slug, records in by_source.items():
        ingest(keys[slug], list(records.values()), slug=slug)


def _live_setup(scenario) -> tuple[dict[str, str], dict[str, str]]:
    users = users_create()
    keys = _live_world(datetime.now(UTC) - timedelta(minutes=2))
    scenario_apply(scenario)
    tokens = {username: api_token_create(user=user, name="live")[1] for username, user in users.items()}
    return tokens, keys


async def _messages_until_quiet(communicator, quiet: float = 0.6) -> list[dict]:
    messages = []
    while not await communicator.receive_nothing(timeout=quiet):
        messages.append(await communicator.receive_json_from(timeout=1))
    return messages


def _devices(messages: list[dict]) -> set[str]:
    return {
        item["labels"]["device"]
        for message in messages
        if message.get("type") == "data"
        for item in message["series"]
        if item["points"]
    }


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
@pytest.mark.parametrize("scenario_name", sorted(SCENARIOS))
async def test_live_subscriptions_and_every_push_show_exactly_what_the_policies_grant(scenario_name):
    scenario = SCENARIOS[scenario_name]
    tokens, keys = await database_sync_to_async(_live_setup)(scenario)
    clients = {username: await connect(token) for username, token in tokens.items()}
    try:
        for metric in METRICS:
            query = {"metric": metric, "aggregation": "raw", "start": "-10m"}
            for client in clients.values():
                await client.send_json_to({"type": "subscribe", "id": metric, "query": query})
        snapshots = {username: await _messages_until_quiet(client) for username, client in clients.items()}
        for username, messages in snapshots.items():
            for metric in METRICS:
                expected = {spec.device for spec in granted(scenario, username) if spec.metric == metric}
                mine = [message for message in messages if message.get("id") == metric]
                assert _devices(mine) == expected, (scenario_name, username, metric, "snapshot")
                if not expected:
                    assert all(message["type"] == "error" or not message["series"] for message in mine)
        await database_sync_to_async(_live_ingest)(keys, datetime.now(UTC) - timedelta(seconds=1), 2.0)
        for username, client in clients.items():
            pushed = await _messages_until_quiet(client, quiet=1.0)
            for metric in METRICS:
                expected = {spec.device for spec in granted(scenario, username) if spec.metric == metric}
                mine = [message for message in pushed if message.get("id") == metric]
                assert _devices(mine) == expected, (scenario_name, username, metric, "pushes")
    finally:
        for client in clients.values():
            await client.disconnect()
        await live_hub().stop()
