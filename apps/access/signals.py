"""Keep access consistent when it changes by any path (API, pages, admin, shell).

A new organisation gets its editable default policy (every member reads everything), whoever creates it. Policy
and team changes announce a data scope change (apps/storage/scope_events.py), so live connections re-scope at once.
Signing out closes the WebSockets that session opened, on every web process.
"""

from __future__ import annotations

from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.signals import user_logged_out
from django.db import transaction
from django.db.models.signals import m2m_changed, post_delete, post_save

from apps.access.models import DataPolicy, Organization
from apps.access.websocket_sessions import websocket_sessions_close
from apps.storage.scope_events import scope_changed


def _organization_saved(sender, instance: Organization, created: bool, raw: bool = False, **kwargs) -> None:
    if created and not raw:
        from apps.access.services import organization_default_policy_create

        organization_default_policy_create(organization=instance)


def _policy_changed(sender, instance: DataPolicy, created: bool = False, **kwargs) -> None:
    if created and not instance.organization.memberships.exists():
        return  # a new organisation's default policy: nobody to re-scope yet
    # A policy may name all members, teams and users: re-scope everyone rather than compute who was affected.
    scope_changed(user_ids=None)


def _policy_subjects_changed(sender, instance, action: str, **kwargs) -> None:
    if action in ("post_add", "post_remove", "post_clear"):
        scope_changed(user_ids=None)


def _user_groups_changed(sender, instance, action: str, reverse: bool, pk_set, **kwargs) -> None:
    """Team membership lives in the team's Django group."""
    if action not in ("post_add", "post_remove", "pre_clear"):
        return
    if not reverse:
        scope_changed(user_ids=[instance.pk])
    elif pk_set is not None:
        scope_changed(user_ids=pk_set)
    else:  # group.user_set.clear(): the members are gone by post_clear; pre_clear still knows them
        scope_changed(user_ids=list(instance.user_set.values_list("pk", flat=True)))


def _signed_out(sender: Any, request: Any, user: Any, **kwargs: Any) -> None:
    session_key = getattr(getattr(request, "session", None), "session_key", None)
    if session_key:
        transaction.on_commit(lambda: websocket_sessions_close(session_keys=[session_key], reason="signed out"))


def signals_connect() -> None:
    post_save.connect(_organization_saved, sender=Organization, dispatch_uid="access.organization_saved")
    post_save.connect(_policy_changed, sender=DataPolicy, dispatch_uid="access.policy_saved")
    post_delete.connect(_policy_changed, sender=DataPolicy, dispatch_uid="access.policy_deleted")
    m2m_changed.connect(_policy_subjects_changed, sender=DataPolicy.users.through, dispatch_uid="access.policy_users")
    m2m_changed.connect(_policy_subjects_changed, sender=DataPolicy.teams.through, dispatch_uid="access.policy_teams")
    m2m_changed.connect(_user_groups_changed, sender=get_user_model().groups.through, dispatch_uid="access.user_groups")
    user_logged_out.connect(_signed_out, dispatch_uid="access_close_session_websockets")
