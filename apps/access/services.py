"""Writes for access: API tokens, organisations, members, teams and row-level data policies."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser, Group
from django.db import transaction
from django.utils import timezone

from analytics_platform.field_errors import FieldError
from analytics_platform.keys import key_digest
from apps.access.models import ApiToken, DataPolicy, Membership, MembershipRole, Organization, Team, TokenScope
from apps.access.token_cache import api_token_by_digest, api_token_used
from apps.access.websocket_sessions import websocket_sessions_close
from apps.audit.services import audit_record
from apps.storage.scope_events import scope_changed

TOKEN_PREFIX = "apt_"  # noqa: S105 (a public marker, not a secret)
_DISPLAY_PREFIX_LENGTH = 12


class ApiTokenError(Exception):
    """A token could not be used; the message is safe to show to the caller."""


class ApiTokenRefused(FieldError):
    """A token could not be created as asked; `field` names the input at fault."""


DEFAULT_TOKEN_SCOPES = (TokenScope.READ, TokenScope.WRITE)


def api_token_scopes_clean(scopes: Iterable[str]) -> list[str]:
    """Known scopes, deduplicated, in a fixed order; write and admin each imply read."""
    requested = set(scopes)
    unknown = requested - set(TokenScope.values)
    if unknown:
        raise ApiTokenRefused("scopes", f"unknown scope(s) {', '.join(sorted(unknown))}; use read, write, admin.")
    if not requested:
        raise ApiTokenRefused("scopes", "give the token at least one scope: read, write or admin.")
    requested.add(TokenScope.READ)
    return [scope for scope in TokenScope.values if scope in requested]


def _token_organization(*, user: AbstractBaseUser, organization: Organization | None) -> Organization | None:
    memberships = Membership.objects.filter(user=user).select_related("organization")
    if organization is not None:
        if not memberships.filter(organization=organization).exists():
            raise ApiTokenRefused("organization", "you are not a member of that organisation.", status=404)
        return organization
    choices = [membership.organization for membership in memberships[:2]]
    if len(choices) > 1:
        raise ApiTokenRefused("organization", "you belong to several organisations: say which one the token is for.")
    return choices[0] if choices else None


def _limits_from_parent(
    *, parent: ApiToken, scopes: list[str], organization: Organization | None, expires_at: datetime | None
) -> tuple[Organization | None, datetime]:
    """The organisation and expiry a token minted by `parent` gets; refuses anything broader or longer-lived."""
    broader = [scope for scope in scopes if scope not in parent.scopes]
    if broader:
        raise ApiTokenRefused(
            "scopes",
            f"a token can only create tokens with its own scopes or fewer ({', '.join(parent.scopes)}); "
            f"not {', '.join(broader)}.",
            status=403,
        )
    if parent.organization_id is not None:
        if organization is not None and organization.pk != parent.organization_id:
            raise ApiTokenRefused(
                "organization", "a token can only create tokens for its own organisation.", status=403
            )
        organization = parent.organization
    latest = timezone.now() + timedelta(days=settings.API_TOKEN_MINTED_MAX_DAYS)
    if parent.expires_at is not None:
        latest = min(latest, parent.expires_at)
    if expires_at is None:
        # Never "never expires" from a token: the child lives as long as its parent may, within the cap.
        return organization, latest
    if expires_at > latest:
        raise ApiTokenRefused(
            "expires_at",
            f"a token can only create tokens that expire no later than {latest:%Y-%m-%d %H:%M} UTC "
            "(its own expiry, or API_TOKEN_MINTED_MAX_DAYS from now).",
            status=403,
        )
    return organization, expires_at


def api_token_create(
    *,
    user: AbstractBaseUser,
    name: str,
    expires_at: datetime | None = None,
    scopes: Iterable[str] = DEFAULT_TOKEN_SCOPES,
    organization: Organization | None = None,
    parent: ApiToken | None = None,
) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw secret, which is never stored or shown again.

    `parent` is the token the request creating this one authenticated with (None for a session, the CLI or
    the admin): the new token is then never broader, nor longer-lived, nor in another organisation.
    """
    name = name.strip()
    if not name:
        raise ApiTokenRefused("name", "give the token a name that says what it is for.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ApiTokenRefused("expires_at", "the expiry must be in the future.")
    cleaned_scopes = api_token_scopes_clean(scopes)
    organization = _token_organization(user=user, organization=organization)
    if parent is not None:
        organization, expires_at = _limits_from_parent(
            parent=parent, scopes=cleaned_scopes, organization=organization, expires_at=expires_at
        )
    raw_key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        key_prefix=raw_key[:_DISPLAY_PREFIX_LENGTH],
        key_hash=key_digest(raw_key),
        expires_at=expires_at,
        organization=organization,
        scopes=cleaned_scopes,
        parent=parent,
    )
    audit_record(
        action="token.created",
        actor=user,
        obj=token,
        details={
            "name": token.name,
            "key_prefix": token.key_prefix,
            "expires_at": expires_at,
            "scopes": cleaned_scopes,
            "parent_token_id": parent.pk if parent is not None else None,
        },
    )
    return token, raw_key


