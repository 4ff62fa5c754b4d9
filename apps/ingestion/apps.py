from django.apps import AppConfig


class IngestionConfig(AppConfig):
    """Parsers, validation, dead letters, the batch writer and connectors."""

    name = "apps.ingestion"
    label = "ingestion"
    verbose_name = "Ingestion"

    def ready(self) -> None:
        from apps.ingestion.metrics import collector_register

        collector_register()
