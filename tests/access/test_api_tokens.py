"""Personal API tokens: stored hashed; valid, expired, revoked and wrong tokens; UI, API and CLI."""

from __future__ import annotations

from datetime import timedelta
from io import StringIO

import pytest
from django.core.management import call_command
from django.core.management.base import CommandError
from django.utils import timezone

from analytics_platform.keys import key_digest
from apps.access.models import ApiToken
from apps.access.services import api_token_create, api_token_revoke


def _auth(raw_key: str) -> dict[str, str]:
    return {"HTTP_AUTHORIZATION": f"Bearer {raw_key}"}


@pytest.mark.django_db
def test_only_the_hash_is_stored(user):
    token, raw_key = api_token_create(user=user, name="notebook")
    stored = ApiToken.objects.get(pk=token.pk)
    assert raw_key.startswith("apt_")
    assert len(raw_key) > 40
    assert stored.key_hash == key_digest(raw_key)
    assert raw_key not in {stored.key_hash, stored.key_prefix}
    assert raw_key.startswith(stored.key_prefix)


@pytest.mark.django_db
def test_valid_token_authenticates(api_client, user):
    token, raw_key = api_token_create(user=user, name="notebook")
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 200
    assert response.json()["username"] == "alice"
    token.refresh_from_db()
    assert token.last_used_at is not None


@pytest.mark.django_db
def test_expired_token_refused(api_client, user):
    token, raw_key = api_token_create(user=user, name="short", expires_at=timezone.now() + timedelta(minutes=5))
    ApiToken.objects.filter(pk=token.pk).update(expires_at=timezone.now() - timedelta(seconds=1))
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "API token has expired."
    assert response["WWW-Authenticate"].startswith("Bearer")


@pytest.mark.django_db
def test_revoked_token_refused(api_client, user):
    token, raw_key = api_token_create(user=user, name="old")
    api_token_revoke(token=token)
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "API token has been revoked."


@pytest.mark.django_db
@pytest.mark.parametrize("raw_key", ["apt_not-a-real-token", "something-else", "apt_"])
def test_wrong_token_refused(api_client, user, raw_key):
    api_token_create(user=user, name="real")
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."


@pytest.mark.django_db
def test_empty_bearer_and_no_credentials(api_client):
    assert api_client.get("/api/v1/me", HTTP_AUTHORIZATION="Bearer ").status_code == 401
    response = api_client.get("/api/v1/me")
    assert response.status_code == 401
    assert response.json()["detail"] == "Authentication credentials were not provided."


@pytest.mark.django_db
def test_inactive_user_token_refused(api_client, user):
    _, raw_key = api_token_create(user=user, name="notebook")
    user.is_active = False
    user.save()
    assert api_client.get("/api/v1/me", **_auth(raw_key)).status_code == 401


@pytest.mark.django_db
def test_create_list_revoke_via_api(api_client, user, other_user):
    api_client.force_authenticate(user)
    created = api_client.post("/api/v1/tokens/", {"name": "ci", "expires_in_days": 30}, format="json")
    assert created.status_code == 201
    body = created.json()
    assert body["token"].startswith(body["key_prefix"])
    assert body["status"] == "active"
    listing = api_client.get("/api/v1/tokens/").json()
    assert listing["count"] == 1
    assert "token" not in listing["results"][0]
    assert "key_hash" not in listing["results"][0]
    revoked = api_client.delete(f"/api/v1/tokens/{body['id']}/")
    assert revoked.status_code == 200
    assert revoked.json()["status"] == "revoked"
    api_client.force_authenticate(None)
    assert api_client.get("/api/v1/me", **_auth(body["token"])).status_code == 401
    # Another user cannot see or revoke it.
    api_client.force_authenticate(other_user)
    assert api_client.delete(f"/api/v1/tokens/{body['id']}/").status_code == 404


