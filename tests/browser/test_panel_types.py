"""The new panel types (bar gauge, histogram, XY scatter) and the options a person sets in the editor: value
mappings, thresholds, overrides and legend values, as drawn in headless Chromium against daphne."""

from __future__ import annotations

import pytest

from tests.browser.conftest import console_errors, sign_in
from tests.browser.test_builder import SOURCE, _dashboard, _panel, _query, _readings, _ready
from tests.factories import user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

QUERY_SCRIPT = """
const [spec, done] = arguments;
const token = document.cookie.match(/csrftoken=([^;]+)/);
fetch('/api/v1/query', {method: 'POST', credentials: 'same-origin',
  headers: {'Content-Type': 'application/json', 'X-CSRFToken': token ? token[1] : ''}, body: JSON.stringify(spec)})
  .then((response) => response.json()).then(done);
"""


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_bar_gauge_histogram_xy_and_display_options(browser_server, browser):
    user_create(username="erin", role="viewer")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key, minutes=30)  # devices d1, d2, d3 at 20, 21, 22 (+0..2) every minute
    by_device = {"group_by": ["device"]}
    thresholds = [{"value": None, "color": "#56a64b"}, {"value": 23, "color": "#c4162a"}]
    dashboard = _dashboard(
        [
            _panel(
                "gauge-bars",
                "bargauge",
                [{**_query("temperature", **by_device), "legend": "{device}"}],
                calculation="max",
                combination="none",
                decimals=1,
                thresholds=thresholds,
                min=0,
                max=30,
            ),
            _panel("spread", "histogram", [_query("temperature", "raw")], x=6, buckets=5),
            _panel(
                "avg-vs-max",
                "xy",
                [_query("temperature", **by_device), _query("temperature", "max", ref="B", **by_device)],
                y=4,
            ),
            _panel(
                "mapped",
                "stat",
                [_query("temperature")],
                x=6,
                y=4,
                calculation="max",
                combination="max",
                value_mappings=[{"type": "range", "from": 23, "to": None, "text": "warm", "color": "#e0752d"}],
            ),
            _panel(
                "lines",
                "timeseries",
                [{**_query("temperature", **by_device), "legend": "{device}"}],
                y=8,
                legend_values=["last"],
                overrides=[{"match": "d2", "hide": True}, {"match": "d3", "color": "#8f3bb8", "style": "bars"}],
            ),
        ]
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)

    # Bar gauge: one bar per device named by the legend template, the API's values, coloured by the thresholds.
    bars = driver.execute_script(
        "return [...document.querySelectorAll('.panel[data-key=\"gauge-bars\"] .bar-gauge-row')].map((row) => ["
        "row.querySelector('.bar-gauge-name').textContent, row.querySelector('.bar-gauge-value').textContent,"
        "getComputedStyle(row.querySelector('.bar-gauge-fill')).backgroundColor]);"
    )
    spec = driver.execute_script("return window.dashboardPage.state.panels.get('gauge-bars').inspect[0].spec;")
    reduced = driver.execute_async_script(QUERY_SCRIPT, spec)["reduced"]
    expected = {item["labels"]["device"]: item["value"] for item in reduced}
    assert sorted(name for name, _, _ in bars) == ["d1", "d2", "d3"]
    for name, text, color in bars:
        assert text == f"{expected[name]:.1f}"
        assert color == ("rgb(196, 22, 42)" if expected[name] >= 23 else "rgb(86, 166, 75)"), (name, color)

    # Histogram: every raw point counted once, in the bins asked for.
    histogram = driver.execute_script(
        "return document.querySelector('.panel[data-key=\"spread\"] .panel-body').data"
        ".map((t) => ({type: t.type, count: t.x.length, bins: t.nbinsx}));"
    )
    assert histogram == [{"type": "histogram", "count": 30, "bins": 5}] * 3  # one per device, 30 readings each

    # XY: each device's average against its maximum, paired by bucket time.
    xy = driver.execute_script(
        "return document.querySelector('.panel[data-key=\"avg-vs-max\"] .panel-body').data"
        ".map((t) => ({mode: t.mode, n: t.x.length, above: t.x.every((x, i) => t.y[i] >= x)}));"
    )
    assert len(xy) == 3
    assert all(trace["mode"] == "markers" and trace["n"] >= 5 and trace["above"] for trace in xy), xy

    # A value mapping replaces the number with its text and colour.
    mapped = driver.execute_script(
        "const v = document.querySelector('.panel[data-key=\"mapped\"] .stat-value');"
        "return [v.textContent, getComputedStyle(v).color];"
    )
    assert mapped == ["warm", "rgb(224, 117, 45)"]

    # Overrides hide d2 and draw d3 as purple bars; legend values follow each name.
    lines = driver.execute_script(
        "return document.querySelector('.panel[data-key=\"lines\"] .panel-body').data"
        ".map((t) => [t.name, t.type, (t.marker || {}).color]);"
    )
    assert [name.split(" ")[0] for name, _, _ in lines] == ["d1", "d3"]
    assert all("last" in name for name, _, _ in lines)
    assert lines[1][1:] == ["bar", "#8f3bb8"]
    assert console_errors(driver) == []
