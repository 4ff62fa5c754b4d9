"""Per-recipient data, nothing-visible mails, retries, links, formula payloads, templates and the PDF fetcher."""

from __future__ import annotations

import csv
import io
import logging
import re
import time
import zipfile
from datetime import UTC, datetime, timedelta
from pathlib import Path

import openpyxl
import pytest
from django.core import signing

from analytics_platform.field_errors import FieldError
from apps.access.models import DataPolicy, Membership
from apps.access.services import data_policy_create, team_create, team_member_add
from apps.audit.models import AuditEvent
from apps.reporting.content import NOTHING_VISIBLE
from apps.reporting.delivery import download_token
from apps.reporting.message_templates import subject_render, template_clean, template_render
from apps.reporting.models import DeliveryStatus, ReportDelivery, RunStatus
from apps.reporting.renderers.pdf import pdf_from_html
from apps.reporting.services import report_create, report_run_start
from tests.factories import organization_get
from tests.reporting.conftest import attachments, body_text
from tests.storage.factories import points_store, series_create, source_create


@pytest.fixture
def policies(db):
    """The test organisation without its default "everyone reads everything" policy: deny by default."""
    DataPolicy.objects.filter(organization=organization_get()).delete()
    return organization_get()


@pytest.fixture
def eager_retries():
    """Eager Celery re-runs a retried task at once only when it does not propagate the Retry (a worker retries
    after the countdown instead; the countdown is the only thing not exercised here)."""
    from analytics_platform.celery import app

    previous = app.conf.task_eager_propagates
    app.conf.task_eager_propagates = False
    yield
    app.conf.task_eager_propagates = previous


def _send(report, user, capture):
    with capture(execute=True):
        run = report_run_start(report=report, trigger="manual", requested_by=user)
    run.refresh_from_db()
    return run


def _report(board, owner, **changes):
    data = {
        "name": "Plant",
        "dashboard": board.uid,
        "formats": ["xlsx", "csv"],
        "recipients": {"users": ["vic", "erin"]},
        "time_range": {"start": "-6h", "end": "now"},
        **changes,
    }
    return report_create(organization=organization_get(), owner=owner, data=data)


def _csv_header(message, name: str | None = "hourly-table.csv") -> list[str]:
    files = attachments(message)
    if name is None:  # a report of one table: one CSV file, not zipped
        return next(csv.reader(io.StringIO(next(d for n, d in files.items() if n.endswith(".csv")).decode())))
    archive = next(data for file, data in files.items() if file.endswith(".zip"))
    with zipfile.ZipFile(io.BytesIO(archive)) as zipped:
        return next(csv.reader(io.StringIO(zipped.read(name).decode())))


def test_two_recipients_with_different_policies_get_different_rows(
    smtp_server, plant_dashboard, editor, viewer, policies, django_capture_on_commit_callbacks
):
    """vic may read facility f1 (a policy naming him); erin, through her team, facility f2; each sees only that."""
    team = team_create(organization=policies, name="Line 2", slug="line-2")
    team_member_add(team=team, username="erin")
    data_policy_create(organization=policies, name="f1 for vic", users=["vic"], labels={"facility": ["f1"]})
    data_policy_create(organization=policies, name="f2 for line 2", teams=["line-2"], labels={"facility": ["f2"]})
    report = _report(plant_dashboard, editor, recipients={"users": ["vic"], "teams": ["line-2"]})
    run = _send(report, editor, django_capture_on_commit_callbacks)
    assert run.status == RunStatus.SUCCEEDED
    assert _csv_header(smtp_server.to("vic@example.com")[0]) == ["time", "device=d0", "device=d2"]
    assert _csv_header(smtp_server.to("erin@example.com")[0]) == ["time", "device=d1", "device=d3"]
    workbook = openpyxl.load_workbook(
        io.BytesIO(next(d for n, d in attachments(smtp_server.to("vic@example.com")[0]).items() if n.endswith("xlsx")))
    )
    summary = [row[1] for row in workbook["Summary"].iter_rows(min_row=8, values_only=True)]
    assert "device=d0" in summary
    assert "device=d1" not in summary
    assert "device=d3" not in summary
    assert {delivery.email: delivery.rendered_as.username for delivery in run.deliveries.all()} == {
        "vic@example.com": "vic", "erin@example.com": "erin",
    }  # fmt: skip
    sent = AuditEvent.objects.filter(action="report.sent").order_by("id")
    assert [(event.details["to"], event.details["rendered_as"]) for event in sent] == [
        ("erin@example.com", "erin"), ("vic@example.com", "vic"),
    ]  # fmt: skip


