"""The notification outbox: rows written in the transaction of the transition that causes them.

Alerts of one group (contact point, group labels, status) that change in one evaluation share a message. A
message still inside its group wait takes later alerts of its group; resolved messages are not held back by the
group interval (operators want to know at once that it is over), firing updates of a group that was told
recently wait for the group interval. Silenced and muted alerts get no row: the instance remembers it has not
been told, and the next evaluation after the silence or mute window ends sends what is still true.
"""

from __future__ import annotations

import hashlib
import json
import uuid
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.conf import settings

from apps.alerts.alerting.routing import Route, muted, routes_for, silenced
from apps.alerts.alerting.rule_spec import iso
from apps.alerts.models import AlertInstance, AlertRule, Notification, NotificationGroup, NotificationStatus


@dataclass(frozen=True)
class Outcome:
    """What became of one alert's notification: sent to the outbox, or why not."""

    queued: bool
    held_by: str = ""  # "silence <id>", "mute timing <name>", "no contact point"


def alert_labels(*, rule: AlertRule, instance: AlertInstance) -> dict[str, str]:
    """The labels contact points see: the rule's name and severity, its labels, and the instance's label set."""
    return {"alertname": rule.name, "severity": rule.severity, **rule.labels, **instance.labels}


def alert_item(*, rule: AlertRule, instance: AlertInstance, status: str, now: datetime) -> dict:
    """One alert as notifications carry it."""
    base = settings.ALERTS_LINK_BASE_URL.rstrip("/")
    return {
        "status": status,
        "state": instance.state,
        "labels": alert_labels(rule=rule, instance=instance),
        "annotations": instance.annotations,
        "value": instance.value,
        "values": instance.values,
        "starts_at": iso(instance.state_since),
        "ends_at": iso(now) if status == "resolved" else None,
        "fingerprint": instance.fingerprint,
        "rule_id": rule.id,
        "instance_id": instance.id,
        "link": f"{base}/alerts/rules/{rule.id}?instance={instance.id}",
    }


def _group_key(route: Route, rule: AlertRule, labels: dict[str, str]) -> str:
    scope = f"policy:{route.policy_id}" if route.policy_id is not None else f"rule:{rule.id}"
    grouped = {label: labels.get(label, "") for label in route.group_by}
    return hashlib.sha256(json.dumps([scope, grouped], sort_keys=True).encode()).hexdigest()[:32]


def notifications_enqueue(
    *, rule: AlertRule, changes: list[tuple[AlertInstance, str]], now: datetime
) -> tuple[dict[int, Outcome], list[Notification]]:
    """Write outbox rows for (instance, "firing"|"resolved") pairs; per instance id, whether it was queued."""
    outcomes: dict[int, Outcome] = {}
    batches: dict[tuple[int, str, str], tuple[Route, list[dict]]] = {}
    for instance, status in changes:
        labels = alert_labels(rule=rule, instance=instance)
        silence = silenced(organization_id=rule.organization_id, labels=labels, now=now)
        if silence is not None:
            outcomes[instance.id] = Outcome(queued=False, held_by=f"silence {silence.id}")
            continue
        routes = routes_for(rule=rule, labels=labels)
        if not routes:
            outcomes[instance.id] = Outcome(queued=False, held_by="no contact point")
            continue
        held = ""
        queued = False
        for route in routes:
            timing = next((timing for timing in route.mute_timings if muted(timing, now)), None)
            if timing is not None:
                held = f"mute timing {timing.name}"
                continue
            key = (route.contact_point.id, _group_key(route, rule, labels), status)
            batches.setdefault(key, (route, []))[1].append(
                alert_item(rule=rule, instance=instance, status=status, now=now)
            )
            queued = True
        outcomes[instance.id] = Outcome(queued=queued, held_by="" if queued else held)
    written = [_batch_write(rule, key, route, items, now) for key, (route, items) in batches.items()]
    return outcomes, written


def _batch_write(rule: AlertRule, key: tuple[int, str, str], route: Route, items: list[dict], now: datetime):
    contact_point_id, group_key, status = key
    waiting = (
        Notification.objects.select_for_update()
        .filter(
            contact_point_id=contact_point_id,
            group_key=group_key,
            status=status,
            state=NotificationStatus.PENDING,
            attempts=0,
            not_before__gt=now,
        )
        .first()
    )
    if waiting is not None:
        known = {item["fingerprint"] for item in waiting.payload["alerts"]}
        waiting.payload["alerts"].extend(item for item in items if item["fingerprint"] not in known)
        waiting.save(update_fields=["payload"])
        return waiting
    group, _ = NotificationGroup.objects.get_or_create(contact_point_id=contact_point_id, key=group_key)
    if group.last_sent_at is None:
        not_before = now + timedelta(seconds=route.group_wait_seconds)
    elif status == "firing":
        not_before = max(now, group.last_sent_at + timedelta(seconds=route.group_interval_seconds))
    else:
        not_before = now
    return Notification.objects.create(
        contact_point_id=contact_point_id,
        rule=rule,
        group_key=group_key,
        status=status,
        payload={
            "alerts": items,
            "group_labels": {label: items[0]["labels"].get(label, "") for label in route.group_by},
        },
        idempotency_key=uuid.uuid4().hex,
        not_before=not_before,
        created_at=now,
    )
