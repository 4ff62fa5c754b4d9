"""Live subscriptions through Channels' WebsocketCommunicator: snapshot, deltas, refusals, limits."""

from __future__ import annotations

import asyncio
import json
from datetime import UTC, datetime, timedelta

import pytest
from channels.db import database_sync_to_async
from channels.testing import WebsocketCommunicator

from apps.access.services import api_token_create
from apps.dashboards import live
from apps.dashboards.live import live_bucket_seconds, live_hub
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import query_spec_parse
from apps.storage.tiers import bucket_floor
from tests.dashboards.live_clients import RAW_QUERY
from tests.dashboards.live_clients import connect as _connect
from tests.dashboards.live_clients import ingest as _ingest
from tests.dashboards.live_clients import iso as _iso
from tests.dashboards.live_clients import points as _points
from tests.factories import user_create
from tests.ingestion.factories import source_with_key
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture)

live_test = [pytest.mark.asyncio, pytest.mark.usefixtures("storage_committed_cleanup")]


def _live(function):
    for mark in live_test:
        function = mark(function)
    return function


def _setup(username: str = "olive") -> tuple[str, str]:
    """A user of the test organisation with an API token, and a source there with a write key."""
    user = user_create(username=username)
    _, token = api_token_create(user=user, name="live")
    _, key = source_with_key(slug="plant")
    return token, key


async def _close(communicator: WebsocketCommunicator) -> None:
    await communicator.disconnect()
    await live_hub().stop()


@_live
async def test_snapshot_then_delta_of_new_points_only():
    token, key = await database_sync_to_async(_setup)()
    now = datetime.now(UTC).replace(microsecond=0)
    first = [{"time": _iso(now - timedelta(seconds=30)), "device": "d1", "facility": "f1", "temperature": 20.0}]
    await database_sync_to_async(_ingest)(key, first)
    communicator = await _connect(token)
    try:
        await communicator.send_json_to({"type": "subscribe", "id": "p1", "query": RAW_QUERY})
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["type"] == "data"
        assert snapshot["id"] == "p1"
        assert snapshot["initial"] is True
        assert _points(snapshot) == [(_iso(now - timedelta(seconds=30)), 20.0)]
        assert snapshot["series"][0]["labels"] == {"device": "d1", "facility": "f1"}

        later = [{"time": _iso(now - timedelta(seconds=5)), "device": "d1", "facility": "f1", "temperature": 21.5}]
        await database_sync_to_async(_ingest)(key, later)
        delta = await communicator.receive_json_from(timeout=3)
        assert delta["type"] == "data"
        assert "initial" not in delta
        assert _points(delta) == [(_iso(now - timedelta(seconds=5)), 21.5)]

        # A new device appears after the subscription: picked up without re-subscribing.
        new_device = [{"time": _iso(now - timedelta(seconds=4)), "device": "d9", "facility": "f1", "temperature": 30.0}]
        await database_sync_to_async(_ingest)(key, new_device)
        delta = await communicator.receive_json_from(timeout=3)
        assert delta["series"][0]["labels"]["device"] == "d9"
        assert _points(delta) == [(_iso(now - timedelta(seconds=4)), 30.0)]
        # The first delta came from the changes message (a known series); the new device's from a tail query.
        assert (live_hub().message_deltas, live_hub().tail_queries) == (1, 1)
    finally:
        await _close(communicator)


@_live
async def test_a_panel_on_a_metric_with_no_data_yet_subscribes_and_fills_in():
    token, key = await database_sync_to_async(_setup)()
    communicator = await _connect(token)
    try:
        await communicator.send_json_to({"type": "subscribe", "id": "p1", "query": RAW_QUERY})
        snapshot = await communicator.receive_json_from(timeout=5)
        assert (snapshot["type"], snapshot["series"], snapshot["initial"]) == ("data", [], True)
        now = datetime.now(UTC).replace(microsecond=0)
        first = [{"time": _iso(now - timedelta(seconds=3)), "device": "d1", "temperature": 19.5}]
        await database_sync_to_async(_ingest)(key, first)
        delta = await communicator.receive_json_from(timeout=3)
        assert _points(delta) == [(_iso(now - timedelta(seconds=3)), 19.5)]
    finally:
        await _close(communicator)


