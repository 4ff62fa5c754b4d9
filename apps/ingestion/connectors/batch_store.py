"""Storing a connector's batch so that every message ends stored or dead-lettered, and none blocks the others.

Three kinds of failure get three answers:
- A dependency is down (PostgreSQL or Redis unreachable, a dropped connection, a timeout): the part is tried again
  with exponential backoff (capped, with jitter) for as long as it takes; nothing of it is acknowledged meanwhile.
- The source's rate limit: a part that fits one window waits for the next window. A part larger than a whole
  window's allowance is halved until the halves fit (a single message is cut between its records), and each half is
  stored and acknowledged in turn, so a low limit delays a backlog but never blocks it. One record with more points
  than a window allows waits as long as the limit needs for its points and is then stored.
- Anything else (DataError, an unexpected exception): the part cannot be stored as it is. It is halved by message;
  the halves that store are kept, and a message that still fails on its own (twice) is dead-lettered whole with
  code `unstorable` and the exception's class and first line, so one poison message never holds up the rest.

The connector acknowledges (MQTT PUBACK, Kafka offset commit) only through `acknowledge`, called after the part
holding a message's last record has committed, in the batch's order. The retry loop is written here rather than
taken from a library because its waits must end at once when the connector is stopped and must call `on_wait`
every second (the Kafka consumer has to be polled during long waits to stay in its group).
"""

from __future__ import annotations

import dataclasses
import logging
import math
import random
import threading
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import psycopg
import redis
from django.db import InterfaceError, OperationalError, connection

from apps.ingestion import stats
from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError
from apps.ingestion.services import IngestRefused, batch_ingest, ingest_target_get, payload_dead_letter

logger = logging.getLogger(__name__)

# A refusal that says nothing will change soon (source paused or gone): the connector ends instead of retrying.
STOPPING_STATUSES = frozenset({404, 409})
RETRY_BACKOFF_FIRST_SECONDS = 0.5
RETRY_BACKOFF_MAX_SECONDS = 30.0
UNSTORABLE_CODE = "unstorable"
_REASON_MAX_CHARS = 200

# Failures that say "a dependency is unreachable", never "this data is bad": retrying the same batch is right.
DEPENDENCY_ERRORS: tuple[type[BaseException], ...] = (
    OperationalError,
    InterfaceError,
    psycopg.OperationalError,
    psycopg.InterfaceError,
    redis.exceptions.ConnectionError,
    redis.exceptions.TimeoutError,
    ConnectionError,
    TimeoutError,
)


class ConnectorStopped(Exception):
    """The connector must end without acknowledging its batch: told to stop, or the source was paused or removed."""


def dependency_down(error: BaseException) -> bool:
    """Whether a failure means a dependency is down (retry the batch), looking through wrapped causes."""
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        if isinstance(current, DEPENDENCY_ERRORS):
            return True
        seen.add(id(current))
        current = current.__cause__
    return False


def backoff_seconds(attempt: int) -> float:
    """Exponential backoff with jitter for the `attempt`-th retry (1, 2, ...): between half and all of the step."""
    step = min(RETRY_BACKOFF_MAX_SECONDS, RETRY_BACKOFF_FIRST_SECONDS * 2 ** min(attempt - 1, 16))
    return step * random.uniform(0.5, 1.0)  # noqa: S311 (jitter, not a secret)


def unstorable_reason(error: BaseException) -> str:
    """What a user sees on the dead letter: the exception's class and the first line of its message, no SQL."""
    first_line = (str(error).strip().splitlines() or [""])[0]
    text = f"{type(error).__name__}: {first_line}" if first_line else type(error).__name__
    if len(text) > _REASON_MAX_CHARS:
        text = text[: _REASON_MAX_CHARS - 1] + "…"
    # Never carry a lone surrogate (the likely culprit) into the letter itself.
    return text.encode("utf-8", errors="backslashreplace").decode("utf-8")


@dataclass(slots=True)
class ParsedMessage:
    """One message of a batch (or a piece of one): its records or why the payload was refused, and its handle."""

    topic: str
    received_at: float  # time.monotonic() when it reached the connector
    records: list[Record] = field(default_factory=list)
    record_errors: list[RecordError] = field(default_factory=list)
    payload_error: PayloadError | None = None
    raw: str = ""
    handle: Any = None  # what the connector needs to acknowledge it (MQTT message id, Kafka message)
    payload: bytes = b""  # kept to dead-letter the message whole if it turns out unstorable
    last_piece: bool = True  # False for the first pieces of a message cut to fit the rate limit
    payload_letter_stored: bool = False  # its whole-payload dead letter is committed (never counted twice)

    @property
    def size(self) -> int:
        """What the message counts towards the batch size: its records, or 1 for a refused payload."""
        return max(1, len(self.records) + len(self.record_errors))


