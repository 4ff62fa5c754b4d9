from django.apps import AppConfig


class SsoConfig(AppConfig):
    """Single sign-on with OpenID Connect: sign-in, claim mapping, provider-issued bearer tokens."""

    name = "apps.sso"
    label = "sso"
    verbose_name = "Single sign-on"

    def ready(self) -> None:
        from apps.sso import (
            checks,  # noqa: F401  (registers the provider check)
            schema,  # noqa: F401  (registers the OpenAPI auth extension)
        )
