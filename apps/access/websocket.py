"""WebSocket security: origin checks for browsers and API-token authentication for other clients."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlparse

from channels.auth import AuthMiddlewareStack
from channels.db import database_sync_to_async
from channels.security.websocket import OriginValidator
from django.conf import settings
from django.contrib.auth.models import AnonymousUser

from apps.access.authentication import bearer_token_from_header
from apps.access.services import ApiTokenError, api_token_authenticate
from apps.sso.config import bearer_tokens_enabled
from apps.sso.tokens import TokenError, jwt_shaped


class BrowserOriginValidator(OriginValidator):
    """Refuse cross-site WebSocket handshakes.

    A browser always sends Origin on a WebSocket handshake, so a present Origin must be one of ours
    (ALLOWED_HOSTS or CSRF_TRUSTED_ORIGINS). A handshake without Origin comes from a non-browser
    client (an integration using a token); it cannot ride on a victim's cookies, so it is let through
    to authentication.
    """

    def valid_origin(self, parsed_origin) -> bool:
        if parsed_origin is None:
            return True
        return self.validate_origin(parsed_origin)


def _allowed_origins() -> list[str]:
    hosts = list(settings.ALLOWED_HOSTS)
    if settings.DEBUG and not hosts:
        hosts = ["localhost", "127.0.0.1", "[::1]"]
    # "*" in ALLOWED_HOSTS must not switch the origin check off.
    hosts = [host for host in hosts if host != "*"]
    return hosts + list(settings.CSRF_TRUSTED_ORIGINS)


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
        return await self.application(scope, receive, send)


def secure_websocket_application(inner):
    """Origin check, then session auth, then token auth, then the URL router."""
    return BrowserOriginValidator(AuthMiddlewareStack(TokenAuthMiddleware(inner)), _allowed_origins())


def origin_is_allowed(origin: str) -> bool:
    """Whether a given Origin value would pass the handshake check (used by tests and diagnostics)."""
    validator = BrowserOriginValidator(None, _allowed_origins())
    return validator.valid_origin(urlparse(origin) if origin else None)
