"""The Kafka connector's store-then-commit loop against real PostgreSQL and Redis, with a fake consumer.

No Kafka broker can run in this environment, so the loop is driven by `FakeConsumer`, an in-memory stand-in for
confluent_kafka.Consumer that records commits and seeks. One test builds the real Consumer from the connector's
config (unreachable broker) to prove the settings are valid for librdkafka.
"""

from __future__ import annotations

import json
import threading
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from typing import Any

import pytest
from confluent_kafka import TIMESTAMP_CREATE_TIME, Consumer, KafkaError, TopicPartition
from django.db import DatabaseError, transaction

import apps.ingestion.connectors as connectors
from apps.ingestion.connectors.kafka import KafkaConnector
from apps.ingestion.metrics import connector_states
from apps.ingestion.models import DeadLetter
from apps.ingestion.services import IngestRefused
from apps.sources.models import Source
from apps.sources.services import source_set_enabled
from tests.conftest import closed_port
from tests.ingestion.factories import source_with_key, stored_points
from tests.storage.conftest import storage_tables_reset
from tests.waiting import wait_for

T0 = datetime(2026, 1, 1, tzinfo=UTC)


class FakeMessage:
    """An in-memory confluent_kafka.Message."""

    def __init__(self, topic: str, partition: int, offset: int, value: bytes) -> None:
        self._topic, self._partition, self._offset, self._value = topic, partition, offset, value
        self._timestamp = (TIMESTAMP_CREATE_TIME, int(time.time() * 1000))

    def error(self) -> KafkaError | None:
        return None

    def topic(self) -> str:
        return self._topic

    def partition(self) -> int:
        return self._partition

    def offset(self) -> int:
        return self._offset

    def value(self) -> bytes:
        return self._value

    def timestamp(self) -> tuple[int, int]:
        return self._timestamp


class FakeConsumer:
    """A fake confluent_kafka.Consumer (no broker can run here): partitions are lists, commits are recorded.

    `events` interleaves what the consumer saw ("commit", "seek") with what the test's store wrapper saw, and each
    commit records whether a database transaction was open at that moment (it must not be).
    """

    def __init__(self, config: dict[str, Any], logs: dict[tuple[str, int], list[bytes]], events: list[str]) -> None:
        self.config = config
        self.logs = logs
        self.events = events
        self.positions: dict[tuple[str, int], int] = {}
        self.committed: dict[tuple[str, int], int] = {}
        self.commits: list[dict[tuple[str, int], int]] = []
        self.seeks: list[tuple[str, int, int]] = []
        self.commit_in_transaction: list[bool] = []
        self.subscribed: list[str] = []
        self.closed = False

    def subscribe(self, topics: list[str], on_assign: Callable | None = None, on_revoke: Callable | None = None):
        self.subscribed = list(topics)
        for key in self.logs:
            if key[0] in topics:
                self.positions[key] = self.committed.get(key, 0)
        if on_assign:
            on_assign(self, self.assignment())

    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[FakeMessage]:
        batch: list[FakeMessage] = []
        for key, position in sorted(self.positions.items()):
            log = self.logs[key]
            while position < len(log) and len(batch) < num_messages:
                batch.append(FakeMessage(key[0], key[1], position, log[position]))
                position += 1
            self.positions[key] = position
        if not batch:
            time.sleep(min(max(timeout, 0.0), 0.02))
        return batch

    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool = True) -> list[TopicPartition]:
        assert asynchronous is False
        self.commit_in_transaction.append(transaction.get_connection().in_atomic_block)
        commit = {(tp.topic, tp.partition): tp.offset for tp in offsets}
        self.committed.update(commit)
        self.commits.append(commit)
        self.events.append("commit")
        return offsets

    def seek(self, partition: TopicPartition) -> None:
        self.positions[(partition.topic, partition.partition)] = partition.offset
        self.seeks.append((partition.topic, partition.partition, partition.offset))
        self.events.append("seek")

    def assignment(self) -> list[TopicPartition]:
        return [TopicPartition(topic, partition) for topic, partition in sorted(self.positions)]

    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]:
        return [TopicPartition(tp.topic, tp.partition, self.positions[(tp.topic, tp.partition)]) for tp in partitions]

    def get_watermark_offsets(self, partition: TopicPartition, timeout: float | None = None, cached: bool = False):
        return 0, len(self.logs[(partition.topic, partition.partition)])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def committed_cleanup(transactional_db) -> Iterator[None]:
    """The connector commits from its own thread; remove the committed points afterwards."""
    yield
    storage_tables_reset()


