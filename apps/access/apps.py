from django.apps import AppConfig


class AccessConfig(AppConfig):
    """Users, API tokens, organisations, members, teams, roles, object sharing and row-level data policies."""

    name = "apps.access"
    label = "access"
    verbose_name = "Access"

    def ready(self) -> None:
        from apps.access import schema  # noqa: F401  (registers the OpenAPI auth extension)
        from apps.access.scopes import policy_data_scope
        from apps.access.signals import signals_connect
        from apps.access.token_cache import token_cache_signals_connect
        from apps.storage.policies import data_scope_provider_set

        data_scope_provider_set(policy_data_scope)
        signals_connect()
        token_cache_signals_connect()
