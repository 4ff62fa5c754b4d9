"""What a person saw wrong walking the demo, in headless Chromium against daphne: stacked areas drew bare lines,
an axis with no decimals over a few units repeated its labels ("3, 3, 2, 2, 2 purchases"), a single unnamed bar
stood on a numeric axis (0.6 .. 1.4), and on a phone the dashboard list and the tokens page were wider than the
screen, with the scope checkboxes on lines of their own."""

from __future__ import annotations

import pytest

from apps.access.services import api_token_create
from apps.dashboards.services import dashboard_create
from tests.browser.conftest import console_errors, sign_in, wait_for
from tests.browser.test_builder import SOURCE, _dashboard, _panel, _query, _readings, _ready
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

TRACES = (
    "return document.querySelector('.panel[data-key=\"{key}\"] .panel-body').data.map((t) => [t.fill, t.stackgroup]);"
)
TICKS = (
    "return [...document.querySelectorAll('.panel[data-key=\"{key}\"] .{axis}tick text')].map((t) => t.textContent);"
)


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_stacked_areas_fill_whole_number_ticks_and_a_named_bar(browser_server, browser):
    user_create(username="erin", role="viewer")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key, minutes=30)  # devices d1, d2, d3 at 20, 21, 22 (+0..2) every minute
    by_device = {"group_by": ["device"], "bucket": "1m"}
    dashboard = _dashboard(
        [
            _panel("stacked", "timeseries", [_query("temperature", **by_device)], style="areas", stack=True),
            _panel("few", "timeseries", [_query("temperature", **by_device)], x=6, decimals=0, h=6),
            _panel("one-bar", "bar", [_query("temperature")], y=6, calculation="mean", combination="mean"),
        ]
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)

    # Stacked areas fill down to the series below (plotly's stack group), not "none".
    assert driver.execute_script(TRACES.format(key="stacked")) == [["tonexty", "y"]] * 3

    # Values 20 .. 24 with no decimals: one tick per whole number, each label once.
    ticks = driver.execute_script(TICKS.format(key="few", axis="y"))
    assert ticks, "the axis has tick labels"
    assert len(ticks) == len(set(ticks)), ticks
    assert all(20 <= int(text) <= 24 for text in ticks), ticks

    # One query combined into one value: a bar named by its metric on a category axis.
    assert driver.execute_script(TICKS.format(key="one-bar", axis="x")) == ["temperature"]
    assert console_errors(driver) == []


def test_on_a_phone_the_dashboard_list_tokens_and_audit_log_fit_the_screen(browser_server, browser):
    user = user_create(username="erin", role="admin")
    api_token_create(user=user, name="telegraf on press-7", scopes=["read", "write"])
    for title, tag in (("Executive", "business"), ("Factory floor", "factory"), ("Marketing", "marketing")):
        document = {"title": title, "folder": "Demo", "tags": ["demo", tag], "panels": []}
        dashboard_create(organization=organization_get(), owner=None, document=document)
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.execute_cdp_cmd(
        "Emulation.setDeviceMetricsOverride", {"width": 390, "height": 844, "deviceScaleFactor": 1, "mobile": True}
    )
    for path in ("/dashboards/", f"/organizations/{organization_get().slug}/audit-log/", "/account/tokens/"):
        driver.get(f"{browser_server}{path}")
        if path == "/dashboards/":
            _list_shown(driver)
        widths = driver.execute_script(
            "return [document.documentElement.scrollWidth, document.documentElement.clientWidth];"
        )
        assert widths[0] <= widths[1], (path, widths)
    # Each link of the top bar stays on one line ("API" ended one line and "docs" began the next).
    split = driver.execute_script(
        "return [...document.querySelectorAll('.topbar a')].filter((a) => a.getClientRects().length > 1)"
        ".map((a) => a.textContent);"
    )
    assert split == []
    # The new-token form's scope boxes sit beside their names, not centred on lines of their own.
    boxes = driver.execute_script(
        "return [...document.querySelectorAll('input[type=checkbox]')].map((box) => box.getBoundingClientRect().width);"
    )
    assert boxes, "the scope checkboxes"
    assert all(width < 40 for width in boxes), boxes
    assert console_errors(driver) == []


def _list_shown(driver) -> None:
    wait_for(
        lambda: driver.execute_script("return !document.getElementById('dashboard-table').hidden;"),
        message="the dashboard list",
    )
