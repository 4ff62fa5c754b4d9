"""The builder in headless Chromium against daphne: the editor's preview, empty panels that fill in live, the
metric picker, label filters, the query inspector, refresh now, and the phone layout of stats, tables and editor."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from apps.dashboards.services import dashboard_create
from tests.browser.conftest import console_errors, http_ingest, sign_in, wait_for
from tests.factories import organization_get, user_create
from tests.ingestion.factories import source_with_key

pytestmark = [pytest.mark.browser, pytest.mark.slow]

SOURCE = "plant"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _query(metric: str, aggregation: str = "avg", ref: str = "A", **spec) -> dict:
    return {
        "ref": ref,
        "axis": "left",
        "query": {"source": SOURCE, "metric": metric, "aggregation": aggregation, **spec},
    }


def _panel(
    key: str, panel_type: str, queries: list[dict], *, x: int = 0, y: int = 0, w: int = 6, h: int = 4, **options
):
    return {"key": key, "title": key, "type": panel_type, "queries": queries, "options": options,
            "grid": {"x": x, "y": y, "w": w, "h": h}}  # fmt: skip


def _dashboard(panels: list[dict], *, refresh: str = "off", start: str = "-1h"):
    document = {"title": "Plant", "time_range": {"start": start, "end": "now"}, "refresh": refresh, "panels": panels}
    return dashboard_create(organization=organization_get(), owner=None, document=document)


def _readings(base_url: str, key: str, minutes: int = 30) -> None:
    now = datetime.now(UTC)
    records = [
        {"time": _iso(now - timedelta(minutes=m, seconds=30)), "device": device, "temperature": 20 + index + m % 3}
        for m in range(minutes)
        for index, device in enumerate(("d1", "d2", "d3"))
    ]
    http_ingest(base_url, SOURCE, key, records)


def _ready(driver) -> None:
    from selenium.webdriver.common.by import By

    wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#dashboard.ready"), message="page ready")
    wait_for(
        lambda: driver.execute_script(
            "return [...window.dashboardPage.state.panels.values()].every((view) =>"
            " !view.element.querySelector('.panel').classList.contains('loading') &&"
            " (view.inspect || view.body.querySelector('.panel-message')));"
        ),
        message="every panel drawn",
    )


def _body_text(driver, key: str) -> str:
    script = f"return document.querySelector('.panel[data-key=\"{key}\"] .panel-body').innerText;"
    return driver.execute_script(script).strip()


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_editor_preview_redraws_on_every_edit(browser_server, browser):
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import Select

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key)
    dashboard = _dashboard([_panel("temps", "timeseries", [_query("temperature", group_by=["device"])])])
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/?edit=1")
    _ready(driver)
    driver.execute_script("document.querySelector('.panel[data-key=\"temps\"] .panel-edit').click();")
    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor open")
    preview = dialog.find_element(By.CSS_SELECTOR, ".editor-preview")

    def drawn() -> int:
        return int(preview.get_attribute("data-drawn") or 0)

    def traces() -> list:
        return driver.execute_script(
            "const p = document.querySelector('.editor-preview');"
            "return p.data ? p.data.map((t) => [t.type, t.name]) : [];"
        )

    wait_for(lambda: drawn() >= 1 and len(traces()) == 3, message="first preview: three devices")
    edits = [
        ("style bars", lambda: Select(dialog.find_element(By.NAME, "style")).select_by_value("bars"), "bar"),
        ("aggregation max", lambda: Select(dialog.find_element(By.NAME, "aggregation")).select_by_value("max"), "bar"),
        ("style lines", lambda: Select(dialog.find_element(By.NAME, "style")).select_by_value("lines"), "scatter"),
        ("legend {device}", lambda: dialog.find_element(By.NAME, "query_legend").send_keys("dev {device}"), "scatter"),
    ]
    for label, edit, trace_type in edits:
        before = drawn()
        edit()
        wait_for(lambda before=before: drawn() > before, message=f"preview redrawn after {label}")
        wait_for(
            lambda trace_type=trace_type: len(traces()) == 3 and all(kind == trace_type for kind, _ in traces()),
            message=f"preview shows three {trace_type} traces after {label}: {traces()}",
        )
    wait_for(
        lambda: sorted(name for _, name in traces()) == ["dev d1", "dev d2", "dev d3"],
        message=f"the legend template names the series: {traces()}",
    )
    # Another type and back: the chart is purged and drawn again, never left blank.
    before = drawn()
    Select(dialog.find_element(By.NAME, "type")).select_by_value("stat")
    wait_for(lambda: drawn() > before and preview.find_elements(By.CSS_SELECTOR, ".stat-value"), message="stat preview")
    before = drawn()
    Select(dialog.find_element(By.NAME, "type")).select_by_value("timeseries")
    wait_for(lambda: drawn() > before and len(traces()) == 3, message="time series preview again")
    # The editor's query inspector shows the spec the preview sent and the bucket the server used.
    dialog.find_element(By.CSS_SELECTOR, ".editor-inspect summary").click()
    bucket = dialog.find_element(By.CSS_SELECTOR, ".editor-inspect .inspect-bucket-used").text
    assert bucket not in ("", "\N{EN DASH}")
    assert '"metric": "temperature"' in dialog.find_element(By.CSS_SELECTOR, ".editor-inspect .inspect-spec").text
    assert console_errors(driver) == []


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_a_panel_with_no_data_yet_says_so_and_fills_in_live(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key, minutes=2)
    dashboard = _dashboard(
        [
            _panel(
                "humidity-now",
                "stat",
                [_query("humidity")],
                decimals=1,
                calculation="last_not_null",
                combination="mean",
            ),
            _panel("humidity-chart", "timeseries", [_query("humidity", aggregation="raw")], x=6),
        ],
        refresh="live",
        start="-15m",
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)
    assert _body_text(driver, "humidity-now") == "No data"
    assert _body_text(driver, "humidity-chart") == "No data"
    assert not driver.find_elements(By.CSS_SELECTOR, ".panel-message.error")
    wait_for(lambda: driver.execute_script("return window.dashboardPage.live.state === 'open';"), message="live")
    # The first humidity point arrives: both panels fill in without a reload.
    http_ingest(browser_server, SOURCE, key, [{"time": _iso(datetime.now(UTC)), "device": "d1", "humidity": 41.5}])
    wait_for(lambda: _body_text(driver, "humidity-now") == "41.5", timeout=10, message="the stat fills in")
    drawn = "return (document.querySelector('.panel[data-key=\"humidity-chart\"] .panel-body').data || [])"
    wait_for(
        lambda: 41.5 in driver.execute_script(f"{drawn}.flatMap((t) => Array.from(t.y));"),
        timeout=10,
        message="the chart fills in",
    )

    # The metric picker takes a typed name that has no data yet: the preview says No data, not an error.
    driver.find_element(By.ID, "edit-toggle").click()
    driver.execute_script("document.querySelector('.panel[data-key=\"humidity-chart\"] .panel-edit').click();")
    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor open")
    metric = dialog.find_element(By.CSS_SELECTOR, "input[name=metric]")
    suggestions = wait_for(
        lambda: [
            o.get_attribute("value") for o in dialog.find_elements(By.CSS_SELECTOR, ".query-builder datalist option")
        ],
        message="metric suggestions",
    )
    assert {"humidity", "temperature"} <= set(suggestions)
    metric.clear()
    metric.send_keys("dew_point")
    preview = dialog.find_element(By.CSS_SELECTOR, ".editor-preview")
    wait_for(lambda: preview.text == "No data", message="the preview of a metric without data")
    dialog.find_element(By.CSS_SELECTOR, ".editor-apply").click()
    panel = driver.execute_script("return window.dashboardPage.state.doc.panels[1].queries[0].query.metric;")
    assert panel == "dew_point"


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_label_filters_inspector_and_refresh_now(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="viewer")
    _, key = source_with_key(slug=SOURCE)
    _readings(browser_server, key)
    dashboard = _dashboard(
        [
            _panel(
                "not-d1",
                "table",
                [_query("temperature", "last", group_by=["device"], filters={"device": {"ne": "d1"}})],
            ),
            _panel(
                "regex",
                "table",
                [_query("temperature", "last", group_by=["device"], filters={"device": {"regex": "d[13]"}})],
                x=6,
            ),
        ]
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)

    def devices(key: str) -> list[str]:
        return driver.execute_script(
            f"return [...document.querySelectorAll('.panel[data-key=\"{key}\"] tbody tr')]"
            ".map((row) => row.cells[0].textContent);"
        )

    assert devices("not-d1") == ["d2", "d3"]
    assert devices("regex") == ["d1", "d3"]
    # The editor turns != and =~ into the API's operators and back.
    round_trip = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        import('/static/js/dashboards/editor.js').then((editor) => done([
          editor.filterBuild('!=', ['d1']), editor.filterBuild('!=', ['d1', 'd2']), editor.filterBuild('=', ['d1']),
          editor.filterParse({regex: 'd[13]'}), editor.filterParse({not_in: ['a', 'b']}), editor.filterParse('x'),
        ]));
        """
    )
    assert round_trip == [
        {"ne": "d1"},
        {"not_in": ["d1", "d2"]},
        "d1",
        {"operator": "=~", "values": ["d[13]"]},
        {"operator": "!=", "values": ["a", "b"]},
        {"operator": "=", "values": ["x"]},
    ]

    # The group-by and filter pickers offer every label name of the metric's series, also one that only a series
    # after the first 200 carries (they were read from a page of 200 series).
    from apps.sources.models import Source
    from apps.storage.services import series_key, series_resolve

    plant = Source.objects.get(slug=SOURCE)
    series_resolve(keys=[series_key(source_id=plant.id, metric="temperature", labels={"device": f"s{n:03d}"})
                         for n in range(200)])  # fmt: skip
    series_resolve(keys=[series_key(source_id=plant.id, metric="temperature", labels={"device": "s9", "line": "l1"})])
    names = driver.execute_async_script(
        """
        const done = arguments[arguments.length - 1];
        import('/static/js/dashboards/editor.js').then((editor) => editor.catalog.labelKeys('plant', 'temperature'))
          .then((keys) => done([...keys]));
        """
    )
    assert names == ["device", "line"]

    # The inspector shows what was sent and what the server used.
    driver.execute_script("document.querySelector('.panel[data-key=\"regex\"] .panel-menu-wrap').open = true;")
    driver.find_element(By.CSS_SELECTOR, '.panel[data-key="regex"] [data-action=inspect]').click()
    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#inspector-dialog[open]"), message="inspector")
    spec = dialog.find_element(By.CSS_SELECTOR, ".inspect-spec").text
    assert '"regex": "d[13]"' in spec
    assert '"reduce"' in spec
    assert '"max_points"' in spec
    assert dialog.find_element(By.CSS_SELECTOR, ".inspect-time").text.endswith(" ms")
    assert dialog.find_element(By.CSS_SELECTOR, ".inspect-tier").text not in ("", "\N{EN DASH}")
    dialog.find_element(By.CSS_SELECTOR, "[data-close]").click()

    # Refresh now asks the server again for every panel: each panel's requests are replaced by new ones.
    driver.execute_script("for (const view of window.dashboardPage.state.panels.values()) view.inspect.old = true;")
    driver.find_element(By.ID, "refresh-now").click()
    wait_for(
        lambda: driver.execute_script(
            "return [...window.dashboardPage.state.panels.values()].every((view) => view.inspect && !view.inspect.old);"
        ),
        message="every panel fetched again",
    )


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_phone_stat_height_table_scroll_and_editor_width(browser_server, browser):
    from selenium.webdriver.common.by import By

    user_create(username="erin", role="editor")
    _, key = source_with_key(slug=SOURCE)
    now = datetime.now(UTC)
    wide = {f"label_{index}": f"a-rather-long-value-{index}" for index in range(6)}
    http_ingest(browser_server, SOURCE, key, [{"time": _iso(now - timedelta(minutes=1)), **wide, "temperature": 21.5}])
    dashboard = _dashboard(
        [
            _panel("now", "stat", [_query("temperature")], w=3, h=4, decimals=1),
            _panel("wide", "table", [_query("temperature", "last", group_by=sorted(wide)[:5])], x=3, w=9),
        ]
    )
    driver = browser
    sign_in(driver, browser_server, "erin")
    driver.set_window_size(390, 844)
    driver.get(f"{browser_server}/dashboards/{dashboard.uid}/")
    _ready(driver)
    assert _body_text(driver, "now").startswith("21.5")
    sizes = driver.execute_script(
        """
        const item = (key) => document.querySelector(`.grid-stack-item[gs-id="${key}"]`);
        const value = item('now').querySelector('.stat-value').getBoundingClientRect();
        const scroll = item('wide').querySelector('.table-scroll');
        return {stat: item('now').getBoundingClientRect().height, value: value.height,
                tableScroll: scroll.scrollWidth, tableBox: scroll.clientWidth,
                page: document.documentElement.scrollWidth, window: window.innerWidth};
        """
    )
    # A stat is about as tall as its number (two grid rows), not the desktop's four.
    assert sizes["stat"] <= 170, sizes
    assert sizes["value"] > 20, sizes
    # A wide table scrolls inside its panel; the page itself does not scroll sideways.
    assert sizes["tableScroll"] > sizes["tableBox"], sizes
    assert sizes["page"] <= sizes["window"], sizes
    # The editor fits the phone's width.
    driver.find_element(By.ID, "edit-toggle").click()
    driver.execute_script("document.querySelector('.panel[data-key=\"now\"] .panel-edit').click();")
    dialog = wait_for(lambda: driver.find_element(By.CSS_SELECTOR, "#panel-editor[open]"), message="editor open")
    widths = driver.execute_script(
        "const d = document.querySelector('#panel-editor');"
        "return {dialog: d.getBoundingClientRect().width, inner: d.scrollWidth, client: d.clientWidth,"
        " window: window.innerWidth, page: document.documentElement.scrollWidth};"
    )
    assert widths["dialog"] <= widths["window"], widths
    assert widths["inner"] <= widths["client"], widths
    preview = wait_for(lambda: dialog.find_element(By.CSS_SELECTOR, ".editor-preview .stat-value"), message="preview")
    assert preview.text.startswith("21.5")