class _TooLarge(Exception):
    def __init__(self, refusal: IngestRefused) -> None:
        super().__init__(refusal.message)
        self.refusal = refusal


class _Unstorable(Exception):
    def __init__(self, error: BaseException) -> None:
        super().__init__(str(error))
        self.error = error


def _halves(part: list[ParsedMessage], *, by_record: bool) -> tuple[list, list] | None:
    """Two halves of similar record counts; one message is cut between records only if `by_record`."""
    if len(part) > 1:
        total = sum(message.size for message in part)
        running, cut = 0, 1
        for position, message in enumerate(part[:-1], start=1):
            running += message.size
            cut = position
            if running * 2 >= total:
                break
        return part[:cut], part[cut:]
    message = part[0]
    if not by_record or len(message.records) < 2:
        return None
    middle = len(message.records) // 2
    head = dataclasses.replace(message, records=message.records[:middle], last_piece=False)
    tail = dataclasses.replace(message, records=message.records[middle:], record_errors=[], payload_error=None)
    return [head], [tail]


@dataclass
class BatchStore:
    """Stores batches of parsed messages for one source (see the module docstring for the failure rules)."""

    source_id: int
    transport: str
    payload_format: str
    connector_key: str
    context: dict[str, Any] = field(default_factory=dict)
    on_wait: Callable[[], None] = lambda: None
    retries: int = 0  # dependency-down and rate-limit retries, for tests and logs
    splits: int = 0
    unstorable: int = 0

    def store(
        self,
        messages: Sequence[ParsedMessage],
        *,
        stop: threading.Event,
        acknowledge: Callable[[list[ParsedMessage]], None] = lambda stored: None,
    ) -> None:
        """Store the batch part by part, calling `acknowledge` with the messages each committed part completed.

        Returns once every message is stored or dead-lettered; raises ConnectorStopped (the rest unacknowledged)
        when told to stop or the source is paused or removed.
        """
        parts: deque[list[ParsedMessage]] = deque([list(messages)])
        dead: set[int] = set()  # messages dead-lettered whole: their remaining pieces are skipped
        while parts:
            part = [message for message in parts.popleft() if _identity(message) not in dead]
            if not part:
                continue
            try:
                self._store_part(part, stop=stop)
            except _TooLarge as too_large:
                halves = _halves(part, by_record=True)
                if halves is not None:
                    self.splits += 1
                    parts.extendleft(reversed(halves))
                    continue
                if not self._store_oversized_record(part, too_large.refusal, stop=stop):
                    dead.add(_identity(part[0]))
                    acknowledge([part[0]])
                    continue
            except _Unstorable as failure:
                halves = _halves(part, by_record=False)
                if halves is not None:
                    self.splits += 1
                    parts.extendleft(reversed(halves))
                    continue
                if not self._store_alone_again(part, stop=stop):
                    self._dead_letter_whole(part[0], failure.error, stop=stop)
                    dead.add(_identity(part[0]))
                    acknowledge([part[0]])
                    continue
            completed = [message for message in part if message.last_piece]
            if completed:
                acknowledge(completed)

    def _store_alone_again(self, part: list[ParsedMessage], *, stop: threading.Event) -> bool:
        # A lone message gets a second try before it is called poison: its first failure may have been a race.
        try:
            self._store_part(part, stop=stop)
        except (_Unstorable, _TooLarge):
            return False
        return True

    def _store_part(self, part: list[ParsedMessage], *, stop: threading.Event, enforce_rate_limit: bool = True) -> None:
        """One part in one transaction (then its whole-payload letters); dependency failures and 429s are waited out."""
        attempt = 0
        while True:
            try:
                self._write(part, enforce_rate_limit=enforce_rate_limit)
                return
            except IngestRefused as refusal:
                if refusal.status in STOPPING_STATUSES:
                    logger.warning("connector %s stops: %s", self.connector_key, refusal.message)
                    raise ConnectorStopped(refusal.message) from refusal
                if refusal.status == 413 and refusal.max_points:
                    raise _TooLarge(refusal) from refusal
                attempt += 1
                self.retries += 1
                # The first wait ends just after the window turns; later ones back off (others share the limit).
                retry_after = refusal.retry_after or 1.0
                if attempt == 1:
                    wait = retry_after + RETRY_BACKOFF_FIRST_SECONDS * random.random()  # noqa: S311 (jitter)
                else:
                    wait = max(retry_after, backoff_seconds(attempt - 1))
                logger.info("connector %s: %s; waiting %.1f s", self.connector_key, refusal.message, wait)
                self._wait(wait, stop=stop)
            except ConnectorStopped:
                raise
            except Exception as error:
                if not dependency_down(error):
                    logger.warning(
                        "connector %s could not store %d message(s): %s",
                        self.connector_key, len(part), unstorable_reason(error), exc_info=True,
                    )  # fmt: skip
                    raise _Unstorable(error) from error
                attempt += 1
                self.retries += 1
                wait = backoff_seconds(attempt)
                logger.warning(
                    "connector %s: a dependency is down (%s); trying again in %.1f s, nothing acknowledged",
                    self.connector_key, unstorable_reason(error), wait,
                )  # fmt: skip
                connection_recover()
                self._wait(wait, stop=stop)

    def _write(self, part: list[ParsedMessage], *, enforce_rate_limit: bool) -> None:
        parsed = ParseResult()
        for message in part:
            parsed.records.extend(message.records)
            parsed.errors.extend(message.record_errors)
        if parsed.records or parsed.errors:
            batch_ingest(
                source_id=self.source_id,
                parsed=parsed,
                transport=self.transport,
                payload_format=self.payload_format,
                context={**self.context, "connector": self.connector_key, **_topics_context(part)},
                enforce_rate_limit=enforce_rate_limit,
            )
        else:
            target = ingest_target_get(source_id=self.source_id)
            if not target.enabled:
                raise IngestRefused(409, "source_paused", f"Source {target.slug!r} is paused.")
        for message in part:
            if message.payload_error is not None and not message.payload_letter_stored:
                self._payload_letter(message, message.payload_error, message.raw)
                message.payload_letter_stored = True

    def _store_oversized_record(
        self, part: list[ParsedMessage], refusal: IngestRefused, *, stop: threading.Event
    ) -> bool:
        """One record with more points than a window allows: wait as long as the limit needs, then store it.

        Returns False if it was dead-lettered whole instead (the database refused it).
        """
        points = refusal.points or refusal.max_points or 1
        wait = stats.WINDOW_SECONDS * math.ceil(points / max(1, refusal.max_points or 1))
        logger.info(
            "connector %s: one record has %d points, more than the %s a window allows; storing it after %.0f s",
            self.connector_key, points, refusal.max_points, wait,
        )  # fmt: skip
        self._wait(wait, stop=stop)
        try:
            self._store_part(part, stop=stop, enforce_rate_limit=False)
        except _Unstorable as failure:
            self._dead_letter_whole(part[0], failure.error, stop=stop)
            return False
        return True

    def _dead_letter_whole(self, message: ParsedMessage, error: BaseException, *, stop: threading.Event) -> None:
        """Keep a message the database will not take as one whole-payload letter (code `unstorable`)."""
        self.unstorable += 1
        reason = PayloadError(
            UNSTORABLE_CODE,
            f"The message could not be stored ({unstorable_reason(error)}). It is kept whole here; fix the "
            "source or the schema, then replay it.",
        )
        raw = message.payload.decode("utf-8", errors="replace") if message.payload else message.raw
        attempt = 0
        while True:
            try:
                self._payload_letter(message, reason, raw)
                return
            except IngestRefused as refusal:
                raise ConnectorStopped(refusal.message) from refusal  # the source was removed meanwhile
            except Exception as letter_error:
                if not dependency_down(letter_error):
                    raise
                attempt += 1
                self.retries += 1
                connection_recover()
                self._wait(backoff_seconds(attempt), stop=stop)

    def _payload_letter(self, message: ParsedMessage, error: PayloadError, raw: str) -> None:
        payload_dead_letter(
            source_id=self.source_id,
            error=error,
            raw=raw,
            transport=self.transport,
            payload_format=self.payload_format,
            context={**self.context, "connector": self.connector_key, "topic": message.topic},
        )

    def _wait(self, seconds: float, *, stop: threading.Event) -> None:
        deadline = time.monotonic() + seconds
        while (remaining := deadline - time.monotonic()) > 0:
            if stop.wait(min(remaining, 1.0)):
                raise ConnectorStopped("stopped while waiting to store a batch")
            self.on_wait()


def _identity(message: ParsedMessage) -> int:
    # The pieces of one message share its handle.
    return id(message.handle) if message.handle is not None else id(message)


def _topics_context(messages: Sequence[ParsedMessage]) -> dict[str, Any]:
    topics = sorted({message.topic for message in messages})
    # Replay of a dead letter needs the topic only when it was a label; one batch rarely spans many topics.
    return {"topic": topics[0]} if len(topics) == 1 else {"topics": topics[:20]}


def connection_recover() -> None:
    """Drop this thread's database connection if a failure left it unusable, so the next try reconnects."""
    if connection.in_atomic_block:
        return  # a caller's transaction (tests) owns the connection; it is rolled back there
    try:
        connection.close_if_unusable_or_obsolete()
    except Exception:  # closing a broken connection can fail too; the next query opens a new one
        logger.debug("closing an unusable database connection failed", exc_info=True)
