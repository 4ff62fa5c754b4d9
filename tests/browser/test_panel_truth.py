"""What a person sees on the demo dashboards equals what the query API answers, at 1 hour, 7 days and 30 days.

Each number is read from the page as shown (text of stats and table cells, values of the drawn charts) and
compared with an independent POST /api/v1/query of the same spec, and, for the headline totals, with the
count or sum of the points the test wrote.
"""

from __future__ import annotations

import time
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal

import pytest

from apps.dashboards.demo import BUSINESS, MARKETING, demo_dashboards_create
from tests.browser.conftest import console_errors, sign_in, wait_for
from tests.browser.demo_data import DEVICES, PURCHASES, demo_data_write
from tests.factories import organization_get, user_create

pytestmark = [pytest.mark.browser, pytest.mark.slow]

RANGES = {"-1h": timedelta(hours=1), "-7d": timedelta(days=7), "-30d": timedelta(days=30)}

# Every panel's state once drawn: its type, texts a person reads, what the charts plot, and the requests made.
PANELS_SCRIPT = """
const page = window.dashboardPage;
if (!page || !document.querySelector('#dashboard.ready')) return null;
const out = {};
for (const panel of page.state.doc.panels) {
  const view = page.state.panels.get(panel.key);
  const element = view.element.querySelector('.panel');
  if (element.classList.contains('loading')) return null;
  const message = view.body.querySelector('.panel-message');
  if (panel.type !== 'text' && !message && !view.inspect) return null;
  out[panel.key] = {
    type: panel.type,
    title: panel.title,
    options: panel.options,
    message: message ? message.textContent : null,
    error: Boolean(view.body.querySelector('.panel-message.error')),
    stats: [...view.body.querySelectorAll('.stat-value')].map((node) => node.textContent),
    table: [...view.body.querySelectorAll('table.panel-table tr')]
      .map((row) => [...row.cells].map((cell) => cell.textContent)),
    xrange: view.body.layout && view.body.layout.xaxis ? view.body.layout.xaxis.range || null : null,
    traces: (view.body.data || []).map((trace) => ({
      name: trace.name, value: trace.value, x: trace.x, y: trace.y, labels: trace.labels, values: trace.values})),
    inspect: (view.inspect || []).map((entry) => ({
      ref: entry.ref, spec: entry.spec, reduced: entry.response.reduced || null, bucket: entry.response.bucket})),
  };
}
return out;
"""

QUERY_SCRIPT = """
const [spec, done] = arguments;
const token = document.cookie.match(/csrftoken=([^;]+)/);
fetch('/api/v1/query', {method: 'POST', credentials: 'same-origin',
  headers: {'Content-Type': 'application/json', 'X-CSRFToken': token ? token[1] : ''}, body: JSON.stringify(spec)})
  .then((response) => response.json().then((body) => done({status: response.status, body})))
  .catch((error) => done({status: 0, body: String(error)}));
"""


def _format(value: float | None, options: dict) -> str:
    """The page's formatValue for en-US: thousands separators, the panel's decimals, the unit after a space."""
    if value is None:
        return "No data"
    decimals = options.get("decimals")
    if decimals is None:
        decimals = 0 if abs(value) >= 100 else 2
    # Intl.NumberFormat rounds the number's shortest decimal form half away from zero (31.25 -> "31.3", 2.675 ->
    # "2.68"); Python's format rounds the double's exact binary value half to even (31.2, 2.67).
    rounded = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-decimals), rounding=ROUND_HALF_UP)
    text = f"{rounded:,.{decimals}f}"
    return f"{text} {options['unit']}" if options.get("unit") else text


def _seconds(duration: str | None) -> int:
    if not duration:
        return 1
    units = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}
    return int(duration[:-1]) * units[duration[-1]]


def _window(data, since: timedelta, panel: dict) -> timedelta:
    """The range the query covered: from its start down to a whole minute (a whole bucket under a minute), whatever
    the bucket the server used (a first bucket the range cuts holds only what is inside the range)."""
    bucket = _seconds(next((entry["bucket"] for entry in panel["inspect"] if entry["spec"].get("reduce")), None))
    start = (data.now - since).timestamp()
    # Down to a whole minute, but not into an earlier bucket (engine.aggregate_start).
    aligned = max(start - start % bucket, start - start % min(bucket, 60))
    return data.now - datetime.fromtimestamp(aligned, UTC)


def _panels(driver) -> dict:
    return wait_for(lambda: driver.execute_script(PANELS_SCRIPT), timeout=30, message="every panel drawn")


