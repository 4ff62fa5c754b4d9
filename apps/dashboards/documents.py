"""The dashboard document: the JSON a dashboard is exported as, imported from and saved with, and its validation.

A document (schema_version 1)::

    {
      "schema_version": 1,
      "title": "Factory floor",
      "folder": "Operations",
      "tags": ["factory"],
      "variables": [{"name": "facility", "label": "Facility", "source": "demo-factory", "metric": "temperature",
                     "label_key": "facility", "multi": true, "default": ["f1"]}],
      "time_range": {"start": "-6h", "end": "now"},
      "refresh": "live",                      # live, off, 5s, 10s, 30s, 1m, 5m
      "panels": [{
        "key": "p1",                          # the builder's stable id, unique in the dashboard
        "title": "Temperature by device",
        "type": "timeseries",                 # timeseries stat gauge bargauge bar pie table heatmap histogram xy
                                              # state_timeline text
        "queries": [{"ref": "A", "axis": "left",  "legend": "optional text",
                     "query": {<a query spec as POST /api/v1/query takes it>}}],
        "options": {"style": "lines", "unit": "°C", "decimals": 1, "thresholds": [{"value": 80, "color": "red"}]},
        "grid": {"x": 0, "y": 0, "w": 6, "h": 8}   # a 12-column grid
      }]
    }

A query without start/end runs over the dashboard's time range. A filter value "$facility" stands for the declared
variable `facility`. A query may carry a `legend` (a template: "{facility}" is the series' label) and a `unit`.
Panel options (docs/dashboards.md has the full table): calculation (last|last_not_null|first|mean|sum|min|max|
count|delta|range) and combination (sum|mean|min|max|none) for reduced panels, style (lines|areas|bars), stack,
unit/decimals/min/max and their _right twins, legend, legend_mode (list|table), legend_placement (bottom|right),
legend_values, thresholds [{"value": number or null for the base, "color", "label"?}], threshold_lines,
value_mappings [{"type": "value"|"range", "value" | "from"/"to", "text", "color"?}], overrides [{"match", "color"?,
"axis"?, "style"?, "hide"?}], table_mode (join|series), orientation, buckets (histogram), sparkline, states
{"<number>": {"label", "color"}} (a value shows the state of the highest key not above it), markdown (text panels;
raw HTML is stripped on save), and the older reduce (last|first|sum|avg|min|max). Other option keys are kept as given.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from analytics_platform.json_text import UNSTORABLE_TEXT_MESSAGE, unstorable_text_path
from apps.dashboards.models import PanelType, Refresh
from apps.storage.query.spec import QuerySpecError, query_spec_parse, time_parse

SCHEMA_VERSION = 1
GRID_COLUMNS = 12
MAX_PANELS = 100
MAX_QUERIES_PER_PANEL = 10
MAX_VARIABLES = 20
MAX_TAGS = 20
MAX_GRID_HEIGHT = 100
MAX_GRID_ROW = 10_000
MAX_OPTIONS_CHARACTERS = 20_000
MAX_MARKDOWN_CHARACTERS = 50_000
# Panels that read no query: text shows markdown, an alert list reads GET /api/v1/alerts/ in the browser.
QUERYLESS_PANEL_TYPES = ("text", "alertlist")
# The alert instance states (apps.alerts.models.AlertState) an alert list may filter on.
ALERT_LIST_STATES = ("firing", "pending", "recovering", "nodata", "error", "normal")
MAX_ALERT_LIST_ROWS = 100
DEFAULT_TIME_RANGE = {"start": "-6h", "end": "now"}
AXES = ("left", "right")
STYLES = ("lines", "areas", "bars")
REDUCERS = ("last", "first", "sum", "avg", "min", "max")  # the older single `reduce` option, still read
CALCULATIONS = ("last", "last_not_null", "first", "mean", "sum", "min", "max", "count", "delta", "range")
COMBINATIONS = ("sum", "mean", "min", "max", "none")
LEGEND_MODES = ("list", "table")
LEGEND_PLACEMENTS = ("bottom", "right")
LEGEND_VALUES = ("last", "mean", "min", "max", "sum")
TABLE_MODES = ("join", "series")
ORIENTATIONS = ("vertical", "horizontal")
MAX_MAPPINGS = 50
MAX_OVERRIDES = 50
_CHOICES = {
    "style": STYLES,
    "reduce": REDUCERS,
    "calculation": CALCULATIONS,
    "combination": COMBINATIONS,
    "legend_mode": LEGEND_MODES,
    "legend_placement": LEGEND_PLACEMENTS,
    "table_mode": TABLE_MODES,
    "orientation": ORIENTATIONS,
}

_DOCUMENT_KEYS = ("schema_version", "title", "folder", "tags", "variables", "time_range", "refresh", "panels")
_PANEL_KEYS = ("key", "title", "type", "queries", "options", "grid")
_QUERY_KEYS = ("ref", "query", "axis", "legend", "unit", "hidden")
_VARIABLE_KEYS = ("name", "label", "source", "metric", "label_key", "multi", "default")
_PANEL_KEY = re.compile(r"^[A-Za-z0-9_\-]{1,64}$")
_REF = re.compile(r"^[A-Za-z][A-Za-z0-9_]{0,15}$")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]{0,49}$")
_VARIABLE_REFERENCE = re.compile(r"^\$([A-Za-z_][A-Za-z0-9_]{0,49})$")
_LABEL_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_.\-]{0,99}$")
# A source slug, or "<organization>/<slug>" (slugs are unique per organisation: apps/sources/references.py).
_SLUG = re.compile(r"^(?:[-a-zA-Z0-9_]{1,100}/)?[-a-zA-Z0-9_]{1,100}$")
# Colours end up in style attributes: names, #hex, rgb()/hsl() and nothing that could break out of them.
_COLOR = re.compile(r"^[#A-Za-z0-9(),.% \-]{1,32}$")
# Code is markdown's own business: HTML inside fences or backticks is text, shown as written.
_CODE = re.compile(r"(```.*?(?:```|\Z)|~~~.*?(?:~~~|\Z)|`[^`\n]*`)", re.DOTALL)
_HTML_BLOCKS = re.compile(r"<(script|style|iframe|object|template)\b.*?(?:</\1\s*>|\Z)", re.DOTALL | re.IGNORECASE)
_HTML_COMMENT = re.compile(r"<!--.*?(?:-->|\Z)", re.DOTALL)
_HTML_TAG = re.compile(r"</?[A-Za-z][A-Za-z0-9\-]*(?:\s[^<>]*)?/?>|<![A-Za-z\[][^<>]*>|<\?[^<>]*\?>")


class DashboardDocumentError(ValueError):
    """A document that cannot be saved; `field` is the JSON path of the problem, e.g. panels[2].grid.w."""

    status = 400

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def variable_placeholder(name: str) -> str:
    """The stand-in value a "$name" filter value takes while its query is validated."""
    return f"__variable_{name}__"


def markdown_html_strip(text: str) -> str:
    """Markdown without raw HTML (tags, comments, script and style blocks); code spans and fences are kept."""
    pieces = _CODE.split(text)
    for index in range(0, len(pieces), 2):  # even pieces are outside code
        piece = pieces[index]
        # Removing one tag can join the halves of another around it ("<scr<b>ipt>"), so repeat until stable.
        for _ in range(20):
            stripped = _HTML_TAG.sub("", _HTML_COMMENT.sub("", _HTML_BLOCKS.sub("", piece)))
            if stripped == piece:
                break
            piece = stripped
        pieces[index] = piece
    return "".join(pieces)


def dashboard_document_clean(document: Any, *, now: datetime | None = None) -> dict[str, Any]:
    """Validate a document and return it in canonical form (defaults filled in); DashboardDocumentError otherwise."""
    now = now or datetime.now(UTC)
    if not isinstance(document, Mapping):
        raise DashboardDocumentError("document", "send a JSON object.")
    at = unstorable_text_path(dict(document))
    if at is not None:
        raise DashboardDocumentError(at or "document", UNSTORABLE_TEXT_MESSAGE)
    _unknown_keys(document, _DOCUMENT_KEYS, "")
    schema_version = document.get("schema_version", SCHEMA_VERSION)
    if schema_version != SCHEMA_VERSION or isinstance(schema_version, bool):
        raise DashboardDocumentError("schema_version", f"this server reads schema version {SCHEMA_VERSION}.")
    title = _text(document.get("title"), "title", maximum=200, required=True)
    folder = _text(document.get("folder", ""), "folder", maximum=100)
    tags = _tags_clean(document.get("tags", []))
    variables = _variables_clean(document.get("variables", []))
    time_range = _time_range_clean(document.get("time_range", DEFAULT_TIME_RANGE), now=now)
    refresh = document.get("refresh", Refresh.LIVE)
    if refresh not in Refresh.values:
        raise DashboardDocumentError("refresh", f"use one of {', '.join(Refresh.values)}.")
    panels_in = document.get("panels", [])
    if not isinstance(panels_in, list):
        raise DashboardDocumentError("panels", "must be a list of panels.")
    if len(panels_in) > MAX_PANELS:
        raise DashboardDocumentError("panels", f"at most {MAX_PANELS} panels on a dashboard; split it into several.")
    context = _QueryContext(variables={variable["name"] for variable in variables}, time_range=time_range, now=now)
    panels: list[dict[str, Any]] = []
    keys: set[str] = set()
    for index, panel in enumerate(panels_in):
        cleaned = _panel_clean(panel, f"panels[{index}]", context, next_row=_next_row(panels))
        if cleaned["key"] in keys:
            raise DashboardDocumentError(f"panels[{index}].key", f"{cleaned['key']!r} is used by another panel.")
        keys.add(cleaned["key"])
        panels.append(cleaned)
    return {
        "schema_version": SCHEMA_VERSION,
        "title": title,
        "folder": folder,
        "tags": tags,
        "variables": variables,
        "time_range": time_range,
        "refresh": refresh,
        "panels": panels,
    }


class _QueryContext:
    def __init__(self, *, variables: set[str], time_range: dict[str, str], now: datetime) -> None:
        self.variables = variables
        self.time_range = time_range
        self.now = now


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _unknown_keys(data: Mapping, known: tuple[str, ...], path: str) -> None:
    unknown = sorted(str(key) for key in data if key not in known)
    if unknown:
        raise DashboardDocumentError(_join(path, unknown[0]), f"unknown field; the fields are {', '.join(known)}.")


def _text(value: Any, path: str, *, maximum: int, required: bool = False) -> str:
    if value is None and not required:
        return ""
    if not isinstance(value, str):
        raise DashboardDocumentError(path, "must be text.")
    value = value.strip()
    if required and not value:
        raise DashboardDocumentError(path, "required.")
    if len(value) > maximum:
        raise DashboardDocumentError(path, f"at most {maximum} characters.")
    return value


def _integer(value: Any, path: str, *, minimum: int, maximum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int):
        raise DashboardDocumentError(path, "must be a whole number.")
    if not minimum <= value <= maximum:
        raise DashboardDocumentError(path, f"must be from {minimum} to {maximum}.")
    return value


def _number(value: Any, path: str) -> float | int:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise DashboardDocumentError(path, "must be a number.")
    return value


def _color(value: Any, path: str) -> str:
    if not isinstance(value, str) or not _COLOR.match(value):
        raise DashboardDocumentError(path, "a colour name, #hex or rgb()/hsl() value.")
    return value


def _tags_clean(tags: Any) -> list[str]:
    if not isinstance(tags, list):
        raise DashboardDocumentError("tags", 'must be a list of words, e.g. ["factory"].')
    if len(tags) > MAX_TAGS:
        raise DashboardDocumentError("tags", f"at most {MAX_TAGS} tags.")
    cleaned = [_text(tag, f"tags[{index}]", maximum=50, required=True) for index, tag in enumerate(tags)]
    return list(dict.fromkeys(cleaned))


def _variables_clean(variables: Any) -> list[dict[str, Any]]:
    if not isinstance(variables, list):
        raise DashboardDocumentError("variables", "must be a list of variables.")
    if len(variables) > MAX_VARIABLES:
        raise DashboardDocumentError("variables", f"at most {MAX_VARIABLES} variables.")
    cleaned: list[dict[str, Any]] = []
    for index, variable in enumerate(variables):
        path = f"variables[{index}]"
        if not isinstance(variable, Mapping):
            raise DashboardDocumentError(path, "must be an object.")
        _unknown_keys(variable, _VARIABLE_KEYS, path)
        name = variable.get("name")
        if not isinstance(name, str) or not _VARIABLE_NAME.match(name):
            raise DashboardDocumentError(f"{path}.name", "letters, digits and _, starting with a letter or _.")
        if any(other["name"] == name for other in cleaned):
            raise DashboardDocumentError(f"{path}.name", f"{name!r} is declared twice.")
        source = variable.get("source")
        if source is not None and (not isinstance(source, str) or not _SLUG.match(source)):
            raise DashboardDocumentError(f"{path}.source", "must be a source slug (or '<organization>/<slug>').")
        metric = variable.get("metric")
        if metric is not None:
            metric = _text(metric, f"{path}.metric", maximum=200, required=True)
        label_key = variable.get("label_key")
        if not isinstance(label_key, str) or not _LABEL_NAME.match(label_key):
            raise DashboardDocumentError(f"{path}.label_key", "required: the label whose values the variable offers.")
        multi = variable.get("multi", False)
        if not isinstance(multi, bool):
            raise DashboardDocumentError(f"{path}.multi", "must be true or false.")
        default = variable.get("default", [])
        if default is None:
            default = []
        if isinstance(default, str | int | float) and not isinstance(default, bool):
            default = [default]
        if not isinstance(default, list) or any(
            isinstance(value, bool) or not isinstance(value, str | int | float) for value in default
        ):
            raise DashboardDocumentError(f"{path}.default", "a value or a list of values.")
        if len(default) > (1_000 if multi else 1):
            raise DashboardDocumentError(f"{path}.default", "one value unless the variable is multi.")
        cleaned.append(
            {
                "name": name,
                "label": _text(variable.get("label", name), f"{path}.label", maximum=100) or name,
                "source": source,
                "metric": metric,
                "label_key": label_key,
                "multi": multi,
                "default": [str(value) for value in default],
            }
        )
    return cleaned


def _time_range_clean(time_range: Any, *, now: datetime) -> dict[str, str]:
    if not isinstance(time_range, Mapping):
        raise DashboardDocumentError("time_range", 'must be an object like {"start": "-6h", "end": "now"}.')
    _unknown_keys(time_range, ("start", "end"), "time_range")
    cleaned = {}
    moments = {}
    for key, default in DEFAULT_TIME_RANGE.items():
        value = time_range.get(key, default)
        if not isinstance(value, str):
            raise DashboardDocumentError(f"time_range.{key}", "give 'now', a relative time such as '-6h', or ISO 8601.")
        try:
            moments[key] = time_parse(value, field=key, now=now)
        except QuerySpecError as error:
            raise DashboardDocumentError(f"time_range.{key}", error.message) from None
        cleaned[key] = value.strip()
    if moments["end"] <= moments["start"]:
        raise DashboardDocumentError("time_range.end", "must be after start.")
    return cleaned


def _next_row(panels: list[dict[str, Any]]) -> int:
    return max((panel["grid"]["y"] + panel["grid"]["h"] for panel in panels), default=0)


def _panel_clean(panel: Any, path: str, context: _QueryContext, *, next_row: int) -> dict[str, Any]:
    if not isinstance(panel, Mapping):
        raise DashboardDocumentError(path, "must be an object.")
    _unknown_keys(panel, _PANEL_KEYS, path)
    key = panel.get("key")
    if not isinstance(key, str) or not _PANEL_KEY.match(key):
        raise DashboardDocumentError(f"{path}.key", "required: up to 64 letters, digits, _ or -.")
    panel_type = panel.get("type")
    if panel_type not in PanelType.values:
        raise DashboardDocumentError(f"{path}.type", f"use one of {', '.join(PanelType.values)}.")
    queries_in = panel.get("queries", [])
    if not isinstance(queries_in, list):
        raise DashboardDocumentError(f"{path}.queries", "must be a list of queries.")
    if panel_type in QUERYLESS_PANEL_TYPES and queries_in:
        raise DashboardDocumentError(f"{path}.queries", f"{panel_type} panels take no queries.")
    if len(queries_in) > MAX_QUERIES_PER_PANEL:
        raise DashboardDocumentError(f"{path}.queries", f"at most {MAX_QUERIES_PER_PANEL} queries per panel.")
    queries: list[dict[str, Any]] = []
    for index, query in enumerate(queries_in):
        cleaned = _panel_query_clean(query, f"{path}.queries[{index}]", context, index=index)
        if any(other["ref"] == cleaned["ref"] for other in queries):
            raise DashboardDocumentError(f"{path}.queries[{index}].ref", f"{cleaned['ref']!r} is used twice.")
        queries.append(cleaned)
    return {
        "key": key,
        "title": _text(panel.get("title", ""), f"{path}.title", maximum=200),
        "type": panel_type,
        "queries": queries,
        "options": _options_clean(panel.get("options", {}), f"{path}.options", panel_type=panel_type),
        "grid": _grid_clean(panel.get("grid"), f"{path}.grid", next_row=next_row),
    }


def _grid_clean(grid: Any, path: str, *, next_row: int) -> dict[str, int]:
    if grid is None:
        return {"x": 0, "y": next_row, "w": GRID_COLUMNS // 2, "h": 8}
    if not isinstance(grid, Mapping):
        raise DashboardDocumentError(path, 'must be {"x", "y", "w", "h"} on a 12-column grid.')
    _unknown_keys(grid, ("x", "y", "w", "h"), path)
    for key in ("x", "y", "w", "h"):
        if key not in grid:
            raise DashboardDocumentError(f"{path}.{key}", "required.")
    x = _integer(grid["x"], f"{path}.x", minimum=0, maximum=GRID_COLUMNS - 1)
    y = _integer(grid["y"], f"{path}.y", minimum=0, maximum=MAX_GRID_ROW)
    w = _integer(grid["w"], f"{path}.w", minimum=1, maximum=GRID_COLUMNS)
    h = _integer(grid["h"], f"{path}.h", minimum=1, maximum=MAX_GRID_HEIGHT)
    if x + w > GRID_COLUMNS:
        raise DashboardDocumentError(f"{path}.w", f"x + w is {x + w}; the grid has {GRID_COLUMNS} columns.")
    return {"x": x, "y": y, "w": w, "h": h}


def _panel_query_clean(query: Any, path: str, context: _QueryContext, *, index: int) -> dict[str, Any]:
    if not isinstance(query, Mapping):
        raise DashboardDocumentError(path, 'must be {"ref": "A", "query": {...}, "axis": "left"}.')
    _unknown_keys(query, _QUERY_KEYS, path)
    ref = query.get("ref", chr(ord("A") + index))
    if not isinstance(ref, str) or not _REF.match(ref):
        raise DashboardDocumentError(f"{path}.ref", "a short name starting with a letter, e.g. 'A'.")
    axis = query.get("axis", "left")
    if axis not in AXES:
        raise DashboardDocumentError(f"{path}.axis", f"use one of {', '.join(AXES)}.")
    spec = query.get("query")
    if not isinstance(spec, Mapping):
        raise DashboardDocumentError(f"{path}.query", "required: a query spec as POST /api/v1/query takes it.")
    _query_spec_check(spec, f"{path}.query", context)
    cleaned: dict[str, Any] = {"ref": ref, "query": dict(spec), "axis": axis}
    if "legend" in query:
        cleaned["legend"] = _text(query["legend"], f"{path}.legend", maximum=200)
    if "unit" in query:
        cleaned["unit"] = _text(query["unit"], f"{path}.unit", maximum=32)
    if "hidden" in query:
        if not isinstance(query["hidden"], bool):
            raise DashboardDocumentError(f"{path}.hidden", "must be true or false.")
        cleaned["hidden"] = query["hidden"]
    return cleaned


def _query_spec_check(spec: Mapping, path: str, context: _QueryContext) -> None:
    """Parse the spec as the query API would, over the dashboard's range, with variables standing in for values."""
    substituted = dict(spec)
    if isinstance(substituted.get("source"), str):
        substituted["source"] = _substitute(substituted["source"], f"{path}.source", context)
    filters = substituted.get("filters")
    if isinstance(filters, Mapping):
        substituted["filters"] = {
            label: _condition_substitute(condition, f"{path}.filters.{label}", context)
            for label, condition in filters.items()
        }
    try:
        query_spec_parse({**context.time_range, **substituted}, now=context.now)
    except QuerySpecError as error:
        field = path if error.field == "body" else f"{path}.{error.field}"
        raise DashboardDocumentError(field, error.message) from None


