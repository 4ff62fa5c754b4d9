"""Report pages (list, editor, detail with run history and preview) and the signed download view.

The pages are server-rendered forms over the same services the REST API uses.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from zoneinfo import available_timezones

from csp.constants import SELF
from csp.decorators import csp_replace
from django.contrib import messages
from django.contrib.auth.decorators import login_required
from django.core import signing
from django.db.models import Prefetch
from django.http import FileResponse, Http404, HttpRequest, HttpResponse, HttpResponseForbidden
from django.shortcuts import redirect, render
from django.urls import reverse
from django.utils.safestring import mark_safe
from django.views.decorators.clickjacking import xframe_options_sameorigin
from django.views.decorators.http import require_POST

from analytics_platform.field_errors import FieldError
from apps.access.models import Membership, Organization, Team
from apps.access.selectors import organization_ids_for_user
from apps.dashboards.models import Panel
from apps.dashboards.selectors import dashboard_list_for_user
from apps.reporting.content import NOTHING_VISIBLE
from apps.reporting.delivery import download_token_read
from apps.reporting.message_templates import TEMPLATE_VARIABLES, subject_render, template_render
from apps.reporting.models import Report, ReportDelivery, ReportFormat, RunTrigger
from apps.reporting.runs import report_preview_render
from apps.reporting.selectors import (
    EDITOR_ROLES,
    preview_principal,
    report_can_edit,
    report_get_for_user,
    report_list_for_user,
    report_preview_choices,
    report_run_list,
)
from apps.reporting.services import report_create, report_run_start, report_update
from apps.reporting.time_ranges import PRESETS, period_label, period_resolve, timezone_get
from apps.sources.selectors import source_list_for_user
from apps.storage.query.spec import AGGREGATIONS, PERCENTILES, RAW


def _report_or_404(request: HttpRequest, report_id: int) -> Report:
    report = report_get_for_user(user=request.user, report_id=report_id)
    if report is None:
        raise Http404("No such report, or you cannot see it.")
    return report


@login_required
def report_list(request: HttpRequest) -> HttpResponse:
    """Reports with their schedule, last run and its status."""
    organizations = Organization.objects.order_by("name")
    if not request.user.is_superuser:
        organizations = organizations.filter(pk__in=organization_ids_for_user(user=request.user, roles=EDITOR_ROLES))
    return render(
        request,
        "reporting/list.html",
        {"reports": report_list_for_user(user=request.user), "can_create": organizations.exists()},
    )


# The editor's field for each refused input (the API's field path, or its first parts): (element id, label).
FORM_FIELDS = {
    "organization": ("organization", "Organisation"),
    "name": ("name", "Name"),
    "dashboard": ("dashboard", "Dashboard"),
    "panels": ("panels", "Panels"),
    "queries": ("queries", "Queries shown as tables"),
    "time_range": ("start", "Period"),
    "time_range.preset": ("preset", "Calendar period"),
    "time_range.start": ("start", "Start"),
    "time_range.end": ("end", "End"),
    "formats": ("formats", "Formats"),
    "recipients": ("users", "Recipients"),
    "recipients.users": ("users", "Users"),
    "recipients.teams": ("teams", "Teams"),
    "recipients.emails": ("emails", "External email addresses"),
    "recipients.send_emails_as_me": ("send_emails_as_me", "Send as me"),
    "subject": ("subject", "Subject template"),
    "message": ("message", "Message template"),
    "schedule": ("cron", "Schedule"),
    "schedule.cron": ("cron", "Cron"),
    "schedule.timezone": ("timezone", "Time zone"),
    "timezone": ("timezone", "Time zone"),
    "enabled": ("enabled", "Enabled"),
}


def form_error(refused: FieldError) -> dict[str, str]:
    """A refusal as the editor shows it: the field's label (not the API's path: "Users", not "recipients.users";
    a query's inner path is kept after its label, "Queries shown as tables (queries[0].query.metric)"), the
    message, and the id of the field to mark and focus."""
    path = refused.field or ""
    parts = path.replace("[", ".[").split(".")
    for length in range(len(parts), 0, -1):
        known = FORM_FIELDS.get(".".join(parts[:length]).replace(".[", "["))
        if known:
            element, label = known
            rest = path if length < len(parts) and known[0] == "queries" else ""
            return {"field": element, "label": f"{label} ({rest})" if rest else label, "message": refused.message}
    return {"field": "", "label": path, "message": refused.message}


def _invalid_attributes(error: dict[str, str] | None) -> dict[str, str]:
    """{element id: its attributes} for the refused field: marked, described by the message under it and focused
    (the formats fieldset is not focusable by itself, so it is only marked)."""
    if not error or not error["field"]:
        return {}
    attributes = ' aria-invalid="true" aria-describedby="field-error"'
    if error["field"] != "formats":
        attributes += " autofocus"
    return {error["field"]: mark_safe(attributes)}  # noqa: S308 (constant text, no input in it)


def _form_data(request: HttpRequest) -> dict:
    post = request.POST
    time_range = (
        {"preset": post.get("preset")}
        if post.get("preset")
        else {"start": post.get("start", "-7d"), "end": post.get("end", "now")}
    )
    data = {
        "name": post.get("name", ""),
        "dashboard": post.get("dashboard") or None,
        "panels": _posted_panels(post),
        "formats": post.getlist("formats"),
        "recipients": {
            "users": _posted_list(post, "users"),
            "teams": _posted_list(post, "teams"),
            "emails": [email.strip() for email in post.get("emails", "").split(",") if email.strip()],
            "send_emails_as_me": post.get("send_emails_as_me") == "on",
        },
        "time_range": time_range,
        "schedule": {"cron": post["cron"], "timezone": post.get("timezone") or "UTC"} if post.get("cron") else None,
        "timezone": post.get("timezone") or "UTC",
        "subject": post.get("subject", ""),
        "message": post.get("message", ""),
        "enabled": post.get("enabled") == "on",
    }
    queries = post.get("queries", "").strip()
    if queries:
        try:
            data["queries"] = json.loads(queries)
        except json.JSONDecodeError as error:
            raise FieldError("queries", f"not JSON: {error}") from None
    else:
        data["queries"] = []
    return data


# The IANA zones this machine knows, suggested as the schedule's time zone is typed.
TIME_ZONES = sorted(available_timezones())


def _posted_list(post, name: str) -> list[str]:
    """The values ticked (one field per ticked box: panel keys, usernames, team slugs); a comma-separated list, as
    the form once took them, also reads. In the order posted, each once."""
    items = (item.strip() for value in post.getlist(name) for item in value.split(","))
    return list(dict.fromkeys(item for item in items if item))


def _posted_panels(post) -> list[str]:
    return _posted_list(post, "panels")


def _recipient_choices(organizations: list[Organization], values: dict) -> list[dict]:
    """Per organisation the editor may save into: its members and teams to tick as recipients, each a list of
    (value, label, detail, checked) for reporting/_recipient_picks.html. The organisation chosen shows; the others
    are hidden and disabled (not sent). Recipients ticked that are not among them (a refused name, a member who
    left) are listed too, ticked, so saving never drops one unseen."""
    members: dict[int, list] = {organization.pk: [] for organization in organizations}
    for membership in (
        Membership.objects.filter(organization__in=organizations).select_related("user").order_by("user__username")
    ):
        user = membership.user
        members[membership.organization_id].append((user.username, user.username, user.get_full_name()))
    teams: dict[int, list] = {organization.pk: [] for organization in organizations}
    for team in Team.objects.filter(organization__in=organizations).order_by("name"):
        teams[team.organization_id].append((team.slug, team.name, team.slug))
    chosen = values["organization"] or (organizations[0].slug if organizations else "")

    def picks(entries: list, ticked: list[str], shown: bool) -> tuple[list[dict], list[str]]:
        """The entries to tick, those in `ticked` checked (in the shown organisation only), and the ticked values
        that are not among them."""
        known = {value for value, _, _ in entries}
        items = [
            {"value": value, "label": label, "detail": detail, "checked": shown and value in ticked}
            for value, label, detail in entries
        ]
        return items, [value for value in ticked if value not in known] if shown else []

    choices = []
    for organization in organizations:
        shown = organization.slug == chosen
        users, other_users = picks(members[organization.pk], values["users"], shown)
        team_items, other_teams = picks(teams[organization.pk], values["teams"], shown)
        choices.append({
            "organization": organization, "shown": shown, "users": users, "other_users": other_users,
            "teams": team_items, "other_teams": other_teams,
        })  # fmt: skip
    return choices


def _form_values(report: Report | None, post=None) -> dict:
    """What the editor's fields show: what was just posted (a refused form keeps everything typed), else the report's
    settings, else a new report's defaults."""
    if post is not None:
        return {
            "organization": post.get("organization", ""),
            "name": post.get("name", ""),
            "dashboard": post.get("dashboard", ""),
            "panels": _posted_panels(post),
            "queries": post.get("queries", ""),
            "preset": post.get("preset", ""),
            "start": post.get("start", "-7d"),
            "end": post.get("end", "now"),
            "formats": post.getlist("formats"),
            "users": _posted_list(post, "users"),
            "teams": _posted_list(post, "teams"),
            "emails": post.get("emails", ""),
            "send_emails_as_me": post.get("send_emails_as_me") == "on",
            "subject": post.get("subject", ""),
            "message": post.get("message", ""),
            "cron": post.get("cron", ""),
            "timezone": post.get("timezone", "UTC"),
            "enabled": post.get("enabled") == "on",
        }
    if report is None:
        return {
            "organization": "", "name": "", "dashboard": "", "panels": [], "queries": "", "preset": "",
            "start": "-7d", "end": "now", "formats": [ReportFormat.PDF], "users": [], "teams": [], "emails": "",
            "send_emails_as_me": False, "subject": Report._meta.get_field("subject_template").default,
            "message": Report._meta.get_field("message_template").default, "cron": "", "timezone": "UTC",
            "enabled": True,
        }  # fmt: skip
    time_range = report.time_range or {}
    return {
        "organization": report.organization.slug,
        "name": report.name,
        "dashboard": report.dashboard.uid if report.dashboard_id else "",
        "panels": list(report.panel_keys),
        "queries": json.dumps(report.queries) if report.queries else "",
        "preset": time_range.get("preset", ""),
        "start": time_range.get("start", "-7d"),
        "end": time_range.get("end", "now"),
        "formats": list(report.formats),
        "users": sorted(user.username for user in report.recipient_users.all()),
        "teams": sorted(team.slug for team in report.recipient_teams.all()),
        "emails": ", ".join(report.recipient_emails),
        "send_emails_as_me": report.send_emails_as_owner,
        "subject": report.subject_template,
        "message": report.message_template,
        "cron": report.cron,
        "timezone": report.timezone or "UTC",
        "enabled": report.enabled,
    }


