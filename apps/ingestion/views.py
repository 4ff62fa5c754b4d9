"""HTTP ingest handlers: our JSON/NDJSON endpoint and InfluxDB-compatible v1 and v2 writes (routed by api.py).

The handlers take the Django request, not DRF's: the body is read raw (gzip, size limits) and parsed by our
own parsers, and the InfluxDB endpoints must answer exactly as InfluxDB does so existing agents work
unchanged. Every one answers only after the batch's commit.
"""

from __future__ import annotations

import base64
import binascii
import logging
import math
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.db import DatabaseError, InterfaceError, OperationalError
from django.http import HttpRequest, HttpResponse, JsonResponse

from analytics_platform.field_errors import error_body
from apps.ingestion.content_encoding import BodyRefused, content_decode
from apps.ingestion.metrics import INGEST_REQUESTS_REFUSED
from apps.ingestion.models import PayloadFormat, Transport
from apps.ingestion.records import ParseResult, PayloadError
from apps.ingestion.services import (
    IngestRefused,
    IngestResult,
    batch_ingest,
    batch_ingest_json_columnar,
    batch_ingest_line_protocol,
    payload_dead_letter,
)
from apps.sources.services import WriteKeyGrant, write_key_authenticate

logger = logging.getLogger(__name__)
INFLUXDB_VERSION = "1.8.10-analytics-platform"  # what /ping reports; agents only check that it answers

_in_flight = threading.BoundedSemaphore(settings.INGEST_MAX_IN_FLIGHT)


class _Refusal(Exception):
    def __init__(self, status: int, code: str, message: str, *, retry_after: float | None = None) -> None:
        self.status = status
        self.code = code
        self.message = message
        self.retry_after = retry_after


def _read_body(request: HttpRequest) -> bytes:
    """The request body, decoded completely per its Content-Encoding (every gzip member, nothing cut off or
    trailing), refusing more than INGEST_MAX_BODY_BYTES before reading it all and again once decoded."""
    limit = settings.INGEST_MAX_BODY_BYTES
    declared = request.META.get("CONTENT_LENGTH") or ""
    if declared.isdigit() and int(declared) > limit:
        raise _Refusal(
            413, "too_large", f"The body is {int(declared)} bytes; the limit is {limit}. Send smaller batches."
        )
    body = request.read(limit + 1)
    if len(body) > limit:
        raise _Refusal(413, "too_large", f"The body is over the {limit}-byte limit. Send smaller batches.")
    try:
        return content_decode(body, encoding=request.META.get("HTTP_CONTENT_ENCODING", ""), limit=limit)
    except BodyRefused as refused:
        raise _Refusal(refused.status, refused.code, refused.message) from None


def _grant_from_request(request: HttpRequest, *, schemes: tuple[str, ...]) -> WriteKeyGrant:
    """The write key from Authorization (Bearer/Token, or Basic with the key as password) or ?p= for v1."""
    header = request.META.get("HTTP_AUTHORIZATION", "")
    raw_key = ""
    scheme, _, credentials = header.partition(" ")
    if scheme.lower() == "basic" and "basic" in schemes:
        try:
            raw_key = base64.b64decode(credentials.strip()).decode().partition(":")[2]
        except (binascii.Error, UnicodeDecodeError):
            raw_key = ""
    elif scheme.lower() in schemes:
        raw_key = credentials.strip()
    elif not header and "query" in schemes:
        raw_key = request.GET.get("p", "")
    if not raw_key:
        accepted = " or ".join(scheme.title() for scheme in schemes if scheme not in ("query", "basic"))
        raise _Refusal(401, "unauthorized", f"Send a source write key as 'Authorization: {accepted} <key>'.")
    grant = write_key_authenticate(raw_key=raw_key)
    if grant is None:
        raise _Refusal(401, "unauthorized", "This write key is unknown or revoked.")
    return grant


def _source_for(grant: WriteKeyGrant, slug: str) -> int:
    from apps.ingestion.services import ingest_target_get

    target = ingest_target_get(source_id=grant.source_id)
    if target.slug != slug:
        raise _Refusal(403, "forbidden", f"This write key belongs to another source, not {slug!r}.")
    return grant.source_id


def _overloaded() -> _Refusal:
    return _Refusal(429, "overloaded", "The server is busy with other writes; retry shortly.", retry_after=1)


