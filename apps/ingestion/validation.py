"""Schema validation: records in, points (series key, time, value) or per-record errors out.

A record is all or nothing: if any field fails, none of its points are stored and the whole record goes to the
dead-letter store with the first reason. One compiled `RecordValidator` per schema version is cached.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from apps.ingestion.records import Record, RecordError
from apps.storage.services import LABEL_NAME_MAX_LENGTH, LABEL_VALUE_MAX_LENGTH, METRIC_MAX_LENGTH

LabelSet = tuple[tuple[str, str], ...]  # sorted (name, value) pairs
SeriesLocalKey = tuple[str, LabelSet]  # (metric, labels) within one source
ValidatedPoint = tuple[SeriesLocalKey, datetime, float, int]  # (..., position of its record in the batch)

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# The accepted time range. Storage partitions points by day from the Unix epoch on, so nothing earlier is
# stored; the end is InfluxDB's int64-nanosecond horizon, and anything beyond it is surely a unit error.
EARLIEST_TIME = EPOCH
LATEST_TIME = datetime(2262, 1, 1, tzinfo=UTC)
TIME_RANGE_TEXT = "1970-01-01T00:00:00Z up to 2262-01-01T00:00:00Z"
MAX_LABEL_NAME_LENGTH = LABEL_NAME_MAX_LENGTH
MAX_LABEL_VALUE_LENGTH = LABEL_VALUE_MAX_LENGTH
MAX_METRIC_NAME_LENGTH = METRIC_MAX_LENGTH
# Values are stored within ±1e300: finite doubles up to about 1.8e308 would be refused by PostgreSQL once summed
# (a rollup's sum overflows, and the refresh would fail on that bucket forever). A day of 1 kHz points at the bound
# still sums to under 1e308.
MAX_ABS_VALUE = 1e300
_OUT_OF_RANGE = "{name} is {value}; numbers are stored only when finite and within ±1e300 (sums of larger overflow)."
_EPOCH_SCALES = {"epoch_s": 1.0, "epoch_ms": 1e3, "epoch_us": 1e6, "epoch_ns": 1e9}
_CACHE_LIMIT = 100_000
_TRUE_TEXT = frozenset({"true", "t", "yes", "1", "on"})
_FALSE_TEXT = frozenset({"false", "f", "no", "0", "off"})


class _Reject(Exception):
    """Raised inside validation of one record; becomes its RecordError."""

    def __init__(self, code: str, field_name: str | None, message: str) -> None:
        self.code = code
        self.field = field_name
        self.message = message


@dataclass(slots=True)
class ValidationResult:
    """Points from the records that passed, how many records passed, and an error per record that did not."""

    points: list[ValidatedPoint] = field(default_factory=list)
    accepted_records: int = 0
    errors: list[RecordError] = field(default_factory=list)
    ignored_strings: int = 0  # string fields of accepted line-protocol lines that are not stored


def _epoch_seconds_auto(number: float) -> float:
    """Seconds from an epoch number whose unit is guessed from its size (as most agents' docs describe)."""
    magnitude = abs(number)
    if magnitude < 1e11:  # seconds until the year 5138
        return number
    if magnitude < 1e14:
        return number / 1e3
    if magnitude < 1e17:
        return number / 1e6
    return number / 1e9


def _iso_parse(text: str) -> datetime:
    moment = datetime.fromisoformat(text)
    if moment.tzinfo is None:  # no offset means UTC, never the server's zone
        moment = moment.replace(tzinfo=UTC)
    return moment


class RecordValidator:
    """Checks records against one schema version and turns them into points."""

    def __init__(
        self, *, mode: str, definition: dict[str, Any], max_future: timedelta, max_age: timedelta | None = None
    ) -> None:
        self.infer = mode == "infer"
        time_spec = definition["time"]
        self.time_field: str | None = time_spec["field"]
        self.time_format: str = time_spec["format"]
        self.time_required: bool = time_spec["required"]
        self.measures: dict[str, dict[str, Any]] = definition["measures"]
        self.labels: dict[str, dict[str, bool]] = definition["labels"]
        self.required_measures = [name for name, spec in self.measures.items() if spec["required"]]
        self.required_labels = [name for name, spec in self.labels.items() if spec["required"]]
        self.unknown_fields: str = definition["unknown_fields"]
        self.metric_with_measurement = definition["line_protocol_metric"] == "measurement.field"
        self.max_labels: int = definition["max_labels"]
        self.max_future = max_future
        self.max_age = max_age  # points older than this (the source's raw retention) would be deleted at once
        # Validated label sets and metric names: a source repeats a few thousand of them in every batch.
        self._label_sets: dict[tuple, LabelSet] = {}
        self._metric_names: dict[tuple[str, str], str] = {}
        self._metric_names_ok: set[str] = set()
        # Infer mode: the metric names the source stores (set by the writer, apps/ingestion/field_types.py); a line-
        # protocol string field of one of these names is a field type conflict, not an ignored string.
        self.known_measures: set[str] = set()

    # --- time -------------------------------------------------------------------------------------
    def _time_from_value(self, value: Any, name: str) -> datetime:
        fmt = self.time_format
        try:
            if isinstance(value, bool):
                raise _Reject("invalid_time", name, f"{name} is a boolean, not a time.")
            if isinstance(value, str):
                if fmt in ("auto", "iso8601"):
                    try:
                        return _iso_parse(value)
                    except ValueError:
                        if fmt == "iso8601":
                            raise
                        value = float(value)  # auto: "1767225600" is an epoch too
                else:
                    value = float(value)
            elif fmt == "iso8601":
                raise _Reject("invalid_time", name, f"{name} must be an ISO 8601 text such as 2026-01-01T00:00:00Z.")
            if not isinstance(value, int | float) or not math.isfinite(value):
                raise _Reject("invalid_time", name, f"{name} must be ISO 8601 text or an epoch number; got {value!r}.")
            seconds = _epoch_seconds_auto(value) if fmt in ("auto", "iso8601") else value / _EPOCH_SCALES[fmt]
            return EPOCH + timedelta(seconds=seconds)
        except _Reject:
            raise
        except (ValueError, OverflowError) as error:
            raise _Reject(
                "invalid_time", name, f"{name} {value!r} is not a time ({self.time_format}): {error}."
            ) from error

    def _time_check(self, moment: datetime, received_at: datetime, name: str) -> datetime:
        if moment < EARLIEST_TIME or moment >= LATEST_TIME:
            raise _Reject(
                "time_out_of_range",
                name,
                f"{name} {moment.isoformat()} is outside the accepted range, {TIME_RANGE_TEXT}; check its unit.",
            )
        if self.max_age is not None and received_at - moment > self.max_age:
            raise _Reject(
                "time_out_of_range",
                name,
                f"{name} {moment.isoformat()} is older than this source keeps raw points ({self.max_age.days} days); "
                "it would be deleted at the next retention run. To load older history, raise the source's raw "
                "retention first.",
            )
        if moment - received_at > self.max_future:
            raise _Reject(
                "time_in_future",
                name,
                f"{name} {moment.isoformat()} is more than {int(self.max_future.total_seconds())} s ahead of the "
                "server clock; fix the sender's clock or its time unit.",
            )
        return moment

    # --- values -----------------------------------------------------------------------------------
    def _measure_value(self, name: str, value: Any, spec: dict[str, Any]) -> float | None:
        kind = spec["type"]
        if value is None:
            return None
        if kind == "number":
            if isinstance(value, bool):
                number = 1.0 if value else 0.0
            elif isinstance(value, int | float):
                try:
                    number = float(value)
                except OverflowError:  # an integer beyond a double's range
                    number = math.inf
            elif isinstance(value, str):
                try:
                    number = float(value)
                except ValueError:
                    raise _Reject("wrong_type", name, f"{name} must be a number; got {value!r}.") from None
            else:
                raise _Reject("wrong_type", name, f"{name} must be a number; got {type(value).__name__}.")
            if not -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE:  # also NaN and ±inf
                raise _Reject("invalid_number", name, _OUT_OF_RANGE.format(name=name, value=_shown(value)))
            low, high = spec.get("min"), spec.get("max")
            if (low is not None and number < low) or (high is not None and number > high):
                raise _Reject("out_of_range", name, f"{name} {number:g} is outside the allowed range {low} to {high}.")
            return number
        if kind == "boolean":
            if isinstance(value, bool):
                return 1.0 if value else 0.0
            if isinstance(value, int | float) and value in (0, 1):
                return float(value)
            if isinstance(value, str) and value.lower() in _TRUE_TEXT | _FALSE_TEXT:
                return 1.0 if value.lower() in _TRUE_TEXT else 0.0
            raise _Reject("wrong_type", name, f"{name} must be true or false; got {value!r}.")
        mapping = spec["values"]
        if isinstance(value, str) and value in mapping:
            return float(mapping[value])
        allowed = ", ".join(sorted(mapping))
        raise _Reject("invalid_enum", name, f"{name} {value!r} is not one of: {allowed}.")

    @staticmethod
    def _inferred_value(name: str, value: Any) -> float:
        if value is True or value is False:
            return 1.0 if value else 0.0
        try:
            number = float(value)
        except OverflowError:  # an integer beyond a double's range (about 1.8e308)
            number = math.inf
        if not -MAX_ABS_VALUE <= number <= MAX_ABS_VALUE:  # also NaN and ±inf
            raise _Reject("invalid_number", name, _OUT_OF_RANGE.format(name=name, value=_shown(value)))
        return number

    @staticmethod
    def _label_value(name: str, value: Any) -> str:
        if isinstance(value, dict | list):
            raise _Reject("nested_value", name, f"{name} holds a nested {type(value).__name__}; send flat fields.")
        text = value if isinstance(value, str) else json.dumps(value)
        if len(text) > MAX_LABEL_VALUE_LENGTH:
            raise _Reject(
                "label_too_long",
                name,
                f"{name} is {len(text)} characters; labels hold at most {MAX_LABEL_VALUE_LENGTH}.",
            )
        return text

    def _labels_checked(self, items: tuple[tuple[str, Any], ...]) -> LabelSet:
        """Validated, sorted labels for a record's label items (cached: a source has few distinct label sets)."""
        cached = self._label_sets.get(items)
        if cached is not None:
            return cached
        for name, _ in items:
            if len(name) > MAX_LABEL_NAME_LENGTH:
                shown = name[:40] + "..."
                raise _Reject(
                    "label_too_long",
                    shown,
                    f"label name {shown} is {len(name)} characters; names hold at most {MAX_LABEL_NAME_LENGTH}.",
                )
        labels = {name: self._label_value(name, value) for name, value in items}
        for name, value in labels.items():
            if not text_storable(name) or not text_storable(value):
                raise _Reject(
                    "invalid_text",
                    name,
                    "label names and values must be valid Unicode text without NUL (\\u0000) characters or lone "
                    "surrogates (\\ud800-\\udfff).",
                )
        for name in self.required_labels:
            if name not in labels:
                raise _Reject("missing_field", name, f"required label {name} is missing.")
        if len(labels) > self.max_labels:
            raise _Reject(
                "too_many_labels",
                None,
                f"the record has {len(labels)} labels; this source allows {self.max_labels} (schema max_labels). "
                "Declare high-cardinality fields as measures or drop them.",
            )
        label_set = tuple(sorted(labels.items()))
        if len(self._label_sets) > _CACHE_LIMIT:
            self._label_sets.clear()
        self._label_sets[items] = label_set
        return label_set

    def _metric_names_checked(self, measures: list[tuple[str, float]]) -> None:
        """Field names become metric names: no NUL characters, bounded length (each name checked once)."""
        known = self._metric_names_ok
        for name, _ in measures:
            if name in known:
                continue
            if not text_storable(name):
                raise _Reject(
                    "invalid_text",
                    name,
                    "field names must be valid Unicode text without NUL (\\u0000) characters or lone surrogates.",
                )
            if len(name) > MAX_METRIC_NAME_LENGTH:
                raise _Reject(
                    "metric_too_long", name, f"field name {name[:40]}... is longer than {MAX_METRIC_NAME_LENGTH}."
                )
            if len(known) > _CACHE_LIMIT:
                known.clear()
            known.add(name)

    def _measures_checked(self, measures: list[tuple[str, float]], present: Any) -> None:
        for name in self.required_measures:
            if name not in present:
                raise _Reject("missing_field", name, f"required measure {name} is missing.")
        if not measures:
            raise _Reject("no_measures", None, "the record has no numeric or boolean field to store as a metric.")

    # --- records ----------------------------------------------------------------------------------
    def _object_points(
        self, record: Record, position: int, received_at: datetime, out: list[ValidatedPoint], times: dict
    ) -> None:
        """Points of a JSON object or CSV row: one per measure, the other fields as labels."""
        fields = record.fields
        time_name = self.time_field
        if time_name is None:
            time_name = "time" if "time" in fields else ("timestamp" if "timestamp" in fields else "time")
        raw_time = fields.get(time_name)
        if raw_time is None:
            if self.time_required:
                raise _Reject("missing_field", time_name, f"required time field {time_name} is missing.")
            moment = received_at
        else:
            # Records of one batch share few distinct times; each is parsed and checked once.
            moment = times.get(raw_time) if type(raw_time) is not bool else None
            if moment is None:
                moment = self._time_check(self._time_from_value(raw_time, time_name), received_at, time_name)
                if type(raw_time) is not bool:
                    times[raw_time] = moment
        measures: list[tuple[str, float]] = []
        label_items: list[tuple[str, Any]] = []
        declared_measures, declared_labels, infer = self.measures, self.labels, self.infer
        for name, value in fields.items():
            if name == time_name or value is None:
                continue
            kind = type(value)
            if declared_measures:
                spec = declared_measures.get(name)
                if spec is not None:
                    measures.append((name, self._measure_value(name, value, spec)))
                    continue
            if declared_labels and name in declared_labels:
                label_items.append((name, value))
                continue
            if infer:
                if kind is float:
                    if not -MAX_ABS_VALUE <= value <= MAX_ABS_VALUE:  # also NaN and ±inf
                        raise _Reject("invalid_number", name, _OUT_OF_RANGE.format(name=name, value=_shown(value)))
                    measures.append((name, value))
                elif kind is str:
                    label_items.append((name, value))
                elif kind is int or kind is bool:
                    measures.append((name, self._inferred_value(name, value)))
                else:
                    raise _Reject("nested_value", name, f"{name} holds a nested {kind.__name__}; send flat fields.")
            elif self.unknown_fields == "reject":
                raise _Reject(
                    "unknown_field", name, f"{name} is not in the schema and this source rejects unknown fields."
                )
            elif self.unknown_fields == "labels":
                label_items.append((name, value))
        if not measures or self.required_measures:
            self._measures_checked(measures, fields)
        known_names = self._metric_names_ok
        for name, _ in measures:
            if name not in known_names:
                self._metric_names_checked(measures)
                break
        items = tuple(label_items)
        label_set = self._label_sets.get(items)
        if label_set is None:
            label_set = self._labels_checked(items)
        for metric, number in measures:
            out.append(((metric, label_set), moment, number, position))

    def _line_points(
        self, record: Record, position: int, received_at: datetime, out: list[ValidatedPoint], times: dict
    ) -> int:
        """Points of a line-protocol line: one per field; tags are labels; the metric carries the measurement.

        Returns how many string fields were left unstored. A line of string fields only (Telegraf's `system`
        input sends `uptime_format` so) is accepted with no points, as InfluxDB accepts it.
        """
        time_ns = record.time_ns
        if time_ns is None:
            moment = received_at
        else:
            moment = times.get(time_ns)
            if moment is None:
                moment = self._time_check(EPOCH + timedelta(microseconds=time_ns // 1000), received_at, "timestamp")
                times[time_ns] = moment
        measures: list[tuple[str, float]] = []
        declared_measures = self.measures
        strings = 0
        for name, value in record.fields.items():
            kind = type(value)
            spec = declared_measures.get(name) if declared_measures else None
            if spec is not None:
                measures.append((name, self._measure_value(name, value, spec)))
            elif kind is float or kind is int or kind is bool:
                if self.infer:
                    measures.append((name, self._inferred_value(name, value)))
                elif self.unknown_fields == "reject":
                    raise _Reject(
                        "unknown_field",
                        name,
                        f"field {name} is not in the schema and this source rejects unknown fields.",
                    )
                elif self.unknown_fields == "labels":
                    measures.append((name, self._inferred_value(name, value)))
            elif not self.infer and self.unknown_fields == "reject":
                raise _Reject("unknown_field", name, f"string field {name} is not in the schema.")
            elif self.infer and self.known_measures and self._line_metric(record, name) in self.known_measures:
                raise _Reject("type_conflict", name, measure_conflict_message(name, value))
            else:
                # Undeclared string fields cannot be numbers and are not identity (tags are): they are not stored.
                strings += 1
        if strings == len(record.fields) and not self.required_measures:
            return strings
        self._measures_checked(measures, record.fields)
        tags = record.tags
        if tags and not self.infer and self.unknown_fields != "labels":
            kept = []
            for name, value in tags.items():
                if name in self.labels:
                    kept.append((name, value))
                elif self.unknown_fields == "reject":
                    raise _Reject(
                        "unknown_field",
                        name,
                        f"tag {name} is not in the schema and this source rejects unknown fields.",
                    )
            label_set = self._labels_checked(tuple(kept))
        else:
            label_set = self._labels_checked(tuple(tags.items()) if tags else ())
        measurement = record.measurement or ""
        metric_names = self._metric_names
        for name, number in measures:
            metric = metric_names.get((measurement, name))
            if metric is None:
                metric = self._metric_name(measurement, name)
            out.append(((metric, label_set), moment, number, position))
        return strings

    def _line_metric(self, record: Record, name: str) -> str:
        measurement = record.measurement or ""
        return self._metric_names.get((measurement, name)) or self._metric_name(measurement, name)

    def _metric_name(self, measurement: str, name: str) -> str:
        if self.metric_with_measurement and measurement:
            metric = measurement if name == "value" else f"{measurement}.{name}"
        else:
            metric = name
        if not text_storable(metric):
            raise _Reject("invalid_text", name, "measurement and field names cannot contain NUL (\\u0000) characters.")
        if len(metric) > MAX_METRIC_NAME_LENGTH:
            raise _Reject(
                "metric_too_long", name, f"metric {metric[:40]}... is longer than {MAX_METRIC_NAME_LENGTH} characters."
            )
        if len(self._metric_names) > _CACHE_LIMIT:
            self._metric_names.clear()
        self._metric_names[(measurement, name)] = metric
        return metric

    def validate(self, records: Sequence[Record], *, received_at: datetime) -> ValidationResult:
        """Validate records; records without a time get `received_at` (the time the server took the batch)."""
        result = ValidationResult()
        points = result.points
        times: dict = {}
        for position, record in enumerate(records):
            mark = len(points)
            try:
                if record.measurement is not None:
                    strings = self._line_points(record, position, received_at, points, times)
                else:
                    self._object_points(record, position, received_at, points, times)
                    strings = 0
            except _Reject as reject:
                del points[mark:]
                result.errors.append(
                    RecordError(index=record.index, code=reject.code, field=reject.field, message=reject.message,
                                raw=record_raw(record))
                )  # fmt: skip
            else:
                result.accepted_records += 1
                if strings:
                    result.ignored_strings += strings
        return result


def measure_conflict_message(name: str, value: object) -> str:
    """Why a record that sends a known measure as text is refused."""
    return (
        f"{name} is stored as a number (a measure) on this source; this record sends {str(value)[:80]!r}, which is "
        "not a number. A field keeps the type it was first stored with (as InfluxDB's field type conflict): send "
        "a number, or leave the field out."
    )


def label_conflict_message(name: str) -> str:
    """Why a record that sends a known label as a number is refused."""
    return (
        f"{name} is stored as a label (text) on this source; this record sends it as a number. A field keeps the "
        "type it was first stored with (as InfluxDB's field type conflict): send it as text (in quotes), or declare "
        "it in the source's schema."
    )


def _shown(value: Any) -> str:
    """A refused number as the message shows it: an integer of hundreds of digits is cut short."""
    text = repr(value)
    return text if len(text) <= 40 else f"{text[:20]}…({len(text)} digits)"


def text_storable(text: str) -> bool:
    """Whether PostgreSQL can hold `text`: no NUL character, and UTF-8 encodable (no lone surrogate, which a
    JSON escape such as "\\ud800" decodes to)."""
    if "\x00" in text:
        return False
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        return False
    return True


def record_raw(record: Record) -> str:
    """The record as text for the dead-letter store: the line as received, or the object re-serialised."""
    if record.raw is not None:
        return record.raw
    return json.dumps(record.fields, default=str, ensure_ascii=False)