def test_a_recipient_granted_nothing_gets_a_clear_line_not_an_empty_report(
    smtp_server, plant_dashboard, editor, viewer, policies, django_capture_on_commit_callbacks
):
    data_policy_create(organization=policies, name="erin reads all", users=["erin"])
    run = _send(_report(plant_dashboard, editor), editor, django_capture_on_commit_callbacks)
    (mail,) = smtp_server.to("vic@example.com")
    assert attachments(mail) == {}
    assert NOTHING_VISIBLE in body_text(mail)
    assert run.deliveries.get(email="vic@example.com").status == DeliveryStatus.NO_DATA
    assert len(attachments(smtp_server.to("erin@example.com")[0])) == 2


def test_reports_read_only_their_own_organisations_data(
    smtp_server, plant_dashboard, editor, viewer, django_capture_on_commit_callbacks
):
    """vic is also a member of another organisation with a source of the same name and metric; its rows never
    appear in this organisation's report (the recipient is scoped to the report's organisation)."""
    other = organization_get(slug="other-org")
    Membership.objects.create(organization=other, user=viewer, role="viewer")
    elsewhere = source_create(slug="plant-elsewhere", organization="other-org")
    points_store(series_create(source=elsewhere, metric="temperature", device="x9", facility="f9"),
                 [(datetime.now(UTC) - timedelta(hours=1), 1.0)])  # fmt: skip
    query = {"metric": "temperature", "group_by": ["device"], "bucket": "1h"}
    report = _report(plant_dashboard, editor, recipients={"users": ["vic"]}, dashboard=None,
                     queries=[{"title": "All temperatures", "query": query}])  # fmt: skip
    _send(report, editor, django_capture_on_commit_callbacks)
    header = _csv_header(smtp_server.to("vic@example.com")[0], name=None)
    assert header == ["time", "device=d0", "device=d1", "device=d2", "device=d3"]


def test_a_failed_send_is_retried_and_logged(
    smtp_server, eager_retries, plant_dashboard, editor, viewer, caplog, django_capture_on_commit_callbacks
):
    smtp_server.refuse_next = 1  # the server answers 451 to the first mail
    with caplog.at_level(logging.WARNING, logger="apps.reporting.delivery"):
        run = _send(_report(plant_dashboard, editor, recipients={"users": ["vic"]}), editor,
                    django_capture_on_commit_callbacks)  # fmt: skip
    delivery = run.deliveries.get()
    assert smtp_server.refused == 1
    assert (delivery.status, delivery.attempts) == (DeliveryStatus.SENT, 2)
    assert "attempt 1: SMTPDataError" in delivery.error
    assert any("failed, attempt 1" in record.getMessage() for record in caplog.records)
    assert run.status == RunStatus.SUCCEEDED
    assert len(smtp_server.to("vic@example.com")) == 1


def test_sends_that_keep_failing_give_up_and_mark_the_run(
    smtp_server, eager_retries, settings, plant_dashboard, editor, viewer, django_capture_on_commit_callbacks
):
    settings.REPORT_SEND_MAX_RETRIES = 2
    smtp_server.refuse_next = 10
    run = _send(_report(plant_dashboard, editor, recipients={"users": ["vic"]}), editor,
                django_capture_on_commit_callbacks)  # fmt: skip
    delivery = run.deliveries.get()
    assert (delivery.status, delivery.attempts, run.status) == (DeliveryStatus.FAILED, 3, RunStatus.FAILED)
    assert "gave up" in delivery.error


def test_large_files_are_linked_with_a_signed_expiring_url(
    smtp_server, settings, plant_dashboard, editor, viewer, client, django_capture_on_commit_callbacks
):
    settings.REPORT_EMAIL_MAX_BYTES = 1_000
    settings.REPORT_SITE_URL = "https://reports.example.com"
    run = _send(_report(plant_dashboard, editor, recipients={"users": ["vic"]}), editor,
                django_capture_on_commit_callbacks)  # fmt: skip
    (mail,) = smtp_server.to("vic@example.com")
    assert attachments(mail) == {}
    links = re.findall(r"https://reports\.example\.com(/reports/download/\S+)", body_text(mail))
    assert len(links) == 2
    delivery = run.deliveries.get()
    assert delivery.linked is True
    response = client.get(links[0])
    assert response.status_code == 200
    assert b"".join(response.streaming_content) == Path(delivery.files[0]["path"]).read_bytes()
    assert client.get(links[0][:-3] + "abc").status_code == 404  # tampered
    other = download_token(delivery_id=delivery.pk, name="../../etc/passwd")
    assert client.get(f"/reports/download/{other}").status_code == 404
    settings.REPORT_LINK_MAX_AGE_SECONDS = 1
    time.sleep(2.1)
    expired = client.get(links[0])
    assert expired.status_code == 410
    with pytest.raises(signing.SignatureExpired):
        signing.loads(links[0].rsplit("/", 1)[-1].rstrip("/"), salt="reporting.download", max_age=1)


