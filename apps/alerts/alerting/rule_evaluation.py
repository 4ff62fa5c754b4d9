"""Evaluate a rule and record what changed, in one transaction: instance states, their history, the outbox.

One evaluator per rule at a time (a PostgreSQL advisory lock held by the transaction): the change-driven worker
and the scheduled tick may both ask, and the second waits, then reads what the first committed. A process killed
mid-evaluation leaves nothing (the transaction rolls back); the next evaluation starts from the committed states,
so a transition, and its notification, is written exactly once.
"""

from __future__ import annotations

import logging
import os
import time
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from django.db import connection, transaction
from django.utils import timezone

from apps.alerts.alerting.chart_annotations import transitions_annotate
from apps.alerts.alerting.conditions import Condition
from apps.alerts.alerting.evaluation import (
    EvaluationError,
    GroupResult,
    labels_fingerprint,
    rule_condition,
    rule_results,
)
from apps.alerts.alerting.metrics import EVALUATION_DURATION, EVALUATIONS, INSTANCES_EVALUATED, TRANSITIONS
from apps.alerts.alerting.outbox import notifications_enqueue
from apps.alerts.alerting.states import ALERTING_STATES, Step, state_next
from apps.alerts.alerting.templating import template_render
from apps.alerts.models import AlertInstance, AlertRule, AlertState, Notification, StateTransition

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x414C5254  # "ALRT": advisory locks (namespace, rule id)
_INSTANCE_FIELDS = [
    "state", "state_since", "value", "values", "annotations", "last_breach_at", "last_data_at",
    "last_evaluated_at", "error", "notified", "notified_at", "acknowledged_by", "acknowledged_at",
]  # fmt: skip
# Tests of crash safety set this to hold an evaluation open (all its writes made, not committed) so a process can
# be killed right there.
PAUSE_BEFORE_COMMIT_ENV = "ALERTS_TEST_PAUSE_BEFORE_COMMIT"


@dataclass
class EvaluationSummary:
    """What one evaluation did."""

    rule_id: int
    instances: int = 0
    transitions: list[tuple[int, str, str]] = field(default_factory=list)  # (instance id, from, to)
    notifications: list[int] = field(default_factory=list)
    states: dict[str, str] = field(default_factory=dict)  # fingerprint -> state
    error: str = ""
    skipped: str = ""


