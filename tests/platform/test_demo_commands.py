"""The demo's commands: clear messages when a service is down, and an idempotent setup."""

from __future__ import annotations

import os
import re
import subprocess
import sys

import pytest
from django.conf import settings as settings_module
from django.contrib.auth import authenticate, get_user_model
from django.core.management import call_command

from tests.conftest import REPO_ROOT, closed_port


def _run_manage(args: list[str], **environment: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "manage.py", *args],
        cwd=REPO_ROOT,
        env={**os.environ, "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.dev", **environment},
        capture_output=True,
        text=True,
        timeout=180,  # migrating a new database; a bound against a hang, not a speed check
    )


def _reachable_database_url() -> str:
    """The configured PostgreSQL server's maintenance database, which exists on every server (the demo's own
    database may not exist yet on a fresh machine)."""
    database = settings_module.DATABASES["default"]
    host, port = database.get("HOST") or "127.0.0.1", database.get("PORT") or "5432"
    return f"postgres://{database.get('USER') or 'postgres'}@{host}:{port}/postgres"


def test_check_services_names_missing_redis_without_traceback():
    result = _run_manage(
        ["check_services"],
        REDIS_URL=f"redis://127.0.0.1:{closed_port()}/0",
        DATABASE_URL=_reachable_database_url(),
    )
    assert result.returncode == 1
    assert "Redis is not available" in result.stderr
    assert "redis-server --daemonize yes" in result.stderr
    assert "Traceback" not in result.stderr
    assert "PostgreSQL is not available" not in result.stderr


def test_check_services_names_missing_postgres_without_traceback():
    result = _run_manage(["check_services"], DATABASE_URL=f"postgres://postgres@127.0.0.1:{closed_port()}/analytics")
    assert result.returncode == 1
    assert "PostgreSQL is not available" in result.stderr
    assert "pg_ctlcluster" in result.stderr
    assert "Traceback" not in result.stderr


def test_demo_prepare_creates_database_and_admin():
    database = f"analytics_demo_test_{os.getpid()}"
    try:
        result = _run_manage(
            ["demo", "--prepare-only"],
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
            DEMO_PASSWORD="demo-password-123",
        )
        assert result.returncode == 0, result.stderr
        assert "Login: admin / demo-password-123" in result.stdout
        check = _run_manage(
            [
                "shell",
                "-c",
                "from django.contrib.auth import authenticate; "
                "print(authenticate(username='admin', password='demo-password-123').is_superuser)",
            ],
            DATABASE_URL=f"postgres://postgres@127.0.0.1:5432/{database}",
        )
        assert check.stdout.strip().splitlines()[-1] == "True", check.stderr
    finally:
        subprocess.run(["dropdb", "-h", "127.0.0.1", "-U", "postgres", "--if-exists", database], check=False)


@pytest.mark.django_db
def test_demo_prepare_is_idempotent_in_process(monkeypatch, settings, tmp_path):
    settings.STATIC_ROOT = tmp_path
    monkeypatch.setenv("DEMO_PASSWORD", "first-password-1")
    call_command("demo", "--prepare-only")
    monkeypatch.setenv("DEMO_PASSWORD", "second-password-2")
    call_command("demo", "--prepare-only")
    assert authenticate(username="admin", password="second-password-2") is not None
    assert authenticate(username="admin", password="first-password-1") is None
    # The demo's alerting and report, once each however often the demo starts, and usable as made.
    from apps.alerts.models import AlertRule, ContactPoint, MuteTiming
    from apps.reporting.models import Report

    rule = AlertRule.objects.get(name="Hot machine")
    assert [point.name for point in rule.contact_points.all()] == ["Control room (in-app)"]
    assert rule.queries[0]["query"]["source"] == "demo-factory"
    # It fires where the temperature panels turn orange: what the dashboard shows and what alerts agree.
    from apps.dashboards.models import Dashboard
    from apps.dashboards.selectors import dashboard_document

    floor = dashboard_document(dashboard=Dashboard.objects.get(title="Factory floor"))
    warn = {step["value"] for panel in floor["panels"] if panel.get("options", {}).get("unit") == "°C"
            for step in panel["options"].get("thresholds", []) if step.get("color") == "orange"}  # fmt: skip
    assert warn == {rule.condition["value"]}
    assert ContactPoint.objects.count() == 1
    assert MuteTiming.objects.get().name == "Weekends"
    report = Report.objects.get()
    assert (report.name, report.dashboard.title, sorted(report.formats)) == (
        "Factory floor, last 7 days", "Factory floor", ["pdf", "xlsx"],
    )  # fmt: skip


