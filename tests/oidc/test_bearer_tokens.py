"""API requests with JWT access tokens from a real OpenID Connect provider (npm oidc-provider in a node process)."""

from __future__ import annotations

import json
import time

import jwt
import pytest
from django.contrib.auth import get_user_model
from rest_framework.test import APIClient

from apps.sso.models import OidcIdentity, ServiceClient
from tests.oidc.provider import API_AUDIENCE, OTHER_AUDIENCE, signing_key

ME = "/api/v1/me"


def _get(token: str, path: str = ME):
    client = APIClient()
    return client.get(path, HTTP_AUTHORIZATION=f"Bearer {token}")


@pytest.fixture
def bot_account(db, bot_client):
    """The service account the ingest bot's tokens act as."""
    user = get_user_model().objects.create_user(username="svc-ingest-bot")
    ServiceClient.objects.create(client_id=bot_client.client_id, user=user)
    return user


def test_client_credentials_token_is_accepted_as_the_service_account(oidc_settings, bot_client, bot_account):
    token = oidc_settings.client_credentials_token(bot_client, scope="api:read")
    response = _get(token)
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "svc-ingest-bot"


def test_token_scopes_become_platform_scopes_and_limit_the_api(oidc_settings, bot_client, bot_account):
    from apps.sso.bearer import provider_token_authenticate

    token = oidc_settings.client_credentials_token(bot_client, scope="api:read api:write")
    user, principal = provider_token_authenticate(token=token)
    assert (user, principal.kind) == (bot_account, "service")
    assert principal.token_scopes == frozenset({"api:read", "api:write"})
    assert principal.scopes == frozenset({"read", "write"})
    # The service client may only read: its tokens are cut down to that.
    ServiceClient.objects.filter(user=bot_account).update(scopes="read")
    assert provider_token_authenticate(token=token)[1].scopes == frozenset({"read"})
    client = APIClient()
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {token}")
    assert client.get("/api/v1/dashboards/").status_code == 200
    response = client.post("/api/v1/dashboards/", {"title": "x"}, format="json")
    assert response.status_code == 403
    assert "'write'" in response.json()["detail"]


def test_a_users_access_token_acts_as_that_user(db, oidc_settings, web_client, olivia):
    person = get_user_model().objects.create_user(username="olivia")
    OidcIdentity.objects.create(user=person, issuer=oidc_settings.issuer, subject=olivia.id)
    tokens = oidc_settings.user_tokens(web_client, olivia)
    response = _get(tokens["access_token"])
    assert response.status_code == 200, response.content
    assert response.json()["username"] == "olivia"


def test_a_users_token_is_refused_until_they_signed_in_here(db, oidc_settings, web_client, olivia):
    tokens = oidc_settings.user_tokens(web_client, olivia)
    response = _get(tokens["access_token"])
    assert response.status_code == 401
    assert "neither a user who has signed in here" in response.json()["detail"]


def test_a_token_of_an_unregistered_client_is_refused(oidc_settings, stranger_client, bot_account):
    token = oidc_settings.client_credentials_token(stranger_client, scope="api:read")
    assert _get(token).status_code == 401


def test_wrong_audience_is_refused(oidc_settings, bot_client, bot_account):
    # A real token from the same provider, for another service's API.
    token = oidc_settings.client_credentials_token(bot_client, resource=OTHER_AUDIENCE, scope="other:read")
    response = _get(token)
    assert response.status_code == 401
    assert "audience" in response.json()["detail"]
    assert response["WWW-Authenticate"].startswith("Bearer")


