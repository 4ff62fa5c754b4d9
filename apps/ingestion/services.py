"""The batch writer every ingest path ends in, and dead-letter replay and discard.

parse (caller) -> validate against the source's current schema -> series ids (guard rails) -> binary COPY and
dead letters in one transaction -> commit -> publish what changed -> count -> the caller acknowledges.
A record is either stored or in the dead-letter store with its reason; nothing is acknowledged before the commit.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import logging
import threading
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import connection, transaction
from django.utils import timezone
from redis.exceptions import RedisError

from apps.ingestion.events import changes_publish
from apps.ingestion.field_types import TYPE_CONFLICT, known_measure_names, type_conflicts
from apps.ingestion.json_columnar import json_columns
from apps.ingestion.line_protocol_columnar import line_protocol_columns
from apps.ingestion.line_protocol_fast import (
    FastLines,
    LineCache,
    kinds_disagree,
    line_cache_learn,
    line_protocol_rows,
)
from apps.ingestion.metrics import (
    INGEST_BATCH_SECONDS,
    INGEST_FIELDS_IGNORED,
    INGEST_POINTS,
    INGEST_POINTS_OVERWRITTEN,
    INGEST_RECORDS_REJECTED,
)
from apps.ingestion.models import DeadLetter, DeadLetterStatus, PayloadFormat, Transport
from apps.ingestion.parsers.line_protocol import (
    PRECISION_NS,
    line_protocol_lines,
    line_protocol_parse,
    line_protocol_parse_lines,
    time_ns_of,
)
from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError, payload_text
from apps.ingestion.stats import WINDOW_SECONDS, rate_limit_take, stats_record
from apps.ingestion.validation import RecordValidator, SeriesLocalKey, ValidatedPoint, ValidationResult, record_raw
from apps.sources.models import Source, SourceSchema
from apps.storage.columns import PointColumns
from apps.storage.selectors import retention_raw
from apps.storage.services import points_write, series_count, series_key, series_resolve

logger = logging.getLogger(__name__)

# Source settings and the compiled schema are re-read at most this often, so pausing a source or adding a
# schema version takes effect within this many seconds in every process.
TARGET_CACHE_SECONDS = 2.0
_SERIES_CACHE_LIMIT_PER_SOURCE = 200_000


class IngestRefused(Exception):
    """The batch as a whole was refused before anything was stored; the sender keeps it and may retry."""

    def __init__(
        self,
        status: int,
        code: str,
        message: str,
        *,
        retry_after: float | None = None,
        max_points: int | None = None,
        points: int | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after
        # Rate-limit refusals: the most points one window takes, and how many the refused batch had.
        self.max_points = max_points
        self.points = points


@dataclass
class IngestTarget:
    """What the writer needs to know about a source, cached briefly per process."""

    source_id: int
    slug: str
    organization: str  # its slug: source slugs are unique per organisation only (metrics label both)
    enabled: bool
    schema_id: int
    schema_version: int
    validator: RecordValidator
    rate_limit: int
    max_series: int
    loaded_at: float
    series_ids: dict[SeriesLocalKey, int] = field(default_factory=dict)
    line_cache: LineCache = field(default_factory=dict)
    lock: threading.Lock = field(default_factory=threading.Lock)


@dataclass
class IngestResult:
    """What happened to a batch: records accepted and refused, points written, and the refusals.

    Also counted (and exported on /metrics): string fields of accepted line-protocol lines that were not
    stored, fields named `time` that were dropped, and points replaced within the batch by a later point of
    the same series and microsecond.
    """

    accepted: int = 0
    rejected: int = 0
    points: int = 0
    errors: list[RecordError] = field(default_factory=list)
    upserted: bool = False
    dead_letter_ids: list[int] = field(default_factory=list)
    strings_ignored: int = 0
    time_fields_dropped: int = 0
    points_overwritten: int = 0

    def as_response(self, *, max_errors: int = 20) -> dict[str, Any]:
        """The JSON body ingest endpoints answer with (the first `max_errors` refusals)."""
        return {
            "accepted": self.accepted,
            "rejected": self.rejected,
            "points": self.points,
            "errors": [error.as_dict() for error in self.errors[:max_errors]],
        }


_targets: dict[int, IngestTarget] = {}
_targets_lock = threading.Lock()


def _validator_for(schema: SourceSchema, *, max_age: timedelta) -> RecordValidator:
    return RecordValidator(
        mode=schema.mode,
        definition=schema.definition,
        max_future=timedelta(seconds=settings.INGEST_MAX_FUTURE_SECONDS),
        max_age=max_age,
    )


def ingest_target_get(*, source_id: int) -> IngestTarget:
    """The source's settings and compiled current schema (re-read after TARGET_CACHE_SECONDS)."""
    now = time.monotonic()
    cached = _targets.get(source_id)
    if cached is not None and now - cached.loaded_at < TARGET_CACHE_SECONDS:
        return cached
    source = Source.objects.filter(id=source_id).select_related("organization").first()
    if source is None:
        raise IngestRefused(404, "unknown_source", "This source no longer exists.")
    schema = SourceSchema.objects.filter(source_id=source_id).order_by("-version").first()
    if schema is None:
        raise IngestRefused(409, "no_schema", f"Source {source.slug!r} has no schema version; add one first.")
    max_age = retention_raw(source=source)  # older points would be deleted at once: refused instead
    with _targets_lock:
        cached = _targets.get(source_id)
        if cached is not None and cached.schema_id == schema.id and cached.validator.max_age == max_age:
            validator, series_ids, line_cache = cached.validator, cached.series_ids, cached.line_cache
        else:
            # A new schema version (or retention) may judge known series differently: the fast path relearns them.
            validator = _validator_for(schema, max_age=max_age)
            series_ids, line_cache = (cached.series_ids if cached else {}), {}
        if validator.infer:
            # Measures other processes created since: read again with the target (field_types.py).
            validator.known_measures = known_measure_names(source_id=source_id)
        target = IngestTarget(
            source_id=source.id,
            slug=source.slug,
            organization=source.organization.slug,
            enabled=source.enabled,
            schema_id=schema.id,
            schema_version=schema.version,
            validator=validator,
            rate_limit=source.rate_limit_points_per_second or settings.INGEST_SOURCE_RATE_LIMIT,
            max_series=source.max_series or settings.INGEST_MAX_SERIES_PER_SOURCE,
            loaded_at=now,
            series_ids=series_ids,
            line_cache=line_cache,
        )
        _targets[source_id] = target
    return target


