"""Alerting pages: rules with their states, one rule (instances, history), the rule editor with a backtest preview,
instances, silences, contact points ("send test") and notification policies. Server-rendered lists; the buttons
and the editor call the REST API (static/js/alerts/alerts.js)."""

from __future__ import annotations

import json

from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.db.models import Prefetch
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render

from analytics_platform.pagination import page_links
from apps.alerts.alerting import selectors
from apps.alerts.alerting.serializers import (
    AlertRuleSerializer,
    ContactPointSerializer,
    MuteTimingSerializer,
    NotificationPolicySerializer,
    SilenceSerializer,
    StateTransitionSerializer,
)
from apps.alerts.alerting.templating import value_text
from apps.alerts.models import AlertInstance

INSTANCES_PER_PAGE = 100  # alert instances a page (the Alerts page, a rule's page)

# A new rule starts from these fields (the API's defaults); the form fills the rest.
_EDITOR_DEFAULTS = {
    "name": "",
    "enabled": True,
    "queries": [{"ref": "A", "query": {"metric": ""}}],
    "group_by": [],
    "reduction": "last",
    "window": "5m",
    "interval": "1m",
    "condition": {"type": "threshold", "op": ">"},
    "for": "0s",
    "keep_firing_for": "0s",
    "no_data_for": None,
    "severity": "warning",
    "labels": {},
    "annotations": {},
    "contact_points": [],
    "group_wait": "0s",
}
_EDITOR_FIELDS = (*_EDITOR_DEFAULTS, "expression")


def _can_edit_any(user) -> bool:
    from apps.access.selectors import organization_ids_for_user

    return user.is_superuser or bool(organization_ids_for_user(user=user, roles=selectors.EDITOR_ROLES))


@login_required
def alert_rule_list(request: HttpRequest) -> HttpResponse:
    """Rules with their instances' states."""
    rules = selectors.alert_rule_list_for_user(user=request.user).prefetch_related(
        Prefetch("instances", queryset=AlertInstance.objects.only("id", "rule_id", "state"))
    )
    rows = []
    for rule in rules:
        counts: dict[str, int] = {}
        for instance in rule.instances.all():
            counts[instance.state] = counts.get(instance.state, 0) + 1
        rows.append({"rule": rule, "states": sorted(counts.items())})
    return render(request, "alerts/rule_list.html", {"rows": rows, "can_edit": _can_edit_any(request.user)})


@login_required
def alert_rule_detail(request: HttpRequest, rule_id: int) -> HttpResponse:
    """One rule: its settings, instances (acknowledge), and state history."""
    rule = selectors.alert_rule_list_for_user(user=request.user).filter(pk=rule_id).first()
    if rule is None:
        raise Http404("No such alert rule, or you cannot see it.")
    history = list(selectors.state_transition_list_for_user(user=request.user).filter(rule=rule)[:200])
    instances = selectors.alert_instance_list_for_user(user=request.user).filter(rule=rule)
    highlight = request.GET.get("instance", "")
    number = request.GET.get("page")
    if number is None and highlight.isdigit():  # followed from the Alerts page: open the page that holds it
        ids = list(instances.values_list("id", flat=True))
        if int(highlight) in ids:
            number = ids.index(int(highlight)) // INSTANCES_PER_PAGE + 1
    page = Paginator(instances, INSTANCES_PER_PAGE).get_page(number)
    context = {
        "rule": rule,
        "document": json.dumps(AlertRuleSerializer(rule).data, indent=2, default=str),
        "instances": page.object_list,
        "page": page,
        "links": page_links(page, {}),
        "history": history,
        # The timeline's tooltips write values as the table beside it does.
        "history_data": [
            {**item, "value_text": value_text(item["value"])}
            for item in StateTransitionSerializer(history, many=True).data
        ],
        "highlight": highlight,
        "can_edit": selectors.alerting_can_edit(user=request.user, organization_id=rule.organization_id),
    }
    return render(request, "alerts/rule_detail.html", context)


@login_required
def alert_rule_editor(request: HttpRequest, rule_id: int | None = None) -> HttpResponse:
    """The rule editor: a form for the rule, a backtest preview over 24 hours or 7 days, save."""
    document = dict(_EDITOR_DEFAULTS)
    if rule_id is not None:
        rule = selectors.alert_rule_list_for_user(user=request.user).filter(pk=rule_id).first()
        if rule is None:
            raise Http404("No such alert rule, or you cannot see it.")
        data = AlertRuleSerializer(rule).data
        document = {key: data[key] for key in _EDITOR_FIELDS}
    contact_points = selectors.contact_point_list_for_user(user=request.user)
    context = {"rule_id": rule_id, "document": document, "contact_points": contact_points}
    return render(request, "alerts/rule_editor.html", context)


