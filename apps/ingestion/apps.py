from django.apps import AppConfig


class IngestionConfig(AppConfig):
    """Parsers, validation, dead letters, the batch writer and connectors."""

    name = "apps.ingestion"
    label = "ingestion"
    verbose_name = "Ingestion"
