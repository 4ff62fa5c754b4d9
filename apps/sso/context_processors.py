"""Template context for the sign-in page: the provider's name when single sign-on is configured."""

from __future__ import annotations

from django.conf import settings
from django.http import HttpRequest

from apps.sso.config import sso_configured


def single_sign_on(request: HttpRequest) -> dict:
    """`sso_provider_name` (None without SSO) and whether local passwords are open to everyone."""
    return {
        "sso_provider_name": settings.OIDC_PROVIDER_NAME if sso_configured() else None,
        "local_passwords_for_everyone": settings.OIDC_LOCAL_PASSWORDS,
    }
