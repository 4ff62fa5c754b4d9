"""Where simulated records go: stdout as NDJSON or InfluxDB line protocol, a rate log, or the HTTP ingest API."""

from __future__ import annotations

import json
import math
import ssl
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from email.message import Message
from email.utils import parsedate_to_datetime
from http.client import HTTPException
from typing import IO, Protocol
from urllib.parse import quote, urlsplit

from apps.ingestion.simulator.scenarios import Record

SINK_NAMES: tuple[str, ...] = ("stdout-ndjson", "stdout-line", "log", "http")
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class TextStream(Protocol):
    """Anything with write(str), such as sys.stdout or a management command's OutputWrapper."""

    def write(self, text: str, /) -> object:
        """Write text."""
        ...


class Sink(Protocol):
    """Receives batches of records for one source at a time."""

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        """Deliver one batch of records for `source_slug`."""
        ...

    def close(self) -> None:
        """Flush anything buffered and release resources."""
        ...


def _flush(stream: TextStream) -> None:
    flush = getattr(stream, "flush", None)
    if flush is not None:
        flush()


class NdjsonSink:
    """One JSON object per line, each with a "source" key so a mixed stream is self-describing."""

    def __init__(self, *, stream: TextStream) -> None:
        self._stream = stream

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        """Write each record as a line of compact JSON, prefixed with its source slug."""
        if not records:
            return
        lines = [json.dumps({"source": source_slug, **record}, separators=(",", ":")) for record in records]
        self._stream.write("\n".join(lines) + "\n")
        # Flush per batch so a consumer reading a pipe sees data as it is produced.
        _flush(self._stream)

    def close(self) -> None:
        """Flush the stream."""
        _flush(self._stream)


def line_protocol_escape_tag(value: str) -> str:
    """Escape a tag key, tag value or field key as InfluxDB 1.x reads it: comma, equals sign and space.

    1.x has no escape for a backslash: it stays as it is, doubled only before a comma, '=' or space (`\\\\,`
    reads as a backslash and a comma). A final backslash cannot be written.
    """
    return _escape_v1(value, specials=",= ", unescaped=",= ")


def line_protocol_escape_measurement(value: str) -> str:
    """Escape a measurement name as InfluxDB 1.x reads it: comma and space (a backslash as in tags; '=' and '"'
    after a backslash are unescaped too, so such a backslash is doubled)."""
    return _escape_v1(value, specials=", ", unescaped=', ="')


def _escape_v1(value: str, *, specials: str, unescaped: str) -> str:
    if "\n" in value or "\r" in value:
        raise ValueError(f"Line protocol cannot carry a newline in a name or tag: {value!r}.")
    if value.endswith("\\"):
        raise ValueError(f"InfluxDB 1.x line protocol cannot carry a name or tag ending in a backslash: {value!r}.")
    out = []
    for position, char in enumerate(value):
        if char in specials:
            out.append("\\" + char)
        elif char == "\\" and value[position + 1] in unescaped and value[position + 1] not in specials:
            out.append("\\\\")
        else:
            out.append(char)
    return "".join(out)


def _line_protocol_float(value: float) -> str:
    # Shortest round-tripping digits, but never an exponent, so every parser reads it as a plain float.
    text = format(Decimal(repr(float(value))), "f")
    return text if "." in text else text + ".0"


def _epoch_ns(iso_time: str) -> int:
    moment = datetime.fromisoformat(iso_time)
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def line_protocol_line(*, measurement: str, record: Record) -> str:
    """One InfluxDB line: string values become sorted tags, numbers become float fields, time becomes ns."""
    tags: list[str] = []
    fields: list[str] = []
    for key in sorted(record):
        if key == "time":
            continue
        value = record[key]
        if isinstance(value, str):
            # Line protocol has no empty tag values; an empty label means "no label".
            if value:
                tags.append(f"{line_protocol_escape_tag(key)}={line_protocol_escape_tag(value)}")
        elif isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value):
            fields.append(f"{line_protocol_escape_tag(key)}={_line_protocol_float(value)}")
    if not fields:
        raise ValueError(f"A line protocol point needs at least one numeric field; record has none: {record!r}.")
    series = ",".join([line_protocol_escape_measurement(measurement), *tags])
    return f"{series} {','.join(fields)} {_epoch_ns(str(record['time']))}"