def _kafka_source(**config: Any) -> tuple[Source, str]:
    token = uuid.uuid4().hex[:12]
    topic = f"telemetry-{token}"
    source, _ = source_with_key(slug=f"kafka-{token}", kind="kafka", config={"topics": [topic], **config})
    return source, topic


def _record(second: int, device: str = "d1", value: float = 1.0) -> bytes:
    return json.dumps({"time": f"2026-01-01T00:00:{second:02d}Z", "device": device, "temperature": value}).encode()


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
        thread.join(10)
        assert not thread.is_alive(), "connector did not stop"
    assert not failure, failure


def _connector(source: Source, logs: dict[tuple[str, int], list[bytes]], events: list[str]):
    consumers: list[FakeConsumer] = []

    def factory(config: dict[str, Any]) -> FakeConsumer:
        consumers.append(FakeConsumer(config, logs, events))
        return consumers[-1]

    connector = KafkaConnector(
        source_id=source.id,
        slug=source.slug,
        config=source.config,
        bootstrap_servers="kafka.invalid:9092",
        flush_seconds=0.05,
        consumer_factory=factory,
    )
    return connector, consumers


@pytest.fixture
def store_events(monkeypatch) -> list[str]:
    """Wraps the batch writer the connector calls so the test sees when each batch was stored (or failed)."""
    events: list[str] = []
    real = connectors.batch_ingest

    def recording_batch_ingest(**kwargs):
        try:
            result = real(**kwargs)
        except Exception:
            events.append("store_failed")
            raise
        events.append("stored")
        return result

    monkeypatch.setattr(connectors, "batch_ingest", recording_batch_ingest)
    return events


def test_offsets_are_committed_after_the_batch_is_stored(committed_cleanup, store_events):
    source, topic = _kafka_source(format="json")
    logs = {(topic, 0): [_record(0), _record(1), b"{broken"], (topic, 1): [_record(2, device="d2", value=2.0)]}
    connector, consumers = _connector(source, logs, store_events)
    with _running(connector):
        wait_for(lambda: consumers and consumers[0].committed == {(topic, 0): 3, (topic, 1): 1}, what="commits")
    consumer = consumers[0]
    assert consumer.config["group.id"] == f"analytics-{source.slug}"
    assert consumer.config["enable.auto.commit"] is False
    assert consumer.config["enable.auto.offset.store"] is False
    assert consumer.subscribed == [topic]
    assert consumer.closed
    assert store_events == ["stored", "commit"]  # one batch: stored, then committed
    assert consumer.commit_in_transaction == [False]
    assert [(metric, labels, value) for metric, labels, _, value, _ in stored_points(source=source)] == [
        ("temperature", {"device": "d1"}, 1.0),
        ("temperature", {"device": "d1"}, 1.0),
        ("temperature", {"device": "d2"}, 2.0),
    ]
    letter = DeadLetter.objects.get(source=source)
    assert (letter.transport, letter.raw, letter.context["whole_payload"]) == ("kafka", "{broken", True)
    state = connector_states()[connector.key]
    assert (state["lag"], state["batches"]) == (0, 1)


def test_a_failed_store_commits_nothing_and_the_batch_is_read_again(committed_cleanup, store_events, monkeypatch):
    source, topic = _kafka_source(format="json")
    logs = {(topic, 0): [_record(0), _record(1)]}
    connector, consumers = _connector(source, logs, store_events)
    real = connectors.batch_ingest  # the recording wrapper
    calls = {"count": 0}

    def failing_once(**kwargs):
        calls["count"] += 1
        if calls["count"] == 1:
            store_events.append("store_failed")
            raise DatabaseError("server closed the connection unexpectedly")
        return real(**kwargs)

    monkeypatch.setattr(connectors, "batch_ingest", failing_once)
    with _running(connector):
        wait_for(lambda: consumers and consumers[0].committed == {(topic, 0): 2}, what="the retried commit")
    consumer = consumers[0]
    assert store_events == ["store_failed", "seek", "stored", "commit"]
    assert consumer.seeks == [(topic, 0, 0)]  # back to the batch's first offset
    assert consumer.commits == [{(topic, 0): 2}]
    assert len(stored_points(source=source)) == 2


