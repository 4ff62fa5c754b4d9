"""The Kafka connector against a real Kafka-protocol broker (Tansu), PostgreSQL and Redis, with the real
confluent_kafka Consumer and Producer: offsets committed after the database commit, group rebalances, poison
messages, rate limits and a broker restart.

One broker serves the session (tests use their own topics and groups). A group join takes about a second and a
half with the connector's session timeout shortened to 3 s (`FAST_GROUP_SETTINGS`), so tests keep their joins few.
"""

from __future__ import annotations

import json
import re
import threading
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from confluent_kafka import Producer
from django.db import connection, transaction

from apps.ingestion import stats
from apps.ingestion.connectors import ConnectorStopped
from apps.ingestion.connectors.kafka import KafkaConnector
from apps.ingestion.metrics import connector_states
from apps.ingestion.models import DeadLetter
from apps.sources.models import Source
from apps.sources.services import source_set_enabled
from tests.conftest import closed_port
from tests.ingestion.factories import source_with_key, stored_points
from tests.kafka_broker import FAST_GROUP_SETTINGS, TansuBroker
from tests.storage.conftest import storage_tables_reset
from tests.waiting import wait_for

pytestmark = pytest.mark.slow

T0 = datetime(2026, 1, 1, tzinfo=UTC)


@pytest.fixture
def committed_cleanup(transactional_db) -> Iterator[None]:
    """The connector commits from its own thread; remove the committed points afterwards."""
    yield
    storage_tables_reset()


def _kafka_source(broker: TansuBroker, *, partitions: int = 1, **options: Any) -> tuple[Source, str]:
    token = uuid.uuid4().hex[:12]
    topic = f"test-org.telemetry-{token}"  # under the organisation's prefix
    config = {"topics": [topic], "format": "json"}
    source, _ = source_with_key(slug=f"kafka-{token}", kind="kafka", config=config, **options)
    broker.topic_create(topic, partitions=partitions)
    return source, topic


def _record(index: int, device: str = "d1") -> bytes:
    moment = (T0 + timedelta(seconds=index)).isoformat().replace("+00:00", "Z")
    return json.dumps({"time": moment, "device": device, "temperature": float(index)}).encode()


def _produce(broker: TansuBroker, topic: str, payloads: list[bytes], *, partitions: int = 1) -> int:
    """Produce (round robin over `partitions`) and wait for the broker's acknowledgements; returns how many."""
    producer = Producer({"bootstrap.servers": broker.bootstrap})
    acked: list[int] = []

    def delivered(error, message) -> None:
        if error is None:
            acked.append(message.offset())

    for position, payload in enumerate(payloads):
        producer.produce(topic, payload, partition=position % partitions, on_delivery=delivered)
    producer.flush(20)
    return len(acked)


def _connector(source: Source, broker: TansuBroker | str, **options: Any) -> KafkaConnector:
    return KafkaConnector(
        source_id=source.id,
        slug=source.slug,
        config=source.config,
        bootstrap_servers=broker if isinstance(broker, str) else broker.bootstrap,
        flush_seconds=0.05,
        consumer_settings=FAST_GROUP_SETTINGS,
        **options,
    )


@contextmanager
def _running(connector: KafkaConnector) -> Iterator[threading.Thread]:
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
        yield thread
    finally:
        stop.set()
        thread.join(15)
        assert not thread.is_alive(), "connector did not stop"
    assert not failure, failure


def _assigned(connector: KafkaConnector) -> int:
    return len(connector.assigned)  # asking the consumer from this thread would wait for its consume() call


def _values(source: Source) -> list[float]:
    return sorted(value for _, _, _, value, _ in stored_points(source=source))


def _metric(text: str, name: str, connector: str) -> float | None:
    match = re.search(rf'^{name}\{{connector="{re.escape(connector)}"\}} (\S+)$', text, re.MULTILINE)
    return float(match.group(1)) if match else None


