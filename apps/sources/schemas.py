"""Source schema definitions: their shape, defaults, cleaning with field-level errors, and compatibility rules.

A definition (JSON, stored on `SourceSchema.definition`):

    {
      "time": {"field": "time", "format": "auto", "required": false},
      "measures": {"temperature": {"type": "number", "min": -50, "max": 150, "required": true},
                   "running": {"type": "boolean"},
                   "state": {"type": "enum", "values": {"idle": 0, "running": 1, "down": 2}}},
      "labels": {"device": {"required": true}, "facility": {}},
      "unknown_fields": "ignore" | "labels" | "reject",
      "line_protocol_metric": "measurement.field" | "field",
      "max_labels": 16
    }

In `infer` mode undeclared numbers and booleans become measures and undeclared strings become labels; declared
fields still get their checks. In `strict` mode undeclared fields follow `unknown_fields`.
"""

from __future__ import annotations

import math
import re
from typing import Any

from analytics_platform.json_text import UNSTORABLE_TEXT_MESSAGE, unstorable_text_path
from apps.storage.services import LABEL_NAME_MAX_LENGTH

TIME_FORMATS = ("auto", "iso8601", "epoch_s", "epoch_ms", "epoch_us", "epoch_ns")
MEASURE_TYPES = ("number", "boolean", "enum")
UNKNOWN_FIELD_POLICIES = ("ignore", "labels", "reject")
LINE_PROTOCOL_METRICS = ("measurement.field", "field")
INFER_TIME_FIELDS = ("time", "timestamp")
MAX_LABELS_LIMIT = 64
FIELD_NAME_PATTERN = re.compile(r"^[A-Za-z_][A-Za-z0-9_.:\-]{0,199}$")


