from django.apps import AppConfig


class StorageConfig(AppConfig):
    """Series, points, rollup tiers, retention and the query engine."""

    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self) -> None:
        from apps.storage.metrics import collector_register

        collector_register()