class LineProtocolSink:
    """InfluxDB line protocol: measurement is the slug with '-' as '_', labels are tags, measures are fields."""

    def __init__(self, *, stream: TextStream) -> None:
        self._stream = stream

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        """Write one line per record."""
        if not records:
            return
        measurement = source_slug.replace("-", "_")
        lines = [line_protocol_line(measurement=measurement, record=record) for record in records]
        self._stream.write("\n".join(lines) + "\n")
        _flush(self._stream)

    def close(self) -> None:
        """Flush the stream."""
        _flush(self._stream)


def _stderr_line(line: str) -> None:
    sys.stderr.write(line + "\n")
    sys.stderr.flush()


class LogSink:
    """Discards records and reports throughput about once a second: 'simulate: 1,234 records/s (factory 1000, ...)'."""

    # Realtime batches arrive once per wall-clock second with a little jitter; a strict 1.0 s threshold would
    # alias and report only every other second.
    REPORT_EVERY_SECONDS = 0.9

    def __init__(
        self,
        *,
        display_names: Mapping[str, str] | None = None,
        emit: Callable[[str], None] = _stderr_line,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._display_names = dict(display_names or {})
        self._emit = emit
        self._clock = clock
        self._window_started: float | None = None
        self._window_counts: dict[str, int] = {}

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        """Count the records; first report the current window if it is about a second old."""
        now = self._clock()
        if self._window_started is None:
            self._window_started = now
        elif now - self._window_started >= self.REPORT_EVERY_SECONDS:
            # Report before counting this batch so each line covers whole ticks (every scenario of a tick).
            self._report(started=self._window_started, now=now)
        self._window_counts[source_slug] = self._window_counts.get(source_slug, 0) + len(records)

    def close(self) -> None:
        """Report what was counted since the last line."""
        if self._window_started is not None and self._window_counts:
            # In realtime the last tick's batches arrive just before close(); a window shorter than a second
            # would turn them into a bogus burst rate.
            self._report(started=self._window_started, now=max(self._clock(), self._window_started + 1.0))

    def _report(self, *, started: float, now: float) -> None:
        seconds = max(now - started, 1e-9)
        total = round(sum(self._window_counts.values()) / seconds)
        parts = ", ".join(
            f"{self._display_names.get(slug, slug)} {round(count / seconds)}"
            for slug, count in self._window_counts.items()
        )
        self._emit(f"simulate: {total:,} records/s ({parts})")
        self._window_counts = {}
        self._window_started = now


class HttpSinkError(RuntimeError):
    """The ingest endpoint rejected a batch or stayed unreachable; the message says which and why."""

    def __init__(self, message: str, *, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


class _NoRedirects(urllib.request.HTTPRedirectHandler):
    """Refuse redirects: urllib would silently turn a redirected POST into a GET and drop the batch."""

    def redirect_request(
        self,
        req: urllib.request.Request,
        fp: IO[bytes],
        code: int,
        msg: str,
        headers: Message,
        newurl: str,
    ) -> None:
        """Return no follow-up request, so urllib raises HTTPError with the 3xx status instead."""
        return None


class HttpSink:
    """POST each batch as a JSON array to <base_url>/api/v1/sources/<slug>/ingest with the slug's write key."""

    def __init__(
        self,
        *,
        base_url: str,
        write_keys: Mapping[str, str],
        timeout_seconds: float = 10.0,
        max_attempts: int = 5,
        backoff_seconds: float = 0.5,
        max_wait_seconds: float = 60.0,
        max_batch_records: int = 5000,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        parts = urlsplit(base_url)
        if parts.scheme not in {"http", "https"} or not parts.netloc:
            raise ValueError(f"The ingest URL must start with http:// or https:// and name a host, got {base_url!r}.")
        if max_attempts < 1:
            raise ValueError(f"max_attempts must be at least 1, got {max_attempts}.")
        self._base_url = base_url.rstrip("/")
        self._write_keys = dict(write_keys)
        self._timeout_seconds = timeout_seconds
        self._max_attempts = max_attempts
        self._backoff_seconds = backoff_seconds
        self._max_wait_seconds = max_wait_seconds
        self._max_batch_records = max_batch_records
        self._sleep = sleep
        self._opener = urllib.request.build_opener(_NoRedirects)

    def ingest_url(self, *, source_slug: str) -> str:
        """The endpoint a source's batches are POSTed to."""
        return f"{self._base_url}/api/v1/sources/{quote(source_slug, safe='')}/ingest"

    def write(self, *, source_slug: str, records: list[Record]) -> None:
        """POST the records (split into chunks of at most max_batch_records); raise HttpSinkError on failure."""
        if not records:
            return
        write_key = self._write_keys.get(source_slug)
        if not write_key:
            raise HttpSinkError(f"No write key for source {source_slug!r}: pass --write-key {source_slug}=KEY.")
        chunk = self._max_batch_records
        for start in range(0, len(records), chunk):
            self._post(source_slug=source_slug, write_key=write_key, batch=records[start : start + chunk])

    def close(self) -> None:
        """Nothing is buffered: every write is sent before it returns."""

    def _post(self, *, source_slug: str, write_key: str, batch: list[Record]) -> None:
        url = self.ingest_url(source_slug=source_slug)
        body = json.dumps(batch, separators=(",", ":")).encode()
        headers = {
            "Authorization": f"Bearer {write_key}",
            "Content-Type": "application/json",
            "Accept": "application/json",
            "User-Agent": "analytics-platform-simulator/1",
        }
        for attempt in range(1, self._max_attempts + 1):
            request = urllib.request.Request(url, data=body, headers=headers, method="POST")  # noqa: S310 (scheme checked)
            status: int | None = None
            retry_after: float | None = None
            try:
                with self._opener.open(request, timeout=self._timeout_seconds) as response:
                    response.read()
                return
            except urllib.error.HTTPError as error:
                status = error.code
                detail = _response_excerpt(error)
                if status != 429 and status < 500:
                    raise HttpSinkError(_rejection_message(url, status, error.reason, detail), status=status) from None
                retry_after = _retry_after_seconds(error.headers.get("Retry-After"))
                problem = f"HTTP {status} {error.reason}".strip() + (f": {detail}" if detail else "")
            except urllib.error.URLError as error:
                if isinstance(error.reason, ssl.SSLError):
                    # Certificate and protocol problems do not heal by retrying.
                    raise HttpSinkError(f"POST {url}: TLS failed: {error.reason}") from None
                problem = f"cannot connect: {error.reason}"
            except (TimeoutError, ConnectionError, HTTPException) as error:
                problem = f"connection failed: {type(error).__name__}: {error}"
            if attempt == self._max_attempts:
                raise HttpSinkError(f"POST {url} failed after {attempt} attempts; last error: {problem}", status=status)
            backoff = self._backoff_seconds * 2 ** (attempt - 1)
            self._sleep(min(self._max_wait_seconds, backoff if retry_after is None else retry_after))


def _response_excerpt(error: urllib.error.HTTPError) -> str:
    try:
        return error.read(500).decode("utf-8", "replace").strip()
    except (OSError, HTTPException):
        return ""
    finally:
        error.close()


def _rejection_message(url: str, status: int, reason: str, detail: str) -> str:
    hints = {
        401: "check the write key for this source",
        403: "the write key is not allowed to write to this source",
        404: "does the source exist, and does the server have the ingest endpoint?",
        413: "the batch is too large; lower --rate",
    }
    if 300 <= status < 400:
        hint = "the server redirects; pass the final URL with --url (e.g. https:// instead of http://)"
    else:
        hint = hints.get(status, "the server refused the batch")
    message = f"POST {url} was rejected: HTTP {status} {reason}".rstrip() + f" ({hint})"
    return message + (f": {detail}" if detail else "")


def _retry_after_seconds(header: str | None) -> float | None:
    if not header:
        return None
    header = header.strip()
    try:
        return max(0.0, float(header))
    except ValueError:
        pass
    try:
        moment = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return max(0.0, (moment - datetime.now(UTC)).total_seconds())