def api_token_expiry_from_days(days: int | None) -> datetime | None:
    """Expiry time for a lifetime in days; None or 0 means no expiry."""
    if not days:
        return None
    if days < 0:
        raise ApiTokenRefused("expires_in_days", "must be a positive number of days.")
    return timezone.now() + timedelta(days=days)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token and every token it minted; open WebSockets using any of them are closed after commit."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="token.revoked", obj=token, details={"name": token.name, "key_prefix": token.key_prefix})
        token_id = token.pk
        transaction.on_commit(lambda: websocket_sessions_close(token_ids=[token_id], reason="token revoked"))
        for child in ApiToken.objects.filter(parent=token, revoked_at__isnull=True):
            api_token_revoke(token=child)
    return token


def api_token_authenticate(*, raw_key: str) -> ApiToken:
    """Return the active token for a raw key or raise ApiTokenError saying why it is refused."""
    if not raw_key.startswith(TOKEN_PREFIX):
        raise ApiTokenError("Invalid API token.")
    digest = key_digest(raw_key)
    token = api_token_by_digest(digest)  # kept per process, exact: apps/access/token_cache.py
    if token is None:
        raise ApiTokenError("Invalid API token.")
    now = timezone.now()
    if token.is_revoked:
        raise ApiTokenError("API token has been revoked.")
    if token.is_expired(now=now):
        raise ApiTokenError("API token has expired.")
    if not token.user.is_active:
        raise ApiTokenError("The token's user is inactive.")
    # The user object is this request's own (loaded with the token): what it may reach narrows to the token's
    # organisation (apps/access/selectors.py).
    token.user.api_token_organization_id = token.organization_id
    resolution = timedelta(seconds=settings.API_TOKEN_LAST_USED_RESOLUTION_SECONDS)
    # Write last_used_at at most once per resolution window, not on every request.
    if token.last_used_at is None or now - token.last_used_at >= resolution:
        ApiToken.objects.filter(pk=token.pk).update(last_used_at=now)
        token.last_used_at = now
        api_token_used(digest, now)
    return token


def organization_create(*, name: str, slug: str, admin: AbstractBaseUser | None = None) -> Organization:
    """Create an organisation (with its default policy), optionally with its first admin."""
    organization = Organization.objects.create(name=name, slug=slug)  # its default policy: signals.py
    if admin is not None:
        Membership.objects.create(organization=organization, user=admin, role=MembershipRole.ADMIN)
    return organization


def membership_set(*, organization: Organization, user: AbstractBaseUser, role: str) -> Membership:
    """Give the user this role in the organisation (adding them if needed)."""
    membership, _ = Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    return membership


# Organisations, members, teams ----------------------------------------------------------------------------

DEFAULT_POLICY_NAME = "All members read everything"


class AccessError(FieldError):
    """A change to organisations, members, teams, policies or shares that cannot be made (`field` says why)."""


def organization_create_with_admin(*, name: str, slug: str, admin: AbstractBaseUser) -> Organization:
    """Create an organisation whose creator is its admin, with the editable default policy (every member reads
    every series), so a small team works at once; admins narrow or delete it."""
    name, slug = name.strip(), slug.strip()
    if not name:
        raise AccessError("name", "give the organisation a name.")
    if Organization.objects.filter(slug=slug).exists():
        raise AccessError("slug", f"the slug {slug!r} is taken; choose another.", status=409)
    with transaction.atomic():
        organization = organization_create(name=name, slug=slug, admin=admin)
        audit_record(action="organization.created", actor=admin, obj=organization, organization=organization)
    return organization


def organization_default_policy_create(*, organization: Organization) -> DataPolicy:
    """The default policy of a new organisation: every member reads every series of every source."""
    return DataPolicy.objects.create(organization=organization, name=DEFAULT_POLICY_NAME, all_members=True)


def _admin_count(organization: Organization) -> int:
    return Membership.objects.filter(organization=organization, role=MembershipRole.ADMIN).count()


def member_add(*, organization: Organization, username: str, role: str) -> Membership:
    """Add an existing user to the organisation with a role; 409 when they are a member already."""
    if role not in MembershipRole.values:
        raise AccessError("role", f"must be one of {', '.join(MembershipRole.values)}.")
    user = get_user_model().objects.filter(username=username, is_active=True).first()
    if user is None:
        raise AccessError("username", f"no active user named {username!r}.")
    if Membership.objects.filter(organization=organization, user=user).exists():
        raise AccessError("username", f"{username!r} is a member already; change their role instead.", status=409)
    membership = Membership.objects.create(organization=organization, user=user, role=role)
    audit_record(
        action="member.added", obj=organization, organization=organization, details={"username": username, "role": role}
    )
    return membership


