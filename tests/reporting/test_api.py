"""The reports API: the minimal contract, run now (202), run history, tenancy, roles, preview, the schema."""

from __future__ import annotations

import re

import pytest
from django.utils.html import escape

from apps.reporting.models import Report, ReportRun
from apps.reporting.services import report_create
from tests.conftest import api_client_for
from tests.factories import organization_get, user_create


def _contract(uid: str) -> dict:
    return {
        "name": "Weekly plant report",
        "dashboard": uid,
        "formats": ["pdf", "xlsx", "csv"],
        "recipients": {"users": ["vic"], "emails": []},
        "time_range": {"start": "-24h", "end": "now"},
        "schedule": {"cron": "0 7 * * 1", "timezone": "Europe/London"},
    }


@pytest.mark.parametrize("debug", [False, True])
def test_a_post_without_the_trailing_slash_creates_the_report(plant_dashboard, editor, viewer, settings, debug):
    """POST /api/v1/reports (no slash) was redirected to /api/v1/reports/, and a client sends the redirected POST
    again as a GET: it got the list, and nothing was created (under DEBUG, Django raised: a 500)."""
    settings.DEBUG = debug
    client = api_client_for(editor)
    response = client.post("/api/v1/reports", _contract(plant_dashboard.uid), format="json")
    assert response.status_code == 201, response.content
    assert Report.objects.filter(pk=response.json()["id"], name="Weekly plant report").exists()
    listed = client.get("/api/v1/reports")
    assert listed.status_code == 200
    assert [item["id"] for item in listed.json()["results"]] == [response.json()["id"]]


def test_the_minimal_contract_creates_a_scheduled_report(plant_dashboard, editor, viewer):
    response = api_client_for(editor).post("/api/v1/reports/", _contract(plant_dashboard.uid), format="json")
    assert response.status_code == 201, response.json()
    body = response.json()
    assert isinstance(body["id"], int)
    assert body["schedule"] == {"cron": "0 7 * * 1", "timezone": "Europe/London"}
    assert body["recipients"] == {"users": ["vic"], "teams": [], "emails": [], "send_emails_as_me": False}
    assert body["dashboard"] == plant_dashboard.uid
    assert body["organization"] == "test-org"
    report = Report.objects.get(pk=body["id"])
    assert report.periodic_task.crontab.hour == "7"


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"schedule": {"cron": "0 7 * *", "timezone": "Europe/London"}}, "schedule.cron"),
        ({"schedule": {"cron": "0 7 * * 1", "timezone": "Mars/Olympus"}}, "schedule.timezone"),
        ({"formats": ["docx"]}, "formats"),
        ({"recipients": {"users": ["nobody"]}}, "recipients.users"),
        ({"recipients": {"users": ["mallory"]}}, "recipients.users"),  # a member of another organisation
        ({"recipients": {"teams": ["no-such-team"]}}, "recipients.teams"),
        ({"recipients": {"emails": ["ceo@partner.example"]}}, "recipients.send_emails_as_me"),
        ({"recipients": {"emails": ["not an address"], "send_emails_as_me": True}}, "recipients.emails"),
        ({"time_range": {"start": "2026-01-01T00:00:00Z", "end": "now"}}, "time_range.start"),
        ({"time_range": {"preset": "last_fortnight"}}, "time_range.preset"),
        ({"dashboard": "nope"}, "dashboard"),
        ({"panels": ["missing"]}, "panels"),
        ({"subject": "{% load static %}"}, "subject"),
        ({"queries": [{"query": {"metric": "x", "aggregation": "median"}}]}, "queries[0].query.aggregation"),
        ({"colour": "red"}, "colour"),
    ],
)
def test_refusals_name_the_field(plant_dashboard, editor, viewer, change, field):
    user_create(username="mallory", organization="other-org")
    response = api_client_for(editor).post("/api/v1/reports/", {**_contract(plant_dashboard.uid), **change},
                                           format="json")  # fmt: skip
    assert response.status_code == 400, response.json()
    assert response.json()["field"] == field


