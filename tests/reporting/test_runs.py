"""A report run end to end against a real SMTP server: the files each recipient gets and what is in them."""

from __future__ import annotations

import csv
import io
import json
import zipfile
from datetime import timedelta

import openpyxl
from django_celery_beat.models import PeriodicTask
from pypdf import PdfReader

from analytics_platform.celery import app
from apps.reporting.models import DeliveryStatus, ReportRun, RunStatus
from apps.reporting.services import report_create, report_run_start
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import query_spec_parse
from tests.factories import organization_get
from tests.reporting.conftest import attachments, body_text


def _report(plant_dashboard, owner, **changes):
    data = {
        "name": "Weekly plant",
        "dashboard": plant_dashboard.uid,
        "formats": ["pdf", "xlsx", "csv"],
        "recipients": {"users": ["vic", "erin"], "emails": ["boss@partner.example"], "send_emails_as_me": True},
        "time_range": {"start": "-6h", "end": "now"},
        "schedule": {"cron": "0 7 * * 1", "timezone": "Europe/London"},
        **changes,
    }
    return report_create(organization=organization_get(), owner=owner, data=data)


def _engine(user, run, **query):
    body = {"source": "plant", "metric": "temperature", "aggregation": "avg", "group_by": ["device"], **query}
    spec = query_spec_parse({**body, "start": run.period_start.isoformat(), "end": run.period_end.isoformat()})
    return query_execute(spec=spec, principal=user)


def test_scheduled_run_sends_each_recipient_the_right_attachments(
    smtp_server, plant_dashboard, editor, viewer, django_capture_on_commit_callbacks
):
    report = _report(plant_dashboard, editor)
    app.loader.import_default_modules()  # as a worker does: tasks are found by autodiscovery
    task = PeriodicTask.objects.get(pk=report.periodic_task_id)
    assert (task.task, task.queue, json.loads(task.args)) == ("reporting.report_run_scheduled", "reports", [report.pk])
    crontab = task.crontab
    assert (crontab.minute, crontab.hour, crontab.day_of_week, str(crontab.timezone)) == (
        "0",
        "7",
        "1",
        "Europe/London",
    )

    with django_capture_on_commit_callbacks(execute=True):
        app.tasks[task.task].apply(args=json.loads(task.args))  # what beat sends at the scheduled minute
    with django_capture_on_commit_callbacks(execute=True):
        app.tasks[task.task].apply(args=json.loads(task.args))  # a redelivered tick in the same minute: no second run

    run = ReportRun.objects.get(report=report)
    assert run.status == RunStatus.SUCCEEDED
    assert sorted(run.deliveries.values_list("email", "status")) == [
        ("boss@partner.example", DeliveryStatus.SENT), ("erin@example.com", DeliveryStatus.SENT),
        ("vic@example.com", DeliveryStatus.SENT),
    ]  # fmt: skip
    assert len(smtp_server.messages) == 3
    for address in ("vic@example.com", "erin@example.com", "boss@partner.example"):
        (message,) = smtp_server.to(address)
        assert message["Subject"].startswith("Weekly plant: ")
        names = sorted(attachments(message))
        assert sorted(name.rsplit(".", 1)[1] for name in names) == ["pdf", "xlsx", "zip"], names
    assert "boss may see" not in body_text(smtp_server.to("boss@partner.example")[0])
    assert "erin may see" in body_text(smtp_server.to("boss@partner.example")[0])


def test_files_hold_the_query_engines_numbers(smtp_server, plant_dashboard, editor, viewer,
                                              django_capture_on_commit_callbacks):  # fmt: skip
    report = _report(plant_dashboard, editor, recipients={"users": ["vic"]})
    with django_capture_on_commit_callbacks(execute=True):
        run = report_run_start(report=report, trigger="manual", requested_by=editor)
    run.refresh_from_db()
    files = attachments(smtp_server.to("vic@example.com")[0])
    hourly = _engine(viewer, run, bucket="1h")
    assert [series["labels"]["device"] for series in hourly.series] == ["d0", "d1", "d2", "d3"]

    # PDF: title page, panel titles, and the engine's last hourly averages with the panel's 2 decimals.
    pdf = PdfReader(io.BytesIO(next(data for name, data in files.items() if name.endswith(".pdf"))))
    text = "\n".join(page.extract_text() for page in pdf.pages)
    assert "Weekly plant" in text
    assert "Temperature by device" in text
    assert "Hourly table" in text
    for series in hourly.series:
        last = [value for _, value in series["points"] if value is not None][-1]
        assert f"{last:,.2f}" in text
    assert "Page 1 of" in text

    # XLSX: a summary, a sheet per panel with a frozen header, typed cells, a native line chart.
    workbook = openpyxl.load_workbook(io.BytesIO(next(d for n, d in files.items() if n.endswith(".xlsx"))))
    assert workbook.sheetnames == ["Summary", "Temperature by device", "Hourly table"]
    chart_sheet = workbook["Temperature by device"]
    assert chart_sheet.freeze_panes == "B2"
    assert [cell.value for cell in chart_sheet[1]] == ["Time (Europe/London)", "device=d0", "device=d1", "device=d2",
                                                       "device=d3"]  # fmt: skip
    assert len(chart_sheet._charts) == 1
    assert type(chart_sheet._charts[0]).__name__ == "LineChart"
    assert len(workbook["Hourly table"]._charts) == 0
    table = workbook["Hourly table"]
    rows = [row for row in table.iter_rows(min_row=2, values_only=True) if any(value is not None for value in row[1:])]
    expected = [[value for _, value in series["points"] if value is not None] for series in hourly.series]
    assert [list(row[1:]) for row in rows] == [list(values) for values in zip(*expected, strict=True)]
    assert all(isinstance(row[0], type(rows[0][0])) and hasattr(row[0], "hour") for row in rows)
    valued = next(row for row in table.iter_rows(min_row=2) if row[1].value is not None)
    assert isinstance(valued[1].value, float)
    assert valued[1].number_format == '#,##0.00" °C"'
    assert valued[0].number_format == "yyyy-mm-dd hh:mm"

    # CSV: one file per panel, zipped; parses back to the engine's values.
    with zipfile.ZipFile(io.BytesIO(next(d for n, d in files.items() if n.endswith(".zip")))) as archive:
        assert sorted(archive.namelist()) == ["hourly-table.csv", "temperature-by-device.csv"]
        reader = csv.reader(io.StringIO(archive.read("hourly-table.csv").decode("utf-8")))
        header, *body = list(reader)
    assert header == ["time", "device=d0", "device=d1", "device=d2", "device=d3"]
    values = [[float(cell) for cell in row[1:]] for row in body if all(row[1:])]
    assert values == [list(row) for row in zip(*expected, strict=True)]
    # A query without a bucket is exported at one row a minute (the finest automatic resolution), in chunks.
    minutes = _engine(viewer, run, bucket="1m", max_points=10_000)
    report.queries = [
        {
            "title": "By minute",
            "query": {"source": "plant", "metric": "temperature", "group_by": ["device"]},
            "unit": "",
            "decimals": None,
        }
    ]
    report.dashboard = None
    report.save()
    smtp_server.messages.clear()
    with django_capture_on_commit_callbacks(execute=True):
        report_run_start(report=report, trigger="manual", requested_by=editor, now=run.period_end)
    by_minute = attachments(smtp_server.to("vic@example.com")[0])["by-minute.csv"]
    rows = list(csv.reader(io.StringIO(by_minute.decode())))[1:]
    assert len(rows) == len(minutes.series[0]["points"])
    engine_values = [[value for _, value in series["points"]] for series in minutes.series]
    assert [[float(cell) if cell else None for cell in row[1:]] for row in rows] == [
        list(values) for values in zip(*engine_values, strict=True)
    ]
    assert run.period_end - run.period_start == timedelta(hours=6)


