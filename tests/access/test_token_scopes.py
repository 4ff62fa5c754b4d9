"""API-token scopes and organisations, and what a token may mint: never broader, longer-lived or elsewhere."""

from __future__ import annotations

from datetime import timedelta

import pytest
from django.utils import timezone
from rest_framework.test import APIClient

from apps.access.models import ApiToken
from apps.access.services import api_token_create
from tests.factories import organization_get, user_create
from tests.storage.factories import source_create


def _client(raw_key: str) -> APIClient:
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {raw_key}")
    return client


pytestmark = pytest.mark.django_db


def test_a_token_cannot_mint_a_token_that_never_expires(user):
    _, parent_key = api_token_create(user=user, name="parent", scopes=["read", "write", "admin"])
    response = _client(parent_key).post("/api/v1/tokens/", {"name": "child", "scopes": ["read"]}, format="json")
    assert response.status_code == 201, response.json()
    child = ApiToken.objects.get(pk=response.json()["id"])
    assert child.expires_at is not None
    assert child.expires_at <= timezone.now() + timedelta(days=90, seconds=5)
    assert response.json()["parent_id"] is not None


def test_a_token_cannot_mint_a_longer_lived_token(user):
    _, parent_key = api_token_create(
        user=user, name="parent", scopes=["read", "admin"], expires_at=timezone.now() + timedelta(days=7)
    )
    client = _client(parent_key)
    longer = client.post("/api/v1/tokens/", {"name": "c", "scopes": ["read"], "expires_in_days": 30}, format="json")
    assert longer.status_code == 403
    assert longer.json()["field"] == "expires_at"
    same = client.post("/api/v1/tokens/", {"name": "c", "scopes": ["read"]}, format="json")
    assert same.status_code == 201
    parent_expiry = ApiToken.objects.get(name="parent").expires_at
    assert ApiToken.objects.get(pk=same.json()["id"]).expires_at == parent_expiry


def test_a_token_cannot_mint_a_broader_token(user):
    _, parent_key = api_token_create(user=user, name="parent", scopes=["read", "admin"])
    response = _client(parent_key).post("/api/v1/tokens/", {"name": "c", "scopes": ["write"]}, format="json")
    assert response.status_code == 403
    assert response.json()["field"] == "scopes"
    assert "write" in response.json()["detail"]


def test_minting_needs_the_admin_scope(user):
    _, read_write_key = api_token_create(user=user, name="rw", scopes=["read", "write"])
    response = _client(read_write_key).post("/api/v1/tokens/", {"name": "c"}, format="json")
    assert response.status_code == 403
    assert "'admin'" in response.json()["detail"]


def test_a_token_cannot_mint_for_another_organisation(user):
    organization_get(slug="second")
    from apps.access.services import membership_set

    membership_set(organization=organization_get(slug="second"), user=user, role="admin")
    _, parent_key = api_token_create(
        user=user, name="parent", scopes=["read", "admin"], organization=organization_get()
    )
    response = _client(parent_key).post(
        "/api/v1/tokens/", {"name": "c", "scopes": ["read"], "organization": "second"}, format="json"
    )
    assert response.status_code == 403
    assert response.json()["field"] == "organization"


def test_a_session_user_may_still_create_a_never_expiring_token(user):
    from tests.conftest import api_client_for

    response = api_client_for(user).post("/api/v1/tokens/", {"name": "cli"}, format="json")
    assert response.status_code == 201
    assert response.json()["expires_at"] is None
    assert response.json()["scopes"] == ["read"]  # read-only unless asked
    assert response.json()["organization"] == "test-org"


def test_unknown_scope_names_the_field(user):
    from tests.conftest import api_client_for

    response = api_client_for(user).post("/api/v1/tokens/", {"name": "x", "scopes": ["root"]}, format="json")
    assert response.status_code == 400
    assert response.json()["field"].startswith("scopes")


def test_read_only_tokens_cannot_write_but_can_query(editor):
    source_create(slug="plant")
    _, read_key = api_token_create(user=editor, name="ro", scopes=["read"])
    client = _client(read_key)
    assert client.get("/api/v1/sources/").status_code == 200
    refused = client.post("/api/v1/sources/", {"name": "P", "slug": "p2"}, format="json")
    assert refused.status_code == 403
    assert "'write'" in refused.json()["detail"]
    assert client.post("/api/v1/sources/plant/pause").status_code == 403
    query = client.post("/api/v1/query", {"source": "plant", "metric": "t", "start": "-1h"}, format="json")
    assert query.status_code == 200, query.json()  # reached the engine (an empty answer), not refused by scope
    assert query.json()["series"] == []
    _, write_key = api_token_create(user=editor, name="rw", scopes=["read", "write"])
    assert _client(write_key).post("/api/v1/sources/plant/pause").status_code == 200


def test_the_audit_log_needs_the_admin_scope():
    admin = user_create(username="ada", role="admin")
    _, read_write = api_token_create(user=admin, name="rw", scopes=["read", "write"])
    _, with_admin = api_token_create(user=admin, name="adm", scopes=["read", "admin"])
    assert _client(read_write).get("/api/v1/organizations/test-org/audit-log").status_code == 403
    assert _client(with_admin).get("/api/v1/organizations/test-org/audit-log").status_code == 200


def test_a_token_acts_in_its_organisation_only():
    from apps.access.services import membership_set

    user = user_create(username="multi", role="editor")
    membership_set(organization=organization_get(slug="second"), user=user, role="editor")
    source_create(slug="ours")
    source_create(slug="theirs", organization="second")
    _, key = api_token_create(user=user, name="t", scopes=["read"], organization=organization_get())
    client = _client(key)
    assert [source["slug"] for source in client.get("/api/v1/sources/").json()["results"]] == ["ours"]
    assert client.get("/api/v1/sources/theirs/").status_code == 404
    with pytest.raises(ValueError, match="several organisations"):
        api_token_create(user=user, name="which")


def test_the_tokens_page_sets_scopes_and_asks_for_the_organisation_when_there_are_several(user):
    from django.test import Client

    from apps.access.services import membership_set

    client = Client()
    client.force_login(user)
    created = client.post("/account/tokens/", {"name": "etl", "expires_in_days": "30", "scopes": ["write"]})
    assert created.status_code == 200
    assert ApiToken.objects.get(name="etl").scopes == ["read", "write"]
    membership_set(organization=organization_get(slug="second"), user=user, role="viewer")
    page = client.post("/account/tokens/", {"name": "which", "expires_in_days": "30"})
    assert page.status_code == 200
    assert b"several organisations" in page.content
    assert not ApiToken.objects.filter(name="which").exists()
    client.post("/account/tokens/", {"name": "which", "expires_in_days": "30", "organization": "second"})
    assert ApiToken.objects.get(name="which").organization.slug == "second"
