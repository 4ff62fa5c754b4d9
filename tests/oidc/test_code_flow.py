"""The whole authorization code flow through our views (Django's test client) and the real provider (HTTP)."""

from __future__ import annotations

import time

from django.test import Client

from apps.access.models import Membership
from apps.sso.session import SESSION_ACCESS_EXPIRES_AT
from tests.factories import organization_get


def _sign_in(client: Client, provider, user, next_url: str = "/dashboards/"):
    start = client.get(f"/oidc/authenticate/?next={next_url}")
    assert start.status_code == 302
    back = provider.authorize(start["Location"], user)
    assert back.startswith("http://testserver/oidc/callback/?"), back
    return client.get(back.removeprefix("http://testserver"))


def test_code_flow_signs_in_maps_groups_and_refreshes(db, oidc_settings, olivia, settings):
    organization_get(slug="acme")
    client = Client()
    response = _sign_in(client, oidc_settings, olivia)
    assert (response.status_code, response["Location"]) == (302, "/dashboards/")
    assert client.get("/api/v1/me").json()["username"] == "olivia"
    assert dict(Membership.objects.values_list("organization__slug", "role")) == {"acme": "viewer"}
    # The access token is due: the next request renews it with the refresh token and the session goes on.
    session = client.session
    session[SESSION_ACCESS_EXPIRES_AT] = time.time() - 1
    session.save()
    assert client.get("/api/v1/me").status_code == 200
    assert client.session[SESSION_ACCESS_EXPIRES_AT] > time.time()
    # Disabled at the provider: the next renewal is refused and the session ends.
    oidc_settings.user_update(olivia.id, disabled=True)
    session = client.session
    session[SESSION_ACCESS_EXPIRES_AT] = time.time() - 1
    session.save()
    assert client.get("/api/v1/me").status_code in {401, 403}
    assert client.get("/dashboards/").status_code == 302


def test_a_replayed_callback_is_refused(db, oidc_settings, olivia):
    client = Client()
    start = client.get("/oidc/authenticate/")
    back = oidc_settings.authorize(start["Location"], olivia).removeprefix("http://testserver")
    assert client.get(back).status_code == 302
    client.post("/accounts/logout/")
    replay = client.get(back)  # the state was used up (and the code too)
    assert replay.status_code == 400


def test_claims_from_the_userinfo_endpoint(db, oidc_settings, olivia, settings):
    settings.OIDC_CLAIMS_FROM_USERINFO = True
    # With an API scope the access token is the API's, which this provider's userinfo endpoint refuses: the
    # sign-in fails saying so, which shows the endpoint is asked.
    refused = _sign_in(Client(), oidc_settings, olivia)
    assert refused.status_code == 502
    assert "/me refused the sign-in" in refused.content.decode()
    settings.OIDC_SCOPES = "openid email profile groups"  # no API scope: the access token is for userinfo
    settings.OIDC_CLAIM_NAME = "name"
    oidc_settings.user_update(olivia.id, name="Olivia Userinfo")
    client = Client()
    response = _sign_in(client, oidc_settings, olivia)
    assert response.status_code == 302
    assert client.get("/api/v1/me").json()["username"] == "olivia"
    from django.contrib.auth import get_user_model

    assert get_user_model().objects.get(username="olivia").last_name == "Userinfo"


def test_sign_in_after_the_provider_rotated_its_keys(db, oidc_settings, olivia):
    assert _sign_in(Client(), oidc_settings, olivia).status_code == 302  # the provider's keys are cached now
    oidc_settings.rotate_keys()
    response = _sign_in(Client(), oidc_settings, olivia)
    assert (response.status_code, response["Location"]) == (302, "/dashboards/")  # the new kid was fetched
