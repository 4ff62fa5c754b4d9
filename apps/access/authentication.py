"""DRF authentication with personal API tokens: `Authorization: Bearer <token>`."""

from __future__ import annotations

from rest_framework import authentication, exceptions
from rest_framework.request import Request

from apps.access.services import ApiTokenError, api_token_authenticate

KEYWORD = "Bearer"


def bearer_token_from_header(header: str) -> str | None:
    """The token from an 'Authorization: Bearer <token>' value, or None for other schemes."""
    scheme, _, credentials = header.strip().partition(" ")
    if scheme.lower() != KEYWORD.lower():
        return None
    return credentials.strip()


class ApiTokenAuthentication(authentication.BaseAuthentication):
    """Authenticate requests that carry a personal API token."""

    def authenticate(self, request: Request):
        header = request.headers.get("Authorization", "")
        raw_key = bearer_token_from_header(header)
        if raw_key is None:
            return None
        if not raw_key:
            raise exceptions.AuthenticationFailed("Authorization header has no token after 'Bearer'.")
        try:
            token = api_token_authenticate(raw_key=raw_key)
        except ApiTokenError as error:
            raise exceptions.AuthenticationFailed(str(error)) from None
        return token.user, token

    def authenticate_header(self, request: Request) -> str:
        return f'{KEYWORD} realm="api"'