@_live
async def test_a_reduced_subscription_sends_the_reduction_again_when_it_changes():
    token, key = await database_sync_to_async(_setup)()
    now = datetime.now(UTC).replace(microsecond=0)
    records = [{"time": _iso(now - timedelta(seconds=40)), "device": device, "temperature": 2.0} for device in "ab"]
    await database_sync_to_async(_ingest)(key, records)
    query = {
        "source": "plant",
        "metric": "temperature",
        "aggregation": "sum",
        "start": "-10m",
        "reduce": {"calculation": "sum", "combination": "sum"},
    }
    communicator = await _connect(token)
    try:
        await communicator.send_json_to({"type": "subscribe", "id": "stat", "query": query})
        snapshot = await communicator.receive_json_from(timeout=5)
        assert (snapshot["series"], snapshot["reduced"]) == ([], [{"labels": {}, "value": 4.0}])
        later = [{"time": _iso(now - timedelta(seconds=2)), "device": "a", "temperature": 5.5}]
        await database_sync_to_async(_ingest)(key, later)
        update = await communicator.receive_json_from(timeout=3)
        assert (update["id"], update["reduced"]) == ("stat", [{"labels": {}, "value": 9.5}])
    finally:
        await _close(communicator)


@_live
async def test_bucketed_delta_updates_the_last_bucket_and_clients_share_a_feed():
    token, key = await database_sync_to_async(_setup)()
    now = datetime.now(UTC)
    query = {"source": "plant", "metric": "temperature", "aggregation": "avg", "bucket": "1m", "start": "-10m"}
    minute = now.replace(second=0, microsecond=0)
    if now - minute < timedelta(seconds=2):
        minute -= timedelta(minutes=1)
    base = minute + timedelta(milliseconds=200)
    await database_sync_to_async(_ingest)(key, [{"time": _iso(base), "device": "d1", "temperature": 10.0}])
    first, second = await _connect(token), await _connect(token)
    try:
        for communicator in (first, second):
            await communicator.send_json_to({"type": "subscribe", "id": "avg", "query": query})
            snapshot = await communicator.receive_json_from(timeout=5)
            assert snapshot["initial"] is True
            assert snapshot["bucket_seconds"] == 60
        assert len(live_hub().feeds) == 1  # identical spec and scope: one feed, one tail query per flush
        moment = base + timedelta(milliseconds=500)
        await database_sync_to_async(_ingest)(key, [{"time": _iso(moment), "device": "d1", "temperature": 20.0}])
        bucket = _iso(moment.replace(second=0, microsecond=0))
        for communicator in (first, second):
            delta = await communicator.receive_json_from(timeout=3)
            # The bucket holding both points is sent again with its new average.
            assert _points(delta) == [(bucket, 15.0)]
    finally:
        await first.disconnect()
        await _close(second)
    assert live_hub().feeds == {}


def _bucket_begun_minutes_ago(now: datetime, minutes: int) -> tuple[str, datetime]:
    """A bucket (of a few nice widths) that began at least `minutes` before `now`, and its start."""
    for bucket, seconds in (("1h", 3600), ("1d", 86_400), ("2d", 172_800), ("3d", 259_200), ("7d", 604_800)):
        start = bucket_floor(now, seconds)
        if now - start >= timedelta(minutes=minutes):
            return bucket, start
    raise AssertionError(f"no bucket began {minutes} minutes before {now}")


@_live
async def test_a_bucket_the_window_cuts_counts_only_what_is_inside_the_window():
    # A sum by day over the last 2 minutes: today's bucket holds only the window's points, in the snapshot and in
    # every delta (the tail query starts at the window's start, not at the bucket's).
    token, key = await database_sync_to_async(_setup)()
    now = datetime.now(UTC)
    bucket, bucket_start = _bucket_begun_minutes_ago(now, 10)
    await database_sync_to_async(_ingest)(key, [{"time": _iso(now - timedelta(minutes=8)), "temperature": 100.0}])
    query = {"source": "plant", "metric": "temperature", "aggregation": "sum", "bucket": bucket, "start": "-2m",
             "fill": "none"}  # fmt: skip
    communicator = await _connect(token)
    try:
        await communicator.send_json_to({"type": "subscribe", "id": "cut", "query": query})
        snapshot = await communicator.receive_json_from(timeout=5)
        assert snapshot["initial"] is True
        assert _points(snapshot) == []  # the point 8 minutes ago is outside the window
        await database_sync_to_async(_ingest)(key, [{"time": _iso(datetime.now(UTC)), "temperature": 5.0}])
        delta = await communicator.receive_json_from(timeout=3)
        assert _points(delta) == [(_iso(bucket_start), 5.0)]
    finally:
        await _close(communicator)


