"""REST endpoints for reports: list/create, read/change/delete, run now (202), run history, preview."""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiResponse, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, FieldError, field_error_response
from apps.access.models import Organization
from apps.access.selectors import organization_ids_for_user, organization_list_for_user
from apps.reporting.models import Report, RunTrigger
from apps.reporting.selectors import (
    EDITOR_ROLES,
    preview_principal,
    report_can_edit,
    report_can_manage,
    report_get_for_user,
    report_list_for_user,
    report_run_list,
)
from apps.reporting.serializers import (
    PreviewQuerySerializer,
    ReportRunSerializer,
    ReportSerializer,
    ReportWriteSerializer,
)
from apps.reporting.services import report_create, report_delete, report_run_start, report_update

CONTRACT_EXAMPLE = {
    "name": "Weekly plant report",
    "dashboard": "<uid>",
    "formats": ["pdf", "xlsx", "csv"],
    "recipients": {"users": ["<username>"], "emails": []},
    "time_range": {"start": "-24h", "end": "now"},
    "schedule": {"cron": "0 7 * * 1", "timezone": "Europe/London"},
}


def report_for_request(request: Request, report_id: int, *, edit: bool = False) -> Report:
    """The report if the user may see it (404 otherwise, across tenants too); with `edit`, 403 unless an editor."""
    report = report_get_for_user(user=request.user, report_id=report_id)
    if report is None:
        raise Http404(f"No report {report_id} that you can see.")
    if edit and not report_can_edit(user=request.user, report=report):
        raise PermissionDenied("Only organisation admins and editors may change or send this report.")
    return report


def _organization_for_create(request: Request, slug: Any) -> Organization:
    if slug is not None and (not isinstance(slug, str) or not slug):
        raise FieldError("organization", "an organisation's slug; leave it out when you belong to one organisation.")
    organizations = (
        Organization.objects.all() if request.user.is_superuser else organization_list_for_user(user=request.user)
    )
    if slug:
        organization = organizations.filter(slug=slug).first()
        if organization is None:
            raise FieldError("organization", f"no organisation {slug[:100]!r} that you belong to.")
    else:
        mine = list(organization_list_for_user(user=request.user).distinct())
        if len(mine) != 1:
            raise FieldError("organization", "name the organisation by its slug (you belong to several or none).")
        organization = mine[0]
    if not request.user.is_superuser and organization.pk not in organization_ids_for_user(
        user=request.user, roles=EDITOR_ROLES
    ):
        raise FieldError("organization", "only organisation admins and editors may create reports.", status=403)
    return organization


class ReportListCreateView(ListAPIView):
    """Reports of your organisations; create one (editors and admins)."""

    serializer_class = ReportSerializer

    def get_queryset(self):
        return report_list_for_user(user=self.request.user).prefetch_related("recipient_users")

    @extend_schema(summary="List reports")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=ReportWriteSerializer,
        responses={201: ReportSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        summary="Create a report",
        description="Each user recipient gets the report rendered under their own data policies. External "
        "addresses receive what you (the owner) may see, and only with recipients.send_emails_as_me = true. "
        'Errors name the field, e.g. {"field": "schedule.cron"}.',
        examples=[OpenApiExample("The minimal contract", value=CONTRACT_EXAMPLE, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        data = request.data
        if not isinstance(data, dict):
            return field_error_response("body", "send a JSON object.", 400)
        try:
            organization = _organization_for_create(request, data.get("organization"))
            fields = {key: value for key, value in data.items() if key != "organization"}
            report = report_create(organization=organization, owner=request.user, data=fields)
        except FieldError as error:
            return field_error_response(error.field, error.message, error.status)
        return Response(ReportSerializer(report).data, status=status.HTTP_201_CREATED)


class ReportDetailView(APIView):
    """One report: read, change (PATCH, any subset of the create fields), delete."""

    @extend_schema(responses={200: ReportSerializer, 404: ErrorSerializer}, summary="Get a report")
    def get(self, request: Request, report_id: int) -> Response:
        return Response(ReportSerializer(report_for_request(request, report_id)).data)

    @extend_schema(
        request=ReportWriteSerializer,
        responses={200: ReportSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
        summary="Change a report",
    )
    def patch(self, request: Request, report_id: int) -> Response:
        report = report_for_request(request, report_id, edit=True)
        if not isinstance(request.data, dict):
            return field_error_response("body", "send a JSON object.", 400)
        if "organization" in request.data:
            return field_error_response("organization", "a report cannot move to another organisation.", 400)
        try:
            report = report_update(report=report, data=request.data)
        except FieldError as error:
            return field_error_response(error.field, error.message, error.status)
        return Response(ReportSerializer(report).data)

    @extend_schema(request=None, responses={204: None, 403: ErrorSerializer}, summary="Delete a report")
    def delete(self, request: Request, report_id: int) -> Response:
        report = report_for_request(request, report_id)
        if not report_can_manage(user=request.user, report=report):
            raise PermissionDenied("Only organisation admins and editors may delete this report.")
        report_delete(report=report)
        return Response(status=status.HTTP_204_NO_CONTENT)


class ReportRunView(APIView):
    """Send the report now: a run is queued and rendered by the workers."""

    @extend_schema(
        request=None,
        responses={202: ReportRunSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
        summary="Run a report now",
        description="Answers 202 with the queued run; follow it at GET /api/v1/reports/<id>/runs/.",
    )
    def post(self, request: Request, report_id: int) -> Response:
        report = report_for_request(request, report_id, edit=True)
        run = report_run_start(report=report, trigger=RunTrigger.MANUAL, requested_by=request.user)
        return Response(ReportRunSerializer(run).data, status=status.HTTP_202_ACCEPTED)


class ReportRunListView(ListAPIView):
    """A report's runs, newest first, each with the status of every recipient."""

    serializer_class = ReportRunSerializer

    def get_queryset(self):
        return report_run_list(report=report_for_request(self.request, self.kwargs["report_id"]))

    @extend_schema(summary="List a report's runs")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class ReportPreviewView(APIView):
    """The file a recipient would get if the report ran now (rendered under that recipient's data scope)."""

    @extend_schema(
        parameters=[PreviewQuerySerializer],
        responses={
            (200, "application/pdf"): OpenApiResponse(OpenApiTypes.BINARY, description="The file."),
            404: ErrorSerializer,
        },
        summary="Preview a report as a recipient",
        description="You may preview as yourself; organisation admins as any recipient; the owner (and admins) as "
        "the external addresses, who see the owner's view. Anything else answers 404.",
    )
    def get(self, request: Request, report_id: int):
        from apps.reporting.runs import report_preview_render
        from apps.reporting.views import _file_response

        report = report_for_request(request, report_id)
        query = PreviewQuerySerializer(data=request.query_params.dict())
        query.is_valid(raise_exception=True)
        recipient = query.validated_data["recipient"]
        principal = preview_principal(user=request.user, report=report, recipient=recipient)
        if principal is None:
            raise Http404("You may not preview this report as that recipient.")
        file_format = query.validated_data["file_format"]
        path, content_type, _ = report_preview_render(
            report=report, principal=principal, file_format=file_format, external=recipient.startswith("email:")
        )
        return _file_response(path, content_type, inline=file_format == "pdf", remove_directory=True)