def ingest_targets_forget(*, source_id: int | None = None) -> None:
    """Drop cached targets (after a source or schema change in this process; tests)."""
    with _targets_lock:
        if source_id is None:
            _targets.clear()
        else:
            _targets.pop(source_id, None)


def _series_ids(
    target: IngestTarget, points: list[ValidatedPoint]
) -> tuple[dict[SeriesLocalKey, int], set[SeriesLocalKey], dict[SeriesLocalKey, tuple[str, str]]]:
    """Ids for every series in the batch, creating new ones within the source's series limit.

    Returns the ids, the keys refused by the limit, and (infer mode) the keys refused for a field type conflict
    with the (field, message) of each (see field_types.py).
    """
    known = target.series_ids
    wanted = {point[0] for point in points}
    missing = [key for key in wanted if key not in known]
    if not missing:
        return known, set(), {}
    storage_keys = {key: series_key(source_id=target.source_id, metric=key[0], labels=dict(key[1])) for key in missing}
    existing = series_resolve(keys=storage_keys.values(), create=False)
    new_keys = [key for key in missing if storage_keys[key] not in existing]
    refused: set[SeriesLocalKey] = set()
    conflicts: dict[SeriesLocalKey, tuple[str, str]] = {}
    if new_keys and target.validator.infer:
        new_set = set(new_keys)
        first_use: dict[SeriesLocalKey, int] = {}
        for point in points:
            if point[0] in new_set and point[0] not in first_use:
                first_use[point[0]] = point[3]
        conflicts = type_conflicts(source_id=target.source_id, new_keys=new_keys, first_use=first_use)
        new_keys = [key for key in new_keys if key not in conflicts]
    if new_keys:
        room = target.max_series - series_count(source_id=target.source_id)
        if room < len(new_keys):
            new_keys.sort()
            refused = set(new_keys[max(room, 0) :])
            new_keys = new_keys[: max(room, 0)]
        created = series_resolve(keys=[storage_keys[key] for key in new_keys]) if new_keys else {}
        existing.update(created)
    resolved = dict(known)
    learned = {}
    for key in missing:
        series_id = existing.get(storage_keys[key])
        if series_id is not None:
            resolved[key] = learned[key] = series_id

    def remember() -> None:
        # Only after the commit: a rolled-back batch must not leave ids of series that do not exist.
        with target.lock:
            if len(known) > _SERIES_CACHE_LIMIT_PER_SOURCE:
                known.clear()
            known.update(learned)
            if target.validator.infer:
                target.validator.known_measures.update(key[0] for key in learned)

    transaction.on_commit(remember)
    return resolved, refused, conflicts