@_live
async def test_bad_spec_is_refused_naming_the_field():
    token, _ = await database_sync_to_async(_setup)()
    communicator = await _connect(token)
    try:
        await communicator.send_json_to(
            {"type": "subscribe", "id": "bad", "query": {"metric": "temperature", "aggregation": "median"}}
        )
        error = await communicator.receive_json_from(timeout=5)
        assert error["type"] == "error"
        assert error["id"] == "bad"
        assert error["field"] == "query.aggregation"
        assert "aggregation" in error["message"]
        await communicator.send_json_to({"type": "subscribe", "id": "since", "query": RAW_QUERY, "since": "yesterday"})
        error = await communicator.receive_json_from(timeout=5)
        assert error["field"] == "since"
        await communicator.send_json_to({"type": "subscribe", "query": RAW_QUERY})
        assert (await communicator.receive_json_from(timeout=5))["field"] == "id"
    finally:
        await _close(communicator)


@_live
async def test_another_organisations_source_looks_like_one_with_no_data_yet():
    def setup() -> tuple[str, str]:
        token, _ = _setup()
        _, foreign_key = source_with_key(slug="rival-plant", organization="rival-org")
        _ingest(
            foreign_key,
            [{"time": _iso(datetime.now(UTC)), "device": "x", "temperature": 1.0}],
            slug="rival-plant",
        )
        return token, foreign_key

    token, _ = await database_sync_to_async(setup)()
    communicator = await _connect(token)
    try:
        # What may not be read looks exactly like what does not exist: both subscribe, empty.
        answers = []
        for client_id, source in (("spy", "rival-plant"), ("none", "no-such-plant")):
            query = {**RAW_QUERY, "source": source}
            await communicator.send_json_to({"type": "subscribe", "id": client_id, "query": query})
            message = await communicator.receive_json_from(timeout=5)
            answers.append({key: value for key, value in message.items() if key != "id"})
        assert answers[0] == answers[1]
        assert (answers[0]["type"], answers[0]["series"]) == ("data", [])
        # Without a source the query spans only the user's own sources: the rival's series never appear.
        await communicator.send_json_to({"type": "subscribe", "id": "all", "query": {**RAW_QUERY, "source": None}})
        message = await communicator.receive_json_from(timeout=5)
        assert (message["type"], message["series"]) == ("data", [])  # no temperature of the user's own yet
    finally:
        await _close(communicator)


@_live
async def test_unsubscribe_stops_deltas_and_limits_apply(monkeypatch):
    token, key = await database_sync_to_async(_setup)()
    now = datetime.now(UTC)
    await database_sync_to_async(_ingest)(key, [{"time": _iso(now), "device": "d1", "temperature": 1.0}])
    communicator = await _connect(token)
    try:
        await communicator.send_json_to({"type": "subscribe", "id": "p", "query": RAW_QUERY})
        assert (await communicator.receive_json_from(timeout=5))["initial"] is True
        await communicator.send_json_to({"type": "unsubscribe", "id": "p"})
        assert await communicator.receive_json_from(timeout=5) == {"type": "unsubscribed", "id": "p"}
        assert live_hub().feeds == {}
        await database_sync_to_async(_ingest)(
            key, [{"time": _iso(now + timedelta(milliseconds=1)), "device": "d1", "temperature": 2.0}]
        )
        assert await communicator.receive_nothing(timeout=0.6)
        await communicator.send_json_to({"type": "unsubscribe", "id": "p"})
        assert (await communicator.receive_json_from(timeout=5))["type"] == "error"

        monkeypatch.setattr("apps.dashboards.consumers.MAX_SUBSCRIPTIONS_PER_CONNECTION", 2)
        for index in range(3):
            await communicator.send_json_to({"type": "subscribe", "id": f"s{index}", "query": RAW_QUERY})
            answer = await communicator.receive_json_from(timeout=5)
        assert answer["type"] == "error"
        assert "at most 2" in answer["message"]
    finally:
        await _close(communicator)


