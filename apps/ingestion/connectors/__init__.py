"""Pull connectors (MQTT, Kafka) that feed `batch_ingest`, and the batching rules they share.

Each connector collects messages into a batch and stores it with `BatchStore` (`batch_store.py`), which commits it
part by part and only then lets the connector acknowledge (MQTT PUBACK) or commit offsets (Kafka). A payload that
cannot be parsed at all is kept whole with `payload_dead_letter`, one the database refuses is kept whole with code
`unstorable`, and a dependency that is down is waited out: every message ends stored or dead-lettered, and none
holds up the others. Delivery is at least once: a batch that was stored but not acknowledged comes again: writing
the same points again replaces them with themselves, and its refused records count on the dead letters they
already have.
"""

from __future__ import annotations

import time
from typing import Any

from django.conf import settings
from django.utils import timezone

from apps.ingestion.connectors.batch_store import (
    BatchStore,
    ConnectorStopped,
    ParsedMessage,
    connection_recover,
    dependency_down,
)
from apps.ingestion.content_encoding import payload_decode
from apps.ingestion.models import PayloadFormat
from apps.ingestion.records import PayloadError, raw_truncate
from apps.ingestion.services import payload_parse

__all__ = [
    "STATE_PUBLISH_SECONDS",
    "BatchStore",
    "ConnectorStopped",
    "ParsedMessage",
    "connection_recover",
    "dependency_down",
    "message_parse",
    "payload_format_of",
]

STATE_PUBLISH_SECONDS = 5.0


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
        topic=topic,
        received_at=time.monotonic() if received_at is None else received_at,
        handle=handle,
        payload=payload,
    )
    try:
        body = payload_decode(payload, limit=settings.INGEST_MAX_BODY_BYTES)  # gzip: whole, or refused whole
        # A line without a timestamp gets the arrival time, truncated to the precision as InfluxDB does.
        parsed = payload_parse(
            body=body, payload_format=payload_format, context={"precision": precision}, received_at=timezone.now()
        )
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


def payload_format_of(config: dict[str, Any]) -> str:
    """The source's payload format ("json" or "line")."""
    return PayloadFormat.LINE if config.get("format") == PayloadFormat.LINE else PayloadFormat.JSON
