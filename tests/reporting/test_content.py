"""Which dashboard panels become report sections."""

from __future__ import annotations

from apps.reporting.content import sections_define


def test_an_alert_list_panel_is_left_out_of_reports():
    """An alert list shows the alerts of the moment, not data over the report's period: no section."""
    query = {"ref": "A", "query": {"metric": "temperature", "aggregation": "avg"}}
    document = {
        "panels": [
            {"key": "notes", "type": "text", "options": {"markdown": "hi"}},
            {"key": "alerts", "type": "alertlist", "options": {"alert_states": ["firing"]}, "queries": []},
            {"key": "temps", "type": "timeseries", "options": {}, "queries": [query]},
        ]
    }
    sections = sections_define(dashboard_document=document, panel_keys=[], queries=[])
    assert [(section.key, section.kind) for section in sections] == [("notes", "text"), ("temps", "chart")]
