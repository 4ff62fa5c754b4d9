"""Writes for access: API tokens (create, revoke, authenticate), organisations and memberships."""

from __future__ import annotations

import secrets
from datetime import datetime, timedelta

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser
from django.utils import timezone

from analytics_platform.keys import key_digest
from apps.access.models import ApiToken, Membership, MembershipRole, Organization
from apps.audit.services import audit_record

TOKEN_PREFIX = "apt_"  # noqa: S105 (a public marker, not a secret)
_DISPLAY_PREFIX_LENGTH = 12


class ApiTokenError(Exception):
    """A token could not be used; the message is safe to show to the caller."""


def api_token_create(*, user: AbstractBaseUser, name: str, expires_at: datetime | None = None) -> tuple[ApiToken, str]:
    """Create a token and return it with its raw secret, which is never stored or shown again."""
    name = name.strip()
    if not name:
        raise ValueError("name: give the token a name that says what it is for.")
    if expires_at is not None and expires_at <= timezone.now():
        raise ValueError("expires_at: the expiry must be in the future.")
    raw_key = TOKEN_PREFIX + secrets.token_urlsafe(32)
    token = ApiToken.objects.create(
        user=user,
        name=name[:100],
        key_prefix=raw_key[:_DISPLAY_PREFIX_LENGTH],
        key_hash=key_digest(raw_key),
        expires_at=expires_at,
    )
    audit_record(
        action="token.created",
        actor=user,
        obj=token,
        details={"name": token.name, "key_prefix": token.key_prefix, "expires_at": expires_at},
    )
    return token, raw_key


def api_token_expiry_from_days(days: int | None) -> datetime | None:
    """Expiry time for a lifetime in days; None or 0 means no expiry."""
    if not days:
        return None
    if days < 0:
        raise ValueError("expires_in_days: must be a positive number of days.")
    return timezone.now() + timedelta(days=days)


def api_token_revoke(*, token: ApiToken) -> ApiToken:
    """Revoke a token; revoking twice keeps the first revocation time."""
    if token.revoked_at is None:
        token.revoked_at = timezone.now()
        token.save(update_fields=["revoked_at"])
        audit_record(action="token.revoked", obj=token, details={"name": token.name, "key_prefix": token.key_prefix})
    return token


def api_token_authenticate(*, raw_key: str) -> ApiToken:
    """Return the active token for a raw key or raise ApiTokenError saying why it is refused."""
    if not raw_key.startswith(TOKEN_PREFIX):
        raise ApiTokenError("Invalid API token.")
    token = ApiToken.objects.select_related("user").filter(key_hash=key_digest(raw_key)).first()
    if token is None:
        raise ApiTokenError("Invalid API token.")
    now = timezone.now()
    if token.is_revoked:
        raise ApiTokenError("API token has been revoked.")
    if token.is_expired(now=now):
        raise ApiTokenError("API token has expired.")
    if not token.user.is_active:
        raise ApiTokenError("The token's user is inactive.")
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