def test_messages_are_split_at_the_point_limit(monkeypatch):
    monkeypatch.setattr(live, "MAX_POINTS_PER_MESSAGE", 3)
    series = [
        {"labels": {"d": "1"}, "points": [[str(index), index] for index in range(5)]},
        {"labels": {}, "points": []},
    ]
    messages = [
        json.loads(live._with_id("x", text)) for text in live._encoded(live._chunks(series, extra={"initial": True}))
    ]
    assert messages[0]["id"] == "x"
    assert [len(_points(message)) for message in messages] == [3, 2]
    assert messages[0]["initial"] is True
    assert "initial" not in messages[1]
    assert messages[1]["series"][-1] == {"labels": {}, "points": []}


@pytest.mark.parametrize(
    ("filters", "labels", "expected"),
    [
        ({"facility": "f1"}, {"facility": "f1"}, True),
        ({"facility": "f1"}, {}, False),
        ({"facility": {"ne": "f1"}}, {}, True),
        ({"facility": {"not_in": ["f1"]}}, {"facility": "f1"}, False),
        ({"facility": {"in": ["f1", "f2"]}}, {"facility": "f2"}, True),
        # Regex filters are PostgreSQL's to apply (test_live_messages.py checks them against the engine).
        ({"device": {"regex": "^x"}}, {}, True),
    ],
)
def test_label_filters_match_like_the_engine(filters, labels, expected):
    spec = query_spec_parse({"metric": "m", "filters": filters})
    assert live._labels_match(spec, labels) is expected


@pytest.mark.django_db
@pytest.mark.parametrize(
    "body",
    [
        {"metric": "temperature", "start": "-1h"},
        {"metric": "temperature", "start": "-7d", "bucket": "1h", "max_points": 100},
        {"metric": "temperature", "start": "-15m", "bucket": "10s", "max_points": 50},
    ],
)
def test_live_bucket_is_the_engines_bucket(body):
    user = user_create(username="bucket")
    _, key = source_with_key(slug="plant")
    _ingest(key, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 1.0}])
    spec = query_spec_parse(body)
    assert live_bucket_seconds(spec) == query_execute(spec=spec, principal=user).bucket_seconds


@pytest.mark.asyncio
async def test_changes_messages_mark_only_the_feeds_of_their_series():
    hub = live.LiveHub(redis_url="redis://unused")
    feed = live.LiveFeed(key="k", body=RAW_QUERY, scope=live.DataScope(), source_id=1, bucket_seconds=None)
    other = live.LiveFeed(key="o", body=RAW_QUERY, scope=live.DataScope(), source_id=2, bucket_seconds=None)
    hub.feeds = {"k": feed, "o": other}
    hub.series_index = {10: {feed}, 20: {other}}
    hub.known_series = {10, 11, 20}
    hub.changes_apply(json.dumps({"source": 1, "series": [10, 11], "start": "2026-01-01T00:00:00+00:00",
                                  "end": "2026-01-01T00:00:01+00:00", "points": 2}))  # fmt: skip
    assert feed.dirty_start is not None
    assert other.dirty_start is None
    assert not feed.needs_resolve
    # An unknown series of source 2: only feeds covering source 2 re-resolve and re-read.
    hub.changes_apply(json.dumps({"source": 2, "series": [99], "start": "2026-01-01T00:00:00+00:00",
                                  "end": "2026-01-01T00:00:00+00:00", "points": 1}))  # fmt: skip
    assert other.needs_resolve
    assert other.dirty_start is not None
    assert not feed.needs_resolve
    hub.changes_apply(b"not json")  # logged and ignored
    await asyncio.sleep(0)


