"""REST endpoints for file uploads (CSV, Parquet backfills): upload, list, progress, cancel and resume.

Viewers of a source may list uploads and follow their progress; uploading, cancelling and resuming need the
right to manage the source (organisation admins and editors), as other writes through the API do.
"""

from __future__ import annotations

import logging

from django.db import transaction
from django.http import Http404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.parsers import FormParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from apps.ingestion.models import FileUpload
from apps.ingestion.uploads import (
    UploadError,
    upload_cancel,
    upload_create,
    upload_max_bytes,
    upload_percent,
    upload_requeue,
)
from apps.sources.api import source_for_request
from apps.sources.models import Source

logger = logging.getLogger(__name__)

# Multipart framing around the file: a request this much over the file limit is refused before it is read.
_MULTIPART_OVERHEAD_BYTES = 64 * 1024


class UploadSerializer(serializers.ModelSerializer):
    """An upload and its progress."""

    percent = serializers.SerializerMethodField(help_text="rows_done / rows_total in percent; null until counted.")
    created_by = serializers.CharField(source="created_by.username", read_only=True, allow_null=True)

    class Meta:
        model = FileUpload
        fields = [
            "id", "original_name", "payload_format", "size_bytes", "status", "rows_total", "rows_done", "percent",
            "points_written", "rows_rejected", "error", "created_at", "created_by", "started_at", "finished_at",
        ]  # fmt: skip
        read_only_fields = fields

    @extend_schema_field(serializers.FloatField(allow_null=True))
    def get_percent(self, upload: FileUpload) -> float | None:
        return upload_percent(upload)


def _error(error: UploadError) -> Response:
    return field_error_response(error.field, error.message, error.status)


def _enqueue(upload: FileUpload) -> None:
    """Start processing once the upload's row is committed (a worker must be able to read it)."""
    from apps.ingestion.tasks import upload_process

    upload_id = upload.id

    def send() -> None:
        try:
            upload_process.delay(upload_id)
        except Exception:
            # The broker is down: the upload stays queued and POST .../resume enqueues it again.
            logger.exception("upload %s could not be enqueued", upload_id)

    transaction.on_commit(send)


def _upload_for(source: Source, upload_id: int) -> FileUpload:
    upload = FileUpload.objects.select_related("created_by").filter(source=source, id=upload_id).first()
    if upload is None:
        raise Http404("No such upload on this source.")
    return upload


class UploadListCreateView(ListAPIView):
    """A source's uploads, newest first; upload a CSV or Parquet file to backfill."""

    serializer_class = UploadSerializer
    parser_classes = [MultiPartParser, FormParser]

    def get_queryset(self):
        source = source_for_request(self.request, self.kwargs["slug"])
        return FileUpload.objects.filter(source=source).select_related("created_by").order_by("-created_at", "-id")

    @extend_schema(summary="List uploads")
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        summary="Upload a CSV or Parquet file",
        description=(
            "Multipart form with the file in field `file` (.csv or .parquet; other names are recognised by their "
            "content). CSV needs a header row naming the columns; the delimiter (comma, semicolon or tab) is "
            "detected; UTF-8 with or without BOM. Rows are validated against the source's schema like any other "
            "ingest; refused rows go to the dead-letter store with their row number. Answers 202 at once: follow "
            "the progress at `uploads/{id}`. 413 when the file is over the size limit, 415 when it is neither CSV "
            "nor Parquet."
        ),
        request={
            "multipart/form-data": inline_serializer(
                "UploadCreate", {"file": serializers.FileField(help_text="The CSV or Parquet file.")}
            )
        },
        responses={
            202: UploadSerializer,
            400: ErrorSerializer,
            403: ErrorSerializer,
            413: ErrorSerializer,
            415: ErrorSerializer,
        },
    )
    def post(self, request: Request, slug: str) -> Response:
        source = source_for_request(request, slug, manage=True)
        limit = upload_max_bytes()
        try:
            declared = int(request.META.get("CONTENT_LENGTH") or 0)
        except ValueError:
            declared = 0
        if declared > limit + _MULTIPART_OVERHEAD_BYTES:
            # Refuse before Django spools gigabytes to disk only to throw them away.
            return _error(UploadError("file", f"Uploads may be at most {limit} bytes.", status=413))
        uploaded_file = request.FILES.get("file")
        if uploaded_file is None:
            return _error(UploadError("file", 'Send the file as the multipart form field "file".'))
        try:
            with transaction.atomic():
                upload = upload_create(source=source, uploaded_file=uploaded_file, created_by=request.user)
                _enqueue(upload)
        except UploadError as error:
            return _error(error)
        upload.refresh_from_db()  # an eager task (tests) may have run already
        return Response(UploadSerializer(upload).data, status=status.HTTP_202_ACCEPTED)


class UploadDetailView(APIView):
    """One upload and its progress."""

    @extend_schema(responses={200: UploadSerializer}, summary="Get an upload's progress")
    def get(self, request: Request, slug: str, upload_id: int) -> Response:
        upload = _upload_for(source_for_request(request, slug), upload_id)
        return Response(UploadSerializer(upload).data)


class UploadCancelView(APIView):
    """Cancel a queued or running upload; rows already committed stay stored."""

    @extend_schema(
        request=None,
        responses={200: UploadSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
        summary="Cancel an upload",
        description="Takes effect between chunks: the chunk being written commits, nothing after it starts.",
    )
    def post(self, request: Request, slug: str, upload_id: int) -> Response:
        upload = _upload_for(source_for_request(request, slug, manage=True), upload_id)
        try:
            upload = upload_cancel(upload=upload)
        except UploadError as error:
            return _error(error)
        return Response(UploadSerializer(_upload_for(upload.source, upload.id)).data)


class UploadResumeView(APIView):
    """Resume a failed or cancelled upload (or re-enqueue a queued one) after the rows already committed."""

    @extend_schema(
        request=None,
        responses={202: UploadSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
        summary="Resume an upload",
        description="Processing restarts at `rows_done`: rows already stored are not written again.",
    )
    def post(self, request: Request, slug: str, upload_id: int) -> Response:
        source = source_for_request(request, slug, manage=True)
        upload = _upload_for(source, upload_id)
        try:
            with transaction.atomic():
                upload = upload_requeue(upload=upload)
                _enqueue(upload)
        except UploadError as error:
            return _error(error)
        return Response(UploadSerializer(_upload_for(source, upload.id)).data, status=status.HTTP_202_ACCEPTED)
