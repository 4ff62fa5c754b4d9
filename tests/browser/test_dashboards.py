"""The dashboard builder in headless Chromium against daphne: drag, resize, save and reload; live points; phones."""

from __future__ import annotations

import json
import time
from datetime import UTC, datetime, timedelta

import pytest

from apps.dashboards.models import Dashboard
from apps.dashboards.services import dashboard_create
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOURCE = "plant"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _panel(key: str, *, x: int, y: int, w: int = 6, h: int = 4, aggregation: str = "avg") -> dict:
    return {
        "key": key,
        "title": f"Temperature {key}",
        "type": "timeseries",
        "queries": [
            {
                "ref": "A",
                "axis": "left",
                "query": {"source": SOURCE, "metric": "temperature", "aggregation": aggregation},
            }
        ],
        "options": {"style": "lines"},
        "grid": {"x": x, "y": y, "w": w, "h": h},
    }


def _dashboard(panels: list[dict], *, refresh: str = "off", start: str = "-1h") -> Dashboard:
    document = {
        "title": "Plant floor",
        "time_range": {"start": start, "end": "now"},
        "refresh": refresh,
        "panels": panels,
    }
    return dashboard_create(organization=organization_get(), owner=None, document=document)


def _layout(driver) -> dict[str, dict[str, int]]:
    """Each panel's place on the 12-column grid, as gridstack has it."""
    return driver.execute_script(
        "return Object.fromEntries(window.dashboardPage.state.grid.engine.nodes"
        ".map((n) => [String(n.id), {x: n.x, y: n.y, w: n.w, h: n.h}]));"
    )


def _drag(driver, element, dx: int, dy: int) -> None:
    """Press, move in small steps (gridstack needs real pointer movement), release."""
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver, duration=50).click_and_hold(element)
    steps = 8
    for _ in range(steps):
        actions.move_by_offset(dx / steps, dy / steps)
    actions.pause(0.2).release().perform()