def test_long_pdf_tables_repeat_their_header_on_every_page(plant, editor, viewer, tmp_path):
    from django.utils import timezone

    from apps.reporting.runs import report_content, report_files_render

    report = report_create(organization=organization_get(), owner=editor, data={
        "name": "Minutes", "queries": [{"title": "Every minute", "query": {
            "source": "plant", "metric": "temperature", "group_by": ["device"], "bucket": "1m"}}],
        "formats": ["pdf"], "recipients": {"users": ["vic"]}, "time_range": {"start": "-6h", "end": "now"},
    })  # fmt: skip
    content = report_content(report=report, principal=viewer, start=plant["start"], end=plant["end"])
    (pdf_file,) = report_files_render(report=report, content=content, directory=tmp_path, formats=["pdf"],
                                      generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    pages = [page.extract_text() for page in PdfReader(pdf_file["path"]).pages]
    table_pages = [text for text in pages[1:] if "device=d0" in text]
    assert len(table_pages) >= 3
    assert all("Time" in text and "device=d3" in text for text in table_pages)
    assert all(f"Page {number} of {len(pages)}" in text for number, text in enumerate(pages, 1))
    assert all("generated" in text for text in pages[1:])


def test_a_fine_bucket_over_a_long_period_is_charted_within_the_budget(plant, editor, viewer):
    from apps.reporting.runs import report_content

    report = report_create(organization=organization_get(), owner=editor, data={
        "name": "Month", "queries": [{"title": "Minutes", "query": {
            "source": "plant", "metric": "temperature", "group_by": ["device"], "bucket": "1m"}}],
        "formats": ["csv"], "recipients": {"users": ["vic"]}, "time_range": {"preset": "month_to_date"},
    })  # fmt: skip
    content = report_content(report=report, principal=viewer, start=plant["end"] - timedelta(days=30),
                             end=plant["end"])  # fmt: skip
    (section,) = content.sections
    assert section.error == ""
    assert len(section.columns) == 4
    assert len(section.chart_times) <= 600
    assert section.export_bucket_seconds == 60


def test_a_run_left_running_by_a_dead_worker_is_rendered_again_once(
    smtp_server, plant_dashboard, editor, viewer, django_capture_on_commit_callbacks
):
    from apps.reporting.runs import RENDER_TIME_LIMIT_SECONDS, report_run_execute

    report = _report(plant_dashboard, editor, recipients={"users": ["vic"]}, formats=["csv"])
    with django_capture_on_commit_callbacks(execute=False):
        run = report_run_start(report=report, trigger="manual", requested_by=editor)
    ReportRun.objects.filter(pk=run.pk).update(status=RunStatus.RUNNING, started_at=run.created_at)
    with django_capture_on_commit_callbacks(execute=True):
        assert report_run_execute(run_id=run.pk).status == RunStatus.RUNNING  # maybe still rendering: left alone
    assert smtp_server.messages == []
    ReportRun.objects.filter(pk=run.pk).update(
        started_at=run.created_at - timedelta(seconds=RENDER_TIME_LIMIT_SECONDS + 1)
    )
    with django_capture_on_commit_callbacks(execute=True):
        report_run_execute(run_id=run.pk)
    with django_capture_on_commit_callbacks(execute=True):
        report_run_execute(run_id=run.pk)  # delivered again by the broker: nothing more
    run.refresh_from_db()
    assert run.status == RunStatus.SUCCEEDED
    assert len(smtp_server.to("vic@example.com")) == 1