@login_required
def report_edit(request: HttpRequest, report_id: int | None = None) -> HttpResponse:
    """The editor: create a report or change one (editors and admins)."""
    report = _report_or_404(request, report_id) if report_id else None
    if report is not None and not report_can_edit(user=request.user, report=report):
        return HttpResponseForbidden("Only organisation admins and editors may change reports.")
    organizations = list(
        Organization.objects.filter(pk__in=organization_ids_for_user(user=request.user, roles=EDITOR_ROLES)).order_by(
            "name"
        )
    )
    error = None
    if request.method == "POST":
        try:
            data = _form_data(request)
            if report is None:
                slug = request.POST.get("organization")
                organization = next((item for item in organizations if item.slug == slug), None)
                if organization is None:
                    raise FieldError("organization", "choose an organisation where you are an editor.")
                report = report_create(organization=organization, owner=request.user, data=data)
            else:
                report = report_update(report=report, data=data)
            messages.success(request, f"Saved {report.name}.")
            return redirect("report-detail", report_id=report.pk)
        except FieldError as refused:
            error = form_error(refused)
    context = {
        "report": report,
        "organizations": organizations,
        # Each with its panels, to tick the ones the report shows (none ticked: every panel).
        "dashboards": dashboard_list_for_user(user=request.user).prefetch_related(
            Prefetch(
                "panels", queryset=Panel.objects.order_by("position", "id").only("dashboard_id", "key", "title", "type")
            )
        ),
        "formats": ReportFormat.choices,
        # For the queries' rows: the aggregations a query takes, the sources the user reads (suggested by slug).
        "aggregations": (*AGGREGATIONS, *PERCENTILES, RAW),
        "sources": source_list_for_user(user=request.user),
        "presets": PRESETS,
        "timezones": TIME_ZONES,
        "variables": TEMPLATE_VARIABLES,
        "error": error,
        # The refused field's attributes, by element id (`{{ invalid.cron }}` in the template; empty for the others).
        "invalid": _invalid_attributes(error),
        "values": _form_values(report, request.POST if request.method == "POST" else None),
    }
    # An existing report's recipients come from its own organisation only.
    editable = organizations if report is None else [report.organization]
    if report is not None:
        context["values"]["organization"] = report.organization.slug
    context["recipient_choices"] = _recipient_choices(editable, context["values"])
    return render(request, "reporting/edit.html", context)


