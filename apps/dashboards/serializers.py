"""Shapes of dashboards, documents and versions in the REST API; the document's rules live in documents.py."""

from __future__ import annotations

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.dashboards.documents import AXES, SCHEMA_VERSION
from apps.dashboards.models import Dashboard, DashboardVersion, PanelType, Refresh


class DashboardVariableSerializer(serializers.Serializer):
    name = serializers.CharField(help_text='Referenced as "$name" in filter values.')
    label = serializers.CharField(required=False)
    source = serializers.CharField(required=False, allow_null=True, help_text="Source slug to take values from.")
    metric = serializers.CharField(required=False, allow_null=True)
    label_key = serializers.CharField(help_text="The label whose values the variable offers.")
    multi = serializers.BooleanField(required=False, default=False)
    default = serializers.ListField(child=serializers.CharField(), required=False)


class DashboardTimeRangeSerializer(serializers.Serializer):
    start = serializers.CharField(help_text="'now', relative like '-6h', or ISO 8601.")
    end = serializers.CharField(help_text="'now', relative like '-5m', or ISO 8601.")


class PanelQuerySerializer(serializers.Serializer):
    ref = serializers.CharField(help_text="A, B, ...: unique within the panel.")
    query = serializers.JSONField(
        help_text="A query spec exactly as POST /api/v1/query takes it; without start/end it runs over the "
        'dashboard\'s time range, and "$variable" filter values stand for declared variables.'
    )
    axis = serializers.ChoiceField(choices=[(axis, axis) for axis in AXES], required=False, default="left")
    legend = serializers.CharField(required=False)
    hidden = serializers.BooleanField(required=False)


class PanelGridSerializer(serializers.Serializer):
    x = serializers.IntegerField(min_value=0, max_value=11)
    y = serializers.IntegerField(min_value=0)
    w = serializers.IntegerField(min_value=1, max_value=12, help_text="x + w is at most 12.")
    h = serializers.IntegerField(min_value=1)


class PanelDocumentSerializer(serializers.Serializer):
    key = serializers.CharField(help_text="The builder's stable id for the panel, unique in the dashboard.")
    title = serializers.CharField(required=False, allow_blank=True)
    type = serializers.ChoiceField(choices=PanelType.choices)
    queries = PanelQuerySerializer(many=True, required=False)
    options = serializers.JSONField(
        required=False,
        help_text="style, unit, unit_right, decimals, min, max, reduce, sparkline, thresholds, states, markdown; "
        "see apps/dashboards/documents.py.",
    )
    grid = PanelGridSerializer()


class DashboardDocumentSerializer(serializers.Serializer):
    schema_version = serializers.IntegerField(required=False, default=SCHEMA_VERSION)
    title = serializers.CharField(max_length=200)
    folder = serializers.CharField(required=False, allow_blank=True, max_length=100)
    tags = serializers.ListField(child=serializers.CharField(max_length=50), required=False)
    variables = DashboardVariableSerializer(many=True, required=False)
    time_range = DashboardTimeRangeSerializer(required=False)
    refresh = serializers.ChoiceField(choices=Refresh.choices, required=False, default=Refresh.LIVE)
    panels = PanelDocumentSerializer(many=True, required=False)


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


class DashboardUpdateSerializer(serializers.Serializer):
    document = DashboardDocumentField()
    version = serializers.IntegerField(
        required=False,
        allow_null=True,
        min_value=1,
        help_text="The version you edited; if the dashboard has moved on since, the save answers 409.",
    )
    message = serializers.CharField(required=False, allow_blank=True, max_length=500, default="")


class DashboardRestoreSerializer(serializers.Serializer):
    expected_version = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, help_text="The current version you saw; 409 if it moved on."
    )


class DashboardDuplicateSerializer(serializers.Serializer):
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