def _condition_substitute(condition: Any, path: str, context: _QueryContext) -> Any:
    if isinstance(condition, str):
        return _substitute(condition, path, context)
    if isinstance(condition, list):
        return [_substitute(value, path, context) for value in condition]
    if isinstance(condition, Mapping) and len(condition) == 1:
        operator, operand = next(iter(condition.items()))
        if operator == "regex":  # "$" ends many a pattern; a regex is never a variable
            return condition
        return {operator: _condition_substitute(operand, path, context)}
    return condition


def _substitute(value: Any, path: str, context: _QueryContext) -> Any:
    if not isinstance(value, str) or not value.startswith("$"):
        return value
    reference = _VARIABLE_REFERENCE.match(value)
    if reference is None or reference.group(1) not in context.variables:
        declared = ", ".join(f"${name}" for name in sorted(context.variables)) or "none"
        raise DashboardDocumentError(path, f"{value} is not a declared variable (declared: {declared}).")
    return variable_placeholder(reference.group(1))


def _options_clean(options: Any, path: str, *, panel_type: str) -> dict[str, Any]:
    if options is None:
        options = {}
    if not isinstance(options, Mapping):
        raise DashboardDocumentError(path, "must be an object.")
    if len(json.dumps(options)) > MAX_OPTIONS_CHARACTERS:
        raise DashboardDocumentError(path, f"at most {MAX_OPTIONS_CHARACTERS:,} characters of JSON.")
    cleaned = dict(options)
    for key, choices in _CHOICES.items():
        if key in cleaned and cleaned[key] not in choices:
            raise DashboardDocumentError(f"{path}.{key}", f"use one of {', '.join(choices)}.")
    for key in ("unit", "unit_right"):
        if key in cleaned:
            cleaned[key] = _text(cleaned[key], f"{path}.{key}", maximum=32)
    for key in ("decimals", "decimals_right"):
        if cleaned.get(key) is not None:
            _integer(cleaned[key], f"{path}.{key}", minimum=0, maximum=10)
    for suffix in ("", "_right"):
        for key in (f"min{suffix}", f"max{suffix}"):
            if cleaned.get(key) is not None:
                _number(cleaned[key], f"{path}.{key}")
        low, high = cleaned.get(f"min{suffix}"), cleaned.get(f"max{suffix}")
        if low is not None and high is not None and low >= high:
            raise DashboardDocumentError(f"{path}.max{suffix}", f"must be above min{suffix}.")
    if cleaned.get("buckets") is not None:
        _integer(cleaned["buckets"], f"{path}.buckets", minimum=1, maximum=200)
    if "legend_values" in cleaned:
        values = cleaned["legend_values"]
        if not isinstance(values, list) or any(value not in LEGEND_VALUES for value in values):
            raise DashboardDocumentError(f"{path}.legend_values", f"a list of {', '.join(LEGEND_VALUES)}.")
    if "value_mappings" in cleaned:
        cleaned["value_mappings"] = _mappings_clean(cleaned["value_mappings"], f"{path}.value_mappings")
    if "overrides" in cleaned:
        cleaned["overrides"] = _overrides_clean(cleaned["overrides"], f"{path}.overrides")
    for key in ("sparkline", "stack", "legend", "threshold_lines"):
        if key in cleaned and not isinstance(cleaned[key], bool):
            raise DashboardDocumentError(f"{path}.{key}", "must be true or false.")
    if "thresholds" in cleaned:
        cleaned["thresholds"] = _thresholds_clean(cleaned["thresholds"], f"{path}.thresholds")
    if "states" in cleaned:
        cleaned["states"] = _states_clean(cleaned["states"], f"{path}.states")
    if panel_type == PanelType.ALERT_LIST:
        _alert_list_options_check(cleaned, path)
    if "markdown" in cleaned or panel_type == PanelType.TEXT:
        markdown = cleaned.get("markdown", "")
        if not isinstance(markdown, str):
            raise DashboardDocumentError(f"{path}.markdown", "must be text.")
        if len(markdown) > MAX_MARKDOWN_CHARACTERS:
            raise DashboardDocumentError(f"{path}.markdown", f"at most {MAX_MARKDOWN_CHARACTERS:,} characters.")
        cleaned["markdown"] = markdown_html_strip(markdown)
    return cleaned


