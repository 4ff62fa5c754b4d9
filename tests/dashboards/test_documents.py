"""The dashboard document: canonical form, validation errors that name the JSON path, markdown without HTML."""

from __future__ import annotations

import copy
import re

import pytest

from apps.dashboards.demo import demo_documents
from apps.dashboards.documents import (
    MAX_PANELS,
    DashboardDocumentError,
    dashboard_document_clean,
    markdown_html_strip,
)
from tests.dashboards.factories import dashboard_document, panel_document


def test_a_canonical_document_comes_back_unchanged():
    document = dashboard_document(panels=3)
    assert dashboard_document_clean(document) == document


def test_missing_fields_get_defaults():
    cleaned = dashboard_document_clean(
        {"title": " Minimal ", "panels": [{"key": "a", "type": "text", "options": {"markdown": "hi"}}]}
    )
    assert cleaned == {
        "schema_version": 1,
        "title": "Minimal",
        "folder": "",
        "tags": [],
        "variables": [],
        "time_range": {"start": "-6h", "end": "now"},
        "refresh": "live",
        "panels": [
            {"key": "a", "title": "", "type": "text", "queries": [], "options": {"markdown": "hi"},
             "grid": {"x": 0, "y": 0, "w": 6, "h": 8}},
        ],
    }  # fmt: skip


def _set(path: list, value):
    def change(document: dict) -> None:
        target = document
        for step in path[:-1]:
            target = target[step]
        target[path[-1]] = value

    return change


def _panel_query(index: int, **spec_changes):
    def change(document: dict) -> None:
        document["panels"][index]["queries"][0]["query"].update(spec_changes)

    return change


def _options(index: int, **changes):
    def change(document: dict) -> None:
        document["panels"][index]["options"].update(changes)

    return change


