"""WebSocket security: Django's CSRF origin rule on the handshake, then session or API-token authentication.

A browser sends Origin on every WebSocket handshake, and carries the user's cookies whatever page opened the
socket, so the handshake must be checked like a cross-site POST. `websocket_origin_allowed` applies the rule
Django's CsrfViewMiddleware applies to HTTP: the Origin must equal this server's own origin (scheme, host as
validated against ALLOWED_HOSTS, and port: the request's Host header, the proxy headers Django is configured to
trust, ws:// as http and wss:// as https), or be listed in CSRF_TRUSTED_ORIGINS (wildcards for subdomains as
Django reads them). A handshake without Origin comes from a non-browser client (an integration with a token):
it cannot ride on a victim's cookies, so it is let through to authentication.
"""

from __future__ import annotations

import io
from typing import Any
from urllib.parse import urlsplit

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import WebsocketDenier
from django.conf import settings
from django.contrib.auth.models import AnonymousUser
from django.core.exceptions import DisallowedHost
from django.core.handlers.asgi import ASGIRequest
from django.utils.http import is_same_domain

from apps.access.authentication import bearer_token_from_header
from apps.access.services import ApiTokenError, api_token_authenticate
from apps.sso.config import bearer_tokens_enabled
from apps.sso.tokens import TokenError, jwt_shaped

_HTTP_SCHEME_OF = {"ws": "http", "wss": "https", "http": "http", "https": "https"}


def _request_for_handshake(scope: dict[str, Any]) -> ASGIRequest:
    """The handshake as a Django request, so Host, ALLOWED_HOSTS and proxy headers are read exactly as for HTTP."""
    http_scope = {
        **scope,
        "type": "http",
        "method": "GET",
        "scheme": _HTTP_SCHEME_OF.get(scope.get("scheme") or "ws", "http"),
    }
    return ASGIRequest(http_scope, io.BytesIO())


def websocket_origin_allowed(origin: str, scope: dict[str, Any]) -> bool:
    """Whether Django's CSRF origin check would accept `origin` on an HTTP request like this handshake."""
    request = _request_for_handshake(scope)
    try:
        good_origin = f"{'https' if request.is_secure() else 'http'}://{request.get_host()}"
    except DisallowedHost:
        pass
    else:
        if origin == good_origin:
            return True
    trusted = settings.CSRF_TRUSTED_ORIGINS
    if origin in {candidate for candidate in trusted if "*" not in candidate}:
        return True
    try:
        parsed = urlsplit(origin)
    except ValueError:
        return False
    subdomain_hosts = [urlsplit(candidate) for candidate in trusted if "*" in candidate]
    return any(
        trusted_host.scheme == parsed.scheme and is_same_domain(parsed.netloc, trusted_host.netloc.lstrip("*"))
        for trusted_host in subdomain_hosts
    )


def _header(scope: dict[str, Any], name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key == name:
            return value.decode("latin1")
    return None


class CsrfOriginValidator:
    """Refuse a WebSocket handshake (HTTP 403) whose Origin Django's CSRF check would refuse on HTTP."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive, send):
        if scope.get("type") == "websocket":
            origin = _header(scope, b"origin")
            if origin is not None and not websocket_origin_allowed(origin, scope):
                return await WebsocketDenier()(scope, receive, send)
        return await self.application(scope, receive, send)


class TokenAuthMiddleware:
    """Authenticate `Authorization: Bearer <API token or provider JWT>` on the handshake; else the session user."""

    def __init__(self, application) -> None:
        self.application = application

    async def __call__(self, scope: dict[str, Any], receive, send):
        headers = dict(scope.get("headers", []))
        raw_header = headers.get(b"authorization", b"").decode("latin1")
        raw_key = bearer_token_from_header(raw_header) if raw_header else None
        if raw_key is not None and jwt_shaped(raw_key) and bearer_tokens_enabled():
            from apps.sso.bearer import provider_token_authenticate

            scope = dict(scope)
            try:
                user, provider_token = await database_sync_to_async(provider_token_authenticate)(token=raw_key)
            except TokenError as error:
                scope["user"] = AnonymousUser()
                scope["auth_error"] = f"Bearer token refused: {error}."
            else:
                scope["user"] = user
                scope["provider_token"] = provider_token
                scope["api_token_scopes"] = tuple(sorted(provider_token.scopes))
                scope["api_token_organization_id"] = provider_token.organization_id
        elif raw_key is not None:
            scope = dict(scope)
            try:
                token = await database_sync_to_async(api_token_authenticate)(raw_key=raw_key)
            except ApiTokenError as error:
                scope["user"] = AnonymousUser()
                scope["auth_error"] = str(error)
            else:
                scope["user"] = token.user
                scope["api_token_id"] = token.pk
                scope["api_token_expires_at"] = token.expires_at
                scope["api_token_scopes"] = tuple(token.scopes)
                scope["api_token_organization_id"] = token.organization_id
        return await self.application(scope, receive, send)


def secure_websocket_application(inner):
    """Origin check, then session auth, then token auth, then the URL router."""
    return CsrfOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)))
