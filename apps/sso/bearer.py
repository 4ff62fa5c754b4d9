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
    """

    kind: str
    subject: str
    client_id: str
    scopes: frozenset[str]
    token_scopes: frozenset[str]
    claims: dict[str, Any]

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
    principal = ProviderToken(
        kind=kind, subject=subject, client_id=client_id, scopes=granted, token_scopes=scopes, claims=claims
    )
    return user, principal
