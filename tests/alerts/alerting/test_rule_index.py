"""The change evaluator's index decides from one point whether an evaluation is needed now, later, or not at all."""

from __future__ import annotations

import pytest

from apps.alerts.alerting.conditions import condition_parse
from apps.alerts.alerting.rule_index import IndexedRule
from apps.storage.query.spec import query_spec_parse


@pytest.mark.parametrize(
    ("state", "value", "decision"),
    [
        ("normal", 50, ""), ("normal", 95, "now"),
        ("firing", 95, ""), ("firing", 88, ""), ("firing", 80, "now"),  # recovery threshold 85
        ("pending", 95, "later"), ("pending", 50, "now"),
        ("recovering", 80, "later"), ("recovering", 95, "now"),
        ("nodata", 50, "now"), ("error", 50, "now"),
    ],
)  # fmt: skip
def test_one_point_decides_when_to_evaluate(state, value, decision):
    rule = IndexedRule(1, ("device",), condition_parse({"type": "above", "value": 90, "recovery": 85}), True)
    rule.states["fp"] = state
    assert rule.decide("fp", value) == decision
    assert IndexedRule(2, (), rule.condition, True).decide("unknown", value) == ("now" if value > 90 else "")


def test_label_filters_select_series_as_the_engine_would():
    filters = query_spec_parse(
        {"metric": "t", "filters": {"device": {"regex": "^press-"}, "facility": ["f1", "f2"], "line": {"ne": "x"}}}
    ).filters
    rule = IndexedRule(1, (), condition_parse({"type": "above", "value": 1}), True, filters)
    assert rule.selects({"device": "press-7", "facility": "f1"})
    assert rule.selects({"device": "press-7", "facility": "f2", "line": "y"})
    assert not rule.selects({"device": "oven-1", "facility": "f1"})
    assert not rule.selects({"device": "press-7", "facility": "f3"})
    assert not rule.selects({"device": "press-7", "facility": "f1", "line": "x"})
