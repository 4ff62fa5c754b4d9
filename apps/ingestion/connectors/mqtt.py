"""MQTT connector: one persistent-session subscription per enabled MQTT source, acknowledged after the commit.

paho's network thread only queues messages; the connector's own thread parses them, stores a batch with
`BatchStore` and sends the PUBACKs (manual acknowledgement) as each part of it commits. A message is acknowledged
only after the transaction holding its points (or its dead letter) has committed, so the broker redelivers
everything the connector had not stored when it stopped, crashed or lost the connection (QoS 1,
clean_session=False). A message the database refuses is dead-lettered whole and acknowledged, so it is not
redelivered forever; while PostgreSQL or Redis is down the batch waits, unacknowledged, with backoff.
"""

from __future__ import annotations

import hashlib
import logging
import queue
import threading
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import unquote, urlsplit

import paho.mqtt.client as mqtt
from django.conf import settings
from django.db import connection
from paho.mqtt.enums import CallbackAPIVersion, MQTTErrorCode

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

KEEPALIVE_SECONDS = 30
RECONNECT_MIN_SECONDS = 1
RECONNECT_MAX_SECONDS = 60


@dataclass(frozen=True, slots=True)
class BrokerAddress:
    """Where the broker is, read from MQTT_URL (mqtt://user:password@host:1883, mqtts:// for TLS)."""

    host: str
    port: int
    tls: bool
    username: str | None
    password: str | None


def broker_address_parse(url: str) -> BrokerAddress:
    """Read an mqtt:// or mqtts:// URL; a clear error for anything else."""
    parts = urlsplit(url)
    if parts.scheme not in ("mqtt", "mqtts", "tcp", "ssl") or not parts.hostname:
        raise ValueError(f"MQTT_URL {url!r} must look like mqtt://host:1883 or mqtts://user:password@host:8883.")
    tls = parts.scheme in ("mqtts", "ssl")
    return BrokerAddress(
        host=parts.hostname,
        port=parts.port or (8883 if tls else 1883),
        tls=tls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password else None,
    )


def mqtt_client_id(*, source_id: int, config: dict[str, Any]) -> str:
    """The source's client id, derived by the platform and never taken from the source's settings.

    Stable across restarts so the broker keeps its session and queued QoS 1 messages. On a shared broker a client
    id is a session: a tenant choosing another source's id would take over its session (and its queued messages),
    so it is made from the source's id (unique across organisations, unlike a slug). It includes a digest of the
    topic filter because a persistent session keeps its subscriptions: with the same id, a source whose filter
    was edited would go on receiving the old topic.
    """
    digest = hashlib.sha256(str(config.get("topic", "")).encode()).hexdigest()[:8]
    return f"{settings.CONNECTOR_ID_PREFIX}-source-{source_id}-{digest}"


@dataclass(frozen=True, slots=True)
class _Incoming:
    mid: int
    qos: int
    topic: str
    payload: bytes
    received_at: float
    generation: int


