"""Writes for alerting: contact points, rules, notification policies, silences, mute timings, acknowledge and
assign; evaluation and delivery are re-exported from their modules. Errors name the offending field."""

from __future__ import annotations

import json
import logging
from datetime import datetime
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import transaction
from django.db.models import ProtectedError
from django.utils import timezone
from django.utils.dateparse import parse_datetime

from analytics_platform.field_errors import FieldError
from analytics_platform.redis_client import redis_channel, redis_client
from apps.access.models import Membership, Organization
from apps.alerts.alerting.delivery import notification_deliver, notifications_flush
from apps.alerts.alerting.routing import MatcherError, matchers_clean, mute_intervals_clean
from apps.alerts.alerting.rule_evaluation import alert_rule_evaluate
from apps.alerts.alerting.rule_spec import DURATIONS, RuleError, duration_seconds, rule_fields_clean
from apps.alerts.alerting.url_guard import UnsafeUrl, url_check
from apps.alerts.models import (
    AlertInstance,
    AlertRule,
    ContactPoint,
    ContactPointKind,
    MuteTiming,
    Notification,
    NotificationPolicy,
    Severity,
    Silence,
)
from apps.audit.services import audit_record

__all__ = [
    "AlertingError",
    "alert_instance_acknowledge",
    "alert_instance_assign",
    "alert_rule_backtest",
    "alert_rule_create",
    "alert_rule_delete",
    "alert_rule_evaluate",
    "alert_rule_update",
    "contact_point_create",
    "contact_point_delete",
    "contact_point_test",
    "contact_point_update",
    "mute_timing_create",
    "notification_deliver",
    "notification_policy_create",
    "notification_policy_delete",
    "notification_policy_update",
    "notifications_flush",
    "silence_create",
    "silence_expire",
]

logger = logging.getLogger(__name__)
RULES_CHANGED_CHANNEL = redis_channel("alerts", "rules-changed")
POLICY_NAME_MAX_LENGTH = 200  # NotificationPolicy.name


class AlertingError(FieldError):
    """An alerting change was refused; `field` names the offending input, `status` the HTTP status."""


def _rules_changed_publish(rule_id: int) -> None:
    """Tell change-driven evaluators to reload their index (after commit)."""

    def publish() -> None:
        try:
            redis_client().publish(RULES_CHANGED_CHANNEL, json.dumps({"rule": rule_id}))
        except Exception:  # evaluators also reload their index every few seconds
            logger.warning("rules-changed message for rule %s not published", rule_id, exc_info=True)

    transaction.on_commit(publish)


# Contact points ---------------------------------------------------------------------------------------------------


def _contact_config_clean(kind: str, config: Any) -> dict:
    if kind not in ContactPointKind.values:
        raise AlertingError("kind", f"use one of {', '.join(ContactPointKind.values)}.")
    if not isinstance(config, dict):
        raise AlertingError("config", "an object with the kind's settings.")
    if kind in (ContactPointKind.WEBHOOK, ContactPointKind.SLACK, ContactPointKind.CMMS):
        try:
            url_check(config.get("url"))
        except UnsafeUrl as error:
            raise AlertingError("config.url", str(error)) from None
        secret = config.get("secret", "")
        if not isinstance(secret, str) or len(secret) > 500:
            raise AlertingError("config.secret", "text of at most 500 characters.")
        cleaned = {"url": config["url"], "secret": secret}
        if kind == ContactPointKind.CMMS:
            asset_label = config.get("asset_label", "asset")
            if not isinstance(asset_label, str) or not asset_label:
                raise AlertingError("config.asset_label", "the label that names the asset, e.g. asset or device.")
            cleaned["asset_label"] = asset_label
        return cleaned
    if kind == ContactPointKind.EMAIL:
        addresses = config.get("addresses")
        if not isinstance(addresses, list) or not addresses or len(addresses) > 50:
            raise AlertingError("config.addresses", "a list of 1 to 50 email addresses.")
        for index, address in enumerate(addresses):
            try:
                validate_email(address)
            except (ValidationError, TypeError):
                raise AlertingError(f"config.addresses[{index}]", "not an email address.") from None
        return {"addresses": addresses}
    return {}


