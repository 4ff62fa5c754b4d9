"""Organisations, members, teams and data policies through the API: roles mean what they say, and an organisation
you do not belong to answers exactly like one that does not exist."""

from __future__ import annotations

import pytest

from apps.access.models import DataPolicy, Membership, Organization
from apps.access.services import DEFAULT_POLICY_NAME
from tests.conftest import api_client_for
from tests.factories import user_create
from tests.storage.factories import source_create

ORG = "/api/v1/organizations/test-org"


@pytest.mark.django_db
def test_the_creator_becomes_admin_and_the_default_policy_is_made(user):
    response = api_client_for(user).post("/api/v1/organizations/", {"name": "Acme", "slug": "acme"}, format="json")
    assert response.status_code == 201, response.content
    assert response.json()["role"] == "admin"
    organization = Organization.objects.get(slug="acme")
    assert Membership.objects.get(organization=organization, user=user).role == "admin"
    assert list(DataPolicy.objects.filter(organization=organization).values_list("name", "all_members")) == [
        (DEFAULT_POLICY_NAME, True)
    ]
    listed = api_client_for(user).get("/api/v1/organizations/").json()
    assert {(item["slug"], item["role"]) for item in listed} == {("acme", "admin"), ("test-org", "viewer")}
    again = api_client_for(user).post("/api/v1/organizations/", {"name": "Acme 2", "slug": "acme"}, format="json")
    assert again.status_code == 409
    assert again.json()["field"] == "slug"


@pytest.mark.django_db
def test_admins_manage_members_and_others_may_not(user, editor, viewer):
    admin = user_create(username="ada", role="admin")
    user_create(username="newbie", organization=None)
    for member in (editor, viewer):
        refused = api_client_for(member).post(
            f"{ORG}/members/", {"username": "newbie", "role": "viewer"}, format="json"
        )
        assert refused.status_code == 403
        assert api_client_for(member).get(f"{ORG}/members/").status_code == 200
        assert (
            api_client_for(member).patch(f"{ORG}/members/alice/", {"role": "admin"}, format="json").status_code == 403
        )
        assert api_client_for(member).delete(f"{ORG}/members/alice/").status_code == 403
    client = api_client_for(admin)
    added = client.post(f"{ORG}/members/", {"username": "newbie", "role": "editor"}, format="json")
    assert added.status_code == 201, added.content
    assert added.json()["role"] == "editor"
    assert client.post(f"{ORG}/members/", {"username": "newbie", "role": "viewer"}, format="json").status_code == 409
    bad_role = client.post(f"{ORG}/members/", {"username": "ghost", "role": "owner"}, format="json")
    assert bad_role.status_code == 400
    assert bad_role.json()["field"] == "role"
    assert (
        client.post(f"{ORG}/members/", {"username": "ghost", "role": "viewer"}, format="json").json()["field"]
        == "username"
    )
    assert client.patch(f"{ORG}/members/newbie/", {"role": "viewer"}, format="json").json()["role"] == "viewer"
    assert client.delete(f"{ORG}/members/newbie/").status_code == 204
    assert client.get(f"{ORG}/members/newbie/").status_code == 404
    # The last admin neither steps down nor leaves.
    assert client.patch(f"{ORG}/members/ada/", {"role": "editor"}, format="json").status_code == 409
    assert client.delete(f"{ORG}/members/ada/").status_code == 409
    usernames = [item["username"] for item in client.get(f"{ORG}/members/").json()]
    assert usernames == sorted(usernames)
    assert "ada" in usernames


@pytest.mark.django_db
def test_an_organisation_you_are_not_in_looks_like_none(user):
    stranger = user_create(username="mallory", organization="rival-org", role="admin")
    paths = ["", "members/", "members/alice/", "teams/", "policies/"]
    for path in paths:
        foreign = api_client_for(stranger).get(f"{ORG}/{path}")
        missing = api_client_for(stranger).get(f"/api/v1/organizations/no-such-org/{path}")
        assert foreign.status_code == missing.status_code == 404, path
        assert foreign.json()["detail"].replace("test-org", "X") == missing.json()["detail"].replace("no-such-org", "X")


@pytest.mark.django_db
def test_teams_and_their_members(user, viewer):
    admin = user_create(username="ada", role="admin")
    user_create(username="outsider", organization="rival-org")
    client = api_client_for(admin)
    created = client.post(f"{ORG}/teams/", {"name": "Line 1", "slug": "line-1"}, format="json")
    assert created.status_code == 201, created.content
    assert client.post(f"{ORG}/teams/", {"name": "Again", "slug": "line-1"}, format="json").status_code == 409
    assert api_client_for(viewer).post(f"{ORG}/teams/", {"name": "X", "slug": "x"}, format="json").status_code == 403
    assert client.post(f"{ORG}/teams/line-1/members/", {"username": "alice"}, format="json").status_code == 201
    outsider = client.post(f"{ORG}/teams/line-1/members/", {"username": "outsider"}, format="json")
    assert outsider.status_code == 400
    assert outsider.json()["field"] == "username"
    assert api_client_for(viewer).get(f"{ORG}/teams/line-1/").json()["members"] == ["alice"]
    assert client.get(f"{ORG}/members/alice/").json()["teams"] == ["line-1"]
    assert client.patch(f"{ORG}/teams/line-1/", {"name": "Line one"}, format="json").json()["name"] == "Line one"
    assert client.delete(f"{ORG}/teams/line-1/members/alice/").status_code == 204
    assert client.get(f"{ORG}/teams/line-1/members/").json()["members"] == []
    assert client.delete(f"{ORG}/teams/line-1/").status_code == 204
    assert client.get(f"{ORG}/teams/line-1/").status_code == 404


@pytest.mark.django_db
def test_policies_are_validated_and_only_admins_manage_them(user, editor):
    admin = user_create(username="ada", role="admin")
    source_create(slug="plant")
    source_create(slug="rival-plant", organization="rival-org")
    client = api_client_for(admin)
    assert api_client_for(editor).get(f"{ORG}/policies/").status_code == 403
    body = {
        "name": "Facility f1 temperatures",
        "source": "plant",
        "users": ["alice"],
        "teams": [],
        "labels": {"facility": ["f1", "f2"]},
        "metrics": ["temperature"],
    }
    created = client.post(f"{ORG}/policies/", body, format="json")
    assert created.status_code == 201, created.content
    policy = created.json()
    assert {key: policy[key] for key in body} == {**body, "labels": {"facility": ["f1", "f2"]}}
    for field, value in [
        ("source", "rival-plant"),
        ("users", ["nobody"]),
        ("teams", ["no-team"]),
        ("labels", {"facility": []}),
        ("labels", ["f1"]),
        ("metrics", []),
    ]:
        refused = client.post(f"{ORG}/policies/", {**body, field: value}, format="json")
        assert refused.status_code == 400, (field, value)
        assert refused.json()["field"].split(".")[0] == field
    changed = client.patch(f"{ORG}/policies/{policy['id']}/", {"metrics": None, "source": None}, format="json")
    assert changed.status_code == 200, changed.content
    assert (changed.json()["metrics"], changed.json()["source"], changed.json()["users"]) == (None, None, ["alice"])
    assert client.delete(f"{ORG}/policies/{policy['id']}/").status_code == 204
    assert client.get(f"{ORG}/policies/{policy['id']}/").status_code == 404
    assert [item["name"] for item in client.get(f"{ORG}/policies/").json()] == [DEFAULT_POLICY_NAME]
