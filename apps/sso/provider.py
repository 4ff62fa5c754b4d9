"""The provider's metadata (discovery) and signing keys (JWKS), fetched over HTTP and cached in the process.

JWKS caching is written here rather than with PyJWT's PyJWKClient for one measured-by-reasoning reason: a
token with an unknown `kid` must make us fetch the key set again (the provider rotated its keys), but an
attacker sending made-up kids must not make every request fetch it. Refetches for unknown kids are therefore
spaced by OIDC_JWKS_MIN_REFETCH_SECONDS, and the whole set expires after OIDC_JWKS_CACHE_SECONDS so a key the
provider withdrew stops verifying.
"""

from __future__ import annotations

import threading
import time
from dataclasses import dataclass, field
from typing import Any

import jwt
import requests
from django.conf import settings

from apps.sso.config import issuer

DISCOVERY_PATH = "/.well-known/openid-configuration"


class ProviderError(Exception):
    """The provider could not be reached or answered something unusable; the message says what."""


@dataclass(frozen=True)
class ProviderMetadata:
    """The parts of the discovery document this app uses."""

    issuer: str
    authorization_endpoint: str
    token_endpoint: str
    jwks_uri: str
    userinfo_endpoint: str = ""
    end_session_endpoint: str = ""
    code_challenge_methods: tuple[str, ...] = ()
    id_token_algorithms: tuple[str, ...] = ()
    raw: dict[str, Any] = field(default_factory=dict, compare=False, repr=False)


_lock = threading.Lock()
_metadata: dict[str, tuple[float, ProviderMetadata]] = {}


def http_get_json(url: str) -> dict[str, Any]:
    """GET a JSON object from the provider; ProviderError says what went wrong."""
    try:
        response = requests.get(url, timeout=settings.OIDC_HTTP_TIMEOUT, verify=settings.OIDC_VERIFY_TLS)
    except requests.RequestException as error:
        raise ProviderError(f"cannot reach {url}: {error}") from None
    if response.status_code != 200:
        raise ProviderError(f"{url} answered HTTP {response.status_code}")
    try:
        document = response.json()
    except ValueError:
        raise ProviderError(f"{url} did not answer JSON") from None
    if not isinstance(document, dict):
        raise ProviderError(f"{url} did not answer a JSON object")
    return document


def metadata_parse(document: dict[str, Any], *, expected_issuer: str) -> ProviderMetadata:
    """Check a discovery document against the configured issuer and keep what we use."""
    published = str(document.get("issuer", "")).rstrip("/")
    if published != expected_issuer:
        raise ProviderError(
            f"the discovery document's issuer is {document.get('issuer')!r}, not OIDC_ISSUER {expected_issuer!r}"
        )
    missing = [key for key in ("authorization_endpoint", "token_endpoint", "jwks_uri") if not document.get(key)]
    if missing:
        raise ProviderError(f"the discovery document has no {', '.join(missing)}")
    return ProviderMetadata(
        issuer=str(document["issuer"]),
        authorization_endpoint=document["authorization_endpoint"],
        token_endpoint=document["token_endpoint"],
        jwks_uri=document["jwks_uri"],
        userinfo_endpoint=document.get("userinfo_endpoint") or "",
        end_session_endpoint=document.get("end_session_endpoint") or "",
        code_challenge_methods=tuple(document.get("code_challenge_methods_supported") or ()),
        id_token_algorithms=tuple(document.get("id_token_signing_alg_values_supported") or ()),
        raw=document,
    )


def provider_metadata(*, refresh: bool = False) -> ProviderMetadata:
    """The configured provider's metadata from `<issuer>/.well-known/openid-configuration`, cached for an hour."""
    expected = issuer()
    now = time.monotonic()
    with _lock:
        cached = _metadata.get(expected)
    if cached and not refresh and now - cached[0] < settings.OIDC_DISCOVERY_CACHE_SECONDS:
        return cached[1]
    metadata = metadata_parse(http_get_json(expected + DISCOVERY_PATH), expected_issuer=expected)
    with _lock:
        _metadata[expected] = (now, metadata)
    return metadata


class JwksCache:
    """Signing keys of one JWKS URL by kid, refetched on an unknown kid at most every few seconds."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.keys: dict[str, jwt.PyJWK] = {}
        self.fetched_at = float("-inf")
        self.lock = threading.Lock()

    def _fetch(self) -> None:
        document = http_get_json(self.url)
        keys: dict[str, jwt.PyJWK] = {}
        for entry in document.get("keys") or []:
            if not isinstance(entry, dict) or entry.get("use", "sig") != "sig":
                continue
            try:
                key = jwt.PyJWK(entry)
            except (jwt.PyJWKError, jwt.InvalidKeyError):
                continue  # a key type or algorithm PyJWT cannot use; the others still count
            keys[str(entry.get("kid", ""))] = key
        self.keys = keys
        self.fetched_at = time.monotonic()

    def key(self, kid: str) -> jwt.PyJWK | None:
        """The key with this kid (fetching the set again when it is unknown), or None."""
        with self.lock:
            age = time.monotonic() - self.fetched_at
            if age >= settings.OIDC_JWKS_CACHE_SECONDS or (
                kid not in self.keys and age >= settings.OIDC_JWKS_MIN_REFETCH_SECONDS
            ):
                self._fetch()
            if kid in self.keys:
                return self.keys[kid]
            # A token without kid is fine while the provider publishes one key only.
            if not kid and len(self.keys) == 1:
                return next(iter(self.keys.values()))
            return None


_jwks: dict[str, JwksCache] = {}


def signing_key(kid: str) -> jwt.PyJWK | None:
    """The provider's public key for `kid`, or None when the provider does not publish it."""
    url = provider_metadata().jwks_uri
    with _lock:
        cache = _jwks.setdefault(url, JwksCache(url))
    return cache.key(kid)


def provider_caches_clear() -> None:
    """Forget discovery documents and keys (tests; a changed configuration)."""
    with _lock:
        _metadata.clear()
        _jwks.clear()