def _series_limit_errors(
    target: IngestTarget,
    records: Sequence[Record],
    points: list[ValidatedPoint],
    refused: set[SeriesLocalKey],
    conflicts: dict[SeriesLocalKey, tuple[str, str]],
) -> tuple[list[ValidatedPoint], list[RecordError]]:
    """Drop every point of a record that needs a refused series; each such record becomes one error (a type
    conflict, naming its field, before the series limit)."""
    reasons: dict[int, tuple[str, str | None, str]] = {}
    limit_message = (
        f"Source {target.slug!r} has reached its limit of {target.max_series} series; this record would "
        "create a new one. Raise the source's max_series or send fewer distinct label values."
    )
    for key, _, _, position in points:
        conflict = conflicts.get(key)
        if conflict is not None:
            if reasons.get(position, ("",))[0] != TYPE_CONFLICT:
                reasons[position] = (TYPE_CONFLICT, *conflict)
        elif key in refused and position not in reasons:
            reasons[position] = ("series_limit", None, limit_message)
    errors = [
        RecordError(
            index=records[position].index, code=code, field=field_name, message=message,
            raw=record_raw(records[position]),
        )
        for position, (code, field_name, message) in sorted(reasons.items())
    ]  # fmt: skip
    return [point for point in points if point[3] not in reasons], errors


def _storable(text: str) -> str:
    """Text PostgreSQL can hold: NUL characters and lone surrogates (which a JSON escape such as "\\ud800" decodes
    to, and UTF-8 cannot encode) are kept visible as their escapes, \\u0000 and \\ud800."""
    if "\x00" in text:
        text = text.replace("\x00", "\\u0000")
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        text = text.encode("utf-8", "backslashreplace").decode("utf-8")
    return text


def dead_letter_key(
    *, transport: str, payload_format: str, context: dict[str, Any] | None, record_index: int | None, error_code: str,
    raw: str,
) -> str:  # fmt: skip
    """What makes a refused record "the same record" for the dead-letter store, as a SHA-256 hex digest.

    The parts are those a redelivery repeats exactly and a different record does not: the transport and format, the
    precision (the same line means other times at another precision), the record's position in its payload (record
    or line number, row of a file, -1 for a whole payload), the error code and the raw text. The source is the other
    half of the unique index. Left out on purpose is what describes the delivery rather than the record: when it
    arrived, the connector, the MQTT topics of the batch (a redelivered message is batched with other messages), the
    upload it came in (uploading a file again is a resend too). Only pending letters are matched, so once a letter
    is replayed or discarded the next arrival is a new letter. The position keeps two identical lines of one payload
    apart; what cannot be told apart is a resend from a new send of an identical record without a time of its own
    while its letter is pending: both count on that letter, and replay stores it once, at its first arrival.
    MQTT and HTTP carry no delivery id that would tell them apart.
    The same digest is computed in SQL by migration 0002 for letters that were pending when it ran.
    """
    precision = str((context or {}).get("precision", ""))
    position = "" if record_index is None else str(record_index)
    parts = (transport, payload_format, precision, position, error_code, raw)
    return hashlib.sha256("\x1f".join(parts).encode()).hexdigest()


# One round trip per batch. A record already pending for the source (same dedup_key) is counted again rather than
# stored again; it keeps its first arrival (replay stamps timeless records with it) and context, and takes the
# latest reason. The partial unique index makes a concurrent delivery of the same record wait for this one's
# commit and then count on its letter. Rows go in key order so two overlapping batches cannot deadlock.
_DEAD_LETTERS_UPSERT = """
INSERT INTO ingestion_deadletter (
    source_id, schema_id, schema_version, transport, payload_format, context, received_at, status, replay_attempts,
    raw, record_index, error_code, error_field, error_message, occurrences, dedup_key, last_received_at
)
SELECT %s, %s, %s, %s, %s, %s::jsonb, %s, 'pending', 0,
       letter.raw, letter.record_index, letter.error_code, letter.error_field, letter.error_message,
       letter.occurrences, letter.dedup_key, %s
FROM unnest(%s::text[], %s::integer[], %s::text[], %s::text[], %s::text[], %s::integer[], %s::text[])
     AS letter(raw, record_index, error_code, error_field, error_message, occurrences, dedup_key)
ORDER BY letter.dedup_key
ON CONFLICT (source_id, dedup_key) WHERE status = 'pending' DO UPDATE SET
    occurrences = ingestion_deadletter.occurrences + EXCLUDED.occurrences,
    last_received_at = GREATEST(ingestion_deadletter.last_received_at, EXCLUDED.last_received_at),
    error_field = EXCLUDED.error_field,
    error_message = EXCLUDED.error_message,
    schema_id = EXCLUDED.schema_id,
    schema_version = EXCLUDED.schema_version
RETURNING id
"""