def contact_point_create(
    *, organization: Organization, created_by: AbstractBaseUser | None, name: str, kind: str, config: Any
) -> ContactPoint:
    """Create a contact point; 409 when the organisation has one of that name."""
    if not isinstance(name, str) or not name.strip() or len(name) > 200:
        raise AlertingError("name", "required: 1 to 200 characters.")
    cleaned = _contact_config_clean(kind, config)
    if ContactPoint.objects.filter(organization=organization, name=name.strip()).exists():
        raise AlertingError("name", "the organisation already has a contact point of this name.", status=409)
    contact_point = ContactPoint.objects.create(
        organization=organization, name=name.strip(), kind=kind, config=cleaned, created_by=created_by
    )
    audit_record(
        action="contact_point.created", actor=created_by, obj=contact_point, details=_shown_config(contact_point)
    )
    return contact_point


def _shown_config(contact_point: ContactPoint) -> dict:
    """What the audit log keeps of a contact point (never its secret)."""
    config = {key: value for key, value in contact_point.config.items() if key != "secret"}
    return {"name": contact_point.name, "kind": contact_point.kind, "config": config}


def contact_point_update(*, contact_point: ContactPoint, data: dict) -> ContactPoint:
    """Change name or config (a config without a secret keeps the stored one)."""
    if "name" in data:
        name = data["name"]
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise AlertingError("name", "required: 1 to 200 characters.")
        contact_point.name = name.strip()
    if "config" in data:
        config = data["config"]
        if isinstance(config, dict) and "secret" not in config and "secret" in contact_point.config:
            config = {**config, "secret": contact_point.config["secret"]}
        contact_point.config = _contact_config_clean(contact_point.kind, config)
    contact_point.save()
    audit_record(action="contact_point.changed", obj=contact_point, details=_shown_config(contact_point))
    return contact_point


def contact_point_delete(*, contact_point: ContactPoint) -> None:
    """Delete a contact point; 409 while a notification policy routes to it."""
    details = _shown_config(contact_point)
    organization = contact_point.organization
    try:
        with transaction.atomic():
            contact_point.delete()
            audit_record(action="contact_point.deleted", organization=organization, details=details)
    except ProtectedError:
        raise AlertingError("id", "a notification policy routes to this contact point.", status=409) from None


def contact_point_test(*, contact_point: ContactPoint, user: AbstractBaseUser) -> Notification:
    """Send a test notification now (the "send test" button); the row and its attempt are kept like any other."""
    import uuid

    now = timezone.now()
    notification = Notification.objects.create(
        contact_point=contact_point,
        group_key="test",
        status="firing",
        payload={"alerts": [{
            "status": "firing", "state": "firing", "labels": {"alertname": "TestNotification", "severity": "info"},
            "annotations": {"summary": f"Test notification sent by {user.get_username()}"}, "value": None,
            "values": {}, "starts_at": now.isoformat(), "ends_at": None, "fingerprint": "test", "rule_id": None,
            "instance_id": None, "link": "",
        }], "group_labels": {}},
        idempotency_key=uuid.uuid4().hex,
        not_before=now,
    )  # fmt: skip
    notification_deliver(notification_id=notification.id)
    notification.refresh_from_db()
    return notification


# Rules --------------------------------------------------------------------------------------------------------------


def _contact_points_for(organization_id: int, raw: Any) -> list[ContactPoint]:
    if not isinstance(raw, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in raw):
        raise AlertingError("contact_points", "a list of contact point ids.")
    found = list(ContactPoint.objects.filter(organization_id=organization_id, pk__in=raw))
    missing = sorted(set(raw) - {contact_point.id for contact_point in found})
    if missing:
        raise AlertingError("contact_points", f"no contact point {missing[0]} in the rule's organisation.")
    return found


def _rule_fields(data: Any, *, partial: bool) -> dict:
    try:
        fields = rule_fields_clean(data, partial=partial)
    except RuleError as error:
        raise AlertingError(error.field, error.message) from None
    if "severity" in fields and fields["severity"] not in Severity.values:
        raise AlertingError("severity", f"use one of {', '.join(Severity.values)}.")
    return fields