def alert_rule_evaluate(*, rule_id: int, now: datetime | None = None, trigger: str = "schedule") -> EvaluationSummary:
    """Evaluate one rule now and commit its instances' new states, history and notifications."""
    started = time.perf_counter()
    summary = EvaluationSummary(rule_id=rule_id)
    with transaction.atomic():
        with connection.cursor() as cursor:
            cursor.execute("SELECT pg_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, rule_id])
        # Read after the lock: what an evaluator that held it committed is visible now.
        now = now or timezone.now()
        rule = AlertRule.objects.select_related("owner").filter(pk=rule_id).first()
        if rule is None or not rule.enabled:
            summary.skipped = "missing" if rule is None else "disabled"
            return summary
        _evaluate(rule, now, summary)
        AlertRule.objects.filter(pk=rule.pk).update(last_evaluated_at=now)
        pause = float(os.environ.get(PAUSE_BEFORE_COMMIT_ENV) or 0)
        if pause:
            logger.warning("pausing %.1fs before commit (test hook)", pause)
            time.sleep(pause)
        notification_ids = list(summary.notifications)
        if notification_ids:
            transaction.on_commit(lambda: _deliveries_schedule(notification_ids))
    EVALUATIONS.labels(trigger, "error" if summary.error else "ok").inc()
    EVALUATION_DURATION.labels(trigger).observe(time.perf_counter() - started)
    INSTANCES_EVALUATED.inc(summary.instances)
    for _, _, to_state in summary.transitions:
        TRANSITIONS.labels(to_state).inc()
    return summary


def _deliveries_schedule(notification_ids: list[int]) -> None:
    from apps.alerts.alerting.tasks import notification_deliver_task

    due = dict(Notification.objects.filter(pk__in=notification_ids).values_list("pk", "not_before"))
    now = timezone.now()
    for notification_id, not_before in due.items():
        delay = max(0.0, (not_before - now).total_seconds())
        try:
            notification_deliver_task.apply_async(args=[notification_id], countdown=delay or None)
        except Exception:  # the broker is away: the flush task sends it (the row is committed)
            logger.warning("delivery of notification %s not queued; the flush will send it", notification_id)


def _evaluate(rule: AlertRule, now: datetime, summary: EvaluationSummary) -> None:
    instances = {instance.fingerprint: instance for instance in rule.instances.select_for_update()}
    try:
        results = rule_results(rule=rule, now=now)
        error = ""
    except EvaluationError as failure:
        results, error = {}, str(failure)
    summary.error = error
    condition = rule_condition(rule)
    fingerprints = set(instances) | set(results)
    if not rule.group_by and (error or rule.no_data_seconds is not None):
        fingerprints.add(labels_fingerprint({}))  # the one instance of an ungrouped rule, even before any data
    new = [
        AlertInstance(rule=rule, fingerprint=fingerprint, labels=results[fingerprint].labels if fingerprint in results
                      else {}, state=AlertState.NORMAL, state_since=now)
        for fingerprint in fingerprints - set(instances)
    ]  # fmt: skip
    for instance in AlertInstance.objects.bulk_create(new):
        instances[instance.fingerprint] = instance
    transitions: list[StateTransition] = []
    changes: list[tuple[AlertInstance, str]] = []
    for fingerprint, instance in instances.items():
        before = instance.state
        _step(rule, condition, instance, results.get(fingerprint), error, now)
        summary.states[fingerprint] = instance.state
        if instance.state != before:
            transitions.append(
                StateTransition(
                    instance=instance, rule=rule, at=now, from_state=before, to_state=instance.state,
                    value=instance.value, values=instance.values, reason=instance.error or _reason(instance, before),
                )
            )  # fmt: skip
            summary.transitions.append((instance.id, before, instance.state))
        status = _notification_due(rule, instance, now)
        if status:
            changes.append((instance, status))
    outcomes, notifications = notifications_enqueue(rule=rule, changes=changes, now=now) if changes else ({}, [])
    for instance, status in changes:
        if outcomes[instance.id].queued:
            instance.notified, instance.notified_at = status, now
    AlertInstance.objects.bulk_update(list(instances.values()), _INSTANCE_FIELDS)
    StateTransition.objects.bulk_create(transitions)
    transitions_annotate(rule=rule, transitions=transitions)
    summary.instances = len(instances)
    summary.notifications = [notification.id for notification in notifications]


def _step(
    rule: AlertRule, condition: Condition, instance: AlertInstance, result: GroupResult | None, error: str, now
) -> None:
    """Move one instance on by this evaluation's result."""
    if result is not None:
        instance.value, instance.values = result.value, result.values
        if result.last_data_at is not None:
            instance.last_data_at = max(filter(None, [instance.last_data_at, result.last_data_at]))
    else:
        instance.value, instance.values = None, {}
    no_data = False
    if not error and instance.value is None and rule.no_data_seconds is not None:
        reference = instance.last_data_at or rule.created_at
        no_data = (now - reference).total_seconds() >= rule.no_data_seconds
    firing = instance.state in (AlertState.FIRING, AlertState.RECOVERING)
    breach = None if instance.value is None else condition.breaching(instance.value, firing=firing)
    if breach:
        instance.last_breach_at = now
    nxt = state_next(
        state=instance.state,
        state_since=instance.state_since,
        last_breach_at=instance.last_breach_at,
        step=Step(breach=breach, no_data=no_data, error=error),
        now=now,
        for_seconds=rule.for_seconds,
        keep_firing_seconds=rule.keep_firing_seconds,
    )
    instance.error = error
    instance.last_evaluated_at = now
    if nxt.changed:
        instance.state, instance.state_since = nxt.state, now
        instance._reason = nxt.reason
        if nxt.state == AlertState.NORMAL:  # an acknowledgement is for one episode
            instance.acknowledged_by, instance.acknowledged_at = None, None
    context = {
        "labels": {**rule.labels, **instance.labels},
        "value": instance.value,
        "values": instance.values,
        "rule": rule.name,
        "severity": rule.severity,
        "state": instance.state,
    }
    instance.annotations = {name: template_render(text, context) for name, text in rule.annotations.items()}


def _reason(instance: AlertInstance, before: str) -> str:
    return getattr(instance, "_reason", "") or f"{before} -> {instance.state}"


def _notification_due(rule: AlertRule, instance: AlertInstance, now: datetime) -> str:
    """ "firing" or "resolved" when contact points must hear about the instance now, else ""."""
    if instance.state in ALERTING_STATES:
        if instance.notified != "firing":
            return "firing"
        repeat_due = instance.notified_at is not None and now - instance.notified_at >= timedelta(
            seconds=max(rule.repeat_interval_seconds, 60)
        )
        return "firing" if repeat_due and instance.acknowledged_at is None else ""
    if instance.state in (AlertState.NORMAL, AlertState.PENDING) and instance.notified == "firing":
        return "resolved"
    return ""