@pytest.mark.parametrize(
    ("change", "field", "words"),
    [
        (_set(["title"], ""), "title", "required"),
        (_set(["colour"], "red"), "colour", "unknown field"),
        (_set(["schema_version"], 2), "schema_version", "schema version 1"),
        (_set(["refresh"], "2s"), "refresh", "live"),
        (_set(["tags"], "factory"), "tags", "list"),
        (_set(["time_range"], {"start": "-1h", "end": "-2h"}), "time_range.end", "after start"),
        (_set(["time_range"], {"start": "yesterday"}), "time_range.start", "not a time"),
        (_set(["variables", 0, "name"], "1st"), "variables[0].name", "letters"),
        (_set(["variables", 0, "label_key"], None), "variables[0].label_key", "required"),
        (_set(["panels", 1, "key"], "p1"), "panels[1].key", "used by another panel"),
        (_set(["panels", 1, "type"], "sankey"), "panels[1].type", "timeseries"),
        (_set(["panels", 1, "grid"], {"x": 8, "y": 0, "w": 6, "h": 4}), "panels[1].grid.w", "12 columns"),
        (_set(["panels", 1, "grid"], {"x": 0, "y": 0, "w": 0, "h": 4}), "panels[1].grid.w", "from 1"),
        (_set(["panels", 1, "grid"], {"x": 0, "y": 0, "w": 4, "h": 0}), "panels[1].grid.h", "from 1"),
        (_set(["panels", 1, "grid"], {"x": 0, "y": 0, "w": 4}), "panels[1].grid.h", "required"),
        (_panel_query(1, bucket="fortnight"), "panels[1].queries[0].query.bucket", "not a duration"),
        (_panel_query(1, bucket="1s", exact_bucket=True), "panels[1].queries[0].query.bucket", "points per series"),
        (_panel_query(1, aggregation="median"), "panels[1].queries[0].query.aggregation", "unknown aggregation"),
        (_panel_query(1, metric=""), "panels[1].queries[0].query.metric", "required"),
        (_panel_query(1, filters={"facility": "$plant"}), "panels[1].queries[0].query.filters.facility",
         "$plant is not a declared variable"),
        (_panel_query(1, filters={"facility": {"in": ["f1", "$nope"]}}), "panels[1].queries[0].query.filters.facility",
         "not a declared variable"),
        (_set(["panels", 1, "queries", 0, "axis"], "top"), "panels[1].queries[0].axis", "left, right"),
        (_set(["panels", 1, "queries", 0, "query"], "temperature"), "panels[1].queries[0].query", "required"),
        (_set(["panels", 1, "options", "style"], "dots"), "panels[1].options.style", "lines"),
        (_set(["panels", 1, "options", "decimals"], 1.5), "panels[1].options.decimals", "whole number"),
        (_set(["panels", 1, "options", "thresholds"], [{"value": 90, "color": "red"}, {"value": 80, "color": "x"}]),
         "panels[1].options.thresholds", "lowest value up"),
        (_set(["panels", 1, "options", "thresholds"], [{"value": 80, "color": "red;background:url(x)"}]),
         "panels[1].options.thresholds[0].color", "colour"),
        (_set(["panels", 1, "options", "states"], {"down": {"label": "down", "color": "red"}}),
         "panels[1].options.states.down", "numbers"),
        (_set(["panels", 1, "type"], "text"), "panels[1].queries", "text panels take no queries"),
        (_set(["panels", 1, "options", "calculation"], "median"), "panels[1].options.calculation", "last_not_null"),
        (_set(["panels", 1, "options", "combination"], "avg"), "panels[1].options.combination", "mean"),
        (_set(["panels", 1, "options", "legend_mode"], "grid"), "panels[1].options.legend_mode", "list, table"),
        (_set(["panels", 1, "options", "legend_values"], ["p99"]), "panels[1].options.legend_values", "last"),
        (_set(["panels", 1, "options", "table_mode"], "pivot"), "panels[1].options.table_mode", "join"),
        (_set(["panels", 1, "options", "decimals_right"], -1), "panels[1].options.decimals_right", "from 0"),
        (_options(1, min_right=5, max_right=5), "panels[1].options.max_right", "must be above min_right"),
        (_set(["panels", 1, "options", "buckets"], 0), "panels[1].options.buckets", "from 1"),
        (_set(["panels", 1, "options", "value_mappings"], [{"type": "value", "text": "on"}]),
         "panels[1].options.value_mappings[0].value", "required"),
        (_set(["panels", 1, "options", "value_mappings"], [{"type": "set", "value": 1}]),
         "panels[1].options.value_mappings[0].type", "value or range"),
        (_set(["panels", 1, "options", "value_mappings"], [{"type": "range", "from": 0, "to": 1, "color": "a;b"}]),
         "panels[1].options.value_mappings[0].color", "colour"),
        (_set(["panels", 1, "options", "overrides"], [{"color": "red"}]), "panels[1].options.overrides[0].match",
         "required"),
        (_set(["panels", 1, "options", "overrides"], [{"match": "A", "axis": "top"}]),
         "panels[1].options.overrides[0].axis", "left, right"),
        (_set(["panels", 1, "queries", 0, "unit"], 5), "panels[1].queries[0].unit", "text"),
    ],
)  # fmt: skip
def test_errors_name_the_json_path(change, field, words):
    document = copy.deepcopy(dashboard_document(panels=2))
    change(document)
    with pytest.raises(DashboardDocumentError) as caught:
        dashboard_document_clean(document)
    assert caught.value.field == field
    assert words in caught.value.message
    assert str(caught.value).startswith(f"{field}: ")


def test_limits_on_panels_and_queries():
    too_many = dashboard_document(panels=0)
    too_many["panels"] = [panel_document(key=f"p{index}", y=index) for index in range(MAX_PANELS + 1)]
    with pytest.raises(DashboardDocumentError) as caught:
        dashboard_document_clean(too_many)
    assert caught.value.field == "panels"
    assert dashboard_document_clean({**too_many, "panels": too_many["panels"][:MAX_PANELS]})

    panel = panel_document()
    panel["queries"] = [{**panel["queries"][0], "ref": f"Q{index}"} for index in range(11)]
    with pytest.raises(DashboardDocumentError) as caught:
        dashboard_document_clean({**dashboard_document(panels=0), "panels": [panel]})
    assert (caught.value.field, "at most 10" in caught.value.message) == ("panels[0].queries", True)


def test_variables_may_stand_for_filter_values_but_regexes_are_left_alone():
    panel = panel_document()
    panel["queries"][0]["query"]["filters"] = {
        "facility": {"in": ["$facility", "f9"]},
        "device": {"regex": "^press-0+1$"},
    }
    cleaned = dashboard_document_clean({**dashboard_document(panels=0), "panels": [panel]})
    # Stored as written: substitution happens only while validating.
    assert cleaned["panels"][0]["queries"][0]["query"]["filters"]["facility"] == {"in": ["$facility", "f9"]}


def test_single_value_variable_defaults_become_a_list_and_multi_is_checked():
    document = dashboard_document(panels=0)
    document["variables"][0].update(multi=False, default="f2")
    assert dashboard_document_clean(document)["variables"][0]["default"] == ["f2"]
    document["variables"][0]["default"] = ["f1", "f2"]
    with pytest.raises(DashboardDocumentError) as caught:
        dashboard_document_clean(document)
    assert caught.value.field == "variables[0].default"


