"""Shapes for the storage API (documentation of the query contract and series browsing)."""

from __future__ import annotations

from rest_framework import serializers

from analytics_platform.pagination import WholeNumberQueryField
from apps.storage.models import Series
from apps.storage.query.spec import AGGREGATIONS, CALCULATIONS, COMBINATIONS, FILL_MODES, MAX_LIMIT, PERCENTILES, RAW
from apps.storage.services import LABEL_NAME_MAX_LENGTH, LABEL_VALUE_MAX_LENGTH, METRIC_MAX_LENGTH

SOURCE_SLUG_MAX_LENGTH = 201  # "<organization>/<slug>" (apps/sources/references.py)
LABEL_PREFIX = "label."
PICKER_DEFAULT_LIMIT = 1_000
PICKER_MAX_LIMIT = 10_000


class QueryReduceSerializer(serializers.Serializer):
    """How to reduce each series to one value, then the series to one (see docs/storage.md, Reductions)."""

    calculation = serializers.ChoiceField(
        choices=CALCULATIONS,
        help_text="Over each series' buckets (after the aggregation, with fill applied): last (null when the last "
        "bucket is empty), last_not_null, first (first non-null), mean, sum, min, max (over non-null values), count "
        "(non-null buckets), delta (last non-null minus first non-null), range (max minus min).",
    )
    combination = serializers.ChoiceField(
        choices=COMBINATIONS,
        default="none",
        help_text="Across series' non-null results: sum, mean, min, max (one value, labels {}); none (one per series).",
    )


class QueryRequestSerializer(serializers.Serializer):
    """POST /api/v1/query body (validated by the query spec parser, documented here)."""

    source = serializers.CharField(
        required=False,
        allow_null=True,
        max_length=SOURCE_SLUG_MAX_LENGTH,
        help_text="Source slug ('<organization>/<slug>' if you see that slug in several organisations); omit (or null) "
        "to read every source you may see.",
    )
    metric = serializers.CharField(max_length=METRIC_MAX_LENGTH, help_text="Metric name, e.g. temperature.")
    filters = serializers.DictField(
        required=False,
        allow_null=True,
        help_text='Label conditions: {"facility": "f1"} (equal), {"device": ["d1", "d2"]} (in), '
        '{"device": {"regex": "^press-"}}, {"device": {"ne": "d3"}}, {"device": {"not_in": ["d3"]}}.',
    )
    aggregation = serializers.ChoiceField(
        choices=[*AGGREGATIONS, *PERCENTILES, RAW], default="avg", help_text="Percentiles and raw read raw points."
    )
    start = serializers.CharField(
        default="-1h",
        help_text="'now', relative ('-24h', 'now-15m') or ISO 8601. Aggregates read from the start down to a whole "
        "minute (the response's start says where); a first bucket the range cuts holds only what is inside it.",
    )
    end = serializers.CharField(default="now", help_text="Same forms as start; must be after start.")
    bucket = serializers.CharField(
        required=False,
        allow_null=True,
        help_text="A minimum interval: '1m', '5m', '1h', '1d' ... or 'auto' (from max_points). When bucket x range "
        "exceeds max_points the server widens it to the smallest nice multiple that fits and answers the bucket used.",
    )
    exact_bucket = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Use the bucket exactly: 400 (field bucket) when it exceeds max_points (if given, else 10,000) "
        "instead of widening it.",
    )
    reduce = QueryReduceSerializer(
        required=False,
        allow_null=True,
        help_text="Answer one value per series or one in all (`reduced`) instead of points (`series` is then []).",
    )
    group_by = serializers.ListField(
        child=serializers.CharField(), required=False, allow_null=True, help_text="Label names; null means none."
    )
    limit = serializers.IntegerField(
        required=False,
        default=100,
        min_value=1,
        max_value=MAX_LIMIT,
        allow_null=True,
        help_text="Most output series (1-1000); null means the default.",
    )
    fill = serializers.ChoiceField(choices=FILL_MODES, default="null", help_text="Empty buckets: null, previous, none.")
    max_points = serializers.IntegerField(
        required=False,
        min_value=1,
        allow_null=True,
        help_text="Point budget per series (the panel's width); null means the default.",
    )


class QueryPointSeriesSerializer(serializers.Serializer):
    labels = serializers.DictField()
    source = serializers.CharField(required=False, help_text="Present when results are not grouped.")
    points = serializers.ListField(child=serializers.ListField(), help_text='[["2026-01-01T00:00:00Z", 21.5], ...]')


class QueryReducedSerializer(serializers.Serializer):
    labels = serializers.DictField(help_text="The series' labels; {} for a combination other than none.")
    source = serializers.CharField(required=False, help_text="With combination none, when results are not grouped.")
    value = serializers.FloatField(allow_null=True, help_text="null when there is no value to reduce.")


class QueryResponseReduceSerializer(serializers.Serializer):
    calculation = serializers.CharField()
    combination = serializers.CharField()


