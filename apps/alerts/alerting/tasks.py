"""Alerting background work: scheduled evaluation, notification delivery (schedules: analytics_platform/celery.py)."""

from __future__ import annotations

from celery import shared_task

from apps.alerts.alerting.delivery import notification_deliver, notifications_flush
from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.scheduling import alert_rules_evaluate_due


# No expiry and no Celery retries: the row is the state. The service schedules its own retries with backoff (and logs
# each attempt), and the 1-second flush sends any due row whose task was lost, expired or never queued.
@shared_task(name="alerts.notification_deliver", acks_late=True, ignore_result=True, autoretry_for=())
def notification_deliver_task(notification_id: int) -> str:
    """One delivery attempt of an outbox row."""
    return notification_deliver(notification_id=notification_id)


@shared_task(name="alerts.notifications_flush", acks_late=True, ignore_result=True, expires=5)
def notifications_flush_task() -> dict:
    """Deliver every due outbox row: first sends after a group wait, retries, rows whose task was lost."""
    return notifications_flush()


@shared_task(name="alerts.rules_evaluate_due", acks_late=True, ignore_result=True, expires=10)
def alert_rules_evaluate_due_task() -> dict:
    """Evaluate the rules whose interval has passed (bounded per run)."""
    return alert_rules_evaluate_due()


@shared_task(name="alerts.rule_evaluate", acks_late=True, ignore_result=True, expires=60)
def alert_rule_evaluate_task(rule_id: int) -> dict:
    """Evaluate one rule now."""
    summary = alert_rule_evaluate(rule_id=rule_id, trigger="request")
    return {"instances": summary.instances, "transitions": len(summary.transitions), "error": summary.error}