@transaction.atomic
def alert_rule_create(*, organization: Organization, owner: AbstractBaseUser, data: Any) -> AlertRule:
    """Create a rule from its API body; it reads data as `owner`."""
    fields = _rule_fields(data, partial=False)
    contact_points = _contact_points_for(organization.id, data.get("contact_points", []))
    rule = AlertRule.objects.create(organization=organization, owner=owner, **fields)
    rule.contact_points.set(contact_points)
    audit_record(action="alert_rule.created", actor=owner, obj=rule, details={"fields": _audit_fields(fields)})
    _rules_changed_publish(rule.id)
    return rule


def _audit_fields(fields: dict) -> dict:
    return {key: value for key, value in fields.items() if key not in ("annotations",)}


@transaction.atomic
def alert_rule_update(*, rule: AlertRule, data: Any) -> AlertRule:
    """Change a rule (only the fields sent)."""
    fields = _rule_fields(data, partial=True)
    merged_refs = {item["ref"] for item in fields.get("queries", rule.queries)}
    if len(merged_refs) > 1 and not fields.get("expression", rule.expression):
        raise AlertingError("expression", "several queries need an expression that combines them.")
    for name, value in fields.items():
        setattr(rule, name, value)
    rule.save()
    if "contact_points" in data:
        rule.contact_points.set(_contact_points_for(rule.organization_id, data["contact_points"]))
        fields["contact_points"] = data["contact_points"]
    audit_record(action="alert_rule.changed", obj=rule, details={"changes": _audit_fields(fields)})
    _rules_changed_publish(rule.id)
    return rule


def alert_rule_delete(*, rule: AlertRule) -> None:
    """Delete a rule with its instances and history."""
    rule_id = rule.id
    organization, name = rule.organization, rule.name
    with transaction.atomic():
        rule.delete()
        audit_record(action="alert_rule.deleted", organization=organization, details={"id": rule_id, "name": name})
        _rules_changed_publish(rule_id)


def alert_rule_backtest(
    *, organization: Organization, owner: AbstractBaseUser, data: Any, start: datetime, end: datetime
) -> dict:
    """Backtest a rule body (not saved) over [start, end) as `owner` reads the data: the rule editor's preview."""
    from apps.alerts.alerting.backtest import rule_backtest
    from apps.alerts.alerting.evaluation import EvaluationError

    fields = _rule_fields({**data, "name": data.get("name") or "backtest"}, partial=False)
    rule = AlertRule(organization=organization, owner=owner, created_at=start, **fields)
    try:
        return rule_backtest(rule=rule, start=start, end=end)
    except EvaluationError as error:
        raise AlertingError("query", str(error), status=422) from None


# Policies, silences, mute timings --------------------------------------------------------------------------------


def _policy_apply(policy: NotificationPolicy, data: dict, *, partial: bool) -> list[MuteTiming] | None:
    organization_id = policy.organization_id
    try:
        if "matchers" in data or not partial:
            policy.matchers = matchers_clean(data.get("matchers", []))
    except MatcherError as error:
        raise AlertingError(error.field, error.message) from None
    if "parent" in data:
        parent_id = data["parent"]
        if parent_id is not None:
            parent = NotificationPolicy.objects.filter(organization_id=organization_id, pk=parent_id).first()
            if parent is None or parent.pk == policy.pk:
                raise AlertingError("parent", f"no other policy {parent_id} in the organisation.")
        policy.parent_id = parent_id
    if "contact_point" in data:
        raw = data["contact_point"]
        policy.contact_point = None if raw is None else (_contact_points_for(organization_id, [raw]) or [None])[0]
    if "group_by" in data:
        if not isinstance(data["group_by"], list) or not all(isinstance(label, str) for label in data["group_by"]):
            raise AlertingError("group_by", "a list of label names.")
        policy.group_by = data["group_by"]
    for api_name, field_name, _, _ in DURATIONS:
        if api_name in data and hasattr(policy, field_name):
            try:
                setattr(policy, field_name, duration_seconds(data[api_name], field=api_name))
            except RuleError as error:
                raise AlertingError(error.field, error.message) from None
    if "name" in data:
        if not isinstance(data["name"], str) or len(data["name"]) > POLICY_NAME_MAX_LENGTH:
            raise AlertingError("name", f"a text of at most {POLICY_NAME_MAX_LENGTH} characters.")
        policy.name = data["name"]
    if "position" in data:
        position = data["position"]
        if isinstance(position, bool) or not isinstance(position, int) or not 0 <= position <= 2**31 - 1:
            raise AlertingError("position", "a whole number from 0 (first among its siblings).")
        policy.position = position
    if "continue_matching" in data:
        if not isinstance(data["continue_matching"], bool):
            raise AlertingError("continue_matching", "true or false.")
        policy.continue_matching = data["continue_matching"]
    if "mute_timings" in data:
        raw = data["mute_timings"]
        if not isinstance(raw, list) or not all(isinstance(item, int) and not isinstance(item, bool) for item in raw):
            raise AlertingError("mute_timings", "a list of mute timing ids.")
        timings = list(MuteTiming.objects.filter(organization_id=organization_id, pk__in=raw))
        if len(timings) != len(set(raw)):
            raise AlertingError("mute_timings", "every id must be a mute timing of the organisation.")
        return timings
    return None


