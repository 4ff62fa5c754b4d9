"""Shapes for the audit-log API."""

from __future__ import annotations

from rest_framework import serializers

from apps.audit.models import AuditEvent
from apps.audit.selectors import AuditFilters


class AuditEventSerializer(serializers.ModelSerializer):
    actor = serializers.CharField(source="actor_description", read_only=True, help_text="Who acted, as it was then.")
    actor_id = serializers.IntegerField(read_only=True, allow_null=True)
    object = serializers.SerializerMethodField(help_text='{"type", "id", "repr"} of the object acted on, or null.')

    class Meta:
        model = AuditEvent
        fields = ["id", "time", "actor", "actor_id", "action", "object", "source_ip", "user_agent", "details"]
        read_only_fields = fields

    def get_object(self, event: AuditEvent) -> dict[str, str] | None:
        if not event.object_type:
            return None
        return {"type": event.object_type, "id": event.object_id, "repr": event.object_repr}


class AuditFilterSerializer(serializers.Serializer):
    actor = serializers.CharField(required=False, max_length=200, help_text="Username of the actor.")
    action = serializers.CharField(
        required=False,
        max_length=64,
        help_text='An action ("token.created"), or every action under a prefix ("auth." or "auth.*").',
    )
    object_type = serializers.CharField(required=False, max_length=100, help_text='e.g. "sources.source".')
    object_id = serializers.CharField(required=False, max_length=64)
    since = serializers.DateTimeField(required=False, help_text="Events at or after this time (ISO 8601).")
    until = serializers.DateTimeField(required=False, help_text="Events before this time (ISO 8601).")
    format = serializers.ChoiceField(
        choices=["json", "csv"], required=False, help_text="csv: every matching event as a CSV file (not paginated)."
    )

    def validate(self, attrs: dict) -> dict:
        since, until = attrs.get("since"), attrs.get("until")
        if since is not None and until is not None and since >= until:
            raise serializers.ValidationError({"until": "must be after since."})
        return attrs

    def filters(self) -> AuditFilters:
        """The validated filters."""
        data = dict(self.validated_data)
        data.pop("format", None)
        return AuditFilters(**data)
