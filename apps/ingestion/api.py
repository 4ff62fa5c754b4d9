"""Ingest endpoints (as DRF views, so they appear in the OpenAPI schema; the work is in views.py), dead letters
and live ingest figures.

The ingest endpoints authenticate with source write keys themselves (not API tokens or sessions), read
the raw body, and are exempt from CSRF because no cookie can authorise them.
"""

from __future__ import annotations

from django.db.models import Count
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiParameter, OpenApiResponse, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from analytics_platform.json_body import JsonBodySerializer
from apps.ingestion import views
from apps.ingestion.models import DeadLetter, DeadLetterStatus, Transport
from apps.ingestion.services import (
    DeadLetterError,
    dead_letter_edit_replay,
    dead_letters_discard,
    dead_letters_replay,
)
from apps.ingestion.stats import stats_get
from apps.sources.api import source_for_request
from apps.storage.services import series_count

_RESULT = inline_serializer(
    "IngestResult",
    {
        "accepted": serializers.IntegerField(help_text="Records stored."),
        "rejected": serializers.IntegerField(help_text="Records refused; each is in the dead-letter store."),
        "points": serializers.IntegerField(help_text="Points written (one per measure of each stored record)."),
        "errors": serializers.ListField(
            child=inline_serializer(
                "IngestRecordError",
                {
                    "index": serializers.IntegerField(help_text="0-based record (or line) number."),
                    "code": serializers.CharField(),
                    "field": serializers.CharField(allow_null=True),
                    "message": serializers.CharField(),
                },
            ),
            help_text="The first 20 refusals.",
        ),
    },
)
_ERROR = inline_serializer(
    "IngestError",
    {
        "detail": serializers.CharField(),
        "field": serializers.CharField(allow_null=True),
        "code": serializers.CharField(help_text="e.g. unauthorized, too_large, invalid_json, overloaded."),
        "error": serializers.CharField(help_text="The code again, under its earlier name."),
    },
)
# The InfluxDB-compatible endpoints answer in InfluxDB's own error formats, so its clients and agents read them.
_INFLUX_V2_ERROR = inline_serializer(
    "InfluxV2Error", {"code": serializers.CharField(), "message": serializers.CharField()}
)
_INFLUX_V1_ERROR = inline_serializer("InfluxV1Error", {"error": serializers.CharField()})


class _IngestView(APIView):
    authentication_classes: list = []
    permission_classes = [AllowAny]


class _InfluxView(_IngestView):
    standard_error_responses = False  # InfluxDB's error format, declared per endpoint (analytics_platform/openapi.py)


class SourceIngestView(_IngestView):
    """Write records to a source with one of its write keys."""

    @extend_schema(
        summary="Ingest JSON or NDJSON records",
        description=(
            "Body: a JSON array of objects, one object, or NDJSON (`Content-Type: application/x-ndjson`), "
            "optionally `Content-Encoding: gzip`. Authenticate with `Authorization: Bearer <write key>`. "
            "Answers after the commit. Refused records are kept in the dead-letter store. 422 means every "
            "record was refused; 409 the source is paused; 413 the body is too large, or has more points than "
            "the source's rate limit allows in one 10-second window (code `batch_over_rate_limit`: split it, "
            "retrying it whole never succeeds); 429 the source's rate limit or the server's in-flight bound was "
            "hit (see Retry-After)."
        ),
        request={
            "application/json": {
                "description": "An array of records, or one record; lines of JSON objects are read as NDJSON, and "
                "an empty body stores nothing. A record is an object of fields: an array item that is not is "
                "refused as that record (and kept in the dead-letter store), like any bad record; a body that is "
                "none of these is refused whole (400, and kept in the dead-letter store).",
                "example": [{"time": "2026-01-01T00:00:00Z", "device": "d1", "temperature": 21.5}],
            },
            "application/x-ndjson": OpenApiTypes.STR,
        },
        responses={
            200: _RESULT,
            400: _ERROR,
            401: _ERROR,
            403: _ERROR,
            409: _ERROR,
            413: _ERROR,
            415: _ERROR,
            422: _RESULT,
            429: _ERROR,
            500: _ERROR,
            503: _ERROR,
        },
        auth=[],
    )
    def post(self, request: Request, slug: str):
        return views.source_ingest(request._request, slug)