def _run(work: Callable[[], HttpResponse], render_refusal: Callable[[_Refusal], HttpResponse]) -> HttpResponse:
    """Bound concurrent ingest work per process and turn refusals into the endpoint's error format."""
    if not _in_flight.acquire(blocking=False):
        return _refused(_overloaded(), render_refusal)
    try:
        return work()
    except _Refusal as refusal:
        return _refused(refusal, render_refusal)
    except IngestRefused as refused:
        refusal = _Refusal(refused.status, refused.code, refused.message, retry_after=refused.retry_after)
        return _refused(refusal, render_refusal)
    except (OperationalError, InterfaceError):
        # Down, restarting, unreachable, or a deadlock or serialization failure that a retry gets past.
        logger.exception("ingest failed on the database; nothing was acknowledged")
        refusal = _Refusal(
            503, "unavailable", "Storage is unavailable; nothing was stored. Retry shortly.", retry_after=5
        )
        return _refused(refusal, render_refusal)
    except DatabaseError:
        # The input was checked before it reached the database, so this is the server's fault, not the sender's,
        # and not one a retry would get past: say so without a Retry-After, and without the database's words.
        logger.exception("ingest failed on the database; nothing was acknowledged")
        refusal = _Refusal(500, "internal_error", "The server failed to store this batch; nothing was stored.")
        return _refused(refusal, render_refusal)
    finally:
        _in_flight.release()


def _refused(refusal: _Refusal, render: Callable[[_Refusal], HttpResponse]) -> HttpResponse:
    INGEST_REQUESTS_REFUSED.labels(status=str(refusal.status)).inc()
    response = render(refusal)
    if refusal.retry_after is not None:
        response["Retry-After"] = str(max(1, math.ceil(refusal.retry_after)))
    if refusal.status == 401:
        response["WWW-Authenticate"] = 'Bearer realm="ingest"'
    return response


def _parse_or_dead_letter(
    *, source_id: int, body: bytes, parse: Callable[[], ParseResult], transport: str, payload_format: str,
    context: dict[str, Any],
) -> ParseResult:  # fmt: skip
    """Parse; a payload that cannot be split is kept whole in the dead-letter store and refused with 400."""
    try:
        return parse()
    except PayloadError as error:
        raw = body.decode("utf-8", errors="replace")
        payload_dead_letter(
            source_id=source_id, error=error, raw=raw, transport=transport, payload_format=payload_format,
            context=context,
        )  # fmt: skip
        raise _Refusal(400, error.code, error.message) from error


# --- our JSON / NDJSON endpoint ---------------------------------------------------------------------


def _json_refusal(refusal: _Refusal) -> HttpResponse:
    """The API's error shape (analytics_platform/field_errors.py), plus `error`: the code under its earlier name."""
    body = error_body(message=refusal.message, field=None, code=refusal.code, error=refusal.code)
    return JsonResponse(body, status=refusal.status)


def source_ingest(request: HttpRequest, slug: str) -> HttpResponse:
    """POST /api/v1/sources/<slug>/ingest: a JSON array, one object or NDJSON; answers with what was stored."""

    def work() -> HttpResponse:
        grant = _grant_from_request(request, schemes=("bearer",))
        source_id = _source_for(grant, slug)
        body = _read_body(request)
        content_type = request.META.get("CONTENT_TYPE", "").split(";")[0].strip().lower()
        ndjson = True if content_type in ("application/x-ndjson", "application/jsonl", "application/ndjson") else None

        if not ndjson:
            fast = batch_ingest_json_columnar(source_id=source_id, body=body, transport=Transport.HTTP)
            if fast is not None:  # a plain array of known series, stored column by column
                return JsonResponse(fast.as_response(), status=200)

        def parse() -> ParseResult:
            from apps.ingestion.parsers.json_records import json_records_parse

            return json_records_parse(body, ndjson=ndjson)

        parsed = _parse_or_dead_letter(
            source_id=source_id, body=body, parse=parse, transport=Transport.HTTP,
            payload_format=PayloadFormat.JSON, context={},
        )  # fmt: skip
        result: IngestResult = batch_ingest(
            source_id=source_id, parsed=parsed, transport=Transport.HTTP, payload_format=PayloadFormat.JSON
        )
        status = 422 if result.accepted == 0 and result.rejected > 0 else 200
        return JsonResponse(result.as_response(), status=status)

    return _run(work, _json_refusal)


# --- InfluxDB-compatible writes ---------------------------------------------------------------------

_V2_CODES = {400: "invalid", 401: "unauthorized", 403: "forbidden", 404: "not found", 409: "conflict",
             413: "request too large", 415: "invalid", 422: "unprocessable entity", 429: "too many requests",
             503: "unavailable"}  # fmt: skip


