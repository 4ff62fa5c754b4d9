"""Test data builders shared across apps."""

from __future__ import annotations

from django.contrib.auth import get_user_model

from apps.access.models import Membership, Organization

DEFAULT_ORGANIZATION_SLUG = "test-org"


def organization_get(*, slug: str = DEFAULT_ORGANIZATION_SLUG) -> Organization:
    """The organisation with this slug, created if missing."""
    organization, _ = Organization.objects.get_or_create(slug=slug, defaults={"name": slug.replace("-", " ").title()})
    return organization


def user_create(
    *,
    username: str,
    password: str = "correct horse battery staple",
    organization: str | None = DEFAULT_ORGANIZATION_SLUG,
    role: str = "viewer",
    **extra,
):
    """A user with a usable password, a member of `organization` (the shared test organisation by default)."""
    user = get_user_model().objects.create_user(
        username=username, email=f"{username}@example.com", password=password, **extra
    )
    if organization is not None:
        Membership.objects.create(organization=organization_get(slug=organization), user=user, role=role)
    return user
