from django.apps import AppConfig


class SourcesConfig(AppConfig):
    """Data sources, their versioned schemas and write keys."""

    name = "apps.sources"
    label = "sources"
    verbose_name = "Sources"

    def ready(self) -> None:
        from apps.sources.policies import organization_data_scope
        from apps.sources.signals import signals_connect
        from apps.storage.policies import data_scope_provider_set

        data_scope_provider_set(organization_data_scope)
        signals_connect()
