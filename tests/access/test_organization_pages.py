"""The organisation pages: admins manage members, teams and policies there; members read; others get 404; a user
in several organisations switches between them."""

from __future__ import annotations

import pytest
from django.test import Client

from apps.access.models import DataPolicy, Membership, Team
from tests.factories import organization_get, user_create
from tests.storage.factories import source_create


def _browser(user) -> Client:
    browser = Client()
    browser.force_login(user)
    return browser


@pytest.mark.django_db
def test_an_admin_manages_members_teams_and_policies_from_the_pages(viewer):
    admin = user_create(username="ada", role="admin")
    user_create(username="newbie", organization=None)
    source_create(slug="plant")
    browser = _browser(admin)
    base = "/organizations/test-org"
    browser.post(f"{base}/members/", {"action": "add", "username": "newbie", "role": "viewer"})
    browser.post(f"{base}/members/", {"action": "role", "username": "newbie", "role": "editor"})
    assert Membership.objects.get(user__username="newbie").role == "editor"
    refused = browser.post(f"{base}/members/", {"action": "role", "username": "ada", "role": "viewer"}, follow=True)
    assert "last admin" in refused.content.decode()
    browser.post(f"{base}/teams/", {"action": "create", "name": "Ops", "slug": "ops"})
    browser.post(f"{base}/teams/", {"action": "add", "team": "ops", "username": "newbie"})
    assert list(Team.objects.get(slug="ops").group.user_set.values_list("username", flat=True)) == ["newbie"]
    page = browser.get(f"{base}/members/").content.decode()
    assert "newbie" in page and "ops" in page  # noqa: PT018
    created = browser.post(
        f"{base}/policies/",
        {"name": "Line A", "source": "plant", "teams": "ops", "labels": "facility=f1,f2\nline=a", "metrics": ""},
    )
    assert created.status_code == 302
    policy = DataPolicy.objects.get(name="Line A")
    assert (policy.labels, policy.metrics, policy.source.slug) == (
        {"facility": ["f1", "f2"], "line": ["a"]},
        None,
        "plant",
    )
    edit = browser.get(f"{base}/policies/?edit={policy.pk}").content.decode()
    assert "facility=f1,f2" in edit
    browser.post(
        f"{base}/policies/?edit={policy.pk}",
        {"name": "Line A", "all_members": "on", "labels": "", "metrics": "temperature"},
    )
    policy.refresh_from_db()
    assert (policy.all_members, policy.labels, policy.metrics, policy.source) == (True, {}, ["temperature"], None)
    bad = browser.post(f"{base}/policies/", {"name": "Bad", "labels": "facility"})
    assert "key=value1,value2" in bad.content.decode()
    browser.post(f"{base}/policies/", {"action": "delete", "policy": policy.pk})
    assert not DataPolicy.objects.filter(name="Line A").exists()
    browser.post(f"{base}/members/", {"action": "remove", "username": "newbie"})
    assert not Membership.objects.filter(user__username="newbie").exists()


@pytest.mark.django_db
def test_members_read_others_are_refused(viewer):
    browser = _browser(viewer)
    assert browser.get("/organizations/test-org/members/").status_code == 200
    assert browser.get("/organizations/test-org/teams/").status_code == 200
    assert browser.get("/organizations/test-org/policies/").status_code == 403
    assert browser.post("/organizations/test-org/members/", {"action": "remove", "username": "vic"}).status_code == 403
    outsider = _browser(user_create(username="mallory", organization="rival-org", role="admin"))
    for page in ("members", "teams", "policies"):
        assert outsider.get(f"/organizations/test-org/{page}/").status_code == 404


@pytest.mark.django_db
def test_a_user_in_several_organisations_switches_between_them(user):
    Membership.objects.create(organization=organization_get(slug="acme"), user=user, role="admin")
    browser = _browser(user)
    home = browser.get("/").content.decode()
    assert 'name="organization"' in home
    assert "Acme (admin)" in home
    assert 'href="/organizations/acme/members/"' in home  # Acme sorts first
    switched = browser.post("/organizations/switch", {"organization": "test-org", "next": "/"})
    assert switched.status_code == 302
    assert 'href="/organizations/test-org/members/"' in browser.get("/").content.decode()
    assert browser.post("/organizations/switch", {"organization": "rival-org"}).status_code == 404
    assert (
        browser.post("/organizations/switch", {"organization": "acme", "next": "https://evil.example/"})["Location"]
        == "/"
    )