def test_bad_signature_is_refused(oidc_settings, bot_client, bot_account):
    genuine = oidc_settings.client_credentials_token(bot_client)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    # Same claims and kid, signed with a key that is not the provider's.
    forger_key, _ = signing_key("key-1")
    forged = jwt.encode(claims, forger_key, algorithm="RS256", headers={"kid": "key-1", "typ": "at+jwt"})
    response = _get(forged)
    assert response.status_code == 401
    assert "signature" in response.json()["detail"]
    # And a tampered payload under the genuine signature.
    header, _, signature = genuine.split(".")
    tampered_claims = {**claims, "sub": "someone-else"}
    tampered_payload = jwt.utils.base64url_encode(json.dumps(tampered_claims).encode()).decode()
    assert _get(f"{header}.{tampered_payload}.{signature}").status_code == 401


def test_expired_token_is_refused(oidc_settings, bot_client, bot_account, settings):
    genuine = oidc_settings.client_credentials_token(bot_client)
    claims = jwt.decode(genuine, options={"verify_signature": False})
    # Signed with the provider's real key (the test generated it), so only the expiry is wrong. The provider
    # cannot be asked for an already-expired token.
    now = int(time.time())
    expired = jwt.encode(
        {**claims, "iat": now - 3600, "exp": now - 600},
        oidc_settings.key,
        algorithm="RS256",
        headers={"kid": "key-1", "typ": "at+jwt"},
    )
    response = _get(expired)
    assert response.status_code == 401
    assert "expired" in response.json()["detail"]
    # The same token with a fresh expiry passes, so it was the expiry that failed it.
    fresh = jwt.encode({**claims, "exp": now + 600}, oidc_settings.key, algorithm="RS256", headers={"kid": "key-1"})
    assert _get(fresh).status_code == 200


@pytest.mark.parametrize("algorithm", ["HS256", "none"])
def test_symmetric_and_unsigned_tokens_are_refused(oidc_settings, bot_client, bot_account, algorithm):
    claims = jwt.decode(oidc_settings.client_credentials_token(bot_client), options={"verify_signature": False})
    if algorithm == "none":
        token = jwt.encode(claims, None, algorithm="none")
    else:
        token = jwt.encode(claims, "web-secret-0123456789-0123456789-0123456789", algorithm="HS256")
    response = _get(token)
    assert response.status_code == 401
    assert "signed with" in response.json()["detail"]


def test_rotated_provider_keys_are_picked_up(oidc_settings, bot_client, bot_account):
    assert _get(oidc_settings.client_credentials_token(bot_client)).status_code == 200  # JWKS with key-1 cached
    oidc_settings.rotate_keys()
    token = oidc_settings.client_credentials_token(bot_client)
    assert jwt.get_unverified_header(token)["kid"] == "key-2"
    assert _get(token).status_code == 200
    # The withdrawn key no longer verifies anything.
    now = int(time.time())
    claims = {**jwt.decode(token, options={"verify_signature": False}), "exp": now + 600}
    old_key_token = jwt.encode(claims, oidc_settings.retired_keys[0], algorithm="RS256", headers={"kid": "key-1"})
    response = _get(old_key_token)
    assert response.status_code == 401
    assert "signing key" in response.json()["detail"]


def test_jwt_bearers_are_api_tokens_when_sso_is_off(db, settings):
    settings.OIDC_ISSUER = ""
    key, _ = signing_key("k")
    token = jwt.encode({"sub": "x", "aud": API_AUDIENCE, "exp": int(time.time()) + 60}, key, algorithm="RS256")
    response = _get(token)
    assert response.status_code == 401
    assert response.json()["detail"] == "Invalid API token."


def test_id_tokens_are_checked_for_nonce_audience_and_issuer(oidc_settings, web_client, olivia, settings):
    from apps.sso.tokens import TokenError, id_token_verify

    id_token = oidc_settings.user_tokens(web_client, olivia)["id_token"]
    nonce = jwt.decode(id_token, options={"verify_signature": False})["nonce"]
    assert id_token_verify(id_token, nonce=nonce)["sub"] == olivia.id
    with pytest.raises(TokenError, match="nonce does not match"):
        id_token_verify(id_token, nonce="another sign-in's nonce")
    with pytest.raises(TokenError, match="nonce does not match"):
        id_token_verify(id_token, nonce=None)
    settings.OIDC_CLIENT_ID = "some-other-client"
    with pytest.raises(TokenError, match="audience"):
        id_token_verify(id_token, nonce=nonce)


