"""Stat, gauge and bar gauge panels in a report: the numbers the dashboard shows, as the query API reduces them."""

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
    reduced = [row for row in rows[heading + 1 :] if row[0].value]
    assert [(row[0].value, row[1].value, row[2].value, row[4].value) for row in reduced] == [
        ("Panel hottest", "temperature", "°C", "Max, max of series"),
        ("Panel typical", "temperature", None, "Last (not null), mean of series"),  # no unit: an empty cell
        *(("Panel each", f"device={item['labels']['device']}", "°C", "Mean, per series") for item in each),
    ]
    assert [row[3].value for row in reduced] == [hottest[0]["value"], typical[0]["value"],
                                                 *(item["value"] for item in each)]  # fmt: skip
    assert [row[3].number_format for row in reduced] == ['#,##0.000" °C"', "#,##0.0", *['#,##0.00" °C"'] * len(each)]
