"""Expressions are parsed and computed without eval; templates look up plain dictionaries only."""

from __future__ import annotations

import pytest

from apps.alerts.alerting.conditions import ConditionError, condition_parse
from apps.alerts.alerting.expressions import ExpressionError, expression_compute, expression_parse
from apps.alerts.alerting.templating import TemplateError, template_check, template_render


@pytest.mark.parametrize(
    ("text", "values", "expected"),
    [
        ("A / B * 100", {"A": 45.0, "B": 50.0}, 90.0),
        ("-(A - B) ** 2", {"A": 1.0, "B": 3.0}, -4.0),
        ("max(A, B) + abs(-2)", {"A": 1.0, "B": 3.0}, 5.0),
        ("A / B", {"A": 1.0, "B": 0.0}, None),
        ("A + B", {"A": 1.0, "B": None}, None),
    ],
)
def test_expressions_compute(text, values, expected):
    assert expression_compute(expression_parse(text, refs={"A", "B"}), values) == expected


@pytest.mark.parametrize(
    "text",
    ["__import__('os').system('id')", "A.__class__", "A[0]", "[A]", "lambda: 1", "A if B else 1", "C + 1",
     "'text'", "A < B", "open('/etc/passwd')", "A ** 1000", ""],
)  # fmt: skip
def test_anything_else_is_refused_or_has_no_value(text):
    try:
        tree = expression_parse(text, refs={"A", "B"})
    except ExpressionError:
        return
    assert expression_compute(tree, {"A": 10.0, "B": 2.0}) is None  # A ** 1000: too large, no value


def test_templates_read_dictionaries_only():
    context = {"labels": {"device": "press-7"}, "value": 91.234, "values": {"A": 1.5}, "rule": "Hot"}
    assert template_render("{{ labels.device | upper }} at {{ value | round(1) }}", context) == "PRESS-7 at 91.2"
    assert template_render("{{ values.A }} {{ missing.thing }}|{{ labels }}", context) == "1.5 |"
    assert template_render("{{ value.__class__ }}{{ rule.__len__ }}", context) == ""
    with pytest.raises(TemplateError):
        template_check("{{ value | eval }}")


def test_conditions_with_recovery_thresholds():
    above = condition_parse({"type": "threshold", "op": ">", "value": 90, "recovery": 85})
    assert above.breaching(91, firing=False)
    assert not above.breaching(89, firing=False)
    assert above.breaching(86, firing=True)  # still firing until it recovers below 85
    assert not above.breaching(84, firing=True)
    outside = condition_parse({"type": "outside", "min": 10, "max": 90, "recovery_min": 15, "recovery_max": 85})
    assert outside.breaching(95, firing=False)
    assert outside.breaching(88, firing=True)
    assert not outside.breaching(50, firing=True)
    inside = condition_parse({"type": "inside", "min": 40, "max": 60})
    assert inside.breaching(50, firing=False)
    assert not inside.breaching(61, firing=False)
    anomaly = condition_parse({"type": "anomaly", "level": 0.9, "points": 3})
    assert anomaly.breaching(0.95, firing=False)
    with pytest.raises(ConditionError, match=r"condition\.max"):
        condition_parse({"type": "inside", "min": 60, "max": 40})
