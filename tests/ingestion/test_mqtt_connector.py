"""The MQTT connector against the real Mosquitto, PostgreSQL and Redis: stored once, acknowledged after the commit.

Each test uses its own topic and source (uuid) so queued or redelivered messages of one test never reach another,
and wipes the persistent broker sessions it created.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.db import connection, transaction
from paho.mqtt.enums import CallbackAPIVersion

from apps.ingestion.connectors.mqtt import MqttConnector, broker_address_parse, mqtt_client_id
from apps.ingestion.metrics import connector_states
from apps.ingestion.models import DeadLetter
from apps.sources.models import Source
from tests.ingestion.factories import source_with_key, stored_points
from tests.storage.conftest import storage_tables_reset
from tests.waiting import wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)
T0_NS = 1767225600 * 10**9


@pytest.fixture
def mqtt_sessions(transactional_db) -> Iterator[list[str]]:
    """Client ids whose persistent broker sessions are wiped after the test; committed points are removed too."""
    client_ids: list[str] = []
    yield client_ids
    for client_id in client_ids:
        _session_wipe(client_id)
    storage_tables_reset()


def _client(client_id: str = "", *, clean_session: bool = True) -> mqtt.Client:
    broker = broker_address_parse(settings.MQTT_URL)
    client = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=client_id,
        clean_session=clean_session,
        protocol=mqtt.MQTTv311,
    )
    client.connect(broker.host, broker.port)
    return client


def _session_wipe(client_id: str) -> None:
    client = _client(client_id, clean_session=True)  # a clean connect discards the stored session
    client.loop_start()
    client.disconnect()
    client.loop_stop()


def _publish(topic: str, *payloads: bytes | str, qos: int = 1) -> None:
    client = _client()
    client.loop_start()
    try:
        for payload in payloads:
            client.publish(topic, payload, qos=qos).wait_for_publish(timeout=5)
    finally:
        client.disconnect()
        client.loop_stop()


def _mqtt_source(sessions: list[str], **config: object) -> tuple[Source, str]:
    """An MQTT source on a fresh topic filter; returns it and a concrete topic that matches the filter."""
    token = uuid.uuid4().hex[:12]
    source, _ = source_with_key(slug=f"mqtt-{token}", kind="mqtt", config={"topic": f"test/{token}/+", **config})
    sessions.append(mqtt_client_id(slug=source.slug, config=source.config))
    return source, f"test/{token}/device-1"


@contextmanager
def _running(source: Source) -> Iterator[tuple[MqttConnector, threading.Event]]:
    connector = MqttConnector(source_id=source.id, slug=source.slug, config=source.config, flush_seconds=0.05)
    stop = threading.Event()
    failure: list[BaseException] = []

    def target() -> None:
        try:
            connector.run(stop=stop)
        except BaseException as error:
            failure.append(error)

    thread = threading.Thread(target=target, name=f"test:{connector.key}", daemon=True)
    thread.start()
    try:
        wait_for(lambda: connector.subscribed.is_set() or failure or not thread.is_alive(), what="subscription")
        assert not failure, failure
        yield connector, stop
    finally:
        stop.set()
        thread.join(10)
        assert not thread.is_alive(), "connector did not stop"
    assert not failure, failure


def test_json_payloads_are_stored_once_and_acknowledged(mqtt_sessions):
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    with _running(source) as (connector, _):
        _publish(
            topic,
            json.dumps({"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 21.5}),
            json.dumps([{"time": "2026-01-01T00:00:01Z", "device": "d1", "temperature": 22}]),
            "\n".join(
                json.dumps({"time": f"2026-01-01T00:00:0{i}Z", "device": "d2", "temperature": i}) for i in (2, 3)
            ),
        )
        wait_for(lambda: connector.messages_acked == 3, what="three acknowledgements")
    points = [
        (metric, labels, moment.isoformat(), value) for metric, labels, moment, value, _ in stored_points(source=source)
    ]
    assert points == [
        ("temperature", {"device": "d1"}, "2026-01-01T00:00:00+00:00", 21.5),
        ("temperature", {"device": "d1"}, "2026-01-01T00:00:01+00:00", 22.0),
        ("temperature", {"device": "d2"}, "2026-01-01T00:00:02+00:00", 2.0),
        ("temperature", {"device": "d2"}, "2026-01-01T00:00:03+00:00", 3.0),
    ]
    assert connector.messages_received == 3
    state = connector_states()[connector.key]  # published every few seconds and when the connector stops
    assert state["batches"] >= 1
    assert state["lag"] == 0
    assert state["lag_seconds"] == 0.0


def test_line_protocol_with_the_topic_as_a_label(mqtt_sessions):
    source, topic = _mqtt_source(mqtt_sessions, format="line", topic_label=True)
    with _running(source) as (connector, _):
        _publish(topic, f"cpu,host=a usage=1.5 {T0_NS}\ncpu,host=b usage=2.5 {T0_NS}")
        wait_for(lambda: connector.messages_acked == 1, what="acknowledgement")
    assert stored_points(source=source) == [
        ("cpu.usage", {"host": "a", "topic": topic}, T0, 1.5, 1),
        ("cpu.usage", {"host": "b", "topic": topic}, T0, 2.5, 1),
    ]


def test_a_message_sent_while_stopped_arrives_through_the_persistent_session_and_resending_stores_nothing_new(
    mqtt_sessions,
):
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    with _running(source):
        pass  # the first connection creates the session and its subscription
    message = json.dumps({"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 20})
    _publish(topic, message)
    with _running(source) as (connector, _):
        wait_for(lambda: connector.messages_acked == 1, what="delivery of the queued message")
        stored = stored_points(source=source)
        assert stored == [("temperature", {"device": "d1"}, T0, 20.0, 1)]
        _publish(topic, message)  # a duplicate (at least once on the sender's side)
        wait_for(lambda: connector.messages_acked == 2, what="delivery of the duplicate")
    assert stored_points(source=source) == stored


def test_unparsable_payload_is_dead_lettered_then_acknowledged(mqtt_sessions):
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    with _running(source) as (connector, _):
        _publish(topic, b"{not json", json.dumps({"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 1}))
        wait_for(lambda: connector.messages_acked == 2, what="both acknowledgements")
    letter = DeadLetter.objects.get(source=source)
    assert letter.transport == "mqtt"
    assert letter.raw == "{not json"
    assert letter.record_index == -1
    assert letter.context["whole_payload"] is True
    assert letter.context["topic"] == topic
    assert len(stored_points(source=source)) == 1
    with _running(source) as (connector, _):
        time.sleep(0.5)  # both were acknowledged: the broker has nothing to redeliver
        assert connector.messages_received == 0
    assert DeadLetter.objects.filter(source=source).count() == 1


def _crash_while_writing(source: Source, topic: str, message: str) -> tuple[MqttConnector, int]:
    """Publish, hold the connector's write on a table lock, then drop its connection (the crash) and stop it.

    Leaving the block releases the lock first (the write then commits, with no PUBACK sent), then stops and
    joins the connector. Returns it (for its counters) and how many messages it had received at the crash.
    """
    with _running(source) as (connector, stop), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute("LOCK TABLE points IN ACCESS EXCLUSIVE MODE")
        _publish(topic, message)

        def write_is_waiting() -> bool:
            # This database only: other engineers' tests wait on locks in theirs.
            cursor.execute(
                "SELECT count(*) FROM pg_locks WHERE NOT granted "
                "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
            )
            return cursor.fetchone()[0] > 0

        wait_for(write_is_waiting, what="the connector's write to wait for the lock")
        received = connector.messages_received
        connector.client.disconnect()
        stop.set()
    return connector, received


def test_nothing_is_acknowledged_before_the_commit(mqtt_sessions):
    """The write is held on a table lock; the connector is 'killed' (connection dropped) before its commit.

    Had it acknowledged on receipt, the broker would not send the message again. It does, and the rows are the
    same ones, stored once.
    """
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    message = json.dumps({"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 7})
    first, received = _crash_while_writing(source, topic, message)
    assert received == 1
    assert first.messages_acked == 0
    assert stored_points(source=source) == [("temperature", {"device": "d1"}, T0, 7.0, 1)]
    with _running(source) as (second, _):
        wait_for(lambda: second.messages_acked == 1, what="redelivery to the restarted connector")
    assert stored_points(source=source) == [("temperature", {"device": "d1"}, T0, 7.0, 1)]
    with _running(source) as (third, _):
        time.sleep(0.5)
        assert third.messages_received == 0  # acknowledged once stored: not delivered again


def test_a_batch_redelivered_after_a_crash_before_puback_keeps_its_refused_record_once(mqtt_sessions):
    """Stored and committed, then the connection dies before PUBACK: the broker redelivers the same message."""
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    message = json.dumps([
        {"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 7},
        {"time": "not a time", "device": "d1", "temperature": 8},
    ])  # fmt: skip
    first, _ = _crash_while_writing(source, topic, message)
    assert first.messages_acked == 0
    assert DeadLetter.objects.get(source=source).occurrences == 1
    with _running(source) as (second, _):
        wait_for(lambda: second.messages_acked == 1, what="redelivery to the restarted connector")
    assert stored_points(source=source) == [("temperature", {"device": "d1"}, T0, 7.0, 1)]
    letter = DeadLetter.objects.get(source=source)
    assert (letter.error_code, letter.record_index, letter.occurrences) == ("invalid_time", 1, 2)
    assert letter.transport == "mqtt"