def test_run_now_answers_202_with_the_run_and_history_lists_it(
    smtp_server, plant_dashboard, editor, viewer, django_capture_on_commit_callbacks
):
    client = api_client_for(editor)
    report_id = client.post("/api/v1/reports/", _contract(plant_dashboard.uid), format="json").json()["id"]
    with django_capture_on_commit_callbacks(execute=True):
        response = client.post(f"/api/v1/reports/{report_id}/run")
    assert response.status_code == 202
    run = response.json()
    assert (run["report"], run["trigger"], run["status"], run["requested_by"]) == (report_id, "manual", "queued",
                                                                                  "erin")  # fmt: skip
    history = api_client_for(viewer).get(f"/api/v1/reports/{report_id}/runs/")
    assert history.status_code == 200
    (listed,) = history.json()["results"]
    assert listed["id"] == run["id"]
    assert listed["status"] == "succeeded"
    assert listed["deliveries"][0]["email"] == "vic@example.com"
    assert listed["deliveries"][0]["status"] == "sent"
    assert listed["deliveries"][0]["rendered_as"] == "vic"
    assert {item["name"].rsplit(".", 1)[1] for item in listed["deliveries"][0]["files"]} == {"pdf", "xlsx", "zip"}
    assert len(smtp_server.messages) == 1
    assert api_client_for(viewer).get("/api/v1/reports/").json()["results"][0]["last_run"]["status"] == "succeeded"


def test_viewers_read_editors_write_other_tenants_get_404(plant_dashboard, editor, viewer):
    report_id = api_client_for(editor).post("/api/v1/reports/", _contract(plant_dashboard.uid),
                                            format="json").json()["id"]  # fmt: skip
    reader = api_client_for(viewer)
    assert reader.get(f"/api/v1/reports/{report_id}/").status_code == 200
    assert reader.patch(f"/api/v1/reports/{report_id}/", {"name": "x"}, format="json").status_code == 403
    assert reader.post(f"/api/v1/reports/{report_id}/run").status_code == 403
    assert reader.delete(f"/api/v1/reports/{report_id}/").status_code == 403
    assert reader.post("/api/v1/reports/", _contract(plant_dashboard.uid), format="json").status_code == 403

    stranger = api_client_for(user_create(username="mallory", organization="other-org", role="admin"))
    for method, path in (("get", f"/api/v1/reports/{report_id}/"), ("get", f"/api/v1/reports/{report_id}/runs/"),
                         ("post", f"/api/v1/reports/{report_id}/run"), ("patch", f"/api/v1/reports/{report_id}/"),
                         ("get", f"/api/v1/reports/{report_id}/preview?recipient=user:mallory")):  # fmt: skip
        assert getattr(stranger, method)(path, format="json").status_code == 404, (method, path)
    assert stranger.get("/api/v1/reports/").json()["results"] == []
    assert ReportRun.objects.count() == 0

    editor_client = api_client_for(editor)
    changed = editor_client.patch(f"/api/v1/reports/{report_id}/", {"schedule": None, "name": "Ad hoc"}, format="json")
    assert changed.status_code == 200
    assert (changed.json()["name"], changed.json()["schedule"]) == ("Ad hoc", None)
    assert Report.objects.get(pk=report_id).periodic_task is None
    assert editor_client.delete(f"/api/v1/reports/{report_id}/").status_code == 204


def test_preview_is_what_the_chosen_recipient_would_get(plant_dashboard, editor, viewer, settings, tmp_path):
    settings.REPORT_FILES_ROOT = tmp_path
    admin = user_create(username="ada", role="admin")
    report_id = api_client_for(editor).post(
        "/api/v1/reports/", {**_contract(plant_dashboard.uid), "recipients": {
            "users": ["vic"], "emails": ["cfo@partner.example"], "send_emails_as_me": True}}, format="json",
    ).json()["id"]  # fmt: skip
    as_self = api_client_for(editor).get(f"/api/v1/reports/{report_id}/preview?recipient=user:erin&file_format=pdf")
    assert as_self.status_code == 200
    assert as_self["Content-Type"] == "application/pdf"
    assert b"".join(as_self.streaming_content).startswith(b"%PDF")
    # The owner may see the externals' view (their own); only admins may preview as another user.
    assert (
        api_client_for(editor)
        .get(f"/api/v1/reports/{report_id}/preview?recipient=email:cfo@partner.example&file_format=csv")
        .status_code
        == 200
    )
    assert api_client_for(editor).get(f"/api/v1/reports/{report_id}/preview?recipient=user:vic").status_code == 404
    as_vic = api_client_for(admin).get(f"/api/v1/reports/{report_id}/preview?recipient=user:vic&file_format=xlsx")
    assert as_vic.status_code == 200
    assert "attachment" in as_vic["Content-Disposition"]
    assert api_client_for(admin).get(f"/api/v1/reports/{report_id}/preview?file_format=pdf").status_code == 400
    assert list(tmp_path.glob("previews/*")) == []  # rendered previews do not pile up


