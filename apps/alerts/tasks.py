"""Alerts background work: anomaly scoring of newly committed points (routed in analytics_platform/celery.py)."""

from __future__ import annotations

from celery import shared_task
from django.db import InterfaceError, OperationalError

from apps.alerts.scoring import anomaly_scores_update


@shared_task(
    name="alerts.anomaly_scores_update",
    acks_late=True,
    # The next run (every 2 s) picks up whatever this one did not commit; a retry would only queue behind it.
    autoretry_for=(),
    ignore_result=True,
)
def anomaly_scores_update_task(series_ids: list[int] | None = None) -> dict:
    """Score the points committed since the last run (a bounded batch) for every enabled detection."""
    try:
        return anomaly_scores_update(series_ids=series_ids)
    except (OperationalError, InterfaceError):
        return {"error": "database_unavailable"}