def member_role_set(*, membership: Membership, role: str) -> Membership:
    """Change a member's role; the last admin cannot step down (someone must be able to manage the members)."""
    if role not in MembershipRole.values:
        raise AccessError("role", f"must be one of {', '.join(MembershipRole.values)}.")
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=membership.organization_id).first()
        if (
            membership.role == MembershipRole.ADMIN
            and role != MembershipRole.ADMIN
            and _admin_count(membership.organization) <= 1
        ):
            raise AccessError(
                "role", "the organisation's last admin cannot step down; make someone else admin first.", status=409
            )
        before = membership.role
        membership.role = role
        membership.save(update_fields=["role"])
        audit_record(
            action="member.role_changed",
            obj=membership.organization,
            organization=membership.organization,
            details={"username": membership.user.get_username(), "from": before, "to": role},
        )
    return membership


def member_remove(*, membership: Membership) -> None:
    """Remove a member, from the organisation's teams, policies and shares too; never the last admin."""
    organization = membership.organization
    with transaction.atomic():
        Organization.objects.select_for_update().filter(pk=organization.pk).first()
        if membership.role == MembershipRole.ADMIN and _admin_count(organization) <= 1:
            raise AccessError("username", "the organisation's last admin cannot be removed.", status=409)
        user = membership.user
        for team in Team.objects.filter(organization=organization, group__user=user):
            team.group.user_set.remove(user)
        for policy in DataPolicy.objects.filter(organization=organization, users=user):
            policy.users.remove(user)
        membership.delete()
        audit_record(
            action="member.removed",
            obj=organization,
            organization=organization,
            details={"username": user.get_username(), "role": membership.role},
        )


def team_create(*, organization: Organization, name: str, slug: str) -> Team:
    """Create a team (and the Django group that carries its object permissions)."""
    name, slug = name.strip(), slug.strip()
    if not name:
        raise AccessError("name", "give the team a name.")
    if Team.objects.filter(organization=organization, slug=slug).exists():
        raise AccessError("slug", f"this organisation has a team {slug!r} already.", status=409)
    with transaction.atomic():
        group = Group.objects.create(name=f"team:{organization.pk}:{slug}:{secrets.token_hex(4)}")
        team = Team.objects.create(organization=organization, name=name, slug=slug, group=group)
        audit_record(action="team.created", obj=team, details={"slug": slug, "name": name})
        return team


def team_update(*, team: Team, name: str) -> Team:
    """Rename a team (its slug, which policies and shares name, stays)."""
    if not name.strip():
        raise AccessError("name", "give the team a name.")
    before = team.name
    team.name = name.strip()
    team.save(update_fields=["name"])
    audit_record(action="team.renamed", obj=team, details={"from": before, "to": team.name})
    return team


def team_delete(*, team: Team) -> None:
    """Delete a team: its members lose what its policies and shares gave them."""
    user_ids = list(team.group.user_set.values_list("pk", flat=True))
    with transaction.atomic():
        group = team.group
        audit_record(action="team.deleted", obj=team, details={"slug": team.slug})
        team.delete()
        group.delete()
        scope_changed(user_ids=user_ids)


def team_member_add(*, team: Team, username: str) -> AbstractBaseUser:
    """Add a member of the team's organisation to the team."""
    membership = (
        Membership.objects.select_related("user").filter(organization_id=team.organization_id, user__username=username)
    ).first()
    if membership is None:
        raise AccessError("username", f"{username!r} is not a member of this organisation.")
    team.group.user_set.add(membership.user)
    audit_record(action="team.member_added", obj=team, details={"team": team.slug, "username": username})
    return membership.user


def team_member_remove(*, team: Team, user: AbstractBaseUser) -> None:
    """Take a user out of a team."""
    team.group.user_set.remove(user)
    audit_record(action="team.member_removed", obj=team, details={"team": team.slug, "username": user.get_username()})


# Data policies ----------------------------------------------------------------------------------------------


def _policy_subjects(
    organization: Organization, usernames: list[str] | None, team_slugs: list[str] | None
) -> tuple[list, list[Team]]:
    users = []
    if usernames:
        members = {
            membership.user.username: membership.user
            for membership in Membership.objects.select_related("user").filter(
                organization=organization, user__username__in=usernames
            )
        }
        missing = [name for name in usernames if name not in members]
        if missing:
            raise AccessError("users", f"not members of this organisation: {', '.join(sorted(missing))}.")
        users = [members[name] for name in usernames]
    teams = []
    if team_slugs:
        found = {team.slug: team for team in Team.objects.filter(organization=organization, slug__in=team_slugs)}
        missing = [slug for slug in team_slugs if slug not in found]
        if missing:
            raise AccessError("teams", f"no such teams in this organisation: {', '.join(sorted(missing))}.")
        teams = [found[slug] for slug in team_slugs]
    return users, teams


