"""Shapes of alerting objects in the API (validation rules live in the services and rule_spec.py)."""

from __future__ import annotations

from rest_framework import serializers

from apps.alerts.models import (
    AlertInstance,
    AlertRule,
    ContactPoint,
    ContactPointKind,
    DeliveryAttempt,
    MuteTiming,
    Notification,
    NotificationPolicy,
    Silence,
    StateTransition,
)

_RULE_DURATIONS = {
    "window": "window_seconds", "for": "for_seconds", "keep_firing_for": "keep_firing_seconds",
    "no_data_for": "no_data_seconds", "interval": "interval_seconds", "group_wait": "group_wait_seconds",
    "group_interval": "group_interval_seconds", "repeat_interval": "repeat_interval_seconds",
}  # fmt: skip


def _duration(seconds: int | None) -> str | None:
    return None if seconds is None else f"{seconds}s"


class ContactPointSerializer(serializers.ModelSerializer):
    """A contact point; the secret is never shown (has_secret says whether one is set)."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    config = serializers.SerializerMethodField()
    has_secret = serializers.SerializerMethodField()

    class Meta:
        model = ContactPoint
        fields = ["id", "organization", "name", "kind", "config", "has_secret", "created_at", "updated_at"]
        read_only_fields = fields

    def get_config(self, contact_point: ContactPoint) -> dict:
        return {key: value for key, value in contact_point.config.items() if key != "secret"}

    def get_has_secret(self, contact_point: ContactPoint) -> bool:
        return bool(contact_point.config.get("secret"))


class ContactPointInputSerializer(serializers.Serializer):
    """Create a contact point: webhook/cmms {url, secret}, slack {url}, email {addresses}, in_app {}."""

    organization = serializers.SlugField(required=False, help_text="Needed when you edit several organisations.")
    name = serializers.CharField(max_length=200)
    kind = serializers.ChoiceField(choices=ContactPointKind.choices)
    config = serializers.JSONField()


class AlertRuleSerializer(serializers.ModelSerializer):
    """A rule as the API shows it (durations as '<n>s')."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    contact_points = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    durations = serializers.SerializerMethodField(help_text="window, for, keep_firing_for, no_data_for, ...")
    states = serializers.SerializerMethodField(help_text="Instance counts by state.")

    class Meta:
        model = AlertRule
        fields = [
            "id", "organization", "owner", "name", "enabled", "queries", "group_by", "expression", "reduction",
            "condition", "durations", "severity", "labels", "annotations", "contact_points", "states",
            "created_at", "updated_at", "last_evaluated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_durations(self, rule: AlertRule) -> dict[str, str | None]:
        return {name: _duration(getattr(rule, field)) for name, field in _RULE_DURATIONS.items()}

    def get_states(self, rule: AlertRule) -> dict[str, int]:
        counts: dict[str, int] = {}
        for instance in rule.instances.all():
            counts[instance.state] = counts.get(instance.state, 0) + 1
        return counts

    def to_representation(self, rule: AlertRule) -> dict:
        data = super().to_representation(rule)
        data.update(data.pop("durations"))
        return data


class AlertRuleInputSerializer(serializers.Serializer):
    """A rule body (see docs/alerting.md): `query` or `queries` + `expression`, `condition`, durations, routing."""

    organization = serializers.SlugField(required=False)
    name = serializers.CharField()
    query = serializers.JSONField(required=False, help_text="A query engine spec (ref A).")
    queries = serializers.JSONField(required=False, help_text='[{"ref": "A", "query": {...}}, ...]')
    expression = serializers.CharField(required=False, help_text="e.g. A / B * 100")
    reduction = serializers.CharField(required=False, help_text="last, mean, min, max, sum, count, p95, rate")
    group_by = serializers.ListField(child=serializers.CharField(), required=False)
    condition = serializers.JSONField(help_text='{"type": "threshold", "op": ">", "value": 90, "recovery": 85}')
    window = serializers.CharField(required=False)
    keep_firing_for = serializers.CharField(required=False)
    no_data_for = serializers.CharField(required=False, allow_null=True)
    interval = serializers.CharField(required=False)
    group_wait = serializers.CharField(required=False)
    group_interval = serializers.CharField(required=False)
    repeat_interval = serializers.CharField(required=False)
    severity = serializers.ChoiceField(choices=["critical", "warning", "info"], required=False)
    labels = serializers.DictField(child=serializers.CharField(), required=False)
    annotations = serializers.DictField(child=serializers.CharField(), required=False)
    contact_points = serializers.ListField(child=serializers.IntegerField(), required=False)
    enabled = serializers.BooleanField(required=False)

    def get_fields(self):
        fields = super().get_fields()
        fields["for"] = serializers.CharField(required=False, help_text="Pending period, e.g. '2m'.")
        return fields


class AlertInstanceSerializer(serializers.ModelSerializer):
    """An alert instance: one label set of a rule and its state."""

    rule_name = serializers.CharField(source="rule.name", read_only=True)
    acknowledged_by = serializers.SlugRelatedField(slug_field="username", read_only=True)
    assignee = serializers.SlugRelatedField(slug_field="username", read_only=True)

    class Meta:
        model = AlertInstance
        fields = [
            "id", "rule", "rule_name", "labels", "state", "state_since", "value", "values", "annotations",
            "last_data_at", "last_evaluated_at", "error", "notified", "acknowledged_by", "acknowledged_at",
            "assignee",
        ]  # fmt: skip
        read_only_fields = fields


class AssignSerializer(serializers.Serializer):
    """Assign an instance to a member (null: unassign)."""

    assignee = serializers.IntegerField(allow_null=True)


class StateTransitionSerializer(serializers.ModelSerializer):
    """A state change with the values that caused it."""

    labels = serializers.JSONField(source="instance.labels", read_only=True)

    class Meta:
        model = StateTransition
        fields = ["id", "rule", "instance", "labels", "at", "from_state", "to_state", "value", "values", "reason"]
        read_only_fields = fields


class SilenceSerializer(serializers.ModelSerializer):
    """A silence; `active` says whether it holds notifications back now."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    active = serializers.SerializerMethodField()

    class Meta:
        model = Silence
        fields = ["id", "organization", "matchers", "starts_at", "ends_at", "comment", "active", "created_at"]
        read_only_fields = fields

    def get_active(self, silence: Silence) -> bool:
        from django.utils import timezone

        return silence.starts_at <= timezone.now() < silence.ends_at


class SilenceInputSerializer(serializers.Serializer):
    """Create a silence."""

    organization = serializers.SlugField(required=False)
    matchers = serializers.JSONField(help_text='[{"label": "device", "op": "=", "value": "press-7"}]')
    starts_at = serializers.CharField(required=False)
    ends_at = serializers.CharField()
    comment = serializers.CharField(required=False, allow_blank=True)


class MuteTimingInputSerializer(serializers.Serializer):
    """Create a mute timing, or change one (PATCH: only the fields sent)."""

    organization = serializers.SlugField(required=False, help_text="when you belong to several; create only")
    name = serializers.CharField(max_length=200)
    intervals = serializers.JSONField(
        help_text='[{"weekdays": ["saturday", "sunday"], "times": [{"start": "00:00", "end": "24:00"}], '
        '"timezone": "Europe/Berlin"}]: weekdays default to every day, times to the whole day, the zone to UTC'
    )


class MuteTimingSerializer(serializers.ModelSerializer):
    """Recurring windows in which notifications wait."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)

    class Meta:
        model = MuteTiming
        fields = ["id", "organization", "name", "intervals", "created_at"]
        read_only_fields = fields


class NotificationPolicySerializer(serializers.ModelSerializer):
    """A node of the routing tree."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    mute_timings = serializers.PrimaryKeyRelatedField(many=True, read_only=True)
    group_wait = serializers.SerializerMethodField()
    group_interval = serializers.SerializerMethodField()
    repeat_interval = serializers.SerializerMethodField()

    class Meta:
        model = NotificationPolicy
        fields = [
            "id", "organization", "parent", "name", "position", "matchers", "contact_point", "group_by",
            "group_wait", "group_interval", "repeat_interval", "continue_matching", "mute_timings", "created_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_group_wait(self, policy: NotificationPolicy) -> str:
        return f"{policy.group_wait_seconds}s"

    def get_group_interval(self, policy: NotificationPolicy) -> str:
        return f"{policy.group_interval_seconds}s"

    def get_repeat_interval(self, policy: NotificationPolicy) -> str:
        return f"{policy.repeat_interval_seconds}s"


class NotificationPolicyInputSerializer(serializers.Serializer):
    """Create or change a policy node."""

    organization = serializers.SlugField(required=False)
    parent = serializers.IntegerField(required=False, allow_null=True)
    name = serializers.CharField(required=False)
    position = serializers.IntegerField(required=False, min_value=0)
    matchers = serializers.JSONField(required=False)
    contact_point = serializers.IntegerField(required=False, allow_null=True)
    group_by = serializers.ListField(child=serializers.CharField(), required=False)
    group_wait = serializers.CharField(required=False)
    group_interval = serializers.CharField(required=False)
    repeat_interval = serializers.CharField(required=False)
    continue_matching = serializers.BooleanField(required=False)
    mute_timings = serializers.ListField(child=serializers.IntegerField(), required=False)


class DeliveryAttemptSerializer(serializers.ModelSerializer):
    class Meta:
        model = DeliveryAttempt
        fields = ["number", "at", "ok", "status_code", "error", "duration_ms"]
        read_only_fields = fields


class NotificationSerializer(serializers.ModelSerializer):
    """An outbox row with its delivery attempts."""

    delivery_attempts = DeliveryAttemptSerializer(many=True, read_only=True)

    class Meta:
        model = Notification
        fields = [
            "id", "contact_point", "rule", "status", "state", "payload", "idempotency_key", "not_before",
            "attempts", "created_at", "sent_at", "last_error", "delivery_attempts",
        ]  # fmt: skip
        read_only_fields = fields


class BacktestSerializer(serializers.Serializer):
    """A backtest: per label set the value and state at each step ([time, value, state]) and its transitions."""

    start = serializers.CharField()
    end = serializers.CharField()
    step = serializers.CharField()
    groups = serializers.JSONField()
    firings = serializers.IntegerField()
    notifications = serializers.IntegerField()