def test_unknown_kids_refetch_the_keys_at_most_every_few_seconds(oidc_settings, bot_client, bot_account, settings):
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 3600
    assert _get(oidc_settings.client_credentials_token(bot_client)).status_code == 200  # keys fetched now
    oidc_settings.rotate_keys()
    rotated = oidc_settings.client_credentials_token(bot_client)
    # Within the spacing a new kid is not fetched (made-up kids cannot make every request hit the provider) ...
    response = _get(rotated)
    assert response.status_code == 401
    assert "signing key (kid)" in response.json()["detail"]
    # ... and once it has passed, the rotated key is fetched and accepted.
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 0
    assert _get(rotated).status_code == 200


def _two_organisations(user) -> None:
    """`user` an editor of the test organisation (source "ours") and of "second" (source "theirs")."""
    from apps.access.services import membership_set
    from tests.factories import organization_get
    from tests.storage.factories import source_create

    membership_set(organization=organization_get(), user=user, role="editor")
    membership_set(organization=organization_get(slug="second"), user=user, role="editor")
    source_create(slug="ours")
    source_create(slug="theirs", organization="second")


def _source_slugs(token: str) -> list[str]:
    response = _get(token, "/api/v1/sources/")
    assert response.status_code == 200, response.content
    return sorted(source["slug"] for source in response.json()["results"])


def test_a_service_client_bound_to_an_organisation_acts_in_it_only(oidc_settings, bot_client, bot_account):
    """As a personal API token carries one organisation, a service client may: its service account, a member of
    two, then reads and changes the bound one only. Unbound, it acts in every organisation of its account."""
    from tests.factories import organization_get

    _two_organisations(bot_account)
    token = oidc_settings.client_credentials_token(bot_client, scope="api:read")
    assert _source_slugs(token) == ["ours", "theirs"]
    ServiceClient.objects.filter(user=bot_account).update(organization=organization_get(slug="second"))
    assert _source_slugs(token) == ["theirs"]
    assert _get(token, "/api/v1/sources/ours/").status_code == 404


def test_a_persons_token_acts_in_the_organisation_its_claim_names(db, oidc_settings, web_client, olivia, settings):
    """OIDC_API_ORGANIZATION_CLAIM set: a person's token acts in the organisation the claim names (the provider
    adds it, as a mapper would), is refused without the claim, and is refused alike for an organisation that does
    not exist and one the person is not in."""
    settings.OIDC_API_ORGANIZATION_CLAIM = "org"
    person = get_user_model().objects.create_user(username="olivia")
    OidcIdentity.objects.create(user=person, issuer=oidc_settings.issuer, subject=olivia.id)
    _two_organisations(person)
    from tests.factories import organization_get

    organization_get(slug="elsewhere")  # exists, olivia is not in it

    refused = _get(oidc_settings.user_tokens(web_client, olivia)["access_token"])
    assert refused.status_code == 401
    assert "the token names no organisation (claim 'org')" in refused.json()["detail"]
    oidc_settings.user_update(olivia.id, org="second")
    assert _source_slugs(oidc_settings.user_tokens(web_client, olivia)["access_token"]) == ["theirs"]
    messages = set()
    for slug in ("elsewhere", "no-such-organisation"):
        oidc_settings.user_update(olivia.id, org=slug)
        response = _get(oidc_settings.user_tokens(web_client, olivia)["access_token"])
        assert response.status_code == 401, slug
        messages.add(response.json()["detail"])
    assert messages == {"Bearer token refused: the token's organisation ('org' claim) is not one of its user's."}
    settings.OIDC_API_ORGANIZATION_CLAIM = ""
    assert _source_slugs(oidc_settings.user_tokens(web_client, olivia)["access_token"]) == ["ours", "theirs"]
