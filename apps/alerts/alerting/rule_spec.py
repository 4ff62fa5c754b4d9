"""A rule as the API takes it, validated into the AlertRule fields (errors name the offending field).

    {"name": "Hot press", "query": {"source": "plant", "metric": "temperature", "aggregation": "last",
     "group_by": ["device"]}, "condition": {"type": "threshold", "op": ">", "value": 90}, "for": "0s",
     "contact_points": [1], "group_wait": "0s"}

`query` is one query engine spec (ref A); `queries` ([{"ref": "A", "query": {...}}, ...]) several, combined by
`expression`. The query's `aggregation` is the reduction over `window` unless `reduction` is given, and its
`group_by` the rule's (one alert instance per label set). Times (`start`, `end`) are the rule's window, not the
query's.
"""

from __future__ import annotations

import re
from datetime import UTC, datetime
from typing import Any

from analytics_platform.field_errors import FieldError
from apps.alerts.alerting.conditions import ConditionError, condition_parse
from apps.alerts.alerting.expressions import ExpressionError, expression_parse
from apps.alerts.alerting.reductions import reduction_name
from apps.alerts.alerting.templating import TemplateError, template_check
from apps.storage.query.spec import QuerySpecError, query_spec_parse

_DURATION = re.compile(r"^\s*(\d+)\s*(ms|s|m|h|d|w)?\s*$")
_UNITS = {"ms": 0.001, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800, None: 1}
_REF = re.compile(r"^[A-Z]$")
MAX_QUERIES = 10
MAX_WINDOW_SECONDS = 7 * 86400
QUERY_KEYS = ("source", "metric", "filters", "limit")
# Fields given as durations ("30s", "2m"): the API name, the model field, the default, whether None is allowed.
DURATIONS = (
    ("window", "window_seconds", 300, False),
    ("for", "for_seconds", 0, False),
    ("keep_firing_for", "keep_firing_seconds", 0, False),
    ("no_data_for", "no_data_seconds", None, True),
    ("interval", "interval_seconds", 60, False),
    ("group_wait", "group_wait_seconds", 0, False),
    ("group_interval", "group_interval_seconds", 60, False),
    ("repeat_interval", "repeat_interval_seconds", 4 * 3600, False),
)


class RuleError(FieldError):
    """A rule the API refuses; `field` names the offending input."""


def duration_seconds(raw: Any, *, field: str) -> int:
    """'90s', '2m', '1h', '0s' or a number of seconds, as whole seconds."""
    if isinstance(raw, bool):
        raise RuleError(field, "a duration such as '30s', '2m' or '1h'.")
    if isinstance(raw, int | float):
        seconds = float(raw)
    else:
        match = _DURATION.match(raw) if isinstance(raw, str) else None
        if match is None:
            raise RuleError(field, "a duration such as '30s', '2m' or '1h'.")
        seconds = int(match.group(1)) * _UNITS[match.group(2)]
    if seconds < 0 or seconds > 365 * 86400:
        raise RuleError(field, "between 0s and 365d.")
    return round(seconds)


def _queries(data: dict) -> tuple[list[dict], str | None, list[str] | None]:
    """The queries as [{"ref", "query"}], and the reduction and group-by the (first) query names."""
    if "query" in data and "queries" in data:
        raise RuleError("queries", "send either query or queries, not both.")
    if "query" in data:
        raw = [{"ref": "A", "query": data["query"]}]
        field_of = {0: "query"}
    else:
        raw = data.get("queries")
        if not isinstance(raw, list) or not raw:
            raise RuleError("query", "required: a query engine spec (or queries: a list of {ref, query}).")
        field_of = {index: f"queries[{index}].query" for index in range(len(raw))}
    if len(raw) > MAX_QUERIES:
        raise RuleError("queries", f"at most {MAX_QUERIES} queries.")
    queries, reduction, group_by, refs = [], None, None, set()
    for index, item in enumerate(raw):
        field = field_of[index]
        if not isinstance(item, dict) or not isinstance(item.get("query"), dict):
            raise RuleError(field, "a query engine spec object.")
        ref = item.get("ref", "A")
        if not isinstance(ref, str) or not _REF.match(ref) or ref in refs:
            raise RuleError(field.replace(".query", ".ref"), "a distinct capital letter A-Z.")
        refs.add(ref)
        query = item["query"]
        checked = {key: query[key] for key in QUERY_KEYS if key in query}
        unknown = sorted(set(query) - {*QUERY_KEYS, "aggregation", "group_by", "start", "end", "bucket", "fill"})
        if unknown:
            raise RuleError(f"{field}.{unknown[0]}", "unknown field for an alert query.")
        try:
            query_spec_parse({**checked, "aggregation": "raw"})
            if query.get("group_by") is not None:
                query_spec_parse({**checked, "aggregation": "avg", "group_by": query["group_by"]})
        except QuerySpecError as error:
            raise RuleError(f"{field}.{error.field}", error.message) from None
        if index == 0:
            aggregation = query.get("aggregation")
            reduction = None if aggregation in (None, "raw") else aggregation
            group_by = query.get("group_by")
        queries.append({"ref": ref, "query": checked})
    return queries, reduction, group_by