def test_the_schema_documents_the_reports_api():
    from drf_spectacular.generators import SchemaGenerator

    paths = SchemaGenerator().get_schema(request=None, public=True)["paths"]
    assert {"post", "get"} <= set(paths["/api/v1/reports/"])
    assert "202" in paths["/api/v1/reports/{report_id}/run"]["post"]["responses"]
    assert "get" in paths["/api/v1/reports/{report_id}/runs/"]
    assert "get" in paths["/api/v1/reports/{report_id}/preview"]


def test_pages_list_edit_detail_and_preview(plant_dashboard, editor, viewer, client, settings, tmp_path,
                                            django_capture_on_commit_callbacks):  # fmt: skip
    settings.REPORT_FILES_ROOT = tmp_path
    client.force_login(editor)
    created = client.post("/reports/new/", {
        "organization": organization_get().slug, "name": "Morning", "dashboard": plant_dashboard.uid,
        "formats": ["pdf", "csv"], "users": "vic", "emails": "ext@partner.example", "preset": "yesterday",
        "cron": "30 6 * * *", "timezone": "Europe/Berlin", "subject": "{{ report_name }}", "message": "Hi",
        "enabled": "on",
    })  # fmt: skip
    assert created.status_code == 200
    # Said with the field's label, linked to the field, which is marked and focused (not the API's path).
    assert (
        b'<a href="#send_emails_as_me">Send as me</a>: external addresses receive what you can see' in created.content
    )
    assert b'id="send_emails_as_me" name="send_emails_as_me" aria-invalid="true"' in created.content
    assert b"External addresses see what you see" in created.content
    created = client.post("/reports/new/", {
        "organization": organization_get().slug, "name": "Morning", "dashboard": plant_dashboard.uid,
        "formats": ["pdf", "csv"], "users": "vic", "emails": "ext@partner.example", "send_emails_as_me": "on",
        "preset": "yesterday", "cron": "30 6 * * *", "timezone": "Europe/Berlin", "subject": "{{ report_name }}",
        "message": "Hi", "enabled": "on",
    })  # fmt: skip
    assert created.status_code == 302
    report = Report.objects.get(name="Morning")
    assert (report.time_range, report.cron, report.timezone) == ({"preset": "yesterday"}, "30 6 * * *", "Europe/Berlin")
    listing = client.get("/reports/")
    assert b"Morning" in listing.content
    assert b"never" in listing.content
    detail = client.get(f"/reports/{report.pk}/?preview=1&recipient=email:ext@partner.example")
    assert detail.status_code == 200
    assert b"they see what erin sees" in detail.content
    assert b"<iframe" in detail.content
    pdf = client.get(f"/reports/{report.pk}/preview/?recipient=email:ext@partner.example&format=pdf")
    assert pdf.status_code == 200
    assert pdf["X-Frame-Options"] == "SAMEORIGIN"  # the detail page frames it; other pages stay DENY
    assert detail["X-Frame-Options"] == "DENY"
    # Browsers obey the CSP's frame-ancestors over X-Frame-Options: 'none' there blocked the preview's <iframe>.
    assert "frame-ancestors 'self'" in pdf["Content-Security-Policy"]
    assert "frame-ancestors 'none'" in detail["Content-Security-Policy"]
    with django_capture_on_commit_callbacks(execute=False) as callbacks:
        assert client.post(f"/reports/{report.pk}/send/").status_code == 302
    assert len(callbacks) == 1
    assert b"queued" in client.get(f"/reports/{report.pk}/").content
    client.force_login(viewer)
    assert client.post(f"/reports/{report.pk}/send/").status_code == 403
    assert client.get(f"/reports/{report.pk}/edit/").status_code == 403


