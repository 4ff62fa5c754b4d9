"""Stat, gauge, bar gauge, bar and pie panels in a report: the numbers the dashboard shows, as the query API reduces
them; bars and pies drawn from those numbers."""

from __future__ import annotations

import pytest
from django.utils import timezone
from openpyxl import load_workbook
from pypdf import PdfReader

from apps.dashboards.services import dashboard_create
from apps.reporting.content import panel_reduce
from apps.reporting.runs import report_content, report_files_render
from apps.reporting.services import report_create
from tests.conftest import api_client_for
from tests.factories import organization_get

QUERY = {"source": "plant", "metric": "temperature", "aggregation": "avg", "group_by": ["device"]}


@pytest.mark.parametrize(
    ("panel_type", "options", "query", "expected"),
    [
        ("stat", {}, {"aggregation": "avg", "metric": "temperature"}, ("last_not_null", "mean")),
        ("stat", {}, {"aggregation": "sum", "metric": "energy"}, ("sum", "sum")),
        ("gauge", {}, {"aggregation": "avg", "metric": "orders.count"}, ("sum", "sum")),
        ("stat", {}, {"aggregation": "max", "metric": "temperature"}, ("last_not_null", "max")),
        ("bargauge", {}, {"aggregation": "avg", "metric": "temperature"}, ("last_not_null", "none")),
        ("bar", {}, {"aggregation": "sum", "metric": "count"}, ("sum", "none")),
        ("pie", {}, {"aggregation": "avg", "metric": "temperature"}, ("last_not_null", "none")),
        ("pie", {"combination": "sum"}, {"aggregation": "sum"}, ("sum", "sum")),
        ("table", {}, {"aggregation": "sum"}, ("sum", "none")),
        ("stat", {"reduce": "avg"}, {"aggregation": "avg"}, ("mean", "mean")),
        ("gauge", {"calculation": "delta", "combination": "min"}, {"aggregation": "sum"}, ("delta", "min")),
    ],
)
def test_a_panels_reduction_is_the_one_the_dashboard_page_shows(panel_type, options, query, expected):
    """The same rule as panelReduce in static/js/dashboards/values.js: options, the older `reduce`, then defaults."""
    assert panel_reduce(panel_type, options, query) == expected


def _panel(key: str, panel_type: str, options: dict) -> dict:
    return {"key": key, "title": f"Panel {key}", "type": panel_type, "grid": {"x": 0, "y": 0, "w": 4, "h": 4},
            "options": options, "queries": [{"ref": "A", "query": QUERY}]}  # fmt: skip


def _api_reduced(user, plant, calculation: str, combination: str) -> list[dict]:
    """What POST /api/v1/query answers the dashboard page for the panel over the report's period."""
    body = {**QUERY, "start": plant["start"].isoformat(), "end": plant["end"].isoformat(), "max_points": 600,
            "limit": 1000 if combination != "none" else 200,
            "reduce": {"calculation": calculation, "combination": combination}}  # fmt: skip
    response = api_client_for(user).post("/api/v1/query", body, format="json")
    assert response.status_code == 200, response.content
    return response.json()["reduced"]


