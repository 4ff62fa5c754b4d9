"""Mailing a rendered report to one recipient through Django's email backend, and the signed download links.

Files up to REPORT_EMAIL_MAX_BYTES (all attachments of a mail together) are attached; above it the mail
carries one link per file, signed with Django's signing (the delivery and file name, salted) and valid for
REPORT_LINK_MAX_AGE_SECONDS. A recipient who may see none of the report's data gets a mail saying so and
no files.
"""

from __future__ import annotations

import logging
from datetime import datetime
from pathlib import Path
from typing import Any

from django.conf import settings
from django.core import signing
from django.core.mail import EmailMessage, get_connection
from django.db import transaction
from django.urls import reverse
from django.utils import timezone

from apps.audit.services import audit_record
from apps.reporting.content import NOTHING_VISIBLE
from apps.reporting.message_templates import subject_render, template_render
from apps.reporting.models import DeliveryStatus, ReportDelivery
from apps.reporting.time_ranges import period_label, timezone_get

logger = logging.getLogger(__name__)

LINK_SALT = "reporting.download"


class DeliveryFailed(Exception):
    """Sending failed; the task retries it."""


def template_variables(*, delivery: ReportDelivery, generated_at: datetime) -> dict[str, str]:
    """The only values subject and message templates can use."""
    run = delivery.run
    report = run.report
    zone = timezone_get(report.timezone)
    name = delivery.user.get_full_name() or delivery.user.get_username() if delivery.user else delivery.email
    return {
        "report_name": report.name,
        "period": period_label(run.period_start, run.period_end, zone),
        "period_start": run.period_start.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "period_end": run.period_end.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
        "timezone": zone.key,
        "generated_at": generated_at.astimezone(zone).strftime("%Y-%m-%d %H:%M %Z"),
        "recipient_name": name,
        "recipient_email": delivery.email,
        "dashboard_title": report.dashboard.title if report.dashboard_id else "",
        "organization_name": report.organization.name,
    }


def download_token(*, delivery_id: int, name: str) -> str:
    """A signed, timestamped token naming one file of one delivery."""
    return signing.dumps({"d": delivery_id, "f": name}, salt=LINK_SALT, compress=True)


def download_token_read(token: str) -> tuple[int, str]:
    """(delivery id, file name) of a token; signing.BadSignature or SignatureExpired when it is not valid."""
    data = signing.loads(token, salt=LINK_SALT, max_age=settings.REPORT_LINK_MAX_AGE_SECONDS)
    return int(data["d"]), str(data["f"])


def download_url(*, delivery_id: int, name: str) -> str:
    """The absolute link to a file of a delivery."""
    token = download_token(delivery_id=delivery_id, name=name)
    return settings.REPORT_SITE_URL + reverse("report-download", kwargs={"token": token})


def delivery_message(*, delivery: ReportDelivery, now: datetime | None = None) -> tuple[EmailMessage, bool]:
    """The mail for a delivery and whether it links (rather than attaches) the files."""
    report = delivery.run.report
    variables = template_variables(delivery=delivery, generated_at=now or timezone.now())
    subject = subject_render(report.subject_template, variables)
    body = template_render(report.message_template, variables).rstrip() + "\n"
    files: list[dict[str, Any]] = delivery.files
    linked = False
    if not files:
        body += "\n" + NOTHING_VISIBLE + "\n"
    elif sum(item["bytes"] for item in files) > settings.REPORT_EMAIL_MAX_BYTES:
        linked = True
        days = settings.REPORT_LINK_MAX_AGE_SECONDS / 86_400
        body += (
            f"\nThe files are too large to attach ({sum(item['bytes'] for item in files) / 1e6:.1f} MB); "
            f"download them within {days:g} days:\n"
        )
        for item in files:
            body += f"- {item['name']}: {download_url(delivery_id=delivery.pk, name=item['name'])}\n"
    if delivery.user is None:
        body += f"\nThis report shows the data {report.owner.get_username()} may see; they chose to send it to you.\n"
    message = EmailMessage(subject=subject, body=body, from_email=settings.DEFAULT_FROM_EMAIL, to=[delivery.email])
    if files and not linked:
        for item in files:
            message.attach(item["name"], Path(item["path"]).read_bytes(), item["content_type"])
    return message, linked


def delivery_send(*, delivery_id: int) -> ReportDelivery:
    """Send one delivery's mail; raises DeliveryFailed (after recording the attempt) so the task can retry."""
    with transaction.atomic():
        delivery = (
            ReportDelivery.objects.select_for_update(of=("self",))
            .select_related("run__report__organization", "run__report__owner", "run__report__dashboard", "user")
            .get(pk=delivery_id)
        )
        if delivery.status != DeliveryStatus.PENDING:
            return delivery  # redelivered task after a send that went through: never mail twice
        delivery.attempts += 1
        delivery.save(update_fields=["attempts"])
    message, linked = delivery_message(delivery=delivery)
    try:
        with get_connection(fail_silently=False) as connection:
            connection.send_messages([message])
    except Exception as error:
        text = f"attempt {delivery.attempts}: {type(error).__name__}: {error}"
        logger.warning("report delivery %s to %s failed, %s", delivery.pk, delivery.email, text)
        ReportDelivery.objects.filter(pk=delivery.pk).update(error=(delivery.error + "\n" + text).strip()[-4000:])
        raise DeliveryFailed(text) from error
    delivery.status = DeliveryStatus.SENT if delivery.files else DeliveryStatus.NO_DATA
    delivery.linked, delivery.sent_at = linked, timezone.now()
    delivery.save(update_fields=["status", "linked", "sent_at"])
    report = delivery.run.report
    audit_record(
        action="report.sent", obj=report, actor_description=f"report run {delivery.run_id}",
        details={"run": delivery.run_id, "to": delivery.email, "status": delivery.status, "linked": linked,
                 "rendered_as": delivery.rendered_as.get_username() if delivery.rendered_as else None,
                 "files": [item["name"] for item in delivery.files], "attempts": delivery.attempts},
    )  # fmt: skip
    logger.info("report delivery %s sent to %s (%s)", delivery.pk, delivery.email, delivery.status)
    return delivery


def delivery_give_up(*, delivery_id: int, error: str) -> None:
    """Mark a delivery failed once its retries are spent."""
    delivery = ReportDelivery.objects.select_related("run__report").get(pk=delivery_id)
    delivery.status = DeliveryStatus.FAILED
    delivery.error = (delivery.error + f"\ngave up: {error}").strip()[-4000:]
    delivery.save(update_fields=["status", "error"])
    audit_record(
        action="report.send_failed",
        obj=delivery.run.report,
        actor_description=f"report run {delivery.run_id}",
        details={"run": delivery.run_id, "to": delivery.email, "attempts": delivery.attempts},
    )
    logger.error("report delivery %s to %s failed for good: %s", delivery.pk, delivery.email, error)