def dead_letters_store(
    *,
    source_id: int,
    schema_id: int | None,
    schema_version: int | None,
    transport: str,
    payload_format: str,
    errors: Iterable[RecordError],
    received_at: datetime,
    context: dict[str, Any] | None = None,
) -> list[int]:
    """Keep refused records with their reason (in the caller's transaction); returns the letters' ids.

    Idempotent while pending: a record that already has a pending letter (same `dead_letter_key`) adds to its
    `occurrences` and `last_received_at` instead of a second row, also within one batch.
    """
    letters: dict[str, list[Any]] = {}
    for error in errors:
        raw = _storable(error.raw)
        key = dead_letter_key(
            transport=transport, payload_format=payload_format, context=context, record_index=error.index,
            error_code=error.code, raw=raw,
        )  # fmt: skip
        if key in letters:
            letters[key][5] += 1
            continue
        field_name = _storable(error.field or "")[:200]
        letters[key] = [raw, error.index, error.code, field_name, _storable(error.message), 1, key]
    if not letters:
        return []
    columns = list(zip(*(letters[key] for key in sorted(letters)), strict=True))
    with connection.cursor() as cursor:
        cursor.execute(
            _DEAD_LETTERS_UPSERT,
            [source_id, schema_id, schema_version, transport, payload_format, json.dumps(context or {}), received_at,
             received_at, *(list(column) for column in columns)],
        )  # fmt: skip
        return [row[0] for row in cursor.fetchall()]


def batch_ingest(
    *,
    source_id: int,
    parsed: ParseResult,
    transport: str,
    payload_format: str,
    received_at: datetime | None = None,
    context: dict[str, Any] | None = None,
    enforce_rate_limit: bool = True,
) -> IngestResult:
    """Validate and store one batch; refused records go to dead letters in the same transaction.

    Raises IngestRefused (nothing stored) when the source is paused or over its rate limit.
    Returns after the commit: the caller may acknowledge the batch.
    """
    started = time.perf_counter()
    received_at = received_at or timezone.now()
    target = _target_enabled(source_id)
    validated = target.validator.validate(parsed.records, received_at=received_at)
    return _batch_store(
        target=target, ready_rows=[], ready_records=0, records=parsed.records, validated=validated,
        errors=parsed.errors + validated.errors, transport=transport, payload_format=payload_format,
        received_at=received_at, context=context, enforce_rate_limit=enforce_rate_limit, started=started,
    )  # fmt: skip


def batch_ingest_json_columnar(
    *,
    source_id: int,
    body: bytes,
    transport: str,
    received_at: datetime | None = None,
    enforce_rate_limit: bool = True,
) -> IngestResult | None:
    """Store a plain JSON array of records of known series column by column; None when it is not such a body.

    None means nothing was decided or stored: the caller parses and validates the body record by record.
    """
    started = time.perf_counter()
    received_at = received_at or timezone.now()
    target = ingest_target_get(source_id=source_id)
    if not target.enabled:
        return None  # the record path refuses paused sources after its own parse, with its own wording
    taken = json_columns(body=body, validator=target.validator, series_ids=target.series_ids, received_at=received_at)
    if taken is None:
        return None
    columns, records = taken
    return _columns_store(
        target=target, columns=columns, records=records, transport=transport, payload_format=PayloadFormat.JSON,
        received_at=received_at, context=None, enforce_rate_limit=enforce_rate_limit, started=started,
    )  # fmt: skip


def _columns_store(
    *,
    target: IngestTarget,
    columns: PointColumns,
    records: int,
    transport: str,
    payload_format: str,
    received_at: datetime,
    context: dict[str, Any] | None,
    enforce_rate_limit: bool,
    started: float,
) -> IngestResult:
    """Store a body a columnar path took whole: every record accepted, nothing to validate or refuse."""
    return _batch_store(
        target=target, ready_rows=columns, ready_records=records, records=[], validated=ValidationResult(), errors=[],
        transport=transport, payload_format=payload_format, received_at=received_at, context=context,
        enforce_rate_limit=enforce_rate_limit, started=started,
    )  # fmt: skip