@transaction.atomic
def notification_policy_create(*, organization: Organization, data: dict) -> NotificationPolicy:
    """Add a node to the organisation's routing tree."""
    policy = NotificationPolicy(organization=organization)
    timings = _policy_apply(policy, data, partial=False)
    policy.save()
    if timings is not None:
        policy.mute_timings.set(timings)
    audit_record(action="notification_policy.created", obj=policy, details={"matchers": policy.matchers})
    return policy


@transaction.atomic
def notification_policy_update(*, policy: NotificationPolicy, data: dict) -> NotificationPolicy:
    """Change a policy node (only the fields sent)."""
    timings = _policy_apply(policy, data, partial=True)
    policy.save()
    if timings is not None:
        policy.mute_timings.set(timings)
    audit_record(action="notification_policy.changed", obj=policy, details={"fields": sorted(data)})
    return policy


def notification_policy_delete(*, policy: NotificationPolicy) -> None:
    """Remove a policy node and its children."""
    organization, policy_id = policy.organization, policy.id
    with transaction.atomic():
        policy.delete()
        audit_record(action="notification_policy.deleted", organization=organization, details={"id": policy_id})


def _moment(raw: Any, field: str, default: datetime | None = None) -> datetime:
    if raw is None and default is not None:
        return default
    moment = parse_datetime(raw) if isinstance(raw, str) else None
    if moment is None or moment.tzinfo is None:
        raise AlertingError(field, "an ISO 8601 time with a zone, e.g. 2026-01-05T08:00:00Z.")
    return moment


def silence_create(*, organization: Organization, created_by: AbstractBaseUser | None, data: dict) -> Silence:
    """Silence alerts whose labels match, from starts_at (default now) until ends_at."""
    try:
        matchers = matchers_clean(data.get("matchers"), allow_empty=False)
    except MatcherError as error:
        raise AlertingError(error.field, error.message) from None
    starts_at = _moment(data.get("starts_at"), "starts_at", default=timezone.now())
    ends_at = _moment(data.get("ends_at"), "ends_at")
    if ends_at <= starts_at:
        raise AlertingError("ends_at", "must be after starts_at.")
    comment = data.get("comment", "")
    if not isinstance(comment, str) or len(comment) > 500:
        raise AlertingError("comment", "text of at most 500 characters.")
    silence = Silence.objects.create(
        organization=organization, matchers=matchers, starts_at=starts_at, ends_at=ends_at, comment=comment,
        created_by=created_by,
    )  # fmt: skip
    audit_record(
        action="silence.created", actor=created_by, obj=silence,
        details={"matchers": matchers, "starts_at": starts_at.isoformat(), "ends_at": ends_at.isoformat()},
    )  # fmt: skip
    return silence


