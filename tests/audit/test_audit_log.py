"""The audit log: append-only in the database, what gets recorded, and the organisation admins' API and page."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from django.contrib.auth import get_user_model
from django.db import DatabaseError, connection, transaction
from django.test import Client, RequestFactory
from django.utils import timezone

from apps.access.models import Organization
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record
from tests.conftest import api_client_for
from tests.factories import organization_get, user_create

PASSWORD = "correct horse battery staple"


@pytest.fixture
def org_admin(db):
    return user_create(username="ada", role="admin")


def _actions() -> list[str]:
    return list(AuditEvent.objects.order_by("id").values_list("action", flat=True))


# Append-only, enforced by PostgreSQL --------------------------------------------------------------------------


@pytest.mark.django_db
@pytest.mark.parametrize(
    "statement",
    [
        "UPDATE audit_auditevent SET action = 'nothing.happened'",
        "DELETE FROM audit_auditevent",
    ],
)
def test_the_database_refuses_updates_and_deletes(statement):
    audit_record(action="token.created", actor_description="system")
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic(), connection.cursor() as cursor:
        cursor.execute(statement)
    assert AuditEvent.objects.get().action == "token.created"


@pytest.mark.django_db
def test_the_orm_cannot_update_or_delete_either():
    event = audit_record(action="token.created", actor_description="system")
    event.action = "token.revoked"
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        event.save()
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.filter(pk=event.pk).delete()
    assert AuditEvent.objects.get().action == "token.created"


@pytest.mark.django_db
def test_deleting_a_user_or_organisation_keeps_their_history(org_admin):
    organization = Organization.objects.create(name="Gone", slug="gone")
    audit_record(action="member.added", actor=org_admin, organization=organization)
    ids = (organization.pk, org_admin.pk, "ada")
    organization.delete()
    org_admin.delete()
    event = AuditEvent.objects.get()
    assert (event.organization_id, event.actor_id, event.actor_description) == ids


@pytest.mark.django_db
def test_operator_prune_archives_then_deletes_old_events(tmp_path):
    from django.core.management import call_command

    old = audit_record(action="token.created", actor_description="system")
    with connection.cursor() as cursor:  # age it the way time would (the trigger refuses an UPDATE, so re-insert)
        cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
        cursor.execute("UPDATE audit_auditevent SET time = now() - interval '400 days' WHERE id = %s", [old.pk])
        cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
    audit_record(action="token.revoked", actor_description="system")
    archive = tmp_path / "audit.csv"
    call_command("audit_log_prune", "--older-than-days", "365", "--archive", str(archive), stdout=io.StringIO())
    assert _actions() == ["token.revoked", "audit.pruned"]
    rows = list(csv.DictReader(archive.open()))
    assert [row["action"] for row in rows] == ["token.created"]
    with pytest.raises(DatabaseError, match="append-only"), transaction.atomic():
        AuditEvent.objects.all().delete()  # the trigger is back on


# What gets recorded ---------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_sign_in_and_failed_sign_in_are_recorded_with_the_source_address(user):
    client = Client(REMOTE_ADDR="203.0.113.7", HTTP_USER_AGENT="probe/1.0")
    client.post("/accounts/login/", {"username": "alice", "password": "wrong"})
    client.post("/accounts/login/", {"username": "alice", "password": PASSWORD})
    client.post("/accounts/logout/")
    failed, signed_in, signed_out = AuditEvent.objects.order_by("id")
    assert failed.action == "auth.sign_in_failed"
    assert failed.actor_id is None
    assert failed.details == {"username": "alice"}
    assert "wrong" not in str(failed.details)
    assert (failed.source_ip, failed.user_agent) == ("203.0.113.7", "probe/1.0")
    assert (signed_in.action, signed_in.actor_id, signed_in.source_ip) == ("auth.sign_in", user.pk, "203.0.113.7")
    assert (signed_out.action, signed_out.actor_id) == ("auth.sign_out", user.pk)


@pytest.mark.django_db
def test_token_creation_and_revocation_are_recorded(user):
    client = api_client_for(user)
    created = client.post("/api/v1/tokens/", {"name": "notebook", "expires_in_days": 30}, format="json").json()
    client.delete(f"/api/v1/tokens/{created['id']}/")
    created_event, revoked_event = AuditEvent.objects.order_by("id")
    assert (created_event.action, created_event.actor_id) == ("token.created", user.pk)
    assert (created_event.object_type, created_event.object_id) == ("access.apitoken", str(created["id"]))
    assert created["token"] not in str(created_event.details)
    assert (revoked_event.action, revoked_event.actor_id) == ("token.revoked", user.pk)


@pytest.mark.django_db
def test_source_and_write_key_changes_are_recorded(editor):
    client = api_client_for(editor)
    client.post("/api/v1/sources/", {"name": "Plant", "slug": "plant"}, format="json")
    client.patch("/api/v1/sources/plant/", {"raw_retention_days": 3}, format="json")
    client.post("/api/v1/sources/plant/pause")
    key_id = client.post("/api/v1/sources/plant/keys/", {"name": "telegraf"}, format="json").json()["id"]
    client.post(f"/api/v1/sources/plant/keys/{key_id}/revoke")
    assert _actions() == [
        "source.created",
        "write_key.created",
        "source.changed",
        "source.paused",
        "write_key.created",
        "write_key.revoked",
    ]
    changed = AuditEvent.objects.get(action="source.changed")
    assert changed.organization_id == organization_get().pk
    assert changed.actor_id == editor.pk
    assert changed.details["changes"]["raw_retention_days"]["to"] == 3


@pytest.mark.django_db
def test_secrets_in_details_are_redacted():
    event = audit_record(action="source.changed", details={"config": {"sasl_password": "hunter2", "topic": "t"}})
    assert event.details == {"config": {"sasl_password": "[redacted]", "topic": "t"}}


@pytest.mark.django_db
def test_admin_actions_are_recorded_including_bulk_deletes():
    staff = get_user_model().objects.create_superuser("root", "root@example.com", PASSWORD)
    first = Organization.objects.create(name="One", slug="one")
    second = Organization.objects.create(name="Two", slug="two")
    client = Client(REMOTE_ADDR="198.51.100.4")
    client.force_login(staff)
    response = client.post(
        "/admin/access/organization/",
        {"action": "delete_selected", "_selected_action": [first.pk, second.pk], "post": "yes"},
    )
    assert response.status_code == 302
    events = AuditEvent.objects.filter(action="admin.action").order_by("id")
    assert sorted(event.object_repr for event in events) == ["One", "Two"]
    assert {event.details["change"] for event in events} == {"deleted"}
    assert {(event.actor_id, event.source_ip) for event in events} == {(staff.pk, "198.51.100.4")}


# The API and the page -------------------------------------------------------------------------------------------


@pytest.mark.django_db
def test_only_the_organisations_admins_read_its_audit_log(org_admin, editor, viewer):
    outsider_admin = user_create(username="oscar", organization="other-org", role="admin")
    url = "/api/v1/organizations/test-org/audit-log"
    assert api_client_for(org_admin).get(url).status_code == 200
    for user in (editor, viewer, outsider_admin):
        response = api_client_for(user).get(url)
        assert response.status_code == 404, user  # as if it did not exist
    assert api_client_for(org_admin).get("/api/v1/organizations/other-org/audit-log").status_code == 404
    assert Client().get("/api/v1/organizations/test-org/audit-log").status_code in (401, 403)


@pytest.mark.django_db
def test_another_organisations_events_never_show(org_admin):
    other = organization_get(slug="other-org")
    audit_record(action="source.changed", organization=other, actor_description="someone")
    audit_record(action="source.changed", organization=organization_get(), actor_description="ada")
    results = api_client_for(org_admin).get("/api/v1/organizations/test-org/audit-log").json()["results"]
    assert [event["actor"] for event in results] == ["ada"]


@pytest.mark.django_db
def test_filters_by_actor_action_object_and_time(org_admin, editor):
    organization = organization_get()
    base = timezone.now() - timedelta(hours=3)
    audit_record(action="auth.sign_in", actor=editor)  # a member's sign-in: no organisation, still shown
    audit_record(action="token.created", actor=org_admin, organization=organization)
    audit_record(action="token.revoked", actor=org_admin, organization=organization)
    audit_record(action="source.changed", actor=editor, organization=organization, obj=organization)
    client = api_client_for(org_admin)
    url = "/api/v1/organizations/test-org/audit-log"

    def actions(**params) -> list[str]:
        response = client.get(url, params)
        assert response.status_code == 200, response.json()
        return [event["action"] for event in response.json()["results"]]

    everything = actions()
    assert everything[-1] == "auth.sign_in"
    assert actions(actor="erin") == ["source.changed", "auth.sign_in"]
    assert actions(action="auth.") == ["auth.sign_in"] == actions(action="auth.*")
    assert actions(action="token.revoked") == ["token.revoked"]
    assert actions(object_type="access.organization", object_id=str(organization.pk)) == ["source.changed"]
    assert actions(since=(base + timedelta(hours=4)).isoformat()) == []
    assert actions(until=(base + timedelta(hours=4)).isoformat()) == everything
    bad = client.get(url, {"since": "yesterday-ish"})
    assert bad.status_code == 400
    assert bad.json()["field"] == "since"
    reversed_range = client.get(url, {"since": base.isoformat(), "until": (base - timedelta(hours=1)).isoformat()})
    assert reversed_range.status_code == 400
    assert reversed_range.json()["field"] == "until"


@pytest.mark.django_db
def test_pages_like_the_rest_of_the_api(org_admin):
    for number in range(5):
        audit_record(action="source.changed", organization=organization_get(), details={"n": number})
    page = api_client_for(org_admin).get("/api/v1/organizations/test-org/audit-log", {"limit": 2, "offset": 1}).json()
    assert page["count"] == 5
    assert [event["details"]["n"] for event in page["results"]] == [3, 2]
    assert page["next"]
    assert page["previous"]
    too_big = api_client_for(org_admin).get("/api/v1/organizations/test-org/audit-log", {"limit": 100_000})
    assert too_big.status_code == 400


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/audit-log?format=csv", "/audit-log/export"])
def test_csv_export_is_formula_safe_and_audited(org_admin, path):
    organization = organization_get()
    audit_record(action="source.changed", organization=organization, obj=organization,
                 actor_description="=HYPERLINK(\"http://evil\")", details={"n": 1})  # fmt: skip
    response = api_client_for(org_admin).get(f"/api/v1/organizations/test-org{path}")
    assert response.status_code == 200
    assert response["Content-Type"].startswith("text/csv")
    assert "attachment" in response["Content-Disposition"]
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    # Newest first: the export records itself before it streams.
    assert [(row["actor"], row["action"]) for row in rows] == [
        ("ada", "export.csv"),
        ('\'=HYPERLINK("http://evil")', "source.changed"),
    ]
    assert rows[1]["object_type"] == "access.organization"
    assert AuditEvent.objects.filter(action="export.csv", actor=org_admin).count() == 1


@pytest.mark.django_db
def test_csv_export_quotes_every_formula_start_but_keeps_plain_numbers(org_admin):
    """The platform's one rule (analytics_platform/spreadsheet_cells.py): a leading newline is quoted too, and an
    id such as -5 is not damaged."""
    organization = organization_get()
    named = Organization(pk=-5, name="-1+2", slug="unsaved")  # an object whose id and name look like numbers
    request = RequestFactory().get("/", HTTP_USER_AGENT="+7")
    audit_record(action="source.changed", organization=organization, obj=named, request=request,
                 actor_description="\n=cmd|' /C calc'!A0")  # fmt: skip
    response = api_client_for(org_admin).get("/api/v1/organizations/test-org/audit-log?format=csv")
    rows = list(csv.DictReader(io.StringIO(b"".join(response.streaming_content).decode())))
    row = next(row for row in rows if row["action"] == "source.changed")
    assert (row["actor"], row["object_id"], row["object"], row["user_agent"]) == (
        "'\n=cmd|' /C calc'!A0", "-5", "'-1+2", "+7",
    )  # fmt: skip


@pytest.mark.django_db
def test_the_page_for_organisation_admins(org_admin, editor):
    audit_record(action="source.changed", organization=organization_get(), actor_description="<script>x</script>")
    client = Client()
    client.force_login(org_admin)
    page = client.get("/organizations/test-org/audit-log/", {"action": "source."})
    assert page.status_code == 200
    assert b"source.changed" in page.content
    assert b"<script>x</script>" not in page.content  # escaped
    client.force_login(editor)
    assert client.get("/organizations/test-org/audit-log/").status_code == 404
