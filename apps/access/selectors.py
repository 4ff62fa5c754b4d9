"""Reads for access."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from apps.access.models import ApiToken, Membership, Organization


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def organization_ids_for_user(*, user: AbstractBaseUser, roles: tuple[str, ...] | None = None) -> list[int]:
    """Ids of the organisations the user belongs to, optionally only where they hold one of `roles`.

    A request authenticated with an API token that carries an organisation sees that organisation only.
    """
    memberships = Membership.objects.filter(user=user)
    token_organization_id = getattr(user, "api_token_organization_id", None)
    if token_organization_id is not None:
        memberships = memberships.filter(organization_id=token_organization_id)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return list(memberships.values_list("organization_id", flat=True))


def organization_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Organization]:
    """The organisations the user belongs to, by name."""
    return Organization.objects.filter(memberships__user=user).order_by("name")