def test_stat_gauge_and_bar_gauge_values_are_the_query_apis_in_the_pdf_and_the_xlsx(plant, editor, viewer, tmp_path):
    dashboard = dashboard_create(organization=organization_get(), owner=editor, document={
        "schema_version": 1, "title": "Numbers", "time_range": {"start": "-6h", "end": "now"},
        "panels": [_panel("hottest", "stat", {"calculation": "max", "combination": "max", "unit": "°C", "decimals": 3}),
                   _panel("typical", "gauge", {"decimals": 1}),
                   _panel("each", "bargauge", {"calculation": "mean", "unit": "°C", "decimals": 2})],
    })  # fmt: skip
    report = report_create(organization=organization_get(), owner=editor, data={
        "name": "Numbers", "dashboard": dashboard.uid, "formats": ["pdf", "xlsx"], "recipients": {"users": ["vic"]},
        "time_range": {"start": "-6h", "end": "now"},
    })  # fmt: skip
    content = report_content(report=report, principal=viewer, start=plant["start"], end=plant["end"])
    hottest = _api_reduced(viewer, plant, "max", "max")
    typical = _api_reduced(viewer, plant, "last_not_null", "mean")
    each = _api_reduced(viewer, plant, "mean", "none")
    assert len(each) == 4  # one per device
    by_key = {section.definition.key: section for section in content.sections}
    assert by_key["hottest"].reduced == [{"name": "temperature", "value": hottest[0]["value"]}]
    assert by_key["typical"].reduced == [{"name": "temperature", "value": typical[0]["value"]}]
    assert by_key["each"].reduced == [
        {"name": f"device={item['labels']['device']}", "value": item["value"]} for item in each
    ]

    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["pdf", "xlsx"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    paths = {str(item["path"]).rsplit(".", 1)[1]: item["path"] for item in files}
    text = "\n".join(page.extract_text() for page in PdfReader(paths["pdf"]).pages)
    assert "Max, max of series" in text
    assert "Last (not null), mean of series" in text
    assert "Mean, per series" in text
    assert f"{hottest[0]['value']:,.3f}" in text
    assert f"{typical[0]['value']:,.1f}" in text
    for item in each:
        assert f"device={item['labels']['device']} {item['value']:,.2f}" in text

    summary = load_workbook(paths["xlsx"])["Summary"]
    rows = list(summary.iter_rows())
    heading = next(index for index, row in enumerate(rows) if row[3].value == "Value")
    # The panels' numbers come first, before every series' last / min / max / mean, up to an empty row.
    series_heading = next(index for index, row in enumerate(rows) if row[3].value == "Last")
    assert heading < series_heading
    reduced = [row for row in rows[heading + 1 : series_heading] if row[0].value]
    assert summary.column_dimensions["A"].width >= 18  # a generation time fits (it showed "###")
    assert summary.column_dimensions["B"].width >= 40  # series' labels
    assert [(row[0].value, row[1].value, row[2].value, row[4].value) for row in reduced] == [
        ("Panel hottest", "temperature", "°C", "Max, max of series"),
        ("Panel typical", "temperature", None, "Last (not null), mean of series"),  # no unit: an empty cell
        *(("Panel each", f"device={item['labels']['device']}", "°C", "Mean, per series") for item in each),
    ]
    assert [row[3].value for row in reduced] == [hottest[0]["value"], typical[0]["value"],
                                                 *(item["value"] for item in each)]  # fmt: skip
    assert [row[3].number_format for row in reduced] == ['#,##0.000" °C"', "#,##0.0", *['#,##0.00" °C"'] * len(each)]


def _report_of(plant, editor, viewer, title: str, panels: list[dict]):
    """A PDF report of a dashboard of `panels` over the plant's hours, and its content as `viewer` reads it."""
    dashboard = dashboard_create(organization=organization_get(), owner=editor, document={
        "schema_version": 1, "title": title, "time_range": {"start": "-6h", "end": "now"}, "panels": panels,
    })  # fmt: skip
    report = report_create(organization=organization_get(), owner=editor, data={
        "name": title, "dashboard": dashboard.uid, "formats": ["pdf"], "recipients": {"users": ["vic"]},
        "time_range": {"start": "-6h", "end": "now"},
    })  # fmt: skip
    return report, report_content(report=report, principal=viewer, start=plant["start"], end=plant["end"])


def _svg_of(section_context: dict):
    """The chart's SVG document, parsed: its elements in document order, nested ones (a clipped group's) included."""
    import xml.etree.ElementTree as ElementTree

    return list(ElementTree.fromstring(str(section_context["chart"])).iter())[1:]  # noqa: S314 (our own SVG)


def test_pie_and_bar_panels_are_drawn_from_the_query_apis_values_per_series(plant, editor, viewer, tmp_path):
    """A pie is a slice per series and a bar chart a bar per series, as on the dashboard (one value per series
    unless the panel combines them): the PDF draws them from the query API's reduced values, not a line chart
    over time, and the shares and numbers it prints are the API's."""
    import math

    from apps.reporting.renderers.pdf import _section_context

    thresholds = [{"value": None, "color": "#2ca02c"}, {"value": 150, "color": "#d62728"}]
    panels = [
        _panel("share", "pie", {"decimals": 1}),
        _panel(
            "bars",
            "bar",
            {"calculation": "mean", "orientation": "horizontal", "thresholds": thresholds, "decimals": 2},
        ),
    ]
    report, content = _report_of(plant, editor, viewer, "Shares", panels)
    last = _api_reduced(viewer, plant, "last_not_null", "none")
    mean = _api_reduced(viewer, plant, "mean", "none")
    assert len(last) == len(mean) == 4
    by_key = {section.definition.key: section for section in content.sections}
    assert [item["value"] for item in by_key["share"].reduced] == [item["value"] for item in last]
    assert [item["value"] for item in by_key["bars"].reduced] == [item["value"] for item in mean]

    zone = timezone.get_current_timezone()
    pie = _svg_of(_section_context(by_key["share"], content, zone))
    slices = [element for element in pie if element.tag.endswith("path")]
    assert len(slices) == 4
    total = sum(item["value"] for item in last)
    for path, item in zip(slices, last, strict=True):
        # Each slice's arc spans its share of the circle: the chord between its two arc ends says so.
        words = path.get("d").replace("M", "").replace("L", " ").replace("A", " ").replace("Z", "").split()
        x0, y0, radius = (float(word) for word in words[2:5])
        x1, y1 = float(words[-2]), float(words[-1])
        chord = math.dist((x0, y0), (x1, y1))
        share = item["value"] / total
        assert chord == pytest.approx(2 * radius * math.sin(share * math.pi), abs=0.05)
    legend = [element.text for element in pie if element.tag.endswith("text") and "(" in (element.text or "")]
    assert legend == [f"device={item['labels']['device']} ({item['value'] / total * 100:.1f}%)" for item in last]

    bars = _svg_of(_section_context(by_key["bars"], content, zone))
    rectangles = [element for element in bars if element.tag.endswith("rect") and element.get("fill") != "none"]
    assert len(rectangles) == 4
    widths = [float(element.get("width")) for element in rectangles]
    for width, item in zip(widths, mean, strict=True):
        assert width / widths[-1] == pytest.approx(item["value"] / mean[-1]["value"], rel=1e-2)
    # Bars take the colour of the threshold they reach, as on the dashboard page.
    assert [element.get("fill") for element in rectangles] == [
        "#d62728" if item["value"] >= 150 else "#2ca02c" for item in mean
    ]
    assert {"#d62728", "#2ca02c"} == {element.get("fill") for element in rectangles}

    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["pdf"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    text = "\n".join(page.extract_text() for page in PdfReader(files[0]["path"]).pages)
    assert "Last (not null), per series" in text
    assert "Mean, per series" in text
    for item in last:
        assert f"device={item['labels']['device']} {item['value']:,.1f}" in text
        assert f"({item['value'] / total * 100:.1f}%)" in text


def test_a_time_series_with_threshold_lines_draws_them_in_the_pdf(plant, editor, viewer):
    """threshold_lines draws each threshold with a value as a dashed line in its colour, inside the axis; without
    the option (the dashboard's default) none is drawn."""
    from apps.reporting.renderers.pdf import _section_context

    thresholds = [{"value": None, "color": "green"}, {"value": 500, "color": "#e0752d"}]
    panels = [
        _panel("lines", "timeseries", {"thresholds": thresholds, "threshold_lines": True}),
        _panel("plain", "timeseries", {"thresholds": thresholds}),
    ]
    _, content = _report_of(plant, editor, viewer, "Lines", panels)
    zone = timezone.get_current_timezone()
    by_key = {section.definition.key: section for section in content.sections}
    dashed = [
        element
        for element in _svg_of(_section_context(by_key["lines"], content, zone))
        if element.get("stroke-dasharray")
    ]
    assert [element.get("stroke") for element in dashed] == ["#e0752d"]
    # The line sits at 500 on the value axis: between the gridlines labelled around it.
    chart = _svg_of(_section_context(by_key["lines"], content, zone))
    ticks = {
        float(element.text.replace(",", "")): float(element.get("y")) - 3
        for element in chart
        if element.tag.endswith("text")
        and element.get("text-anchor") == "end"
        and element.text.replace(",", "").isdigit()
    }
    low, high = max(tick for tick in ticks if tick <= 500), min(tick for tick in ticks if tick >= 500)
    y = float(dashed[0].get("y1"))
    expected = ticks[low] + (500 - low) / (high - low) * (ticks[high] - ticks[low]) if high != low else ticks[low]
    assert y == pytest.approx(expected, abs=0.2)
    assert not [
        element
        for element in _svg_of(_section_context(by_key["plain"], content, zone))
        if element.get("stroke-dasharray")
    ]


def test_a_reading_a_minute_in_finer_chart_buckets_is_drawn_as_markers_not_an_invisible_line(plant, editor, viewer):
    """Three hours at the chart's 600 buckets are 30 s buckets, so a reading a minute leaves every other bucket
    empty: a line broken at each gap drew nothing at all. Like the dashboard page (isSparse), such a series is
    drawn with a marker per value; a dense one (hourly buckets) stays a line without markers."""
    from apps.reporting.renderers.pdf import _section_context

    hourly = {**_panel("dense", "timeseries", {}), "queries": [{"ref": "A", "query": {**QUERY, "bucket": "1h"}}]}
    _, content = _report_of(plant, editor, viewer, "Sparse", [_panel("sparse", "timeseries", {}), hourly])
    zone = timezone.get_current_timezone()
    by_key = {section.definition.key: section for section in content.sections}
    sparse = by_key["sparse"]
    assert any(value is None for value in sparse.chart_values[0])  # gaps between the readings
    markers = [
        element for element in _svg_of(_section_context(sparse, content, zone)) if element.tag.endswith("circle")
    ]
    assert len(markers) == sum(value is not None for values in sparse.chart_values for value in values)
    dense = _svg_of(_section_context(by_key["dense"], content, zone))
    assert not [element for element in dense if element.tag.endswith("circle")]
    assert len([element for element in dense if element.tag.endswith("path")]) == 4


def test_legend_templates_name_the_series_as_on_the_dashboard(plant, editor, viewer, tmp_path):
    """A legend "{device}" names each series by its device (the report printed "{device}" for all four); a plain
    legend of a query with several series is followed by their labels, as the page shows them."""
    templated = {
        **_panel("share", "pie", {}),
        "queries": [{"ref": "A", "query": QUERY, "legend": "{device}/{{ device }}{unknown}"}],
    }
    plain = {**_panel("lines", "timeseries", {}), "queries": [{"ref": "A", "query": QUERY, "legend": "temp"}]}
    report, content = _report_of(plant, editor, viewer, "Legends", [templated, plain])
    by_key = {section.definition.key: section for section in content.sections}
    devices = [f"d{number}" for number in range(4)]
    # Both template spellings; a label the series lacks is left empty, as on the page.
    assert sorted(item["name"] for item in by_key["share"].reduced) == [f"{d}/{d}" for d in devices]
    assert sorted(column.name for column in by_key["share"].columns) == [f"{d}/{d}" for d in devices]
    assert sorted(column.name for column in by_key["lines"].columns) == [f"temp device={d}" for d in devices]
    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["pdf"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    text = "\n".join(page.extract_text() for page in PdfReader(files[0]["path"]).pages)
    assert "{device}" not in text
    assert "d0/d0" in text


def test_a_combined_value_is_named_as_the_dashboard_names_it(plant, editor, viewer):
    """A stat combining a query's series has no labels: its legend template's {label}s are left empty, as on the
    page (the report printed "{device} hottest" literally), a legend of labels only falls back to the metric, and
    with several queries an unlegended one is prefixed by its ref as seriesDisplayName does."""
    panel = {
        **_panel("combined", "stat", {"calculation": "max", "combination": "max"}),
        "queries": [{"ref": "A", "query": QUERY, "legend": "{device} hottest"},
                    {"ref": "B", "query": QUERY, "legend": "{device}"},
                    {"ref": "C", "query": QUERY}],
    }  # fmt: skip
    _, content = _report_of(plant, editor, viewer, "Combined", [panel])
    hottest = _api_reduced(viewer, plant, "max", "max")
    assert content.sections[0].reduced == [
        {"name": "hottest", "value": hottest[0]["value"]},
        {"name": "temperature", "value": hottest[0]["value"]},
        {"name": "C: temperature", "value": hottest[0]["value"]},
    ]


def test_a_right_axis_series_is_scaled_to_its_own_axis_and_overrides_apply(plant, editor, viewer):
    """A query on the right axis (a count beside temperatures) gets an axis of its own, labelled on the right, as
    on the dashboard: on the shared axis it drew as a flat line near zero. Overrides hide a series and colour a
    query's series, matched by series name or query ref."""
    from apps.reporting.renderers.pdf import _section_context

    hourly = {**QUERY, "bucket": "1h"}
    panel = {
        **_panel("dual", "timeseries", {"unit_right": "readings", "overrides": [
            {"match": "d3", "hide": True}, {"match": "B", "color": "#123456"}]}),
        "queries": [{"ref": "A", "query": hourly, "legend": "{device}"},
                    {"ref": "B", "query": {**hourly, "aggregation": "count"}, "legend": "count {device}",
                     "axis": "right"}],
    }  # fmt: skip
    _, content = _report_of(plant, editor, viewer, "Dual", [panel])
    section = content.sections[0]
    chart = _svg_of(_section_context(section, content, timezone.get_current_timezone()))
    paths = [element for element in chart if element.tag.endswith("path")]
    assert len(paths) == 3 + 4  # d3's temperature hidden
    assert [element.get("stroke") for element in paths[3:]] == ["#123456"] * 4

    def axis_labels(anchor: str) -> dict[float, float]:
        # A tick's text is its number and the axis' unit as a suffix ("20 readings"), as the page prints it.
        return {
            float(element.text.split(" ")[0].replace(",", "")): float(element.get("y")) - 3
            for element in chart
            if element.tag.endswith("text") and element.get("text-anchor") == anchor
            and element.text.split(" ")[0].replace(",", "").replace(".", "").isdigit()
        }  # fmt: skip

    def y_on(labels: dict[float, float], value: float) -> float:
        low = max(tick for tick in labels if tick <= value)
        high = min(tick for tick in labels if tick >= value)
        return labels[low] if low == high else labels[low] + (value - low) / (high - low) * (labels[high] - labels[low])

    right = axis_labels("start")
    assert right
    assert max(right) < 100  # the counts' own scale, not the temperatures' 0 to 500
    counts = [values for column, values in zip(section.columns, section.chart_values, strict=True)
              if column.ref == "B"]  # fmt: skip
    first_count = next(value for value in counts[0] if value is not None)
    first_y = float(paths[3].get("d").split()[1])
    assert first_y == pytest.approx(y_on(right, first_count), abs=0.2)
    assert abs(first_y - y_on(axis_labels("end"), first_count)) > 20  # not where the left axis would put it
    right_texts = [
        element.text
        for element in chart
        if element.tag.endswith("text")
        and element.get("text-anchor") == "start"
        and element.text.split(" ")[0][:1].isdigit()
        and ":" not in element.text
    ]  # time labels have a colon
    assert right_texts
    assert all(text.endswith(" readings") for text in right_texts)


def _two_axis_panel(key: str, options: dict) -> dict:
    """A time series of the hourly temperatures (A) on the left axis and their counts (B) on the right."""
    hourly = {**QUERY, "bucket": "1h"}
    return {
        **_panel(key, "timeseries", options),
        "queries": [{"ref": "A", "query": hourly},
                    {"ref": "B", "query": {**hourly, "aggregation": "count"}, "axis": "right"}],
    }  # fmt: skip


def test_a_panels_axis_min_and_max_fix_the_pdf_charts_axes_and_clip_what_lies_outside(plant, editor, viewer):
    """The panel's min/max (and min_right/max_right) fix the value axes' ends as on the page (plotly's range, with
    autorange on a free end): the PDF chart ignored them. Lines outside are clipped to the plot, and a threshold
    line outside the range is not drawn."""
    from apps.reporting.renderers.pdf import _section_context

    thresholds = [{"value": None, "color": "#2ca02c"}, {"value": 50, "color": "#d62728"},
                  {"value": 200, "color": "#ff7f0e"}]  # fmt: skip
    options = {"min": 100, "max": 300, "min_right": 0, "threshold_lines": True, "thresholds": thresholds}
    _, content = _report_of(plant, editor, viewer, "Bounded", [_two_axis_panel("bounded", options)])
    chart = _svg_of(_section_context(content.sections[0], content, timezone.get_current_timezone()))

    def labels(anchor: str) -> list[float]:
        return sorted(
            float(element.text.replace(",", ""))
            for element in chart
            if element.tag.endswith("text") and element.get("text-anchor") == anchor
            and element.text.replace(",", "").replace(".", "").isdigit()
        )  # fmt: skip

    assert labels("end")[0] == 100
    assert labels("end")[-1] == 300
    assert labels("start")[0] == 0
    assert labels("start")[-1] >= 60
    frame = next(element for element in chart if element.tag.endswith("rect") and element.get("fill") == "none")
    clipped = next(element for element in chart if element.tag.endswith("g"))
    clip_id = clipped.get("clip-path")[len("url(#") : -1]
    clip_rect = next(element for element in chart if element.get("id") == clip_id)[0]
    assert {key: clip_rect.get(key) for key in ("x", "y", "width", "height")} == {
        key: frame.get(key) for key in ("x", "y", "width", "height")
    }
    paths = [element for element in clipped if element.tag.endswith("path")]
    assert len(paths) == 8
    assert len([element for element in chart if element.tag.endswith("path")]) == 8
    bottom = float(frame.get("y")) + float(frame.get("height"))
    first_y = float(paths[0].get("d").split()[1])  # d0's first hour, 29.75: below the axis' 100, clipped
    assert first_y > bottom
    dashed = [element for element in clipped if element.get("stroke-dasharray")]
    assert [element.get("stroke") for element in dashed] == ["#ff7f0e"]  # 50 lies below the axis


def test_pdf_axis_ticks_print_the_panels_decimals_and_unit_as_the_page_does(plant, editor, viewer):
    """The page's value axes print `decimals` places and the unit as a tick suffix (valueAxis in panels.js: tickformat
    and ticksuffix; the right axis takes decimals_right, else decimals). The PDF printed a general number format
    with the unit as a rotated axis title."""
    from apps.reporting.renderers.pdf import _section_context

    options = {"unit": "°C", "decimals": 1, "unit_right": "readings", "decimals_right": 0}
    _, content = _report_of(plant, editor, viewer, "Ticks", [_two_axis_panel("ticks", options)])
    chart = _svg_of(_section_context(content.sections[0], content, timezone.get_current_timezone()))

    def ticks(anchor: str) -> list[str]:
        return [
            element.text
            for element in chart
            if element.tag.endswith("text")
            and element.get("text-anchor") == anchor
            and element.text[:1].isdigit()
            and ":" not in element.text
        ]  # time labels have a colon

    left, right = ticks("end"), ticks("start")
    assert len(left) >= 3
    assert len(right) >= 2
    assert all(text.endswith(" °C") and len(text[: -len(" °C")].replace(",", "").split(".")[1]) == 1 for text in left)
    assert all(text.endswith(" readings") and "." not in text for text in right)
    assert len(set(right)) == len(right)  # steps the labels print exactly: no 2.5 rounded into repeats
    assert not any(element.text in ("°C", "readings") for element in chart if element.tag.endswith("text"))
    frame = next(element for element in chart if element.tag.endswith("rect") and element.get("fill") == "none")
    assert float(frame.get("x")) >= 6.2 * max(len(text) for text in left)  # the margin holds the longest label


def test_tick_steps_are_ones_the_decimals_print_exactly():
    from apps.reporting.charts import _Axis, bar_chart_svg, tick_label

    assert _Axis.over([0.0, 12.0], decimals=0).ticks() == [0, 5, 10, 15]  # not 2.5 steps (0, 2.5 as "2" or "3")
    assert _Axis.over([0.0, 3.0], decimals=0).ticks() == [0, 1, 2, 3]
    assert _Axis.over([0.0, 0.3], decimals=1).ticks() == pytest.approx([0, 0.1, 0.2, 0.3])
    assert _Axis.over([0.0, 12.0]).step == 2.5  # without decimals, plotly's general format prints 2.5
    assert tick_label(1234.5, 1, "kW") == "1,234.5 kW"
    assert tick_label(0.5, None, "") == "0.5"
    chart = bar_chart_svg(items=[("a", 3.0, "#111111"), ("b", 1.25, "#222222")], unit="kW", decimals=2)
    assert ">3.00 kW<" in chart
    assert ">1.25 kW<" in chart
    assert ">1.00 kW<" in chart


def test_the_xlsx_has_native_pie_and_bar_charts_of_the_panels_values(plant, editor, viewer, tmp_path):
    """Beside a pie or bar panel's values on the Summary sheet, a native Excel chart of them (pie; bars horizontal
    when the panel is), referencing exactly those cells, which hold the query API's numbers, in the dashboard's
    colours: slices in the palette's, bars in their threshold's (a named colour too), not the office suite's."""
    import re
    import zipfile

    from apps.reporting.charts import PALETTE

    thresholds = [{"value": None, "color": "green"}, {"value": 150, "color": "#d62728"}]
    panels = [
        _panel("share", "pie", {}),
        _panel("bars", "bar", {"calculation": "mean", "orientation": "horizontal", "thresholds": thresholds}),
    ]
    report, content = _report_of(plant, editor, viewer, "Charts", panels)
    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["xlsx"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    path = files[0]["path"]
    with zipfile.ZipFile(path) as archive:
        charts = [archive.read(name).decode() for name in sorted(archive.namelist()) if name.startswith("xl/charts/")]
    # chartSpace XML as openpyxl writes it (DrawingML chart namespace as the default one).
    charts = [re.sub(r"<(/?)c:", r"<\1", chart) for chart in charts]
    kinds = {"pie": [chart for chart in charts if "<doughnutChart>" in chart],  # a donut: the panel's default
             "bar": [chart for chart in charts if "<barChart>" in chart]}  # fmt: skip
    assert (len(kinds["pie"]), len(kinds["bar"])) == (1, 1)
    assert re.search(r'<barDir val="bar" ?/>', kinds["bar"][0])
    summary = load_workbook(path)["Summary"]
    expected = {
        "pie": _api_reduced(viewer, plant, "last_not_null", "none"),
        "bar": _api_reduced(viewer, plant, "mean", "none"),
    }
    for kind, (chart,) in kinds.items():
        values = re.search(r"<val><numRef><f>'Summary'!\$D\$(\d+):\$D\$(\d+)</f>", chart)
        names = re.search(r"<cat><(?:num|str)Ref><f>'Summary'!\$B\$(\d+):\$B\$(\d+)</f>", chart)
        assert values, chart[:500]
        assert names, chart[:500]
        assert values.groups() == names.groups()
        first, last = (int(number) for number in values.groups())
        assert [summary.cell(row, 4).value for row in range(first, last + 1)] == [
            item["value"] for item in expected[kind]
        ]
        assert [summary.cell(row, 2).value for row in range(first, last + 1)] == [
            f"device={item['labels']['device']}" for item in expected[kind]
        ]
        fills = [
            (int(index), color)
            for index, color in re.findall(r'<dPt><idx val="(\d+)" ?/>.*?<a:srgbClr val="([0-9A-F]{6})"', chart)
        ]
        if kind == "pie":
            assert fills == [(index, PALETTE[index][1:].upper()) for index in range(len(expected[kind]))]
        else:
            assert fills == [
                (index, "D62728" if item["value"] >= 150 else "008000") for index, item in enumerate(expected[kind])
            ]
            assert {color for _, color in fills} == {"D62728", "008000"}  # both thresholds reached


def test_a_panels_numbers_take_its_value_mappings_and_threshold_colours_in_the_pdf(plant, editor, viewer, tmp_path):
    """As on the dashboard: a value mapping's text replaces the number and its colour wins; else the colour of
    the threshold the value reaches."""
    from apps.reporting.renderers.pdf import _section_context

    options = {
        "calculation": "mean", "decimals": 2,
        "thresholds": [{"value": None, "color": "#00aa00"}, {"value": 150, "color": "#d62728"}],
        "value_mappings": [{"type": "range", "from": 300, "text": "hot", "color": "#aa0000"}],
    }  # fmt: skip
    report, content = _report_of(plant, editor, viewer, "Mapped", [_panel("each", "bargauge", options)])
    mean = _api_reduced(viewer, plant, "mean", "none")
    rows = _section_context(content.sections[0], content, timezone.get_current_timezone())["reduced"]
    expected = [
        {"name": f"device={item['labels']['device']}", "value": "hot", "color": "#aa0000"}
        if item["value"] >= 300
        else {"name": f"device={item['labels']['device']}", "value": f"{item['value']:,.2f}",
              "color": "#d62728" if item["value"] >= 150 else "#00aa00"}
        for item in mean
    ]  # fmt: skip
    assert rows == expected
    assert {row["color"] for row in rows} == {"#00aa00", "#d62728", "#aa0000"}
    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["pdf"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    text = "\n".join(page.extract_text() for page in PdfReader(files[0]["path"]).pages)
    assert "device=d3 hot" in text


def test_a_heatmap_panel_is_a_grid_of_cells_on_its_colour_scale_in_the_pdf(plant, editor, viewer):
    """A heatmap panel was drawn as lines: it is a row per series (the first at the bottom, as plotly puts it) and
    a cell per bucket, coloured on plotly.js's scale the panel names (inferno is plotly's "Hot") between the
    panel's min and max, with a colour bar."""
    from plotly.colors import PLOTLY_SCALES, sample_colorscale, unlabel_rgb

    from apps.reporting.renderers.pdf import _section_context

    panel = {
        **_panel("heat", "heatmap", {"min": 0, "max": 500, "color_scheme": "inferno", "unit": "°C"}),
        "queries": [{"ref": "A", "query": {**QUERY, "bucket": "1h"}}],
    }
    _, content = _report_of(plant, editor, viewer, "Heat", [panel])
    section = content.sections[0]
    chart = _svg_of(_section_context(section, content, timezone.get_current_timezone()))
    frame = next(element for element in chart if element.tag.endswith("rect") and element.get("fill") == "none")
    left = float(frame.get("x"))
    right = left + float(frame.get("width"))
    cells = [
        element
        for element in chart
        if element.tag.endswith("rect") and element.get("fill") != "none" and float(element.get("x")) < right
    ]
    values = [value for column in section.chart_values for value in column if value is not None]
    assert len(values) == 12
    assert len(cells) == 12
    expected = sorted(
        tuple(round(part) for part in unlabel_rgb(sample_colorscale(PLOTLY_SCALES["Hot"], [value / 500])[0]))
        for value in values
    )
    drawn = sorted(tuple(int(cell.get("fill")[i : i + 2], 16) for i in (1, 3, 5)) for cell in cells)
    assert all(
        abs(a - b) <= 1 for got, want in zip(drawn, expected, strict=True) for a, b in zip(got, want, strict=True)
    )
    rows = {element.text: float(element.get("y")) for element in chart if element.tag.endswith("text") and element.text}
    names = [column.name for column in section.columns]
    assert rows[names[0]] > rows[names[-1]]  # the first series at the bottom
    assert "500 °C" in rows
    assert "0 °C" in rows


def test_a_state_timeline_panel_is_bands_of_states_in_the_pdf(plant, editor, viewer):
    """A state timeline was drawn as lines: each series is a band of segments, one per run of values in the same
    state (the highest `states` key not above the value), coloured by the state, the last running to the period's
    end, with a legend of the states."""
    from apps.reporting.renderers.pdf import _section_context

    states = {"0": {"label": "Low", "color": "#2ca02c"}, "200": {"label": "High", "color": "#d62728"}}
    panel = {
        **_panel("states", "state_timeline", {"states": states}),
        "queries": [{"ref": "A", "query": {**QUERY, "bucket": "1h"}}],
    }
    _, content = _report_of(plant, editor, viewer, "States", [panel])
    section = content.sections[0]
    chart = _svg_of(_section_context(section, content, timezone.get_current_timezone()))
    frame = next(element for element in chart if element.tag.endswith("rect") and element.get("fill") == "none")
    right = float(frame.get("x")) + float(frame.get("width"))
    bottom = float(frame.get("y")) + float(frame.get("height"))
    segments = [
        element
        for element in chart
        if element.tag.endswith("rect") and element.get("fill") != "none" and float(element.get("y")) < bottom
    ]
    expected = []  # per series, its runs of states, from the hourly values the section holds
    for column in section.chart_values:
        runs = []
        for value in column:
            if value is None:
                continue
            state = "#d62728" if value >= 200 else "#2ca02c"
            if not runs or runs[-1] != state:
                runs.append(state)
        expected.append(runs)
    assert sorted(len(runs) for runs in expected) == [1, 1, 1, 2]  # d1 crosses 200 in its third hour
    by_row: dict[float, list] = {}
    for element in segments:
        by_row.setdefault(float(element.get("y")), []).append(element)
    rows = [sorted(by_row[y], key=lambda element: float(element.get("x"))) for y in sorted(by_row, reverse=True)]
    assert [[element.get("fill") for element in row] for row in rows] == expected  # the first series at the bottom
    for row in rows:
        last = row[-1]
        assert float(last.get("x")) + float(last.get("width")) == pytest.approx(right, abs=0.05)  # to the end
    legend = [element.text for element in chart if element.tag.endswith("text") and element.text in ("Low", "High")]
    assert sorted(legend) == ["High", "Low"]


def _excel_condition_holds(formula: str, value: float) -> bool:
    """A state rule's formula as _state_conditions writes it (AND(ISNUMBER(B2),B2>=x,B2<y)) evaluated for B2 = value."""
    import operator
    import re

    assert formula.startswith("AND(ISNUMBER(B2),")
    assert formula.endswith(")")
    operators = {">=": operator.ge, "<=": operator.le, "<": operator.lt, ">": operator.gt, "=": operator.eq}
    for part in formula[len("AND(ISNUMBER(B2),") : -1].split(","):
        match = re.fullmatch(r"B2(>=|<=|<|>|=)(-?[0-9.eE+-]+)", part)
        assert match, part
        if not operators[match.group(1)](value, float(match.group(2))):
            return False
    return True


def test_xlsx_heatmap_and_state_timeline_sheets_colour_their_cells_as_the_page_colours_the_panel(
    plant, editor, viewer, tmp_path
):
    """Excel has no heatmap or state timeline chart: their data sheets had a line chart. Their cells are now
    coloured with conditional formatting: the heatmap on plotly.js's scale between the panel's min and max (Excel's
    three stops: the scale's ends and middle), the state timeline by the same state rule as the PDF's bands."""
    from plotly.colors import PLOTLY_SCALES, sample_colorscale, unlabel_rgb

    from apps.reporting.charts import state_of

    states = {"0": {"label": "Low", "color": "#2ca02c"}, "150": {"label": "Mid", "color": "orange"},
              "300": {"label": "High", "color": "#d62728"}}  # fmt: skip
    panels = [
        {**_panel("heat", "heatmap", {"min": 0, "max": 500, "color_scheme": "inferno"}),
         "queries": [{"ref": "A", "query": {**QUERY, "bucket": "1h"}}]},
        {**_panel("states", "state_timeline", {"states": states}),
         "queries": [{"ref": "A", "query": {**QUERY, "bucket": "1h"}}]},
    ]  # fmt: skip
    report, content = _report_of(plant, editor, viewer, "Grids", panels)
    files = report_files_render(report=report, content=content, directory=tmp_path, formats=["xlsx"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    workbook = load_workbook(files[0]["path"])
    heat, timeline = workbook["Panel heat"], workbook["Panel states"]
    assert not heat._charts
    assert not timeline._charts  # openpyxl does not read charts back: checked in the archive below

    (heat_range,) = list(heat.conditional_formatting)
    assert str(heat_range.sqref) == f"B2:{heat.cell(1, heat.max_column).column_letter}{heat.max_row}"
    (scale,) = heat_range.rules
    assert [(item.type, float(item.val)) for item in scale.colorScale.cfvo] == [("num", 0), ("num", 250),
                                                                                ("num", 500)]  # fmt: skip
    expected = [
        "FF" + "".join(f"{round(part):02X}" for part in unlabel_rgb(color))
        for color in sample_colorscale(PLOTLY_SCALES["Hot"], [0.0, 0.5, 1.0])
    ]
    assert [color.rgb for color in scale.colorScale.color] == expected

    (state_range,) = list(timeline.conditional_formatting)
    rules = sorted(state_range.rules, key=lambda rule: rule.priority)
    values = [timeline.cell(row, column).value for row in range(2, timeline.max_row + 1)
              for column in range(2, timeline.max_column + 1)]  # fmt: skip
    values = [value for value in values if value is not None]
    assert len(values) == 12
    seen = set()
    for value in values:
        matched = [rule for rule in rules if _excel_condition_holds(rule.formula[0], value)]
        assert matched, value
        first = matched[0]
        assert first.stopIfTrue
        _, color = state_of(value, {"states": states})
        fill = first.dxf.fill.fgColor.rgb
        seen.add(fill)
        assert fill == {"#2ca02c": "FF2CA02C", "orange": "FFFFA500", "#d62728": "FFD62728"}[color]
    assert len(seen) >= 2  # the fixture's values reach more than one state
    import zipfile

    with zipfile.ZipFile(files[0]["path"]) as archive:
        assert not [name for name in archive.namelist() if name.startswith("xl/charts/")]


def test_xlsx_state_rules_from_value_mappings_match_the_first_mapping_as_the_page_does():
    from apps.reporting.charts import PALETTE, mapped_value
    from apps.reporting.renderers.spreadsheets import _state_conditions

    mappings = [{"type": "value", "value": 1, "text": "On", "color": "#00aa00"},
                {"type": "range", "from": 0, "to": 10, "text": "Low"},
                {"type": "range", "from": 10, "text": "High", "color": "red"}]  # fmt: skip
    conditions = _state_conditions({"value_mappings": mappings})
    assert conditions == [("B2=1", "#00aa00"), ("B2>=0,B2<=10", PALETTE[1]), ("B2>=10", "red")]
    for value in (1, 0, 5, 10, 12.5):
        first = next(color for condition, color in conditions
                     if _excel_condition_holds(f"AND(ISNUMBER(B2),{condition})", value))  # fmt: skip
        mapping = mapped_value(value, mappings)
        assert first == (mapping.get("color") or PALETTE[mappings.index(mapping)])
    assert _state_conditions({}) == []


def test_pdf_time_ticks_sit_at_round_times_and_their_labels_never_overlap():
    """Time labels were six evenly spaced instants, the first and last anchored at the ends: on a heatmap's narrower
    plot over 7 days they ran into each other ("30 Nov 16:3002 Dec 02:06"). Ticks are now at round times in the
    report's zone (local midnights for days), as many as fit, each label centred on its tick."""
    import itertools
    import re
    from datetime import datetime, timedelta
    from zoneinfo import ZoneInfo

    from apps.reporting.charts import ChartSeries, heatmap_svg, line_chart_svg

    zone = ZoneInfo("Europe/Berlin")
    for days, width in ((7, 720), (7, 360), (0.25, 720), (31, 720), (2, 720), (90 / 86_400, 720)):
        start = datetime(2026, 3, 26, 16, 42, tzinfo=zone)  # across the change to summer time on 29 March
        count = 200
        times = [start + timedelta(days=days) * index / (count - 1) for index in range(count)]
        series = [
            ChartSeries(f"s{number}", [float(index % 7 + number) for index in range(count)]) for number in range(3)
        ]
        for svg in (line_chart_svg(times=times, series=series, zone=zone, width=width),
                    heatmap_svg(times=times, series=series, zone=zone, width=width)):  # fmt: skip
            labels = [(float(x), text) for x, text in re.findall(r'<text x="([0-9.]+)" y="[0-9.]+" '
                      r'text-anchor="middle" fill="#444">([^<]+)</text>', svg)]  # fmt: skip
            assert len(labels) >= (3 if width == 720 else 1), (days, width)
            spans = sorted((x - 3.1 * len(text), x + 3.1 * len(text)) for x, text in labels)
            assert all(left[1] <= right[0] for left, right in itertools.pairwise(spans)), (days, width, labels)
            assert spans[0][0] >= 0
            assert spans[-1][1] <= width
            label_format = (
                "%d %b" if days > 2 else "%d %b %H:%M" if days > 1 else "%H:%M" if days > 0.01 else "%H:%M:%S"
            )
            moments = [datetime.strptime(text, label_format) for _, text in labels]
            if days > 2:  # whole local days (midnights), not instants a fifth of the range apart
                assert all(moment.hour == 0 and moment.minute == 0 for moment in moments)
            elif days > 0.01:
                assert all(moment.minute % 5 == 0 for moment in moments)
            else:  # 90 seconds: whole seconds a round number apart
                assert all(moment.second % 5 == 0 for moment in moments)