@_live
async def test_a_user_removed_from_the_organisation_is_disconnected_and_then_refused():
    from apps.access.models import Membership
    from apps.dashboards.consumers import CLOSE_SCOPE_CHANGED

    def setup() -> tuple[str, str, str]:
        token, key = _setup("olive")
        other = user_create(username="pearl")
        _, other_token = api_token_create(user=other, name="live")
        _ingest(key, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 1.0}])
        return token, other_token, key

    token, other_token, key = await database_sync_to_async(setup)()
    removed, stays = await _connect(token), await _connect(other_token)
    try:
        for communicator in (removed, stays):
            await communicator.send_json_to({"type": "subscribe", "id": "raw", "query": RAW_QUERY})
            assert (await communicator.receive_json_from(timeout=5))["initial"] is True
        await database_sync_to_async(lambda: Membership.objects.filter(user__username="olive").delete())()
        closed = await removed.receive_output(timeout=5)
        assert closed == {"type": "websocket.close", "code": CLOSE_SCOPE_CHANGED}
        # Pearl keeps her connection and her deltas.
        await database_sync_to_async(_ingest)(
            key, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 2.0}]
        )
        delta = await stays.receive_json_from(timeout=5)
        assert delta["type"] == "data"
        assert _points(delta)[-1][1] == 2.0
        # Olive reconnects, as the browser does, and sees nothing of what she may no longer read (as if it did
        # not exist).
        again = await _connect(token)
        await again.send_json_to({"type": "subscribe", "id": "raw", "query": RAW_QUERY})
        answer = await again.receive_json_from(timeout=5)
        assert (answer["type"], answer["series"]) == ("data", [])
        await again.disconnect()
    finally:
        await stays.disconnect()
        await _close(removed)


@_live
async def test_scope_messages_close_only_the_named_users_connections():
    hub = live_hub()
    closed: list[str] = []

    def closer(name: str):
        async def close() -> None:
            closed.append(name)

        return close

    first, second, third = closer("a1"), closer("a2"), closer("b")
    hub.connection_add(1, first)
    hub.connection_add(1, second)
    hub.connection_add(2, third)
    assert hub.scope_changed_apply({1}) == 2
    await asyncio.sleep(0)
    assert sorted(closed) == ["a1", "a2"]
    hub.connection_remove(1, first)
    assert hub.scope_changed_apply(None) == 2  # everyone: a2 and b
    await asyncio.sleep(0)
    assert sorted(closed) == ["a1", "a2", "a2", "b"]
    hub.connection_remove(1, second)
    hub.connection_remove(2, third)
    assert hub.connections == {}


@pytest.mark.django_db
def test_the_bucket_a_sliding_window_cuts_is_sent_again_as_the_window_moves_on(monkeypatch):
    """Hourly sums over the last hour: the first bucket holds only the window's minutes, so every minute the window
    slides it holds less. A write into the newest bucket made the tail read that bucket only, and the first one kept
    its snapshot value on the page. The flush reads it again whenever the window's start has moved to another whole
    minute, and then it equals the query API's answer at that moment; not in between (no extra query)."""
    from apps.storage.policies import data_scope_for
    from tests.storage.factories import points_store, series_create, source_create

    hour = bucket_floor(datetime.now(UTC), 3600) - timedelta(hours=3)
    source = source_create(slug="plant")
    series_id = series_create(source=source, metric="temperature", device="d1")
    points_store(series_id, [(hour + timedelta(minutes=minute), float(minute)) for minute in range(120)])
    viewer = user_create(username="olive")
    scope = data_scope_for(viewer)
    body = {"source": "plant", "metric": "temperature", "aggregation": "sum", "bucket": "1h", "start": "-1h",
            "fill": "none"}  # fmt: skip
    parse = live.query_spec_parse
    clock = {"now": hour + timedelta(hours=1, minutes=30, seconds=10)}
    monkeypatch.setattr(live, "query_spec_parse", lambda data: parse(data, now=clock["now"]))
    feed = live.LiveFeed(key="k", body=body, scope=scope, source_id=source.pk, bucket_seconds=3600)
    write = (hour + timedelta(hours=1, minutes=20), hour + timedelta(hours=1, minutes=20))  # in the newest bucket

    def api_answer() -> list:
        return query_execute(spec=parse(body, now=clock["now"]), scope=scope).series[0]["points"]

    sent = live._tail(feed=feed, span=write)[0]["points"]
    assert sent == api_answer()
    assert sent == [
        [_iso(hour), float(sum(range(30, 60)))],
        [_iso(hour + timedelta(hours=1)), float(sum(range(60, 91)))],
    ]
    clock["now"] += timedelta(seconds=20)  # the same whole minute: the first bucket is as it was
    assert [point[0] for point in live._tail(feed=feed, span=write)[0]["points"]] == [_iso(hour + timedelta(hours=1))]
    clock["now"] += timedelta(minutes=3)  # 01:33:30: three more minutes slid out of the first bucket
    sent = live._tail(feed=feed, span=write)[0]["points"]
    assert sent[0] == [_iso(hour), float(sum(range(33, 60)))]
    assert sent == api_answer()
