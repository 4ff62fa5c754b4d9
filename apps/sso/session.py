"""An SSO sign-in's provider tokens in the Django session, and the refresh that keeps (or ends) the session."""

from __future__ import annotations

import time
from typing import Any

import requests
from django.conf import settings
from django.core.cache import cache
from django.http import HttpRequest

from apps.sso.config import CLIENT_SECRET_BASIC, issuer
from apps.sso.provider import ProviderError, provider_metadata

SESSION_ISSUER = "sso_issuer"
SESSION_REFRESH_TOKEN = "sso_refresh_token"  # noqa: S105 (a session key name)
SESSION_ACCESS_EXPIRES_AT = "sso_access_expires_at"
SESSION_ID_TOKEN = "oidc_id_token"  # the name mozilla-django-oidc uses  # noqa: S105


def sso_session(request: HttpRequest) -> bool:
    """Whether the signed-in session was opened through the provider."""
    return bool(request.session.get(SESSION_ISSUER))


def session_tokens_store(session: Any, token_response: dict[str, Any]) -> None:
    """Keep what the refresh needs: the refresh token (when the provider rotated it), expiry, ID token."""
    session[SESSION_ISSUER] = issuer()
    if token_response.get("refresh_token"):
        session[SESSION_REFRESH_TOKEN] = token_response["refresh_token"]
    if token_response.get("id_token"):
        session[SESSION_ID_TOKEN] = token_response["id_token"]
    lifetime = int(token_response.get("expires_in") or settings.OIDC_SESSION_CHECK_SECONDS)
    session[SESSION_ACCESS_EXPIRES_AT] = time.time() + min(lifetime, settings.OIDC_SESSION_CHECK_SECONDS)


def token_endpoint_post(data: dict[str, str]) -> requests.Response:
    """POST to the token endpoint with the client's credentials (basic or in the body, OIDC_TOKEN_AUTH_METHOD)."""
    body = dict(data)
    auth = None
    if settings.OIDC_TOKEN_AUTH_METHOD == CLIENT_SECRET_BASIC:
        auth = (settings.OIDC_CLIENT_ID, settings.OIDC_CLIENT_SECRET)
    else:
        body.update(client_id=settings.OIDC_CLIENT_ID, client_secret=settings.OIDC_CLIENT_SECRET)
    return requests.post(
        provider_metadata().token_endpoint,
        data=body,
        auth=auth,
        timeout=settings.OIDC_HTTP_TIMEOUT,
        verify=settings.OIDC_VERIFY_TLS,
    )


def sso_session_check(request: HttpRequest) -> str | None:
    """None while the session may go on; else why it must end. Refreshes the provider's tokens when they are due.

    Run on every request of an SSO session, cheap until the access token's lifetime (at most
    OIDC_SESSION_CHECK_SECONDS) has passed. A provider that refuses the refresh token (the user was disabled,
    signed out or had the session revoked there) or cannot be reached ends the session: fail closed.
    """
    session = request.session
    if time.time() < session.get(SESSION_ACCESS_EXPIRES_AT, 0):
        return None
    # One refresh per session at a time: a rotated refresh token used twice would make the provider revoke it.
    lock = f"sso:refresh:{session.session_key}"
    if not cache.add(lock, 1, timeout=settings.OIDC_HTTP_TIMEOUT * 2):
        return None
    try:
        refresh_token = session.get(SESSION_REFRESH_TOKEN)
        if not refresh_token:
            return "the provider issued no refresh token and the sign-in has expired"
        try:
            response = token_endpoint_post({"grant_type": "refresh_token", "refresh_token": refresh_token})
        except (requests.RequestException, ProviderError) as error:
            return f"the provider could not be reached to renew the session ({error.__class__.__name__})"
        if response.status_code != 200:
            try:
                error = response.json().get("error_description") or response.json().get("error")
            except ValueError:
                error = f"HTTP {response.status_code}"
            return f"the provider refused to renew the session: {error}"
        session_tokens_store(session, response.json())
        return None
    finally:
        cache.delete(lock)
