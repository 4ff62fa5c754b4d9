"""Verify JWTs from the provider: ID tokens at sign-in and access tokens on API requests."""

from __future__ import annotations

from typing import Any

import jwt
from django.conf import settings

from apps.sso.config import issuer
from apps.sso.provider import ProviderError, signing_key


class TokenError(Exception):
    """A token was refused; the message says why and is safe to show to the caller."""


def jwt_shaped(value: str) -> bool:
    """Whether a bearer value looks like a JWT (three base64url parts, a JSON header) rather than an API token."""
    return value.startswith("eyJ") and value.count(".") == 2


def token_verify(token: str, *, audience: str, nonce: str | None = None, require_nonce: bool = False) -> dict[str, Any]:
    """The claims of a JWT whose signature (provider's JWKS), issuer, audience, expiry (and nonce) check out.

    Only the asymmetric algorithms of OIDC_SIGN_ALGORITHMS are accepted: never `none`, never HS256 (whose
    "key" would be public material).
    """
    try:
        header = jwt.get_unverified_header(token)
    except jwt.DecodeError:
        raise TokenError("the token is not a well-formed JWT") from None
    algorithm = header.get("alg")
    if algorithm not in settings.OIDC_SIGN_ALGORITHMS:
        raise TokenError(
            f"the token is signed with {algorithm!r}; accepted: {', '.join(settings.OIDC_SIGN_ALGORITHMS)}"
        )
    try:
        key = signing_key(str(header.get("kid", "")))
    except ProviderError as error:
        raise TokenError(f"the provider's signing keys are unavailable: {error}") from None
    if key is None:
        raise TokenError("the token's signing key (kid) is not one the provider publishes")
    try:
        claims = jwt.decode(
            token,
            key,
            algorithms=[algorithm],
            audience=audience,
            issuer=issuer(),
            leeway=settings.OIDC_CLOCK_SKEW_SECONDS,
            options={"require": ["exp", "iat", "iss", "aud", "sub"]},
        )
    except jwt.ExpiredSignatureError:
        raise TokenError("the token has expired") from None
    except jwt.InvalidAudienceError:
        raise TokenError(f"the token is not meant for this service (audience is not {audience!r})") from None
    except jwt.InvalidIssuerError:
        raise TokenError(f"the token was not issued by {issuer()}") from None
    except jwt.InvalidSignatureError:
        raise TokenError("the token's signature does not verify") from None
    except jwt.MissingRequiredClaimError as error:
        raise TokenError(f"the token has no {error.claim!r} claim") from None
    except jwt.ImmatureSignatureError:
        raise TokenError("the token is not valid yet") from None
    except jwt.InvalidTokenError as error:
        raise TokenError(f"the token is invalid: {error}") from None
    if (require_nonce or nonce is not None) and claims.get("nonce") != nonce:
        raise TokenError("the ID token's nonce does not match this sign-in")
    return claims


def id_token_verify(token: str, *, nonce: str | None) -> dict[str, Any]:
    """An ID token's claims: for our client id, from our issuer, signed by the provider, with our nonce."""
    claims = token_verify(token, audience=settings.OIDC_CLIENT_ID, nonce=nonce, require_nonce=True)
    audiences = claims["aud"] if isinstance(claims["aud"], list) else [claims["aud"]]
    # OIDC Core 3.1.3.7: with several audiences the authorized party must be us.
    if len(audiences) > 1 and claims.get("azp") != settings.OIDC_CLIENT_ID:
        raise TokenError("the ID token names several audiences but its azp is not this client")
    return claims
