"""Report fixtures: a plant with points near now, a dashboard over it, and a real SMTP server (aiosmtpd)."""

from __future__ import annotations

import email
import threading
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from email.message import Message

import pytest
from aiosmtpd.controller import Controller

from apps.dashboards.models import Dashboard
from apps.dashboards.services import dashboard_create
from tests.factories import organization_get
from tests.storage.factories import points_store, series_create, source_create

# Ports 18700-18749 belong to this test area: the first free one is used (a server just stopped by the previous
# test can hold its port for a moment on a busy machine).
SMTP_PORTS = range(18700, 18750)
HOURS = 3


@dataclass
class SmtpRecorder:
    """An aiosmtpd handler that keeps every accepted message and can refuse the next N with a 451."""

    messages: list[Message] = field(default_factory=list)
    refuse_next: int = 0
    refused: int = 0
    lock: threading.Lock = field(default_factory=threading.Lock)

    async def handle_DATA(self, server, session, envelope) -> str:
        with self.lock:
            if self.refuse_next > 0:
                self.refuse_next -= 1
                self.refused += 1
                return "451 4.3.0 Try again later"
            message = email.message_from_bytes(envelope.content)
            message["X-Envelope-To"] = ", ".join(envelope.rcpt_tos)
            self.messages.append(message)
        return "250 OK"

    def to(self, address: str) -> list[Message]:
        return [message for message in self.messages if address in message["X-Envelope-To"]]


@pytest.fixture
def smtp_server(settings, tmp_path):
    """A real SMTP server on this area's port; Django's SMTP backend pointed at it."""
    recorder = SmtpRecorder()
    for port in SMTP_PORTS:
        controller = Controller(recorder, hostname="127.0.0.1", port=port)
        try:
            controller.start()
            break
        except (OSError, RuntimeError):
            continue
    else:
        raise RuntimeError(f"no free port for the SMTP server in {SMTP_PORTS}")
    settings.EMAIL_BACKEND = "django.core.mail.backends.smtp.EmailBackend"
    settings.EMAIL_HOST, settings.EMAIL_PORT = "127.0.0.1", port
    settings.EMAIL_HOST_USER = settings.EMAIL_HOST_PASSWORD = ""
    settings.EMAIL_USE_TLS = False
    settings.DEFAULT_FROM_EMAIL = "reports@example.com"
    settings.REPORT_FILES_ROOT = tmp_path / "reports"
    try:
        yield recorder
    finally:
        controller.stop()


def attachments(message: Message) -> dict[str, bytes]:
    """File name -> bytes of a mail's attachments."""
    return {part.get_filename(): part.get_payload(decode=True) for part in message.walk() if part.get_filename()}


def body_text(message: Message) -> str:
    for part in message.walk():
        if part.get_content_type() == "text/plain" and not part.get_filename():
            return part.get_payload(decode=True).decode()
    return ""


@pytest.fixture
def plant(db):
    """Four devices in two facilities, one temperature point a minute for the last 3 whole hours."""
    end = datetime.now(UTC).replace(minute=0, second=0, microsecond=0)
    start = end - timedelta(hours=HOURS)
    source = source_create(slug="plant")
    ids = {}
    for number in range(4):
        device, facility = f"d{number}", f"f{number % 2 + 1}"
        ids[device] = series_create(source=source, metric="temperature", device=device, facility=facility)
        points_store(
            ids[device], [(start + timedelta(minutes=m), float(number * 100 + m) + 0.25) for m in range(HOURS * 60)]
        )
    return {"source": source, "ids": ids, "start": start, "end": end}


def panel(key: str, title: str, panel_type: str = "timeseries", **query) -> dict:
    return {
        "key": key,
        "title": title,
        "type": panel_type,
        "queries": [{"ref": "A", "axis": "left", "query": {"source": "plant", "metric": "temperature",
                                                           "aggregation": "avg", "bucket": "1h",
                                                           "group_by": ["device"], **query}}],
        "options": {"unit": "°C", "decimals": 2},
        "grid": {"x": 0, "y": 0, "w": 12, "h": 8},
    }  # fmt: skip


@pytest.fixture
def plant_dashboard(plant, editor) -> Dashboard:
    return dashboard_create(
        organization=organization_get(),
        owner=editor,
        document={
            "schema_version": 1,
            "title": "Plant",
            "time_range": {"start": "-6h", "end": "now"},
            "panels": [panel("temp", "Temperature by device"), panel("table", "Hourly table", "table")],
        },
    )
