"""Writes for reports: create, change, delete (keeping the beat schedule in step), and starting runs."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.core.exceptions import ValidationError
from django.core.validators import validate_email
from django.db import IntegrityError, transaction
from django.utils import timezone

from analytics_platform.field_errors import FieldError
from apps.access.models import Membership, Organization, Team
from apps.audit.services import audit_record
from apps.dashboards.models import Dashboard
from apps.reporting.message_templates import template_clean
from apps.reporting.models import Report, ReportFormat, ReportRun, RunStatus, RunTrigger
from apps.reporting.schedules import cron_clean, cron_minute_due, schedule_sync
from apps.reporting.time_ranges import period_resolve, time_range_clean, timezone_get
from apps.storage.query.spec import QuerySpecError, query_spec_parse

logger = logging.getLogger(__name__)

MAX_RECIPIENTS = 200
MAX_QUERIES = 20
REPORT_FIELDS = (
    "name",
    "organization",
    "dashboard",
    "panels",
    "queries",
    "formats",
    "recipients",
    "time_range",
    "schedule",
    "timezone",
    "subject",
    "message",
    "enabled",
)
RECIPIENT_FIELDS = ("users", "teams", "emails", "send_emails_as_me")


class ReportError(FieldError):
    """A report change refused because of one field."""


def _name_clean(value: Any) -> str:
    if not isinstance(value, str) or not value.strip():
        raise ReportError("name", "required: what the report is called.")
    if len(value.strip()) > 200:
        raise ReportError("name", "at most 200 characters.")
    return value.strip()


def _formats_clean(value: Any) -> list[str]:
    allowed = list(ReportFormat.values)
    if not isinstance(value, list) or not value or any(item not in allowed for item in value):
        raise ReportError("formats", f"a non-empty list of {', '.join(allowed)}.")
    return [item for item in allowed if item in value]


def _dashboard_clean(value: Any, organization: Organization) -> Dashboard | None:
    if value in (None, ""):
        return None
    if not isinstance(value, str):
        raise ReportError("dashboard", "a dashboard uid.")
    dashboard = Dashboard.objects.filter(uid=value, organization=organization).first()
    if dashboard is None:
        raise ReportError("dashboard", f"no dashboard {value[:40]!r} in this organisation.")
    return dashboard


def _panels_clean(value: Any, dashboard: Dashboard | None) -> list[str]:
    if value in (None, []):
        return []
    if dashboard is None:
        raise ReportError("panels", "choose panels of a dashboard: give the dashboard too.")
    if not isinstance(value, list) or any(not isinstance(key, str) for key in value):
        raise ReportError("panels", "a list of panel keys of the dashboard.")
    known = set(dashboard.panels.values_list("key", flat=True))
    missing = [key for key in value if key not in known]
    if missing:
        raise ReportError("panels", f"the dashboard has no panel {missing[0][:64]!r}.")
    return list(dict.fromkeys(value))


def _queries_clean(value: Any) -> list[dict[str, Any]]:
    if value in (None, []):
        return []
    if not isinstance(value, list) or len(value) > MAX_QUERIES:
        raise ReportError("queries", f'a list of up to {MAX_QUERIES} {{"title": "...", "query": {{...}}}}.')
    cleaned = []
    for index, item in enumerate(value):
        path = f"queries[{index}]"
        if not isinstance(item, Mapping) or not isinstance(item.get("query"), Mapping):
            raise ReportError(path, 'an object with a "query" (as POST /api/v1/query takes it) and a "title".')
        unknown = sorted(set(item) - {"title", "query", "unit", "decimals"})
        if unknown:
            raise ReportError(f"{path}.{str(unknown[0])[:40]}", "unknown field; use title, query, unit, decimals.")
        query = {key: item["query"][key] for key in item["query"] if key not in ("start", "end")}
        try:
            query_spec_parse({**query, "start": "-1h", "end": "now"})
        except QuerySpecError as error:
            raise ReportError(f"{path}.query.{error.field}", error.message) from None
        title = item.get("title") or query.get("metric", "")
        if not isinstance(title, str) or len(title) > 200:
            raise ReportError(f"{path}.title", "text of at most 200 characters.")
        unit = item.get("unit", "")
        if not isinstance(unit, str) or len(unit) > 32:
            raise ReportError(f"{path}.unit", "text of at most 32 characters.")
        decimals = item.get("decimals")
        if decimals is not None and (
            isinstance(decimals, bool) or not isinstance(decimals, int) or not 0 <= decimals <= 10
        ):
            raise ReportError(f"{path}.decimals", "a whole number from 0 to 10.")
        cleaned.append({"title": title, "query": query, "unit": unit, "decimals": decimals})
    return cleaned


def _recipients_clean(
    value: Any, organization: Organization
) -> tuple[list[AbstractBaseUser], list[Team], list[str], bool]:
    if not isinstance(value, Mapping):
        raise ReportError(
            "recipients", '{"users": ["<username>"], "emails": ["a@example.com"], "send_emails_as_me": true}.'
        )
    unknown = sorted(set(value) - set(RECIPIENT_FIELDS))
    if unknown:
        raise ReportError(f"recipients.{str(unknown[0])[:40]}", f"unknown field; use {', '.join(RECIPIENT_FIELDS)}.")
    usernames = value.get("users") or []
    team_slugs = value.get("teams") or []
    emails = value.get("emails") or []
    if not isinstance(team_slugs, list) or any(not isinstance(slug, str) for slug in team_slugs):
        raise ReportError("recipients.teams", "a list of team slugs.")
    teams = {team.slug: team for team in Team.objects.filter(organization=organization, slug__in=team_slugs)}
    unknown_teams = [slug for slug in team_slugs if slug not in teams]
    if unknown_teams:
        raise ReportError("recipients.teams", f"no team {unknown_teams[0][:64]!r} in this organisation.")
    as_me = value.get("send_emails_as_me", False)
    if not isinstance(usernames, list) or any(not isinstance(name, str) for name in usernames):
        raise ReportError("recipients.users", "a list of usernames.")
    if not isinstance(emails, list) or any(not isinstance(email, str) for email in emails):
        raise ReportError("recipients.emails", "a list of email addresses.")
    if not isinstance(as_me, bool):
        raise ReportError("recipients.send_emails_as_me", "true or false.")
    if len(usernames) + len(emails) > MAX_RECIPIENTS:
        raise ReportError("recipients", f"at most {MAX_RECIPIENTS} recipients.")
    members = {
        user.get_username(): user
        for user in get_user_model().objects.filter(
            username__in=usernames, memberships__organization=organization, is_active=True
        )
    }
    missing = [name for name in usernames if name not in members]
    if missing:
        raise ReportError("recipients.users", f"no active member {missing[0][:64]!r} in this organisation.")
    without_address = [name for name in usernames if not members[name].email]
    if without_address:
        raise ReportError("recipients.users", f"{without_address[0]!r} has no email address.")
    cleaned_emails = []
    for email in emails:
        try:
            validate_email(email)
        except ValidationError:
            raise ReportError("recipients.emails", f"{email[:100]!r} is not an email address.") from None
        cleaned_emails.append(email.strip().lower())
    if cleaned_emails and not as_me:
        raise ReportError(
            "recipients.send_emails_as_me",
            "external addresses receive what you can see: set send_emails_as_me to true to allow it.",
        )
    if not usernames and not teams and not cleaned_emails:
        raise ReportError("recipients", "name at least one user, team or email address.")
    return (
        [members[name] for name in dict.fromkeys(usernames)],
        [teams[slug] for slug in dict.fromkeys(team_slugs)],
        list(dict.fromkeys(cleaned_emails)),
        as_me,
    )


def _schedule_clean(value: Any) -> tuple[str, str | None]:
    """(cron, timezone or None); a null schedule means the report runs only when asked."""
    if value is None:
        return "", None
    if not isinstance(value, Mapping):
        raise ReportError("schedule", '{"cron": "0 7 * * 1", "timezone": "Europe/London"} or null.')
    unknown = sorted(set(value) - {"cron", "timezone"})
    if unknown:
        raise ReportError(f"schedule.{str(unknown[0])[:40]}", "unknown field; use cron and timezone.")
    cron = cron_clean(value.get("cron"))
    zone = value.get("timezone")
    if zone is not None:
        timezone_get(zone, field="schedule.timezone")
    return cron, zone


def _apply(report: Report, data: Mapping[str, Any], *, creating: bool) -> tuple[list | None, list | None]:
    unknown = sorted(set(data) - set(REPORT_FIELDS))
    if unknown:
        raise ReportError(str(unknown[0])[:64], f"unknown field; the fields are {', '.join(REPORT_FIELDS)}.")
    if creating or "name" in data:
        report.name = _name_clean(data.get("name"))
    if creating or "dashboard" in data:
        report.dashboard = _dashboard_clean(data.get("dashboard"), report.organization)
    if creating or "panels" in data or "dashboard" in data:
        report.panel_keys = _panels_clean(
            data.get("panels", report.panel_keys if not creating else []), report.dashboard
        )
    if creating or "queries" in data:
        report.queries = _queries_clean(data.get("queries"))
    if report.dashboard is None and not report.queries:
        raise ReportError("dashboard", "a report shows a dashboard, some queries, or both: give one.")
    if creating or "formats" in data:
        report.formats = _formats_clean(data.get("formats", ["pdf"]))
    if creating or "time_range" in data:
        try:
            report.time_range = time_range_clean(data.get("time_range", {"start": "-7d", "end": "now"}))
        except FieldError as error:
            raise ReportError(error.field, error.message) from None
    if creating or "schedule" in data:
        report.cron, zone = _schedule_clean(data.get("schedule"))
        if zone:
            report.timezone = zone
    if "timezone" in data:
        timezone_get(data["timezone"])
        report.timezone = data["timezone"]
    if "subject" in data:
        report.subject_template = template_clean(data["subject"], field="subject", maximum=500)
    if "message" in data:
        report.message_template = template_clean(data["message"], field="message", maximum=10_000)
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise ReportError("enabled", "true or false.")
        report.enabled = data["enabled"]
    users = teams = None
    if creating or "recipients" in data:
        users, teams, report.recipient_emails, report.send_emails_as_owner = _recipients_clean(
            data.get("recipients"), report.organization
        )
    return users, teams


@transaction.atomic
def report_create(*, organization: Organization, owner: AbstractBaseUser, data: Mapping[str, Any]) -> Report:
    """A new report from the API's JSON shape; its schedule is registered with beat in the same transaction."""
    report = Report(organization=organization, owner=owner)
    try:
        users, teams = _apply(report, data, creating=True)
    except FieldError as error:
        raise ReportError(error.field, error.message, status=error.status) from None
    report.save()
    report.recipient_users.set(users or [])
    report.recipient_teams.set(teams or [])
    schedule_sync(report)
    audit_record(action="report.created", obj=report, details={"name": report.name, "cron": report.cron})
    return report


