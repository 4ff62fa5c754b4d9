"""Executing a run: render the report once per distinct data scope among its recipients, then queue the mails.

Each user recipient's files are rendered under that user's own data scope (the query engine applies it);
recipients whose scopes are equal share one rendering, which is the same result computed once. External
addresses get the owner's view, and only when the report says so (`send_emails_as_owner`, "send as me").
"""

from __future__ import annotations

import logging
import shutil
import time
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

from django.conf import settings
from django.contrib.auth import get_user_model
from django.contrib.auth.models import AbstractBaseUser
from django.db import transaction
from django.utils import timezone
from django.utils.text import slugify

from apps.dashboards.selectors import dashboard_document
from apps.reporting.content import ReportContent, content_build, sections_define
from apps.reporting.models import DeliveryStatus, Report, ReportDelivery, ReportRun, RunStatus
from apps.reporting.renderers.pdf import PdfMeta, pdf_render
from apps.reporting.renderers.spreadsheets import tables_render
from apps.reporting.time_ranges import timezone_get
from apps.storage.policies import DataAccessDenied, Principal, data_scope_for

logger = logging.getLogger(__name__)

# The render task's hard time limit (tasks.py): a run still "running" after it has no worker any more.
RENDER_TIME_LIMIT_SECONDS = 1900


@dataclass
class Recipient:
    """Who gets a mail, and whose data scope renders it."""

    email: str
    name: str
    user: AbstractBaseUser | None
    rendered_as: AbstractBaseUser


@dataclass
class RenderGroup:
    """Recipients whose data scopes are equal, rendered once."""

    principal: AbstractBaseUser
    recipients: list[Recipient] = field(default_factory=list)


def report_recipients(report: Report) -> list[Recipient]:
    """Users first (by their own scope), then external addresses (the owner's scope, if allowed); one per address."""
    recipients: dict[str, Recipient] = {}
    members = get_user_model().objects.filter(memberships__organization_id=report.organization_id, is_active=True)
    named = members.filter(pk__in=report.recipient_users.values("pk"))
    in_teams = members.filter(groups__team__in=report.recipient_teams.all())
    for user in (named | in_teams).distinct().order_by("username"):
        if user.email and user.email.lower() not in recipients:
            name = user.get_full_name() or user.get_username()
            recipients[user.email.lower()] = Recipient(email=user.email, name=name, user=user, rendered_as=user)
    if report.send_emails_as_owner and report.owner.is_active:
        for email in report.recipient_emails:
            recipients.setdefault(
                email.lower(), Recipient(email=email, name=email, user=None, rendered_as=report.owner)
            )
    return list(recipients.values())


def report_principal(report: Report, user: AbstractBaseUser) -> Principal:
    """The user acting in the report's organisation: only that organisation's policies apply to what they get."""
    return Principal(user=user, organization_id=report.organization_id)


def _scope_key(principal: Principal) -> str:
    try:
        return data_scope_for(principal).cache_key()
    except DataAccessDenied:
        return f"denied:{principal.pk}"


def render_groups(report: Report, recipients: list[Recipient]) -> list[RenderGroup]:
    """Recipients grouped by equal data scope (each group rendered once, as its first member)."""
    groups: dict[str, RenderGroup] = {}
    for recipient in recipients:
        key = _scope_key(report_principal(report, recipient.rendered_as))
        group = groups.setdefault(key, RenderGroup(principal=recipient.rendered_as))
        group.recipients.append(recipient)
    return list(groups.values())


def report_content(*, report: Report, principal: AbstractBaseUser, start: datetime, end: datetime) -> ReportContent:
    """The report's sections as `principal` may read them in the report's organisation over [start, end)."""
    document = dashboard_document(dashboard=report.dashboard) if report.dashboard_id else None
    definitions = sections_define(dashboard_document=document, panel_keys=report.panel_keys, queries=report.queries)
    return content_build(definitions=definitions, principal=report_principal(report, principal), start=start, end=end)


def report_files_render(
    *,
    report: Report,
    content: ReportContent,
    directory: Path,
    formats: list[str],
    generated_at: datetime,
    recipient_label: str,
) -> list[dict[str, Any]]:
    """Render the chosen formats into `directory`; returns [{"name", "path", "bytes", "content_type"}]."""
    directory.mkdir(parents=True, exist_ok=True)
    zone = timezone_get(report.timezone)
    base = slugify(report.name)[:60] or f"report-{report.pk}"
    stamp = content.end.astimezone(zone).strftime("%Y-%m-%d")
    files = []
    if "pdf" in formats:
        path = directory / f"{base}-{stamp}.pdf"
        meta = PdfMeta(
            report_name=report.name,
            organization_name=report.organization.name,
            recipient_label=recipient_label,
            zone=zone,
            generated_at=generated_at,
        )
        pdf_render(content=content, meta=meta, target=path)
        files.append(_file(path, "application/pdf"))
    if "xlsx" in formats or "csv" in formats:
        xlsx_path = directory / f"{base}-{stamp}.xlsx" if "xlsx" in formats else None
        _, csv_paths = tables_render(
            content=content, report_name=report.name, zone=zone, generated_at=generated_at, xlsx_target=xlsx_path,
            csv_directory=directory / "csv" if "csv" in formats else None, base_name=f"{base}-{stamp}",
        )  # fmt: skip
        if xlsx_path is not None:
            files.append(_file(xlsx_path, "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"))
        for path in csv_paths:
            final = directory / path.name
            path.replace(final)
            files.append(_file(final, "application/zip" if final.suffix == ".zip" else "text/csv"))
        shutil.rmtree(directory / "csv", ignore_errors=True)
    return files


