"""Shapes of dashboards, documents and versions in the REST API; the document's rules live in documents.py."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from analytics_platform.json_body import JsonBodySerializer
from apps.dashboards.documents import (
    _LABEL_NAME,
    _PANEL_KEY,
    _REF,
    _SLUG,
    _VARIABLE_NAME,
    AXES,
    GRID_COLUMNS,
    MAX_GRID_HEIGHT,
    MAX_GRID_ROW,
    MAX_PANELS,
    MAX_QUERIES_PER_PANEL,
    MAX_TAGS,
    MAX_VARIABLES,
    SCHEMA_VERSION,
)
from apps.dashboards.models import Dashboard, DashboardVersion, PanelType, Refresh


@extend_schema_field(
    {
        "oneOf": [
            {"type": "string"},
            {"type": "number"},
            {"type": "array", "items": {"oneOf": [{"type": "string"}, {"type": "number"}]}, "maxItems": 1000},
        ],
        "nullable": True,
        "description": "The value (or, for multi variables, values) selected when the dashboard opens.",
    }
)
class VariableDefaultField(serializers.JSONField):
    """A variable's default: a value or a list of values (documents.py checks it)."""


class DashboardVariableSerializer(serializers.Serializer):
    name = serializers.RegexField(_VARIABLE_NAME.pattern, help_text='Referenced as "$name" in filter values.')
    label = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=100)
    source = serializers.RegexField(
        _SLUG.pattern, required=False, allow_null=True, help_text="Source slug to take values from."
    )
    metric = serializers.CharField(required=False, allow_null=True, max_length=200)
    label_key = serializers.RegexField(_LABEL_NAME.pattern, help_text="The label whose values the variable offers.")
    multi = serializers.BooleanField(required=False, default=False)
    default = VariableDefaultField(required=False)


class DashboardTimeRangeSerializer(serializers.Serializer):
    start = serializers.CharField(required=False, help_text="'now', relative like '-6h', or ISO 8601.")
    end = serializers.CharField(required=False, help_text="'now', relative like '-5m', or ISO 8601.")


class PanelQuerySerializer(serializers.Serializer):
    ref = serializers.RegexField(_REF.pattern, required=False, help_text="A, B, ...: unique within the panel.")
    query = serializers.DictField(
        help_text="A query spec exactly as POST /api/v1/query takes it; without start/end it runs over the "
        'dashboard\'s time range, and "$variable" filter values stand for declared variables.'
    )
    axis = serializers.ChoiceField(choices=[(axis, axis) for axis in AXES], required=False, default="left")
    legend = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    hidden = serializers.BooleanField(required=False)


class PanelGridSerializer(serializers.Serializer):
    x = serializers.IntegerField(min_value=0, max_value=GRID_COLUMNS - 1)
    y = serializers.IntegerField(min_value=0, max_value=MAX_GRID_ROW)
    w = serializers.IntegerField(min_value=1, max_value=GRID_COLUMNS, help_text="x + w is at most 12.")
    h = serializers.IntegerField(min_value=1, max_value=MAX_GRID_HEIGHT)


class PanelDocumentSerializer(serializers.Serializer):
    key = serializers.RegexField(
        _PANEL_KEY.pattern, help_text="The builder's stable id for the panel, unique in the dashboard."
    )
    title = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=200)
    type = serializers.ChoiceField(choices=PanelType.choices)
    queries = PanelQuerySerializer(many=True, required=False, max_length=MAX_QUERIES_PER_PANEL)
    options = serializers.DictField(
        required=False,
        allow_null=True,
        help_text="style, unit, unit_right, decimals, min, max, reduce, sparkline, thresholds, states, markdown; "
        "see apps/dashboards/documents.py.",
    )
    grid = PanelGridSerializer(
        required=False, allow_null=True, help_text="Where the panel sits; omitted, it goes below the others."
    )


class DashboardDocumentSerializer(serializers.Serializer):
    schema_version = serializers.IntegerField(
        required=False, default=SCHEMA_VERSION, min_value=SCHEMA_VERSION, max_value=SCHEMA_VERSION
    )
    title = serializers.CharField(max_length=200)
    folder = serializers.CharField(required=False, allow_null=True, allow_blank=True, max_length=100)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False, max_length=MAX_TAGS)
    variables = DashboardVariableSerializer(many=True, required=False, max_length=MAX_VARIABLES)
    time_range = DashboardTimeRangeSerializer(required=False)
    refresh = serializers.ChoiceField(choices=Refresh.choices, required=False, default=Refresh.LIVE)
    panels = PanelDocumentSerializer(many=True, required=False, max_length=MAX_PANELS)


@extend_schema_field(DashboardDocumentSerializer)
class DashboardDocumentField(serializers.JSONField):
    """A document passed through as JSON (documents.py validates it, with errors naming the JSON path)."""


class DashboardCreateSerializer(DashboardDocumentSerializer):
    organization = serializers.SlugField(
        required=False, help_text="Owner organisation's slug; optional when you belong to one organisation."
    )


class DashboardSummarySerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    panel_count = serializers.IntegerField(read_only=True)

    class Meta:
        model = Dashboard
        fields = [
            "uid", "title", "folder", "tags", "organization", "owner", "version", "refresh", "panel_count",
            "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields


class DashboardDetailSerializer(serializers.Serializer):
    uid = serializers.CharField()
    version = serializers.IntegerField()
    organization = serializers.CharField(help_text="Organisation slug.")
    owner = serializers.CharField(allow_null=True, help_text="Owner's username.")
    updated_at = serializers.DateTimeField()
    can_edit = serializers.BooleanField()
    document = DashboardDocumentField()


class DashboardUpdateSerializer(JsonBodySerializer):
    document = DashboardDocumentField()
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The version you edited; if the dashboard has moved on since, the save answers 409.",
    )
    message = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class DashboardRestoreSerializer(JsonBodySerializer):
    expected_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="The current version you saw; 409 if it moved on."
    )


class DashboardDuplicateSerializer(JsonBodySerializer):
    title = serializers.CharField(required=False, allow_blank=True, max_length=200)


class DashboardVersionSerializer(serializers.ModelSerializer):
    created_by = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = DashboardVersion
        fields = ["version", "message", "created_by", "created_at"]
        read_only_fields = fields


class DashboardVersionDetailSerializer(DashboardVersionSerializer):
    document = DashboardDocumentField(read_only=True)

    class Meta(DashboardVersionSerializer.Meta):
        fields = [*DashboardVersionSerializer.Meta.fields, "document"]
        read_only_fields = fields


class DashboardFilterSerializer(serializers.Serializer):
    """Query parameters of the dashboard list."""

    q = serializers.CharField(
        required=False, allow_blank=True, max_length=200, help_text="Part of the title, any case."
    )
    tag = serializers.CharField(
        required=False, allow_blank=True, max_length=50, help_text="Only dashboards with this tag."
    )
    folder = serializers.CharField(
        required=False,
        allow_blank=True,
        max_length=100,
        trim_whitespace=True,
        help_text="Only dashboards in this folder ('' for none).",
    )