class SchemaDefinitionError(ValueError):
    """A definition is malformed; `field` is the JSON path of the offending part."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


def _bool(value: Any, path: str) -> bool:
    if not isinstance(value, bool):
        raise SchemaDefinitionError(path, "must be true or false.")
    return value


def _number_or_none(value: Any, path: str) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise SchemaDefinitionError(path, "must be a finite number or null.")
    return value


def _name(value: str, path: str) -> str:
    if not FIELD_NAME_PATTERN.match(value):
        raise SchemaDefinitionError(
            path, f"{value!r} is not a valid field name (letters, digits, _ . : -, starting with a letter or _)."
        )
    return value


def _clean_measure(name: str, spec: Any) -> dict[str, Any]:
    path = f"definition.measures.{name}"
    if not isinstance(spec, dict):
        raise SchemaDefinitionError(path, 'must be an object such as {"type": "number"}.')
    unknown = set(spec) - {"type", "min", "max", "required", "values"}
    if unknown:
        raise SchemaDefinitionError(
            f"{path}.{sorted(unknown)[0]}", "is not a measure setting (type, min, max, required, values)."
        )
    kind = spec.get("type", "number")
    if kind not in MEASURE_TYPES:
        raise SchemaDefinitionError(f"{path}.type", f"must be one of {', '.join(MEASURE_TYPES)}; got {kind!r}.")
    cleaned: dict[str, Any] = {"type": kind, "required": _bool(spec.get("required", False), f"{path}.required")}
    if kind == "number":
        cleaned["min"] = _number_or_none(spec.get("min"), f"{path}.min")
        cleaned["max"] = _number_or_none(spec.get("max"), f"{path}.max")
        if cleaned["min"] is not None and cleaned["max"] is not None and cleaned["min"] > cleaned["max"]:
            raise SchemaDefinitionError(f"{path}.min", "is greater than max.")
    elif "min" in spec or "max" in spec:
        raise SchemaDefinitionError(f"{path}.min", f"ranges apply to number measures, not {kind}.")
    if kind == "enum":
        values = spec.get("values")
        if not isinstance(values, dict) or not values:
            raise SchemaDefinitionError(f"{path}.values", 'must map each text value to a number, e.g. {"idle": 0}.')
        for text, number in values.items():
            _number_or_none(number, f"{path}.values.{text}")
            if number is None:
                raise SchemaDefinitionError(f"{path}.values.{text}", "must be a number.")
        cleaned["values"] = dict(values)
    elif "values" in spec:
        raise SchemaDefinitionError(f"{path}.values", "applies to enum measures only.")
    return cleaned


def schema_definition_clean(definition: Any, *, mode: str) -> dict[str, Any]:
    """A complete, normalised definition with defaults filled in; SchemaDefinitionError names the bad part."""
    if definition is None:
        definition = {}
    if not isinstance(definition, dict):
        raise SchemaDefinitionError("definition", "must be a JSON object.")
    at = unstorable_text_path(definition, "definition")
    if at is not None:
        raise SchemaDefinitionError(at, UNSTORABLE_TEXT_MESSAGE)
    allowed = {"time", "measures", "labels", "unknown_fields", "line_protocol_metric", "max_labels"}
    unknown = set(definition) - allowed
    if unknown:
        raise SchemaDefinitionError(
            f"definition.{sorted(unknown)[0]}", f"is not a schema setting ({', '.join(sorted(allowed))})."
        )
    time_spec = definition.get("time", {})
    if not isinstance(time_spec, dict):
        raise SchemaDefinitionError(
            "definition.time", 'must be an object such as {"field": "ts", "format": "epoch_ms"}.'
        )
    time_field = time_spec.get("field")
    if time_field is not None:
        _name(str(time_field), "definition.time.field")
    time_format = time_spec.get("format", "auto")
    if time_format not in TIME_FORMATS:
        raise SchemaDefinitionError("definition.time.format", f"must be one of {', '.join(TIME_FORMATS)}.")
    time_required = _bool(time_spec.get("required", mode == "strict"), "definition.time.required")

    measures_in = definition.get("measures", {})
    if not isinstance(measures_in, dict):
        raise SchemaDefinitionError("definition.measures", "must be an object keyed by field name.")
    measures = {
        _name(name, f"definition.measures.{name}"): _clean_measure(name, spec) for name, spec in measures_in.items()
    }

    labels_in = definition.get("labels", {})
    if isinstance(labels_in, list):
        if not all(isinstance(name, str) for name in labels_in):
            raise SchemaDefinitionError("definition.labels", "a list of label names must hold only text.")
        labels_in = {name: {} for name in labels_in}
    if not isinstance(labels_in, dict):
        raise SchemaDefinitionError("definition.labels", "must be an object keyed by field name, or a list of names.")
    labels: dict[str, dict[str, bool]] = {}
    for name, spec in labels_in.items():
        _name(name, f"definition.labels.{name}")
        if len(name) > LABEL_NAME_MAX_LENGTH:
            raise SchemaDefinitionError(
                f"definition.labels.{name}", f"label names hold at most {LABEL_NAME_MAX_LENGTH} characters."
            )
        if not isinstance(spec, dict) or set(spec) - {"required"}:
            raise SchemaDefinitionError(f"definition.labels.{name}", 'must be {} or {"required": true}.')
        labels[name] = {"required": _bool(spec.get("required", False), f"definition.labels.{name}.required")}
    both = set(measures) & set(labels)
    if both:
        raise SchemaDefinitionError(
            f"definition.labels.{sorted(both)[0]}", "is declared as both a measure and a label."
        )
    if time_field is not None and time_field in set(measures) | set(labels):
        raise SchemaDefinitionError("definition.time.field", "is also declared as a measure or label.")
    if mode == "strict" and not measures:
        raise SchemaDefinitionError("definition.measures", "a strict schema needs at least one measure.")

    unknown_fields = definition.get("unknown_fields", "labels" if mode == "infer" else "reject")
    if unknown_fields not in UNKNOWN_FIELD_POLICIES:
        raise SchemaDefinitionError("definition.unknown_fields", f"must be one of {', '.join(UNKNOWN_FIELD_POLICIES)}.")
    line_metric = definition.get("line_protocol_metric", "measurement.field")
    if line_metric not in LINE_PROTOCOL_METRICS:
        raise SchemaDefinitionError(
            "definition.line_protocol_metric", f"must be one of {', '.join(LINE_PROTOCOL_METRICS)}."
        )
    max_labels = definition.get("max_labels", 16)
    if isinstance(max_labels, bool) or not isinstance(max_labels, int) or not 0 <= max_labels <= MAX_LABELS_LIMIT:
        raise SchemaDefinitionError("definition.max_labels", f"must be a whole number from 0 to {MAX_LABELS_LIMIT}.")
    return {
        "time": {"field": time_field, "format": time_format, "required": time_required},
        "measures": measures,
        "labels": labels,
        "unknown_fields": unknown_fields,
        "line_protocol_metric": line_metric,
        "max_labels": max_labels,
    }


def _measure_breaks(name: str, old: dict[str, Any], new: dict[str, Any]) -> list[str]:
    """Why changing one measure from `old` to `new` would refuse or re-interpret data the old version took."""
    reasons: list[str] = []
    if old["type"] != new["type"]:
        widening = old["type"] == "boolean" and new["type"] == "number"
        if not widening:
            reasons.append(f"measure {name!r} changes type from {old['type']} to {new['type']}")
    if new["required"] and not old["required"]:
        reasons.append(f"measure {name!r} becomes required")
    if old["type"] == new["type"] == "number":
        if new["min"] is not None and (old["min"] is None or new["min"] > old["min"]):
            reasons.append(f"measure {name!r} raises its minimum to {new['min']}")
        if new["max"] is not None and (old["max"] is None or new["max"] < old["max"]):
            reasons.append(f"measure {name!r} lowers its maximum to {new['max']}")
    if old["type"] == new["type"] == "enum":
        for text, number in old["values"].items():
            if text not in new["values"]:
                reasons.append(f"measure {name!r} drops the value {text!r}")
            elif new["values"][text] != number:
                reasons.append(f"measure {name!r} maps {text!r} to a different number")
    return reasons


def schema_breaking_changes(*, old_mode: str, old: dict[str, Any], new_mode: str, new: dict[str, Any]) -> list[str]:
    """Every way `new` would refuse or re-interpret records that `old` accepted; empty means compatible.

    Compatible changes add optional fields, widen ranges and enums, turn booleans into numbers, relax
    requirements, or accept more (strict to infer, reject to ignore or labels).
    """
    reasons: list[str] = []
    if old_mode == "infer" and new_mode == "strict":
        reasons.append("mode changes from infer to strict")
    old_time, new_time = old["time"], new["time"]
    if old_time["field"] != new_time["field"]:
        reasons.append(f"time field changes from {old_time['field']!r} to {new_time['field']!r}")
    if old_time["format"] != new_time["format"] and new_time["format"] != "auto":
        reasons.append(f"time format changes from {old_time['format']} to {new_time['format']}")
    if new_time["required"] and not old_time["required"]:
        reasons.append("time becomes required")
    for name, spec in old["measures"].items():
        if name not in new["measures"]:
            reasons.append(f"measure {name!r} is removed")
        else:
            reasons += _measure_breaks(name, spec, new["measures"][name])
    for name, spec in new["measures"].items():
        if name not in old["measures"] and spec["required"]:
            reasons.append(f"new measure {name!r} is required")
    for name, spec in old["labels"].items():
        if name not in new["labels"]:
            reasons.append(f"label {name!r} is removed")
        elif new["labels"][name]["required"] and not spec["required"]:
            reasons.append(f"label {name!r} becomes required")
    for name, spec in new["labels"].items():
        if name not in old["labels"] and spec["required"]:
            reasons.append(f"new label {name!r} is required")
    old_unknown, new_unknown = old["unknown_fields"], new["unknown_fields"]
    if old_unknown != new_unknown and not (
        old_unknown == "reject" or (old_unknown, new_unknown) == ("ignore", "labels")
    ):
        reasons.append(f"unknown fields change from {old_unknown} to {new_unknown}")
    if old["line_protocol_metric"] != new["line_protocol_metric"]:
        reasons.append("line-protocol metric naming changes (series would get new names)")
    if new["max_labels"] < old["max_labels"]:
        reasons.append(f"max_labels drops from {old['max_labels']} to {new['max_labels']}")
    return reasons