def test_offsets_are_committed_after_the_store_and_a_redelivered_batch_is_stored_once(committed_cleanup, kafka_broker):
    """The first connector dies between the database commit and the offset commit; the next one gets it all again.

    Points are idempotent, so the redelivered batch stores each point once; its refused records count again on
    their dead letters (and never as points).
    """
    source, topic = _kafka_source(kafka_broker)
    refused_record = json.dumps([{"time": "not a time", "device": "d1", "temperature": 1}]).encode()
    payloads = [_record(i) for i in range(6)] + [refused_record, b"{broken"]
    acknowledged = _produce(kafka_broker, topic, payloads)
    assert acknowledged == 8
    first = _connector(source, kafka_broker)
    stored_before_the_crash: list[int] = []

    def crash(consumer, stored) -> None:  # stands for a crash right after the database commit
        stored_before_the_crash.append(len(stored))
        raise ConnectorStopped("killed between the database commit and the offset commit")

    first._commit = crash
    with _running(first):
        wait_for(lambda: stored_before_the_crash, timeout=30, what="the first store")
    assert _values(source) == [float(i) for i in range(6)]
    assert kafka_broker.committed(group=first.group_id, topic=topic, partitions=1) == {}  # nothing committed
    letters = {letter.error_code: letter.occurrences for letter in DeadLetter.objects.filter(source=source)}
    assert letters == {"invalid_time": 1, "invalid_json": 1}

    second = _connector(source, kafka_broker)
    with _running(second):
        wait_for(
            lambda: kafka_broker.committed(group=second.group_id, topic=topic, partitions=1) == {0: 8},
            timeout=30, what="the redelivered batch's commit",
        )  # fmt: skip
    assert second.committed_messages == 8
    stored = _values(source)
    assert stored == [float(i) for i in range(6)]  # acknowledged 8 = 6 points stored once + 2 dead letters
    letters = {letter.error_code: letter.occurrences for letter in DeadLetter.objects.filter(source=source)}
    assert letters == {"invalid_time": 2, "invalid_json": 2}
    assert len(stored) + len(letters) == acknowledged
    assert connector_states()[second.key]["lag"] == 0


def test_two_connectors_share_the_partitions_and_one_takes_over_when_the_other_stops(committed_cleanup, kafka_broker):
    source, topic = _kafka_source(kafka_broker, partitions=2)
    first, second = _connector(source, kafka_broker), _connector(source, kafka_broker)
    assert first.group_id == second.group_id
    acknowledged = 0
    with _running(first):
        acknowledged += _produce(kafka_broker, topic, [_record(i) for i in range(0, 10)], partitions=2)
        wait_for(lambda: len(stored_points(source=source)) == 10, timeout=30, what="the first ten")
        with _running(second):
            wait_for(lambda: _assigned(first) == 1 and _assigned(second) == 1, timeout=30, what="the rebalance")
            acknowledged += _produce(kafka_broker, topic, [_record(i) for i in range(10, 30)], partitions=2)
            wait_for(lambda: len(stored_points(source=source)) == 30, timeout=30, what="the next twenty")
            # Both connectors worked (the commit follows the store: wait for it rather than race it).
            wait_for(lambda: second.committed_messages > 0, timeout=15, what="the second connector's commit")
        wait_for(lambda: _assigned(first) == 2, timeout=30, what="the first connector to take both partitions")
        acknowledged += _produce(kafka_broker, topic, [_record(i) for i in range(30, 40)], partitions=2)
        wait_for(lambda: len(stored_points(source=source)) == 40, timeout=30, what="the last ten")
        wait_for(
            lambda: sum(kafka_broker.committed(group=first.group_id, topic=topic, partitions=2).values()) == 40,
            timeout=15, what="commits of every message",
        )  # fmt: skip
    assert acknowledged == 40
    assert _values(source) == [float(i) for i in range(40)]  # acknowledged 40, stored 40, each once


