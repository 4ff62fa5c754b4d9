"""The audit log: one row per security-relevant event, never updated or deleted (a database trigger refuses both)."""

from __future__ import annotations

from django.conf import settings
from django.core.serializers.json import DjangoJSONEncoder
from django.db import models
from django.utils import timezone


class AuditEvent(models.Model):
    """Who did what, to which object, when and from where.

    The organisation and actor are kept as plain ids without foreign-key constraints (db_constraint=False,
    DO_NOTHING): deleting a user or an organisation must neither delete nor rewrite its history, and the
    append-only trigger would refuse the SET NULL anyway. `actor_description` keeps the username as it was.
    """

    time = models.DateTimeField(default=timezone.now, db_index=True)
    organization = models.ForeignKey(
        "access.Organization",
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor = models.ForeignKey(
        settings.AUTH_USER_MODEL,
        null=True,
        blank=True,
        on_delete=models.DO_NOTHING,
        db_constraint=False,
        related_name="+",
    )
    actor_description = models.CharField(
        max_length=200, blank=True, help_text="The actor as it was: username, 'token <prefix>' or 'system'."
    )
    action = models.CharField(max_length=64, help_text="Dotted, e.g. auth.sign_in, token.created, source.changed.")
    object_type = models.CharField(max_length=100, blank=True, help_text="app_label.model of the object acted on.")
    object_id = models.CharField(max_length=64, blank=True)
    object_repr = models.CharField(max_length=200, blank=True)
    source_ip = models.GenericIPAddressField(null=True, blank=True)
    user_agent = models.CharField(max_length=300, blank=True)
    details = models.JSONField(default=dict, blank=True, encoder=DjangoJSONEncoder)

    class Meta:
        ordering = ["-time", "-id"]
        indexes = [
            models.Index(fields=["organization", "-time"], name="audit_org_time"),
            models.Index(fields=["action", "-time"], name="audit_action_time"),
            models.Index(fields=["actor", "-time"], name="audit_actor_time"),
            models.Index(fields=["object_type", "object_id"], name="audit_object"),
        ]

    def __str__(self) -> str:
        return f"{self.time:%Y-%m-%d %H:%M:%S} {self.actor_description or 'system'} {self.action}"
