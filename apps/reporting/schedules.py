"""Report schedules: one django-celery-beat PeriodicTask per scheduled report, kept in step by the services.

Chosen over one beat tick that looks for due reports: beat's DatabaseScheduler already evaluates cron
expressions in any time zone (CrontabSchedule.timezone), shows each schedule in the admin, and fires a report
at its minute without polling. The services create, change or delete the task in the same transaction as the
report, so the two cannot drift; `report_schedules_sync` repairs them all (a restored database, say).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from celery.schedules import crontab
from django_celery_beat.models import CrontabSchedule, PeriodicTask

from analytics_platform.field_errors import FieldError

SCHEDULED_TASK = "reporting.report_run_scheduled"
REPORT_QUEUE = "reports"


def cron_clean(expression: object, *, field: str = "schedule.cron") -> str:
    """A five-field cron expression (minute hour day-of-month month day-of-week), or a FieldError."""
    if not isinstance(expression, str):
        raise FieldError(field, "a cron expression such as '0 7 * * 1' (every Monday at 07:00).")
    fields = expression.split()
    if len(fields) != 5:
        raise FieldError(field, "five fields: minute hour day-of-month month day-of-week, e.g. '0 7 * * 1'.")
    minute, hour, day_of_month, month, day_of_week = fields
    try:
        crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month, day_of_week=day_of_week)
    except (ValueError, TypeError, IndexError) as error:
        raise FieldError(field, f"not a valid cron expression: {error}") from None
    return " ".join(fields)


_SIMPLE_CRON = re.compile(r"^(\d{1,2}) (\d{1,2}) (\*|\d{1,2}) \* (\*|1-5|[0-7])$")
_WEEKDAYS = ("Sunday", "Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday")


def schedule_words(expression: str) -> str | None:
    """A cron the report editor's schedule picker writes, in words ("every Monday at 07:30"); None for any other
    (shown as the cron itself). The picker (static/js/reporting/edit.js, scheduleOf) reads the same five forms."""
    match = _SIMPLE_CRON.match(expression.strip())
    if match is None:
        return None
    minute, hour, day, week = match.groups()
    if int(minute) > 59 or int(hour) > 23:
        return None
    at = f"at {int(hour):02d}:{int(minute):02d}"
    if day == "*":
        if week == "*":
            return f"every day {at}"
        if week == "1-5":
            return f"every weekday {at}"
        return f"every {_WEEKDAYS[int(week) % 7]} {at}"
    if week == "*" and 1 <= int(day) <= 31:
        return f"every month on day {int(day)} {at}"
    return None


CRON_LOOKBACK_DAYS = 366


def cron_minute_due(expression: str, *, zone: str, now: datetime) -> datetime | None:
    """The latest minute at or before `now` that the cron expression names in the time zone (as UTC), looking back
    at most a year; None when it names none (an expression changed since the tick was sent).

    A scheduled run is keyed by this minute, not by the minute the tick is handled in: a tick handled late (a busy
    worker, a redelivery after a restart, a first run that outlasts the minute) still finds the run it is for.
    Fields match as celery's crontab matches them (day of month and day of week both apply)."""
    minute, hour, day_of_month, month, day_of_week = expression.split()
    schedule = crontab(minute=minute, hour=hour, day_of_month=day_of_month, month_of_year=month,
                       day_of_week=day_of_week)  # fmt: skip
    local = now.astimezone(ZoneInfo(zone)).replace(second=0, microsecond=0, tzinfo=None)
    for days_back in range(CRON_LOOKBACK_DAYS + 1):
        day = (local - timedelta(days=days_back)).date()
        weekday = day.isoweekday() % 7  # crontab counts Sunday as 0
        if day.month not in schedule.month_of_year or day.day not in schedule.day_of_month:
            continue
        if weekday not in schedule.day_of_week:
            continue
        for hour_value in sorted(schedule.hour, reverse=True):
            for minute_value in sorted(schedule.minute, reverse=True):
                candidate = datetime(day.year, day.month, day.day, hour_value, minute_value)
                if candidate <= local:
                    # fold=0: in an autumn repeated hour the first occurrence, as beat fires it first.
                    return candidate.replace(tzinfo=ZoneInfo(zone)).astimezone(UTC)
    return None


def schedule_sync(report) -> None:
    """Create, update or remove the report's PeriodicTask so it matches report.cron/timezone/enabled."""
    task = report.periodic_task
    if not report.cron or not report.enabled:
        if task is not None:
            report.periodic_task = None
            report.save(update_fields=["periodic_task"])
            task.delete()
        return
    minute, hour, day_of_month, month, day_of_week = report.cron.split()
    schedule, _ = CrontabSchedule.objects.get_or_create(
        minute=minute,
        hour=hour,
        day_of_month=day_of_month,
        month_of_year=month,
        day_of_week=day_of_week,
        timezone=report.timezone,
    )
    values = {
        "name": f"report {report.pk}: {report.name}"[:200],
        "task": SCHEDULED_TASK,
        "crontab": schedule,
        "interval": None,
        "args": json.dumps([report.pk]),
        "queue": REPORT_QUEUE,
        "enabled": True,
        "description": "Managed by the reporting app: change the report, not this task.",
    }
    if task is None:
        report.periodic_task = PeriodicTask.objects.create(**values)
        report.save(update_fields=["periodic_task"])
        return
    for key, value in values.items():
        setattr(task, key, value)
    task.save()


def report_schedules_sync() -> int:
    """Bring every report's PeriodicTask in step; returns how many reports were looked at."""
    from apps.reporting.models import Report

    count = 0
    for report in Report.objects.select_related("periodic_task"):
        schedule_sync(report)
        count += 1
    PeriodicTask.objects.filter(task=SCHEDULED_TASK).exclude(
        pk__in=Report.objects.exclude(periodic_task=None).values("periodic_task")
    ).delete()
    return count
