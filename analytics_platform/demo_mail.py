"""The demo's mail, readable in the browser: `make demo` keeps every report and alert mail in a Maildir (its own
SMTP server, the Procfile's `mail`) instead of sending it; these pages list and show those messages.

Only with `DEMO_MAIL_DIR` set, which only the development settings read and only `make demo` sets (and only while
it keeps mail rather than sending it), and only for superusers: the messages hold every recipient's data. Message
bodies are shown as text, escaped; attachments are downloaded, never rendered in the page.
"""

from __future__ import annotations

import mailbox
from dataclasses import dataclass
from email import message_from_bytes
from email.message import EmailMessage
from email.policy import default as default_policy
from email.utils import parsedate_to_datetime
from pathlib import Path

from django.conf import settings
from django.contrib.auth.decorators import login_required
from django.core.paginator import Paginator
from django.http import Http404, HttpRequest, HttpResponse
from django.shortcuts import render
from django.utils.http import content_disposition_header

from analytics_platform.pagination import page_links

MESSAGES_PER_PAGE = 50


@dataclass(frozen=True)
class MailSummary:
    key: str
    subject: str
    sender: str
    to: str
    date: object  # a datetime, or None when the header is missing or unreadable
    attachments: int


def _maildir() -> mailbox.Maildir:
    """The demo's Maildir, or 404: the viewer does not exist outside `make demo`."""
    directory = settings.DEMO_MAIL_DIR
    if not directory or not Path(directory, "new").is_dir():
        raise Http404("No demo mail here: `make demo` keeps its mail and shows it on this page.")
    return mailbox.Maildir(directory, factory=None, create=False)


def _superuser(request: HttpRequest) -> None:
    if not request.user.is_superuser:
        raise Http404("Only the demo's admin reads its mail.")


def _parsed(box: mailbox.Maildir, key: str) -> EmailMessage:
    try:
        handle = box.get_file(key)
    except KeyError:
        raise Http404("No such message.") from None
    with handle:
        return message_from_bytes(handle.read(), _class=EmailMessage, policy=default_policy)


def _date(message: EmailMessage):
    try:
        return parsedate_to_datetime(message["Date"]) if message["Date"] else None
    except (TypeError, ValueError):
        return None


def _attachments(message: EmailMessage) -> list[EmailMessage]:
    return list(message.iter_attachments()) if message.is_multipart() else []


@login_required
def demo_mail_list(request: HttpRequest) -> HttpResponse:
    """Every kept message, newest first, a page at a time."""
    _superuser(request)
    box = _maildir()
    summaries = []
    for key in box.iterkeys():
        message = _parsed(box, key)
        summaries.append(
            MailSummary(
                key=key,
                subject=str(message["Subject"] or "(no subject)"),
                sender=str(message["From"] or ""),
                to=str(message["To"] or ""),
                date=_date(message),
                attachments=len(_attachments(message)),
            )
        )
    summaries.sort(key=lambda item: (item.date is not None, item.date), reverse=True)
    page = Paginator(summaries, MESSAGES_PER_PAGE).get_page(request.GET.get("page"))
    return render(
        request,
        "demo_mail/list.html",
        {"page": page, "mails": page.object_list, "links": page_links(page, {}), "directory": settings.DEMO_MAIL_DIR},
    )


@login_required
def demo_mail_detail(request: HttpRequest, key: str) -> HttpResponse:
    """One message: its headers, its text, and its attachments to download."""
    _superuser(request)
    message = _parsed(_maildir(), key)
    body = message.get_body(preferencelist=("plain", "html"))
    attachments = [
        {"index": index, "name": part.get_filename() or f"attachment-{index}", "type": part.get_content_type(),
         "size": len(part.get_payload(decode=True) or b"")}
        for index, part in enumerate(_attachments(message))
    ]  # fmt: skip
    context = {
        "key": key,
        "subject": str(message["Subject"] or "(no subject)"),
        "headers": [(name, str(message[name])) for name in ("From", "To", "Cc", "Date") if message[name]],
        "body": body.get_content() if body is not None else "",
        "body_type": body.get_content_type() if body is not None else "",
        "attachments": attachments,
    }
    return render(request, "demo_mail/detail.html", context)


@login_required
def demo_mail_attachment(request: HttpRequest, key: str, index: int) -> HttpResponse:
    """An attachment, always as a download (an HTML attachment is never rendered on this site's origin)."""
    _superuser(request)
    parts = _attachments(_parsed(_maildir(), key))
    if index >= len(parts):
        raise Http404("No such attachment.")
    part = parts[index]
    response = HttpResponse(part.get_payload(decode=True) or b"", content_type="application/octet-stream")
    response["Content-Disposition"] = content_disposition_header(True, part.get_filename() or f"attachment-{index}")
    response["X-Content-Type-Options"] = "nosniff"
    return response
