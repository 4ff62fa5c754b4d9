"""Sharing single objects (a dashboard; alert rules and reports through the same calls) with users and teams.

Shares are django-guardian object permissions: "view" is the model's `view_<model>` permission, "edit" its
`change_<model>` (edit implies view). A team's share is a permission of the team's Django group. Any model with an
`organization` foreign key can be shared; only members and teams of that organisation can receive a share, so
sharing never crosses tenants. Sharing an object does not share data: a panel still reads under the reader's own
data policies.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.db.models import Model, QuerySet
from guardian.shortcuts import (
    assign_perm,
    get_groups_with_perms,
    get_objects_for_user,
    get_perms,
    get_users_with_perms,
    remove_perm,
)

from apps.access.models import Membership, MembershipRole, Team
from apps.access.services import AccessError
from apps.audit.services import audit_record

VIEW, EDIT = "view", "edit"
LEVELS = (VIEW, EDIT)
_ROLE_LEVEL = {MembershipRole.ADMIN: EDIT, MembershipRole.EDITOR: EDIT, MembershipRole.VIEWER: VIEW}


def _codename(model: type[Model] | Model, level: str) -> str:
    action = "change" if level == EDIT else "view"
    return f"{action}_{model._meta.model_name}"


def _perm(model: type[Model] | Model, level: str) -> str:
    return f"{model._meta.app_label}.{_codename(model, level)}"


@dataclass(frozen=True)
class Share:
    """One share of an object: with a user (`name` is the username) or a team (`name` is its slug)."""

    kind: str  # "user" or "team"
    name: str
    level: str


@dataclass
class Access:
    """Someone who can open an object, at which level, and every reason they can."""

    username: str
    level: str
    reasons: list[str] = field(default_factory=list)


def _level_of(codenames, obj: Model) -> str | None:
    if _codename(obj, EDIT) in codenames:
        return EDIT
    if _codename(obj, VIEW) in codenames:
        return VIEW
    return None


def object_share(*, obj: Model, level: str, username: str | None = None, team: str | None = None) -> Share:
    """Share `obj` with a member (by username) or a team (by slug) of its organisation, replacing their level."""
    if level not in LEVELS:
        raise AccessError("level", f"must be one of {', '.join(LEVELS)}.")
    if (username is None) == (team is None):
        raise AccessError("user", "name either a user or a team.")
    if username is not None:
        membership = (
            Membership.objects.select_related("user")
            .filter(organization_id=obj.organization_id, user__username=username, user__is_active=True)
            .first()
        )
        if membership is None:
            raise AccessError("user", f"{username!r} is not a member of this organisation.")
        subject = membership.user
    else:
        found = Team.objects.select_related("group").filter(organization_id=obj.organization_id, slug=team).first()
        if found is None:
            raise AccessError("team", f"this organisation has no team {team!r}.")
        subject = found.group
    with transaction.atomic():
        for existing in LEVELS:
            remove_perm(_perm(obj, existing), subject, obj)
        assign_perm(_perm(obj, level), subject, obj)
        if level == EDIT:
            assign_perm(_perm(obj, VIEW), subject, obj)
        audit_record(action="share.created", obj=obj, details={"user": username, "team": team, "level": level})
    return Share(kind="user" if username is not None else "team", name=username or team, level=level)


def object_unshare(*, obj: Model, username: str | None = None, team: str | None = None) -> bool:
    """Take back a share; False when there was none."""
    shares = object_share_list(obj=obj)
    kind, name = ("user", username) if username is not None else ("team", team)
    if not any(share.kind == kind and share.name == name for share in shares):
        return False
    if kind == "user":
        subject = get_user_model().objects.get(username=username)
    else:
        subject = Team.objects.select_related("group").get(organization_id=obj.organization_id, slug=team).group
    with transaction.atomic():
        for level in LEVELS:
            remove_perm(_perm(obj, level), subject, obj)
        audit_record(action="share.removed", obj=obj, details={"user": username, "team": team})
    return True


def object_share_list(*, obj: Model) -> list[Share]:
    """The object's shares, users first, by name."""
    shares = []
    for user, codenames in get_users_with_perms(obj, attach_perms=True, with_group_users=False).items():
        level = _level_of(codenames, obj)
        if level:
            shares.append(Share("user", user.get_username(), level))
    teams = {team.group_id: team for team in Team.objects.filter(organization_id=obj.organization_id)}
    for group, codenames in get_groups_with_perms(obj, attach_perms=True).items():
        level = _level_of(codenames, obj)
        if level and group.pk in teams:
            shares.append(Share("team", teams[group.pk].slug, level))
    return sorted(shares, key=lambda share: (share.kind != "user", share.name))


def object_share_level(*, user: AbstractBaseUser, obj: Model) -> str | None:
    """The level the user's own and their teams' shares give on `obj` (roles aside), or None."""
    if not user.is_active:
        return None
    return _level_of(set(get_perms(user, obj)), obj)


def object_ids_shared_with(*, user: AbstractBaseUser, model: type[Model], level: str = VIEW) -> QuerySet:
    """Ids of the `model` objects shared with the user (directly or through a team) at `level` or above."""
    return get_objects_for_user(
        user, _perm(model, level), klass=model, with_superuser=False, accept_global_perms=False
    ).values("pk")


def object_access_list(*, obj: Model) -> list[Access]:
    """Everyone who can open `obj` and why: their role in its organisation, their shares and their teams' shares.

    The level is the highest any reason gives.
    """
    entries: dict[str, Access] = {}

    def add(username: str, level: str, reason: str) -> None:
        entry = entries.setdefault(username, Access(username=username, level=level))
        if level == EDIT:
            entry.level = EDIT
        entry.reasons.append(reason)

    organization = obj.organization
    for membership in Membership.objects.filter(organization=organization).select_related("user"):
        add(membership.user.get_username(), _ROLE_LEVEL[membership.role], f"{membership.role} of {organization.name}")
    teams = {team.group_id: team for team in Team.objects.filter(organization=organization).select_related("group")}
    for share in object_share_list(obj=obj):
        if share.kind == "user":
            add(share.name, share.level, f"shared with them ({share.level})")
    for group, codenames in get_groups_with_perms(obj, attach_perms=True).items():
        team, level = teams.get(group.pk), _level_of(codenames, obj)
        if team is None or level is None:
            continue
        for user in group.user_set.filter(is_active=True):
            add(user.get_username(), level, f"team {team.name} ({level})")
    return sorted(entries.values(), key=lambda entry: entry.username)
