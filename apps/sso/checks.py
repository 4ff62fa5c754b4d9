"""Start-up check of the SSO configuration: settings complete, provider reachable and consistent."""

from __future__ import annotations

from django.conf import settings
from django.core.checks import Error, Warning, register
from django.core.exceptions import ImproperlyConfigured

from apps.sso.config import (
    CLIENT_SECRET_BASIC,
    CLIENT_SECRET_POST,
    issuer,
    issuer_problem,
    settings_group_rules,
    sso_configured,
)
from apps.sso.provider import DISCOVERY_PATH, ProviderError, provider_metadata


@register("sso")
def sso_provider_check(app_configs=None, **kwargs) -> list:
    """When OIDC_ISSUER is set: client credentials present, rules valid, discovery document usable."""
    if not sso_configured():
        return []
    problems = []
    problem = issuer_problem(settings.OIDC_ISSUER)
    if problem:
        return [Error(problem, id="sso.E001")]
    for name in ("OIDC_CLIENT_ID", "OIDC_CLIENT_SECRET"):
        if not getattr(settings, name):
            problems.append(Error(f"{name} is required when OIDC_ISSUER is set.", id="sso.E002"))
    if settings.OIDC_TOKEN_AUTH_METHOD not in {CLIENT_SECRET_BASIC, CLIENT_SECRET_POST}:
        message = f"OIDC_TOKEN_AUTH_METHOD must be {CLIENT_SECRET_BASIC} or {CLIENT_SECRET_POST}."
        problems.append(Error(message, id="sso.E009"))
    try:
        settings_group_rules()
    except ImproperlyConfigured as error:
        problems.append(Error(str(error), id="sso.E003"))
    try:
        metadata = provider_metadata(refresh=True)
    except ProviderError as error:
        problems.append(
            Error(
                f"OIDC_ISSUER {issuer()}: {error}.",
                hint=f"Check that {issuer()}{DISCOVERY_PATH} answers the provider's discovery document.",
                id="sso.E004",
            )
        )
        return problems
    if metadata.code_challenge_methods and "S256" not in metadata.code_challenge_methods:
        problems.append(Error("The provider does not offer PKCE with S256.", id="sso.E005"))
    if not settings.OIDC_SIGN_ALGORITHMS:
        problems.append(Error("OIDC_SIGN_ALGORITHMS is empty; list at least one, e.g. RS256.", id="sso.E006"))
    unsupported = [alg for alg in settings.OIDC_SIGN_ALGORITHMS if alg.startswith(("HS", "none"))]
    if unsupported:
        problems.append(Error(f"OIDC_SIGN_ALGORITHMS must be asymmetric, not {unsupported}.", id="sso.E006"))
    if metadata.id_token_algorithms and not set(metadata.id_token_algorithms) & set(settings.OIDC_SIGN_ALGORITHMS):
        problems.append(
            Error(
                f"The provider signs ID tokens with {', '.join(metadata.id_token_algorithms)}, none of "
                f"OIDC_SIGN_ALGORITHMS ({', '.join(settings.OIDC_SIGN_ALGORITHMS)}).",
                id="sso.E007",
            )
        )
    if not metadata.end_session_endpoint:
        problems.append(
            Warning(
                "The provider publishes no end_session_endpoint: signing out ends this platform's session only.",
                id="sso.W001",
            )
        )
    if settings.OIDC_CLAIMS_FROM_USERINFO and not metadata.userinfo_endpoint:
        problems.append(
            Error("OIDC_CLAIMS_FROM_USERINFO is on but the provider has no userinfo_endpoint.", id="sso.E008")
        )
    return problems