def test_formula_payloads_come_out_inert_and_negative_numbers_stay_numbers(
    smtp_server, plant, editor, viewer, django_capture_on_commit_callbacks
):
    evil = series_create(source=plant["source"], metric="balance", account='=HYPERLINK("http://x","y")')
    tab = series_create(source=plant["source"], metric="balance", account="\tcmd")
    at = series_create(source=plant["source"], metric="balance", account="@SUM(A1)")
    for series_id in (evil, tab, at):
        points_store(series_id, [(plant["end"] - timedelta(minutes=30), -12.5)])
    report = report_create(
        organization=organization_get(), owner=editor,
        data={"name": "=cmd|'/c calc'!A0", "queries": [{"title": "+Balances", "query": {
            "source": "plant", "metric": "balance", "group_by": ["account"], "aggregation": "sum", "bucket": "1h"}}],
              "formats": ["xlsx", "csv"], "recipients": {"users": ["vic"]},
              "time_range": {"start": "-6h", "end": "now"}, "message": "{{ report_name }}"},
    )  # fmt: skip
    with django_capture_on_commit_callbacks(execute=True):
        report_run_start(report=report, trigger="manual", requested_by=editor)
    files = attachments(smtp_server.to("vic@example.com")[0])
    header, *rows = list(csv.reader(io.StringIO(next(d for n, d in files.items() if n.endswith(".csv")).decode())))
    assert header[0] == "time"
    assert sorted(header[1:]) == sorted(["account=\tcmd", 'account==HYPERLINK("http://x","y")', "account=@SUM(A1)"])
    # Names built as label=value cannot start a formula; the payloads that start cells are prefixed:
    workbook = openpyxl.load_workbook(io.BytesIO(next(d for n, d in files.items() if n.endswith(".xlsx"))))
    summary = workbook["Summary"]
    assert summary["B1"].value == "'=cmd|'/c calc'!A0"
    assert summary["B1"].data_type == "s"
    assert next(row[0].value for row in summary.iter_rows(min_row=8)) == "'+Balances"
    sheet = workbook[workbook.sheetnames[1]]
    values = [cell.value for row in sheet.iter_rows(min_row=2) for cell in row[1:] if cell.value is not None]
    assert values == [-12.5, -12.5, -12.5]
    assert all(isinstance(value, float) for value in values)
    assert all(cell.data_type != "f" for row in sheet.iter_rows() for cell in row)
    numbers = [float(cell) for row in rows for cell in row[1:] if cell]
    assert numbers == [-12.5, -12.5, -12.5]


def test_cells_are_neutralised_by_their_first_character_only():
    from analytics_platform.spreadsheet_cells import cell_safe

    values = ("=1+1", "+1", "-1+2", "@A1", "\tx", "\rx", "\nx", "-3.5", "+7", "ok", -3.5, 0)
    assert [cell_safe(value) for value in values] == [
        "'=1+1", "+1", "'-1+2", "'@A1", "'\tx", "'\rx", "'\nx", "-3.5", "+7", "ok", -3.5, 0,
    ]  # fmt: skip


def test_templates_reach_only_the_values_they_are_given(settings):
    assert template_render("{{ report_name }} {{ settings.SECRET_KEY }}{{ request }}", {"report_name": "R"}) == "R "
    assert subject_render("A\r\nBcc: x@example.com {{ report_name }}", {"report_name": "R"}) == "A Bcc: x@example.com R"
    for bad in ("{% load static %}", "{% include 'base.html' %}", "{% debug %}", "{% url 'home' %}", "{% if %}"):
        with pytest.raises(FieldError) as raised:
            template_clean(bad, field="subject", maximum=500)
        assert raised.value.field == "subject"
    assert template_clean("{% if period %}{{ period|upper }}{% endif %}", field="message", maximum=100)


def test_the_pdf_loads_only_the_projects_static_files(tmp_path):
    html = (
        '<link rel="stylesheet" href="report-static:/reporting/report_pdf.css">'
        '<img src="file:///etc/passwd"><img src="http://127.0.0.1:18799/x.png">'
        '<img src="report-static:/../../analytics_platform/settings/base.py">'
        '<link rel="stylesheet" href="report-static://evil.example.com/reporting/report_pdf.css"><p>x</p>'
    )
    fetcher = pdf_from_html(html, tmp_path / "x.pdf")
    assert sorted(fetcher.refused) == sorted([
        "file:///etc/passwd", "http://127.0.0.1:18799/x.png", "report-static://evil.example.com/reporting/report_pdf.css",
        "report-static:/../../analytics_platform/settings/base.py",
    ])  # fmt: skip
    assert (tmp_path / "x.pdf").read_bytes().startswith(b"%PDF")


def test_download_view_needs_no_login_but_a_valid_token(db, client):
    assert client.get("/reports/download/not-a-token").status_code == 404
    assert ReportDelivery.objects.count() == 0
