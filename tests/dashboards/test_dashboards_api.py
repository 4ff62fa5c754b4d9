"""The dashboards REST API on real PostgreSQL: CRUD, versions, restore, duplicate, export/import, 409, permissions."""

from __future__ import annotations

import copy
import io
import json

import pytest
from rest_framework.test import APIClient

from apps.dashboards.demo import demo_dashboards_create, demo_documents
from apps.dashboards.documents import dashboard_document_clean
from apps.dashboards.models import Dashboard, DashboardVersion, Panel
from apps.dashboards.selectors import dashboard_document
from apps.dashboards.services import dashboard_save
from apps.sources.services import source_create
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_document as document_build
from tests.dashboards.factories import dashboard_make
from tests.factories import organization_get, user_create

pytestmark = pytest.mark.django_db


@pytest.fixture
def outsider():
    return user_create(username="olga", organization="other-org", role="admin")


def _create(client: APIClient, **changes) -> dict:
    response = client.post("/api/v1/dashboards/", document_build(**changes), format="json")
    assert response.status_code == 201, response.content
    return response.json()


# --- create, read, list ----------------------------------------------------------------------------------------


def test_create_answers_201_with_the_dashboard_and_its_document(editor):
    body = _create(api_client_for(editor), title="Plant")
    assert len(body["uid"]) >= 10
    assert (body["version"], body["organization"], body["owner"], body["can_edit"]) == (1, "test-org", "erin", True)
    assert body["document"] == document_build(title="Plant")
    dashboard = Dashboard.objects.get(uid=body["uid"])
    assert list(dashboard.panels.values_list("key", "position")) == [("p1", 0), ("p2", 1)]
    assert list(dashboard.versions.values_list("version", "message", "created_by__username")) == [
        (1, "Created", "erin")
    ]


def test_an_invalid_document_answers_400_naming_the_json_path(editor):
    document = document_build()
    document["panels"][1]["grid"] = {"x": 10, "y": 0, "w": 4, "h": 4}
    response = api_client_for(editor).post("/api/v1/dashboards/", document, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "panels[1].grid.w"
    assert response.json()["detail"].startswith("panels[1].grid.w: x + w is 14")
    assert not Dashboard.objects.exists()


def test_create_needs_an_editor_role_and_a_known_organisation(editor, viewer):
    response = api_client_for(viewer).post("/api/v1/dashboards/", document_build(), format="json")
    assert (response.status_code, response.json()["field"]) == (403, "organization")
    response = api_client_for(editor).post(
        "/api/v1/dashboards/", {**document_build(), "organization": "nope"}, format="json"
    )
    assert (response.status_code, response.json()["field"]) == (400, "organization")
    response = api_client_for(editor).post(
        "/api/v1/dashboards/", {**document_build(), "organization": "test-org"}, format="json"
    )
    assert response.status_code == 201


def test_list_shows_your_organisations_dashboards_filtered_and_paginated(editor, outsider):
    dashboard_make(title="Plant overview", tags=["factory", "ops"], folder="Ops")
    dashboard_make(title="Marketing funnel", tags=["web"], folder="")
    dashboard_make(title="Other plant", organization="other-org")
    client = api_client_for(editor)
    body = client.get("/api/v1/dashboards/").json()
    assert body["count"] == 2
    assert [row["title"] for row in body["results"]] == ["Marketing funnel", "Plant overview"]
    assert body["results"][1]["panel_count"] == 2
    assert body["results"][1]["tags"] == ["factory", "ops"]
    assert [row["title"] for row in client.get("/api/v1/dashboards/?q=PLANT").json()["results"]] == ["Plant overview"]
    assert [row["title"] for row in client.get("/api/v1/dashboards/?tag=web").json()["results"]] == ["Marketing funnel"]
    assert [row["title"] for row in client.get("/api/v1/dashboards/?folder=Ops").json()["results"]] == [
        "Plant overview"
    ]
    page = client.get("/api/v1/dashboards/?limit=1&offset=1").json()
    assert (page["count"], [row["title"] for row in page["results"]]) == (2, ["Plant overview"])
    assert [row["title"] for row in api_client_for(outsider).get("/api/v1/dashboards/").json()["results"]] == [
        "Other plant"
    ]


# --- save, versions, restore -----------------------------------------------------------------------------------


def test_save_replaces_the_document_and_keeps_every_version(editor):
    client = api_client_for(editor)
    created = _create(client)
    uid = created["uid"]
    document = copy.deepcopy(created["document"])
    document["title"] = "Plant v2"
    document["panels"] = [document["panels"][1], {**document["panels"][0], "key": "p3", "type": "stat"}]
    response = client.put(
        f"/api/v1/dashboards/{uid}/", {"document": document, "version": 1, "message": "reorder"}, format="json"
    )
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["version"], body["document"]) == (2, document)
    assert list(Panel.objects.filter(dashboard__uid=uid).values_list("key", "type", "position")) == [
        ("p2", "timeseries", 0),
        ("p3", "stat", 1),
    ]
    versions = client.get(f"/api/v1/dashboards/{uid}/versions/").json()
    assert [(row["version"], row["message"], row["created_by"]) for row in versions["results"]] == [
        (2, "reorder", "erin"),
        (1, "Created", "erin"),
    ]
    old = client.get(f"/api/v1/dashboards/{uid}/versions/1").json()
    assert old["document"] == created["document"]
    assert client.get(f"/api/v1/dashboards/{uid}/versions/9").status_code == 404