def test_a_refused_report_form_keeps_what_was_typed_and_the_edit_form_shows_the_report(plant_dashboard, editor,
                                                                                       viewer, client):  # fmt: skip
    # Refused for the external address without "send as me": nothing typed is lost (the dashboard and every field
    # but the name used to come back empty).
    client.force_login(editor)
    posted = {
        "organization": organization_get().slug, "name": "Morning", "dashboard": plant_dashboard.uid,
        "panels": "temp", "formats": ["csv"], "users": ["vic"], "emails": "ext@partner.example", "start": "-3d",
        "end": "now", "cron": "30 6 * * *", "timezone": "Europe/Berlin", "subject": "Plant {{ period }}",
        "message": "Hi there",
    }  # fmt: skip
    refused = client.post("/reports/new/", posted)
    assert refused.status_code == 200
    values = refused.context["values"]
    lists = ("formats", "panels", "users")
    assert {key: values[key] for key in posted if key not in lists} == {
        key: value for key, value in posted.items() if key not in lists
    }
    assert (values["panels"], values["users"]) == (["temp"], ["vic"])
    assert (values["formats"], values["enabled"], values["send_emails_as_me"]) == (["csv"], False, False)
    page = refused.content.decode()
    assert f'<option value="{plant_dashboard.uid}" selected>' in page
    assert 'value="ext@partner.example"' in page
    assert 'name="formats" value="pdf">' in page  # unticked, as posted
    assert 'name="formats" value="csv" checked>' in page
    assert 'list="timezones"' in page  # the zones are suggested as one is typed
    assert '<option value="Europe/Berlin">' in page
    # The dashboard's panels as checkboxes, the posted one ticked, in the chosen dashboard's (enabled) fieldset.
    picks = page.split(f'data-dashboard="{plant_dashboard.uid}"', 1)[1].split("</fieldset>", 1)[0]
    assert picks.startswith(">")  # neither hidden nor disabled
    assert 'name="panels" value="temp" checked>' in picks
    # The organisation's members as checkboxes (usernames were typed, comma-separated), the posted one ticked.
    users = page.split('<div id="users"', 1)[1].split("</fieldset>", 1)[0]
    assert 'name="users" value="vic" checked>' in users
    assert 'name="users" value="erin">' in users

    created = client.post("/reports/new/", {**posted, "send_emails_as_me": "on", "enabled": "on", "users": ""})
    assert created.status_code == 302, created.context and created.context["error"]
    report = Report.objects.get(name="Morning")
    # Only an external address: the detail page lists it without a leading "; ".
    assert "<dd>external: ext@partner.example" in client.get(f"/reports/{report.pk}/").content.decode()
    edit = client.get(f"/reports/{report.pk}/edit/").context["values"]
    assert (edit["dashboard"], edit["panels"], edit["emails"], edit["users"]) == (
        plant_dashboard.uid,
        ["temp"],
        "ext@partner.example",
        [],
    )
    schedule = (edit["start"], edit["cron"], edit["send_emails_as_me"], edit["enabled"])
    assert schedule == ("-3d", "30 6 * * *", True, True)
    new = client.get("/reports/new/").context["values"]
    assert (new["formats"], new["enabled"], new["start"]) == (["pdf"], True, "-7d")