def batch_ingest_line_protocol(
    *,
    source_id: int,
    body: bytes | str,
    precision: str,
    transport: str,
    received_at: datetime | None = None,
    context: dict[str, Any] | None = None,
    enforce_rate_limit: bool = True,
) -> IngestResult:
    """Store a line-protocol payload: known series through the fast path, the rest parsed and validated.

    Raises PayloadError when the body is not UTF-8 or the precision is unknown (nothing stored), and
    IngestRefused like batch_ingest.
    """
    started = time.perf_counter()
    received_at = received_at or timezone.now()
    text = payload_text(body)
    if precision not in PRECISION_NS:
        line_protocol_parse("", precision=precision)  # raises PayloadError worded like the parser's
    target = _target_enabled(source_id)
    # Lines without a timestamp get the arrival time truncated to the precision, as InfluxDB stamps them.
    now_ns = time_ns_of(received_at)
    default_ns = now_ns - now_ns % PRECISION_NS[precision]
    if isinstance(body, bytes):
        columns = line_protocol_columns(
            body=body, precision=precision, cache=target.line_cache, validator=target.validator,
            received_at=received_at,
        )  # fmt: skip
        if columns is not None:  # every line is a plain line of a known series: no per-line Python at all
            return _columns_store(
                target=target, columns=columns, records=len(columns), transport=transport,
                payload_format=PayloadFormat.LINE, received_at=received_at, context=context,
                enforce_rate_limit=enforce_rate_limit, started=started,
            )  # fmt: skip
    fast = line_protocol_rows(
        text=text, precision=precision, cache=target.line_cache, validator=target.validator, received_at=received_at,
        default_ns=default_ns,
    )  # fmt: skip
    parsed = line_protocol_parse_lines(fast.careful, precision=precision, now_ns=now_ns)
    if kinds_disagree(fast, parsed):
        # A field changed type within the body: which lines InfluxDB refuses depends on their order across
        # both paths, so the whole body is read the careful way (a sender changing types is rare).
        fast = FastLines(careful=line_protocol_lines(text))
        parsed = line_protocol_parse_lines(fast.careful, precision=precision, now_ns=now_ns)
    lines_of_records = [record.raw for record in parsed.records]
    validated = target.validator.validate(parsed.records, received_at=received_at)
    result = _batch_store(
        target=target, ready_rows=fast.rows, ready_records=fast.accepted, ready_lines=fast.row_lines,
        records=parsed.records,
        validated=validated, errors=parsed.errors + validated.errors, transport=transport,
        payload_format=PayloadFormat.LINE, received_at=received_at, context=context,
        enforce_rate_limit=enforce_rate_limit, started=started,
        learn=lambda series_ids: line_cache_learn(
            cache=target.line_cache, validator=target.validator, lines=lines_of_records, records=parsed.records,
            points=validated.points, series_ids=series_ids,
        ),
        time_fields_dropped=parsed.dropped_time_fields,
    )  # fmt: skip
    return result


def _target_enabled(source_id: int) -> IngestTarget:
    target = ingest_target_get(source_id=source_id)
    if not target.enabled:
        raise IngestRefused(409, "source_paused", f"Source {target.slug!r} is paused; resume it to accept data.")
    return target


