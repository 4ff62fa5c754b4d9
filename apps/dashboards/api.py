"""REST endpoints for dashboards: list, create, read, save, delete; versions and restore; duplicate; export/import."""

from __future__ import annotations

import json
from typing import Any

from django.http import Http404
from django.utils.text import slugify
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema, inline_serializer
from rest_framework import serializers, status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.parsers import JSONParser, MultiPartParser
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from apps.access.models import Organization
from apps.access.selectors import organization_ids_for_user, organization_list_for_user
from apps.dashboards.documents import DashboardDocumentError
from apps.dashboards.models import Dashboard
from apps.dashboards.selectors import (
    EDITOR_ROLES,
    dashboard_can_edit,
    dashboard_document,
    dashboard_get_for_user,
    dashboard_list_for_user,
    dashboard_version_get,
    dashboard_version_list,
)
from apps.dashboards.serializers import (
    DashboardCreateSerializer,
    DashboardDetailSerializer,
    DashboardDocumentSerializer,
    DashboardDuplicateSerializer,
    DashboardFilterSerializer,
    DashboardRestoreSerializer,
    DashboardSummarySerializer,
    DashboardUpdateSerializer,
    DashboardVersionDetailSerializer,
    DashboardVersionSerializer,
)
from apps.dashboards.services import (
    DashboardError,
    dashboard_create,
    dashboard_delete,
    dashboard_duplicate,
    dashboard_restore,
    dashboard_save,
)

MAX_IMPORT_BYTES = 2 * 1024 * 1024

_EXAMPLE_DOCUMENT = {
    "title": "Plant overview",
    "folder": "Operations",
    "tags": ["factory"],
    "variables": [
        {"name": "facility", "label": "Facility", "source": "demo-factory", "metric": "temperature",
         "label_key": "facility", "multi": True, "default": ["f1"]},
    ],
    "time_range": {"start": "-6h", "end": "now"},
    "refresh": "live",
    "panels": [
        {"key": "temperature", "title": "Temperature by device", "type": "timeseries",
         "queries": [{"ref": "A", "axis": "left", "query": {
             "source": "demo-factory", "metric": "temperature", "aggregation": "avg", "bucket": "1m",
             "group_by": ["device"], "filters": {"facility": "$facility"}}}],
         "options": {"style": "lines", "unit": "°C", "decimals": 1, "thresholds": [{"value": 80, "color": "red"}]},
         "grid": {"x": 0, "y": 0, "w": 12, "h": 8}},
    ],
}  # fmt: skip


def field_error(error: DashboardError | DashboardDocumentError) -> Response:
    """A refused change as {"detail": "<field>: <message>", "field": ...} with the error's status."""
    return field_error_response(error.field, error.message, error.status)


def dashboard_for_request(request: Request, uid: str, *, edit: bool = False) -> Dashboard:
    """The dashboard if the user may see it (404 otherwise); with `edit`, 403 unless they may change it."""
    dashboard = dashboard_get_for_user(user=request.user, uid=uid)
    if dashboard is None:
        raise Http404(f"No dashboard {uid!r} that you can see.")
    if edit and not dashboard_can_edit(user=request.user, dashboard=dashboard):
        raise PermissionDenied("Only organisation admins and editors may change this dashboard.")
    return dashboard


def _detail(request: Request, dashboard: Dashboard) -> dict[str, Any]:
    return dashboard_detail_data(user=request.user, dashboard=dashboard)


def dashboard_detail_data(*, user: Any, dashboard: Dashboard) -> dict[str, Any]:
    """GET /api/v1/dashboards/<uid>/'s answer for `user` (the dashboard page embeds it, saving a round trip)."""
    return DashboardDetailSerializer(
        {
            "uid": dashboard.uid,
            "version": dashboard.version,
            "organization": dashboard.organization.slug,
            "owner": dashboard.owner.get_username() if dashboard.owner else None,
            "updated_at": dashboard.updated_at,
            "can_edit": dashboard_can_edit(user=user, dashboard=dashboard),
            "document": dashboard_document(dashboard=dashboard),
        }
    ).data