@pytest.fixture
def demo_mail_server(tmp_path):
    """The Procfile's `mail` process (the demo's SMTP server, aiosmtpd), run as honcho runs it; (an SMTP client
    connected to it, its Maildir)."""
    import smtplib
    import time
    from pathlib import Path

    from tests.conftest import free_port

    line = next(line for line in (Path(REPO_ROOT) / "Procfile").read_text().splitlines() if line.startswith("mail:"))
    port, directory = free_port(), tmp_path / "var" / "demo-mail"
    environment = {**os.environ, "DEMO_SMTP_PORT": str(port), "DEMO_MAIL_DIR": str(directory),
                   "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}"}  # fmt: skip
    process = subprocess.Popen(["/bin/sh", "-c", line.split(":", 1)[1]], cwd=REPO_ROOT, env=environment)
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                client = smtplib.SMTP("127.0.0.1", port, timeout=5)
                break
            except OSError:
                assert time.monotonic() < deadline, "the demo's SMTP server did not listen within 30 s"
                assert process.poll() is None, f"the mail process exited with {process.returncode}"
                time.sleep(0.2)
        with client:
            yield client, directory
    finally:
        process.terminate()
        process.wait(timeout=10)


def test_the_demo_mail_process_keeps_what_is_sent_in_a_maildir(demo_mail_server):
    """So that "Send now" and email contact points work without a mail server: a message sent over SMTP lands in
    the mail process's Maildir."""
    import mailbox
    from email.message import EmailMessage

    client, directory = demo_mail_server
    message = EmailMessage()
    message["From"], message["To"], message["Subject"] = "reports@localhost", "admin@example.com", "Weekly"
    message.set_content("the report")
    client.send_message(message)
    kept = list(mailbox.Maildir(directory, create=False))
    assert [(item["To"], item["Subject"]) for item in kept] == [("admin@example.com", "Weekly")]


@pytest.mark.django_db
def test_the_demos_admin_reads_its_kept_mail_in_the_browser(demo_mail_server, settings, client):
    """The kept mail had no viewer (a Maildir to open by hand): /demo/mail/ lists it and shows each message, its
    text escaped and its attachments as downloads, to superusers only, and only where the demo turned it on."""
    from email.message import EmailMessage

    from tests.factories import user_create

    smtp, directory = demo_mail_server
    message = EmailMessage()
    message["From"], message["To"] = "reports@localhost", "admin@example.com"
    message["Subject"] = "Weekly <script>alert(1)</script>"
    message.set_content("Hello admin,\nattached is Weekly for last week.")
    message.add_attachment(b"%PDF-1.7 report", maintype="application", subtype="pdf", filename="weekly.pdf")
    message.add_attachment("<script>alert(2)</script>", subtype="html", filename="page.html")
    smtp.send_message(message)
    admin = get_user_model().objects.create_superuser(username="boss", email="", password="x" * 20)
    client.force_login(admin)
    assert client.get("/demo/mail/").status_code == 404  # off unless the demo turns it on (production: never)
    settings.DEMO_MAIL_DIR = str(directory)
    listing = client.get("/demo/mail/").content.decode()
    assert "Weekly &lt;script&gt;alert(1)&lt;/script&gt;" in listing
    assert "<script>alert(1)" not in listing
    key = re.search(r'href="/demo/mail/([^/"]+)/"', listing)[1]
    detail = client.get(f"/demo/mail/{key}/").content.decode()
    assert "attached is Weekly for last week." in detail
    assert "weekly.pdf" in detail
    assert "page.html" in detail
    pdf = client.get(f"/demo/mail/{key}/attachments/0")
    assert (pdf.content, pdf["Content-Disposition"]) == (b"%PDF-1.7 report", 'attachment; filename="weekly.pdf"')
    page = client.get(f"/demo/mail/{key}/attachments/1")
    assert page["Content-Type"] == "application/octet-stream"  # an HTML attachment is never rendered here
    assert page["Content-Disposition"].startswith("attachment")
    assert client.get(f"/demo/mail/{key}/attachments/2").status_code == 404
    assert client.get("/demo/mail/no-such-message/").status_code == 404
    client.force_login(user_create(username="member", role="admin"))  # an organisation admin, not a superuser
    assert client.get("/demo/mail/").status_code == 404
    assert client.get(f"/demo/mail/{key}/").status_code == 404


@pytest.mark.django_db
def test_demo_data_without_an_admin_email_makes_no_report_and_does_not_fail():
    """The benchmarks make their admin without an email address: demo_data must still run to its end (it stopped
    `make bench` at panels_drawn with "'admin' has no email address"), leaving the report out."""
    from django.contrib.auth import get_user_model

    from apps.alerts.models import AlertRule
    from apps.reporting.models import Report

    get_user_model().objects.create_superuser(username="admin", email="", password="x" * 20)
    call_command("demo_data", verbosity=0)
    assert AlertRule.objects.filter(name="Hot machine").exists()
    assert not Report.objects.exists()
