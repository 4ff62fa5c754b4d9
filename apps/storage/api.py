"""REST endpoints for queries and series browsing."""

from __future__ import annotations

import re

from django.http import HttpResponse
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import OpenApiExample, extend_schema
from rest_framework import serializers, status
from rest_framework.generics import ListAPIView
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from analytics_platform.field_errors import ErrorSerializer, field_error_response
from apps.access.selectors import request_principal
from apps.storage.policies import DataAccessDenied
from apps.storage.query.csv_export import query_result_csv
from apps.storage.query.engine import QueryTimeout, query_execute
from apps.storage.query.shared import query_answer_encoded
from apps.storage.query.spec import QuerySpecError, query_spec_parse
from apps.storage.selectors import (
    Page,
    series_label_keys_list,
    series_label_values_list,
    series_list,
    series_metrics_list,
)
from apps.storage.serializers import (
    LabelKeyListSerializer,
    LabelKeysQuerySerializer,
    LabelValueListSerializer,
    LabelValuesQuerySerializer,
    MetricListSerializer,
    MetricsQuerySerializer,
    QueryRequestSerializer,
    QueryResponseSerializer,
    SeriesFilterSerializer,
    SeriesSerializer,
    series_label_filters,
)


def _error(field: str, message: str, code: int) -> Response:
    return field_error_response(field, message, code)


class QueryView(APIView):
    """Run a query under your data policies."""

    scope_required = "read"  # a POST that only reads
    throttle_scope = "query"  # API_QUERY_RATE per token or user; 429 with Retry-After beyond it

    @extend_schema(
        request=QueryRequestSerializer,
        responses={200: QueryResponseSerializer, 400: ErrorSerializer, 403: ErrorSerializer, 422: ErrorSerializer},
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
            # Identical queries under the same data scope share one computation and its encoded answer.
            answer = query_answer_encoded(data=request.data, principal=request_principal(request))
        except QuerySpecError as error:
            return _error(error.field, error.message, status.HTTP_400_BAD_REQUEST)
        except DataAccessDenied as error:
            return _error("principal", str(error), status.HTTP_403_FORBIDDEN)
        except QueryTimeout as error:
            return _error("query", str(error), status.HTTP_422_UNPROCESSABLE_ENTITY)
        return HttpResponse(answer, content_type="application/json")


class QueryCsvView(APIView):
    """The same query as CSV (time, source, labels, value), under your data policies."""

    @extend_schema(
        request=QueryRequestSerializer,
        responses={
            (200, "text/csv"): OpenApiTypes.STR,
            400: ErrorSerializer,
            403: ErrorSerializer,
            422: ErrorSerializer,
        },
        summary="Export a query as CSV",
    )
    def post(self, request: Request) -> HttpResponse | Response:
        try:
            spec = query_spec_parse(request.data)
            result = query_execute(spec=spec, principal=request_principal(request))
        except QuerySpecError as error:
            return _error(error.field, error.message, status.HTTP_400_BAD_REQUEST)
        except DataAccessDenied as error:
            return _error("principal", str(error), status.HTTP_403_FORBIDDEN)
        except QueryTimeout as error:
            return _error("query", str(error), status.HTTP_422_UNPROCESSABLE_ENTITY)
        response = HttpResponse(query_result_csv(result.series), content_type="text/csv; charset=utf-8")
        response["Content-Disposition"] = f'attachment; filename="{re.sub(r"[^A-Za-z0-9._-]", "_", spec.metric)}.csv"'
        return response


class SeriesListView(ListAPIView):
    """Browse series by source, metric and label values (paginated)."""

    throttle_scope = "query"

    serializer_class = SeriesSerializer

    @extend_schema(
        parameters=[SeriesFilterSerializer],
        summary="List series",
        description="Filter by exact label values with any number of `label.<name>=<value>` query parameters, "
        "e.g. `label.facility=f1`.",
    )
    def get(self, request: Request, *args, **kwargs) -> Response:
        return super().get(request, *args, **kwargs)

    def get_queryset(self):
        filters = SeriesFilterSerializer(data=self.request.query_params.dict())
        filters.is_valid(raise_exception=True)
        return series_list(
            principal=request_principal(self.request),
            source=filters.validated_data.get("source"),
            metric=filters.validated_data.get("metric"),
            labels=series_label_filters(self.request.query_params),
        )


def _picker_page(request: Request, serializer: type[serializers.Serializer], selector) -> tuple[dict, Page]:
    """A picker's query parameters, checked (400 naming the field), and its page of names or values."""
    params = serializer(data=request.query_params.dict())
    params.is_valid(raise_exception=True)
    return params.validated_data, selector(principal=request_principal(request), **params.validated_data)


class SeriesMetricsView(APIView):
    """Metric names you may query, a page at a time."""

    throttle_scope = "query"

    @extend_schema(
        parameters=[MetricsQuerySerializer], responses={200: MetricListSerializer}, summary="List metric names"
    )
    def get(self, request: Request) -> Response:
        _, page = _picker_page(request, MetricsQuerySerializer, series_metrics_list)
        return Response({"metrics": page.items, "truncated": page.truncated})


class SeriesLabelKeysView(APIView):
    """Label names of the series you may see, e.g. device and facility (for group-by and filter pickers)."""

    throttle_scope = "query"

    @extend_schema(
        parameters=[LabelKeysQuerySerializer], responses={200: LabelKeyListSerializer}, summary="List label names"
    )
    def get(self, request: Request) -> Response:
        _, page = _picker_page(request, LabelKeysQuerySerializer, series_label_keys_list)
        return Response({"labels": page.items, "truncated": page.truncated})


class SeriesLabelValuesView(APIView):
    """Values of one label, e.g. every facility (for variables and filter pickers), a page at a time."""

    throttle_scope = "query"

    @extend_schema(
        parameters=[LabelValuesQuerySerializer],
        responses={200: LabelValueListSerializer},
        summary="List values of a label",
    )
    def get(self, request: Request) -> Response:
        params, page = _picker_page(request, LabelValuesQuerySerializer, series_label_values_list)
        return Response({"label": params["label"], "values": page.items, "truncated": page.truncated})
