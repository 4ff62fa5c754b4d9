"""The sign-in page and SSO URLs with and without a provider configured."""

from __future__ import annotations

from urllib.parse import parse_qs, urlsplit

import pytest
from django.test import Client

from tests.factories import user_create


def test_without_sso_the_sign_in_page_and_urls_are_as_before(db, settings):
    settings.OIDC_ISSUER = ""
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Sign in with" not in page
    assert 'name="password"' in page
    assert client.get("/oidc/authenticate/").status_code == 404
    assert client.get("/oidc/callback/?code=x&state=y").status_code == 404
    user_create(username="vic")
    assert (
        client.post("/accounts/login/", {"username": "vic", "password": "correct horse battery staple"}).status_code
        == 302
    )
    response = client.post("/accounts/logout/")
    assert (response.status_code, response["Location"]) == (302, "/accounts/login/")


def test_with_sso_the_sign_in_page_offers_the_provider(db, oidc_settings):
    page = Client().get("/accounts/login/?next=/dashboards/").content.decode()
    assert 'href="/oidc/authenticate/?next=/dashboards/"' in page
    assert "Sign in with Test IdP" in page
    assert "Or with a local account" in page


def test_sign_in_starts_the_code_flow_with_pkce_state_and_nonce(db, oidc_settings, web_client):
    client = Client()
    response = client.get("/oidc/authenticate/?next=/dashboards/")
    assert response.status_code == 302
    location = urlsplit(response["Location"])
    assert f"{location.scheme}://{location.netloc}{location.path}" == f"{oidc_settings.issuer}/auth"
    query = {name: values[0] for name, values in parse_qs(location.query).items()}
    assert query["client_id"] == web_client.client_id
    assert query["response_type"] == "code"
    assert query["code_challenge_method"] == "S256"
    assert len(query["code_challenge"]) == 43
    state = client.session["oidc_states"][query["state"]]
    assert state["nonce"] == query["nonce"]
    assert len(state["code_verifier"]) >= 43


@pytest.mark.parametrize("username", ["vic", "admin"])
def test_local_passwords_off_folds_the_form_for_break_glass_users(db, oidc_settings, settings, username):
    settings.OIDC_LOCAL_PASSWORDS = False
    settings.OIDC_BREAK_GLASS_USERS = ["admin"]
    user_create(username=username)
    client = Client()
    page = client.get("/accounts/login/").content.decode()
    assert "Break-glass administrator sign-in" in page
    response = client.post("/accounts/login/", {"username": username, "password": "correct horse battery staple"})
    assert response.status_code == (302 if username == "admin" else 200)


def test_failed_sso_callbacks_do_not_lock_out_the_address(db, oidc_settings, settings):
    client = Client()
    for _ in range(settings.AXES_FAILURE_LIMIT + 2):
        response = client.get("/oidc/callback/?code=stale&state=stale")
        assert response.status_code == 400  # not 429: a failed SSO callback names no username to lock out
    assert "does not belong to a sign-in started in this browser" in response.content.decode()
