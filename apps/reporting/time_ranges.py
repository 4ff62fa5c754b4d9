"""A report's period relative to the run: engine times ('-7d', 'now') or calendar presets in the report's zone."""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import UTC, datetime, timedelta
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError, available_timezones

from analytics_platform.field_errors import FieldError
from apps.storage.query.spec import QuerySpecError, time_parse

_RELATIVE = re.compile(r"^(?:now|(?:now)?\s*-\s*\d+\s*[smhdw])$")
# Calendar periods end at the start of the current one: "last calendar month" on 3 March is 1 Feb - 1 Mar.
PRESETS = ("today", "yesterday", "last_7_days", "last_calendar_week", "last_calendar_month", "month_to_date")


def timezone_get(name: Any, *, field: str = "timezone") -> ZoneInfo:
    """The IANA zone with this name, or a FieldError naming `field`."""
    if not isinstance(name, str) or not name or name not in _zone_names():
        raise FieldError(field, f"{str(name)[:64]!r} is not an IANA time zone, e.g. 'Europe/London' or 'UTC'.")
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise FieldError(field, f"{name!r} is not an IANA time zone.") from None


_ZONES: frozenset[str] | None = None


def _zone_names() -> frozenset[str]:
    global _ZONES
    if _ZONES is None:
        _ZONES = frozenset(available_timezones()) | {"UTC"}
    return _ZONES


def time_range_clean(value: Any) -> dict[str, str]:
    """Validate a report's time range: {"start": "-7d", "end": "now"} or {"preset": "last_calendar_month"}."""
    if not isinstance(value, Mapping):
        raise FieldError(
            "time_range", 'an object: {"start": "-7d", "end": "now"} or {"preset": "last_calendar_month"}.'
        )
    if "preset" in value:
        if set(value) != {"preset"}:
            raise FieldError("time_range", "give either a preset or start and end, not both.")
        if value["preset"] not in PRESETS:
            raise FieldError("time_range.preset", f"use one of {', '.join(PRESETS)}.")
        return {"preset": value["preset"]}
    unknown = sorted(set(value) - {"start", "end"})
    if unknown:
        raise FieldError(f"time_range.{str(unknown[0])[:50]}", "unknown field; use start and end, or preset.")
    start, end = value.get("start", "-7d"), value.get("end", "now")
    for name, text in (("start", start), ("end", end)):
        # Relative times only: a report re-runs every week, a fixed date would report the same period forever.
        if not isinstance(text, str) or not _RELATIVE.match(text.strip()):
            raise FieldError(f"time_range.{name}", "a time relative to the run: 'now', '-24h', '-7d', 'now-30m'.")
    now = datetime(2026, 1, 1, tzinfo=UTC)
    try:
        if time_parse(end, field="time_range.end", now=now) <= time_parse(start, field="time_range.start", now=now):
            raise FieldError("time_range.end", "must be after start.")
    except QuerySpecError as error:
        raise FieldError(error.field, error.message) from None
    return {"start": start.strip(), "end": end.strip()}


def period_resolve(time_range: Mapping[str, str], *, now: datetime, zone: ZoneInfo) -> tuple[datetime, datetime]:
    """The [start, end) a run covers, in UTC."""
    preset = time_range.get("preset")
    if preset is None:
        return (
            time_parse(time_range["start"], field="time_range.start", now=now),
            time_parse(time_range["end"], field="time_range.end", now=now),
        )
    local = now.astimezone(zone)
    midnight = _local_midnight(local.date(), zone)
    if preset == "today":
        return midnight.astimezone(UTC), now
    if preset == "yesterday":
        return _local_midnight(local.date() - timedelta(days=1), zone).astimezone(UTC), midnight.astimezone(UTC)
    if preset == "last_7_days":
        return _local_midnight(local.date() - timedelta(days=7), zone).astimezone(UTC), midnight.astimezone(UTC)
    if preset == "last_calendar_week":
        monday = local.date() - timedelta(days=local.weekday())
        return (
            _local_midnight(monday - timedelta(days=7), zone).astimezone(UTC),
            _local_midnight(monday, zone).astimezone(UTC),
        )
    first_of_month = local.date().replace(day=1)
    if preset == "month_to_date":
        return _local_midnight(first_of_month, zone).astimezone(UTC), now
    # last_calendar_month
    first_of_previous = (first_of_month - timedelta(days=1)).replace(day=1)
    return (
        _local_midnight(first_of_previous, zone).astimezone(UTC),
        _local_midnight(first_of_month, zone).astimezone(UTC),
    )


def _local_midnight(day, zone: ZoneInfo) -> datetime:
    return datetime(day.year, day.month, day.day, tzinfo=zone)


def period_label(start: datetime, end: datetime, zone: ZoneInfo) -> str:
    """'2026-02-01 00:00 to 2026-03-01 00:00 Europe/London' as mails and footers show it."""
    text = "%Y-%m-%d %H:%M"
    return f"{start.astimezone(zone).strftime(text)} to {end.astimezone(zone).strftime(text)} {zone.key}"
