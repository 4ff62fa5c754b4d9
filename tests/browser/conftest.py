"""Headless Chromium (Debian's chromium and chromium-driver) against the real ASGI app under daphne."""

from __future__ import annotations

import http.client
import json
import os
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from django.db import connection

from tests.conftest import daphne_start, daphne_stop
from tests.storage.conftest import storage_committed_cleanup  # noqa: F401 (fixture for tests that ingest)

CHROMIUM_CANDIDATES = ("/usr/lib/chromium/chromium", "/usr/bin/chromium")
CHROMEDRIVER = "/usr/bin/chromedriver"
PASSWORD = "correct horse battery staple"


def _chromium() -> str | None:
    return next((path for path in CHROMIUM_CANDIDATES if Path(path).exists()), None)


def _missing(reason: str) -> None:
    # CI must run these; a developer without Chromium gets a skip that says what to install.
    if os.environ.get("CI"):
        pytest.fail(reason)
    pytest.skip(reason)


@pytest.fixture
def browser_server(transactional_db) -> Iterator[str]:
    """The app under daphne on the test database, yields http://host:port."""
    process, address = daphne_start(
        database_name=connection.settings_dict["NAME"],
        extra_environment={"DJANGO_SETTINGS_MODULE": "analytics_platform.settings.test"},
    )
    try:
        yield f"http://{address}"
    finally:
        daphne_stop(process)


@pytest.fixture
def browser(tmp_path) -> Iterator[Any]:
    """A fresh headless Chromium driven by Selenium through Debian's chromedriver (nothing is downloaded)."""
    webdriver = pytest.importorskip("selenium.webdriver", reason="pip install selenium (requirements-dev.txt)")
    from selenium.webdriver.chrome.service import Service

    binary = _chromium()
    if binary is None or not Path(CHROMEDRIVER).exists() or shutil.which("chromedriver") is None:
        _missing("headless Chromium is missing: apt-get install -y chromium chromium-driver")
    options = webdriver.ChromeOptions()
    options.binary_location = binary
    for flag in (
        "--headless=new",
        "--no-sandbox",
        "--disable-gpu",
        "--disable-dev-shm-usage",
        "--disable-background-networking",
        "--disable-component-update",
        "--disable-sync",
        "--disable-extensions",
        "--disable-default-apps",
        "--no-first-run",
        "--no-default-browser-check",
        "--metrics-recording-only",
        "--password-store=basic",
        f"--user-data-dir={tmp_path / 'chromium-profile'}",
        "--window-size=1400,1000",
    ):
        options.add_argument(flag)
    options.set_capability("goog:loggingPrefs", {"browser": "ALL"})
    driver = webdriver.Chrome(options=options, service=Service(executable_path=CHROMEDRIVER))
    driver.set_script_timeout(20)
    try:
        yield driver
    finally:
        driver.quit()


def sign_in(driver: Any, base_url: str, username: str, password: str = PASSWORD) -> None:
    """Sign in through the login form, as a person would."""
    from selenium.webdriver.common.by import By

    driver.get(f"{base_url}/accounts/login/")
    driver.find_element(By.NAME, "username").send_keys(username)
    driver.find_element(By.NAME, "password").send_keys(password)
    driver.find_element(By.CSS_SELECTOR, "form [type=submit]").click()
    wait_for(lambda: "/accounts/login/" not in driver.current_url, message="sign-in did not leave the login page")


def wait_for(condition: Callable[[], Any], *, timeout: float = 10.0, interval: float = 0.05, message: str = "") -> Any:
    """Poll `condition` until it returns something truthy; fail with `message` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        try:
            result = condition()
        except Exception as error:  # the page may be mid-render; try again
            last_error = error
            result = None
        if result:
            return result
        time.sleep(interval)
    raise AssertionError(f"{message or 'condition not met'} within {timeout} s (last error: {last_error!r})")


def console_errors(driver: Any) -> list[str]:
    """SEVERE console messages of the page (JavaScript errors, failed loads)."""
    return [
        entry["message"]
        for entry in driver.get_log("browser")
        if entry["level"] == "SEVERE" and "favicon.ico" not in entry["message"]  # the project has no favicon
    ]


def http_ingest(base_url: str, slug: str, key: str, records: list[dict]) -> float:
    """POST records to the real ingest endpoint; returns when the call started (time.monotonic())."""
    host, port = base_url.removeprefix("http://").split(":")
    started = time.monotonic()
    client = http.client.HTTPConnection(host, int(port), timeout=10)
    client.request(
        "POST",
        f"/api/v1/sources/{slug}/ingest",
        body=json.dumps(records),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    response = client.getresponse()
    body = response.read()
    client.close()
    assert response.status == 200, body
    return started
