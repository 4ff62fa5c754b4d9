"""Alert state changes as annotations on a dashboard's charts.

A rule whose annotations name `dashboard_uid` (and optionally `panel_key`) writes each state change of its instances
as an annotation of kind `alert` on that dashboard (on that panel, else on every panel), in the transaction of the
change. The dashboard must be one the rule's owner can see; a dashboard or panel that is gone is logged and
skipped (the evaluation never fails for it).
"""

from __future__ import annotations

import logging

from django.db import transaction

from apps.alerts.models import AlertRule, StateTransition
from apps.dashboards.selectors import dashboard_get_for_user
from apps.dashboards.services import DashboardError, annotation_create

logger = logging.getLogger(__name__)

DASHBOARD_KEY = "dashboard_uid"
PANEL_KEY = "panel_key"


def transitions_annotate(*, rule: AlertRule, transitions: list[StateTransition]) -> int:
    """Write the transitions as annotations on the rule's dashboard; how many were written."""
    uid = rule.annotations.get(DASHBOARD_KEY)
    if not uid or not transitions or rule.owner is None:
        return 0
    dashboard = dashboard_get_for_user(user=rule.owner, uid=uid)
    if dashboard is None:
        logger.warning("rule %s: dashboard %r not found or not visible to its owner", rule.id, uid)
        return 0
    written = 0
    for change in transitions:
        labels = ", ".join(f"{key}={value}" for key, value in change.instance.labels.items())
        value = "" if change.value is None else f" at {change.value:g}"
        text = f"{rule.name}: {change.from_state} → {change.to_state}{value}" + (f" ({labels})" if labels else "")
        try:
            with transaction.atomic():
                annotation_create(
                    dashboard=dashboard, time=change.at, text=text, tags=["alert", change.to_state],
                    panel_key=rule.annotations.get(PANEL_KEY, ""), kind="alert", source_ref=f"alert-rule:{rule.id}",
                )  # fmt: skip
            written += 1
        except DashboardError as error:
            logger.warning("rule %s: annotation not written (%s: %s)", rule.id, error.field, error.message)
            return written
    return written
