"""Reads for alerting, scoped to the organisations a user belongs to (every one for superusers)."""

from __future__ import annotations

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import Case, Count, QuerySet, Value, When

from apps.access.models import MembershipRole
from apps.access.selectors import organization_ids_for_user
from apps.alerts.models import (
    AlertInstance,
    AlertRule,
    AlertState,
    ContactPoint,
    DeliveryAttempt,
    MuteTiming,
    Notification,
    NotificationPolicy,
    Silence,
    StateTransition,
)

EDITOR_ROLES = (MembershipRole.ADMIN, MembershipRole.EDITOR)


def _scoped(queryset: QuerySet, user: AbstractBaseUser, field: str = "organization_id") -> QuerySet:
    if user.is_superuser:
        return queryset
    return queryset.filter(**{f"{field}__in": organization_ids_for_user(user=user)})


def alerting_can_edit(*, user: AbstractBaseUser, organization_id: int) -> bool:
    """Whether the user may change the organisation's alerting objects (admin or editor, or superuser)."""
    return user.is_superuser or organization_id in organization_ids_for_user(user=user, roles=EDITOR_ROLES)


def alert_rule_list_for_user(*, user: AbstractBaseUser) -> QuerySet[AlertRule]:
    """Rules of the user's organisations, with their instance counts by state."""
    return (
        _scoped(AlertRule.objects.select_related("organization", "owner"), user)
        .prefetch_related("contact_points")
        .order_by("name", "id")
    )


def contact_point_list_for_user(*, user: AbstractBaseUser) -> QuerySet[ContactPoint]:
    """Contact points of the user's organisations."""
    return _scoped(ContactPoint.objects.select_related("organization"), user).order_by("name", "id")


def notification_policy_list_for_user(*, user: AbstractBaseUser) -> QuerySet[NotificationPolicy]:
    """Notification policies (tree nodes) of the user's organisations."""
    return _scoped(
        NotificationPolicy.objects.select_related("organization", "contact_point").prefetch_related("mute_timings"),
        user,
    ).order_by("organization_id", "position", "id")


def silence_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Silence]:
    """Silences of the user's organisations, newest first."""
    return _scoped(Silence.objects.select_related("organization"), user).order_by("-starts_at", "-id")


def mute_timing_list_for_user(*, user: AbstractBaseUser) -> QuerySet[MuteTiming]:
    """Mute timings of the user's organisations."""
    return _scoped(MuteTiming.objects.select_related("organization"), user).order_by("name", "id")


# Most urgent first: the Alerts page and the alert list panel (static/js/dashboards/alert-list.js) show this order.
STATE_URGENCY = (AlertState.FIRING, AlertState.NO_DATA, AlertState.ERROR, AlertState.PENDING, AlertState.RECOVERING,
                 AlertState.NORMAL)  # fmt: skip


def alert_instance_list_for_user(*, user: AbstractBaseUser) -> QuerySet[AlertInstance]:
    """Alert instances of the user's organisations' rules, most urgent first, then the longest-standing: a page of
    them (the alert list panel's `limit`, the Alerts page's first 500) holds the firing ones before any normal one."""
    urgency = Case(*(When(state=state, then=Value(rank)) for rank, state in enumerate(STATE_URGENCY)),
                   default=Value(len(STATE_URGENCY)))  # fmt: skip
    return (
        _scoped(
            AlertInstance.objects.select_related("rule", "rule__organization", "acknowledged_by", "assignee"),
            user,
            "rule__organization_id",
        )
        .alias(urgency=urgency)
        .order_by("urgency", "state_since", "rule__name", "rule_id", "fingerprint")
    )


def state_transition_list_for_user(*, user: AbstractBaseUser) -> QuerySet[StateTransition]:
    """State history of the user's organisations' alert instances, newest first."""
    return _scoped(StateTransition.objects.select_related("instance"), user, "rule__organization_id").order_by(
        "-at", "-id"
    )


def notification_list_for_user(*, user: AbstractBaseUser) -> QuerySet[Notification]:
    """Notifications (outbox rows) to the user's organisations' contact points, newest first."""
    return _scoped(
        Notification.objects.select_related("contact_point"), user, "contact_point__organization_id"
    ).order_by("-created_at", "-id")


def delivery_attempt_list(*, notification: Notification) -> QuerySet[DeliveryAttempt]:
    """A notification's delivery attempts in order."""
    return notification.delivery_attempts.order_by("number")


def alert_instance_state_counts() -> dict[str, int]:
    """Alert instances per state across every organisation (for /metrics)."""
    return dict(AlertInstance.objects.values_list("state").annotate(count=Count("id")).values_list("state", "count"))