def _organization_for_create(request: Request, slug: Any) -> Organization:
    """The organisation a new dashboard goes to: the named one, or the user's only one; editors and admins only."""
    if slug is not None and not isinstance(slug, str):
        raise DashboardError("organization", "must be an organisation slug.")
    if slug:
        organizations = (
            Organization.objects.all() if request.user.is_superuser else organization_list_for_user(user=request.user)
        )
        organization = organizations.filter(slug=slug).first()
        if organization is None:
            raise DashboardError("organization", f"no organisation {slug!r} that you belong to.")
    else:
        mine = list(organization_list_for_user(user=request.user).distinct())
        if len(mine) != 1:
            raise DashboardError(
                "organization",
                "you belong to several organisations; name one by its slug."
                if mine
                else "you belong to no organisation; ask an admin to add you to one.",
            )
        organization = mine[0]
    if not request.user.is_superuser and organization.pk not in organization_ids_for_user(
        user=request.user, roles=EDITOR_ROLES
    ):
        raise DashboardError("organization", "only organisation admins and editors may create dashboards.", status=403)
    return organization


def _create_from(request: Request, data: Any, *, message: str) -> Response:
    if not isinstance(data, dict):
        return field_error(DashboardDocumentError("document", "send a JSON object."))
    document = {key: value for key, value in data.items() if key != "organization"}
    if "organization" in data and not (isinstance(data["organization"], str) and data["organization"]):
        return field_error(
            DashboardError("organization", "an organisation's slug; leave it out when you belong to one organisation.")
        )
    try:
        organization = _organization_for_create(
            request, data.get("organization") or request.query_params.get("organization")
        )
        dashboard = dashboard_create(organization=organization, owner=request.user, document=document, message=message)
    except (DashboardError, DashboardDocumentError) as error:
        return field_error(error)
    return Response(_detail(request, dashboard), status=status.HTTP_201_CREATED)


