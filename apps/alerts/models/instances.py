"""Alert instances (one per rule and label set), their state history, and the notification outbox.

A transition, its history row and the notifications it causes are written in one transaction: a notification
exists exactly when its transition committed, and is delivered (at least once, with a stable idempotency key)
by a Celery task.
"""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class AlertState(models.TextChoices):
    NORMAL = "normal", "Normal"
    PENDING = "pending", "Pending"
    FIRING = "firing", "Firing"
    RECOVERING = "recovering", "Recovering"
    NO_DATA = "nodata", "No data"
    ERROR = "error", "Error"


class NotificationStatus(models.TextChoices):
    PENDING = "pending", "Waiting to be sent"
    SENT = "sent", "Sent"
    FAILED = "failed", "Gave up"


class AlertInstance(models.Model):
    """One label set of a rule and its current state."""

    rule = models.ForeignKey("alerts.AlertRule", on_delete=models.CASCADE, related_name="instances")
    fingerprint = models.CharField(max_length=64)
    labels = models.JSONField(default=dict)
    state = models.CharField(max_length=16, choices=AlertState.choices, default=AlertState.NORMAL)
    state_since = models.DateTimeField(default=timezone.now)
    value = models.FloatField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True, help_text="Per query ref, the reduced value.")
    annotations = models.JSONField(default=dict, blank=True, help_text="The rule's annotations, rendered.")
    last_breach_at = models.DateTimeField(null=True, blank=True)
    last_data_at = models.DateTimeField(null=True, blank=True)
    last_evaluated_at = models.DateTimeField(null=True, blank=True)
    error = models.TextField(blank=True)
    # What the contact points were last told: "firing", "resolved" or "" (nothing yet / held back by a silence).
    notified = models.CharField(max_length=16, blank=True)
    notified_at = models.DateTimeField(null=True, blank=True)
    acknowledged_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    acknowledged_at = models.DateTimeField(null=True, blank=True)
    assignee = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )

    class Meta:
        ordering = ["rule_id", "fingerprint"]
        constraints = [
            models.UniqueConstraint(fields=["rule", "fingerprint"], name="alerts_instance_unique"),
        ]
        indexes = [models.Index(fields=["state"], name="alerts_instance_state_idx")]

    def __str__(self) -> str:
        return f"{self.rule_id} {self.labels} ({self.state})"


class StateTransition(models.Model):
    """A state change of an instance, with the values that caused it (the state history)."""

    instance = models.ForeignKey(AlertInstance, on_delete=models.CASCADE, related_name="transitions")
    rule = models.ForeignKey("alerts.AlertRule", on_delete=models.CASCADE, related_name="transitions")
    at = models.DateTimeField(default=timezone.now)
    from_state = models.CharField(max_length=16, choices=AlertState.choices)
    to_state = models.CharField(max_length=16, choices=AlertState.choices)
    value = models.FloatField(null=True, blank=True)
    values = models.JSONField(default=dict, blank=True)
    reason = models.CharField(max_length=500, blank=True)

    class Meta:
        ordering = ["-at", "-id"]
        indexes = [models.Index(fields=["rule", "at"], name="alerts_transition_rule_idx")]

    def __str__(self) -> str:
        return f"{self.instance_id}: {self.from_state} -> {self.to_state}"


class NotificationGroup(models.Model):
    """When a contact point last heard about a group of alerts (for group interval)."""

    contact_point = models.ForeignKey("alerts.ContactPoint", on_delete=models.CASCADE, related_name="+")
    key = models.CharField(max_length=64)
    last_sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["contact_point", "key"], name="alerts_group_unique")]

    def __str__(self) -> str:
        return f"group {self.key} of {self.contact_point_id}"


class Notification(models.Model):
    """One message to one contact point (the outbox): the alerts of a group that changed together."""

    contact_point = models.ForeignKey("alerts.ContactPoint", on_delete=models.CASCADE, related_name="notifications")
    rule = models.ForeignKey("alerts.AlertRule", on_delete=models.SET_NULL, null=True, related_name="notifications")
    group_key = models.CharField(max_length=64)
    status = models.CharField(max_length=16, help_text="firing or resolved")
    payload = models.JSONField(help_text="The alerts: labels, value, values, annotations, times.")
    idempotency_key = models.CharField(max_length=64, unique=True)
    state = models.CharField(max_length=16, choices=NotificationStatus.choices, default=NotificationStatus.PENDING)
    not_before = models.DateTimeField(default=timezone.now)
    attempts = models.PositiveIntegerField(default=0)
    created_at = models.DateTimeField(default=timezone.now)
    sent_at = models.DateTimeField(null=True, blank=True)
    last_error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        indexes = [models.Index(fields=["state", "not_before"], name="alerts_notification_due_idx")]

    def __str__(self) -> str:
        return f"{self.status} to {self.contact_point_id} ({self.state})"


class DeliveryAttempt(models.Model):
    """One try at delivering a notification, with its outcome."""

    notification = models.ForeignKey(Notification, on_delete=models.CASCADE, related_name="delivery_attempts")
    number = models.PositiveIntegerField()
    at = models.DateTimeField(default=timezone.now)
    ok = models.BooleanField()
    status_code = models.IntegerField(null=True, blank=True)
    error = models.TextField(blank=True)
    duration_ms = models.FloatField(default=0.0)

    class Meta:
        ordering = ["notification_id", "number"]

    def __str__(self) -> str:
        return f"{self.notification_id} #{self.number}: {'ok' if self.ok else self.error[:40]}"
