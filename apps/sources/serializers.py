"""Shapes of sources, write keys and schema versions in the REST API (rules live in services)."""

from __future__ import annotations

from rest_framework import serializers

from analytics_platform.json_body import JsonBodySerializer
from apps.sources.models import SchemaMode, Source, SourceKind, SourceSchema, SourceWriteKey

MAX_INTEGER = 2_147_483_647  # the columns' PostgreSQL integer
MAX_RETENTION_DAYS = 36_500


class SourceSerializer(serializers.ModelSerializer):
    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    schema_mode = serializers.SerializerMethodField()
    schema_version = serializers.SerializerMethodField()

    class Meta:
        model = Source
        fields = [
            "id", "name", "slug", "kind", "enabled", "organization", "schema_mode", "schema_version", "config",
            "rate_limit_points_per_second", "max_series", "raw_retention_days", "rollup_1m_retention_days",
            "rollup_1h_retention_days", "rollup_1d_retention_days", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def _current(self, source: Source) -> SourceSchema | None:
        schemas = getattr(source, "current_schemas", None)
        if schemas is not None:
            return schemas[0] if schemas else None
        return source.schemas.order_by("-version").first()

    def get_schema_mode(self, source: Source) -> str | None:
        current = self._current(source)
        return current.mode if current else None

    def get_schema_version(self, source: Source) -> int | None:
        current = self._current(source)
        return current.version if current else None


class SourceCreatedSerializer(SourceSerializer):
    write_key = serializers.CharField(help_text="The first write key. Shown once: store it now.")

    class Meta(SourceSerializer.Meta):
        fields = [*SourceSerializer.Meta.fields, "write_key"]
        read_only_fields = fields


class SourceCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=200)
    slug = serializers.SlugField(max_length=100)
    kind = serializers.ChoiceField(choices=SourceKind.choices, default=SourceKind.HTTP)
    schema_mode = serializers.ChoiceField(choices=SchemaMode.choices, default=SchemaMode.INFER)
    schema = serializers.JSONField(required=False, help_text="Schema definition (see docs/ingestion.md).")
    config = serializers.JSONField(required=False, default=dict)
    organization = serializers.SlugField(
        required=False, help_text="Owner organisation's slug; optional when you belong to one organisation."
    )
    rate_limit_points_per_second = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_INTEGER
    )
    max_series = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INTEGER)


class SourceUpdateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=200, required=False)
    enabled = serializers.BooleanField(required=False)
    config = serializers.JSONField(required=False)
    rate_limit_points_per_second = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_INTEGER
    )
    max_series = serializers.IntegerField(required=False, allow_null=True, min_value=1, max_value=MAX_INTEGER)
    raw_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS
    )
    rollup_1m_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS
    )
    rollup_1h_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS
    )
    rollup_1d_retention_days = serializers.IntegerField(
        required=False, allow_null=True, min_value=1, max_value=MAX_RETENTION_DAYS
    )


class WriteKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceWriteKey
        fields = ["id", "name", "key_prefix", "status", "created_at", "revoked_at", "last_used_at"]
        read_only_fields = fields


class WriteKeyCreatedSerializer(WriteKeySerializer):
    write_key = serializers.CharField(help_text="The secret. Shown once: store it now.")

    class Meta(WriteKeySerializer.Meta):
        fields = [*WriteKeySerializer.Meta.fields, "write_key"]
        read_only_fields = fields


class WriteKeyCreateSerializer(JsonBodySerializer):
    name = serializers.CharField(max_length=100)


class SchemaSerializer(serializers.ModelSerializer):
    class Meta:
        model = SourceSchema
        fields = ["version", "mode", "definition", "change", "note", "created_at"]
        read_only_fields = fields


class SchemaCreateSerializer(JsonBodySerializer):
    mode = serializers.ChoiceField(choices=SchemaMode.choices)
    definition = serializers.JSONField(required=False, default=dict)
    breaking = serializers.BooleanField(
        default=False, help_text="Set to true to accept a change that breaks senders (otherwise 409 lists why)."
    )
    note = serializers.CharField(max_length=500, required=False, default="")
