"""Reads for access."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from apps.access.models import ApiToken, Membership, Organization


def api_token_list(*, user: AbstractBaseUser) -> QuerySet[ApiToken]:
    """The user's tokens, newest first."""
    return ApiToken.objects.filter(user=user).order_by("-created_at")


def organization_ids_for_user(*, user: AbstractBaseUser, roles: tuple[str, ...] | None = None) -> list[int]:
    """Ids of the organisations the user belongs to, optionally only where they hold one of `roles`."""
    memberships = Membership.objects.filter(user=user)
    if roles is not None:
        memberships = memberships.filter(role__in=roles)
    return list(memberships.values_list("organization_id", flat=True))


def organization_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Organization]:
    """The organisations the user belongs to, by name."""
    return Organization.objects.filter(memberships__user=user).order_by("name")