@login_required
def report_detail(request: HttpRequest, report_id: int) -> HttpResponse:
    """A report: what it sends to whom, send now, preview as a recipient, run history."""
    report = _report_or_404(request, report_id)
    choices = report_preview_choices(user=request.user, report=report)
    recipient = request.GET.get("recipient") or choices[0][0]
    preview = None
    if request.GET.get("preview") and preview_principal(user=request.user, report=report, recipient=recipient):
        zone = timezone_get(report.timezone)
        from django.utils import timezone as django_timezone

        start, end = period_resolve(report.time_range, now=django_timezone.now(), zone=zone)
        name = recipient.partition(":")[2]
        variables = {
            "report_name": report.name,
            "period": period_label(start, end, zone),
            "recipient_name": name,
            "recipient_email": name,
            "timezone": zone.key,
            "organization_name": report.organization.name,
            "dashboard_title": report.dashboard.title if report.dashboard_id else "",
        }
        preview = {
            "subject": subject_render(report.subject_template, variables),
            "message": template_render(report.message_template, variables),
            "file_url": reverse("report-preview-file", kwargs={"report_id": report.pk})
            + f"?recipient={recipient}&format=pdf",
        }
    context = {
        "report": report,
        "can_edit": report_can_edit(user=request.user, report=report),
        "runs": report_run_list(report=report)[:50],
        "choices": choices,
        "recipient": recipient,
        "preview": preview,
        "nothing_visible": NOTHING_VISIBLE,
    }
    return render(request, "reporting/detail.html", context)