def test_a_stale_version_answers_409_and_changes_nothing(editor):
    client = api_client_for(editor)
    created = _create(client)
    uid = created["uid"]
    first = {**created["document"], "title": "First writer"}
    assert client.put(f"/api/v1/dashboards/{uid}/", {"document": first, "version": 1}, format="json").status_code == 200
    second = {**created["document"], "title": "Second writer"}
    response = client.put(f"/api/v1/dashboards/{uid}/", {"document": second, "version": 1}, format="json")
    assert response.status_code == 409
    assert response.json()["field"] == "version"
    assert "now at 2" in response.json()["detail"]
    dashboard = Dashboard.objects.get(uid=uid)
    assert (dashboard.title, dashboard.version, dashboard.versions.count()) == ("First writer", 2, 2)
    # Without a version the save is last-writer-wins.
    response = client.put(f"/api/v1/dashboards/{uid}/", {"document": second}, format="json")
    assert (response.status_code, response.json()["version"]) == (200, 3)


def test_an_invalid_save_answers_400_and_keeps_the_current_version(editor):
    client = api_client_for(editor)
    created = _create(client)
    document = copy.deepcopy(created["document"])
    document["panels"][0]["queries"][0]["query"]["filters"] = {"facility": "$site"}
    response = client.put(f"/api/v1/dashboards/{created['uid']}/", {"document": document, "version": 1}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "panels[0].queries[0].query.filters.facility"
    assert Dashboard.objects.get(uid=created["uid"]).version == 1


def test_restore_saves_the_old_document_as_a_new_version(editor):
    client = api_client_for(editor)
    created = _create(client)
    uid = created["uid"]
    changed = {**created["document"], "title": "Changed", "panels": []}
    client.put(f"/api/v1/dashboards/{uid}/", {"document": changed, "version": 1}, format="json")
    response = client.post(f"/api/v1/dashboards/{uid}/versions/1/restore", {}, format="json")
    assert response.status_code == 200, response.content
    body = response.json()
    assert (body["version"], body["document"]) == (3, created["document"])
    assert DashboardVersion.objects.get(dashboard__uid=uid, version=3).message == "Restored version 1"
    assert Panel.objects.filter(dashboard__uid=uid).count() == 2
    response = client.post(f"/api/v1/dashboards/{uid}/versions/1/restore", {"expected_version": 2}, format="json")
    assert response.status_code == 409
    assert client.post(f"/api/v1/dashboards/{uid}/versions/7/restore", {}, format="json").status_code == 404


# --- duplicate, export, import, delete -------------------------------------------------------------------------


def test_duplicate_copies_the_document_under_a_new_uid_owned_by_you(editor):
    original = dashboard_make(title="Plant")
    client = api_client_for(editor)
    response = client.post(f"/api/v1/dashboards/{original.uid}/duplicate", {}, format="json")
    assert response.status_code == 201, response.content
    duplicate = response.json()
    assert duplicate["uid"] != original.uid
    assert (duplicate["version"], duplicate["owner"], duplicate["document"]["title"]) == (1, "erin", "Plant (copy)")
    assert {**duplicate["document"], "title": "Plant"} == dashboard_document(dashboard=original)
    named = client.post(f"/api/v1/dashboards/{original.uid}/duplicate", {"title": "Plant B"}, format="json").json()
    assert named["document"]["title"] == "Plant B"


def test_export_then_import_round_trips_the_document(editor):
    original = dashboard_make(title="Plant", owner=editor)
    client = api_client_for(editor)
    response = client.get(f"/api/v1/dashboards/{original.uid}/export")
    assert response.status_code == 200
    assert response["Content-Disposition"] == f'attachment; filename="plant-{original.uid}.json"'
    exported = json.loads(response.content)
    assert exported == dashboard_document(dashboard=original)
    assert dashboard_document_clean(exported) == exported

    imported = client.post("/api/v1/dashboards/import", exported, format="json")
    assert imported.status_code == 201, imported.content
    assert imported.json()["uid"] != original.uid
    assert client.get(f"/api/v1/dashboards/{imported.json()['uid']}/export").json() == exported

    upload = io.BytesIO(json.dumps(exported).encode())
    upload.name = "plant.json"
    from_file = client.post("/api/v1/dashboards/import?organization=test-org", {"file": upload}, format="multipart")
    assert from_file.status_code == 201, from_file.content
    assert from_file.json()["document"] == exported
    assert DashboardVersion.objects.get(dashboard__uid=from_file.json()["uid"]).message == "Imported"


def test_import_of_a_broken_file_names_the_problem(editor):
    upload = io.BytesIO(b"{not json")
    upload.name = "broken.json"
    response = api_client_for(editor).post("/api/v1/dashboards/import", {"file": upload}, format="multipart")
    assert (response.status_code, response.json()["field"]) == (400, "file")
    response = api_client_for(editor).post("/api/v1/dashboards/import", {"title": "X", "panels": "none"}, format="json")
    assert (response.status_code, response.json()["field"]) == (400, "panels")


def test_delete_removes_the_dashboard_with_its_panels_and_versions(editor):
    dashboard = dashboard_make()
    response = api_client_for(editor).delete(f"/api/v1/dashboards/{dashboard.uid}/")
    assert response.status_code == 204
    assert not Dashboard.objects.exists()
    assert not Panel.objects.exists()
    assert not DashboardVersion.objects.exists()


# --- permissions -----------------------------------------------------------------------------------------------


def test_viewers_read_but_cannot_change(viewer):
    dashboard = dashboard_make()
    client = api_client_for(viewer)
    body = client.get(f"/api/v1/dashboards/{dashboard.uid}/").json()
    assert (body["can_edit"], body["version"]) == (False, 1)
    assert client.get(f"/api/v1/dashboards/{dashboard.uid}/export").status_code == 200
    assert client.get(f"/api/v1/dashboards/{dashboard.uid}/versions/").status_code == 200
    document = body["document"]
    assert client.put(f"/api/v1/dashboards/{dashboard.uid}/", {"document": document}, format="json").status_code == 403
    assert client.delete(f"/api/v1/dashboards/{dashboard.uid}/").status_code == 403
    assert client.post(f"/api/v1/dashboards/{dashboard.uid}/duplicate", {}, format="json").status_code == 403
    assert client.post(f"/api/v1/dashboards/{dashboard.uid}/versions/1/restore", {}, format="json").status_code == 403
    assert Dashboard.objects.get(pk=dashboard.pk).version == 1


def test_outsiders_get_404_for_everything(outsider):
    dashboard = dashboard_make()
    client = api_client_for(outsider)
    uid = dashboard.uid
    assert client.get(f"/api/v1/dashboards/{uid}/").status_code == 404
    assert client.put(f"/api/v1/dashboards/{uid}/", {"document": document_build()}, format="json").status_code == 404
    assert client.delete(f"/api/v1/dashboards/{uid}/").status_code == 404
    assert client.get(f"/api/v1/dashboards/{uid}/versions/").status_code == 404
    assert client.get(f"/api/v1/dashboards/{uid}/export").status_code == 404
    assert client.post(f"/api/v1/dashboards/{uid}/duplicate", {}, format="json").status_code == 404
    assert client.post(f"/api/v1/dashboards/{uid}/versions/1/restore", {}, format="json").status_code == 404
    assert Dashboard.objects.filter(pk=dashboard.pk).exists()


def test_anonymous_requests_are_refused():
    dashboard = dashboard_make()
    assert APIClient().get("/api/v1/dashboards/").status_code in (401, 403)
    assert APIClient().get(f"/api/v1/dashboards/{dashboard.uid}/").status_code in (401, 403)


# --- demo ------------------------------------------------------------------------------------------------------


def test_demo_dashboards_are_brought_up_to_date_unless_someone_saved_them(editor):
    organization = organization_get()
    for slug in ("demo-factory", "demo-marketing", "demo-business"):
        source_create(organization=organization, name=slug, slug=slug)
    factory, marketing, executive = demo_dashboards_create(organization=organization, owner=editor)
    # An older release's demo documents: a panel title since changed, saved by the demo.
    for dashboard in (factory, executive):
        old = dashboard_document(dashboard=dashboard)
        old["panels"][0]["title"] = "An old title"
        dashboard_save(dashboard=dashboard, document=old, user=None, message="Demo dashboard")
    # A person saved Marketing after the demo did: it is theirs now.
    edited = dashboard_document(dashboard=marketing)
    edited["panels"][0]["title"] = "Mine"
    dashboard_save(dashboard=marketing, document=edited, user=editor, message="my change")

    again = demo_dashboards_create(organization=organization, owner=editor)

    assert [dashboard.pk for dashboard in again] == [factory.pk, marketing.pk, executive.pk]
    expected = {document["title"]: dashboard_document_clean(document) for document in demo_documents()}
    for dashboard in (again[0], again[2]):
        assert dashboard.version == 3
        current = dashboard_document(dashboard=dashboard)
        assert current["panels"] == expected[dashboard.title]["panels"]
    assert again[1].version == 2
    assert dashboard_document(dashboard=again[1])["panels"][0]["title"] == "Mine"
    # Up to date: nothing more is saved.
    assert [dashboard.version for dashboard in demo_dashboards_create(organization=organization, owner=editor)] == [
        3,
        2,
        3,
    ]


def test_demo_dashboards_are_valid_and_idempotent(editor):
    organization = organization_get()
    for slug in ("demo-factory", "demo-marketing", "demo-business"):
        source_create(organization=organization, name=slug, slug=slug)
    first = demo_dashboards_create(organization=organization, owner=editor)
    assert [dashboard.title for dashboard in first] == ["Factory floor", "Marketing", "Executive"]
    second = demo_dashboards_create(organization=organization, owner=editor)
    assert [dashboard.pk for dashboard in second] == [dashboard.pk for dashboard in first]
    assert Dashboard.objects.count() == 3
    factory = first[0]
    document = dashboard_document(dashboard=factory)
    assert dashboard_document_clean(document) == document
    assert document["variables"][0]["name"] == "facility"
    types = {panel["type"] for dashboard in first for panel in dashboard_document(dashboard=dashboard)["panels"]}
    assert types == {"stat", "timeseries", "gauge", "state_timeline", "table", "heatmap", "pie", "bar", "text",
                     "alertlist"}  # fmt: skip
    sources = {
        query["query"]["source"]
        for dashboard in first
        for panel in dashboard_document(dashboard=dashboard)["panels"]
        for query in panel["queries"]
    }
    assert sources == {"demo-factory", "demo-marketing", "demo-business"}
    # Every panel query runs as is through the query API (variables substituted by the front end).
    client = api_client_for(editor)
    for panel in document["panels"]:
        for query in panel["queries"]:
            spec = {**document["time_range"], **query["query"]}
            if "filters" in spec:
                spec["filters"] = {"facility": ["f1"]}
            response = client.post("/api/v1/query", spec, format="json")
            assert response.status_code in (200, 400), response.content
            if response.status_code == 400:
                # No data has been written: an unknown metric is the only acceptable complaint.
                assert response.json()["field"] == "metric", response.content


def test_list_and_detail_query_counts_do_not_grow_with_dashboards(editor, django_assert_num_queries):
    for index in range(5):
        dashboard_make(title=f"Plant {index}")
    client = api_client_for(editor)
    # Memberships, count, page (panel counts are annotated, organisation and owner joined).
    with django_assert_num_queries(3):
        assert client.get("/api/v1/dashboards/").json()["count"] == 5
    uid = Dashboard.objects.first().uid
    # Memberships and dashboard; editor memberships for can_edit; panels.
    with django_assert_num_queries(4):
        assert client.get(f"/api/v1/dashboards/{uid}/").status_code == 200


def test_admin_lists_and_shows_dashboards_read_mostly(client):
    from django.contrib.auth import get_user_model

    dashboard = dashboard_make()
    admin_user = get_user_model().objects.create_superuser(username="root", email="root@example.com", password="x")
    client.force_login(admin_user)
    assert client.get("/admin/dashboards/dashboard/").status_code == 200
    page = client.get(f"/admin/dashboards/dashboard/{dashboard.pk}/change/")
    assert page.status_code == 200
    assert b"Panel p2" in page.content
    version = dashboard.versions.get()
    assert client.get(f"/admin/dashboards/dashboardversion/{version.pk}/change/").status_code == 200
