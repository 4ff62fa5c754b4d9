"""Writes for the audit log: `audit_record` is the one way every app records an event."""

from __future__ import annotations

import logging
from typing import Any

from django.contrib.auth.models import AbstractBaseUser, AnonymousUser
from django.db import models
from django.http import HttpRequest

from apps.audit.context import current_request
from apps.audit.models import AuditEvent

logger = logging.getLogger(__name__)

_USER_AGENT_LENGTH = 300
# Keys whose values never go into the log (a connector's credentials inside a source's config, for instance).
_SECRET_KEY_PARTS = ("password", "secret", "token", "credential", "private_key", "sasl")


def _redacted(value: Any) -> Any:
    """The value with every secret-looking key's value replaced by "[redacted]", at any depth."""
    if isinstance(value, dict):
        return {
            key: "[redacted]" if any(part in str(key).lower() for part in _SECRET_KEY_PARTS) else _redacted(item)
            for key, item in value.items()
        }
    if isinstance(value, list | tuple):
        return [_redacted(item) for item in value]
    return value


def _request_of(request: Any) -> HttpRequest | None:
    """The Django request behind a DRF request (or the request itself), else the one being answered."""
    if request is None:
        return current_request.get()
    return getattr(request, "_request", request)


def _source_ip(request: HttpRequest | None) -> str | None:
    # REMOTE_ADDR only: X-Forwarded-For is whatever the client wrote unless a trusted proxy set it, and the
    # deployment's proxy (daphne --proxy-headers) already rewrites REMOTE_ADDR when configured to.
    if request is None:
        return None
    address = request.META.get("REMOTE_ADDR") or None
    return address


def _actor_description(actor: AbstractBaseUser | None, api_token: Any) -> str:
    if actor is None or isinstance(actor, AnonymousUser) or not actor.is_authenticated:
        return "anonymous" if api_token is None else f"token {api_token.key_prefix}"
    name = actor.get_username()
    return f"{name} (token {api_token.key_prefix})" if api_token is not None else name


def _api_token_of(request: Any) -> Any:
    """The ApiToken a DRF request authenticated with, if any."""
    auth = getattr(request, "auth", None) if request is not None else None
    return auth if auth is not None and hasattr(auth, "key_prefix") else None


def audit_record(
    *,
    action: str,
    actor: AbstractBaseUser | None = None,
    organization: Any = None,
    obj: models.Model | None = None,
    request: Any = None,
    details: dict[str, Any] | None = None,
    actor_description: str | None = None,
) -> AuditEvent:
    """Append one event. `request` (Django or DRF) defaults to the request being answered, for address and agent.

    The actor defaults to the request's user; an API token the request carries is named in the description.
    The organisation defaults to the object's `organization` when it has one.
    """
    django_request = _request_of(request)
    # DRF copies the authenticated user and token onto the Django request, so either carries them.
    api_token = _api_token_of(request if request is not None else django_request)
    if actor is None and django_request is not None:
        actor = getattr(django_request, "user", None)
    if actor is not None and not getattr(actor, "is_authenticated", False):
        actor = None
    if organization is None and obj is not None:
        organization = getattr(obj, "organization", None)
    object_type = object_id = object_repr = ""
    if obj is not None:
        object_type = obj._meta.label_lower
        object_id = str(obj.pk) if obj.pk is not None else ""
        object_repr = str(obj)[:200]
    user_agent = ""
    if django_request is not None:
        user_agent = django_request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_LENGTH]
    event = AuditEvent.objects.create(
        organization_id=getattr(organization, "pk", organization),
        actor_id=actor.pk if actor is not None else None,
        actor_description=(actor_description or _actor_description(actor, api_token))[:200],
        action=action,
        object_type=object_type,
        object_id=object_id,
        object_repr=object_repr,
        source_ip=_source_ip(django_request),
        user_agent=user_agent,
        details={**_redacted(details or {}), **({"api_token_id": api_token.pk} if api_token is not None else {})},
    )
    logger.info("audit %s by %s on %s %s", action, event.actor_description, object_type, object_id)
    return event


def audit_admin_log_entries_record(*, request: HttpRequest, after_id: int) -> int:
    """Copy the admin's log entries written by this request (ids above `after_id`) into the audit log."""
    from django.contrib.admin.models import ADDITION, CHANGE, DELETION, LogEntry

    flags = {ADDITION: "added", CHANGE: "changed", DELETION: "deleted"}
    entries = list(
        LogEntry.objects.filter(id__gt=after_id, user_id=request.user.pk).select_related("content_type").order_by("id")
    )
    for entry in entries:
        content_type = entry.content_type
        AuditEvent.objects.create(
            actor_id=request.user.pk,
            actor_description=request.user.get_username(),
            action="admin.action",
            object_type=f"{content_type.app_label}.{content_type.model}" if content_type else "",
            object_id=(entry.object_id or "")[:64],
            object_repr=entry.object_repr[:200],
            source_ip=_source_ip(request),
            user_agent=request.META.get("HTTP_USER_AGENT", "")[:_USER_AGENT_LENGTH],
            details={
                "change": flags.get(entry.action_flag, str(entry.action_flag)),
                "message": entry.get_change_message(),
            },
        )
    return len(entries)
