"""The Sources pages in headless Chromium against daphne: a kind's form used from the keyboard (errors on the
field, focus on it), the write key shown once, a CSV upload with its progress bar, and a dead letter corrected
and replayed."""

from __future__ import annotations

import http.client
import json

import pytest

from apps.ingestion.models import DeadLetter, DeadLetterStatus
from apps.sources.models import Source
from tests.browser.conftest import console_errors, sign_in, wait_for
from tests.factories import user_create
from tests.ingestion.factories import source_with_key, stored_points

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_an_mqtt_source_is_created_from_the_keyboard_with_errors_on_their_field(browser_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    user_create(username="erin", role="editor")
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/sources/")
    driver.find_element(By.CSS_SELECTOR, 'a[href="/sources/new/mqtt/"]').send_keys(Keys.ENTER)
    wait_for(lambda: "/sources/new/mqtt/" in driver.current_url, message="the MQTT form opens")
    assert driver.switch_to.active_element.get_attribute("name") == "name"  # focus starts on the first field
    active = driver.switch_to.active_element
    active.send_keys("Plant sensors", Keys.TAB, "plant")
    driver.find_element(By.NAME, "topic").send_keys("test-org/plant/#/telemetry", Keys.ENTER)
    error = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, '[data-field="topic"] .field-error').text,
        message="the topic's error is shown on it",
    )
    assert "not a valid MQTT topic filter" in error
    focused = driver.switch_to.active_element
    assert (focused.get_attribute("name"), focused.get_attribute("aria-invalid")) == ("topic", "true")
    focused.clear()
    focused.send_keys("test-org/plant/+/telemetry", Keys.ENTER)
    secret = wait_for(
        lambda: driver.find_element(By.ID, "new-secret").get_attribute("value"), message="the key is shown once"
    )
    assert len(secret) > 20
    source = Source.objects.get(slug="plant")
    assert (source.kind, source.config["topic"], source.config["qos"]) == ("mqtt", "test-org/plant/+/telemetry", 1)
    assert driver.find_element(By.CSS_SELECTOR, '[data-stat="series"]').text == "0"
    # The refused form answered 400 on purpose (the page says why); nothing else may fail.
    assert [error for error in console_errors(driver) if "status of 400" not in error] == []


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_csv_upload_shows_its_progress_and_the_rows_stored(browser_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    source, _ = source_with_key(slug="plant")
    rows = ["time,device,temperature"] + [f"2026-01-01T00:{minute:02d}:00Z,d1,{20 + minute}" for minute in range(60)]
    rows.append("2026-01-01T01:00:00Z,d1,bad")
    csv_path = tmp_path / "history.csv"
    csv_path.write_text("\n".join(rows) + "\n")
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/sources/plant/")
    # Before any upload the progress bar is not shown (it read "Sending… 0%" at rest).
    assert not driver.find_element(By.CSS_SELECTOR, ".upload-progress").is_displayed()
    # Record every value the progress bar takes.
    driver.execute_script(
        "window.progressSeen = []; const bar = document.getElementById('upload-bar');"
        "new MutationObserver(() => window.progressSeen.push([document.querySelector('.upload-phase').textContent,"
        " bar.value])).observe(bar, {attributes: true});"
    )
    driver.find_element(By.ID, "upload-file").send_keys(str(csv_path))
    driver.find_element(By.CSS_SELECTOR, ".upload-form [type=submit]").click()
    result = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, ".upload-result").text, timeout=30, message="the upload ends"
    )
    assert "history.csv: 61 rows stored as 60 points; 1 refused" in result
    assert driver.find_element(By.ID, "upload-bar").get_attribute("value") == "100"
    seen = driver.execute_script("return window.progressSeen;")
    assert seen[-1] == ["Done", 100]
    assert any(phase == "Sending…" for phase, _ in seen)
    assert len(stored_points(source=source)) == 60
    assert driver.find_element(By.CSS_SELECTOR, ".uploads-table tbody tr").text.startswith("history.csv")
    # An empty choice is refused on the field, without a request.
    driver.find_element(By.ID, "upload-file").clear()
    driver.find_element(By.CSS_SELECTOR, ".upload-form [type=submit]").click()
    assert driver.find_element(By.CSS_SELECTOR, ".upload-error").text.startswith("file:")
    assert console_errors(driver) == []


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_dead_letter_is_corrected_and_replayed_in_the_page(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    source, key = source_with_key(slug="plant", schema_mode="strict", schema={"measures": {"t": {"max": 10}}})
    driver = browser
    body = [{"time": "2026-01-01T00:00:00Z", "t": 50}, {"time": "2026-01-01T00:01:00Z", "t": 1}]
    host, port = browser_server.removeprefix("http://").split(":")
    # One record stored, one refused: the answer is 200 with the refusal counted.
    client = http.client.HTTPConnection(host, int(port), timeout=10)
    client.request("POST", "/api/v1/sources/plant/ingest", body=json.dumps(body),
                   headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"})  # fmt: skip
    assert client.getresponse().status == 200
    letter = DeadLetter.objects.get(source=source)
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/sources/plant/dead-letters/")
    assert "out_of_range" in driver.find_element(By.ID, f"letter-{letter.id}").text
    record = driver.find_element(By.ID, f"raw-{letter.id}")
    record.clear()
    record.send_keys('{"time": "2026-01-01T00:00:00Z", "t": 5}')
    driver.find_element(By.CSS_SELECTOR, f"#letter-{letter.id} .replay-form [type=submit]").click()
    message = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, ".messages").text, message="the outcome is said")
    assert f"Record {letter.id} stored." in message
    letter.refresh_from_db()
    assert letter.status == DeadLetterStatus.REPLAYED
    assert sorted(value for *_, value, _ in stored_points(source=source)) == [1.0, 5.0]
    assert "No pending dead letters" in driver.find_element(By.TAG_NAME, "main").text
