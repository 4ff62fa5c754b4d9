"""Periodic storage maintenance; scheduled in analytics_platform/celery.py."""

from celery import shared_task

from apps.storage import services


@shared_task(name="storage.rollups_refresh", acks_late=True, expires=30, max_retries=0)
def rollups_refresh() -> dict:
    """Advance the rollup tiers (plain PostgreSQL) or refresh continuous aggregates (TimescaleDB)."""
    return services.rollups_refresh()


@shared_task(name="storage.partitions_prepare", acks_late=True, expires=3000, max_retries=3, default_retry_delay=60)
def partitions_prepare() -> list[str]:
    """Create the coming days' raw partitions ahead of time."""
    return services.partitions_prepare()


@shared_task(name="storage.retention_apply", acks_late=True, expires=3000, max_retries=3, default_retry_delay=300)
def retention_apply() -> dict:
    """Apply retention to every tier."""
    return services.retention_apply()