def silence_expire(*, silence: Silence) -> Silence:
    """End a silence now (what deleting one does: the record stays)."""
    now = timezone.now()
    if silence.ends_at > now:
        silence.ends_at = max(now, silence.starts_at)
        silence.save(update_fields=["ends_at"])
        audit_record(action="silence.expired", obj=silence, details={"matchers": silence.matchers})
    return silence


def _mute_timing_name(raw: Any) -> str:
    if not isinstance(raw, str) or not raw.strip():
        raise AlertingError("name", "required.")
    return raw.strip()


def _mute_timing_name_free(*, organization_id: int, name: str, timing_id: int | None = None) -> None:
    """409 when another mute timing of the organisation has this name."""
    if MuteTiming.objects.filter(organization_id=organization_id, name=name).exclude(pk=timing_id).exists():
        raise AlertingError("name", "the organisation already has a mute timing of this name.", status=409)


def _mute_intervals(raw: Any) -> list[dict]:
    try:
        return mute_intervals_clean(raw)
    except MatcherError as error:
        raise AlertingError(error.field, error.message) from None


def mute_timing_create(*, organization: Organization, data: dict) -> MuteTiming:
    """A named set of recurring windows that policies can mute by."""
    name = _mute_timing_name(data.get("name"))
    intervals = _mute_intervals(data.get("intervals"))
    _mute_timing_name_free(organization_id=organization.id, name=name)
    timing = MuteTiming.objects.create(organization=organization, name=name, intervals=intervals)
    audit_record(action="mute_timing.created", obj=timing, details={"intervals": intervals})
    return timing


def mute_timing_update(*, timing: MuteTiming, data: dict) -> MuteTiming:
    """Change a mute timing's name or intervals (only the fields sent); the policies using it follow."""
    if "name" in data:
        timing.name = _mute_timing_name(data["name"])
        _mute_timing_name_free(organization_id=timing.organization_id, name=timing.name, timing_id=timing.pk)
    if "intervals" in data:
        timing.intervals = _mute_intervals(data["intervals"])
    timing.save()
    audit_record(
        action="mute_timing.changed", obj=timing, details={"fields": sorted(data), "intervals": timing.intervals}
    )
    return timing


def mute_timing_delete(*, timing: MuteTiming) -> None:
    """Delete a mute timing; 409 while a notification policy uses it (its alerts would notify at once)."""
    used_by = list(timing.policies.values_list("name", flat=True)[:5])
    if used_by:
        names = ", ".join(name or "(unnamed)" for name in used_by)
        raise AlertingError(
            "id", f"notification policies use this mute timing ({names}); remove it there first.", status=409
        )
    organization, timing_id, name = timing.organization, timing.id, timing.name
    with transaction.atomic():
        timing.delete()
        audit_record(action="mute_timing.deleted", organization=organization, details={"id": timing_id, "name": name})


# Instances ----------------------------------------------------------------------------------------------------------


def alert_instance_acknowledge(*, instance: AlertInstance, user: AbstractBaseUser) -> AlertInstance:
    """Acknowledge an instance: someone is on it (repeat notifications stop until it resolves)."""
    instance.acknowledged_by, instance.acknowledged_at = user, timezone.now()
    instance.save(update_fields=["acknowledged_by", "acknowledged_at"])
    audit_record(
        action="alert.acknowledged", actor=user, organization=instance.rule.organization_id, obj=instance,
        details={"rule": instance.rule_id, "labels": instance.labels},
    )  # fmt: skip
    return instance


def alert_instance_assign(*, instance: AlertInstance, assignee_id: int | None) -> AlertInstance:
    """Assign an instance to a member of the rule's organisation (None: unassign)."""
    if assignee_id is not None:
        membership = (
            Membership.objects.filter(organization_id=instance.rule.organization_id, user_id=assignee_id)
            .select_related("user")
            .first()
        )
        if membership is None:
            raise AlertingError("assignee", f"user {assignee_id} is not a member of the rule's organisation.")
        instance.assignee = membership.user
    else:
        instance.assignee = None
    instance.save(update_fields=["assignee"])
    audit_record(
        action="alert.assigned", organization=instance.rule.organization_id, obj=instance,
        details={"rule": instance.rule_id, "labels": instance.labels, "assignee": assignee_id},
    )  # fmt: skip
    return instance
