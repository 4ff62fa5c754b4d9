"""Writes for access: API tokens (create, revoke, authenticate), organisations and memberships."""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from analytics_platform.field_errors import FieldError
from analytics_platform.keys import key_digest
from apps.access.models import ApiToken, Membership, MembershipRole, Organization, TokenScope
from apps.access.websocket_sessions import websocket_sessions_close
from apps.audit.services import audit_record

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
    token = ApiToken.objects.select_related("user", "organization").filter(key_hash=key_digest(raw_key)).first()
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
    return token


def organization_create(*, name: str, slug: str, admin: AbstractBaseUser | None = None) -> Organization:
    """Create an organisation, optionally with its first admin."""
    organization = Organization.objects.create(name=name, slug=slug)
    if admin is not None:
        Membership.objects.create(organization=organization, user=admin, role=MembershipRole.ADMIN)
    return organization


def membership_set(*, organization: Organization, user: AbstractBaseUser, role: str) -> Membership:
    """Give the user this role in the organisation (adding them if needed)."""
    membership, _ = Membership.objects.update_or_create(organization=organization, user=user, defaults={"role": role})
    return membership