def test_a_poison_message_is_dead_lettered_and_the_partition_moves_on(
    committed_cleanup, database_refuses_poison, kafka_broker, client
):
    """A message the database refuses is dead-lettered whole; odd values (a lone surrogate, a 400-digit number) are
    refused per record. Before, either failed the batch and the connector read it again forever."""
    source, topic = _kafka_source(kafka_broker)
    poison = b'{"time": "2026-01-01T00:00:02Z", "device": "poison", "temperature": 2}'
    surrogate = b'{"time": "2026-01-01T00:00:03Z", "device": "\\ud800", "temperature": 2}'
    huge = b'{"time": "2026-01-01T00:00:04Z", "device": "d1", "temperature": ' + b"9" * 400 + b"}"
    payloads = [_record(0), _record(1), poison, _record(3), huge, _record(5), surrogate]
    acknowledged = _produce(kafka_broker, topic, payloads)
    connector = _connector(source, kafka_broker)
    with _running(connector):
        wait_for(
            lambda: kafka_broker.committed(group=connector.group_id, topic=topic, partitions=1) == {0: 7},
            timeout=30, what="the commit past every poison message",
        )  # fmt: skip
        acknowledged += _produce(kafka_broker, topic, [_record(6)])
        wait_for(lambda: len(stored_points(source=source)) == 5, what="the next message")
        wait_for(lambda: connector_states()[connector.key]["lag"] == 0, timeout=10, what="lag 0")
        text = client.get("/metrics").content.decode()
    assert _values(source) == [0.0, 1.0, 3.0, 5.0, 6.0]
    letters = {letter.raw: letter for letter in DeadLetter.objects.filter(source=source)}
    assert set(letters) == {poison.decode(), surrogate.decode(), huge.decode()}
    assert (letters[poison.decode()].error_code, letters[poison.decode()].context["whole_payload"]) == (
        "unstorable", True,
    )  # fmt: skip
    reason = letters[poison.decode()].error_message
    assert "(DataError: the database refuses this series)" in reason
    assert not any(word in reason for word in ("CONTEXT", "INSERT", "COPY"))
    assert letters[surrogate.decode()].error_code == "invalid_text"
    assert letters[huge.decode()].error_code == "invalid_number"
    assert len(stored_points(source=source)) + len(letters) == acknowledged == 8
    assert _metric(text, "analytics_connector_lag", connector.key) == 0.0


def test_a_batch_over_the_rate_limit_is_split_and_stored_window_by_window(
    committed_cleanup, kafka_broker, client, monkeypatch
):
    """20 points at 4 points per window: stored in parts, committed as each part commits, lag shown on /metrics.

    The window is shortened to 1 s so the test takes seconds; before the fix such a batch was retried whole
    every 10 s forever.
    """
    monkeypatch.setattr(stats, "WINDOW_SECONDS", 1)
    source, topic = _kafka_source(kafka_broker, rate_limit_points_per_second=4)
    acknowledged = _produce(kafka_broker, topic, [_record(i) for i in range(20)])
    connector = _connector(source, kafka_broker)
    lags: list[float] = []

    def all_stored() -> bool:
        lag = _metric(client.get("/metrics").content.decode(), "analytics_connector_lag", connector.key)
        if lag is not None:
            lags.append(lag)
        return len(stored_points(source=source)) == 20

    with _running(connector):
        wait_for(all_stored, timeout=40, what="every point, window by window")
        wait_for(
            lambda: kafka_broker.committed(group=connector.group_id, topic=topic, partitions=1) == {0: 20},
            what="the last commit",
        )  # fmt: skip
    assert connector.commits >= 5  # one commit per stored part, not one at the end
    assert connector._store.splits > 0
    assert acknowledged == len(stored_points(source=source)) == 20
    assert max(lags) > 0  # the connector was seen behind on /metrics while it waited


def test_while_the_database_is_unreachable_nothing_is_committed_and_the_batch_is_retried_whole(
    committed_cleanup, kafka_broker
):
    """The connector's database session is killed twice while its write waits on a lock (a real dropped connection);
    it backs off, reconnects and stores the batch, and commits only then. Nothing is dead-lettered."""
    source, topic = _kafka_source(kafka_broker)
    connector = _connector(source, kafka_broker)
    killed: set[int] = set()
    with _running(connector):
        with transaction.atomic(), connection.cursor() as cursor:
            cursor.execute("LOCK TABLE points IN ACCESS EXCLUSIVE MODE")
            acknowledged = _produce(kafka_broker, topic, [_record(i) for i in range(5)])

            def new_waiter() -> int | None:
                cursor.execute(
                    "SELECT pid FROM pg_locks WHERE NOT granted AND relation = 'points'::regclass "
                    "AND database = (SELECT oid FROM pg_database WHERE datname = current_database())"
                )
                pids = {row[0] for row in cursor.fetchall()} - killed
                return min(pids) if pids else None

            for _ in range(2):
                wait_for(new_waiter, timeout=30, what="the connector's write to wait on the lock")
                pid = new_waiter()
                killed.add(pid)
                cursor.execute("SELECT pg_terminate_backend(%s)", [pid])
                assert kafka_broker.committed(group=connector.group_id, topic=topic, partitions=1) == {}
            wait_for(new_waiter, timeout=30, what="the third try")
        wait_for(
            lambda: kafka_broker.committed(group=connector.group_id, topic=topic, partitions=1) == {0: 5},
            timeout=30, what="the commit after the store",
        )  # fmt: skip
    assert connector._store.retries >= 2
    assert acknowledged == len(stored_points(source=source)) == 5
    assert not DeadLetter.objects.filter(source=source).exists()


