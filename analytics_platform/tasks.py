"""Platform housekeeping tasks."""

from celery import shared_task

from analytics_platform.health import worker_heartbeat_record


# Routed to the "default" queue by analytics_platform.celery.app.conf.task_routes.
@shared_task(name="platform.worker_heartbeat", acks_late=True, expires=25, max_retries=0)
def worker_heartbeat() -> str:
    """Record that a worker is alive and beat is scheduling; /healthz reports it."""
    return worker_heartbeat_record().isoformat()