@transaction.atomic
def report_update(*, report: Report, data: Mapping[str, Any]) -> Report:
    """Change the given fields (a partial update) and bring the schedule in step."""
    report = Report.objects.select_for_update().get(pk=report.pk)
    try:
        users, teams = _apply(report, data, creating=False)
    except FieldError as error:
        raise ReportError(error.field, error.message, status=error.status) from None
    report.save()
    if users is not None:
        report.recipient_users.set(users)
        report.recipient_teams.set(teams or [])
    schedule_sync(report)
    audit_record(action="report.changed", obj=report, details={"fields": sorted(data)})
    return report


@transaction.atomic
def report_delete(*, report: Report) -> None:
    """Delete the report, its runs and its beat schedule."""
    task = report.periodic_task
    audit_record(action="report.deleted", obj=report, details={"name": report.name})
    report.delete()
    if task is not None:
        task.delete()


def report_run_start(
    *,
    report: Report,
    trigger: str,
    requested_by: AbstractBaseUser | None = None,
    scheduled_for: datetime | None = None,
    now: datetime | None = None,
) -> ReportRun | None:
    """Record a run and queue its rendering after commit; a scheduled minute already run gives None."""
    from apps.reporting.tasks import report_run_execute

    now = now or timezone.now()
    start, end = period_resolve(report.time_range, now=now, zone=timezone_get(report.timezone))
    try:
        with transaction.atomic():
            run = ReportRun.objects.create(
                report=report,
                trigger=trigger,
                requested_by=requested_by,
                scheduled_for=scheduled_for,
                period_start=start,
                period_end=end,
                status=RunStatus.QUEUED,
            )
    except IntegrityError:
        logger.info("report %s: the run scheduled for %s exists already", report.pk, scheduled_for)
        return None
    if trigger == RunTrigger.MANUAL:
        audit_record(action="report.run_requested", actor=requested_by, obj=report, details={"run": run.pk})
    transaction.on_commit(lambda: report_run_execute.delay(run.pk))
    return run


def report_run_scheduled(*, report_id: int, now: datetime | None = None) -> ReportRun | None:
    """The beat schedule's entry point: one run per report and scheduled minute, however often beat delivers it."""
    report = Report.objects.filter(pk=report_id, enabled=True).first()
    if report is None or not report.cron:
        logger.info("report %s: scheduled run skipped (deleted, disabled or unscheduled)", report_id)
        return None
    now = now or timezone.now()
    minute = cron_minute_due(report.cron, zone=report.timezone, now=now) or now.astimezone(UTC).replace(
        second=0, microsecond=0
    )
    return report_run_start(report=report, trigger=RunTrigger.SCHEDULE, scheduled_for=minute, now=now)


def member_role(*, user: AbstractBaseUser, organization: Organization) -> str | None:
    """The user's role in the organisation, or None."""
    return Membership.objects.filter(user=user, organization=organization).values_list("role", flat=True).first()
