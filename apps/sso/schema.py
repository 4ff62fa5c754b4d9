"""OpenAPI description of provider-issued bearer tokens (loaded by drf-spectacular)."""

from drf_spectacular.extensions import OpenApiAuthenticationExtension


class ProviderTokenAuthenticationScheme(OpenApiAuthenticationExtension):
    target_class = "apps.sso.authentication.ProviderTokenAuthentication"
    name = "oidcAccessToken"

    def get_security_definition(self, auto_schema):
        return {
            "type": "http",
            "scheme": "bearer",
            "bearerFormat": "JWT",
            "description": "An access token from the configured OpenID Connect provider for the audience "
            "OIDC_API_AUDIENCE (client credentials, or a user's token): see docs/sso.md.",
        }
