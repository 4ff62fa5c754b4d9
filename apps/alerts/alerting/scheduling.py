"""The scheduled side of evaluation: rules due by their interval, a bounded number per tick, most overdue first.

Change-driven evaluation (worker.py) catches a breaching point within the second; this tick covers what changes
without a point arriving: windows sliding, no data, pending periods and keep-firing periods running out, silences
ending.
"""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db.models import F, Q
from django.utils import timezone

from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.models import AlertRule


def rules_due(*, now: datetime, limit: int) -> list[int]:
    """Ids of enabled rules whose interval has passed since their last evaluation, most overdue first."""
    due = (
        AlertRule.objects.filter(enabled=True)
        .filter(
            Q(last_evaluated_at__isnull=True)
            | Q(last_evaluated_at__lte=now - timedelta(seconds=1) * F("interval_seconds"))
        )
        .order_by(F("last_evaluated_at").asc(nulls_first=True), "id")
        .values_list("id", flat=True)
    )
    return list(due[:limit])


def alert_rules_evaluate_due(*, now: datetime | None = None, limit: int | None = None) -> dict[str, int]:
    """Evaluate the rules that are due (at most ALERTS_MAX_RULES_PER_TICK)."""
    rule_ids = rules_due(now=now or timezone.now(), limit=limit or settings.ALERTS_MAX_RULES_PER_TICK)
    errors = 0
    for rule_id in rule_ids:
        # Without `now`, each rule is evaluated at the time its turn comes (its lock may have been busy).
        errors += bool(alert_rule_evaluate(rule_id=rule_id, now=now, trigger="schedule").error)
    return {"evaluated": len(rule_ids), "errors": errors}