def test_the_connector_survives_a_broker_restart_during_a_sustained_produce(committed_cleanup):
    """A private broker is stopped and started again on the same port while a producer keeps sending.

    Tansu keeps everything in memory here (this build has no file storage; its other engine is S3), so the
    restarted broker has lost the topic, the messages and the group's offsets, and the topic comes back through
    auto-creation. A message acknowledged before the stop but not yet consumed would be lost with it (a real Kafka
    keeps it), so the broker is stopped once the connector has caught up. What this shows: the same connector (no
    process restart) rides out the broker being down, rejoins the new broker by itself, and every message
    acknowledged before and after the restart is stored exactly once.
    """
    broker = TansuBroker()
    broker.start()
    try:
        source, topic = _kafka_source(broker)
        connector = _connector(source, broker)
        producer = Producer(
            {"bootstrap.servers": broker.bootstrap, "message.timeout.ms": 60000, "reconnect.backoff.max.ms": 1000}
        )
        acked_before, acked_after = set(), set()
        restarted = threading.Event()

        def delivered(error, message) -> None:
            if error is None:
                (acked_after if restarted.is_set() else acked_before).add(json.loads(message.value())["temperature"])

        with _running(connector):
            wait_for(lambda: _assigned(connector) == 1, timeout=30, what="the first join")
            for index in range(150):
                if index == 50:
                    # Stopped once the connector has stored what the broker acknowledged so far: with the in-memory
                    # broker, anything acknowledged but not yet consumed would be lost with it.
                    producer.flush(10)
                    wait_for(lambda: acked_before <= set(_values(source)), timeout=30, what="the first fifty")
                    broker.stop()
                if index == 70:
                    broker.start()
                    restarted.set()
                producer.produce(topic, _record(index), on_delivery=delivered)
                producer.poll(0)
                time.sleep(0.02)
            assert producer.flush(60) == 0
            wait_for(lambda: acked_after <= set(_values(source)), timeout=60, what="every message after the restart")
        stored = _values(source)
        assert len(acked_before) == 50
        assert len(acked_after) == 100  # 70..149, and 50..69 buffered by the producer while the broker was down
        assert sorted(stored) == sorted(acked_before | acked_after)  # acknowledged 150, stored 150, each once
    finally:
        broker.close()


def test_a_paused_source_stops_the_connector_without_committing(committed_cleanup, kafka_broker):
    source, topic = _kafka_source(kafka_broker)
    source_set_enabled(source=source, enabled=False)
    acknowledged = _produce(kafka_broker, topic, [_record(0)])
    connector = _connector(source, kafka_broker)
    with _running(connector) as thread:
        thread.join(30)
        assert not thread.is_alive()  # it ended by itself, not told to stop
    assert kafka_broker.committed(group=connector.group_id, topic=topic, partitions=1) == {}
    assert acknowledged == 1
    assert stored_points(source=source) == []  # read again once the source is resumed


def test_the_connector_runs_and_stops_with_the_real_consumer_and_no_broker():
    """No broker at all: librdkafka retries the connection; the connector neither crashes nor stores anything."""
    source = Source(id=1, slug=f"orders-{uuid.uuid4().hex[:8]}", kind="kafka", config={"topics": ["orders"]})
    connector = _connector(source, f"127.0.0.1:{closed_port()}")
    with _running(connector):
        time.sleep(0.8)
        assert connector._consumer is not None
    assert connector.batches == 0