def rule_fields_clean(data: Any, *, partial: bool = False) -> dict[str, Any]:
    """Validate an API rule body into model field values (only the keys present when `partial`)."""
    if not isinstance(data, dict):
        raise RuleError("body", "send a JSON object.")
    fields: dict[str, Any] = {}
    if "name" in data or not partial:
        name = data.get("name")
        if not isinstance(name, str) or not name.strip() or len(name) > 200:
            raise RuleError("name", "required: 1 to 200 characters.")
        fields["name"] = name.strip()
    query_reduction, query_group_by = None, None
    if "query" in data or "queries" in data or not partial:
        fields["queries"], query_reduction, query_group_by = _queries(data)
    refs = {item["ref"] for item in fields.get("queries", [])}
    group_by = data.get("group_by", query_group_by)
    if group_by is not None or not partial:
        group_by = group_by or []
        if not isinstance(group_by, list) or not all(isinstance(label, str) and label for label in group_by):
            raise RuleError("group_by", 'a list of label names, e.g. ["device"].')
        fields["group_by"] = list(dict.fromkeys(group_by))
    reduction = data.get("reduction", query_reduction)
    if reduction is not None or not partial:
        try:
            fields["reduction"] = reduction_name(reduction or "last")
        except ValueError as error:
            raise RuleError("reduction" if "reduction" in data else "query.aggregation", str(error)) from None
    if "expression" in data:
        expression = data["expression"] or ""
        if expression:
            try:
                expression_parse(expression, refs=refs or {"A"})
            except ExpressionError as error:
                raise RuleError("expression", str(error)) from None
        fields["expression"] = expression
    elif not partial and len(refs) > 1:
        raise RuleError("expression", "several queries need an expression that combines them, e.g. 'A / B * 100'.")
    if "condition" in data or not partial:
        try:
            condition_parse(data.get("condition"))
        except ConditionError as error:
            raise RuleError(error.field, error.message) from None
        fields["condition"] = data["condition"]
    for api_name, field_name, default, nullable in DURATIONS:
        if api_name in data:
            raw = data[api_name]
            fields[field_name] = None if raw is None and nullable else duration_seconds(raw, field=api_name)
        elif not partial:
            fields[field_name] = default
    if fields.get("window_seconds") is not None and not 1 <= fields["window_seconds"] <= MAX_WINDOW_SECONDS:
        raise RuleError("window", "between 1s and 7d.")
    if fields.get("interval_seconds") is not None and fields["interval_seconds"] < 1:
        raise RuleError("interval", "at least 1s.")
    for key in ("labels", "annotations"):
        if key in data:
            value = data[key] or {}
            if not isinstance(value, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in value.items()
            ):
                raise RuleError(key, "an object of text values.")
            if key == "annotations":
                for name, text in value.items():
                    try:
                        template_check(text)
                    except TemplateError as error:
                        raise RuleError(f"annotations.{name}", str(error)) from None
            fields[key] = value
    if "severity" in data:
        fields["severity"] = data["severity"]
    if "enabled" in data:
        if not isinstance(data["enabled"], bool):
            raise RuleError("enabled", "true or false.")
        fields["enabled"] = data["enabled"]
    return fields


def iso(moment: datetime) -> str:
    """A time as ISO 8601 in UTC with a Z."""
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
