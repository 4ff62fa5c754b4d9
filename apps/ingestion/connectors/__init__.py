"""Pull connectors (MQTT, Kafka) that feed `batch_ingest`, and the batching rules they share.

Each connector collects messages into a batch, stores it with `batch_ingest` (one transaction), and only then
acknowledges (MQTT PUBACK) or commits offsets (Kafka). A payload that cannot be parsed at all is kept whole with
`payload_dead_letter` after the batch is stored and is acknowledged with it. Delivery is at least once: a batch that
was stored but not acknowledged comes again: writing the same points again replaces them with themselves, and its
refused records count on the dead letters they already have.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from django.conf import settings
from django.db import connection

from apps.ingestion.content_encoding import payload_decode
from apps.ingestion.models import PayloadFormat
from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError, raw_truncate
from apps.ingestion.services import (
    IngestRefused,
    IngestResult,
    batch_ingest,
    ingest_target_get,
    payload_dead_letter,
    payload_parse,
)

logger = logging.getLogger(__name__)

STATE_PUBLISH_SECONDS = 5.0
# A refusal that says nothing will change soon (source paused or gone): the connector ends instead of retrying.
STOPPING_STATUSES = frozenset({404, 409})


class ConnectorStopped(Exception):
    """The connector must end without acknowledging its batch: told to stop, or the source was paused or removed."""


@dataclass(slots=True)
class ParsedMessage:
    """One message of a batch: its records or the reason the whole payload was refused, and how to acknowledge it."""

    topic: str
    received_at: float  # time.monotonic() when it reached the connector
    records: list[Record] = field(default_factory=list)
    record_errors: list[RecordError] = field(default_factory=list)
    payload_error: PayloadError | None = None
    raw: str = ""
    handle: Any = None  # what the connector needs to acknowledge it (MQTT message id, Kafka message)

    @property
    def size(self) -> int:
        """What the message counts towards the batch size: its records, or 1 for a refused payload."""
        return max(1, len(self.records) + len(self.record_errors))


def message_parse(
    *,
    payload: bytes,
    topic: str,
    payload_format: str,
    precision: str,
    topic_label: bool,
    handle: Any,
    received_at: float | None = None,
) -> ParsedMessage:
    """Split one message into records (JSON object, array or NDJSON; or line protocol), labelling the topic if asked.

    A gzip payload (told by its magic bytes) is decompressed first, every member of it, or refused whole.
    """
    message = ParsedMessage(
        topic=topic, received_at=time.monotonic() if received_at is None else received_at, handle=handle
    )
    try:
        payload = payload_decode(payload, limit=settings.INGEST_MAX_BODY_BYTES)  # gzip: whole, or refused whole
        parsed = payload_parse(body=payload, payload_format=payload_format, context={"precision": precision})
    except PayloadError as error:
        message.payload_error = error
        message.raw = raw_truncate(payload.decode("utf-8", errors="replace"))
        return message
    if topic_label:
        for record in parsed.records:
            # A value the sender put in the record itself wins over the topic it was published on.
            if record.measurement is not None:
                record.tags = {"topic": topic, **(record.tags or {})}
            else:
                record.fields.setdefault("topic", topic)
    message.records = parsed.records
    message.record_errors = parsed.errors
    return message


@dataclass
class BatchStore:
    """Stores batches of parsed messages for one source, applying the refusal rules both connectors share.

    429: wait `retry_after` and store the same batch again. 409/404 (paused, no schema, removed): ConnectorStopped,
    nothing acknowledged. Anything else (DatabaseError ...) propagates with nothing acknowledged.
    """

    source_id: int
    transport: str
    payload_format: str
    connector_key: str
    context: dict[str, Any] = field(default_factory=dict)
    on_wait: Callable[[], None] = lambda: None

    def store(self, messages: Sequence[ParsedMessage], *, stop: threading.Event) -> IngestResult:
        """Store the batch (records, then whole-payload dead letters); returns once all of it is committed."""
        parsed = ParseResult()
        for message in messages:
            parsed.records.extend(message.records)
            parsed.errors.extend(message.record_errors)
        context = {**self.context, "connector": self.connector_key, **_topics_context(messages)}
        while True:
            try:
                if parsed.records or parsed.errors:
                    result = batch_ingest(
                        source_id=self.source_id,
                        parsed=parsed,
                        transport=self.transport,
                        payload_format=self.payload_format,
                        context=context,
                    )
                else:
                    result = IngestResult()
                    target = ingest_target_get(source_id=self.source_id)
                    if not target.enabled:
                        raise IngestRefused(409, "source_paused", f"Source {target.slug!r} is paused.")
                break
            except IngestRefused as refusal:
                if refusal.status in STOPPING_STATUSES:
                    logger.warning("connector %s stops: %s", self.connector_key, refusal.message)
                    raise ConnectorStopped(refusal.message) from refusal
                if refusal.status != 429:
                    raise
                self._wait(refusal.retry_after or 1.0, stop=stop)
        for message in messages:
            if message.payload_error is not None:
                result.dead_letter_ids.append(
                    payload_dead_letter(
                        source_id=self.source_id,
                        error=message.payload_error,
                        raw=message.raw,
                        transport=self.transport,
                        payload_format=self.payload_format,
                        context={**self.context, "connector": self.connector_key, "topic": message.topic},
                    )
                )
                result.rejected += 1
        return result

    def _wait(self, seconds: float, *, stop: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if stop.wait(min(remaining, 1.0)):
                raise ConnectorStopped("stopped while waiting for the rate limit")
            self.on_wait()


def _topics_context(messages: Sequence[ParsedMessage]) -> dict[str, Any]:
    topics = sorted({message.topic for message in messages})
    # Replay of a dead letter needs the topic only when it was a label; one batch rarely spans many topics.
    return {"topic": topics[0]} if len(topics) == 1 else {"topics": topics[:20]}


def connection_recover() -> None:
    """Drop this thread's database connection if a failure left it unusable, so the next batch reconnects."""
    connection.close_if_unusable_or_obsolete()


def payload_format_of(config: dict[str, Any]) -> str:
    """The source's payload format ("json" or "line")."""
    return PayloadFormat.LINE if config.get("format") == PayloadFormat.LINE else PayloadFormat.JSON
