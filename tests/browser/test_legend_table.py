"""The time series legend as a table (a column per value: last, mean, max, min) and the vertical bar gauge, as drawn
in headless Chromium against daphne: every number in the legend table is the query API's reduction of the panel's
own spec."""

from __future__ import annotations

import pytest

from tests.browser.conftest import console_errors, sign_in
from tests.browser.test_builder import SOURCE, _dashboard, _panel, _query, _readings, _ready
from tests.browser.test_panel_types import QUERY_SCRIPT
from tests.factories import user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

LEGEND_VALUES = ["last", "mean", "max", "min"]
# The legend's "last" is the last value drawn (the API's last_not_null: a line skips an empty newest bucket).
API_CALCULATION = {"last": "last_not_null", "mean": "mean", "max": "max", "min": "min"}


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_legend_table_shows_the_api_reductions_and_bar_gauges_stand_up(browser_server, browser):
    user_create(username="erin", role="viewer")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key, minutes=30)  # devices d1, d2, d3 at 20, 21, 22 (+0..2) every minute
    by_device = {"group_by": ["device"]}
    dashboard = _dashboard(
        [
            _panel(
                "lines",
                "timeseries",
                [{**_query("temperature", **by_device), "legend": "{device}", "unit": "°C"}],
                w=12,
                h=5,
                legend_mode="table",
                legend_values=LEGEND_VALUES,
                decimals=2,
            ),
            _panel(
                "columns",
                "bargauge",
                [{**_query("temperature", **by_device), "legend": "{device}"}],
                y=5,
                calculation="max",
                combination="none",
                orientation="vertical",
                decimals=1,
                min=0,
                max=30,
            ),
            _panel(
                "hidden-legend",
                "timeseries",
                [_query("temperature", **by_device)],
                x=6,
                y=5,
                legend=False,
                legend_mode="table",
                legend_values=["max"],
            ),
        ]
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)

    table = driver.execute_script(
        "const t = document.querySelector('.panel[data-key=\"lines\"] .legend-table');"
        "return {head: [...t.tHead.rows[0].cells].map((c) => c.textContent),"
        " rows: [...t.tBodies[0].rows].map((r) => [...r.cells].map((c) => c.textContent)),"
        " plotlyLegend: document.querySelector('.panel[data-key=\"lines\"] .panel-body')._fullLayout.showlegend,"
        " traces: document.querySelector('.panel[data-key=\"lines\"] .panel-body').data.map((d) => d.name)};"
    )
    assert table["head"] == ["Name", "Last", "Mean", "Max", "Min"]
    assert table["plotlyLegend"] is False  # the table replaces plotly's legend
    assert table["traces"] == ["d1", "d2", "d3"]  # names without the values (they are in the columns)
    spec = driver.execute_script("return window.dashboardPage.state.panels.get('lines').inspect[0].spec;")
    rows = {row[0]: row[1:] for row in table["rows"]}
    assert sorted(rows) == ["d1", "d2", "d3"]
    for column, value in enumerate(LEGEND_VALUES):
        asked = {**spec, "reduce": {"calculation": API_CALCULATION[value], "combination": "none"}}
        reduced = driver.execute_async_script(QUERY_SCRIPT, asked)["reduced"]
        expected = {item["labels"]["device"]: item["value"] for item in reduced}
        for device, cells in rows.items():
            assert cells[column] == f"{expected[device]:,.2f} °C", (value, device, cells, expected)

    # A click on a row hides its series (and shows it again).
    driver.execute_script("document.querySelector('.panel[data-key=\"lines\"] .legend-table tbody tr').click();")
    visible = driver.execute_script(
        "return document.querySelector('.panel[data-key=\"lines\"] .panel-body').data.map((d) => d.visible ?? true);"
    )
    assert visible == ["legendonly", True, True]

    # legend: false hides the table too.
    hidden = "return document.querySelector('.panel[data-key=\"hidden-legend\"] .legend-table');"
    assert driver.execute_script(hidden) is None

    # Vertical bar gauge: columns side by side, each filled upwards to its share of 0..30.
    columns = driver.execute_script(
        "return [...document.querySelectorAll('.panel[data-key=\"columns\"] .bar-gauge-row')].map((row) => {"
        " const track = row.querySelector('.bar-gauge-track').getBoundingClientRect();"
        " const fill = row.querySelector('.bar-gauge-fill').getBoundingClientRect();"
        " return {name: row.querySelector('.bar-gauge-name').textContent,"
        " value: row.querySelector('.bar-gauge-value').textContent, left: track.left, top: track.top,"
        " share: fill.height / track.height, bottomGap: track.bottom - fill.bottom};});"
    )
    assert [column["name"] for column in columns] == ["d1", "d2", "d3"]
    assert columns[0]["left"] < columns[1]["left"] < columns[2]["left"]  # side by side
    assert len({round(column["top"]) for column in columns}) == 1
    spec = driver.execute_script("return window.dashboardPage.state.panels.get('columns').inspect[0].spec;")
    reduced = driver.execute_async_script(QUERY_SCRIPT, spec)["reduced"]
    expected = {item["labels"]["device"]: item["value"] for item in reduced}
    for column in columns:
        value = expected[column["name"]]
        assert column["value"] == f"{value:.1f}"
        assert column["share"] == pytest.approx(value / 30, abs=0.02)
        assert abs(column["bottomGap"]) < 1  # filled from the bottom
    assert console_errors(driver) == []