@login_required
# Shown in the detail page's <iframe>: this site may frame it. Browsers obey the Content Security Policy's
# frame-ancestors over X-Frame-Options, so both say so; every other page keeps DENY and 'none'.
@xframe_options_sameorigin
@csp_replace({"frame-ancestors": [SELF]})
def report_preview_file(request: HttpRequest, report_id: int) -> HttpResponse:
    """The file a chosen recipient would get (PDF inline, XLSX/CSV as a download), rendered now under their scope."""
    report = _report_or_404(request, report_id)
    recipient = request.GET.get("recipient", "")
    principal = preview_principal(user=request.user, report=report, recipient=recipient)
    if principal is None:
        raise Http404("You may not preview this report as that recipient.")
    file_format = request.GET.get("format", "pdf")
    if file_format not in ReportFormat.values:
        raise Http404("Unknown format.")
    path, content_type, _ = report_preview_render(
        report=report, principal=principal, file_format=file_format, external=recipient.startswith("email:")
    )
    return _file_response(path, content_type, inline=file_format == "pdf", remove_directory=True)


def _file_response(path: Path, content_type: str, *, inline: bool, remove_directory: bool = False) -> FileResponse:
    handle = path.open("rb")
    if remove_directory:
        shutil.rmtree(path.parent, ignore_errors=True)  # the open handle keeps the bytes readable until sent
    response = FileResponse(handle, content_type=content_type, as_attachment=not inline, filename=path.name)
    response["X-Content-Type-Options"] = "nosniff"
    response["Cache-Control"] = "private, no-store"
    return response


@login_required
@require_POST
def report_send_now(request: HttpRequest, report_id: int) -> HttpResponse:
    """Queue a run now (editors and admins)."""
    report = _report_or_404(request, report_id)
    if not report_can_edit(user=request.user, report=report):
        return HttpResponseForbidden("Only organisation admins and editors may send reports.")
    run = report_run_start(report=report, trigger=RunTrigger.MANUAL, requested_by=request.user)
    messages.success(request, f"Run {run.pk} queued.")
    return redirect("report-detail", report_id=report.pk)


def report_download(request: HttpRequest, token: str) -> HttpResponse:
    """A file of a delivery, for whoever holds its signed link until it expires (404 forged, 410 expired)."""
    try:
        delivery_id, name = download_token_read(token)
    except signing.SignatureExpired:
        return HttpResponse(
            "This download link has expired; ask for the report to be sent again.",
            status=410,
            content_type="text/plain",
        )
    except signing.BadSignature:
        raise Http404("No such file.") from None
    delivery = ReportDelivery.objects.filter(pk=delivery_id).first()
    item = next((item for item in (delivery.files if delivery else []) if item["name"] == name), None)
    if item is None or not Path(item["path"]).is_file():
        raise Http404("No such file.")
    return _file_response(Path(item["path"]), item["content_type"], inline=False)
