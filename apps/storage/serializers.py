"""Shapes for the storage API (documentation of the query contract and series browsing)."""

from __future__ import annotations

from rest_framework import serializers

from apps.storage.models import Series
from apps.storage.query.spec import AGGREGATIONS, FILL_MODES, PERCENTILES, RAW


class QueryRequestSerializer(serializers.Serializer):
    """POST /api/v1/query body (validated by the query spec parser, documented here)."""

    source = serializers.CharField(required=False, help_text="Source slug; omit to read every source you may see.")
    metric = serializers.CharField(help_text="Metric name, e.g. temperature.")
    filters = serializers.DictField(
        required=False,
        help_text='Label conditions: {"facility": "f1"} (equal), {"device": ["d1", "d2"]} (in), '
        '{"device": {"regex": "^press-"}}, {"device": {"ne": "d3"}}, {"device": {"not_in": ["d3"]}}.',
    )
    aggregation = serializers.ChoiceField(
        choices=[*AGGREGATIONS, *PERCENTILES, RAW], default="avg", help_text="Percentiles and raw read raw points."
    )
    start = serializers.CharField(
        default="-1h",
        help_text="'now', relative ('-24h', 'now-15m') or ISO 8601. Aggregates answer whole buckets: the start is "
        "rounded down to the bucket (the response's start says where it went).",
    )
    end = serializers.CharField(default="now", help_text="Same forms as start; must be after start.")
    bucket = serializers.CharField(required=False, help_text="'1m', '5m', '1h', '1d' ... or 'auto' (from max_points).")
    group_by = serializers.ListField(child=serializers.CharField(), required=False, help_text="Label names.")
    limit = serializers.IntegerField(required=False, default=100, help_text="Most output series (1-1000).")
    fill = serializers.ChoiceField(choices=FILL_MODES, default="null", help_text="Empty buckets: null, previous, none.")
    max_points = serializers.IntegerField(required=False, help_text="Point budget per series (the panel's width).")


class QueryPointSeriesSerializer(serializers.Serializer):
    labels = serializers.DictField()
    source = serializers.CharField(required=False, help_text="Present when results are not grouped.")
    points = serializers.ListField(child=serializers.ListField(), help_text='[["2026-01-01T00:00:00Z", 21.5], ...]')


class QueryResponseSerializer(serializers.Serializer):
    tier = serializers.CharField(help_text="Coarsest storage tier used: raw, 1m, 1h or 1d.")
    bucket = serializers.CharField(allow_null=True)
    aggregation = serializers.CharField()
    start = serializers.DateTimeField(help_text="Start of the range answered: for aggregates, of the first bucket.")
    end = serializers.DateTimeField()
    downsampled = serializers.BooleanField(help_text="The bucket was widened to fit max_points.")
    truncated = serializers.BooleanField(help_text="More output series matched than `limit`.")
    cached_buckets = serializers.IntegerField(help_text="Buckets answered from the query cache.")
    series = QueryPointSeriesSerializer(many=True)


class QueryErrorSerializer(serializers.Serializer):
    detail = serializers.CharField()
    field = serializers.CharField()


class SeriesSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Series
        fields = ["id", "source", "metric", "labels", "created_at"]
        read_only_fields = fields
