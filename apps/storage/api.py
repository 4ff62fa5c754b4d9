"""REST endpoints for queries and series browsing."""

from __future__ import annotations

from drf_spectacular.utils import OpenApiExample, OpenApiParameter, extend_schema
from rest_framework import status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import field_error_response
from apps.storage.policies import DataAccessDenied
from apps.storage.query.engine import QueryTimeout, query_execute
from apps.storage.query.spec import QuerySpecError, query_spec_parse
from apps.storage.selectors import series_label_values_list, series_list, series_metrics_list
from apps.storage.serializers import (
    QueryErrorSerializer,
    QueryRequestSerializer,
    QueryResponseSerializer,
    SeriesSerializer,
)

LABEL_PREFIX = "label."


def _error(field: str, message: str, code: int) -> Response:
    return field_error_response(field, message, code)


class QueryView(APIView):
    """Run a query under your data policies."""

    @extend_schema(
        request=QueryRequestSerializer,
        responses={200: QueryResponseSerializer, 400: QueryErrorSerializer, 403: QueryErrorSerializer},
        summary="Query time series",
        examples=[
            OpenApiExample(
                "Average temperature per facility, last 24 hours by minute",
                value={
                    "metric": "temperature",
                    "filters": {"facility": ["f1", "f2"]},
                    "aggregation": "avg",
                    "start": "-24h",
                    "end": "now",
                    "bucket": "1m",
                    "group_by": ["facility"],
                },
                request_only=True,
            )
        ],
    )
    def post(self, request: Request) -> Response:
        try:
            spec = query_spec_parse(request.data)
            result = query_execute(spec=spec, principal=request.user)
        except QuerySpecError as error:
            return _error(error.field, error.message, status.HTTP_400_BAD_REQUEST)
        except DataAccessDenied as error:
            return _error("principal", str(error), status.HTTP_403_FORBIDDEN)
        except QueryTimeout as error:
            return _error("query", str(error), status.HTTP_422_UNPROCESSABLE_ENTITY)
        return Response(result.as_dict())


def _labels_from(request: Request) -> dict[str, str]:
    return {
        key[len(LABEL_PREFIX) :]: value for key, value in request.query_params.items() if key.startswith(LABEL_PREFIX)
    }


class SeriesListView(ListAPIView):
    """Browse series by source, metric and label values (paginated)."""

    serializer_class = SeriesSerializer

    @extend_schema(
        parameters=[
            OpenApiParameter("source", str, description="Source slug."),
            OpenApiParameter("metric", str, description="Metric name."),
            OpenApiParameter("label.<name>", str, description="Exact label value, e.g. label.facility=f1."),
        ],
        summary="List series",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        params = self.request.query_params
        return series_list(
            principal=self.request.user,
            source=params.get("source"),
            metric=params.get("metric"),
            labels=_labels_from(self.request),
        )


class SeriesMetricsView(APIView):
    """Metric names you may query."""

    @extend_schema(parameters=[OpenApiParameter("source", str)], responses={200: dict}, summary="List metric names")
    def get(self, request: Request) -> Response:
        return Response(
            {"metrics": series_metrics_list(principal=request.user, source=request.query_params.get("source"))}
        )


class SeriesLabelValuesView(APIView):
    """Values of one label, e.g. every facility (for variables and filter pickers)."""

    @extend_schema(
        parameters=[
            OpenApiParameter("label", str, required=True),
            OpenApiParameter("metric", str),
            OpenApiParameter("source", str),
        ],
        responses={200: dict},
        summary="List values of a label",
    )
    def get(self, request: Request) -> Response:
        label = request.query_params.get("label", "").strip()
        if not label:
            return _error("label", "required: the label whose values to list, e.g. facility.", 400)
        values = series_label_values_list(
            principal=request.user,
            label=label,
            metric=request.query_params.get("metric"),
            source=request.query_params.get("source"),
        )
        return Response({"label": label, "values": values})