@login_required
def alert_instance_list(request: HttpRequest) -> HttpResponse:
    """Every instance of the user's rules, most urgent first, a page at a time."""
    instances = selectors.alert_instance_list_for_user(user=request.user)
    state = request.GET.get("state", "")
    if state:
        instances = instances.filter(state=state)
    page = Paginator(instances, INSTANCES_PER_PAGE).get_page(request.GET.get("page"))
    context = {"instances": page.object_list, "page": page, "links": page_links(page, {"state": state}), "state": state}
    return render(request, "alerts/instance_list.html", context)


@login_required
def silence_list(request: HttpRequest) -> HttpResponse:
    """Silences, with a form to add or replace one and a button to expire one."""
    silences = list(selectors.silence_list_for_user(user=request.user)[:200])
    context = {
        "silences": silences,
        "silences_data": SilenceSerializer(silences, many=True).data,
        "can_edit": _can_edit_any(request.user),
    }
    return render(request, "alerts/silence_list.html", context)


_DAY_SHORT = {"monday": "Mon", "tuesday": "Tue", "wednesday": "Wed", "thursday": "Thu", "friday": "Fri",
              "saturday": "Sat", "sunday": "Sun"}  # fmt: skip


def mute_interval_text(interval: dict) -> str:
    """One interval in words: "Sat, Sun, all day (Europe/Berlin)", "Mon-Fri, 22:00-24:00 (UTC)"."""
    days = [day for day in _DAY_SHORT if day in interval.get("weekdays", [])]
    if len(days) == 7:
        day_text = "Every day"
    elif len(days) >= 3 and list(_DAY_SHORT).index(days[-1]) - list(_DAY_SHORT).index(days[0]) == len(days) - 1:
        day_text = f"{_DAY_SHORT[days[0]]}-{_DAY_SHORT[days[-1]]}"
    else:
        day_text = ", ".join(_DAY_SHORT[day] for day in days) or "No day"
    spans = interval.get("times") or []
    whole_day = not spans or spans == [{"start": "00:00", "end": "24:00"}]
    time_text = "all day" if whole_day else ", ".join(f"{span['start']}-{span['end']}" for span in spans)
    return f"{day_text}, {time_text} ({interval.get('timezone', 'UTC')})"


@login_required
def mute_timing_list(request: HttpRequest) -> HttpResponse:
    """Mute timings (the recurring windows notification policies hold notifications in), with a form to add or
    change one, and which policies use each."""
    timings = list(selectors.mute_timing_list_for_user(user=request.user).prefetch_related("policies"))
    context = {
        "timings": [
            {
                "timing": timing,
                "when": [mute_interval_text(item) for item in timing.intervals],
                "policies": [policy.name or f"policy {policy.id}" for policy in timing.policies.all()],
            }
            for timing in timings
        ],
        "timings_data": MuteTimingSerializer(timings, many=True).data,
        "can_edit": _can_edit_any(request.user),
        "weekdays": [(day, label) for day, label in _DAY_SHORT.items()],
        "zones": MUTE_TIMING_ZONES,
    }
    return render(request, "alerts/mute_timing_list.html", context)


# Suggested in the time zone field (any IANA zone is accepted).
MUTE_TIMING_ZONES = ("UTC", "Europe/London", "Europe/Berlin", "Europe/Paris", "America/New_York", "America/Chicago",
                     "America/Los_Angeles", "Asia/Tokyo", "Asia/Kolkata", "Australia/Sydney")  # fmt: skip


@login_required
def contact_point_list(request: HttpRequest) -> HttpResponse:
    """Contact points with "send test", edit and delete, and a form to add one."""
    contact_points = list(selectors.contact_point_list_for_user(user=request.user))
    context = {
        "contact_points": contact_points,
        "contact_points_data": ContactPointSerializer(contact_points, many=True).data,
        "can_edit": _can_edit_any(request.user),
    }
    return render(request, "alerts/contact_point_list.html", context)


def _policy_label(policy) -> str:
    matchers = " ".join(f"{matcher['label']}{matcher['op']}{matcher['value']}" for matcher in policy.matchers)
    return policy.name or matchers or "every alert"


@login_required
def notification_policy_list(request: HttpRequest) -> HttpResponse:
    """The routing tree of each organisation, with forms to add, change and delete its nodes."""
    policies = list(selectors.notification_policy_list_for_user(user=request.user))
    children: dict[int | None, list] = {}
    for policy in policies:
        children.setdefault(policy.parent_id, []).append(policy)

    def walk(parent_id, depth):
        for policy in children.get(parent_id, []):
            yield {"policy": policy, "depth": min(depth, 6), "label": "· " * depth + _policy_label(policy)}
            yield from walk(policy.id, depth + 1)

    context = {
        "nodes": list(walk(None, 0)),
        "policies_data": NotificationPolicySerializer(policies, many=True).data,
        "contact_points": selectors.contact_point_list_for_user(user=request.user),
        "mute_timings": selectors.mute_timing_list_for_user(user=request.user),
        "can_edit": _can_edit_any(request.user),
    }
    return render(request, "alerts/policy_list.html", context)
