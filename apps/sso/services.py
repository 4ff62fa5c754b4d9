"""Writes for SSO: the user behind a provider identity (found, linked or created just in time) and the
organisation memberships its groups claim grants, applied at every sign-in."""

from __future__ import annotations

import logging
import re
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone

from apps.access.models import Organization
from apps.sso.audit import sso_audit
from apps.sso.config import issuer
from apps.sso.memberships import sso_memberships_sync
from apps.sso.models import OidcIdentity
from apps.storage.scope_events import scope_changed

logger = logging.getLogger(__name__)

_USERNAME_ALLOWED = re.compile(r"[^\w.@+-]")


class SignInRefused(Exception):
    """The provider vouched for someone this platform will not let in; the message says why."""


def claim_text(claims: dict[str, Any], name: str) -> str:
    """A claim as text ('' when absent)."""
    value = claims.get(name) if name else None
    return str(value).strip() if value not in (None, "") else ""


def claim_groups(claims: dict[str, Any]) -> list[str]:
    """The groups claim as a sorted list of names (a list, or one space/comma-separated string)."""
    value = claims.get(settings.OIDC_CLAIM_GROUPS)
    if value is None:
        return []
    if isinstance(value, str):
        value = re.split(r"[\s,]+", value)
    if not isinstance(value, list | tuple):
        return []
    return sorted({str(group).strip() for group in value if str(group).strip()})


def _username_for(claims: dict[str, Any], email: str) -> str:
    User = get_user_model()
    base = claim_text(claims, settings.OIDC_CLAIM_USERNAME) or email.split("@")[0] or f"sso-{claims['sub']}"
    base = _USERNAME_ALLOWED.sub("-", base)[:140] or "sso-user"
    candidate, suffix = base, 1
    while User.objects.filter(username__iexact=candidate).exists():
        suffix += 1
        candidate = f"{base}-{suffix}"
    return candidate


def _names(claims: dict[str, Any]) -> tuple[str, str]:
    given, family = claim_text(claims, "given_name"), claim_text(claims, "family_name")
    if given or family:
        return given[:150], family[:150]
    first, _, last = claim_text(claims, settings.OIDC_CLAIM_NAME).partition(" ")
    return first[:150], last[:150]


def _user_for_identity(claims: dict[str, Any], email: str) -> tuple[AbstractBaseUser, bool]:
    """The user to link a first-time identity to: an existing user with this verified email, or a new one."""
    User = get_user_model()
    if email and claims.get("email_verified") is True:
        # Only a verified address links, and never to a superuser: the break-glass admin stays local.
        existing = list(User.objects.filter(email__iexact=email, is_superuser=False, oidc_identities__isnull=True)[:2])
        if len(existing) == 1:
            return existing[0], False
    if not settings.OIDC_CREATE_USERS:
        raise SignInRefused("there is no account for this identity here (OIDC_CREATE_USERS is off)")
    user = User.objects.create_user(username=_username_for(claims, email), email=email)
    user.set_unusable_password()
    user.save(update_fields=["password"])
    return user, True


@transaction.atomic
def sso_user_sign_in(*, claims: dict[str, Any], request: Any = None) -> AbstractBaseUser:
    """The user for verified ID-token claims, with profile and memberships brought in line with the claims."""
    subject = claim_text(claims, "sub")
    if not subject:
        raise SignInRefused("the ID token has no subject (sub)")
    email = claim_text(claims, settings.OIDC_CLAIM_EMAIL).lower()
    groups = claim_groups(claims)
    identity = OidcIdentity.objects.select_related("user").filter(issuer=issuer(), subject=subject).first()
    created = False
    if identity is None:
        user, created = _user_for_identity(claims, email)
        identity = OidcIdentity.objects.create(user=user, issuer=issuer(), subject=subject)
    user = identity.user
    if not user.is_active:
        raise SignInRefused(f"the account {user.get_username()!r} is deactivated here")
    first_name, last_name = _names(claims)
    updates = {"email": email or user.email, "first_name": first_name, "last_name": last_name}
    changed = [name for name, value in updates.items() if value and getattr(user, name) != value]
    for name in changed:
        setattr(user, name, updates[name])
    if changed:
        user.save(update_fields=changed)
    identity.groups = groups
    identity.last_sign_in_at = timezone.now()
    identity.save(update_fields=["groups", "last_sign_in_at"])
    changes = sso_memberships_sync(user=user, groups=groups) if settings.OIDC_SYNC_MEMBERSHIPS else []
    sso_audit(
        action="sso.sign_in",
        actor=user,
        request=request,
        details={"issuer": issuer(), "subject": subject, "groups": groups, "user_created": created},
    )
    for change in changes:
        action = f"sso.{change.change}" if change.change.startswith("team_") else f"sso.membership_{change.change}"
        sso_audit(
            action=action,
            actor=user,
            organization=Organization.objects.filter(slug=change.organization).first(),
            request=request,
            details={
                "role": change.role,
                "previous_role": change.previous_role,
                "team": change.team,
                "reason": change.reason,
                "groups": groups,
            },
        )
    if changes:
        scope_changed(user_ids=[user.pk])
    return user