def _batch_store(
    *,
    target: IngestTarget,
    ready_rows: list[tuple[int, datetime, float]] | PointColumns,
    ready_records: int,
    ready_lines: list[int] | None = None,
    records: Sequence[Record],
    validated: Any,
    errors: list[RecordError],
    transport: str,
    payload_format: str,
    received_at: datetime,
    context: dict[str, Any] | None,
    enforce_rate_limit: bool,
    started: float,
    learn: Any = None,
    time_fields_dropped: int = 0,
) -> IngestResult:
    """Series ids, COPY and dead letters in one transaction; publish, count and learn after the commit."""
    source_id = target.source_id
    points = validated.points
    accepted = validated.accepted_records + ready_records
    point_count = len(points) + len(ready_rows)
    if enforce_rate_limit and target.rate_limit and point_count:
        try:
            limited = rate_limit_take(source_id=source_id, points=point_count, limit_per_second=target.rate_limit)
        except RedisError as error:
            # The limit is kept in Redis: without it the batch can be neither counted nor let through unchecked.
            logger.warning("rate limiter unavailable for source %s: %s", source_id, error)
            raise IngestRefused(
                503,
                "rate_limiter_unavailable",
                f"Source {target.slug!r} has a rate limit and its counter (Redis) is unavailable; nothing was "
                "stored. Retry shortly.",
                retry_after=5,
            ) from error
        if limited is not None and limited.too_large:
            raise IngestRefused(
                413,
                "batch_over_rate_limit",
                f"Source {target.slug!r} may write {target.rate_limit} points per second, at most "
                f"{limited.allowance} points per {WINDOW_SECONDS}-second window; this batch has {point_count} "
                f"points and can never pass. Split it into batches of at most {limited.allowance} points.",
                max_points=limited.allowance,
                points=point_count,
            )
        if limited is not None:
            raise IngestRefused(
                429,
                "rate_limited",
                f"Source {target.slug!r} may write {target.rate_limit} points per second; this batch of "
                f"{point_count} is over what is left of it. Retry after {limited.retry_after:.0f} s.",
                retry_after=limited.retry_after,
                max_points=limited.allowance,
                points=point_count,
            )
    result = IngestResult()
    # A columnar body creates no series and has no dead letters, so points_write's own atomic block can be the
    # whole transaction: outside a caller's transaction it then needs no savepoint (two statements fewer a batch).
    columnar = isinstance(ready_rows, PointColumns)
    with contextlib.nullcontext() if columnar else transaction.atomic():
        ids, refused, conflicts = _series_ids(target, points)
        if refused or conflicts:
            points, limit_errors = _series_limit_errors(target, records, points, refused, conflicts)
            errors = errors + limit_errors
            accepted -= len(limit_errors)
        rows = [(ids[key], moment, value) for key, moment, value, _ in points]
        if columnar:
            rows = ready_rows  # the columnar path takes whole bodies only: there are no other rows
        elif ready_rows and rows and ready_lines is not None:
            # Within a batch the last point for a series and time wins, in body order: interleave by line.
            numbered = [(line, row) for line, row in zip(ready_lines, ready_rows, strict=True)]
            numbered += [(records[point[3]].index, row) for point, row in zip(points, rows, strict=True)]
            numbered.sort(key=lambda pair: pair[0])
            rows = [row for _, row in numbered]
        else:
            rows = ready_rows + rows
        if rows:
            write = points_write(points=rows, schema_id=target.schema_id, source_ids=(source_id,))
            result.upserted = write.upserted
            result.points_overwritten = write.overwritten
        result.dead_letter_ids = dead_letters_store(
            source_id=source_id,
            schema_id=target.schema_id,
            schema_version=target.schema_version,
            transport=transport,
            payload_format=payload_format,
            errors=errors,
            received_at=received_at,
            context=context,
        )
        if rows:
            transaction.on_commit(lambda: changes_publish(source_id=source_id, rows=rows))
        if learn is not None:
            transaction.on_commit(lambda: learn(ids))
    result.accepted, result.rejected, result.points, result.errors = accepted, len(errors), len(rows), errors
    result.strings_ignored = validated.ignored_strings
    result.time_fields_dropped = time_fields_dropped
    # Counted once committed: when the caller's own transaction commits (an upload chunk), never if it rolls back.
    batch_count = _BatchCount(
        target.organization, target.slug, source_id, transport, len(rows), accepted, tuple(e.code for e in errors),
        strings_ignored=result.strings_ignored, time_fields_dropped=time_fields_dropped,
        points_overwritten=result.points_overwritten,
    )  # fmt: skip
    transaction.on_commit(batch_count.record)
    INGEST_BATCH_SECONDS.labels(transport=transport).observe(time.perf_counter() - started)
    return result


@dataclass(frozen=True, slots=True)
class _BatchCount:
    """What a batch adds to the live figures (Redis) and /metrics, recorded after its commit."""

    organization: str
    slug: str
    source_id: int
    transport: str
    points: int
    records: int
    error_codes: tuple[str, ...]
    strings_ignored: int = 0
    time_fields_dropped: int = 0
    points_overwritten: int = 0

    def record(self) -> None:
        try:
            stats_record(
                source_id=self.source_id, points=self.points, records=self.records, rejected=len(self.error_codes)
            )
        except Exception:  # the data is committed; a Redis hiccup must not turn that into an error for the sender
            logger.warning("ingest stats not recorded for source %s", self.source_id, exc_info=True)
        INGEST_POINTS.labels(organization=self.organization, source=self.slug, transport=self.transport).inc(
            self.points
        )
        if self.strings_ignored:
            INGEST_FIELDS_IGNORED.labels(organization=self.organization, source=self.slug, reason="string").inc(
                self.strings_ignored
            )
        if self.time_fields_dropped:
            INGEST_FIELDS_IGNORED.labels(organization=self.organization, source=self.slug, reason="time").inc(
                self.time_fields_dropped
            )
        if self.points_overwritten:
            INGEST_POINTS_OVERWRITTEN.labels(organization=self.organization, source=self.slug).inc(
                self.points_overwritten
            )
        for code in self.error_codes:
            INGEST_RECORDS_REJECTED.labels(organization=self.organization, source=self.slug, code=code).inc()


