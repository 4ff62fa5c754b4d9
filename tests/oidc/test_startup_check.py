"""The start-up check says clearly what is wrong with the provider's configuration (and nothing when SSO is off)."""

from __future__ import annotations

import os
import subprocess
import sys

from apps.sso.checks import sso_provider_check
from apps.sso.provider import provider_caches_clear
from tests.conftest import REPO_ROOT, closed_port


def _ids(settings) -> list[str]:
    provider_caches_clear()
    return [message.id for message in sso_provider_check()]


def test_nothing_to_check_without_sso(settings):
    settings.OIDC_ISSUER = ""
    assert sso_provider_check() == []


def test_a_working_provider_passes(oidc_settings, settings):
    assert _ids(settings) == []


def test_missing_secret_and_bad_rules_are_errors(oidc_settings, settings):
    settings.OIDC_CLIENT_SECRET = ""
    settings.OIDC_GROUP_RULES = "g=acme/owner"
    assert _ids(settings) == ["sso.E002", "sso.E003"]


def test_an_issuer_that_is_not_the_providers_is_an_error(oidc_settings, settings):
    # The provider answers on 127.0.0.1 too, but its discovery document names http://localhost:<port>.
    settings.OIDC_ISSUER = oidc_settings.issuer.replace("localhost", "127.0.0.1")
    provider_caches_clear()
    [error] = sso_provider_check()
    assert error.id == "sso.E004"
    assert "issuer is 'http://localhost" in error.msg


def test_plain_http_is_refused_for_remote_issuers(settings):
    settings.OIDC_ISSUER = "http://idp.example.com"
    [error] = sso_provider_check()
    assert (error.id, error.msg) == (
        "sso.E001",
        "OIDC_ISSUER must use https:// (plain http only for localhost), got 'http://idp.example.com'",
    )


def test_manage_py_refuses_to_start_with_an_unreachable_provider():
    environment = {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.dev",
        "OIDC_ISSUER": f"http://127.0.0.1:{closed_port()}",
        "OIDC_CLIENT_ID": "analytics",
        "OIDC_CLIENT_SECRET": "secret",
        "OIDC_HTTP_TIMEOUT": "2",
    }
    result = subprocess.run(
        [sys.executable, "manage.py", "check"],
        cwd=REPO_ROOT,
        env=environment,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert result.returncode != 0
    assert "sso.E004" in result.stderr
    assert "cannot reach http://127.0.0.1:" in result.stderr
    assert "/.well-known/openid-configuration" in result.stderr
