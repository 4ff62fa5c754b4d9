"""GET /api/v1/organizations/<slug>/audit-log: an organisation's audit log for its admins, as JSON pages or CSV."""

from __future__ import annotations

from django.conf import settings
from django.http import StreamingHttpResponse
from django.utils import timezone
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema
from rest_framework.generics import ListAPIView
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response

from apps.audit.csv_export import audit_events_csv_lines
from apps.audit.selectors import audit_event_list, organization_for_admin
from apps.audit.serializers import AuditEventSerializer, AuditFilterSerializer
from apps.audit.services import audit_record


class CsvRenderer(BaseRenderer):
    """Lets `?format=csv` and `Accept: text/csv` through content negotiation; the view streams the body itself."""

    media_type = "text/csv"
    format = "csv"
    charset = "utf-8"

    def render(self, data, accepted_media_type=None, renderer_context=None) -> bytes:
        # Only errors reach a renderer on this path (the CSV body is streamed by the view).
        return str(data).encode()


class AuditLogView(ListAPIView):
    """The organisation's audit log, newest first (organisation admins only)."""

    serializer_class = AuditEventSerializer
    renderer_classes = [JSONRenderer, CsvRenderer]
    scope_required = "admin"

    @extend_schema(
        parameters=[AuditFilterSerializer],
        summary="Audit log",
        description="Sign-ins of the organisation's members and every recorded change in it. Filter by actor, "
        "action (exact or a prefix such as `auth.`), object and time; `format=csv` (or `/export`) returns every "
        "matching event as CSV, cells made safe for spreadsheets.",
        responses={200: AuditEventSerializer(many=True)},
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        if request.accepted_renderer.format == "csv":
            return audit_log_csv_response(request=request, slug=kwargs["slug"])
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        organization = organization_for_admin(user=self.request.user, slug=self.kwargs["slug"])
        params = AuditFilterSerializer(data=self.request.query_params.dict())
        params.is_valid(raise_exception=True)
        return audit_event_list(organization=organization, filters=params.filters())


class AuditLogExportView(ListAPIView):
    """The organisation's audit log as one CSV file (organisation admins only)."""

    serializer_class = AuditEventSerializer
    pagination_class = None
    scope_required = "admin"

    @extend_schema(
        parameters=[AuditFilterSerializer],
        summary="Export the audit log as CSV",
        responses={(200, "text/csv"): OpenApiTypes.STR},
    )
    def get(self, request: Request, *args, **kwargs):
        return audit_log_csv_response(request=request, slug=kwargs["slug"])


def audit_log_csv_response(*, request: Request, slug: str) -> StreamingHttpResponse:
    """Stream the filtered events as CSV (capped by AUDIT_EXPORT_MAX_ROWS) and audit the export itself."""
    organization = organization_for_admin(user=request.user, slug=slug)
    params = AuditFilterSerializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    events = audit_event_list(organization=organization, filters=params.filters())
    limit = settings.AUDIT_EXPORT_MAX_ROWS
    audit_record(
        action="export.csv",
        organization=organization,
        request=request,
        details={"what": "audit-log", "filters": {k: str(v) for k, v in params.validated_data.items()}},
    )
    response = StreamingHttpResponse(
        audit_events_csv_lines(events[:limit].iterator(chunk_size=2000)), content_type="text/csv; charset=utf-8"
    )
    stamp = timezone.now().strftime("%Y%m%dT%H%M%SZ")
    response["Content-Disposition"] = f'attachment; filename="audit-log-{organization.slug}-{stamp}.csv"'
    return response