def payload_dead_letter(
    *,
    source_id: int,
    error: PayloadError,
    raw: str,
    transport: str,
    payload_format: str,
    context: dict[str, Any] | None = None,
) -> int:
    """Keep a whole payload that could not be split into records (bad JSON, bad encoding) with its reason."""
    target = ingest_target_get(source_id=source_id)
    with transaction.atomic():
        ids = dead_letters_store(
            source_id=source_id,
            schema_id=target.schema_id,
            schema_version=target.schema_version,
            transport=transport,
            payload_format=payload_format,
            errors=[RecordError(index=-1, code=error.code, message=error.message, raw=raw)],
            received_at=timezone.now(),
            context={**(context or {}), "whole_payload": True},
        )
    transaction.on_commit(
        _BatchCount(target.organization, target.slug, source_id, transport, 0, 0, (error.code,)).record
    )
    return ids[0]


def payload_parse(
    *, body: bytes | str, payload_format: str, context: dict[str, Any], received_at: datetime | None = None
) -> ParseResult:
    """Split a payload into records with the parser for its format.

    `received_at` stamps line-protocol lines without a timestamp, truncated to the precision as InfluxDB does.
    """
    if payload_format == PayloadFormat.LINE:
        now_ns = None if received_at is None else time_ns_of(received_at)
        return line_protocol_parse(body, precision=context.get("precision", "ns"), now_ns=now_ns)
    if payload_format == PayloadFormat.JSON:
        from apps.ingestion.parsers.json_records import json_records_parse

        return json_records_parse(body)
    if payload_format in (PayloadFormat.CSV, PayloadFormat.PARQUET):
        from apps.ingestion.parsers.json_records import json_records_parse

        # A CSV or Parquet row is kept in the dead-letter store as a JSON object of its columns.
        return json_records_parse(body, ndjson=True)
    raise PayloadError("unknown_format", f"Cannot parse {payload_format!r} payloads.")


@dataclass
class ReplayOutcome:
    """What a replay did: dead letters now stored, still refused (with their new reason), skipped."""

    replayed: int = 0
    still_failing: int = 0
    skipped: int = 0


def dead_letters_replay(
    *, source: Source, ids: Sequence[int] | None = None, user: AbstractBaseUser | None = None
) -> ReplayOutcome:
    """Run pending dead letters through the current schema again; stored ones are marked replayed.

    A record that still fails stays pending with its new reason. `ids=None` replays every pending one.
    """
    outcome = ReplayOutcome()
    letters = DeadLetter.objects.filter(source=source, status=DeadLetterStatus.PENDING).order_by("id")
    if ids is not None:
        letters = letters.filter(id__in=list(ids))
    for letter in letters.iterator(chunk_size=500):
        context = dict(letter.context or {})
        try:
            parsed = payload_parse(
                body=letter.raw, payload_format=letter.payload_format, context=context, received_at=letter.received_at
            )
        except PayloadError as error:
            _replay_failed(letter, RecordError(index=-1, code=error.code, message=error.message))
            outcome.still_failing += 1
            continue
        target = ingest_target_get(source_id=source.id)
        validated = target.validator.validate(parsed.records, received_at=letter.received_at)
        failure = (parsed.errors or validated.errors or [None])[0]
        if failure is not None:
            _replay_failed(letter, failure, schema_id=target.schema_id, schema_version=target.schema_version)
            outcome.still_failing += 1
            continue
        limit_error = None
        with transaction.atomic():
            ids_by_key, refused, conflicts = _series_ids(target, validated.points)
            if refused or conflicts:
                transaction.set_rollback(True)
                if refused and not conflicts:
                    limit_error = _series_limit_errors(target, parsed.records, validated.points, refused, conflicts)[1][
                        0
                    ]
            else:
                rows = [(ids_by_key[key], moment, value) for key, moment, value, _ in validated.points]
                if rows:
                    points_write(points=rows, schema_id=target.schema_id, source_ids=(source.id,))
                    transaction.on_commit(lambda rows=rows: changes_publish(source_id=source.id, rows=rows))
                DeadLetter.objects.filter(id=letter.id).update(
                    status=DeadLetterStatus.REPLAYED,
                    resolved_at=timezone.now(),
                    resolved_by=user if user is not None and user.is_authenticated else None,
                    replay_attempts=letter.replay_attempts + 1,
                )
        if refused or conflicts:
            if limit_error is not None:  # after the rollback, so the letter keeps the reason it failed this time
                _replay_failed(letter, limit_error, schema_id=target.schema_id, schema_version=target.schema_version)
            if conflicts:  # the letter's reason becomes the conflict (after the rollback, so it is kept)
                field_name, message = next(iter(conflicts.values()))
                failure = RecordError(index=0, code=TYPE_CONFLICT, field=field_name, message=message)
                _replay_failed(letter, failure, schema_id=target.schema_id, schema_version=target.schema_version)
            outcome.still_failing += 1
            continue
        outcome.replayed += 1
    return outcome


