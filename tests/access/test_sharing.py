"""Sharing a dashboard with a member or a team as view or edit (django-guardian object permissions), and the list
of who has access and why."""

from __future__ import annotations

import pytest

from apps.access.services import team_create
from apps.access.sharing import object_access_list, object_share, object_share_level
from tests.conftest import api_client_for
from tests.dashboards.factories import dashboard_make
from tests.factories import organization_get, user_create


def _put(client, dashboard):
    detail = client.get(f"/api/v1/dashboards/{dashboard.uid}/").json()
    document = {**detail["document"], "title": "Renamed"}
    return client.put(
        f"/api/v1/dashboards/{dashboard.uid}/", {"version": detail["version"], "document": document}, format="json"
    )


@pytest.mark.django_db
def test_an_edit_share_lets_a_viewer_edit_and_taking_it_back_stops_that(editor, viewer):
    dashboard = dashboard_make()
    client = api_client_for(viewer)
    assert _put(client, dashboard).status_code == 403  # a viewer by role
    shared = api_client_for(editor).post(
        f"/api/v1/dashboards/{dashboard.uid}/shares/", {"user": viewer.username, "level": "edit"}, format="json"
    )
    assert shared.status_code == 200, shared.content
    assert shared.json()["shares"] == [{"kind": "user", "name": "vic", "level": "edit"}]
    vic = next(entry for entry in shared.json()["access"] if entry["username"] == "vic")
    assert vic == {"username": "vic", "level": "edit", "reasons": ["viewer of Test Org", "shared with them (edit)"]}
    assert client.get(f"/api/v1/dashboards/{dashboard.uid}/").json()["can_edit"] is True
    assert _put(client, dashboard).status_code == 200
    # A share recipient edits but does not re-share: sharing belongs to admins and editors.
    assert (
        client.post(
            f"/api/v1/dashboards/{dashboard.uid}/shares/", {"user": "erin", "level": "view"}, format="json"
        ).status_code
        == 403
    )
    assert api_client_for(editor).delete(f"/api/v1/dashboards/{dashboard.uid}/shares/user/vic/").status_code == 204
    assert _put(client, dashboard).status_code == 403
    assert api_client_for(editor).delete(f"/api/v1/dashboards/{dashboard.uid}/shares/user/vic/").status_code == 404


@pytest.mark.django_db
def test_a_team_share_reaches_its_members_and_says_so(editor, viewer):
    team = team_create(organization=organization_get(), name="Line 1", slug="line-1")
    team.group.user_set.add(viewer)
    dashboard = dashboard_make()
    object_share(obj=dashboard, level="edit", team="line-1")
    assert object_share_level(user=viewer, obj=dashboard) == "edit"
    entry = next(entry for entry in object_access_list(obj=dashboard) if entry.username == "vic")
    assert (entry.level, entry.reasons) == ("edit", ["viewer of Test Org", "team Line 1 (edit)"])
    team.group.user_set.remove(viewer)
    assert object_share_level(user=viewer, obj=dashboard) is None


@pytest.mark.django_db
def test_shares_stay_inside_the_organisation(editor):
    user_create(username="mallory", organization="rival-org", role="admin")
    dashboard = dashboard_make()
    client = api_client_for(editor)
    outsider = client.post(
        f"/api/v1/dashboards/{dashboard.uid}/shares/", {"user": "mallory", "level": "view"}, format="json"
    )
    assert outsider.status_code == 400
    assert outsider.json()["field"] == "user"
    rival_team = team_create(organization=organization_get(slug="rival-org"), name="Spies", slug="spies")
    assert (
        client.post(
            f"/api/v1/dashboards/{dashboard.uid}/shares/", {"team": rival_team.slug, "level": "view"}, format="json"
        ).json()["field"]
        == "team"
    )
    # And someone outside sees neither the dashboard nor its shares.
    mallory = api_client_for(user_create(username="mel", organization="rival-org"))
    assert mallory.get(f"/api/v1/dashboards/{dashboard.uid}/shares/").status_code == 404


@pytest.mark.django_db
def test_a_share_without_membership_gives_nothing(editor):
    dashboard = dashboard_make(title="Plant", panels=1)
    leaver = user_create(username="lee", role="viewer")
    object_share(obj=dashboard, level="edit", username="lee")
    leaver.memberships.all().delete()
    assert api_client_for(leaver).get(f"/api/v1/dashboards/{dashboard.uid}/").status_code == 404


@pytest.mark.django_db
def test_the_access_page_shows_who_and_why_and_lets_editors_share(editor, viewer):
    from django.test import Client

    dashboard = dashboard_make()
    browser = Client()
    browser.force_login(editor)
    browser.post(
        f"/dashboards/{dashboard.uid}/access/", {"action": "share", "kind": "user", "name": "vic", "level": "edit"}
    )
    assert object_share_level(user=viewer, obj=dashboard) == "edit"
    page = browser.get(f"/dashboards/{dashboard.uid}/access/").content.decode()
    assert "viewer of Test Org; shared with them (edit)" in page
    reader = Client()
    reader.force_login(viewer)
    assert "stop sharing" not in reader.get(f"/dashboards/{dashboard.uid}/access/").content.decode()
    assert (
        reader.post(
            f"/dashboards/{dashboard.uid}/access/", {"action": "unshare", "kind": "user", "name": "vic"}
        ).status_code
        == 404
    )
    assert (
        'href="/dashboards/' + dashboard.uid + '/access/"'
        in reader.get(f"/dashboards/{dashboard.uid}/").content.decode()
    )