def _policy_source(organization: Organization, slug: str | None):
    from apps.sources.models import Source

    if slug is None:
        return None
    source = Source.objects.filter(organization=organization, slug=slug).first()
    if source is None:
        raise AccessError("source", f"this organisation has no source {slug!r}.")
    return source


def data_policy_labels_clean(labels) -> dict[str, list[str]]:
    """`{"facility": ["f1", "f2"]}`: label names to non-empty lists of string values."""
    if labels is None:
        return {}
    if not isinstance(labels, dict):
        raise AccessError("labels", 'must be an object of label name to a list of values, e.g. {"facility": ["f1"]}.')
    cleaned = {}
    for key, values in labels.items():
        if not isinstance(key, str) or not key:
            raise AccessError("labels", "label names must be non-empty strings.")
        if not isinstance(values, list) or not values or not all(isinstance(value, str) for value in values):
            raise AccessError(f"labels.{key}", "must be a non-empty list of string values.")
        cleaned[key] = sorted(set(values))
    return cleaned


def data_policy_metrics_clean(metrics) -> list[str] | None:
    """None (every metric) or a non-empty list of metric names."""
    if metrics is None:
        return None
    if not isinstance(metrics, list) or not metrics or not all(isinstance(m, str) and m for m in metrics):
        raise AccessError("metrics", "must be null (every metric) or a non-empty list of metric names.")
    return sorted(set(metrics))


def data_policy_description(policy: DataPolicy) -> dict:
    """A policy as the audit log records it (what it granted, to whom)."""
    return {
        "name": policy.name,
        "source": policy.source.slug if policy.source_id else None,
        "all_members": policy.all_members,
        "users": sorted(user.get_username() for user in policy.users.all()) if policy.pk else [],
        "teams": sorted(team.slug for team in policy.teams.all()) if policy.pk else [],
        "labels": policy.labels,
        "metrics": policy.metrics,
    }


def data_policy_create(
    *,
    organization: Organization,
    name: str,
    source: str | None = None,
    users: list[str] | None = None,
    teams: list[str] | None = None,
    all_members: bool = False,
    labels=None,
    metrics=None,
) -> DataPolicy:
    """Create a policy; its subjects may read at once (live connections re-scope)."""
    if not name.strip():
        raise AccessError("name", "give the policy a name.")
    source_object = _policy_source(organization, source)
    user_objects, team_objects = _policy_subjects(organization, users, teams)
    with transaction.atomic():
        policy = DataPolicy.objects.create(
            organization=organization,
            name=name.strip(),
            source=source_object,
            all_members=all_members,
            labels=data_policy_labels_clean(labels),
            metrics=data_policy_metrics_clean(metrics),
        )
        policy.users.set(user_objects)
        policy.teams.set(team_objects)
        audit_record(action="policy.created", obj=policy, details=data_policy_description(policy))
    return policy


_UNSET = object()


def data_policy_update(
    *,
    policy: DataPolicy,
    name=_UNSET,
    source=_UNSET,
    users=_UNSET,
    teams=_UNSET,
    all_members=_UNSET,
    labels=_UNSET,
    metrics=_UNSET,
) -> DataPolicy:
    """Change the given fields of a policy; takes effect at once for queries and live connections."""
    organization = policy.organization
    before = data_policy_description(policy)
    with transaction.atomic():
        if name is not _UNSET:
            if not str(name).strip():
                raise AccessError("name", "give the policy a name.")
            policy.name = str(name).strip()
        if source is not _UNSET:
            policy.source = _policy_source(organization, source)
        if all_members is not _UNSET:
            policy.all_members = bool(all_members)
        if labels is not _UNSET:
            policy.labels = data_policy_labels_clean(labels)
        if metrics is not _UNSET:
            policy.metrics = data_policy_metrics_clean(metrics)
        user_objects, team_objects = _policy_subjects(
            organization, None if users is _UNSET else users, None if teams is _UNSET else teams
        )
        policy.save()
        if users is not _UNSET:
            policy.users.set(user_objects)
        if teams is not _UNSET:
            policy.teams.set(team_objects)
        after = data_policy_description(policy)
        audit_record(action="policy.changed", obj=policy, details={"before": before, "after": after})
    return policy


def data_policy_delete(*, policy: DataPolicy) -> None:
    """Delete a policy; what it alone granted is no longer readable (deny by default)."""
    with transaction.atomic():
        audit_record(action="policy.deleted", obj=policy, details=data_policy_description(policy))
        policy.delete()