def _drag_to(driver, element, target, x_offset: int, y_offset: int) -> None:
    from selenium.webdriver.common.action_chains import ActionChains

    actions = ActionChains(driver, duration=50).click_and_hold(element).move_by_offset(5, 5)
    # Selenium's offsets count from the target's centre; these count from its top-left corner.
    size = target.size
    actions.move_to_element_with_offset(target, x_offset - size["width"] // 2, y_offset - size["height"] // 2)
    actions.pause(0.1)
    actions.move_by_offset(2, 2).pause(0.2).release().perform()


def _choose_metric_in_editor(driver) -> None:
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor opened")
    source = dialog.find_element(By.CSS_SELECTOR, ".query-builder select[name=source]")
    wait_for(lambda: len(Select(source).options) > 1, message="sources listed")
    Select(source).select_by_value(SOURCE)
    metric = dialog.find_element(By.CSS_SELECTOR, ".query-builder input[name=metric]")
    # The metric picker suggests the source's metrics and takes what is typed.
    wait_for(
        lambda: (
            "temperature"
            in [
                option.get_attribute("value")
                for option in dialog.find_elements(By.CSS_SELECTOR, ".query-builder datalist option")
            ]
        ),
        message="metrics of the source suggested",
    )
    metric.send_keys("temperature")
    metric.send_keys("\t")
    # The preview draws the query before the panel is applied.
    try:
        wait_for(lambda: dialog.find_elements(By.CSS_SELECTOR, ".editor-preview.js-plotly-plot"), message="preview")
    except AssertionError as error:
        preview = dialog.find_element(By.CSS_SELECTOR, ".editor-preview").text
        raise AssertionError(f"{error}; the preview shows {preview!r}; console: {console_errors(driver)}") from None
    dialog.find_element(By.CSS_SELECTOR, ".editor-apply").click()
    wait_for(lambda: not driver.find_elements(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor closed")


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_build_drag_resize_save_and_reload(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC)
    http_ingest(
        browser_server,
        SOURCE,
        key,
        [{"time": _iso(now - timedelta(minutes=m)), "device": "d1", "temperature": 20 + m % 5} for m in range(30)],
    )
    driver = browser
    sign_in(driver, browser_server, "erin")

    # An empty list, then "New dashboard" asks for a name (nothing is created before) and opens it in edit mode.
    driver.get(f"{browser_server}/dashboards/")
    wait_for(lambda: driver.find_element(By.ID, "list-empty").is_displayed(), message="empty state")
    driver.find_element(By.ID, "new-dashboard").click()
    name = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#new-dashboard-dialog[open] [name=title]"))
    driver.find_element(By.CSS_SELECTOR, "#new-dashboard-dialog [data-close]").click()
    assert not Dashboard.objects.exists(), "cancelling creates nothing"
    driver.find_element(By.ID, "new-dashboard").click()
    name.send_keys("Line 3 overview")
    driver.find_element(By.CSS_SELECTOR, "#new-dashboard-dialog [type=submit]").click()
    wait_for(lambda: "edit=1" in driver.current_url, message="new dashboard opened for editing")
    assert driver.find_element(By.ID, "dash-title").text == "Line 3 overview"
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready.editing"), message="builder ready")
    assert driver.find_element(By.ID, "dash-empty").is_displayed()
    uid = driver.find_element(By.ID, "dashboard").get_attribute("data-uid")

    # Drag two panels in from the palette.
    grid = driver.find_element(By.ID, "grid")
    palette = {item.get_attribute("data-type"): item for item in driver.find_elements(By.CSS_SELECTOR, ".palette-item")}
    _drag_to(driver, palette["timeseries"], grid, 40, 40)
    _choose_metric_in_editor(driver)
    _drag_to(driver, palette["stat"], grid, grid.size["width"] - 80, 40)
    _choose_metric_in_editor(driver)
    layout = wait_for(lambda: (nodes := _layout(driver)) and len(nodes) == 2 and nodes, message="two panels")
    assert set(layout) == {"panel-1", "panel-2"}, layout

    # Move the first panel down and to the right, then resize the second: narrower and taller.
    cell_width = grid.size["width"] / 12
    before = _layout(driver)
    first = driver.find_element(By.CSS_SELECTOR, '.grid-stack-item[gs-id="panel-1"] .panel-header h2')
    _drag(driver, first, int(cell_width * 6.5), int(before["panel-2"]["h"] * 80 + 40))
    moved = wait_for(lambda: (nodes := _layout(driver))["panel-1"] != before["panel-1"] and nodes, message="moved")
    handle = driver.find_element(By.CSS_SELECTOR, '.grid-stack-item[gs-id="panel-2"] .ui-resizable-se')
    _drag(driver, handle, -int(cell_width * 2), 160)
    after = wait_for(
        lambda: (nodes := _layout(driver))["panel-2"]["h"] > moved["panel-2"]["h"] and nodes,
        message="panel-2 resized",
    )
    assert after["panel-2"]["w"] < moved["panel-2"]["w"], after
    assert driver.find_element(By.ID, "dirty-note").is_displayed()
    saved_layout = _layout(driver)

    # Save, then reload: the layout is the same, from the server.
    driver.find_element(By.ID, "save").click()
    wait_for(lambda: driver.execute_script("return window.dashboardPage.state.dirty === false;"), message="saved")
    dashboard = Dashboard.objects.get(uid=uid)
    assert dashboard.version == 2
    driver.get(f"{browser_server}/dashboards/{uid}/")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready"), message="reloaded")
    assert _layout(driver) == saved_layout
    stored = {
        panel["key"]: panel["grid"] for panel in driver.execute_script("return window.dashboardPage.state.doc.panels;")
    }
    assert stored == saved_layout
    wait_for(
        lambda: driver.find_elements(By.CSS_SELECTOR, '.grid-stack-item[gs-id="panel-1"] .panel-body.js-plotly-plot'),
        message="the time series drew",
    )
    assert not console_errors(driver), console_errors(driver)


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_live_mode_shows_an_ingested_point_within_a_second(browser_server, browser):
    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC)
    http_ingest(
        browser_server, SOURCE, key, [{"time": _iso(now - timedelta(seconds=30)), "device": "d1", "temperature": 1.0}]
    )
    dashboard = _dashboard([_panel("live", x=0, y=0, w=12, aggregation="raw")], refresh="live", start="-10m")
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    wait_for(
        lambda: driver.execute_script("return document.getElementById('live-state').dataset.state === 'open';"),
        message="live connected",
    )
    read_values = (
        "const view = window.dashboardPage.state.panels.get('live');"
        "return view ? [...view.data.values()].flat().flatMap((s) => s.points.map((p) => p[1])) : [];"
    )
    wait_for(lambda: 1.0 in driver.execute_script(read_values), message="the first point is shown")
    # Let the subscription settle, then ingest one point and time how long it takes to appear.
    time.sleep(0.5)
    started = http_ingest(
        browser_server, SOURCE, key, [{"time": _iso(datetime.now(UTC)), "device": "d1", "temperature": 42.5}]
    )
    wait_for(
        lambda: 42.5 in driver.execute_script(read_values), timeout=5, interval=0.02, message="the new point is shown"
    )
    elapsed = time.monotonic() - started
    assert elapsed < 1.0, f"the point took {elapsed:.2f} s to show"
    # And it is drawn: the chart's trace holds it.
    drawn = (
        "const plot = document.querySelector('.grid-stack-item[gs-id=\"live\"] .js-plotly-plot');"
        "return plot ? plot.data.flatMap((trace) => Array.from(trace.y)) : [];"
    )
    wait_for(lambda: 42.5 in driver.execute_script(drawn), timeout=2, message="the new point is drawn")


def test_phone_layout_stacks_panels_in_one_column(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="viewer")
    source_with_key(slug=SOURCE)
    dashboard = _dashboard([_panel("left", x=0, y=0), _panel("right", x=6, y=0)])
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.set_window_size(390, 844)
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready"), message="page ready")
    assert driver.execute_script("return window.innerWidth;") <= 400

    def rects():
        return driver.execute_script(
            "return ['left', 'right'].map((key) => {"
            'const r = document.querySelector(`.grid-stack-item[gs-id="${key}"]`).getBoundingClientRect();'
            "return {x: r.left, top: r.top, bottom: r.bottom, width: r.width}; });"
        )

    left, right = wait_for(lambda: (r := rects()) and abs(r[0]["x"] - r[1]["x"]) < 1 and r, message="one column")
    assert abs(left["x"] - right["x"]) < 1
    assert right["top"] >= left["bottom"] - 1, (left, right)
    assert left["width"] > 300
    # The stored layout is still the 12-column one.
    stored = driver.execute_script("return window.dashboardPage.state.doc.panels.map((p) => p.grid);")
    assert [grid["x"] for grid in stored] == [0, 6]


def test_page_modules_escape_markdown_and_csv_formulas(browser_server, browser):
    user_create(username="erin", role="viewer")
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/")
    result = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        Promise.all([
          import('/static/js/dashboards/markdown.js'),
          import('/static/js/dashboards/csv.js'),
          import('/static/js/dashboards/variables.js'),
          import('/static/js/dashboards/series.js'),
        ]).then(([markdown, csv, variables, series]) => done({
          html: markdown.renderMarkdown(
            '# Title <script>alert(1)</script>\\n\\n**bold** *it* [ok](https://example.com) [bad](javascript:alert(1))'
            + '\\n\\n- one\\n- <img src=x onerror=alert(1)>'),
          csv: csv.csvFromSeries([{labels: {device: '=HYPERLINK("x")'}, points: [['2026-01-01T00:00:00Z', -3.5]]},
                                  {labels: {device: '@cmd', site: 's'}, points: [['2026-01-01T00:00:00Z', 1]]}]),
          cells: ['=1+1', '+1', '-1', '@x', 'plain', 'a,b'].map(csv.csvCell),
          substituted: variables.substituteVariables(
            {metric: 'm', filters: {facility: '$facility', device: '$device', kind: 'k'}},
            {facility: ['f1', 'f2'], device: '__all__'}),
          merged: series.mergeSeries(
            [{labels: {d: '1'}, points: [['2026-01-01T00:00:00Z', 1], ['2026-01-01T00:01:00Z', 2]]}],
            [{labels: {d: '1'}, points: [['2026-01-01T00:01:00+00:00', 5], ['2026-01-01T00:02:00Z', 6]]}]),
          // Hourly buckets at 00:00 and 01:00: a window from 00:30 cuts the first (kept), one from 01:00 drops it;
          // raw points before the window's start go.
          kept: [new Date('2026-01-01T00:30:00Z'), new Date('2026-01-01T01:00:00Z')].map((start) =>
            series.dropBefore([{labels: {}, points: [['2026-01-01T00:00:00Z', 1], ['2026-01-01T01:00:00Z', 2]]}],
                              start, 3600)[0].points.length),
          raw: series.dropBefore([{labels: {}, points: [['2026-01-01T00:00:00Z', 1], ['2026-01-01T01:00:00Z', 2]]}],
                                 new Date('2026-01-01T00:30:00Z'))[0].points.length,
        })).catch((error) => done({error: String(error)}));
        """
    )
    assert "error" not in result, result
    html = result["html"]
    assert "<script>" not in html
    assert "&lt;script&gt;" in html
    assert "<img" not in html
    assert "&lt;img" in html
    assert "<h1>" in html
    assert "<strong>bold</strong>" in html
    assert "<em>it</em>" in html
    assert '<a href="https://example.com" rel="noopener noreferrer" target="_blank">ok</a>' in html
    assert "javascript:" not in html.split("[bad]")[0]
    assert 'href="javascript' not in html
    assert "<li>" in html
    lines = result["csv"].strip().split("\r\n")
    assert lines == [
        "time,device,site,value",
        '2026-01-01T00:00:00Z,"\'=HYPERLINK(""x"")",,-3.5',
        "2026-01-01T00:00:00Z,'@cmd,s,1",
    ]
    assert result["cells"] == ["'=1+1", "'+1", "'-1", "'@x", "plain", '"a,b"']
    assert result["substituted"]["filters"] == {"facility": ["f1", "f2"], "kind": "k"}
    assert [point[1] for point in result["merged"][0]["points"]] == [1, 5, 6]
    assert result["kept"] == [2, 1]
    assert result["raw"] == 1
    assert json.dumps(result)  # plain data came back


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_shortcuts_time_range_zoom_conflict_and_restore(browser_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.common.keys import Keys

    from apps.dashboards.selectors import dashboard_document
    from apps.dashboards.services import dashboard_save

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC)
    points = [{"time": _iso(now - timedelta(minutes=m)), "device": "d1", "temperature": 20.0 + m} for m in range(10)]
    http_ingest(browser_server, SOURCE, key, points)
    dashboard = _dashboard([_panel("one", x=0, y=0, w=12)])
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready"), message="page ready")
    body = driver.find_element(By.TAG_NAME, "body")

    # "?" opens the shortcuts, Esc closes them; "t" opens the time picker and a preset applies.
    body.send_keys("?")
    wait_for(lambda: driver.find_element(By.ID, "help-dialog").is_displayed(), message="help open")
    body.send_keys(Keys.ESCAPE)
    wait_for(lambda: not driver.find_element(By.ID, "help-dialog").is_displayed(), message="help closed")
    body.send_keys("t")
    picker = wait_for(lambda: (d := driver.find_element(By.ID, "time-picker")).is_displayed() and d, message="picker")
    next(b for b in picker.find_elements(By.CSS_SELECTOR, ".presets button") if b.text == "Last 15 minutes").click()
    wait_for(lambda: driver.find_element(By.ID, "time-button").text == "Last 15 minutes", message="preset applied")

    # Zooming on a chart gives an absolute range and "Back to live" returns to the relative one.
    wait_for(lambda: driver.find_elements(By.CSS_SELECTOR, ".panel-body.js-plotly-plot"), message="chart drawn")
    driver.execute_script(
        "const plot = document.querySelector('.panel-body.js-plotly-plot');"
        "const end = new Date(Date.now() - 60000), start = new Date(Date.now() - 600000);"
        "const fmt = (d) => d.toISOString().replace('T', ' ').replace('Z', '');"
        "Plotly.relayout(plot, {'xaxis.range[0]': fmt(start), 'xaxis.range[1]': fmt(end)});"
    )
    back = wait_for(lambda: (b := driver.find_element(By.ID, "back-to-live")).is_displayed() and b, message="zoomed")
    assert "UTC" in driver.find_element(By.ID, "time-button").text
    assert "from=" in driver.current_url
    back.click()
    wait_for(lambda: driver.find_element(By.ID, "time-button").text == "Last 15 minutes", message="back to live")

    # Someone else saves meanwhile: our save is refused with the API's message and a reload offer.
    driver.find_element(By.ID, "edit-toggle").click()
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.editing"), message="editing")
    document = dashboard_document(dashboard=dashboard)
    dashboard_save(dashboard=dashboard, document={**document, "title": "Renamed elsewhere"}, user=None)
    driver.execute_script("window.dashboardPage.state.doc.tags = ['mine'];")
    body.send_keys("s")  # not dirty yet: nothing happens
    driver.find_element(By.ID, "refresh").send_keys("5s")  # a change makes it dirty
    wait_for(lambda: driver.find_element(By.ID, "save").is_enabled(), message="dirty")
    body.send_keys(Keys.CONTROL, "s")
    alert = wait_for(lambda: (a := driver.find_element(By.ID, "dash-alert")).is_displayed() and a, message="409")
    assert "changed since you opened it" in alert.text
    assert alert.find_element(By.TAG_NAME, "button").text == "Reload the latest version"

    # The history lists every version; restoring version 1 saves it again as version 3.
    driver.execute_script("window.dashboardPage.state.dirty = false; window.dashboardPage.state.version = 2;")
    driver.find_element(By.CSS_SELECTOR, "details.menu > summary").click()
    driver.find_element(By.ID, "versions-button").click()
    items = wait_for(
        lambda: (found := driver.find_elements(By.CSS_SELECTOR, ".versions-list li")) and len(found) == 2 and found,
        message="versions listed",
    )
    assert [item.text.split(" ")[0] for item in items] == ["v2", "v1"]
    assert "current" in items[0].text
    items[1].find_element(By.TAG_NAME, "button").click()
    wait_for(lambda: Dashboard.objects.get(pk=dashboard.pk).version == 3, message="restored")
    dashboard.refresh_from_db()
    assert dashboard.title == "Plant floor"
    wait_for(lambda: driver.find_element(By.ID, "dash-title").text == "Plant floor", message="page reloaded")
    unexpected = [message for message in console_errors(driver) if "409 (Conflict)" not in message]
    assert not unexpected, unexpected


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_import_search_and_a_variable_in_the_settings(browser_server, browser, tmp_path):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC)
    records = [{"time": _iso(now), "facility": facility, "temperature": 20.0} for facility in ("f1", "f2")]
    http_ingest(browser_server, SOURCE, key, records)
    _dashboard([])  # "Plant floor", untagged
    exported = tmp_path / "imported.json"
    exported.write_text(
        json.dumps({"title": "Imported boiler", "tags": ["boiler"], "panels": [_panel("one", x=0, y=0)]}),
        encoding="utf-8",
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/")
    wait_for(lambda: "1 dashboard" in driver.find_element(By.ID, "list-status").text, message="listed")

    # Import a file: the new dashboard opens.
    driver.find_element(By.ID, "import-file").send_keys(str(exported))
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready"), message="imported dashboard opened")
    assert driver.find_element(By.ID, "dash-title").text == "Imported boiler"
    uid = driver.find_element(By.ID, "dashboard").get_attribute("data-uid")

    # Back in the list, a tag narrows it down and the search is kept in the address.
    driver.get(f"{browser_server}/dashboards/")
    wait_for(lambda: "2 dashboards" in driver.find_element(By.ID, "list-status").text, message="two listed")
    driver.find_element(By.CSS_SELECTOR, "button.tag").click()
    wait_for(lambda: "1 dashboard" in driver.find_element(By.ID, "list-status").text, message="filtered by tag")
    assert "tag=boiler" in driver.current_url
    driver.find_element(By.ID, "search-q").send_keys("nothing like this")
    driver.find_element(By.CSS_SELECTOR, "#dashboard-search [type=submit]").click()
    wait_for(lambda: driver.find_element(By.ID, "list-empty").is_displayed(), message="empty search")
    assert "No dashboards match" in driver.find_element(By.ID, "list-empty").text

    # A variable added in the settings offers the label's values and is saved with the dashboard.
    driver.get(f"{browser_server}/dashboards/{uid}/?edit=1")
    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready.editing"), message="editing")
    driver.find_element(By.ID, "settings-button").click()
    driver.find_element(By.ID, "add-variable").click()
    row = driver.find_element(By.CSS_SELECTOR, "#settings-dialog .variable-row")
    row.find_element(By.CSS_SELECTOR, "[data-field=name]").send_keys("facility")
    row.find_element(By.CSS_SELECTOR, "[data-field=source]").send_keys(SOURCE)
    driver.find_element(By.CSS_SELECTOR, "#settings-dialog [type=submit]").click()
    select = wait_for(lambda: driver.find_element(By.ID, "var-facility"), message="variable dropdown")
    wait_for(lambda: len(select.find_elements(By.TAG_NAME, "option")) == 3, message="All, f1 and f2")
    assert [option.text for option in select.find_elements(By.TAG_NAME, "option")] == ["All", "f1", "f2"]
    driver.find_element(By.ID, "save").click()
    wait_for(lambda: Dashboard.objects.get(uid=uid).version == 2, message="saved")
    assert Dashboard.objects.get(uid=uid).variables[0]["label_key"] == "facility"
