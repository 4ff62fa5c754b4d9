"""Reads for access."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from apps.access.models import ApiToken, DataPolicy, Membership, MembershipRole, Organization, Team


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


def membership_role(*, user: AbstractBaseUser, organization: Organization) -> str | None:
    """The user's role in the organisation (superusers act as admins), or None for a non-member."""
    if user.is_superuser:
        return MembershipRole.ADMIN
    return Membership.objects.filter(organization=organization, user=user).values_list("role", flat=True).first()


def organization_for_member(*, user: AbstractBaseUser, slug: str) -> tuple[Organization, str] | None:
    """The organisation with this slug and the user's role in it, or None when it does not exist or the user is
    not a member (the two look the same to callers: no existence oracle)."""
    organization = Organization.objects.filter(slug=slug).first()
    if organization is None:
        return None
    role = membership_role(user=user, organization=organization)
    return None if role is None else (organization, role)


def organization_list_with_roles(*, user: AbstractBaseUser) -> list[tuple[Organization, str]]:
    """The user's organisations with their role in each, by name (every organisation for superusers)."""
    if user.is_superuser:
        return [(organization, MembershipRole.ADMIN) for organization in Organization.objects.order_by("name")]
    return [
        (membership.organization, membership.role)
        for membership in Membership.objects.select_related("organization")
        .filter(user=user)
        .order_by("organization__name")
    ]


def member_list(*, organization: Organization) -> QuerySet[Membership]:
    """The organisation's memberships, by username."""
    return Membership.objects.filter(organization=organization).select_related("user").order_by("user__username")


def member_get(*, organization: Organization, username: str) -> Membership | None:
    """One member of the organisation by username, or None."""
    return member_list(organization=organization).filter(user__username=username).first()


def team_list(*, organization: Organization) -> QuerySet[Team]:
    """The organisation's teams, by name, with their members prefetched."""
    return (
        Team.objects.filter(organization=organization)
        .select_related("group")
        .prefetch_related("group__user_set")
        .order_by("name")
    )


def team_get(*, organization: Organization, slug: str) -> Team | None:
    """One team of the organisation, or None."""
    return team_list(organization=organization).filter(slug=slug).first()


def team_slugs_for_user(*, user: AbstractBaseUser, organization: Organization) -> list[str]:
    """Slugs of the organisation's teams the user is in."""
    return list(Team.objects.filter(organization=organization, group__user=user).values_list("slug", flat=True))


def data_policy_list(*, organization: Organization) -> QuerySet[DataPolicy]:
    """The organisation's data policies, by name."""
    return (
        DataPolicy.objects.filter(organization=organization)
        .select_related("source")
        .prefetch_related("users", "teams")
        .order_by("name", "id")
    )


def data_policy_get(*, organization: Organization, policy_id: int) -> DataPolicy | None:
    """One policy of the organisation, or None."""
    return data_policy_list(organization=organization).filter(pk=policy_id).first()


def data_scope_for_user(*, user: AbstractBaseUser, organization: Organization | int | None = None):
    """What the user may read (apps.storage.policies.DataScope), under their policies in `organization` or in
    all of their organisations: the function alerting and reports call to evaluate as a given user."""
    from apps.access.scopes import data_scope_for_user as scope_for_user

    return scope_for_user(user=user, organization=organization)


def request_principal(request):
    """Who a request reads data as: a token bound to an organisation reads under that organisation's policies only
    (apps.storage.policies.Principal); a session or an older token reads under all of the user's organisations."""
    from apps.storage.policies import Principal

    token = getattr(request, "auth", None)
    organization_id = getattr(token, "organization_id", None)
    if organization_id is None:
        return request.user
    return Principal(user=request.user, organization_id=organization_id)