class DashboardListCreateView(ListAPIView):
    """Dashboards of your organisations, by title; create one from a document."""

    serializer_class = DashboardSummarySerializer

    def get_queryset(self):
        filters = DashboardFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return dashboard_list_for_user(user=self.request.user, **filters.validated_data)

    @extend_schema(summary="List dashboards", parameters=[DashboardFilterSerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=DashboardCreateSerializer,
        responses={201: DashboardDetailSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        summary="Create a dashboard",
        description="The body is a dashboard document, plus an optional organisation slug. Errors name the JSON "
        'path of the problem, e.g. {"detail": "panels[2].grid.w: ...", "field": "panels[2].grid.w"}.',
        examples=[OpenApiExample("A dashboard with one panel", value=_EXAMPLE_DOCUMENT, request_only=True)],
    )
    def post(self, request: Request) -> Response:
        return _create_from(request, request.data, message="Created")


class DashboardDetailView(APIView):
    """One dashboard: read, save a new version, delete."""

    @extend_schema(responses={200: DashboardDetailSerializer}, summary="Get a dashboard")
    def get(self, request: Request, uid: str) -> Response:
        return Response(_detail(request, dashboard_for_request(request, uid)))

    @extend_schema(
        request=DashboardUpdateSerializer,
        responses={200: DashboardDetailSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 409: ErrorSerializer},
        summary="Save a dashboard",
        description="Replaces the dashboard with the document as a new version. Send the version you edited: if "
        "someone saved since, the answer is 409 and nothing changes.",
    )
    def put(self, request: Request, uid: str) -> Response:
        dashboard = dashboard_for_request(request, uid, edit=True)
        serializer = DashboardUpdateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = serializer.validated_data
        try:
            dashboard = dashboard_save(
                dashboard=dashboard,
                document=data["document"],
                user=request.user,
                message=data.get("message", ""),
                expected_version=data.get("version"),
            )
        except (DashboardError, DashboardDocumentError) as error:
            return field_error(error)
        return Response(_detail(request, dashboard))

    @extend_schema(request=None, responses={204: None, 403: ErrorSerializer}, summary="Delete a dashboard")
    def delete(self, request: Request, uid: str) -> Response:
        dashboard_delete(dashboard=dashboard_for_request(request, uid, edit=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class DashboardVersionListView(ListAPIView):
    """A dashboard's saved versions, newest first."""

    serializer_class = DashboardVersionSerializer

    def get_queryset(self):
        return dashboard_version_list(dashboard=dashboard_for_request(self.request, self.kwargs["uid"]))

    @extend_schema(summary="List dashboard versions")
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)


class DashboardVersionDetailView(APIView):
    """One saved version with its document."""

    @extend_schema(responses={200: DashboardVersionDetailSerializer}, summary="Get a dashboard version")
    def get(self, request: Request, uid: str, version: int) -> Response:
        dashboard = dashboard_for_request(request, uid)
        saved = dashboard_version_get(dashboard=dashboard, version=version)
        if saved is None:
            raise Http404(f"Dashboard {uid!r} has no version {version}.")
        return Response(DashboardVersionDetailSerializer(saved).data)


class DashboardRestoreView(APIView):
    """Restore an earlier version: its document is saved again as a new version."""

    @extend_schema(
        request=DashboardRestoreSerializer,
        responses={200: DashboardDetailSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer,
                   409: ErrorSerializer},
        summary="Restore a dashboard version",
    )  # fmt: skip
    def post(self, request: Request, uid: str, version: int) -> Response:
        dashboard = dashboard_for_request(request, uid, edit=True)
        serializer = DashboardRestoreSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            dashboard = dashboard_restore(
                dashboard=dashboard,
                version=version,
                user=request.user,
                expected_version=serializer.validated_data.get("expected_version"),
            )
        except (DashboardError, DashboardDocumentError) as error:
            return field_error(error)
        return Response(_detail(request, dashboard))


class DashboardDuplicateView(APIView):
    """Copy a dashboard within its organisation; you own the copy."""

    @extend_schema(
        request=DashboardDuplicateSerializer,
        responses={201: DashboardDetailSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        summary="Duplicate a dashboard",
    )
    def post(self, request: Request, uid: str) -> Response:
        dashboard = dashboard_for_request(request, uid, edit=True)
        serializer = DashboardDuplicateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            duplicate = dashboard_duplicate(
                dashboard=dashboard, user=request.user, title=serializer.validated_data.get("title")
            )
        except (DashboardError, DashboardDocumentError) as error:
            return field_error(error)
        return Response(_detail(request, duplicate), status=status.HTTP_201_CREATED)


class DashboardExportView(APIView):
    """The dashboard's document, as a file to download."""

    @extend_schema(responses={200: DashboardDocumentSerializer}, summary="Export a dashboard")
    def get(self, request: Request, uid: str) -> Response:
        dashboard = dashboard_for_request(request, uid)
        filename = f"{slugify(dashboard.title) or 'dashboard'}-{dashboard.uid}.json"
        return Response(
            dashboard_document(dashboard=dashboard),
            headers={"Content-Disposition": f'attachment; filename="{filename}"'},
        )


class DashboardImportView(APIView):
    """Create a dashboard from an exported document: the JSON body, or a multipart upload in `file`."""

    parser_classes = [JSONParser, MultiPartParser]

    @extend_schema(
        request={
            "application/json": DashboardCreateSerializer,
            "multipart/form-data": inline_serializer(
                "DashboardImportUpload",
                {
                    "file": serializers.FileField(help_text="An exported dashboard (.json)."),
                    "organization": serializers.SlugField(required=False),
                },
            ),
        },
        parameters=[
            OpenApiParameter(
                "organization", OpenApiTypes.STR, description="Owner organisation's slug, if not in the body."
            )
        ],
        responses={201: DashboardDetailSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 413: ErrorSerializer},
        summary="Import a dashboard",
    )
    def post(self, request: Request) -> Response:
        upload = request.FILES.get("file")
        if upload is None:
            return _create_from(request, request.data, message="Imported")
        if upload.size > MAX_IMPORT_BYTES:
            return field_error(DashboardError("file", f"at most {MAX_IMPORT_BYTES // 1024 // 1024} MB.", status=413))
        try:
            data = json.loads(upload.read().decode("utf-8"))
        except (UnicodeDecodeError, json.JSONDecodeError) as error:
            return field_error(DashboardError("file", f"not a JSON document ({error})."))
        if isinstance(data, dict) and request.data.get("organization"):
            data = {**data, "organization": request.data["organization"]}
        return _create_from(request, data, message="Imported")
