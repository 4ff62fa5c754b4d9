"""DRF authentication with JWT access tokens issued by the configured OpenID Connect provider."""

from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.access.authentication import KEYWORD, bearer_token_from_header
from apps.sso.config import bearer_tokens_enabled
from apps.sso.tokens import TokenError, jwt_shaped


class ProviderTokenAuthentication(authentication.BaseAuthentication):
    """`Authorization: Bearer <JWT>` from the provider; other bearer values are left to the API-token class."""

    def authenticate(self, request: Request):
        raw = bearer_token_from_header(request.headers.get("Authorization", ""))
        if not raw or not jwt_shaped(raw) or not bearer_tokens_enabled():
            return None
        from apps.sso.bearer import provider_token_authenticate

        try:
            return provider_token_authenticate(token=raw)
        except TokenError as error:
            raise exceptions.AuthenticationFailed(f"Bearer token refused: {error}.") from None

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'
