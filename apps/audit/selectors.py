"""Reads for the audit log: an organisation's events with filters, and the organisation an admin may audit."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Q, QuerySet
from django.http import Http404

from apps.access.models import Membership, MembershipRole, Organization
from apps.audit.models import AuditEvent


def organization_for_admin(*, user: AbstractBaseUser, slug: str) -> Organization:
    """The organisation with this slug if the user is one of its admins; else 404, as if it did not exist."""
    if not user.is_authenticated:
        raise Http404("No such organization.")
    membership = (
        Membership.objects.select_related("organization")
        .filter(organization__slug=slug, user=user, role=MembershipRole.ADMIN)
        .first()
    )
    token_organization_id = getattr(user, "api_token_organization_id", None)
    if membership is None or token_organization_id not in (None, membership.organization_id):
        raise Http404("No such organization.")
    return membership.organization


@dataclass(frozen=True, slots=True)
class AuditFilters:
    """What to narrow an organisation's audit log to; every field is optional."""

    actor: str | None = None  # username
    action: str | None = None  # exact ("token.created") or a prefix ending in "." or ".*" ("auth.")
    object_type: str | None = None  # app_label.model
    object_id: str | None = None
    since: datetime | None = None  # inclusive
    until: datetime | None = None  # exclusive


def audit_event_list(*, organization: Organization, filters: AuditFilters | None = None) -> QuerySet[AuditEvent]:
    """The organisation's events, newest first: its own, and the sign-in events of its current members."""
    filters = filters or AuditFilters()
    member_ids = Membership.objects.filter(organization=organization).values("user_id")
    events = AuditEvent.objects.filter(
        Q(organization=organization) | Q(organization__isnull=True, action__startswith="auth.", actor_id__in=member_ids)
    )
    if filters.actor:
        # A deleted user's events keep only the description, so match that too.
        events = events.filter(Q(actor__username=filters.actor) | Q(actor_description=filters.actor))
    if filters.action:
        action = filters.action.removesuffix("*")
        events = events.filter(action__startswith=action) if action.endswith(".") else events.filter(action=action)
    if filters.object_type:
        events = events.filter(object_type=filters.object_type)
    if filters.object_id:
        events = events.filter(object_id=filters.object_id)
    if filters.since is not None:
        events = events.filter(time__gte=filters.since)
    if filters.until is not None:
        events = events.filter(time__lt=filters.until)
    return events.order_by("-time", "-id")
