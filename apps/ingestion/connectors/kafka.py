"""Kafka connector: one consumer per enabled Kafka source; offsets are committed only after the batch is stored.

Auto-commit and automatic offset storing are off. After `batch_ingest` returns (the transaction committed), the
connector synchronously commits, per partition, the offset after the batch's last message. If storing fails it
commits nothing and seeks back to the batch's first offsets, so the same messages are read again; writing the same
points twice stores them once. The consumer is a dependency (`consumer_factory`), so the loop is tested with a fake.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any, Protocol

from confluent_kafka import Consumer, KafkaError, KafkaException, TopicPartition
from django.conf import settings
from django.db import connection

from apps.ingestion.connectors import (
    STATE_PUBLISH_SECONDS,
    BatchStore,
    ConnectorStopped,
    ParsedMessage,
    connection_recover,
    message_parse,
    payload_format_of,
)
from apps.ingestion.metrics import connector_state_publish
from apps.ingestion.models import Transport

logger = logging.getLogger(__name__)

RETRY_BACKOFF_MAX_SECONDS = 30.0
OFFSET_RESETS = ("earliest", "latest")


class KafkaMessageLike(Protocol):
    """The parts of confluent_kafka.Message the connector reads."""

    def error(self) -> KafkaError | None: ...
    def topic(self) -> str: ...
    def partition(self) -> int: ...
    def offset(self) -> int: ...
    def value(self) -> bytes | None: ...
    def timestamp(self) -> tuple[int, int]: ...


class ConsumerLike(Protocol):
    """The parts of confluent_kafka.Consumer the connector uses (a fake in tests: no broker runs there)."""

    def subscribe(self, topics: list[str], on_assign: Callable = ..., on_revoke: Callable = ...) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...
    def seek(self, partition: TopicPartition) -> None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int] | None: ...
    def close(self) -> None: ...


def kafka_group_id(*, slug: str, config: dict[str, Any]) -> str:
    """The consumer group: config group_id, else one per source so each source reads every message once."""
    return str(config.get("group_id") or f"analytics-{slug}")


class KafkaConnector:
    """Consumes one source's topics and stores them, committing offsets after each stored batch."""

    def __init__(
        self,
        *,
        source_id: int,
        slug: str,
        config: dict[str, Any],
        bootstrap_servers: str | None = None,
        batch_size: int | None = None,
        flush_seconds: float | None = None,
        consumer_factory: Callable[[dict[str, Any]], ConsumerLike] = Consumer,
    ) -> None:
        self.key = f"kafka:{slug}"
        self.slug = slug
        self.source_id = source_id
        self.topics: list[str] = list(config["topics"])
        self.group_id = kafka_group_id(slug=slug, config=config)
        offset_reset = config.get("auto_offset_reset", "earliest")
        self.offset_reset = offset_reset if offset_reset in OFFSET_RESETS else "earliest"
        self.payload_format = payload_format_of(config)
        self.precision: str = config.get("precision", "ns")
        self.topic_label = bool(config.get("topic_label", False))
        self.bootstrap_servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.batch_size = batch_size or settings.INGEST_CONNECTOR_BATCH_SIZE
        self.flush_seconds = flush_seconds or settings.INGEST_CONNECTOR_FLUSH_SECONDS
        self.consumer_factory = consumer_factory
        self.batches = 0
        self.commits = 0
        self.failures = 0
        self._batch: list[ParsedMessage] = []
        self._consumer: ConsumerLike | None = None
        self._store = BatchStore(
            source_id=source_id,
            transport=Transport.KAFKA,
            payload_format=self.payload_format,
            connector_key=self.key,
            context={"precision": self.precision} if self.payload_format == "line" else {},
            on_wait=self._state_publish,
        )

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings: manual commits only, and no offset stored behind the connector's back."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            "client.id": f"analytics-{self.slug}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.offset_reset,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
            "logger": logger,
        }

    def _on_error(self, error: KafkaError) -> None:
        # Broker-down and similar errors are retried by librdkafka itself; only fatal ones end the consumer.
        logger.warning("%s: %s", self.key, error)

    def run(self, *, stop: threading.Event) -> None:
        """Consume until `stop` is set or the source is paused; raises (to be restarted) on a fatal Kafka error."""
        consumer = self.consumer_factory(self.consumer_config())
        self._consumer = consumer
        try:
            consumer.subscribe(self.topics, on_assign=self._on_assign, on_revoke=self._on_revoke)
            self.consume(consumer, stop=stop)
        except ConnectorStopped:
            return
        finally:
            try:
                self._state_publish()
                consumer.close()  # leaves the group; uncommitted messages go to the next owner
            finally:
                self._consumer = None
                connection.close()

    def _on_assign(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        logger.info("%s assigned %s", self.key, [(tp.topic, tp.partition) for tp in partitions])

    def _on_revoke(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        # Not committed, so the partition's next owner reads these again; storing them here would only duplicate.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        kept = [message for message in self._batch if _partition_of(message) not in revoked]
        if len(kept) != len(self._batch):
            logger.info(
                "%s dropped %d uncommitted message(s) of revoked partitions", self.key, len(self._batch) - len(kept)
            )
        self._batch = kept

    def consume(self, consumer: ConsumerLike, *, stop: threading.Event) -> None:
        """The poll/store/commit loop; returns when `stop` is set (after storing what it holds)."""
        next_state_at = 0.0
        while True:
            now = time.monotonic()
            if now >= next_state_at:
                self._state_publish()
                next_state_at = now + STATE_PUBLISH_SECONDS
            if stop.is_set():
                if self._batch:
                    self._flush(consumer, stop=stop)
                return
            size = sum(message.size for message in self._batch)
            wait = self.flush_seconds - (now - self._batch[0].received_at) if self._batch else 0.5
            for kafka_message in consumer.consume(num_messages=max(1, self.batch_size - size), timeout=max(wait, 0.0)):
                error = kafka_message.error()
                if error is not None:
                    if error.code() == KafkaError._PARTITION_EOF:
                        continue
                    if error.fatal():
                        raise KafkaException(error)
                    logger.warning("%s: consume error %s", self.key, error)
                    continue
                self._batch.append(
                    message_parse(
                        payload=kafka_message.value() or b"",
                        topic=kafka_message.topic(),
                        payload_format=self.payload_format,
                        precision=self.precision,
                        topic_label=self.topic_label,
                        handle=kafka_message,
                    )
                )
            if self._batch and (
                sum(message.size for message in self._batch) >= self.batch_size
                or time.monotonic() - self._batch[0].received_at >= self.flush_seconds
            ):
                self._flush(consumer, stop=stop)

    def _flush(self, consumer: ConsumerLike, *, stop: threading.Event) -> None:
        """Store the batch; commit its offsets only after that, or rewind to its start if storing failed."""
        batch = self._batch
        try:
            self._store.store(batch, stop=stop)
        except ConnectorStopped:
            raise
        except Exception:
            self.failures += 1
            backoff = min(RETRY_BACKOFF_MAX_SECONDS, 0.5 * 2 ** min(self.failures - 1, 10))
            logger.exception("%s could not store a batch; reading it again in %.1f s", self.key, backoff)
            self._rewind(consumer, batch)
            self._batch = []
            connection_recover()
            stop.wait(backoff)
            return
        self.failures = 0
        self._commit(consumer, batch)
        self.batches += 1
        self._batch = []

    def _commit(self, consumer: ConsumerLike, batch: Sequence[ParsedMessage]) -> None:
        next_offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            partition, offset = _partition_of(message), message.handle.offset()
            next_offsets[partition] = max(next_offsets.get(partition, -1), offset + 1)
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        try:
            committed = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Already stored: if a rebalance took the partition, its next owner reads the batch again (idempotent).
            logger.warning("%s stored a batch but could not commit its offsets: %s", self.key, error)
            return
        for partition in committed or []:
            if getattr(partition, "error", None):
                logger.warning(
                    "%s: commit of %s[%s] failed: %s", self.key, partition.topic, partition.partition, partition.error
                )
        self.commits += 1

    def _rewind(self, consumer: ConsumerLike, batch: Sequence[ParsedMessage]) -> None:
        first_offsets: dict[tuple[str, int], int] = {}
        for message in batch:
            partition, offset = _partition_of(message), message.handle.offset()
            first_offsets[partition] = min(first_offsets.get(partition, offset), offset)
        for (topic, partition), offset in first_offsets.items():
            try:
                consumer.seek(TopicPartition(topic, partition, offset))
            except KafkaException as error:
                # No longer assigned: the new owner starts from the last committed offset anyway.
                logger.info("%s could not seek %s[%s] back to %s: %s", self.key, topic, partition, offset, error)

    def lag(self, consumer: ConsumerLike) -> int | None:
        """Messages behind: per assigned partition, the high watermark minus the first offset not yet stored."""
        assignment = consumer.assignment()
        if not assignment:
            return 0
        first_pending: dict[tuple[str, int], int] = {}
        for message in self._batch:
            partition = _partition_of(message)
            first_pending[partition] = min(
                first_pending.get(partition, message.handle.offset()), message.handle.offset()
            )
        total = 0
        for position in consumer.position(assignment):
            watermarks = consumer.get_watermark_offsets(position, cached=True)
            if not watermarks or watermarks[1] < 0:
                continue  # nothing fetched from this partition yet
            base = first_pending.get((position.topic, position.partition), position.offset)
            if base < 0:
                continue
            total += max(0, watermarks[1] - base)
        return total

    def _state_publish(self) -> None:
        consumer = self._consumer
        lag_seconds = 0.0
        if self._batch:
            kind, milliseconds = self._batch[0].handle.timestamp()
            produced = milliseconds / 1000 if kind and milliseconds > 0 else None
            lag_seconds = (
                max(0.0, time.time() - produced)
                if produced is not None
                else time.monotonic() - self._batch[0].received_at
            )
        try:
            lag = self.lag(consumer) if consumer is not None else None
            connector_state_publish(connector=self.key, lag=lag, lag_seconds=lag_seconds, batches=self.batches)
        except Exception:  # lag figures are for people; a Redis or broker hiccup must not stop ingestion
            logger.warning("%s could not publish its state", self.key, exc_info=True)


def _partition_of(message: ParsedMessage) -> tuple[str, int]:
    return message.handle.topic(), message.handle.partition()