class MqttConnector:
    """Subscribes to one source's topic filter and stores what arrives, acknowledging after each commit."""

    def __init__(
        self,
        *,
        source_id: int,
        slug: str,
        config: dict[str, Any],
        url: str | None = None,
        batch_size: int | None = None,
        flush_seconds: float | None = None,
    ) -> None:
        self.key = f"mqtt:{slug}"
        self.source_id = source_id
        self.topic: str = config["topic"]
        self.qos: int = int(config.get("qos", 1))
        self.client_id = mqtt_client_id(source_id=source_id, config=config)
        self.payload_format = payload_format_of(config)
        self.precision: str = config.get("precision", "ns")
        self.topic_label = bool(config.get("topic_label", False))
        self.broker = broker_address_parse(url or settings.MQTT_URL)
        self.batch_size = batch_size or settings.INGEST_CONNECTOR_BATCH_SIZE
        self.flush_seconds = flush_seconds or settings.INGEST_CONNECTOR_FLUSH_SECONDS
        self.subscribed = threading.Event()  # set once the broker granted the subscription (tests wait on it)
        self.client: mqtt.Client | None = None
        self.messages_received = 0
        self.messages_acked = 0
        self.batches = 0
        self._queue: queue.Queue[_Incoming] = queue.Queue()
        self._batch: list[ParsedMessage] = []
        self._storing: list[ParsedMessage] = []  # the batch being stored, less what is already acknowledged
        # Bumped on every (re)connect and disconnect: a message id is only meaningful on the connection that
        # delivered it, so messages from an older connection are stored but never acknowledged (the broker
        # redelivers them on the new one, where they are acknowledged).
        self._generation = 0
        self._ack_lock = threading.Lock()
        self._connect_error: str | None = None
        self._store = BatchStore(
            source_id=source_id,
            transport=Transport.MQTT,
            payload_format=self.payload_format,
            connector_key=self.key,
            context={"precision": self.precision} if self.payload_format == "line" else {},
            on_wait=self._state_publish,
        )

    # --- paho network thread: no database work here -------------------------------------------------
    def _on_connect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        if reason_code.is_failure:
            self._connect_error = f"broker refused the connection: {reason_code}"
            return
        with self._ack_lock:
            self._generation += 1
        self._connect_error = None
        logger.info(
            "%s connected (session present: %s); subscribing to %s", self.key, flags.session_present, self.topic
        )
        client.subscribe(self.topic, qos=self.qos)

    def _on_subscribe(self, client: mqtt.Client, userdata: Any, mid: int, reason_codes: list, properties: Any) -> None:
        if any(code.is_failure for code in reason_codes):
            self._connect_error = f"broker refused the subscription to {self.topic!r}: {reason_codes}"
            return
        self.subscribed.set()

    def _on_disconnect(self, client: mqtt.Client, userdata: Any, flags: Any, reason_code: Any, properties: Any) -> None:
        with self._ack_lock:
            self._generation += 1
        self.subscribed.clear()
        if reason_code.is_failure:
            logger.warning("%s lost the broker connection (%s); paho reconnects", self.key, reason_code)

    def _on_message(self, client: mqtt.Client, userdata: Any, message: mqtt.MQTTMessage) -> None:
        self._queue.put(
            _Incoming(
                mid=message.mid,
                qos=message.qos,
                topic=message.topic,
                payload=message.payload,
                received_at=time.monotonic(),
                generation=self._generation,
            )
        )

    # --- the connector's own thread ------------------------------------------------------------------
    def client_build(self) -> mqtt.Client:
        """A paho client with a persistent session and manual acknowledgement."""
        client = mqtt.Client(
            callback_api_version=CallbackAPIVersion.VERSION2,
            client_id=self.client_id,
            clean_session=False,
            protocol=mqtt.MQTTv311,
            manual_ack=True,
        )
        if self.broker.username:
            client.username_pw_set(self.broker.username, self.broker.password)
        if self.broker.tls:
            client.tls_set()
        client.reconnect_delay_set(min_delay=RECONNECT_MIN_SECONDS, max_delay=RECONNECT_MAX_SECONDS)
        client.on_connect = self._on_connect
        client.on_subscribe = self._on_subscribe
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        return client

    def run(self, *, stop: threading.Event) -> None:
        """Consume until `stop` is set or the source is paused; raises (to be restarted) if the broker is unusable."""
        client = self.client_build()
        self.client = client
        try:
            # Unreachable at start: raise so the supervisor retries with backoff. Later drops: paho reconnects.
            client.connect(self.broker.host, self.broker.port, keepalive=KEEPALIVE_SECONDS)
            client.loop_start()
            self._consume(client, stop=stop)
        except ConnectorStopped:
            return
        finally:
            with self._ack_lock:
                self._generation += 1  # nothing may be acknowledged from here on
            client.disconnect()
            client.loop_stop()
            self._state_publish()
            connection.close()

    def _consume(self, client: mqtt.Client, *, stop: threading.Event) -> None:
        records = 0
        next_state_at = 0.0
        while True:
            if self._connect_error:
                raise ConnectionError(f"{self.key}: {self._connect_error}")
            now = time.monotonic()
            if now >= next_state_at:
                self._state_publish()
                next_state_at = now + STATE_PUBLISH_SECONDS
            if stop.is_set():
                if self._batch:
                    self._flush(client, stop=stop)
                return
            wait = self.flush_seconds - (now - self._batch[0].received_at) if self._batch else 0.5
            try:
                incoming = self._queue.get(timeout=max(wait, 0.0))
            except queue.Empty:
                incoming = None
            if incoming is not None:
                self.messages_received += 1
                message = message_parse(
                    payload=incoming.payload,
                    topic=incoming.topic,
                    payload_format=self.payload_format,
                    precision=self.precision,
                    topic_label=self.topic_label,
                    handle=incoming,
                    received_at=incoming.received_at,
                )
                self._batch.append(message)
                records += message.size
            if self._batch and (
                records >= self.batch_size or time.monotonic() - self._batch[0].received_at >= self.flush_seconds
            ):
                self._flush(client, stop=stop)
                records = 0

    def _flush(self, client: mqtt.Client, *, stop: threading.Event) -> None:
        """Store the batch; each part's messages are acknowledged, in arrival order, once the part has committed."""
        batch, self._batch = self._batch, []
        self._storing = list(batch)
        try:
            self._store.store(batch, stop=stop, acknowledge=lambda stored: self._acknowledge(client, stored))
        finally:
            self._storing = []
        self.batches += 1

    def _acknowledge(self, client: mqtt.Client, stored: list[ParsedMessage]) -> None:
        done = {id(message.handle) for message in stored}
        self._storing = [message for message in self._storing if id(message.handle) not in done]
        with self._ack_lock:
            for message in stored:
                incoming: _Incoming = message.handle
                if incoming.qos == 0 or incoming.generation != self._generation:
                    continue
                outcome = client.ack(incoming.mid, incoming.qos)
                if outcome == MQTTErrorCode.MQTT_ERR_SUCCESS:
                    self.messages_acked += 1
                else:
                    logger.info(
                        "%s could not acknowledge message %s (%s); it comes again", self.key, incoming.mid, outcome
                    )

    def _state_publish(self) -> None:
        """Lag = messages received but not committed; lag_seconds = age of the oldest of them."""
        with self._queue.mutex:
            queued = len(self._queue.queue)
            oldest = self._queue.queue[0].received_at if self._queue.queue else None
        pending = self._storing + self._batch
        if pending:
            oldest = pending[0].received_at
        lag_seconds = time.monotonic() - oldest if oldest is not None else 0.0
        try:
            connector_state_publish(
                connector=self.key, lag=queued + len(pending), lag_seconds=lag_seconds, batches=self.batches
            )
        except Exception:  # lag figures are for people; a Redis hiccup must not stop ingestion
            logger.warning("%s could not publish its state", self.key, exc_info=True)
