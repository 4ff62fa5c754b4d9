"""Report background work on the "reports" queue (routed in analytics_platform/celery.py)."""

from __future__ import annotations

from celery import shared_task
from django.conf import settings
from django.db import InterfaceError, OperationalError

from apps.reporting.delivery import DeliveryFailed, delivery_give_up, delivery_send
from apps.reporting.runs import RENDER_TIME_LIMIT_SECONDS, run_status_update
from apps.reporting.runs import report_run_execute as run_execute
from apps.reporting.services import report_run_scheduled as run_scheduled


@shared_task(
    name="reporting.report_run_scheduled",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=5,
    max_retries=5,
    expires=3600,
)
def report_run_scheduled(report_id: int) -> int | None:
    """Beat's tick for one report (its PeriodicTask): start the run of this minute, once."""
    run = run_scheduled(report_id=report_id)
    return run.pk if run else None


@shared_task(
    name="reporting.report_run_execute",
    acks_late=True,
    ignore_result=True,
    autoretry_for=(OperationalError, InterfaceError),
    retry_backoff=10,
    max_retries=3,
    soft_time_limit=1800,
    time_limit=RENDER_TIME_LIMIT_SECONDS,
)
def report_run_execute(run_id: int) -> None:
    """Render a queued run (once; a redelivered task finds it running) and queue its mails."""
    run_execute(run_id=run_id)


@shared_task(
    bind=True,
    name="reporting.report_delivery_send",
    acks_late=True,
    ignore_result=True,
    max_retries=None,
    time_limit=300,
)
def report_delivery_send(self, delivery_id: int) -> None:
    """Mail one recipient; SMTP failures retry with backoff (30 s, 60 s, ...) up to REPORT_SEND_MAX_RETRIES."""
    try:
        delivery_send(delivery_id=delivery_id)
    except DeliveryFailed as error:
        if self.request.retries >= settings.REPORT_SEND_MAX_RETRIES:
            delivery_give_up(delivery_id=delivery_id, error=str(error))
        else:
            raise self.retry(exc=error, countdown=30 * 2**self.request.retries) from None
    run_status_update(run_id=_run_id(delivery_id))


def _run_id(delivery_id: int) -> int:
    from apps.reporting.models import ReportDelivery

    return ReportDelivery.objects.values_list("run_id", flat=True).get(pk=delivery_id)


@shared_task(name="reporting.files_prune", acks_late=True, ignore_result=True, expires=3000)
def files_prune() -> int:
    """Delete rendered files whose download links have expired (hourly, from beat)."""
    from apps.reporting.runs import run_files_prune

    return run_files_prune()