def _api(driver, spec: dict) -> dict:
    answer = driver.execute_async_script(QUERY_SCRIPT, spec)
    assert answer["status"] == 200, (spec, answer)
    return answer["body"]


def _reduced_request(panel: dict, ref: str = "A") -> dict:
    return next(entry for entry in panel["inspect"] if entry["ref"] == ref and entry["spec"].get("reduce"))


def _check_reduced_panel(driver, key: str, panel: dict) -> None:
    """A reduced panel shows exactly the query API's reduction of the spec it sent."""
    requests = [entry for entry in panel["inspect"] if entry["spec"].get("reduce")]
    assert requests, f"{key}: a {panel['type']} panel asks the server to reduce"
    options = panel["options"]
    for request in requests:
        reduce = request["spec"]["reduce"]
        if "calculation" in options:
            assert reduce["calculation"] == options["calculation"], key
        if "combination" in options:
            assert reduce["combination"] == options["combination"], key
        expected = _api(driver, request["spec"])["reduced"]
        assert request["reduced"] == expected, f"{key}: the page drew what the API answers"
        if panel["type"] == "stat":
            assert panel["stats"] == [_format(item["value"], options) for item in expected], key
        elif panel["type"] == "gauge":
            assert [trace["value"] for trace in panel["traces"]] == [item["value"] for item in expected], key
        elif panel["type"] == "bar":
            assert sorted(panel["traces"][0]["y"]) == sorted(item["value"] for item in expected), key
        elif panel["type"] == "pie":
            assert sorted(panel["traces"][0]["values"]) == sorted(item["value"] for item in expected), key


def _check_reduced_panel_settled(driver, where: str, key: str, panel: dict) -> None:
    """A live panel asks again as its relative window slides (a bucket boundary passes): the first reading may be
    drawn from a newer answer than the one inspected. Read the panel again, at most twice, before failing."""
    for attempt in range(3):
        try:
            _check_reduced_panel(driver, where, panel)
            return
        except AssertionError:
            if attempt == 2:
                raise
            time.sleep(2)
            panel = _panels(driver)[key]


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_demo_dashboards_show_the_query_apis_numbers_at_every_range(browser_server, browser):
    user_create(username="erin", role="viewer")
    data = demo_data_write()
    dashboards = {
        dashboard.title: dashboard for dashboard in demo_dashboards_create(organization=organization_get(), owner=None)
    }
    driver = browser
    sign_in(driver, browser_server, "erin")
    for range_start, since in RANGES.items():
        for title, dashboard in dashboards.items():
            driver.get(f"{browser_server}/dashboards/{dashboard.uid}/?from={range_start}&to=now")
            panels = _panels(driver)
            where = f"{title} at {range_start}"
            # An alert list shows live alerts, not the range's data: with no rules here, its empty state is right.
            problems = {
                key: panel["message"]
                for key, panel in panels.items()
                if panel["error"] or (panel["message"] and panel["type"] != "alertlist")
            }
            assert not problems, f"{where}: panels in error or empty: {problems}"
            for panel in panels.values():
                if panel["type"] == "alertlist":
                    assert panel["message"].startswith("No alerts"), (where, panel)
            for key, panel in panels.items():
                if panel["type"] in ("stat", "gauge", "bar", "pie"):
                    _check_reduced_panel_settled(driver, f"{where} / {key}", key, panel)
            if title == "Marketing":
                _check_marketing(driver, panels, data, since)
            elif title == "Executive":
                _check_executive(panels, data, since)
            else:
                _check_factory(panels, data, exact_minutes=range_start == "-1h")
            assert console_errors(driver) == [], where


def _check_marketing(driver, panels: dict, data, since: timedelta) -> None:
    # "Events" is every event in the range: each count point is one event.
    events = len(data.select(MARKETING, "count", _window(data, since, panels["events-total"])))
    assert panels["events-total"]["stats"] == [f"{events:,}"]
    purchases = data.select(MARKETING, "amount", _window(data, since, panels["purchases-total"]))
    assert panels["purchases-total"]["stats"] == [f"{len(purchases):,}"]
    assert panels["revenue-total"]["stats"] == [f"{sum(value for _, _, value in purchases):,.0f}"]
    # "Purchases by country": one row per country (joined by labels), a column per query.
    table = panels["purchases-by-country"]["table"]
    assert table[0] == ["country ▲", "purchases", "revenue"]
    rows = {row[0]: row[1:] for row in table[1:]}
    assert sorted(rows) == sorted(country for country, _ in PURCHASES)
    window = _window(data, since, panels["purchases-by-country"])
    for country in rows:
        bought = [value for _, _, value in data.select(MARKETING, "amount", window, country=country)]
        assert rows[country] == [f"{len(bought):,}", f"{sum(bought):,.0f}"], country
    # Legend templates are rendered: the pie's slices are named by segment.
    assert sorted(panels["revenue-by-segment-share"]["traces"][0]["labels"]) == ["b2b", "b2c"]