class InfluxV2WriteView(_InfluxView):
    """InfluxDB 2.x write API."""

    @extend_schema(
        summary="InfluxDB v2 write (line protocol)",
        description=(
            "Compatible with InfluxDB 2.x clients and Telegraf's influxdb_v2 output: `bucket` is the source slug, "
            "`org` is ignored, `Authorization: Token <write key>`. 204 when every line was stored; 400 "
            "'partial write' names the first bad line (good lines are stored, bad ones dead-lettered). Errors are "
            'in InfluxDB 2\'s format, {"code": ..., "message": ...}, not the API\'s error shape, so InfluxDB clients '
            "read them."
        ),
        parameters=[
            OpenApiParameter("bucket", str, required=True, description="The source slug."),
            OpenApiParameter("org", str, required=False, description="Accepted and ignored."),
            OpenApiParameter("precision", str, enum=["ns", "us", "ms", "s"], description="Timestamp unit."),
        ],
        request={"text/plain": OpenApiTypes.STR},
        responses={
            204: OpenApiResponse(description="Stored."),
            400: _INFLUX_V2_ERROR,
            401: _INFLUX_V2_ERROR,
            404: _INFLUX_V2_ERROR,
            409: _INFLUX_V2_ERROR,
            413: _INFLUX_V2_ERROR,
            415: _INFLUX_V2_ERROR,
            429: _INFLUX_V2_ERROR,
            500: _INFLUX_V2_ERROR,
            503: _INFLUX_V2_ERROR,
        },
        auth=[],
    )
    def post(self, request: Request):
        return views.influx_v2_write(request._request)


class InfluxV1WriteView(_InfluxView):
    """InfluxDB 1.x write API."""

    @extend_schema(
        summary="InfluxDB v1 write (line protocol)",
        description=(
            "Compatible with InfluxDB 1.x clients: `db` is the source slug; the write key goes in "
            "`Authorization: Token <key>`, as the Basic-auth password, or as `p=`. Errors are in InfluxDB 1's "
            'format, {"error": ...}, not the API\'s error shape, so InfluxDB clients read them.'
        ),
        parameters=[
            OpenApiParameter("db", str, required=True, description="The source slug."),
            OpenApiParameter("precision", str, enum=["n", "ns", "u", "us", "ms", "s", "m", "h"]),
        ],
        request={"text/plain": OpenApiTypes.STR},
        responses={
            204: OpenApiResponse(description="Stored."),
            400: _INFLUX_V1_ERROR,
            401: _INFLUX_V1_ERROR,
            404: _INFLUX_V1_ERROR,
            409: _INFLUX_V1_ERROR,
            413: _INFLUX_V1_ERROR,
            415: _INFLUX_V1_ERROR,
            429: _INFLUX_V1_ERROR,
            500: _INFLUX_V1_ERROR,
            503: _INFLUX_V1_ERROR,
        },
        auth=[],
    )
    def post(self, request: Request):
        return views.influx_v1_write(request._request)


class InfluxPingView(_InfluxView):
    """InfluxDB ping."""

    @extend_schema(summary="InfluxDB ping", responses={204: OpenApiResponse(description="Up.")}, auth=[])
    def get(self, request: Request):
        return views.influx_ping(request._request)

    head = get


class DeadLetterSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeadLetter
        fields = [
            "id", "schema_version", "transport", "payload_format", "record_index", "error_code", "error_field",
            "error_message", "raw", "context", "received_at", "last_received_at", "occurrences", "status",
            "replay_attempts", "resolved_at",
        ]  # fmt: skip
        read_only_fields = fields


class DeadLetterActionSerializer(JsonBodySerializer):
    ids = serializers.ListField(child=serializers.IntegerField(), required=False, max_length=10_000)
    all = serializers.BooleanField(default=False, help_text="Act on every pending dead letter of the source.")

    def validate(self, attrs):
        if not attrs.get("ids") and not attrs.get("all"):
            raise serializers.ValidationError({"ids": ['Name the dead letters by id, or send "all": true.']})
        return attrs


class DeadLetterFilterSerializer(serializers.Serializer):
    """Query parameters of the dead-letter list."""

    status = serializers.ChoiceField(
        choices=DeadLetterStatus.choices, default=DeadLetterStatus.PENDING, help_text="Default: pending."
    )
    code = serializers.CharField(
        required=False, allow_blank=True, max_length=40, help_text="Error code, e.g. out_of_range."
    )
    transport = serializers.ChoiceField(choices=Transport.choices, required=False, allow_blank=True)
    since = serializers.DateTimeField(required=False, help_text="ISO 8601: last received at or after.")


class DeadLetterListView(ListAPIView):
    """Refused records of a source, most recently received first; filter by status, error code, transport and time.

    A record delivered again while its letter is pending is one letter: `occurrences` says how many times it came,
    `received_at` when it first came (replay uses it for records without a time), `last_received_at` the latest.
    """

    serializer_class = DeadLetterSerializer

    @extend_schema(summary="List dead letters", parameters=[DeadLetterFilterSerializer])
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        source = source_for_request(self.request, self.kwargs["slug"])
        filters = DeadLetterFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = filters.validated_data
        letters = DeadLetter.objects.filter(source=source, status=wanted["status"])
        if wanted.get("code"):
            letters = letters.filter(error_code=wanted["code"])
        if wanted.get("transport"):
            letters = letters.filter(transport=wanted["transport"])
        if wanted.get("since"):
            letters = letters.filter(last_received_at__gte=wanted["since"])
        return letters.order_by("-last_received_at", "-id")


_REPLAY_RESULT = inline_serializer(
    "DeadLetterReplayResult",
    {"replayed": serializers.IntegerField(), "still_failing": serializers.IntegerField()},
)


