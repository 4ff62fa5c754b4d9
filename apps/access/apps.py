from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Users, API tokens; later organisations, teams, roles and row-level data policies."""

    name = "apps.access"
    label = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from apps.access import (
            schema,  # noqa: F401  (registers the OpenAPI auth extension)
            signals,  # noqa: F401  (sign-out closes the session's WebSockets)
        )