def _file(path: Path, content_type: str) -> dict[str, Any]:
    return {"name": path.name, "path": str(path), "bytes": path.stat().st_size, "content_type": content_type}


def run_directory(run: ReportRun) -> Path:
    """Where a run's files are written (shared by web and workers)."""
    return Path(settings.REPORT_FILES_ROOT) / f"run-{run.pk}"


def report_run_execute(*, run_id: int) -> ReportRun:
    """Render a queued run for every recipient group and queue one mail per recipient."""
    from apps.reporting.tasks import report_delivery_send

    with transaction.atomic():
        run = (
            ReportRun.objects.select_for_update().select_related("report__owner", "report__organization").get(pk=run_id)
        )
        abandoned = (
            run.status == RunStatus.RUNNING
            and run.started_at is not None
            and run.started_at < timezone.now() - timedelta(seconds=RENDER_TIME_LIMIT_SECONDS)
            and not run.deliveries.exists()
        )
        if run.status != RunStatus.QUEUED and not abandoned:
            logger.info("report run %s is %s already: not rendered again", run.pk, run.status)
            return run
        if abandoned:  # its worker died mid-render (the task came back through acks_late): render it again
            logger.warning("report run %s was left running since %s; rendering it again", run.pk, run.started_at)
        run.status, run.started_at = RunStatus.RUNNING, timezone.now()
        run.save(update_fields=["status", "started_at"])
    report = run.report
    started = time.perf_counter()
    deliveries: list[ReportDelivery] = []
    try:
        for index, group in enumerate(render_groups(report, report_recipients(report))):
            content = report_content(
                report=report, principal=group.principal, start=run.period_start, end=run.period_end
            )
            files: list[dict[str, Any]] = []
            if content.anything_visible:
                external = any(recipient.user is None for recipient in group.recipients)
                label = (
                    f"what {report.owner.get_username()} may see (sent by them to external addresses)"
                    if external
                    else "what you may see, under your own data access"
                )
                files = report_files_render(
                    report=report,
                    content=content,
                    directory=run_directory(run) / f"g{index}",
                    formats=report.formats,
                    generated_at=timezone.now(),
                    recipient_label=label,
                )
            for recipient in group.recipients:
                deliveries.append(
                    ReportDelivery(
                        run=run,
                        user=recipient.user,
                        email=recipient.email,
                        rendered_as=recipient.rendered_as,
                        files=files,
                        status=DeliveryStatus.PENDING,
                    )
                )
    except Exception as error:
        logger.exception("report run %s failed to render", run.pk)
        run.status, run.error, run.finished_at = RunStatus.FAILED, f"rendering failed: {error}"[:2000], timezone.now()
        run.render_seconds = time.perf_counter() - started
        run.save(update_fields=["status", "error", "finished_at", "render_seconds"])
        return run
    with transaction.atomic():
        ReportDelivery.objects.bulk_create(deliveries)
        run.render_seconds = time.perf_counter() - started
        run.save(update_fields=["render_seconds"])
        if not deliveries:
            run.status, run.error, run.finished_at = RunStatus.FAILED, "no recipient to send to", timezone.now()
            run.save(update_fields=["status", "error", "finished_at"])
        ids = [delivery.pk for delivery in deliveries]
        transaction.on_commit(lambda: [report_delivery_send.delay(delivery_id) for delivery_id in ids])
    return run


def run_status_update(*, run_id: int) -> None:
    """The run's status from its deliveries' (called as each finishes)."""
    with transaction.atomic():
        run = ReportRun.objects.select_for_update().get(pk=run_id)
        statuses: Mapping[str, int] = {}
        for status in run.deliveries.values_list("status", flat=True):
            statuses[status] = statuses.get(status, 0) + 1
        if statuses.get(DeliveryStatus.PENDING):
            return
        failed = statuses.get(DeliveryStatus.FAILED, 0)
        total = sum(statuses.values())
        run.status = RunStatus.FAILED if failed == total else RunStatus.PARTIAL if failed else RunStatus.SUCCEEDED
        run.finished_at = timezone.now()
        run.save(update_fields=["status", "finished_at"])


def run_files_prune(*, now: datetime | None = None) -> int:
    """Remove the files of runs older than the download links' lifetime; returns how many runs were pruned."""
    cutoff = (now or timezone.now()) - timedelta(seconds=settings.REPORT_LINK_MAX_AGE_SECONDS + 3600)
    pruned = 0
    for run in ReportRun.objects.filter(created_at__lt=cutoff).only("pk"):
        directory = run_directory(run)
        if directory.exists():
            shutil.rmtree(directory, ignore_errors=True)
            pruned += 1
    return pruned


def report_preview_render(
    *, report: Report, principal: AbstractBaseUser, file_format: str, external: bool, now: datetime | None = None
) -> tuple[Path, str, ReportContent]:
    """Render one format for one recipient's view now, exactly as a run would; the caller removes the directory."""
    import tempfile

    from apps.reporting.time_ranges import period_resolve

    start, end = period_resolve(report.time_range, now=now or timezone.now(), zone=timezone_get(report.timezone))
    content = report_content(report=report, principal=principal, start=start, end=end)
    root = Path(settings.REPORT_FILES_ROOT) / "previews"
    root.mkdir(parents=True, exist_ok=True)
    directory = Path(tempfile.mkdtemp(dir=root))
    label = (
        f"what {report.owner.get_username()} may see (sent by them to external addresses)"
        if external
        else "what you may see, under your own data access"
    )
    files = report_files_render(
        report=report,
        content=content,
        directory=directory,
        formats=[file_format],
        generated_at=timezone.now(),
        recipient_label=label,
    )
    return Path(files[0]["path"]), files[0]["content_type"], content