class DeadLetterReplayView(APIView):
    """Run dead letters through the source's current schema again (after fixing it)."""

    @extend_schema(request=DeadLetterActionSerializer, responses={200: _REPLAY_RESULT}, summary="Replay dead letters")
    def post(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = DeadLetterActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = None if serializer.validated_data["all"] else serializer.validated_data["ids"]
        outcome = dead_letters_replay(source=source, ids=ids, user=request.user)
        return Response({"replayed": outcome.replayed, "still_failing": outcome.still_failing})


class DeadLetterEditReplaySerializer(JsonBodySerializer):
    raw = serializers.CharField(
        required=False,
        trim_whitespace=False,
        help_text="The corrected record (for JSON sources one JSON object; for line protocol one line). Omit it to "
        "replay the record as it is.",
    )


class DeadLetterDetailView(APIView):
    """One dead letter of a source."""

    @extend_schema(responses={200: DeadLetterSerializer, 404: ErrorSerializer}, summary="Get a dead letter")
    def get(self, request: Request, slug: str, letter_id: int) -> Response:
        source = source_for_request(request, slug)
        letter = DeadLetter.objects.filter(source=source, id=letter_id).first()
        if letter is None:
            return field_error_response("id", f"source {slug!r} has no dead letter {letter_id}.", 404)
        return Response(DeadLetterSerializer(letter).data)


class DeadLetterEditReplayView(APIView):
    """Correct one dead letter's record and replay it."""

    @extend_schema(
        request=DeadLetterEditReplaySerializer,
        responses={200: DeadLetterSerializer, 400: ErrorSerializer, 404: ErrorSerializer, 409: ErrorSerializer,
                   413: ErrorSerializer},
        summary="Edit and replay one dead letter",
        operation_id="api_v1_sources_dead_letters_replay_one",
        description="Replaces the record's text with `raw` (if given) and runs it through the source's current "
        "schema. The answer is the letter afterwards: `status` `replayed` when it was stored, or still `pending` "
        "with the reason it failed this time (`error_code`, `error_field`, `error_message`) and the edited text; "
        "it is never lost. The record as it first arrived is kept in `context.original_raw`.",
    )  # fmt: skip
    def post(self, request: Request, slug: str, letter_id: int) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = DeadLetterEditReplaySerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            letter = dead_letter_edit_replay(
                source=source, letter_id=letter_id, raw=serializer.validated_data.get("raw"), user=request.user
            )
        except DeadLetterError as error:
            return field_error_response(error.field, error.message, error.status)
        return Response(DeadLetterSerializer(letter).data)


class DeadLetterDiscardView(APIView):
    """Discard dead letters: kept for the record, no longer offered for replay."""

    @extend_schema(
        request=DeadLetterActionSerializer,
        responses={200: inline_serializer("DeadLetterDiscardResult", {"discarded": serializers.IntegerField()})},
        summary="Discard dead letters",
    )
    def post(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        serializer = DeadLetterActionSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        ids = None if serializer.validated_data["all"] else serializer.validated_data["ids"]
        return Response({"discarded": dead_letters_discard(source=source, ids=ids, user=request.user)})


def source_stats(source) -> dict:
    """Live figures for one source: rates, last seen, pending dead letters by code, series count."""
    stats = stats_get(source_ids=[source.id])[source.id]
    by_code = dict(
        DeadLetter.objects.filter(source=source, status=DeadLetterStatus.PENDING)
        .values_list("error_code")
        .annotate(n=Count("id"))
        .order_by()
    )
    return {
        "points_per_second": round(stats.points_per_second, 3),
        "records_per_second": round(stats.records_per_second, 3),
        "rejected_per_second": round(stats.rejected_per_second, 3),
        "last_seen": stats.last_seen,
        "last_error_at": stats.last_error_at,
        "dead_letters_pending": sum(by_code.values()),
        "dead_letters_by_code": by_code,
        "series": series_count(source_id=source.id),
    }


class SourceStatsView(APIView):
    """Live ingest figures of a source."""

    @extend_schema(
        summary="Ingest figures of a source",
        responses={
            200: inline_serializer(
                "SourceStats",
                {
                    "points_per_second": serializers.FloatField(help_text="Over the last minute."),
                    "records_per_second": serializers.FloatField(),
                    "rejected_per_second": serializers.FloatField(),
                    "last_seen": serializers.DateTimeField(allow_null=True),
                    "last_error_at": serializers.DateTimeField(allow_null=True),
                    "dead_letters_pending": serializers.IntegerField(
                        help_text="Pending refused records; a record delivered again is counted once."
                    ),
                    "dead_letters_by_code": serializers.DictField(
                        child=serializers.IntegerField(), help_text="Pending refused records by error code."
                    ),
                    "series": serializers.IntegerField(),
                },
            )
        },
    )
    def get(self, request: Request, slug: str) -> Response:
        return Response(source_stats(source_for_request(request, slug)), status=status.HTTP_200_OK)
