"""Under the Content Security Policy, the API reference pages and the tokens page still work in a real browser,
and the browser reports no violation (a refused script or style shows as a SEVERE console message)."""

from __future__ import annotations

from tests.browser.conftest import console_errors, sign_in, wait_for
from tests.factories import user_create


def test_swagger_ui_redoc_and_the_tokens_page_run_under_the_policy(browser_server, browser):
    user_create(username="erin", role="editor")
    driver = browser
    sign_in(driver, browser_server, "erin")

    driver.get(f"{browser_server}/api/docs/")
    wait_for(
        lambda: driver.execute_script("return document.querySelectorAll('.opblock').length > 10;"),
        timeout=30,
        message="Swagger UI lists the operations",
    )
    driver.get(f"{browser_server}/api/redoc/")
    wait_for(
        lambda: driver.execute_script("return document.body.innerText.includes('Query time series');"),
        timeout=30,
        message="ReDoc renders the schema",
    )
    driver.get(f"{browser_server}/account/tokens/")
    driver.find_element("name", "name").send_keys("browser")
    driver.find_element("css selector", "form.inline-form button[type=submit]").click()
    secret = wait_for(lambda: driver.find_element("id", "new-token"), message="the new token is shown")
    selection = (
        "const f = document.getElementById('new-token'); f.blur(); f.focus();"
        "return [f.selectionEnd - f.selectionStart, [...document.scripts].map((s) => s.src)];"
    )
    selected, scripts = driver.execute_script(selection)
    assert any(src.endswith("select-on-focus.js") for src in scripts), scripts
    assert selected == len(secret.get_attribute("value"))  # select-on-focus runs as a file, not an inline handler
    # The one expected refusal: ReDoc's "powered by" logo from its CDN (img-src allows no third-party hosts).
    unexpected = [message for message in console_errors(driver) if "cdn.redoc.ly" not in message]
    assert not unexpected, unexpected