class QueryResponseSerializer(serializers.Serializer):
    tier = serializers.CharField(help_text="Coarsest storage tier used: raw, 1m, 1h or 1d.")
    bucket = serializers.CharField(allow_null=True, help_text="The bucket used (null for raw points).")
    bucket_requested = serializers.CharField(
        allow_null=True, help_text="The bucket asked for (null for auto); differs from bucket when widened."
    )
    aggregation = serializers.CharField()
    start = serializers.DateTimeField(help_text="Start of the range answered: for aggregates, of the first bucket.")
    end = serializers.DateTimeField()
    downsampled = serializers.BooleanField(help_text="The bucket was widened to fit max_points.")
    truncated = serializers.BooleanField(help_text="More output series matched than `limit`.")
    cached_buckets = serializers.IntegerField(help_text="Buckets answered from the query cache.")
    series = QueryPointSeriesSerializer(
        many=True, help_text="[] when nothing matched (no data yet, or none you may read) and with reduce."
    )
    reduce = QueryResponseReduceSerializer(required=False, help_text="Present with a reduce request.")
    reduced = QueryReducedSerializer(many=True, required=False, help_text="Present with a reduce request.")


class SeriesSerializer(serializers.ModelSerializer):
    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = Series
        fields = ["id", "source", "metric", "labels", "created_at"]
        read_only_fields = fields


class SeriesFilterSerializer(serializers.Serializer):
    """Query parameters of GET /api/v1/series (label.<name> parameters are read apart: their names vary)."""

    source = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=SOURCE_SLUG_MAX_LENGTH,
        help_text="Source slug or '<organization>/<slug>'.",
    )
    metric = serializers.CharField(
        required=False, allow_blank=True, max_length=METRIC_MAX_LENGTH, help_text="Metric name."
    )


def series_label_filters(query_params) -> dict[str, str]:
    """The label.<name>=<value> query parameters as {name: value}; ValidationError naming a parameter that cannot be."""
    labels = {}
    for key, value in query_params.items():
        if not key.startswith(LABEL_PREFIX):
            continue
        name = key[len(LABEL_PREFIX) :]
        shown = key if len(key) <= 60 else key[:60] + "..."
        if not name or len(name) > LABEL_NAME_MAX_LENGTH:
            raise serializers.ValidationError(
                {shown: [f"label names are 1 to {LABEL_NAME_MAX_LENGTH} characters."]}, code="invalid"
            )
        if len(value) > LABEL_VALUE_MAX_LENGTH:
            raise serializers.ValidationError(
                {shown: [f"label values hold at most {LABEL_VALUE_MAX_LENGTH} characters."]}, code="max_length"
            )
        if "\x00" in key or "\x00" in value:
            raise serializers.ValidationError(
                {shown: ["Null characters are not allowed."]}, code="null_characters_not_allowed"
            )
        labels[name] = value
    return labels


class PickerPageSerializer(serializers.Serializer):
    """A page of picker values: `limit` and `offset` as in lists."""

    limit = WholeNumberQueryField(
        required=False,
        default=PICKER_DEFAULT_LIMIT,
        min_value=1,
        max_value=PICKER_MAX_LIMIT,
        help_text=f"Most values to answer (default {PICKER_DEFAULT_LIMIT:,}); `truncated` says when more exist.",
    )
    offset = WholeNumberQueryField(
        required=False, default=0, min_value=0, help_text="Values to skip, to read the next page."
    )


class MetricsQuerySerializer(PickerPageSerializer):
    """Query parameters of GET /api/v1/series/metrics."""

    source = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=SOURCE_SLUG_MAX_LENGTH,
        help_text="Source slug or '<organization>/<slug>'.",
    )


class LabelKeysQuerySerializer(PickerPageSerializer):
    """Query parameters of GET /api/v1/series/label-keys."""

    metric = serializers.CharField(
        required=False, allow_blank=True, max_length=METRIC_MAX_LENGTH, help_text="Only series of this metric."
    )
    source = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_SLUG_MAX_LENGTH, help_text="Only series of this source."
    )


class LabelValuesQuerySerializer(PickerPageSerializer):
    """Query parameters of GET /api/v1/series/label-values."""

    label = serializers.CharField(
        max_length=LABEL_NAME_MAX_LENGTH, help_text="The label whose values to list, e.g. facility."
    )
    metric = serializers.CharField(
        required=False, allow_blank=True, max_length=METRIC_MAX_LENGTH, help_text="Only series of this metric."
    )
    source = serializers.CharField(
        required=False, allow_blank=True, max_length=SOURCE_SLUG_MAX_LENGTH, help_text="Only series of this source."
    )


class MetricListSerializer(serializers.Serializer):
    metrics = serializers.ListField(child=serializers.CharField(), help_text="Metric names, in order.")
    truncated = serializers.BooleanField(help_text="More names follow: ask again with offset + limit.")


class LabelKeyListSerializer(serializers.Serializer):
    labels = serializers.ListField(child=serializers.CharField(), help_text="Label names, in order.")
    truncated = serializers.BooleanField(help_text="More names follow: ask again with offset + limit.")


class LabelValueListSerializer(serializers.Serializer):
    label = serializers.CharField()
    values = serializers.ListField(child=serializers.CharField(), help_text="Values, in order.")
    truncated = serializers.BooleanField(help_text="More values follow: ask again with offset + limit.")