_V2_PRECISIONS = ("ns", "us", "ms", "s")
_V1_PRECISIONS = ("n", "ns", "u", "us", "ms", "s", "m", "h")


def _influx_v2_refusal(refusal: _Refusal) -> HttpResponse:
    return JsonResponse({"code": _V2_CODES.get(refusal.status, "internal error"), "message": refusal.message},
                        status=refusal.status)  # fmt: skip


def _influx_v1_refusal(refusal: _Refusal) -> HttpResponse:
    return JsonResponse({"error": refusal.message}, status=refusal.status)


def _influx_write(request: HttpRequest, *, slug: str, precision: str, transport: str) -> HttpResponse:
    schemes = ("token", "bearer") if transport == Transport.INFLUX_V2 else ("token", "bearer", "basic", "query")
    grant = _grant_from_request(request, schemes=schemes)
    if not slug:
        parameter = "bucket" if transport == Transport.INFLUX_V2 else "db"
        raise _Refusal(400 if transport == Transport.INFLUX_V2 else 404, "invalid",
                       f"missing {parameter}: name the source's slug with ?{parameter}=<slug>")  # fmt: skip
    from apps.ingestion.services import ingest_target_get

    if ingest_target_get(source_id=grant.source_id).slug != slug:
        raise _Refusal(404, "not found", f'bucket "{slug}" not found' if transport == Transport.INFLUX_V2
                       else f"database not found: \"{slug}\"")  # fmt: skip
    allowed = _V2_PRECISIONS if transport == Transport.INFLUX_V2 else _V1_PRECISIONS
    if precision not in allowed:
        raise _Refusal(400, "invalid", f"invalid precision {precision!r}: use one of {', '.join(allowed)}")
    body = _read_body(request)
    context = {"precision": precision}
    try:
        result = batch_ingest_line_protocol(
            source_id=grant.source_id, body=body, precision=precision, transport=transport, context=context
        )
    except PayloadError as error:
        payload_dead_letter(
            source_id=grant.source_id, error=error, raw=body.decode("utf-8", errors="replace"), transport=transport,
            payload_format=PayloadFormat.LINE, context=context,
        )  # fmt: skip
        raise _Refusal(400, error.code, error.message) from error
    if result.errors:
        first = result.errors[0]
        # InfluxDB stores the good lines and answers 400 "partial write" naming the first bad one.
        message = f"partial write: {first.message}" if result.accepted else first.message
        if len(result.errors) > 1:
            message += f" (and {len(result.errors) - 1} more; all kept in the dead-letter store)"
        raise _Refusal(400, "invalid", message)
    return HttpResponse(status=204)


def influx_v2_write(request: HttpRequest) -> HttpResponse:
    """POST /api/v2/write?bucket=<slug>&precision=ns|us|ms|s with 'Authorization: Token <write key>'."""
    precision = request.GET.get("precision", "ns")
    return _run(
        lambda: _influx_write(request, slug=request.GET.get("bucket", ""), precision=precision,
                              transport=Transport.INFLUX_V2),
        _influx_v2_refusal,
    )  # fmt: skip


def influx_v1_write(request: HttpRequest) -> HttpResponse:
    """POST /write?db=<slug>&precision=n|u|ms|s|m|h (InfluxDB 1.x); the write key as token, password or ?p=."""
    precision = request.GET.get("precision", "n")
    return _run(
        lambda: _influx_write(request, slug=request.GET.get("db", ""), precision=precision,
                              transport=Transport.INFLUX_V1),
        _influx_v1_refusal,
    )  # fmt: skip


def influx_ping(request: HttpRequest) -> HttpResponse:
    """GET /ping and /api/v2/ping: agents check this before writing."""
    response = HttpResponse(status=204)
    response["X-Influxdb-Version"] = INFLUXDB_VERSION
    response["X-Influxdb-Build"] = "OSS"
    return response


@dataclass(frozen=True)
class WriteView:
    """A write handler and its endpoint's error format."""

    handle: Callable[..., HttpResponse]
    render_refusal: Callable[[_Refusal], HttpResponse]

    def overloaded(self) -> HttpResponse:
        """429 with Retry-After in the endpoint's error format, for a write that found every handler busy."""
        return _refused(_overloaded(), self.render_refusal)


# The write handlers by URL name: the write lane (write_lane.py) serves them directly.
WRITE_VIEWS = {
    "source-ingest": WriteView(source_ingest, _json_refusal),
    "influx-v2-write": WriteView(influx_v2_write, _influx_v2_refusal),
    "influx-v1-write": WriteView(influx_v1_write, _influx_v1_refusal),
}