def _alert_list_options_check(options: dict[str, Any], path: str) -> None:
    """An alert list's `alert_states` (which states it shows; none: every state but normal) and `alert_limit`."""
    states = options.get("alert_states")
    if states is not None and (not isinstance(states, list) or any(state not in ALERT_LIST_STATES for state in states)):
        raise DashboardDocumentError(f"{path}.alert_states", f"a list of {', '.join(ALERT_LIST_STATES)}.")
    if options.get("alert_limit") is not None:
        _integer(options["alert_limit"], f"{path}.alert_limit", minimum=1, maximum=MAX_ALERT_LIST_ROWS)


def _thresholds_clean(thresholds: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(thresholds, list) or len(thresholds) > 20:
        raise DashboardDocumentError(path, 'a list of up to 20 {"value": number, "color": "red"}.')
    cleaned = []
    for index, threshold in enumerate(thresholds):
        item_path = f"{path}[{index}]"
        if not isinstance(threshold, Mapping):
            raise DashboardDocumentError(item_path, 'must be {"value": number, "color": "red"}.')
        _unknown_keys(threshold, ("value", "color", "label"), item_path)
        value = threshold.get("value")
        item: dict[str, Any] = {
            "value": None if value is None else _number(value, f"{item_path}.value"),
            "color": _color(threshold.get("color"), f"{item_path}.color"),
        }
        if "label" in threshold:
            item["label"] = _text(threshold["label"], f"{item_path}.label", maximum=50)
        cleaned.append(item)
    values = [item["value"] for item in cleaned if item["value"] is not None]
    if values != sorted(values):
        raise DashboardDocumentError(path, "list thresholds from the lowest value up.")
    return cleaned


def _states_clean(states: Any, path: str) -> dict[str, dict[str, str]]:
    if not isinstance(states, Mapping) or len(states) > 50:
        raise DashboardDocumentError(path, 'an object of up to 50 {"<number>": {"label": "down", "color": "red"}}.')
    cleaned = {}
    for key, state in states.items():
        item_path = f"{path}.{key}"
        try:
            float(key)
        except (TypeError, ValueError):
            raise DashboardDocumentError(item_path, 'keys are numbers, e.g. "0" or "1.5".') from None
        if not isinstance(state, Mapping):
            raise DashboardDocumentError(item_path, 'must be {"label": "down", "color": "red"}.')
        _unknown_keys(state, ("label", "color"), item_path)
        cleaned[str(key)] = {
            "label": _text(state.get("label"), f"{item_path}.label", maximum=50, required=True),
            "color": _color(state.get("color"), f"{item_path}.color"),
        }
    return cleaned


def _mappings_clean(mappings: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(mappings, list) or len(mappings) > MAX_MAPPINGS:
        example = '{"type": "value", "value": 1, "text": "on"}'
        raise DashboardDocumentError(path, f"a list of up to {MAX_MAPPINGS} mappings like {example}.")
    cleaned = []
    for index, mapping in enumerate(mappings):
        item_path = f"{path}[{index}]"
        if not isinstance(mapping, Mapping):
            raise DashboardDocumentError(item_path, 'must be {"type": "value"|"range", ..., "text": "on"}.')
        _unknown_keys(mapping, ("type", "value", "from", "to", "text", "color"), item_path)
        kind = mapping.get("type", "value")
        if kind not in ("value", "range"):
            raise DashboardDocumentError(f"{item_path}.type", "use value or range.")
        item: dict[str, Any] = {"type": kind, "text": _text(mapping.get("text", ""), f"{item_path}.text", maximum=50)}
        operands = ("value",) if kind == "value" else ("from", "to")
        for key in operands:
            value = mapping.get(key)
            if kind == "value" and value is None:
                raise DashboardDocumentError(f"{item_path}.value", "required: the number to map.")
            item[key] = None if value is None else _number(value, f"{item_path}.{key}")
        if mapping.get("color") is not None:
            item["color"] = _color(mapping["color"], f"{item_path}.color")
        cleaned.append(item)
    return cleaned


def _overrides_clean(overrides: Any, path: str) -> list[dict[str, Any]]:
    if not isinstance(overrides, list) or len(overrides) > MAX_OVERRIDES:
        example = '{"match": "series name", "color": "red"}'
        raise DashboardDocumentError(path, f"a list of up to {MAX_OVERRIDES} overrides like {example}.")
    cleaned = []
    for index, override in enumerate(overrides):
        item_path = f"{path}[{index}]"
        if not isinstance(override, Mapping):
            raise DashboardDocumentError(item_path, 'must be {"match": "series name or query ref", ...}.')
        _unknown_keys(override, ("match", "color", "axis", "style", "hide"), item_path)
        if override.get("match") is None:
            raise DashboardDocumentError(f"{item_path}.match", "required: a series' display name or a query ref.")
        item: dict[str, Any] = {"match": _text(override["match"], f"{item_path}.match", maximum=200, required=True)}
        if override.get("color") is not None:
            item["color"] = _color(override["color"], f"{item_path}.color")
        if override.get("axis") is not None:
            if override["axis"] not in AXES:
                raise DashboardDocumentError(f"{item_path}.axis", f"use one of {', '.join(AXES)}.")
            item["axis"] = override["axis"]
        if override.get("style") is not None:
            if override["style"] not in STYLES:
                raise DashboardDocumentError(f"{item_path}.style", f"use one of {', '.join(STYLES)}.")
            item["style"] = override["style"]
        if override.get("hide") is not None:
            if not isinstance(override["hide"], bool):
                raise DashboardDocumentError(f"{item_path}.hide", "must be true or false.")
            item["hide"] = override["hide"]
        cleaned.append(item)
    return cleaned
