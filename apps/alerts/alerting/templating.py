"""Annotation templates: `{{ labels.device }}`, `{{ value }}`, `{{ values.A | round(1) }}`, `{{ rule }}`.

Deliberately small and safe: a placeholder is a dotted path looked up in plain dictionaries (labels, values,
value, rule, severity, state), never an attribute of an object, and the only filters are round(n), upper, lower.
An unknown name renders as an empty string (a template must never stop a notification).
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

_PLACEHOLDER = re.compile(
    r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*(?:\.[A-Za-z0-9_\-]+)*)\s*(?:\|\s*([a-z]+)(?:\((\d)\))?\s*)?\}\}"
)
MAX_TEMPLATE_LENGTH = 2_000
FILTERS = ("round", "upper", "lower")


def value_text(value: float | None) -> str:
    """A value as notifications and the alert pages write it: six significant digits (`78.1234`, `0.000123`,
    `1.23457e+06`), whole numbers without a decimal point; an en dash for none."""
    if value is None:
        return "\u2013"
    return f"{value:g}"


class TemplateError(ValueError):
    """A template that refers to a filter that does not exist, or is too long."""


def template_check(text: str) -> None:
    """Refuse templates with unknown filters or beyond the length limit."""
    if len(text) > MAX_TEMPLATE_LENGTH:
        raise TemplateError(f"at most {MAX_TEMPLATE_LENGTH} characters.")
    for match in _PLACEHOLDER.finditer(text):
        if match.group(2) and match.group(2) not in FILTERS:
            raise TemplateError(f"unknown filter {match.group(2)!r}; use one of {', '.join(FILTERS)}.")


def template_render(text: str, context: Mapping[str, Any]) -> str:
    """`text` with each placeholder replaced from `context` (dictionaries, strings and numbers only)."""

    def replace(match: re.Match) -> str:
        value: Any = context
        for part in match.group(1).split("."):
            value = value.get(part) if isinstance(value, Mapping) else None
            if value is None:
                return ""
        if isinstance(value, Mapping | list):
            return ""
        name, digits = match.group(2), match.group(3)
        if name == "round" and isinstance(value, int | float):
            return f"{value:.{int(digits or 0)}f}"
        if name == "upper":
            return str(value).upper()
        if name == "lower":
            return str(value).lower()
        if isinstance(value, float):
            return value_text(value)
        return str(value)

    return _PLACEHOLDER.sub(replace, text)
