"""Alert rules and where their notifications go: contact points, notification policies, silences, mute timings.

Every object belongs to an organisation: its members see it, its admins and editors change it.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class ContactPointKind(models.TextChoices):
    EMAIL = "email", "Email (SMTP)"
    WEBHOOK = "webhook", "Webhook (signed JSON)"
    SLACK = "slack", "Slack-compatible incoming webhook"
    IN_APP = "in_app", "In-app notice (WebSocket)"
    CMMS = "cmms", "CMMS work order (signed JSON)"


class Severity(models.TextChoices):
    CRITICAL = "critical", "Critical"
    WARNING = "warning", "Warning"
    INFO = "info", "Info"


class ContactPoint(models.Model):
    """Where notifications are sent: `config` holds the kind's settings (url and secret, addresses, ...)."""

    organization = models.ForeignKey("access.Organization", on_delete=models.CASCADE, related_name="contact_points")
    name = models.CharField(max_length=200)
    kind = models.CharField(max_length=16, choices=ContactPointKind.choices)
    config = models.JSONField(default=dict, help_text="Per kind; see docs/alerting.md. Secrets are never shown.")
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "name"], name="alerts_contact_point_name_unique")
        ]

    def __str__(self) -> str:
        return f"{self.name} ({self.kind})"


class MuteTiming(models.Model):
    """Recurring windows in which notifications are held back, e.g. weekends or a weekly maintenance slot.

    `intervals`: [{"weekdays": ["saturday", "sunday"], "times": [{"start": "00:00", "end": "24:00"}],
    "timezone": "Europe/Berlin"}]; a moment is muted when it falls in any interval.
    """

    organization = models.ForeignKey("access.Organization", on_delete=models.CASCADE, related_name="mute_timings")
    name = models.CharField(max_length=200)
    intervals = models.JSONField(default=list)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["name", "id"]
        constraints = [models.UniqueConstraint(fields=["organization", "name"], name="alerts_mute_timing_unique")]

    def __str__(self) -> str:
        return self.name


class NotificationPolicy(models.Model):
    """A node of the routing tree: alerts whose labels match `matchers` go to `contact_point`, grouped by
    `group_by`; children are tried first, in `position` order; `continue_matching` lets later siblings match too.
    """

    organization = models.ForeignKey(
        "access.Organization", on_delete=models.CASCADE, related_name="notification_policies"
    )
    parent = models.ForeignKey("self", on_delete=models.CASCADE, null=True, blank=True, related_name="children")
    name = models.CharField(max_length=200, blank=True)
    position = models.PositiveIntegerField(default=0)
    matchers = models.JSONField(default=list, blank=True, help_text='[{"label": "severity", "op": "=", "value": ...}]')
    contact_point = models.ForeignKey(ContactPoint, on_delete=models.PROTECT, null=True, blank=True)
    group_by = models.JSONField(default=list, blank=True)
    group_wait_seconds = models.PositiveIntegerField(default=0)
    group_interval_seconds = models.PositiveIntegerField(default=60)
    repeat_interval_seconds = models.PositiveIntegerField(default=4 * 3600)
    continue_matching = models.BooleanField(default=False)
    mute_timings = models.ManyToManyField(MuteTiming, blank=True, related_name="policies")
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["position", "id"]
        verbose_name_plural = "notification policies"

    def __str__(self) -> str:
        return self.name or f"policy {self.pk}"


class Silence(models.Model):
    """No notifications for alerts whose labels match `matchers` between `starts_at` and `ends_at`."""

    organization = models.ForeignKey("access.Organization", on_delete=models.CASCADE, related_name="silences")
    matchers = models.JSONField(help_text='[{"label": "device", "op": "=", "value": "press-7"}]')
    starts_at = models.DateTimeField(default=timezone.now)
    ends_at = models.DateTimeField()
    comment = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-starts_at", "id"]
        indexes = [models.Index(fields=["organization", "ends_at"], name="alerts_silence_active_idx")]

    def __str__(self) -> str:
        return f"silence {self.pk} until {self.ends_at:%Y-%m-%d %H:%M}"


class AlertRule(models.Model):
    """What to watch and when to alert; see apps/alerts/alerting/rule_spec.py for the meaning of each field.

    The rule reads its data as `owner` (the owner's data policies apply); it evaluates whenever its input series
    change and every `interval_seconds`.
    """

    organization = models.ForeignKey("access.Organization", on_delete=models.CASCADE, related_name="alert_rules")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, related_name="+")
    name = models.CharField(max_length=200)
    enabled = models.BooleanField(default=True)
    queries = models.JSONField(help_text='[{"ref": "A", "query": {query engine spec}}]')
    group_by = models.JSONField(default=list, blank=True)
    expression = models.CharField(max_length=500, blank=True, help_text="e.g. A / B * 100; empty: the query A.")
    reduction = models.CharField(max_length=16, default="last")
    window_seconds = models.PositiveIntegerField(default=300)
    condition = models.JSONField()
    for_seconds = models.PositiveIntegerField(default=0)
    keep_firing_seconds = models.PositiveIntegerField(default=0)
    no_data_seconds = models.PositiveIntegerField(null=True, blank=True)
    interval_seconds = models.PositiveIntegerField(default=60)
    severity = models.CharField(max_length=16, choices=Severity.choices, default=Severity.WARNING)
    labels = models.JSONField(default=dict, blank=True)
    annotations = models.JSONField(default=dict, blank=True, help_text="summary, description, runbook_url, ...")
    contact_points = models.ManyToManyField(ContactPoint, blank=True, related_name="rules")
    group_wait_seconds = models.PositiveIntegerField(default=0)
    group_interval_seconds = models.PositiveIntegerField(default=60)
    repeat_interval_seconds = models.PositiveIntegerField(default=4 * 3600)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["enabled", "last_evaluated_at"], name="alerts_rule_due_idx")]

    def __str__(self) -> str:
        return self.name
