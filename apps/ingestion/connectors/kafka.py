"""Kafka connector: one consumer per enabled Kafka source; offsets are committed only after the batch is stored.

Auto-commit and automatic offset storing are off. `BatchStore` commits the batch part by part; after each part's
transaction, the connector synchronously commits, per partition, the offset after the last message the part
completed. A part that cannot be stored is bisected and its poison message dead-lettered (then committed past), so
a partition never stalls on one record; while PostgreSQL or Redis is down the batch is retried with backoff and
nothing is committed. During long waits (backoff, rate limit) the consumer's partitions are paused and it is still
polled, so it stays in its group. A connector that stops or crashes leaves the uncommitted messages to the
partition's next owner, and writing the same points twice stores them once.
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
    message_parse,
    payload_format_of,
)
from apps.ingestion.metrics import connector_state_publish
from apps.ingestion.models import Transport

logger = logging.getLogger(__name__)

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
    """The parts of confluent_kafka.Consumer the connector uses."""

    def subscribe(self, topics: list[str], on_assign: Callable = ..., on_revoke: Callable = ...) -> None: ...
    def consume(self, num_messages: int = 1, timeout: float = -1) -> list[Any]: ...
    def commit(self, *, offsets: list[TopicPartition], asynchronous: bool) -> Any: ...
    def pause(self, partitions: list[TopicPartition]) -> None: ...
    def resume(self, partitions: list[TopicPartition]) -> None: ...
    def assignment(self) -> list[TopicPartition]: ...
    def position(self, partitions: list[TopicPartition]) -> list[TopicPartition]: ...
    def get_watermark_offsets(
        self, partition: TopicPartition, timeout: float | None = None, cached: bool = False
    ) -> tuple[int, int] | None: ...
    def close(self) -> None: ...


def kafka_group_id(*, source_id: int) -> str:
    """The source's consumer group, derived by the platform and never taken from the source's settings.

    One group per source, so each source reads every message once. A tenant who could name a group could join
    another source's group on a shared cluster, take some of its partitions and commit its offsets.
    """
    return f"{settings.CONNECTOR_ID_PREFIX}-source-{source_id}"


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
        consumer_settings: dict[str, Any] | None = None,
    ) -> None:
        self.key = f"kafka:{slug}"
        self.slug = slug
        self.source_id = source_id
        self.topics: list[str] = list(config["topics"])
        self.group_id = kafka_group_id(source_id=source_id)
        offset_reset = config.get("auto_offset_reset", "earliest")
        self.offset_reset = offset_reset if offset_reset in OFFSET_RESETS else "earliest"
        self.payload_format = payload_format_of(config)
        self.precision: str = config.get("precision", "ns")
        self.topic_label = bool(config.get("topic_label", False))
        self.bootstrap_servers = bootstrap_servers or settings.KAFKA_BOOTSTRAP_SERVERS
        self.batch_size = batch_size or settings.INGEST_CONNECTOR_BATCH_SIZE
        self.flush_seconds = flush_seconds or settings.INGEST_CONNECTOR_FLUSH_SECONDS
        self.consumer_factory = consumer_factory
        self.consumer_settings = dict(consumer_settings or {})  # extra librdkafka settings (session timeout ...)
        self.batches = 0
        self.commits = 0
        self.committed_messages = 0
        # (topic, partition) pairs assigned now, kept by the rebalance callbacks: other threads read this instead
        # of asking the consumer, whose calls wait while its own thread is inside consume().
        self.assigned: set[tuple[str, int]] = set()
        self._batch: list[ParsedMessage] = []
        self._storing: list[ParsedMessage] = []  # the batch being stored, less what is already committed
        self._held: list[Any] = []  # messages polled while a batch was being stored (new partitions only)
        self._paused = False
        self._consumer: ConsumerLike | None = None
        self._store = BatchStore(
            source_id=source_id,
            transport=Transport.KAFKA,
            payload_format=self.payload_format,
            connector_key=self.key,
            context={"precision": self.precision} if self.payload_format == "line" else {},
            on_wait=self._on_wait,
        )

    def consumer_config(self) -> dict[str, Any]:
        """librdkafka settings: manual commits only, and no offset stored behind the connector's back."""
        return {
            "bootstrap.servers": self.bootstrap_servers,
            "group.id": self.group_id,
            # Client ids take letters, digits, '.', '_' and '-': "<organization>/<slug>" goes as "<org>.<slug>".
            "client.id": f"analytics-{self.slug.replace('/', '.')}",
            "enable.auto.commit": False,
            "enable.auto.offset.store": False,
            "auto.offset.reset": self.offset_reset,
            "enable.partition.eof": False,
            "error_cb": self._on_error,
            "logger": logger,
            **self.consumer_settings,
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
                self._paused = False
                self.assigned = set()
                connection.close()

    def _on_assign(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        logger.info("%s assigned %s", self.key, [(tp.topic, tp.partition) for tp in partitions])
        self.assigned |= {(tp.topic, tp.partition) for tp in partitions}

    def _on_revoke(self, consumer: ConsumerLike, partitions: list[TopicPartition]) -> None:
        # Not committed, so the partition's next owner reads these again; storing them here would only duplicate.
        revoked = {(tp.topic, tp.partition) for tp in partitions}
        self.assigned -= revoked
        kept = [message for message in self._batch if _partition_of(message) not in revoked]
        if len(kept) != len(self._batch):
            logger.info(
                "%s dropped %d uncommitted message(s) of revoked partitions", self.key, len(self._batch) - len(kept)
            )
        self._batch = kept
        self._held = [message for message in self._held if (message.topic(), message.partition()) not in revoked]

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
                self._batch.append(self._parse(kafka_message))
            if self._batch and (
                sum(message.size for message in self._batch) >= self.batch_size
                or time.monotonic() - self._batch[0].received_at >= self.flush_seconds
            ):
                self._flush(consumer, stop=stop)

    def _flush(self, consumer: ConsumerLike, *, stop: threading.Event) -> None:
        """Store the batch; each part's offsets are committed right after its transaction commits."""
        batch, self._batch = self._batch, []
        self._storing = list(batch)
        try:
            self._store.store(batch, stop=stop, acknowledge=lambda stored: self._commit(consumer, stored))
        finally:
            self._storing = []
            self._release(consumer)
        self.batches += 1

    def _on_wait(self) -> None:
        """Called every second while a batch waits: publish the lag, and poll so the consumer stays in its group."""
        self._state_publish()
        consumer = self._consumer
        if consumer is None:
            return
        try:
            # Paused partitions deliver nothing (librdkafka drops what it had fetched and resumes from the position
            # the connector reached), so polling only serves heartbeats, rebalances and max.poll.interval.ms.
            consumer.pause(consumer.assignment())
            self._paused = True
            self._held.extend(
                message for message in consumer.consume(num_messages=self.batch_size, timeout=0) if not message.error()
            )
        except KafkaException as error:
            logger.info("%s could not poll while waiting: %s", self.key, error)

    def _release(self, consumer: ConsumerLike) -> None:
        """Resume what `_on_wait` paused, and put what it polled at the head of the next batch."""
        if self._paused:
            self._paused = False
            try:
                consumer.resume(consumer.assignment())
            except KafkaException as error:
                logger.info("%s could not resume its partitions: %s", self.key, error)
        held, self._held = self._held, []
        self._batch = [self._parse(message) for message in held] + self._batch

    def _parse(self, kafka_message: Any) -> ParsedMessage:
        return message_parse(
            payload=kafka_message.value() or b"",
            topic=kafka_message.topic(),
            payload_format=self.payload_format,
            precision=self.precision,
            topic_label=self.topic_label,
            handle=kafka_message,
        )

    def _commit(self, consumer: ConsumerLike, stored: Sequence[ParsedMessage]) -> None:
        if not stored:
            return
        done = {id(message.handle) for message in stored}
        self._storing = [message for message in self._storing if id(message.handle) not in done]
        next_offsets: dict[tuple[str, int], int] = {}
        for message in stored:
            partition, offset = _partition_of(message), message.handle.offset()
            next_offsets[partition] = max(next_offsets.get(partition, -1), offset + 1)
        offsets = [TopicPartition(topic, partition, offset) for (topic, partition), offset in next_offsets.items()]
        try:
            committed = consumer.commit(offsets=offsets, asynchronous=False)
        except KafkaException as error:
            # Already stored: if a rebalance took the partition, its next owner reads these again (idempotent).
            logger.warning("%s stored messages but could not commit their offsets: %s", self.key, error)
            return
        for partition in committed or []:
            if getattr(partition, "error", None):
                logger.warning(
                    "%s: commit of %s[%s] failed: %s", self.key, partition.topic, partition.partition, partition.error
                )
        self.commits += 1
        self.committed_messages += len(stored)

    def lag(self, consumer: ConsumerLike) -> int | None:
        """Messages behind: per assigned partition, the high watermark minus the first offset not yet stored."""
        assignment = consumer.assignment()
        if not assignment:
            return 0
        first_pending: dict[tuple[str, int], int] = {}
        for message in self._pending():
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

    def _pending(self) -> list[ParsedMessage]:
        """Messages consumed but not committed yet, oldest first."""
        return self._storing + self._batch

    def _state_publish(self) -> None:
        consumer = self._consumer
        lag_seconds = 0.0
        pending = self._pending()
        if pending:
            kind, milliseconds = pending[0].handle.timestamp()
            produced = milliseconds / 1000 if kind and milliseconds > 0 else None
            lag_seconds = (
                max(0.0, time.time() - produced) if produced is not None else time.monotonic() - pending[0].received_at
            )
        try:
            lag = self.lag(consumer) if consumer is not None else None
            connector_state_publish(connector=self.key, lag=lag, lag_seconds=lag_seconds, batches=self.batches)
        except Exception:  # lag figures are for people; a Redis or broker hiccup must not stop ingestion
            logger.warning("%s could not publish its state", self.key, exc_info=True)


def _partition_of(message: ParsedMessage) -> tuple[str, int]:
    return message.handle.topic(), message.handle.partition()
