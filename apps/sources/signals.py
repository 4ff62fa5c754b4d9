"""When a user's data scope may change, tell live connections (apps/storage/scope_events.py).

The scope (policies.py) is: superusers read everything, others the sources of their organisations. So it
changes with memberships, a user's active or superuser flag, and a source moving to another organisation
or being deleted.
"""

from __future__ import annotations

from django.contrib.auth import get_user_model
from django.db.models.signals import post_delete, post_save, pre_save

from apps.access.models import Membership
from apps.sources.models import Source
from apps.storage.scope_events import scope_changed


def _membership_changed(sender, instance: Membership, **kwargs) -> None:
    scope_changed(user_ids=[instance.user_id])


def _saves_any(update_fields, names: set[str]) -> bool:
    """Whether a save may write one of these fields (`update_fields` None: every field)."""
    return update_fields is None or bool(names & set(update_fields))


def _user_flags_before(sender, instance, update_fields=None, **kwargs) -> None:
    instance._scope_flags_changed = False
    # Every sign-in saves last_login alone: no query for those.
    if instance.pk is None or not _saves_any(update_fields, {"is_active", "is_superuser"}):
        return
    before = sender.objects.filter(pk=instance.pk).values("is_active", "is_superuser").first()
    instance._scope_flags_changed = before is not None and (
        before["is_active"] != instance.is_active or before["is_superuser"] != instance.is_superuser
    )


def _user_saved(sender, instance, created: bool, **kwargs) -> None:
    if not created and getattr(instance, "_scope_flags_changed", False):
        scope_changed(user_ids=[instance.pk])


def _source_organization_before(sender, instance: Source, update_fields=None, **kwargs) -> None:
    instance._scope_organization_changed = False
    if instance.pk is None or not _saves_any(update_fields, {"organization", "organization_id"}):
        return
    before = sender.objects.filter(pk=instance.pk).values_list("organization_id", flat=True).first()
    instance._scope_organization_changed = before is not None and before != instance.organization_id


def _source_saved(sender, instance: Source, created: bool, **kwargs) -> None:
    if not created and getattr(instance, "_scope_organization_changed", False):
        scope_changed(user_ids=None)


def _source_deleted(sender, instance: Source, **kwargs) -> None:
    scope_changed(user_ids=None)


def signals_connect() -> None:
    user_model = get_user_model()
    post_save.connect(_membership_changed, sender=Membership, dispatch_uid="sources.scope.membership_saved")
    post_delete.connect(_membership_changed, sender=Membership, dispatch_uid="sources.scope.membership_deleted")
    pre_save.connect(_user_flags_before, sender=user_model, dispatch_uid="sources.scope.user_before")
    post_save.connect(_user_saved, sender=user_model, dispatch_uid="sources.scope.user_saved")
    pre_save.connect(_source_organization_before, sender=Source, dispatch_uid="sources.scope.source_before")
    post_save.connect(_source_saved, sender=Source, dispatch_uid="sources.scope.source_saved")
    post_delete.connect(_source_deleted, sender=Source, dispatch_uid="sources.scope.source_deleted")
