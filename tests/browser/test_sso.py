"""Single sign-on end to end in headless Chromium: the app under daphne, the npm oidc-provider in node, both real."""

from __future__ import annotations

import time

import pytest
from django.db import connection

from apps.access.models import Membership
from apps.access.services import team_create
from apps.audit.models import AuditEvent
from apps.dashboards.services import dashboard_create
from apps.sso.models import ManagedMembership, OidcIdentity
from tests.browser.conftest import wait_for
from tests.conftest import daphne_start, daphne_stop
from tests.factories import organization_get
from tests.oidc.conftest import (  # noqa: F401 (fixtures)
    app_port,
    bot_client,
    oidc_environment,
    oidc_provider,
    olivia,
    stranger_client,
    web_client,
)

pytestmark = [pytest.mark.browser, pytest.mark.slow]

# How often an SSO session asks the provider to renew its tokens here (the default is 300 s).
SESSION_CHECK_SECONDS = 2


@pytest.fixture
def sso_server(transactional_db, oidc_provider, web_client, app_port):  # noqa: F811
    """The app under daphne on the port the provider knows, configured for the provider through the environment."""
    environment = {
        **oidc_environment(oidc_provider, web_client),
        "OIDC_SESSION_CHECK_SECONDS": str(SESSION_CHECK_SECONDS),
    }
    process, address = daphne_start(
        database_name=connection.settings_dict["NAME"], extra_environment=environment, port=app_port
    )
    try:
        yield f"http://{address}"
    finally:
        daphne_stop(process)


def _sso_sign_in(driver, base_url: str, username: str, password: str, *, expect_provider_form: bool = True) -> None:
    from selenium.webdriver.common.by import By

    link = wait_for(lambda: driver.find_element(By.ID, "sso-sign-in"), message="no single sign-on link")
    assert link.text == "Sign in with Test IdP"
    link.click()
    if expect_provider_form:
        wait_for(lambda: driver.find_element(By.NAME, "login"), message="the provider's login form did not show")
        assert driver.current_url.startswith("http://localhost:")  # the provider's page, not ours
        driver.find_element(By.NAME, "login").send_keys(username)
        driver.find_element(By.NAME, "password").send_keys(password)
        driver.find_element(By.ID, "idp-submit").click()
    wait_for(lambda: driver.current_url.startswith(base_url), message="the provider did not send us back")


def _dashboard_titles(driver) -> list[str]:
    from selenium.webdriver.common.by import By

    wait_for(lambda: driver.find_element(By.ID, "dashboard-table").is_displayed(), message="no dashboard list")
    return [cell.text for cell in driver.find_elements(By.CSS_SELECTOR, "#dashboard-table tbody tr td:first-child")]


def _can_create_dashboards(driver) -> bool:
    from selenium.webdriver.common.by import By

    return bool(driver.find_elements(By.ID, "new-dashboard"))


def test_sign_in_roles_from_groups_logout_of_both_and_session_end(browser, sso_server, oidc_provider, olivia):  # noqa: F811
    from selenium.webdriver.common.by import By

    acme = organization_get(slug="acme")
    f1 = team_create(organization=acme, name="Plant F1", slug="f1")
    document = {"title": "Plant floor F1", "time_range": {"start": "-1h", "end": "now"}, "panels": []}
    dashboard_create(organization=acme, owner=None, document=document)
    dashboard_create(organization=organization_get(slug="globex"), owner=None, document={**document, "title": "Hidden"})

    # 1. Signing in through the provider lands on the dashboards with the organisation and role of the groups.
    browser.get(f"{sso_server}/dashboards/")
    wait_for(lambda: "/accounts/login/" in browser.current_url, message="not sent to sign in")
    _sso_sign_in(browser, sso_server, olivia.username, olivia.password)
    assert browser.current_url == f"{sso_server}/dashboards/"
    assert _dashboard_titles(browser) == ["Plant floor F1"]
    assert not _can_create_dashboards(browser)  # a viewer
    identity = OidcIdentity.objects.select_related("user").get(subject=olivia.id)
    user = identity.user
    assert (user.username, user.email) == ("olivia", "olivia@acme.example")
    membership = Membership.objects.get(user=user)
    assert (membership.organization.slug, membership.role) == ("acme", "viewer")
    assert ManagedMembership.objects.filter(membership=membership).exists()
    assert list(f1.group.user_set.all()) == [user]  # team f1 from the same rule

    # 2. The provider moves her to the engineers' group; this session keeps its role until the next sign-in.
    oidc_provider.user_update(olivia.id, groups=["plant-f1-engineers"])

    # 3. Signing out ends our session and the provider's (RP-initiated logout, confirmed on its page).
    browser.find_element(By.CSS_SELECTOR, "form[action='/accounts/logout/'] button").click()
    confirm = wait_for(
        lambda: browser.find_element(By.ID, "idp-logout"),
        message="no provider sign-out page",
    )
    assert browser.current_url.startswith(f"{oidc_provider.issuer}/session/end")
    confirm.click()
    wait_for(lambda: browser.current_url.startswith(f"{sso_server}/accounts/login/"), message="not sent back")
    browser.get(f"{sso_server}/dashboards/")
    wait_for(lambda: "/accounts/login/" in browser.current_url, message="our session survived sign-out")

    # 4. The provider asks for the password again (its session is gone too); the new groups give editor.
    _sso_sign_in(browser, sso_server, olivia.username, olivia.password, expect_provider_form=True)
    browser.get(f"{sso_server}/dashboards/")
    assert _dashboard_titles(browser) == ["Plant floor F1"]
    assert wait_for(lambda: _can_create_dashboards(browser), message="the editor role did not arrive")
    assert Membership.objects.get(user=user).role == "editor"

    # 5. Disabled at the provider: the next renewal of the tokens is refused and the session ends here.
    oidc_provider.user_update(olivia.id, disabled=True)
    time.sleep(SESSION_CHECK_SECONDS + 0.5)
    browser.get(f"{sso_server}/dashboards/")
    wait_for(lambda: "/accounts/login/" in browser.current_url, message="the session outlived the provider's refusal")
    assert "Your single sign-on session ended" in browser.find_element(By.TAG_NAME, "body").text

    actions = list(AuditEvent.objects.filter(actor=user).order_by("id").values_list("action", flat=True))
    for expected in ("sso.sign_in", "sso.membership_added", "sso.membership_role_changed", "sso.session_ended"):
        assert expected in actions, actions


def test_a_failed_provider_sign_in_says_why(browser, sso_server, oidc_provider):  # noqa: F811
    from selenium.webdriver.common.by import By

    # A callback that no sign-in in this browser started (forged or replayed): refused on the state check.
    browser.get(f"{sso_server}/oidc/callback/?code=forged&state=forged")
    error = wait_for(lambda: browser.find_element(By.ID, "sso-error"), message="no error shown")
    assert "does not belong to a sign-in started in this browser" in error.text
    assert AuditEvent.objects.filter(action="sso.sign_in_failed").count() == 1
