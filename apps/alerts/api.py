"""REST endpoints for anomaly detection: turn it on per source metric, change or remove it, list detections."""

from __future__ import annotations

from django.http import Http404
from django.utils import timezone
from drf_spectacular.utils import OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.exceptions import PermissionDenied
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from apps.alerts.models import AnomalyDetection
from apps.alerts.selectors import anomaly_detection_list_for_user, anomaly_event_list
from apps.alerts.serializers import (
    AnomalyDetectionCreateSerializer,
    AnomalyDetectionSerializer,
    AnomalyDetectionUpdateSerializer,
    AnomalyEventSerializer,
)
from apps.alerts.services import (
    DetectionError,
    anomaly_detection_create,
    anomaly_detection_delete,
    anomaly_detection_update,
)
from apps.sources.references import SourceAmbiguous, source_reference_resolve
from apps.sources.selectors import source_can_manage, source_list_for_user
from apps.storage.query.spec import QuerySpecError, time_parse

_FIELD_ERROR = ErrorSerializer  # the API's one error shape (analytics_platform/field_errors.py)
_EVENTS_MAX = 5_000


def _detection_for_request(request: Request, detection_id: int, *, manage: bool = False) -> AnomalyDetection:
    detection = anomaly_detection_list_for_user(user=request.user).filter(pk=detection_id).first()
    if detection is None:
        raise Http404(f"No anomaly detection {detection_id} that you can see.")
    if manage and not source_can_manage(user=request.user, source=detection.source):
        raise PermissionDenied("Only organisation admins and editors may change anomaly detection.")
    return detection


class AnomalyDetectionListCreateView(ListAPIView):
    """Anomaly detections on the sources you can see; turn detection on for a metric."""

    serializer_class = AnomalyDetectionSerializer

    def get_queryset(self):
        return anomaly_detection_list_for_user(user=self.request.user)

    @extend_schema(
        request=AnomalyDetectionCreateSerializer,
        responses={201: AnomalyDetectionSerializer, 400: _FIELD_ERROR, 403: _FIELD_ERROR, 409: _FIELD_ERROR},
        summary="Turn anomaly detection on for a metric",
    )
    def post(self, request: Request) -> Response:
        serializer = AnomalyDetectionCreateSerializer(data=request.data)
        serializer.is_valid(raise_exception=True)
        data = dict(serializer.validated_data)
        try:
            source = source_reference_resolve(
                candidates=source_list_for_user(user=request.user), reference=data.pop("source")
            )
        except SourceAmbiguous as error:
            return field_error_response(error.field, error.message, 400)
        if source is None:
            return field_error_response("source", "no source with this slug that you can see", 400)
        if not source_can_manage(user=request.user, source=source):
            raise PermissionDenied("Only organisation admins and editors may turn anomaly detection on.")
        try:
            detection = anomaly_detection_create(source=source, created_by=request.user, **data)
        except DetectionError as error:
            return field_error_response(error.field, error.message, error.status)
        return Response(AnomalyDetectionSerializer(detection).data, status=status.HTTP_201_CREATED)


class AnomalyDetectionDetailView(APIView):
    """One anomaly detection: read, change, remove."""

    @extend_schema(responses={200: AnomalyDetectionSerializer}, summary="Get an anomaly detection")
    def get(self, request: Request, detection_id: int) -> Response:
        return Response(AnomalyDetectionSerializer(_detection_for_request(request, detection_id)).data)

    @extend_schema(
        request=AnomalyDetectionUpdateSerializer,
        responses={200: AnomalyDetectionSerializer, 400: _FIELD_ERROR, 403: _FIELD_ERROR},
        summary="Change an anomaly detection",
    )
    def patch(self, request: Request, detection_id: int) -> Response:
        detection = _detection_for_request(request, detection_id, manage=True)
        serializer = AnomalyDetectionUpdateSerializer(data=request.data, partial=True)
        serializer.is_valid(raise_exception=True)
        try:
            detection = anomaly_detection_update(detection=detection, **serializer.validated_data)
        except DetectionError as error:
            return field_error_response(error.field, error.message, error.status)
        return Response(AnomalyDetectionSerializer(detection).data)

    @extend_schema(responses={204: None}, summary="Turn an anomaly detection off and remove it")
    def delete(self, request: Request, detection_id: int) -> Response:
        anomaly_detection_delete(detection=_detection_for_request(request, detection_id, manage=True))
        return Response(status=status.HTTP_204_NO_CONTENT)


class AnomalyEventListView(APIView):
    """Detections raised (points whose score reached the detection's level), newest first: chart annotations."""

    @extend_schema(
        parameters=[
            OpenApiParameter("detection", int, description="Only this detection."),
            OpenApiParameter("source", str, description="Only this source (slug)."),
            OpenApiParameter("series", int, many=True, description="Only these series (watched or score series)."),
            OpenApiParameter("start", str, description="From (ISO 8601 or relative, e.g. -24h)."),
            OpenApiParameter("end", str, description="Until (exclusive)."),
            OpenApiParameter("limit", int, description=f"At most this many (default 1000, at most {_EVENTS_MAX})."),
        ],
        responses={200: AnomalyEventSerializer(many=True), 400: _FIELD_ERROR},
        summary="List anomaly detections (annotations)",
    )
    def get(self, request: Request) -> Response:
        params = request.query_params
        now = timezone.now()
        try:
            start = time_parse(params["start"], field="start", now=now) if params.get("start") else None
            end = time_parse(params["end"], field="end", now=now) if params.get("end") else None
        except QuerySpecError as error:
            return field_error_response(error.field, error.message, 400)
        try:
            detection_id = int(params["detection"]) if "detection" in params else None
            series_ids = [int(value) for value in params.getlist("series")] if params.getlist("series") else None
            limit = int(params.get("limit", 1_000))
        except ValueError:
            return field_error_response("detection", "detection, series and limit must be whole numbers", 400)
        if not 1 <= limit <= _EVENTS_MAX:
            return field_error_response("limit", f"must be between 1 and {_EVENTS_MAX}", 400)
        events = anomaly_event_list(
            user=request.user,
            detection_id=detection_id,
            source_slug=params.get("source") or None,
            series_ids=series_ids,
            start=start,
            end=end,
            limit=limit,
        )
        return Response(AnomalyEventSerializer(events, many=True).data)
