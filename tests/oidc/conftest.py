"""Fixtures for the SSO tests: the real provider (tests/oidc/provider.mjs) and settings pointing at it."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from apps.sso.provider import provider_caches_clear
from tests.conftest import port_in
from tests.oidc.provider import API_AUDIENCE, APP_PORTS, Client, OidcTestProvider, User

GROUP_RULES = "plant-f1-operators=acme/f1/viewer; plant-f1-engineers=acme/f1/editor; acme-admins=acme/admin"


@pytest.fixture
def app_port() -> int:
    """The port the app is (or would be) served on, known before the provider registers its redirect URIs."""
    return port_in(APP_PORTS)


@pytest.fixture
def web_client(app_port) -> Client:
    """The platform as a confidential client of the provider (authorization code + refresh tokens)."""
    base = f"http://127.0.0.1:{app_port}"
    return Client(
        client_id="analytics-platform",
        client_secret="web-secret-0123456789",
        # The second is Django's test client's host, for code flows driven without a browser.
        redirect_uris=[f"{base}/oidc/callback/", "http://testserver/oidc/callback/"],
        post_logout_redirect_uris=[f"{base}/accounts/login/"],
    )


@pytest.fixture
def bot_client() -> Client:
    """A machine client (client credentials grant)."""
    return Client(
        client_id="ingest-bot",
        client_secret="bot-secret-0123456789",
        grant_types=["client_credentials"],
        response_types=[],
        redirect_uris=[],
    )


@pytest.fixture
def stranger_client() -> Client:
    """Another machine client of the same provider that this platform does not know."""
    return Client(
        client_id="stranger-bot",
        client_secret="stranger-secret-0123456789",
        grant_types=["client_credentials"],
        response_types=[],
        redirect_uris=[],
    )


@pytest.fixture
def olivia() -> User:
    return User(
        id="u-olivia",
        username="olivia",
        password="olivia-pass-1",
        email="olivia@acme.example",
        name="Olivia Ops",
        groups=["plant-f1-operators", "unrelated-group"],
    )


@pytest.fixture
def oidc_provider(tmp_path, web_client, bot_client, stranger_client, olivia) -> Iterator[OidcTestProvider]:
    """The npm oidc-provider on a port of this suite's range, with the clients and users above."""
    provider = OidcTestProvider(
        directory=tmp_path, clients=[web_client, bot_client, stranger_client], users=[olivia], name="Test IdP"
    )
    try:
        yield provider
    finally:
        provider.stop()


def oidc_environment(provider: OidcTestProvider, client: Client) -> dict[str, str]:
    """The environment variables an operator would set for this provider (also used for daphne)."""
    return {
        "OIDC_ISSUER": provider.issuer,
        "OIDC_CLIENT_ID": client.client_id,
        "OIDC_CLIENT_SECRET": client.client_secret,
        "OIDC_PROVIDER_NAME": "Test IdP",
        "OIDC_SCOPES": "openid email profile groups api:read",
        "OIDC_GROUP_RULES": GROUP_RULES,
        "OIDC_API_AUDIENCE": API_AUDIENCE,
    }


@pytest.fixture
def oidc_settings(settings, oidc_provider, web_client) -> Iterator[OidcTestProvider]:
    """Settings pointing at the real provider (as the environment above would), caches cleared around."""
    for name, value in oidc_environment(oidc_provider, web_client).items():
        setattr(settings, name, value)
    settings.OIDC_JWKS_MIN_REFETCH_SECONDS = 0
    provider_caches_clear()
    yield oidc_provider
    provider_caches_clear()