def test_a_rate_limited_batch_waits_and_is_stored_before_its_commit(committed_cleanup, store_events, monkeypatch):
    source, topic = _kafka_source(format="line")
    logs = {(topic, 0): [b"cpu,host=a usage=1.5 1767225600000000000"]}
    connector, consumers = _connector(source, logs, store_events)
    real = connectors.batch_ingest
    refusals = [IngestRefused(429, "rate_limited", "slow down", retry_after=0.3)]

    def limited_once(**kwargs):
        if refusals:
            store_events.append("refused")
            raise refusals.pop()
        return real(**kwargs)

    monkeypatch.setattr(connectors, "batch_ingest", limited_once)
    started = time.monotonic()
    with _running(connector):
        wait_for(lambda: consumers and consumers[0].commits, what="the commit")
    assert time.monotonic() - started >= 0.3
    assert store_events == ["refused", "stored", "commit"]
    assert consumers[0].seeks == []
    assert stored_points(source=source) == [("cpu.usage", {"host": "a"}, T0, 1.5, 1)]


def test_a_paused_source_stops_the_connector_without_committing(committed_cleanup, store_events):
    source, topic = _kafka_source(format="json")
    source_set_enabled(source=source, enabled=False)
    connector, consumers = _connector(source, {(topic, 0): [_record(0)]}, store_events)
    with _running(connector) as thread:
        thread.join(5)
        assert not thread.is_alive()  # it ended by itself
    assert consumers[0].commits == []
    assert consumers[0].closed
    assert stored_points(source=source) == []


def test_lag_counts_from_the_first_message_not_yet_stored(transactional_db):
    source, topic = _kafka_source(format="json")
    logs = {(topic, 0): [_record(i) for i in range(5)], (topic, 1): [_record(i) for i in range(3)]}
    connector, _ = _connector(source, logs, [])
    consumer = FakeConsumer({}, logs, [])
    consumer.subscribe([topic])
    consumer.positions = {(topic, 0): 4, (topic, 1): 3}
    assert connector.lag(consumer) == 1
    connector._batch = [connectors.message_parse(payload=_record(1), topic=topic, payload_format="json",
                                                 precision="ns", topic_label=False,
                                                 handle=FakeMessage(topic, 0, 2, _record(2)))]  # fmt: skip
    assert connector.lag(consumer) == 3  # offsets 2, 3 and 4 of partition 0 are not stored yet


def test_the_real_consumer_accepts_the_connector_config():
    source = Source(id=1, slug="orders", kind="kafka", config={"topics": ["orders"], "format": "json"})
    connector = KafkaConnector(
        source_id=source.id, slug=source.slug, config=source.config, bootstrap_servers=f"127.0.0.1:{closed_port()}"
    )
    consumer = Consumer(connector.consumer_config())  # raises KafkaException on an unknown or invalid setting
    try:
        consumer.subscribe(connector.topics)
        assert consumer.consume(num_messages=10, timeout=0.3) == []
        assert connector.lag(consumer) == 0  # nothing assigned without a broker
    finally:
        consumer.close()


def test_the_connector_runs_and_stops_with_the_real_consumer_and_no_broker():
    connector = KafkaConnector(
        source_id=1,
        slug=f"orders-{uuid.uuid4().hex[:8]}",
        config={"topics": ["orders"], "format": "json"},
        bootstrap_servers=f"127.0.0.1:{closed_port()}",
    )
    with _running(connector) as thread:
        time.sleep(0.8)
        assert thread.is_alive()  # an unreachable broker is retried by librdkafka, not a crash
    assert connector.batches == 0
