"""The MQTT connector against the real Mosquitto, PostgreSQL and Redis: stored once, acknowledged after the commit,
poison messages dead-lettered, rate limits waited out in parts, and a broker restart ridden out.

Each test uses its own topic and source (uuid) so queued or redelivered messages of one test never reach another,
and wipes the persistent broker sessions it created. The restart test runs its own private Mosquitto.
"""

from __future__ import annotations

import json
import re
import subprocess
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path

import paho.mqtt.client as mqtt
import pytest
from django.conf import settings
from django.db import connection, transaction
from paho.mqtt.enums import CallbackAPIVersion

from apps.ingestion import stats
from apps.ingestion.connectors.mqtt import MqttConnector, broker_address_parse, mqtt_client_id
from apps.ingestion.metrics import connector_states
from apps.ingestion.models import DeadLetter
from apps.sources.models import Source
from tests.conftest import free_port
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


def _client(client_id: str = "", *, clean_session: bool = True, url: str | None = None) -> mqtt.Client:
    broker = broker_address_parse(url or settings.MQTT_URL)
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


def _mqtt_source(sessions: list[str], *, options: dict | None = None, **config: object) -> tuple[Source, str]:
    """An MQTT source on a fresh topic filter; returns it and a concrete topic that matches the filter."""
    token = uuid.uuid4().hex[:12]
    source, _ = source_with_key(
        slug=f"mqtt-{token}", kind="mqtt", config={"topic": f"test-org/{token}/+", **config}, **(options or {})
    )
    sessions.append(mqtt_client_id(source_id=source.id, config=source.config))
    return source, f"test-org/{token}/device-1"


@contextmanager
def _running(
    source: Source, *, url: str | None = None, flush_seconds: float = 0.05
) -> Iterator[tuple[MqttConnector, threading.Event]]:
    connector = MqttConnector(
        source_id=source.id, slug=source.slug, config=source.config, url=url, flush_seconds=flush_seconds
    )
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


def _record(index: int) -> str:
    moment = (T0 + timedelta(seconds=index)).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": moment, "device": "d1", "temperature": float(index)})


def _values(source: Source) -> list[float]:
    return sorted(value for _, _, _, value, _ in stored_points(source=source))


def _lag_metric(text: str, connector: str) -> float | None:
    match = re.search(rf'^analytics_connector_lag\{{connector="{re.escape(connector)}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_a_poison_message_is_dead_lettered_and_acknowledged_and_the_rest_are_stored(
    mqtt_sessions, database_refuses_poison, client
):
    """A message the database refuses is dead-lettered whole; odd values are refused per record. Before, the batch
    failed, nothing was acknowledged, and the broker redelivered it forever."""
    source, topic = _mqtt_source(mqtt_sessions, format="json")
    poison = '{"time": "2026-01-01T00:00:02Z", "device": "poison", "temperature": 2}'
    surrogate = '{"time": "2026-01-01T00:00:03Z", "device": "\\ud800", "temperature": 2}'
    huge = '{"time": "2026-01-01T00:00:04Z", "device": "d1", "temperature": ' + "9" * 400 + "}"
    published = [_record(0), _record(1), poison, _record(3), huge, _record(5), surrogate]
    with _running(source, flush_seconds=0.3) as (connector, _):
        _publish(topic, *published)
        wait_for(lambda: connector.messages_acked == 7, timeout=15, what="every message acknowledged")
        wait_for(lambda: connector_states()[connector.key]["lag"] == 0, timeout=10, what="lag 0")
        text = client.get("/metrics").content.decode()
    assert _values(source) == [0.0, 1.0, 3.0, 5.0]
    letters = list(DeadLetter.objects.filter(source=source))
    assert {(letter.error_code, letter.raw, letter.transport) for letter in letters} == {
        ("unstorable", poison, "mqtt"),
        ("invalid_text", surrogate, "mqtt"),
        ("invalid_number", huge, "mqtt"),
    }
    unstorable = next(letter for letter in letters if letter.error_code == "unstorable")
    assert unstorable.context["whole_payload"]
    assert unstorable.context["topic"] == topic
    assert len(stored_points(source=source)) + len(letters) == len(published)  # acknowledged 7: 4 points, 3 letters
    assert _lag_metric(text, connector.key) == 0.0
    with _running(source) as (again, _):
        time.sleep(0.5)
        assert again.messages_received == 0  # acknowledged: the broker has nothing to redeliver


