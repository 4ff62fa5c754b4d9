"""Raw-point feeds answered from the points that changes messages carry: exact, scoped, resumable, bounded."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator
from django.contrib.auth import get_user_model

from apps.access.services import api_token_create
from apps.dashboards import live
from apps.dashboards.live import live_hub
from apps.ingestion import events
from apps.storage.columns import EPOCH, time_micros
from apps.storage.policies import DataScope, Grant, data_scope_for, data_scope_provider_get, data_scope_provider_set
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import query_spec_parse
from tests.dashboards.live_clients import RAW_QUERY
from tests.dashboards.live_clients import connect as _connect
from tests.dashboards.live_clients import device_points as _device_points
from tests.dashboards.live_clients import ingest as _ingest
from tests.dashboards.live_clients import iso as _iso
from tests.factories import user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)


def _token(username: str) -> str:
    _, token = api_token_create(user=user_create(username=username), name="live")
    return token


async def _subscribe(communicator: WebsocketCommunicator, query: dict, **extra) -> dict:
    await communicator.send_json_to({"type": "subscribe", "id": "p", "query": query, **extra})
    snapshot = await communicator.receive_json_from(timeout=5)
    assert snapshot["type"] == "data", snapshot
    assert snapshot["initial"] is True
    return snapshot


def _engine_points(user, query: dict, start: datetime) -> list[tuple[str, str, float]]:
    spec = query_spec_parse({**query, "start": _iso(start)})
    return _device_points({"series": query_execute(spec=spec, principal=user).series})


def test_small_batches_carry_their_points_exactly_and_big_ones_do_not(monkeypatch):
    moment = datetime(2026, 1, 1, 10, 0, 5, 123456, tzinfo=UTC)
    rows = [(7, moment, 1.5), (8, moment, 2), (7, moment, 3.0)]
    message = json.loads(json.dumps(events.changes_message(source_id=1, rows=rows)))
    assert message["rows"] == {
        "series": [7, 8, 7],
        "times": [time_micros(moment)] * 3,
        "values": [1.5, 2.0, 3.0],
    }
    assert EPOCH + timedelta(microseconds=message["rows"]["times"][0]) == moment
    monkeypatch.setattr(events, "CHANGES_MAX_POINTS", 2)
    message = events.changes_message(source_id=1, rows=rows)
    assert "rows" not in message
    assert message["series"] == [7, 8]


@pytest.mark.asyncio
async def test_changes_apply_keeps_points_only_for_feeds_answered_from_messages(monkeypatch):
    hub = live.LiveHub(redis_url="redis://unused")

    def feed(key: str, headers: dict | None) -> live.LiveFeed:
        made = live.LiveFeed(key=key, body=RAW_QUERY, scope=DataScope(), source_id=1, bucket_seconds=None)
        made.headers = headers
        return made

    raw, aggregated = feed("raw", {10: (0, {"labels": {}, "source": "plant"})}), feed("avg", None)
    hub.feeds = {"raw": raw, "avg": aggregated}
    hub.series_index = {10: {raw, aggregated}, 11: {aggregated}}
    hub.message_index = {10: {raw}}
    hub.known_series = {10, 11}
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    rows = [(10, moment, 1.0), (11, moment, 2.0), (10, moment, 4.0), (10, moment + timedelta(seconds=1), 5.0)]
    hub.changes_apply(json.dumps(events.changes_message(source_id=1, rows=rows)))
    micros = time_micros(moment)
    assert raw.pending == {(10, micros): 4.0, (10, micros + 1_000_000): 5.0}  # the batch's last point wins
    assert not raw.needs_query
    assert aggregated.needs_query
    assert not aggregated.pending
    # A batch too big to carry its points: the raw feed reads its tail like the others.
    monkeypatch.setattr(events, "CHANGES_MAX_POINTS", 1)
    hub.changes_apply(json.dumps(events.changes_message(source_id=1, rows=rows)))
    assert raw.needs_query
    # A burst beyond MAX_PENDING_POINTS: the points are dropped and the tail is read instead.
    monkeypatch.setattr(events, "CHANGES_MAX_POINTS", 10)
    monkeypatch.setattr(live, "MAX_PENDING_POINTS", 1)
    raw.needs_query, raw.pending = False, {}
    hub.changes_apply(json.dumps(events.changes_message(source_id=1, rows=rows)))
    assert raw.needs_query
    assert raw.pending == {}
    await asyncio.sleep(0)


@pytest.mark.django_db
@pytest.mark.filterwarnings("ignore:Possible nested set:FutureWarning")  # Python reading the POSIX class
@pytest.mark.parametrize(
    "filters",
    [
        {"device": "d001"},
        {"device": {"ne": "d001"}},
        {"device": {"in": ["d001", "x9"]}},
        {"facility": {"not_in": ["f1"]}},
        # A POSIX class: PostgreSQL matches it, Python's `re` reads "[[:digit:]]" as a set of characters.
        {"device": {"regex": "^d[[:digit:]]+$"}},
        {"device": {"regex": "^x"}},
    ],
)
def test_feed_series_are_the_engines_selection(filters):
    user = user_create(username="selector")
    _, key = source_with_key(slug="plant")
    now = datetime.now(UTC)
    _ingest(
        key,
        [
            {"time": _iso(now), "device": "d001", "facility": "f1", "temperature": 1.0},
            {"time": _iso(now), "device": "d002", "temperature": 2.0},
            {"time": _iso(now), "device": "x9", "facility": "f2", "temperature": 3.0},
        ],
    )
    query = {**RAW_QUERY, "filters": filters}
    series, headers = live._series_for(body=query, scope=data_scope_for(user))
    engine = sorted(device for device, _, _ in _engine_points(user, query, now - timedelta(minutes=1)))
    assert headers is not None
    assert sorted(header["labels"]["device"] for _, header in headers.values()) == engine
    assert len(series) == len(engine)


@pytest.mark.django_db
def test_aggregated_or_truncated_feeds_are_not_answered_from_messages():
    user = user_create(username="grouped")
    _, key = source_with_key(slug="plant")
    now = _iso(datetime.now(UTC))
    _ingest(key, [{"time": now, "device": device, "temperature": 1.0} for device in ("d1", "d2")])
    assert live._series_for(body=RAW_QUERY, scope=data_scope_for(user))[1] is not None
    # Aggregated, or more series than the limit (the engine would cut some): tail queries.
    for query in ({**RAW_QUERY, "aggregation": "avg"}, {**RAW_QUERY, "limit": 1}):
        series, headers = live._series_for(body=query, scope=data_scope_for(user))
        assert len(series) == 2, query
        assert headers is None, query


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_delta_from_the_message_is_exactly_what_was_committed_and_needs_no_query():
    token = await database_sync_to_async(_token)("olive")
    _, key = await database_sync_to_async(source_with_key)(slug="plant")
    user = await database_sync_to_async(get_user_model().objects.get)(username="olive")
    now = datetime.now(UTC)
    # Every series exists before the subscription (a new series makes the feed re-resolve and read its tail).
    earlier = [
        {"time": _iso(now - timedelta(minutes=1)), "device": device, "temperature": 0.0, "humidity": 0.0}
        for device in ("d1", "d2", "d3")
    ]
    await database_sync_to_async(_ingest)(key, earlier)
    query = {**RAW_QUERY, "filters": {"device": {"in": ["d1", "d2"]}}}
    communicator = await _connect(token)
    try:
        await _subscribe(communicator, query)
        # Series this process has not seen yet make feeds re-resolve and read their tail: see them once first
        # (the same points again: nothing is sent, the snapshot has them).
        await database_sync_to_async(_ingest)(key, earlier)
        await asyncio.sleep(0.3)
        assert live_hub().tail_queries == 1
        first, second = now - timedelta(seconds=2, microseconds=345_678), now - timedelta(seconds=1)
        batch = [
            {"time": _iso(first), "device": "d1", "temperature": 20.0, "humidity": 50.0},
            {"time": _iso(first), "device": "d2", "temperature": 5.0},
            {"time": _iso(second), "device": "d1", "temperature": 1.0},
            {"time": _iso(second), "device": "d1", "temperature": 2.0},  # replaces the previous point
            {"time": _iso(second), "device": "d3", "temperature": 9.0},  # not in the filter
            {"time": _iso(now - timedelta(minutes=20)), "device": "d1", "temperature": 7.0},  # before the window
        ]
        await database_sync_to_async(_ingest)(key, batch)
        delta = await communicator.receive_json_from(timeout=3)
        assert "initial" not in delta
        expected = [("d1", _iso(first), 20.0), ("d1", _iso(second), 2.0), ("d2", _iso(first), 5.0)]
        assert sorted(_device_points(delta)) == expected
        # What the engine reads back for the same span, in the same shape (labels and source per series).
        assert sorted(_device_points(delta)) == sorted(await database_sync_to_async(_engine_points)(user, query, first))
        assert {entry["source"] for entry in delta["series"]} == {"plant"}
        assert (live_hub().message_deltas, live_hub().tail_queries) == (1, 1)
    finally:
        await communicator.disconnect()
        await live_hub().stop()


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_message_deltas_respect_the_data_scope():
    original = data_scope_provider_get()

    def provider(principal) -> DataScope:
        scope = original(principal)
        user = getattr(principal, "user", principal)  # a token bound to its organisation reads as a Principal
        if user.username == "rita":
            return DataScope.of(
                [
                    Grant.build(organization_id=g.organization_id, source_ids=g.source_ids, labels={"facility": ["f1"]})
                    for g in scope.grants
                ]
            )
        return scope

    data_scope_provider_set(provider)
    try:
        olive_token = await database_sync_to_async(_token)("olive")
        rita_token = await database_sync_to_async(_token)("rita")
        _, key = await database_sync_to_async(source_with_key)(slug="plant")
        now = datetime.now(UTC)
        old = [
            {"time": _iso(now - timedelta(minutes=1)), "device": device, "facility": facility, "temperature": 0.0}
            for device, facility in (("d1", "f1"), ("d2", "f2"))
        ]
        await database_sync_to_async(_ingest)(key, old)
        olive, rita = await _connect(olive_token), await _connect(rita_token)
        try:
            assert {device for device, _, _ in _device_points(await _subscribe(olive, RAW_QUERY))} == {"d1", "d2"}
            assert {device for device, _, _ in _device_points(await _subscribe(rita, RAW_QUERY))} == {"d1"}
            assert len(live_hub().feeds) == 2  # same spec, different scopes: two feeds
            batch = [
                {"time": _iso(now), "device": "d1", "facility": "f1", "temperature": 1.0},
                {"time": _iso(now), "device": "d2", "facility": "f2", "temperature": 2.0},
            ]
            await database_sync_to_async(_ingest)(key, batch)
            assert sorted(_device_points(await olive.receive_json_from(timeout=3))) == [
                ("d1", _iso(now), 1.0),
                ("d2", _iso(now), 2.0),
            ]
            assert _device_points(await rita.receive_json_from(timeout=3)) == [("d1", _iso(now), 1.0)]
            assert await rita.receive_nothing(timeout=0.3)
            assert (live_hub().message_deltas, live_hub().tail_queries) == (2, 0)
        finally:
            await olive.disconnect()
            await rita.disconnect()
            await live_hub().stop()
    finally:
        data_scope_provider_set(original)


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_resume_then_message_deltas_have_no_gap_and_no_duplicates():
    token = await database_sync_to_async(_token)("olive")
    _, key = await database_sync_to_async(source_with_key)(slug="plant")
    start = datetime.now(UTC).replace(microsecond=0) - timedelta(seconds=60)

    def record(second: int, device: str = "d1") -> dict:
        return {"time": _iso(start + timedelta(seconds=second)), "device": device, "temperature": float(second)}

    await database_sync_to_async(_ingest)(key, [record(0), record(1)])
    received: dict[tuple[str, str], float] = {}
    arrivals: list[tuple[str, str]] = []

    def keep(message: dict) -> None:
        for device, moment, value in _device_points(message):
            arrivals.append((device, moment))
            received[(device, moment)] = value

    communicator = await _connect(token)
    try:
        keep(await _subscribe(communicator, RAW_QUERY))
        await database_sync_to_async(_ingest)(key, [record(2)])
        keep(await communicator.receive_json_from(timeout=3))
    finally:
        await communicator.disconnect()
    assert live_hub().feeds == {}
    since = max(moment for _, moment in received)
    # While away: a point at the very time the client has last (another device), and two later ones.
    await database_sync_to_async(_ingest)(key, [record(2, "d2"), record(3), record(4)])
    communicator = await _connect(token)
    try:
        resumed = await _subscribe(communicator, RAW_QUERY, since=since)
        assert resumed["since"] == since
        assert all(moment >= since for _, moment, _ in _device_points(resumed))
        keep(resumed)
        await database_sync_to_async(_ingest)(key, [record(5), record(5, "d2")])
        keep(await communicator.receive_json_from(timeout=3))
        assert await communicator.receive_nothing(timeout=0.3)
        assert (live_hub().message_deltas, live_hub().tail_queries) == (2, 0)  # one delta per connection
    finally:
        await communicator.disconnect()
        await live_hub().stop()
    assert sorted(received.values()) == [0.0, 1.0, 2.0, 2.0, 3.0, 4.0, 5.0, 5.0]
    # Only the point at `since` itself came twice (replaced on merge); nothing else did.
    duplicates = {slot for slot in arrivals if arrivals.count(slot) > 1}
    assert duplicates == {("d1", since)}


@pytest.mark.asyncio
@pytest.mark.usefixtures("storage_committed_cleanup")
async def test_batches_too_big_for_the_message_are_read_back(monkeypatch):
    monkeypatch.setattr(events, "CHANGES_MAX_POINTS", 1)
    token = await database_sync_to_async(_token)("olive")
    _, key = await database_sync_to_async(source_with_key)(slug="plant")
    now = datetime.now(UTC)
    await database_sync_to_async(_ingest)(
        key, [{"time": _iso(now - timedelta(minutes=1)), "device": "d1", "temperature": 0.0}]
    )
    communicator = await _connect(token)
    try:
        await _subscribe(communicator, RAW_QUERY)
        batch = [{"time": _iso(now), "device": device, "temperature": 1.0} for device in ("d1", "d2")]
        await database_sync_to_async(_ingest)(key, batch)
        delta = await communicator.receive_json_from(timeout=3)
        assert sorted(_device_points(delta)) == [("d1", _iso(now), 1.0), ("d2", _iso(now), 1.0)]
        assert (live_hub().message_deltas, live_hub().tail_queries) == (0, 1)
    finally:
        await communicator.disconnect()
        await live_hub().stop()


@pytest.mark.asyncio
async def test_flushes_are_coalesced_per_feed_and_lose_no_point():
    """A feed gets at most about one message per interval (a burst of FLUSH_BURST), every point of every batch,
    and another feed's change is not held back by it."""
    hub = live.LiveHub(redis_url="redis://unused")
    loop = asyncio.get_running_loop()
    received: dict[str, list[tuple[float, dict]]] = {"busy": [], "quiet": []}

    def feed(key: str, series_id: int) -> live.LiveFeed:
        made = live.LiveFeed(key=key, body=RAW_QUERY, scope=DataScope(), source_id=1, bucket_seconds=None)
        made.headers = {series_id: (0, {"labels": {"device": key}, "source": "plant"})}
        made.series_ids = frozenset({series_id})
        made.resolved = True

        async def sink(text: str) -> None:
            received[key].append((loop.time(), json.loads(text)))

        made.subscribers.append(live.LiveSubscription(client_id=key, sink=sink, feed=made))
        hub.feeds[key] = made
        hub.series_index[series_id] = {made}
        hub.message_index[series_id] = {made}
        hub.known_series.add(series_id)
        return made

    feed("busy", 1)
    feed("quiet", 2)
    flush_loop = loop.create_task(hub._flush_loop())
    base = datetime.now(UTC).replace(microsecond=0) - timedelta(minutes=1)
    started = loop.time()
    try:
        for number in range(100):  # a batch every 10 ms for a second
            moment = base + timedelta(milliseconds=number)
            hub.changes_apply(json.dumps(events.changes_message(source_id=1, rows=[(1, moment, float(number))])))
            if number == 50:
                quiet_sent = loop.time()
                hub.changes_apply(json.dumps(events.changes_message(source_id=1, rows=[(2, moment, -1.0)])))
            await asyncio.sleep(0.01)
        await asyncio.sleep(2 * live.FLUSH_INTERVAL_SECONDS)
    finally:
        flush_loop.cancel()
    elapsed = loop.time() - started
    busy = received["busy"]
    assert len(busy) <= elapsed / live.FLUSH_INTERVAL_SECONDS + live.FLUSH_BURST
    assert len(busy) >= 5  # coalesced, not held back until the end
    values = [value for _, message in busy for _, value in message["series"][0]["points"]]
    assert values == [float(number) for number in range(100)]  # every point once, in order
    [(arrival, message)] = received["quiet"]
    assert arrival - quiet_sent < live.FLUSH_INTERVAL_SECONDS / 2  # not made to wait for the busy feed
    assert message["series"][0]["points"][0][1] == -1.0
