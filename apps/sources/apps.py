from django.apps import AppConfig


class SourcesConfig(AppConfig):
    """Data sources, their versioned schemas and write keys."""

    name = "apps.sources"
    label = "sources"
    verbose_name = "Sources"

    def ready(self) -> None:
        from apps.sources.signals import signals_connect

        signals_connect()