def _check_executive(panels: dict, data, since: timedelta) -> None:
    orders = data.select(BUSINESS, "amount", _window(data, since, panels["orders-total"]), kind="order")
    assert panels["orders-total"]["stats"] == [f"{len(orders):,}"]
    window = _window(data, since, panels["invoiced-total"])
    invoiced = sum(value for _, _, value in data.select(BUSINESS, "amount", window, kind="invoice"))
    assert panels["invoiced-total"]["stats"] == [f"{invoiced:,.0f}"]
    chart = panels["revenue-per-day"]
    names = sorted(trace["name"] for trace in chart["traces"])
    assert names == ["EUR", "USD"]
    # The daily bars total the same range as the stat (a first day the range cuts counts only what is inside it),
    # and every bar is inside the drawn axis: at "Last 1 hour" one bar for today's part of the range.
    drawn = [y for trace in chart["traces"] for y in trace["y"] if y is not None]
    assert f"{sum(drawn):,.0f}" == f"{invoiced:,.0f}"
    axis_start = datetime.fromisoformat(chart["xrange"][0].replace("Z", "+00:00").replace(" ", "T"))
    if axis_start.tzinfo is None:
        axis_start = axis_start.replace(tzinfo=UTC)
    first_bar = min(datetime.fromisoformat(x.replace("Z", "+00:00")) for trace in chart["traces"] for x in trace["x"])
    assert axis_start <= first_bar, (chart["xrange"], first_bar)


def _check_factory(panels: dict, data, *, exact_minutes: bool) -> None:
    # "Latest values by device": one row per device of the chosen facility (f1), a column per metric with its unit.
    table = panels["latest-by-device"]["table"]
    assert table[0][:2] == ["device ▲", "facility"]
    assert table[0][2:] == ["temperature (°C)", "vibration (mm/s)", "pressure (bar)", "flow (l/min)", "power (kW)"]
    f1 = sorted(device for device, facility in DEVICES if facility == "f1")
    assert [row[0] for row in table[1:]] == f1
    for row in table[1:]:
        for metric, cell in zip(("temperature", "vibration", "pressure", "flow", "power"), row[2:], strict=True):
            latest = max(data.select("demo-factory", metric, timedelta(minutes=5), device=row[0]), key=lambda r: r[1])
            assert cell == f"{latest[2]:,.2f}", (row[0], metric)
    # The legend template "vibration {facility}" names the series by facility.
    names = [trace["name"] for trace in panels["vibration-pressure"]["traces"]]
    assert names == ["vibration f1", "pressure f1"]
    # The hottest machine is the max over devices of each one's latest bucket (one point a bucket at 1 minute).
    request = _reduced_request(panels["stat-temperature"])
    assert request["spec"]["reduce"] == {"calculation": "last_not_null", "combination": "max"}
    if not exact_minutes:
        return
    hottest = max(
        max(data.select("demo-factory", "temperature", timedelta(minutes=5), device=device), key=lambda r: r[1])[2]
        for device in f1
    )
    assert panels["stat-temperature"]["stats"] == [f"{hottest:,.1f} °C"]


@pytest.mark.usefixtures("storage_committed_cleanup")
def test_axis_tick_labels_stay_inside_their_panel(browser_server, browser):
    user_create(username="erin", role="viewer")
    demo_data_write()
    dashboards = demo_dashboards_create(organization=organization_get(), owner=None)
    factory = next(dashboard for dashboard in dashboards if dashboard.title == "Factory floor")
    driver = browser
    sign_in(driver, browser_server, "erin")
    for width, height in ((1440, 900), (390, 844)):
        driver.set_window_size(width, height)
        driver.get(f"{browser_server}/dashboards/{factory.uid}/")
        _panels(driver)
        clipped = driver.execute_script(
            """
            const out = [];
            for (const body of document.querySelectorAll('.panel-body.js-plotly-plot')) {
              const box = body.getBoundingClientRect();
              for (const tick of body.querySelectorAll('.xtick text, .ytick text, .y2tick text')) {
                const r = tick.getBoundingClientRect();
                if (r.width && (r.left < box.left - 1 || r.right > box.right + 1 || r.bottom > box.bottom + 1)) {
                  out.push([body.closest('.panel').dataset.key, tick.textContent]);
                }
              }
            }
            return out;
            """
        )
        assert clipped == [], f"tick labels cut off at {width}px: {clipped[:5]}"