@pytest.mark.parametrize(
    ("changed", "element", "label"),
    [
        ({"cron": "61 6 * * *"}, "cron", "Cron"),
        ({"users": "nobody-here"}, "users", "Users"),
        ({"timezone": "Mars/Olympus"}, "timezone", "Time zone"),
        ({"start": "yesterday-ish"}, "start", "Start"),
        (
            {"queries": '[{"title": "T", "query": {"source": "plant"}}]'},
            "queries",
            "Queries shown as tables (queries[0]",
        ),
        ({"subject": "{% load static %}"}, "subject", "Subject template"),
        ({"formats": []}, "formats", "Formats"),
    ],
)
def test_a_refused_report_form_names_the_field_by_its_label_and_marks_it(plant_dashboard, editor, client, changed,
                                                                         element, label):  # fmt: skip
    client.force_login(editor)
    posted = {
        "organization": organization_get().slug, "name": "Morning", "dashboard": plant_dashboard.uid,
        "formats": ["pdf"], "users": "vic", "start": "-3d", "end": "now", "cron": "30 6 * * *", "timezone": "UTC",
        "subject": "Plant", "message": "Hi", **changed,
    }  # fmt: skip
    refused = client.post("/reports/new/", posted)
    assert refused.status_code == 200
    error = refused.context["error"]
    assert error["field"] == element, error
    assert error["label"].startswith(label), error
    page = refused.content.decode()
    assert f'<a href="#{element}">{escape(error["label"])}</a>: {escape(error["message"])}' in page
    assert page.count('aria-invalid="true"') == 1
    assert re.search(rf'id="{element}"[^>]* aria-invalid="true" aria-describedby="field-error"', page)
    # The message is also under the field (the page scrolls to it: autofocus), once.
    assert page.count('<p class="field-error" id="field-error">') == 1
    assert f'<p class="field-error" id="field-error">{escape(error["message"])}</p>' in page
    assert not Report.objects.filter(name="Morning").exists()


def test_a_report_shared_to_edit_lets_a_viewer_change_and_send_it(plant_dashboard, editor, viewer):
    report_id = api_client_for(editor).post("/api/v1/reports/", _contract(plant_dashboard.uid),
                                            format="json").json()["id"]  # fmt: skip
    reader = api_client_for(viewer)
    assert reader.patch(f"/api/v1/reports/{report_id}/", {"name": "Mine"}, format="json").status_code == 403
    assert reader.post(f"/api/v1/reports/{report_id}/shares/", {"user": "vic", "level": "edit"},
                       format="json").status_code == 403  # fmt: skip
    shared = api_client_for(editor).post(f"/api/v1/reports/{report_id}/shares/", {"user": "vic", "level": "edit"},
                                         format="json")  # fmt: skip
    assert shared.status_code in (200, 201), shared.json()
    assert reader.patch(f"/api/v1/reports/{report_id}/", {"name": "Mine"}, format="json").status_code == 200
    assert reader.post(f"/api/v1/reports/{report_id}/run").status_code == 202
    assert reader.delete(f"/api/v1/reports/{report_id}/").status_code == 403  # deleting stays with the roles
    assert api_client_for(editor).delete(f"/api/v1/reports/{report_id}/shares/user/vic/").status_code == 204
    assert reader.patch(f"/api/v1/reports/{report_id}/", {"name": "Again"}, format="json").status_code == 403


def test_a_schedule_reads_in_words_on_the_report_pages(plant_dashboard, editor, client):
    """The list and the report's page showed the cron ("<code>30 7 * * 1</code> UTC"): the schedules the editor's
    picker makes read in words, anything else stays a cron."""
    from apps.reporting.schedules import schedule_words

    assert [schedule_words(cron) for cron in ("0 7 * * *", "5 18 * * 1-5", "30 7 * * 1", "0 6 1 * *", "0 9 * * 0",
                                              "0 9 * * 7", "*/15 * * * *", "0 7 1 * 1", "61 7 * * *")] == [
        "every day at 07:00", "every weekday at 18:05", "every Monday at 07:30", "every month on day 1 at 06:00",
        "every Sunday at 09:00", "every Sunday at 09:00", None, None, None,
    ]  # fmt: skip
    client.force_login(editor)
    report = report_create(organization=organization_get(), owner=editor, data={
        "name": "Weekly", "dashboard": plant_dashboard.uid, "formats": ["pdf"], "recipients": {"users": ["erin"]},
        "schedule": {"cron": "30 7 * * 1", "timezone": "Europe/Berlin"},
    })  # fmt: skip
    for page in (client.get("/reports/").content.decode(), client.get(f"/reports/{report.pk}/").content.decode()):
        assert '<span title="cron: 30 7 * * 1">every Monday at 07:30</span> (Europe/Berlin)' in page
    report.cron = "*/15 * * * *"
    report.save(update_fields=["cron"])
    assert "<code>*/15 * * * *</code> (Europe/Berlin)" in client.get(f"/reports/{report.pk}/").content.decode()
