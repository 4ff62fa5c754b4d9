"""Annotations in headless Chromium against daphne: click a time-series chart, fill the small form from the
keyboard, see the annotation drawn (a plotly shape) and stored; viewers see it but get no form."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.dashboards.models import Annotation
from apps.dashboards.services import annotation_create
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.browser.test_dashboards import SOURCE, _dashboard, _iso, _panel
from tests.factories import user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SHAPES = (
    "const plot = document.querySelector('.grid-stack-item[gs-id=\"chart\"] .js-plotly-plot');"
    "return plot && plot.layout.shapes"
    " ? plot.layout.shapes.map((s) => [s.type, s.x0, s.x1, s.label && s.label.text]) : null;"
)


def _chart_with_data(base_url: str) -> object:
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC).replace(microsecond=0)
    records = [
        {"time": _iso(now - timedelta(minutes=minutes)), "device": "d1", "temperature": 20.0 + minutes % 7}
        for minutes in range(1, 50)
    ]
    http_ingest(base_url, SOURCE, key, records)
    return _dashboard([_panel("chart", x=0, y=0, w=12, h=6, aggregation="avg")], start="-1h")


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_clicking_a_chart_adds_an_annotation_drawn_on_it(browser_server, browser):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    user_create(username="erin", role="editor")
    dashboard = _chart_with_data(browser_server)
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    wait_for(lambda: driver.execute_script(SHAPES) is not None, message="the chart is drawn")
    plot_area = driver.find_element(By.CSS_SELECTOR, '.grid-stack-item[gs-id="chart"] .nsewdrag')
    ActionChains(driver).move_to_element(plot_area).pause(0.3).click().perform()
    dialog = wait_for(
        lambda: (
            driver.find_element(By.ID, "annotation-dialog").get_attribute("open") is not None
            and driver.find_element(By.ID, "annotation-dialog")
        ),
        message="the annotation form opens on a click",
    )
    clicked_time = driver.find_element(By.ID, "annotation-time").get_attribute("value")
    assert clicked_time, "the form starts at the clicked time"
    # The text field has the focus: type, then submit with Enter, as a keyboard user would.
    active = driver.switch_to.active_element
    assert active.get_attribute("id") == "annotation-text"
    active.send_keys("Bearing replaced")
    driver.find_element(By.ID, "annotation-tags").send_keys("maintenance, press", Keys.ENTER)
    wait_for(lambda: dialog.get_attribute("open") is None, message="the form closes after saving")
    stored = wait_for(lambda: Annotation.objects.first(), message="the annotation is stored")
    assert (stored.text, stored.tags, stored.panel_key, stored.kind) == (
        "Bearing replaced", ["maintenance", "press"], "chart", "manual"
    )  # fmt: skip
    local_clicked = driver.execute_script("return new Date(arguments[0]).toISOString();", clicked_time)
    assert stored.time == datetime.fromisoformat(local_clicked.replace("Z", "+00:00"))
    shapes = wait_for(lambda: driver.execute_script(SHAPES), message="the annotation is drawn")
    assert shapes == [["line", _iso(stored.time).replace("Z", ".000Z"), _iso(stored.time).replace("Z", ".000Z"),
                       "Bearing replaced"]]  # fmt: skip
    # It is still there after a reload (read back from the API).
    driver.refresh()
    wait_for(lambda: driver.execute_script(SHAPES) == shapes, message="the annotation is drawn after a reload")
    assert console_errors(driver) == []


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_bad_range_shows_the_error_with_the_field_and_a_viewer_gets_no_form(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    user_create(username="vic", role="viewer")
    dashboard = _chart_with_data(browser_server)
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    wait_for(lambda: driver.execute_script(SHAPES) is not None, message="the chart is drawn")
    driver.find_element(By.CSS_SELECTOR, "body").send_keys("a")
    wait_for(
        lambda: driver.find_element(By.ID, "annotation-dialog").get_attribute("open") is not None,
        message="the a key opens the form",
    )
    driver.execute_script(
        "const form = document.querySelector('#annotation-dialog form');"
        "form.elements.time.value = '2026-05-01T10:00:00'; form.elements.time_end.value = '2026-05-01T09:00:00';"
    )
    driver.find_element(By.ID, "annotation-text").send_keys("Backwards")
    driver.find_element(By.CSS_SELECTOR, "#annotation-dialog [type=submit]").click()
    error = wait_for(
        lambda: driver.find_element(By.CSS_SELECTOR, ".annotation-error").text, message="the error is shown"
    )
    assert error.startswith("time_end:")
    assert not Annotation.objects.exists()

    # A range annotation by API is drawn as a band, for a viewer too, who gets no form on click.
    now = datetime.now(UTC).replace(microsecond=0)
    annotation_create(
        dashboard=dashboard, time=now - timedelta(minutes=30), time_end=now - timedelta(minutes=20), text="Window"
    )
    driver.delete_all_cookies()
    sign_in(driver, browser_server, "vic")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    shapes = wait_for(lambda: driver.execute_script(SHAPES), message="the band is drawn")
    assert [shape[0] for shape in shapes] == ["rect"]
    plot_area = driver.find_element(By.CSS_SELECTOR, '.grid-stack-item[gs-id="chart"] .nsewdrag')
    plot_area.click()
    assert driver.find_element(By.ID, "annotation-dialog").get_attribute("open") is None
