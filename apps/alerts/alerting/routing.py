"""Where an alert's notifications go: label matchers, the notification policy tree, silences and mute timings."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from apps.alerts.models import AlertRule, ContactPoint, MuteTiming, NotificationPolicy, Silence

MATCH_OPERATORS = ("=", "!=", "=~", "!~")
MAX_MATCHERS = 20
MAX_PATTERN = 200
WEEKDAYS = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")


class MatcherError(ValueError):
    """A matcher list or mute interval that cannot be used; `field` names the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def matchers_clean(raw: Any, *, field: str = "matchers", allow_empty: bool = True) -> list[dict]:
    """Validate [{"label", "op", "value"}] (op defaults to "="); regexes must compile."""
    if not isinstance(raw, list) or len(raw) > MAX_MATCHERS or (not raw and not allow_empty):
        raise MatcherError(field, f"a list of 1 to {MAX_MATCHERS} {{label, op, value}} objects.")
    cleaned = []
    for index, item in enumerate(raw):
        where = f"{field}[{index}]"
        if not isinstance(item, dict) or not isinstance(item.get("label"), str) or not item["label"]:
            raise MatcherError(f"{where}.label", "a label name is required.")
        op = item.get("op", "=")
        if op not in MATCH_OPERATORS:
            raise MatcherError(f"{where}.op", f"use one of {', '.join(MATCH_OPERATORS)}.")
        value = item.get("value")
        if not isinstance(value, str) or len(value) > MAX_PATTERN:
            raise MatcherError(f"{where}.value", f"text of at most {MAX_PATTERN} characters.")
        if op in ("=~", "!~"):
            try:
                re.compile(value)
            except re.error as error:
                raise MatcherError(f"{where}.value", f"not a valid regular expression: {error}.") from None
        cleaned.append({"label": item["label"], "op": op, "value": value})
    return cleaned


def labels_match(matchers: list[dict], labels: dict[str, str]) -> bool:
    """Whether every matcher holds for `labels` (a missing label is the empty string)."""
    for matcher in matchers:
        value = str(labels.get(matcher["label"], ""))
        op = matcher["op"]
        if op == "=" and value != matcher["value"]:
            return False
        if op == "!=" and value == matcher["value"]:
            return False
        if op == "=~" and not re.fullmatch(matcher["value"], value):
            return False
        if op == "!~" and re.fullmatch(matcher["value"], value):
            return False
    return True


def mute_intervals_clean(raw: Any) -> list[dict]:
    """Validate [{"weekdays": [...], "times": [{"start": "HH:MM", "end": "HH:MM"}], "timezone": "UTC"}]."""
    if not isinstance(raw, list) or not raw:
        raise MatcherError("intervals", "a list of at least one {weekdays, times, timezone} object.")
    cleaned = []
    for index, item in enumerate(raw):
        where = f"intervals[{index}]"
        if not isinstance(item, dict):
            raise MatcherError(where, "an object.")
        weekdays = item.get("weekdays", list(WEEKDAYS))
        if not isinstance(weekdays, list) or any(day not in WEEKDAYS for day in weekdays):
            raise MatcherError(f"{where}.weekdays", f"day names: {', '.join(WEEKDAYS)}.")
        times = item.get("times", [{"start": "00:00", "end": "24:00"}])
        if not isinstance(times, list):
            raise MatcherError(f"{where}.times", 'a list of {"start": "HH:MM", "end": "HH:MM"}.')
        for number, span in enumerate(times):
            try:
                start, end = _minutes(span["start"]), _minutes(span["end"])
            except (KeyError, TypeError, ValueError):
                raise MatcherError(f"{where}.times[{number}]", 'start and end as "HH:MM" (end up to 24:00).') from None
            if start >= end:
                raise MatcherError(f"{where}.times[{number}].end", "must be after start.")
        zone = item.get("timezone", "UTC")
        try:
            ZoneInfo(zone)
        except (ZoneInfoNotFoundError, ValueError, TypeError):
            raise MatcherError(f"{where}.timezone", "an IANA time zone such as Europe/Berlin.") from None
        cleaned.append({"weekdays": weekdays, "times": times, "timezone": zone})
    return cleaned


def _minutes(text: str) -> int:
    hours, minutes = text.split(":")
    value = int(hours) * 60 + int(minutes)
    if not 0 <= value <= 24 * 60 or not 0 <= int(minutes) < 60:
        raise ValueError(text)
    return value


def muted(timing: MuteTiming, moment: datetime) -> bool:
    """Whether `moment` falls in one of the timing's recurring windows."""
    for interval in timing.intervals:
        local = moment.astimezone(ZoneInfo(interval["timezone"]))
        if WEEKDAYS[local.weekday()] not in interval["weekdays"]:
            continue
        minute = local.hour * 60 + local.minute
        for span in interval["times"]:
            if _minutes(span["start"]) <= minute < _minutes(span["end"]):
                return True
    return False


def silenced(*, organization_id: int, labels: dict[str, str], now: datetime) -> Silence | None:
    """The active silence that matches `labels`, if any."""
    for silence in Silence.objects.filter(organization_id=organization_id, starts_at__lte=now, ends_at__gt=now):
        if labels_match(silence.matchers, labels):
            return silence
    return None


@dataclass(frozen=True)
class Route:
    """A contact point and how to group for it."""

    contact_point: ContactPoint
    group_by: tuple[str, ...]
    group_wait_seconds: int
    group_interval_seconds: int
    repeat_interval_seconds: int
    mute_timings: tuple[MuteTiming, ...] = ()
    policy_id: int | None = None


def routes_for(*, rule: AlertRule, labels: dict[str, str]) -> list[Route]:
    """The rule's own contact points (grouped by rule) if it names any, else the matching policies' routes."""
    direct = list(rule.contact_points.all())
    if direct:
        return [
            Route(
                contact_point=contact_point,
                group_by=tuple(rule.group_by),
                group_wait_seconds=rule.group_wait_seconds,
                group_interval_seconds=rule.group_interval_seconds,
                repeat_interval_seconds=rule.repeat_interval_seconds,
            )
            for contact_point in direct
        ]
    policies = list(
        NotificationPolicy.objects.filter(organization_id=rule.organization_id)
        .select_related("contact_point")
        .prefetch_related("mute_timings")
        .order_by("position", "id")
    )
    children: dict[int | None, list[NotificationPolicy]] = {}
    for policy in policies:
        children.setdefault(policy.parent_id, []).append(policy)
    routes: list[Route] = []
    _walk(children, None, labels, routes, inherited=None)
    return routes


def _walk(children, parent_id, labels, routes: list[Route], inherited: Route | None) -> bool:
    """Depth first: the deepest matching policy with a contact point routes; True when something matched."""
    matched_any = False
    for policy in children.get(parent_id, []):
        if not labels_match(policy.matchers, labels):
            continue
        own = inherited
        if policy.contact_point is not None:
            own = Route(
                contact_point=policy.contact_point,
                group_by=tuple(policy.group_by),
                group_wait_seconds=policy.group_wait_seconds,
                group_interval_seconds=policy.group_interval_seconds,
                repeat_interval_seconds=policy.repeat_interval_seconds,
                mute_timings=tuple(policy.mute_timings.all()),
                policy_id=policy.id,
            )
        if not _walk(children, policy.id, labels, routes, own) and own is not None:
            routes.append(own)
        matched_any = True
        if not policy.continue_matching:
            break
    return matched_any