class DeadLetterError(ValueError):
    """A dead letter cannot be edited or replayed as asked; `field` names the input, `status` the HTTP status."""

    def __init__(self, field: str, message: str, *, status: int = 400) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message
        self.status = status


DEAD_LETTER_RAW_MAX_CHARS = 1_000_000


def dead_letter_edit_replay(
    *, source: Source, letter_id: int, raw: str | None = None, user: AbstractBaseUser | None = None
) -> DeadLetter:
    """Replace a pending letter's record with `raw` (when given) and replay it; returns the letter afterwards.

    The outcome is never a lost record: stored (status replayed) or still pending with the reason it failed this
    time and the edited text, so it can be edited again. The first edit keeps the record as it arrived in
    `context["original_raw"]`. `dedup_key` stays that of the record as received, so a redelivery of the original
    still counts on this letter instead of adding one.
    """
    letter = DeadLetter.objects.filter(source=source, id=letter_id).first()
    if letter is None:
        raise DeadLetterError("id", f"source {source.slug!r} has no dead letter {letter_id}.", status=404)
    if letter.status != DeadLetterStatus.PENDING:
        raise DeadLetterError(
            "status", f"this letter is {letter.status}; only pending letters are replayed.", status=409
        )
    if raw is not None:
        if not raw.strip():
            raise DeadLetterError("raw", "the record is empty; discard the letter instead.")
        if len(raw) > DEAD_LETTER_RAW_MAX_CHARS:
            raise DeadLetterError("raw", f"at most {DEAD_LETTER_RAW_MAX_CHARS:,} characters.", status=413)
        if raw != letter.raw:
            context = dict(letter.context or {})
            context.setdefault("original_raw", letter.raw)
            DeadLetter.objects.filter(id=letter.id).update(raw=_storable(raw), context=context)
    dead_letters_replay(source=source, ids=[letter.id], user=user)
    letter.refresh_from_db()
    return letter


def _replay_failed(
    letter: DeadLetter, error: RecordError, *, schema_id: int | None = None, schema_version: int | None = None
) -> None:
    DeadLetter.objects.filter(id=letter.id).update(
        error_code=error.code,
        error_field=_storable(error.field or "")[:200],
        error_message=_storable(error.message),
        replay_attempts=letter.replay_attempts + 1,
        schema_id=schema_id or letter.schema_id,
        schema_version=schema_version or letter.schema_version,
    )


def dead_letters_discard(
    *, source: Source, ids: Sequence[int] | None = None, user: AbstractBaseUser | None = None
) -> int:
    """Mark pending dead letters discarded (kept for the record, no longer offered for replay)."""
    letters = DeadLetter.objects.filter(source=source, status=DeadLetterStatus.PENDING)
    if ids is not None:
        letters = letters.filter(id__in=list(ids))
    return letters.update(
        status=DeadLetterStatus.DISCARDED,
        resolved_at=timezone.now(),
        resolved_by=user if user is not None and user.is_authenticated else None,
    )


def raw_json(fields: dict[str, Any]) -> str:
    """A record's fields as compact JSON (for CSV rows and other records without their own text)."""
    return json.dumps(fields, default=str, ensure_ascii=False, separators=(",", ":"))


__all__ = [
    "DeadLetterError",
    "Transport",
    "batch_ingest",
    "dead_letter_edit_replay",
    "dead_letters_discard",
    "dead_letters_replay",
    "payload_dead_letter",
]