def test_a_batch_over_the_rate_limit_is_stored_in_parts_and_acknowledged_as_they_commit(
    mqtt_sessions, client, monkeypatch
):
    """20 points at 4 points per window (the window shortened to 1 s so the test takes seconds): before, the batch
    was refused whole every 10 s forever; now every part is stored, and the lag shows on /metrics meanwhile."""
    monkeypatch.setattr(stats, "WINDOW_SECONDS", 1)
    source, topic = _mqtt_source(mqtt_sessions, options={"rate_limit_points_per_second": 4}, format="json")
    lags: list[float] = []

    def every_point_stored() -> bool:
        lag = _lag_metric(client.get("/metrics").content.decode(), connector.key)
        if lag is not None:
            lags.append(lag)
        return len(stored_points(source=source)) == 20

    with _running(source, flush_seconds=0.5) as (connector, _):
        _publish(topic, *(_record(index) for index in range(20)))
        wait_for(every_point_stored, timeout=40, what="every point, window by window")
        wait_for(lambda: connector.messages_acked == 20, what="every acknowledgement")
    assert connector._store.splits > 0
    assert _values(source) == [float(index) for index in range(20)]  # acknowledged 20, stored 20
    assert max(lags) > 0


class _PrivateMosquitto:
    """A Mosquitto of the test's own on a free port, persisting its sessions to a temp directory."""

    def __init__(self, directory: Path) -> None:
        self.port = free_port()
        self.url = f"mqtt://127.0.0.1:{self.port}"
        self.config = directory / "mosquitto.conf"
        self.config.write_text(
            f"listener {self.port} 127.0.0.1\n"
            "allow_anonymous true\n"
            "user root\n"
            "persistence true\n"
            f"persistence_location {directory}/\n"
            "max_queued_messages 0\n"  # no cap: a slow consumer's queued QoS 1 messages are never dropped
        )
        self.log = directory / "mosquitto.log"
        self.process: subprocess.Popen | None = None

    def start(self) -> None:
        self.process = subprocess.Popen(
            ["mosquitto", "-c", str(self.config)], stdout=self.log.open("a"), stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                _client(url=self.url).disconnect()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not start: {self.log.read_text()}")

    def stop(self) -> None:
        """A clean stop (SIGTERM): Mosquitto writes its sessions and queued messages to disk on the way out."""
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            self.process.wait(timeout=10)


@pytest.mark.slow
def test_acknowledged_messages_survive_a_broker_restart_without_a_connector_restart(
    storage_committed_cleanup, tmp_path
):
    """A private broker with persistence is stopped and started again while a QoS 1 publisher keeps sending.

    Guaranteed: every message the broker acknowledged to the publisher is stored, once, by the same connector,
    which reconnects by itself: the persistent session (its subscription, the messages queued for it and those
    delivered but not yet acknowledged) is written to disk when Mosquitto stops cleanly and read back when it
    starts. Not guaranteed: if Mosquitto crashed instead (SIGKILL, power loss), what it acknowledged since its last
    save (`autosave_interval`) would be lost; MQTT brokers are not a durable log like Kafka.
    """
    broker = _PrivateMosquitto(tmp_path)
    broker.start()
    source, topic = _mqtt_source([], format="json")
    publisher = mqtt.Client(
        callback_api_version=CallbackAPIVersion.VERSION2,
        client_id=f"publisher-{uuid.uuid4().hex[:8]}",
        clean_session=False,
        protocol=mqtt.MQTTv311,
    )
    publisher.reconnect_delay_set(min_delay=1, max_delay=2)
    acked_ids: set[int] = set()
    publisher.on_publish = lambda client, userdata, mid, reason_code, properties: acked_ids.add(mid)
    try:
        publisher.connect("127.0.0.1", broker.port)
        publisher.loop_start()
        sent: dict[int, float] = {}  # message id -> the value it carries
        with _running(source, url=broker.url) as (connector, _):
            for index in range(150):
                if index == 50:
                    broker.stop()
                if index == 70:
                    broker.start()
                # While the broker is down paho queues the message and sends it once it has reconnected.
                sent[publisher.publish(topic, _record(index), qos=1).mid] = float(index)
                time.sleep(0.02)

            def acknowledged() -> set[float]:
                return {value for mid, value in sent.items() if mid in acked_ids}

            wait_for(lambda: len(acknowledged()) == 150, timeout=60, what="the broker's acknowledgements")
            wait_for(lambda: acknowledged() <= set(_values(source)), timeout=60, what="every acknowledged message")
            assert connector.subscribed.is_set()  # the same connector, reconnected
        stored = _values(source)
        assert sorted(stored) == sorted(acknowledged())  # acknowledged 150, stored 150, each once
    finally:
        publisher.loop_stop()
        publisher.disconnect()
        broker.stop()
