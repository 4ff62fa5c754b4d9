"""REST endpoints for a dashboard's annotations: list (by time range, panel, kind, tags), create, edit, delete.

Permissions are the dashboard's: whoever can see the dashboard reads its annotations, its editors change them;
a dashboard of another organisation is a 404, like the dashboard itself.
"""

from __future__ import annotations

from typing import Any

from django.http import Http404
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer
from analytics_platform.json_body import JsonBodySerializer
from apps.dashboards.api import dashboard_for_request, field_error
from apps.dashboards.models import Annotation, AnnotationKind
from apps.dashboards.selectors import annotation_get, annotation_list
from apps.dashboards.services import DashboardError, annotation_create, annotation_delete, annotation_update


class AnnotationSerializer(serializers.ModelSerializer):
    """An annotation as the API and the dashboard page read it."""

    panel = serializers.CharField(source="panel_key", help_text="The panel's key; empty for every panel.")
    created_by = serializers.CharField(source="created_by.get_username", allow_null=True, default=None)

    class Meta:
        model = Annotation
        fields = [
            "id", "panel", "time", "time_end", "text", "tags", "kind", "source_ref", "created_by", "created_at",
            "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class AnnotationWriteSerializer(JsonBodySerializer):
    """What a person sends to add or change an annotation."""

    time = serializers.DateTimeField(help_text="The instant, or the start of a range (ISO 8601).")
    time_end = serializers.DateTimeField(required=False, allow_null=True, help_text="End of a range; omit for one.")
    text = serializers.CharField(max_length=1000, trim_whitespace=True)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=20)
    panel = serializers.CharField(
        max_length=64, required=False, allow_blank=True, help_text="A panel key; omit or leave empty for every panel."
    )


class AnnotationFilterSerializer(serializers.Serializer):
    """Query parameters of the annotation list."""

    start = serializers.DateTimeField(required=False, help_text="Annotations ending at or after this time.")
    end = serializers.DateTimeField(required=False, help_text="Annotations starting at or before this time.")
    panel = serializers.CharField(required=False, max_length=64, help_text="This panel's and the dashboard-wide ones.")
    kind = serializers.ChoiceField(choices=AnnotationKind.choices, required=False)
    tags = serializers.CharField(required=False, help_text="Comma-separated; annotations carrying all of them.")

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs.get("start") and attrs.get("end") and attrs["end"] < attrs["start"]:
            raise serializers.ValidationError({"end": ["must not be before start."]})
        return attrs


def _changes(data: dict[str, Any]) -> dict[str, Any]:
    changes = dict(data)
    if "panel" in changes:
        changes["panel_key"] = changes.pop("panel") or ""
    return changes


class AnnotationListCreateView(ListAPIView):
    """Annotations of a dashboard overlapping a time range, oldest first; editors add one."""

    serializer_class = AnnotationSerializer

    def get_queryset(self):
        dashboard = dashboard_for_request(self.request, self.kwargs["uid"])
        filters = AnnotationFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        wanted = dict(filters.validated_data)
        tags = [tag.strip().lower() for tag in wanted.pop("tags", "").split(",") if tag.strip()]
        return annotation_list(
            dashboard=dashboard,
            start=wanted.get("start"),
            end=wanted.get("end"),
            panel_key=wanted.get("panel"),
            kind=wanted.get("kind"),
            tags=tags or None,
        )

    @extend_schema(summary="List a dashboard's annotations", parameters=[AnnotationFilterSerializer])
    def get(self, request: Request, *args: Any, **kwargs: Any) -> Response:
        return super().get(request, *args, **kwargs)

    @extend_schema(
        request=AnnotationWriteSerializer,
        responses={201: AnnotationSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 404: ErrorSerializer},
        summary="Annotate a dashboard",
        description="An instant (`time`) or a range (`time` to `time_end`) with text and tags, on one panel "
        "(`panel`: its key) or every panel. Annotations written by people have kind `manual`; alert state changes "
        "are written with kind `alert`.",
        examples=[
            OpenApiExample(
                "A maintenance window on one panel",
                value={
                    "time": "2026-05-01T08:00:00Z",
                    "time_end": "2026-05-01T09:30:00Z",
                    "text": "Press 7 bearings replaced",
                    "tags": ["maintenance"],
                    "panel": "temperature-by-device",
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request, uid: str) -> Response:
        dashboard = dashboard_for_request(request, uid, edit=True)
        serializer = AnnotationWriteSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        try:
            annotation = annotation_create(
                dashboard=dashboard, created_by=request.user, **_changes(serializer.validated_data)
            )
        except DashboardError as error:
            return field_error(error)
        return Response(AnnotationSerializer(annotation).data, status=status.HTTP_201_CREATED)


class AnnotationDetailView(APIView):
    """One annotation: read, edit (editors), delete (editors)."""

    def _annotation(self, request: Request, uid: str, annotation_id: int, *, edit: bool = False) -> Annotation:
        dashboard = dashboard_for_request(request, uid, edit=edit)
        annotation = annotation_get(dashboard=dashboard, annotation_id=annotation_id)
        if annotation is None:
            raise Http404(f"Dashboard {uid!r} has no annotation {annotation_id}.")
        return annotation

    @extend_schema(responses={200: AnnotationSerializer}, summary="Get an annotation")
    def get(self, request: Request, uid: str, annotation_id: int) -> Response:
        return Response(AnnotationSerializer(self._annotation(request, uid, annotation_id)).data)

    @extend_schema(
        request=AnnotationWriteSerializer(partial=True),
        responses={200: AnnotationSerializer, 400: ErrorSerializer, 403: ErrorSerializer},
        summary="Edit an annotation",
    )
    def patch(self, request: Request, uid: str, annotation_id: int) -> Response:
        annotation = self._annotation(request, uid, annotation_id, edit=True)
        serializer = AnnotationWriteSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            annotation = annotation_update(annotation=annotation, **_changes(serializer.validated_data))
        except DashboardError as error:
            return field_error(error)
        return Response(AnnotationSerializer(annotation).data)

    @extend_schema(request=None, responses={204: None, 403: ErrorSerializer}, summary="Delete an annotation")
    def delete(self, request: Request, uid: str, annotation_id: int) -> Response:
        annotation_delete(annotation=self._annotation(request, uid, annotation_id, edit=True))
        return Response(status=status.HTTP_204_NO_CONTENT)