@pytest.mark.django_db
def test_create_validation_names_the_field(api_client, user):
    api_client.force_authenticate(user)
    response = api_client.post("/api/v1/tokens/", {"name": "x", "expires_in_days": 0}, format="json")
    assert response.status_code == 400
    assert response.json()["field"] == "expires_in_days"
    missing = api_client.post("/api/v1/tokens/", {}, format="json").json()
    assert (missing["field"], missing["code"]) == ("name", "required")


@pytest.mark.django_db
def test_token_page_shows_secret_once_and_revokes(client, user):
    client.force_login(user)
    response = client.post("/account/tokens/", {"name": "grafana", "expires_in_days": "90"})
    assert response.status_code == 200
    token = ApiToken.objects.get(user=user, name="grafana")
    text = response.content.decode()
    secret = text.split('id="new-token" readonly value="')[1].split('"')[0]
    assert key_digest(secret) == token.key_hash
    assert secret not in client.get("/account/tokens/").content.decode()
    client.post(f"/account/tokens/{token.pk}/revoke/")
    token.refresh_from_db()
    assert token.status == "revoked"


@pytest.mark.django_db
def test_token_page_requires_csrf(user):
    from django.test import Client

    strict = Client(enforce_csrf_checks=True)
    strict.force_login(user)
    assert strict.post("/account/tokens/", {"name": "x"}).status_code == 403


@pytest.mark.django_db
def test_cli_prints_a_working_token(api_client, user):
    stdout, stderr = StringIO(), StringIO()
    call_command(
        "create_api_token", "alice", "--name", "script", "--expires-in-days", "7", stdout=stdout, stderr=stderr
    )
    raw_key = stdout.getvalue().strip()
    assert api_client.get("/api/v1/me", **_auth(raw_key)).json()["username"] == "alice"
    assert "created for alice" in stderr.getvalue()
    token = ApiToken.objects.get(name="script")
    assert timedelta(days=6) < token.expires_at - timezone.now() <= timedelta(days=7)


@pytest.mark.django_db
def test_cli_unknown_user():
    with pytest.raises(CommandError, match="No user named 'nobody'"):
        call_command("create_api_token", "nobody")


def _token_queries(queries) -> list[str]:
    return [query["sql"] for query in queries if 'FROM "access_apitoken"' in query["sql"]]


@pytest.mark.django_db
def test_a_used_token_is_read_once_per_process_and_a_revocation_applies_at_once(
    api_client, user, django_capture_on_commit_callbacks
):
    """Tokens are kept per process (apps/access/token_cache.py) until a committed change bumps the generation."""
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    token, raw_key = api_token_create(user=user, name="notebook")
    assert api_client.get("/api/v1/me", **_auth(raw_key)).status_code == 200
    with CaptureQueriesContext(connection) as queries:
        assert api_client.get("/api/v1/me", **_auth(raw_key)).json()["username"] == "alice"
    assert _token_queries(queries.captured_queries) == []  # served from the process's cache
    with django_capture_on_commit_callbacks(execute=True):
        api_token_revoke(token=token)
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "API token has been revoked."


@pytest.mark.django_db
def test_a_cached_token_of_a_deactivated_user_is_refused_at_once(api_client, user, django_capture_on_commit_callbacks):
    _, raw_key = api_token_create(user=user, name="notebook")
    assert api_client.get("/api/v1/me", **_auth(raw_key)).status_code == 200
    with django_capture_on_commit_callbacks(execute=True):
        user.is_active = False
        user.save()
    response = api_client.get("/api/v1/me", **_auth(raw_key))
    assert response.status_code == 401
    assert response.json()["detail"] == "The token's user is inactive."


@pytest.mark.django_db
def test_a_cached_token_hands_each_request_its_own_user(user):
    """What one request sets on its user (DRF and the views do) must not reach the next request's."""
    from apps.access.services import api_token_authenticate

    _, raw_key = api_token_create(user=user, name="notebook")
    first = api_token_authenticate(raw_key=raw_key)
    first.user.first_name = "changed by a request"
    second = api_token_authenticate(raw_key=raw_key)
    assert second.user is not first.user
    assert second.user.first_name != "changed by a request"
    assert second is not first
