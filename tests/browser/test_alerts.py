"""The alerting pages in headless Chromium against daphne: the rule editor's backtest preview and save, "send test"
to a real receiver, acknowledging an instance."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.alerts.alerting.services import contact_point_create
from apps.alerts.models import AlertRule
from tests.alerts.alerting.receivers import Receiver, receiver_start, receiver_stop
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_the_rule_editor_previews_a_backtest_and_saves(browser_server, browser, storage_committed_cleanup):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug="plant")
    now = datetime.now(UTC)
    records = [
        {"time": (now - timedelta(minutes=40 - minute)).isoformat(), "device": "press-7",
         "temperature": 95 if 10 <= minute < 15 else 50}
        for minute in range(40)
    ]  # fmt: skip
    http_ingest(browser_server, "plant", key, records)
    sign_in(browser, browser_server, "erin")
    browser.get(f"{browser_server}/alerts/rules/new")
    browser.find_element(By.ID, "backtest-run").click()
    summary = wait_for(
        lambda: browser.find_element(By.ID, "backtest-summary").text, message="no backtest summary appeared"
    )
    assert "fired 1 time(s) and sent 2 notification(s)" in summary, summary
    assert browser.find_elements(By.CSS_SELECTOR, "#backtest-charts svg .band-firing")
    browser.find_element(By.ID, "rule-save").click()
    wait_for(lambda: "/alerts/rules/" in browser.current_url and "new" not in browser.current_url,
             message="save did not open the rule")  # fmt: skip
    assert AlertRule.objects.get().name == "Press too hot"
    assert console_errors(browser) == []


def test_send_test_reaches_the_receiver(browser_server, browser):
    from selenium.webdriver.common.by import By

    editor = user_create(username="erin", role="editor")
    receiver = receiver_start(Receiver())
    try:
        contact_point_create(organization=organization_get(), created_by=editor, name="floor hook", kind="webhook",
                             config={"url": receiver.url, "secret": "s"})  # fmt: skip
        sign_in(browser, browser_server, "erin")
        browser.get(f"{browser_server}/alerts/contact-points/")
        browser.find_element(By.CSS_SELECTOR, "button[data-send-test]").click()
        wait_for(lambda: browser.find_element(By.ID, "alerts-status").text == "Test sent.", message="no test sent")
        assert receiver.requests[0].json()["alerts"][0]["labels"]["alertname"] == "TestNotification"
    finally:
        receiver_stop(receiver)
