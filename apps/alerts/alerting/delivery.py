"""Deliver outbox rows: one attempt at a time per notification (a row lock held while sending), every attempt
logged with its outcome, failures retried with exponential backoff, an idempotency key that never changes.

A process that dies while sending leaves the row pending (its lock goes with it); the flush sends it again with
the same idempotency key, so a receiver that honours the key (the CMMS preset's work orders) never opens two.
"""

from __future__ import annotations

import logging
import time
from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone

from apps.alerts.alerting.metrics import NOTIFICATIONS
from apps.alerts.alerting.senders import DeliveryError, notification_send
from apps.alerts.models import DeliveryAttempt, Notification, NotificationGroup, NotificationStatus

logger = logging.getLogger(__name__)


def backoff_seconds(attempt: int) -> float:
    """Wait after failed attempt number `attempt` (1, 2, ...): base * 2^(attempt-1), capped."""
    base = settings.ALERTS_DELIVERY_BACKOFF_SECONDS
    return min(base * 2 ** (attempt - 1), settings.ALERTS_DELIVERY_BACKOFF_MAX_SECONDS)


def notification_deliver(*, notification_id: int, now: datetime | None = None) -> str:
    """Try to deliver one due notification: "sent", "retry", "failed", or "skipped" (not due, done or busy)."""
    with transaction.atomic():
        now = now or timezone.now()
        notification = (
            Notification.objects.select_for_update(skip_locked=True, of=("self",))
            .select_related("contact_point")
            .filter(pk=notification_id, state=NotificationStatus.PENDING, not_before__lte=now)
            .first()
        )
        if notification is None:
            return "skipped"
        number = notification.attempts + 1
        started = time.perf_counter()
        status_code, error, retry = None, "", True
        try:
            status_code = notification_send(notification)
        except DeliveryError as failure:
            status_code, error, retry = failure.status_code, str(failure), failure.retry
        except Exception as failure:  # a sender bug must not lose the row: log it as a failed attempt
            logger.exception("notification %s: sender failed", notification_id)
            error = f"{type(failure).__name__}: {failure}"
        duration_ms = (time.perf_counter() - started) * 1000
        DeliveryAttempt.objects.create(
            notification=notification, number=number, at=now, ok=not error, status_code=status_code,
            error=error[:2000], duration_ms=duration_ms,
        )  # fmt: skip
        notification.attempts = number
        kind = notification.contact_point.kind
        if not error:
            notification.state, notification.sent_at, notification.last_error = NotificationStatus.SENT, now, ""
            NotificationGroup.objects.filter(
                contact_point_id=notification.contact_point_id, key=notification.group_key
            ).update(last_sent_at=now)
            outcome = "sent"
        else:
            notification.last_error = error[:2000]
            if not retry or number >= settings.ALERTS_DELIVERY_MAX_ATTEMPTS:
                notification.state = NotificationStatus.FAILED
                outcome = "failed"
            else:
                delay = backoff_seconds(number)
                # From the failure, not from the start of the attempt (a slow refusal must not shorten the wait).
                notification.not_before = now + timedelta(seconds=delay + duration_ms / 1000)
                outcome = "retry"
                transaction.on_commit(lambda: _retry_schedule(notification_id, delay))
            logger.warning("notification %s attempt %s: %s (%s)", notification_id, number, error, outcome)
        notification.save(update_fields=["state", "sent_at", "last_error", "attempts", "not_before"])
    NOTIFICATIONS.labels(kind, outcome).inc()
    return outcome


def _retry_schedule(notification_id: int, delay: float) -> None:
    from apps.alerts.alerting.tasks import notification_deliver_task

    if getattr(settings, "CELERY_TASK_ALWAYS_EAGER", False):
        return  # eager tasks ignore the countdown; the flush picks the retry up when it is due
    try:
        notification_deliver_task.apply_async(args=[notification_id], countdown=delay)
    except Exception:
        logger.warning("retry of notification %s not queued; the flush will send it", notification_id)


def notifications_flush(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Deliver due notifications (oldest first, at most `limit`): what the 1-second schedule runs."""
    now = now or timezone.now()
    limit = limit or settings.ALERTS_FLUSH_MAX_NOTIFICATIONS
    due = list(
        Notification.objects.filter(state=NotificationStatus.PENDING, not_before__lte=now)
        .order_by("not_before", "id")
        .values_list("id", flat=True)[:limit]
    )
    counts: dict[str, int] = {}
    for notification_id in due:
        outcome = notification_deliver(notification_id=notification_id, now=now)
        counts[outcome] = counts.get(outcome, 0) + 1
    return counts