def test_text_panels_store_markdown_without_raw_html():
    markdown = (
        "# Notes\n<script>alert(1)</script>Shift **A** <b>bold</b> <img src=x onerror=alert(1)>\n"
        "<!-- hidden -->3 < 4 and <https://example.com>\n```html\n<div>kept as code</div>\n```\n`<i>inline</i>`"
    )
    panel = {
        "key": "notes",
        "type": "text",
        "options": {"markdown": markdown},
        "grid": {"x": 0, "y": 0, "w": 4, "h": 4},
    }
    cleaned = dashboard_document_clean({"title": "T", "panels": [panel]})["panels"][0]["options"]["markdown"]
    assert cleaned == (
        "# Notes\nShift **A** bold \n3 < 4 and <https://example.com>\n```html\n<div>kept as code</div>\n```\n"
        "`<i>inline</i>`"
    )


@pytest.mark.parametrize(
    ("markdown", "expected"),
    [
        ("<scr<script>x</script>ipt>alert(1)</script>", "alert(1)"),
        ("<<b>iframe src=javascript:alert(1)>", ""),
        ('<a href="javascript:alert(1)">x</a>', "x"),
        ("plain text", "plain text"),
    ],
)
def test_html_that_reassembles_after_stripping_is_stripped_again(markdown, expected):
    assert markdown_html_strip(markdown) == expected


def test_the_demo_documents_are_valid_and_canonical():
    for document in demo_documents():
        cleaned = dashboard_document_clean(document)
        assert dashboard_document_clean(cleaned) == cleaned
        assert len(cleaned["panels"]) >= 8


def test_new_panel_types_and_options_are_kept():
    document = dashboard_document(panels=1)
    panel = document["panels"][0]
    panel["queries"][0]["unit"] = "°C"
    panel["queries"][0]["legend"] = "{facility}"
    panel["options"] = {
        "calculation": "delta",
        "combination": "none",
        "legend": True,
        "legend_mode": "table",
        "legend_placement": "right",
        "legend_values": ["last", "max"],
        "value_mappings": [{"type": "value", "value": 0, "text": "off"},
                           {"type": "range", "from": 90, "to": None, "text": "hot", "color": "#c4162a"}],
        "overrides": [{"match": "f1", "color": "#3274d9", "axis": "right", "style": "bars", "hide": False}],
        "unit_right": "bar", "decimals_right": 1, "min_right": 0, "max_right": 10, "threshold_lines": True,
    }  # fmt: skip
    for panel_type in ("bargauge", "histogram", "xy"):
        panel["type"] = panel_type
        assert dashboard_document_clean(document) == document


def test_an_alert_list_panel_takes_states_and_a_limit_but_no_queries():
    panel = {"key": "a", "type": "alertlist", "options": {"alert_states": ["firing", "pending"], "alert_limit": 20}}
    cleaned = dashboard_document_clean({"title": "Alerts", "panels": [panel]})
    assert cleaned["panels"][0]["options"] == {"alert_states": ["firing", "pending"], "alert_limit": 20}
    for bad, path in (
        ({"options": {"alert_states": ["burning"]}}, "panels[0].options.alert_states"),
        ({"options": {"alert_limit": 1000}}, "panels[0].options.alert_limit"),
        ({"queries": [{"ref": "A", "query": {"metric": "temperature"}}]}, "panels[0].queries"),
    ):
        with pytest.raises(DashboardDocumentError) as refused:
            dashboard_document_clean({"title": "Alerts", "panels": [{**panel, **bad}]})
        assert refused.value.field == path


def test_the_totals_of_each_demo_dashboard_share_one_bucket():
    # The server floors a range's start to the bucket, so totals over different buckets disagree on one dashboard.
    for document in demo_documents():
        buckets = {
            item["query"]["bucket"]
            for panel in document["panels"]
            if panel["options"].get("calculation") == "sum"
            for item in panel["queries"]
        }
        assert len(buckets) <= 1, (document["title"], buckets)


def test_no_demo_panel_title_names_a_period_the_time_picker_may_change():
    # "Invoiced, 30 days" read 35,291,142 at "Last 7 days": the panels answer the picker's range.
    titles = [panel["title"] for document in demo_documents() for panel in document["panels"]]
    assert not [title for title in titles if re.search(r"\d+\s*(days?|hours?|minutes?)\b", title)]
