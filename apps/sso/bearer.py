"""API requests carrying a JWT access token from the provider: who they act as and with which scopes."""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from django.conf import settings
from django.contrib.auth.models import AbstractBaseUser

from apps.sso.config import issuer
from apps.sso.models import OidcIdentity, ServiceClient
from apps.sso.tokens import TokenError, token_verify

PLATFORM_SCOPES = ("read", "write", "admin")


@dataclass(frozen=True)
class ProviderToken:
    """`request.auth` for a provider-issued token: `kind` is `user` or `service`.

    `scopes` are the platform's (read, write, admin, as API tokens have them) that the token's own scopes grant:
    `<OIDC_API_SCOPE_PREFIX>read` and so on; write and admin each imply read. `token_scopes` are the token's own.
    `organization_id` binds it to one organisation, as a personal API token's organisation does: the service
    client's, or the one the OIDC_API_ORGANIZATION_CLAIM claim of a person's token names.
    """

    kind: str
    subject: str
    client_id: str
    scopes: frozenset[str]
    token_scopes: frozenset[str]
    claims: dict[str, Any]
    organization_id: int | None = None  # the one organisation it acts in; None: all of its user's

    def has_scope(self, scope: str) -> bool:
        """Whether the token grants the platform scope `scope` (read, write, admin)."""
        return scope in self.scopes


def platform_scopes(token_scopes: frozenset[str]) -> frozenset[str]:
    """The platform scopes a token's scopes grant (`api:write` grants write and read with the default prefix)."""
    prefix = settings.OIDC_API_SCOPE_PREFIX
    granted = {scope.removeprefix(prefix) for scope in token_scopes if scope.startswith(prefix)}
    granted &= set(PLATFORM_SCOPES)
    if granted:
        granted.add("read")
    return frozenset(granted)


def _scopes(claims: dict[str, Any]) -> frozenset[str]:
    # `scope` (RFC 9068: space-separated) or Entra ID's `scp`; Entra puts app roles of client credentials in `roles`.
    values: list[str] = []
    for name in ("scope", "scp", "roles"):
        value = claims.get(name)
        if isinstance(value, str):
            values += re.split(r"\s+", value.strip())
        elif isinstance(value, list):
            values += [str(item) for item in value]
    return frozenset(value for value in values if value)


def _client_id(claims: dict[str, Any]) -> str:
    for name in settings.OIDC_CLIENT_ID_CLAIMS:
        if claims.get(name):
            return str(claims[name])
    return ""


def provider_token_authenticate(*, token: str) -> tuple[AbstractBaseUser, ProviderToken]:
    """The user (a person who signed in here, or a service client's account) a verified access token acts as."""
    claims = token_verify(token, audience=settings.OIDC_API_AUDIENCE)
    subject, client_id, scopes = str(claims["sub"]), _client_id(claims), _scopes(claims)
    identity = OidcIdentity.objects.select_related("user").filter(issuer=issuer(), subject=subject).first()
    if identity is not None:
        user, kind = identity.user, "user"
    else:
        service = ServiceClient.objects.select_related("user").filter(client_id=client_id, enabled=True).first()
        if service is None or service.expected_subject != subject:
            raise TokenError(
                "the token's subject is neither a user who has signed in here nor a registered service client"
            )
        user, kind = service.user, "service"
    granted = platform_scopes(scopes)
    if kind == "service" and service.scopes.strip():
        granted &= frozenset(service.scopes.split())
    if not user.is_active:
        raise TokenError("the token's user is inactive")
    organization_id = service.organization_id if kind == "service" else _claimed_organization(user, claims)
    principal = ProviderToken(
        kind=kind,
        subject=subject,
        client_id=client_id,
        scopes=granted,
        token_scopes=scopes,
        claims=claims,
        organization_id=organization_id,
    )
    # What selectors read to keep a request inside its token's organisation (as for personal API tokens).
    user.api_token_organization_id = organization_id
    return user, principal


def _claimed_organization(user: AbstractBaseUser, claims: dict[str, Any]) -> int | None:
    """The organisation a person's token names in OIDC_API_ORGANIZATION_CLAIM (None when that is not set). The
    same refusal whether the organisation does not exist or the person is not in it: a token cannot probe for
    another tenant's slug."""
    from apps.access.models import Membership

    name = settings.OIDC_API_ORGANIZATION_CLAIM
    if not name:
        return None
    slug = claims.get(name)
    if not isinstance(slug, str) or not slug:
        raise TokenError(f"the token names no organisation (claim '{name}')")
    membership = Membership.objects.filter(user=user, organization__slug=slug).only("organization_id").first()
    if membership is None:
        raise TokenError(f"the token's organisation ('{name}' claim) is not one of its user's")
    return membership.organization_id
