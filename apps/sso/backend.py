"""Authentication backends: mozilla-django-oidc's, fitted to discovery and our claim mapping; local passwords."""

from __future__ import annotations

from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.backends import ModelBackend
from mozilla_django_oidc.auth import OIDCAuthenticationBackend
from mozilla_django_oidc.utils import import_from_settings

from apps.sso.config import CLIENT_SECRET_BASIC, local_password_allowed, sso_configured
from apps.sso.provider import provider_metadata
from apps.sso.services import SignInRefused, sso_user_sign_in
from apps.sso.session import session_tokens_store
from apps.sso.tokens import id_token_verify

# mozilla-django-oidc reads the provider's endpoints from settings; here they come from discovery.
_DISCOVERED = {
    "OIDC_OP_AUTHORIZATION_ENDPOINT": "authorization_endpoint",
    "OIDC_OP_TOKEN_ENDPOINT": "token_endpoint",
    "OIDC_OP_USER_ENDPOINT": "userinfo_endpoint",
    "OIDC_OP_JWKS_ENDPOINT": "jwks_uri",
}


# ... and its other settings from ours (read at call time, so tests may override ours).
_OURS = {
    "OIDC_RP_CLIENT_ID": lambda: settings.OIDC_CLIENT_ID,
    "OIDC_RP_CLIENT_SECRET": lambda: settings.OIDC_CLIENT_SECRET,
    "OIDC_RP_SCOPES": lambda: settings.OIDC_SCOPES,
    "OIDC_RP_SIGN_ALGO": lambda: settings.OIDC_SIGN_ALGORITHMS[0],
    "OIDC_TOKEN_USE_BASIC_AUTH": lambda: settings.OIDC_TOKEN_AUTH_METHOD == CLIENT_SECRET_BASIC,
    "OIDC_TIMEOUT": lambda: settings.OIDC_HTTP_TIMEOUT,
    "OIDC_VERIFY_SSL": lambda: settings.OIDC_VERIFY_TLS,
    "OIDC_USE_PKCE": lambda: True,
    "OIDC_USE_NONCE": lambda: True,
    "OIDC_PKCE_CODE_CHALLENGE_METHOD": lambda: "S256",
}


def library_setting(name: str, *default: Any) -> Any:
    """A setting as mozilla-django-oidc asks for it, endpoints taken from the provider's discovery document."""
    if name in _DISCOVERED:
        return getattr(provider_metadata(), _DISCOVERED[name])
    if name in _OURS:
        return _OURS[name]()
    return import_from_settings(name, *default)


class OidcBackend(OIDCAuthenticationBackend):
    """The authorization code flow's backend (PKCE, state and nonce are handled by the views and the library).

    Differences from the library: the ID token is verified by apps.sso.tokens (issuer and audience too, which
    the library skips; keys from a JWKS cache that refetches on an unknown kid); claims come from the ID token
    (userinfo is added with OIDC_CLAIMS_FROM_USERINFO); users are found by issuer + subject, not by email.
    """

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        # Django builds every backend for every authenticate() call, password sign-ins included: the provider's
        # settings are read only when a code from the provider is being exchanged.
        self.UserModel = get_user_model()

    get_settings = staticmethod(library_setting)

    def authenticate(self, request, **kwargs):
        if request is None or "nonce" not in kwargs or not sso_configured():
            return None
        super().__init__()
        self.token_response: dict[str, Any] = {}
        return super().authenticate(request, **kwargs)

    def get_token(self, payload):
        self.token_response = super().get_token(payload)
        return self.token_response

    def verify_token(self, token, **kwargs):
        return id_token_verify(token, nonce=kwargs.get("nonce"))

    def store_tokens(self, access_token, id_token):
        session_tokens_store(self.request.session, self.token_response)

    def get_or_create_user(self, access_token, id_token, payload):
        claims = dict(payload)
        if settings.OIDC_CLAIMS_FROM_USERINFO:
            userinfo = super().get_userinfo(access_token, id_token, payload)
            if userinfo.get("sub") == claims["sub"]:  # OIDC Core 5.3.2: otherwise it must not be used
                claims.update(userinfo)
        try:
            return sso_user_sign_in(claims=claims, request=self.request)
        except SignInRefused as error:
            self.request.sso_failure = str(error)
            return None

    def get_user(self, user_id):
        try:
            return self.UserModel.objects.get(pk=user_id)
        except self.UserModel.DoesNotExist:
            return None


class LocalPasswordBackend(ModelBackend):
    """Django's username + password sign-in, limited to break-glass users when OIDC_LOCAL_PASSWORDS is off."""

    def authenticate(self, request, username=None, password=None, **kwargs):
        if username is not None and not local_password_allowed(username):
            return None
        return super().authenticate(request, username=username, password=password, **kwargs)
