from django.apps import AppConfig


class StorageConfig(AppConfig):
    """Series, points, rollup tiers, retention and the query engine."""

    name = "apps.storage"
    label = "storage"
    verbose_name = "Storage"

    def ready(self) -> None:
        from django.db.models.signals import post_delete, post_save

        from apps.sources.models import Source
        from apps.storage.metrics import collector_register
        from apps.storage.query.generations import source_changed

        collector_register()
        # A source renamed, created or deleted changes what a query by slug reads: shared answers no longer match.
        post_save.connect(source_changed, sender=Source, dispatch_uid="storage.shared_answers.source_saved")
        post_delete.connect(source_changed, sender=Source, dispatch_uid="storage.shared_answers.source_deleted")
