"""The query spec: parsing and validating what a client asks for, with errors that name the field."""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings
from django.utils.dateparse import parse_datetime

from analytics_platform.json_text import UNSTORABLE_TEXT_MESSAGE, text_storable
from apps.storage.services import LABEL_NAME_MAX_LENGTH, LABEL_VALUE_MAX_LENGTH, METRIC_MAX_LENGTH
from apps.storage.tiers import UNIT_SECONDS, duration_format, duration_parse, nice_bucket_at_least

AGGREGATIONS = ("avg", "sum", "count", "min", "max", "last")
PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
RAW = "raw"
FILL_MODES = ("null", "previous", "none")
# Reductions of each series' bucketed values to one number (see apps/storage/query/reduce.py).
CALCULATIONS = ("last", "last_not_null", "first", "mean", "sum", "min", "max", "count", "delta", "range")
COMBINATIONS = ("sum", "mean", "min", "max", "none")
FILTER_OPERATORS = ("eq", "ne", "in", "not_in", "regex")
MAX_FILTERS = 20
MAX_GROUP_BY = 5
MAX_REGEX_LENGTH = 200
MAX_LIMIT = 1_000
DEFAULT_LIMIT = 100
_RELATIVE = re.compile(r"^(?:now)?\s*-\s*(\d+)\s*([smhdw])$")
_LABEL_NAME = re.compile(rf"^[A-Za-z_][A-Za-z0-9_.\-]{{0,{LABEL_NAME_MAX_LENGTH - 1}}}$")
SOURCE_SLUG_MAX_LENGTH = 201  # "<organization>/<slug>" (apps/sources/references.py)
MAX_TIME_TEXT = 64  # the longest ISO 8601 time with a fraction and an offset is 32 characters


class QuerySpecError(ValueError):
    """A spec a client must fix; `field` names the offending field."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field = field
        self.message = message


@dataclass(frozen=True)
class LabelFilter:
    """A condition on one label: eq/ne take one value, in/not_in several, regex a pattern."""

    label: str
    operator: str
    values: tuple[str, ...]


@dataclass(frozen=True)
class Reduce:
    """Reduce each series to one value (`calculation` over its buckets), then across series (`combination`)."""

    calculation: str
    combination: str = "none"


@dataclass(frozen=True)
class QuerySpec:
    """A validated query."""

    metric: str
    start: datetime
    end: datetime
    aggregation: str = "avg"
    source: str | None = None
    filters: tuple[LabelFilter, ...] = ()
    bucket_seconds: int | None = None
    group_by: tuple[str, ...] = ()
    limit: int = DEFAULT_LIMIT
    fill: str = "null"
    max_points: int = 1_000
    exact_bucket: bool = False  # refuse rather than widen a bucket that exceeds the point budget
    reduce: Reduce | None = None

    @property
    def percentile(self) -> float | None:
        return PERCENTILES.get(self.aggregation)

    @property
    def range_seconds(self) -> float:
        return (self.end - self.start).total_seconds()


def time_parse(value: Any, *, field: str, now: datetime) -> datetime:
    """'now', a relative time like '-24h' or 'now-15m', or ISO 8601 (UTC when no offset is given)."""
    if isinstance(value, datetime):
        return value if value.tzinfo else value.replace(tzinfo=UTC)
    if not isinstance(value, str) or not value.strip():
        raise QuerySpecError(field, "give 'now', a relative time such as '-24h', or an ISO 8601 time.")
    text = value.strip()
    if len(text) > MAX_TIME_TEXT or not text_storable(text):
        raise QuerySpecError(field, "give 'now', a relative time such as '-24h', or an ISO 8601 time.")
    if text == "now":
        return now
    relative = _RELATIVE.match(text)
    if relative:
        return now - timedelta(seconds=int(relative.group(1)) * UNIT_SECONDS[relative.group(2)])
    try:
        parsed = parse_datetime(text.replace("Z", "+00:00") if text.endswith("Z") else text)
    except ValueError:
        parsed = None
    if parsed is None:
        raise QuerySpecError(
            field, f"{text!r} is not a time; use 'now', '-15m', '-24h', '-7d' or ISO 8601 like 2026-01-01T00:00:00Z."
        )
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _filters_parse(raw: Any) -> tuple[LabelFilter, ...]:
    if raw is None:
        return ()
    if not isinstance(raw, Mapping):
        raise QuerySpecError("filters", 'must be an object of label conditions, e.g. {"facility": "f1"}.')
    if len(raw) > MAX_FILTERS:
        raise QuerySpecError("filters", f"at most {MAX_FILTERS} label conditions.")
    parsed = []
    for label, condition in raw.items():
        field = f"filters.{_shown(label)}"
        if not isinstance(label, str) or not _LABEL_NAME.match(label):
            raise QuerySpecError(field, "label names start with a letter or _ and use letters, digits, _ . -")
        if isinstance(condition, str | int | float) and not isinstance(condition, bool):
            parsed.append(LabelFilter(label, "eq", (_value_checked(str(condition), field),)))
        elif isinstance(condition, list):
            parsed.append(LabelFilter(label, "in", _values(condition, field)))
        elif isinstance(condition, Mapping) and len(condition) == 1:
            operator, operand = next(iter(condition.items()))
            if operator not in FILTER_OPERATORS:
                raise QuerySpecError(field, f"unknown operator {operator!r}; use one of {', '.join(FILTER_OPERATORS)}.")
            if operator in ("in", "not_in"):
                values = _values(operand, field)
            elif isinstance(operand, str | int | float) and not isinstance(operand, bool):
                values = (str(operand),) if operator == "regex" else (_value_checked(str(operand), field),)
            else:
                raise QuerySpecError(field, f"{operator} takes one value.")
            if operator == "regex":
                if not text_storable(values[0]):
                    raise QuerySpecError(field, UNSTORABLE_TEXT_MESSAGE)
                if len(values[0]) > MAX_REGEX_LENGTH:
                    raise QuerySpecError(field, f"regular expressions are limited to {MAX_REGEX_LENGTH} characters.")
                try:
                    re.compile(values[0])
                except re.error as error:
                    raise QuerySpecError(field, f"invalid regular expression: {error}.") from None
            parsed.append(LabelFilter(label, operator, values))
        else:
            raise QuerySpecError(
                field, 'use a value, a list of values, or one of {"ne": v}, {"not_in": [...]}, {"regex": "..."}.'
            )
    return tuple(parsed)


def _values(raw: Any, field: str) -> tuple[str, ...]:
    if not isinstance(raw, list) or not raw:
        raise QuerySpecError(field, "give a non-empty list of values.")
    if len(raw) > 1_000:
        raise QuerySpecError(field, "at most 1,000 values.")
    if any(isinstance(item, bool) or not isinstance(item, str | int | float) for item in raw):
        raise QuerySpecError(field, "values must be strings or numbers.")
    return tuple(_value_checked(str(item), field) for item in raw)


def _shown(name: Any) -> str:
    """A client's field name as errors name it: long ones cut (the response must not echo megabytes)."""
    text = str(name)
    return text if len(text) <= 100 else text[:100] + "..."


def _value_checked(value: str, field: str) -> str:
    """A label value to compare with: stored values are storable text of bounded length, so this must be too."""
    if not text_storable(value):
        raise QuerySpecError(field, UNSTORABLE_TEXT_MESSAGE)
    if len(value) > LABEL_VALUE_MAX_LENGTH:
        raise QuerySpecError(field, f"label values hold at most {LABEL_VALUE_MAX_LENGTH} characters.")
    return value


def _text_checked(value: str, field: str, *, maximum: int) -> str:
    if not text_storable(value):
        raise QuerySpecError(field, UNSTORABLE_TEXT_MESSAGE)
    if len(value) > maximum:
        raise QuerySpecError(field, f"at most {maximum} characters.")
    return value


def _positive_int(data: Mapping, key: str, default: int, maximum: int) -> int:
    value = data.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, int) or value < 1:
        raise QuerySpecError(key, "must be a positive whole number.")
    if value > maximum:
        raise QuerySpecError(key, f"must be at most {maximum:,}.")
    return value


def query_spec_parse(data: Any, *, now: datetime | None = None) -> QuerySpec:
    """Validate a client's query (the JSON body of POST /api/v1/query) into a QuerySpec."""
    now = now or datetime.now(UTC)
    if not isinstance(data, Mapping):
        raise QuerySpecError("body", "send a JSON object.")
    known = {
        "source", "metric", "filters", "aggregation", "start", "end", "bucket",
        "group_by", "limit", "fill", "max_points", "exact_bucket", "reduce",
    }  # fmt: skip
    unknown = sorted(set(data) - known)
    if unknown:
        raise QuerySpecError(_shown(unknown[0]), f"unknown field; the fields are {', '.join(sorted(known))}.")
    metric = data.get("metric")
    if not isinstance(metric, str) or not metric:
        raise QuerySpecError("metric", "required: the metric to read, e.g. 'temperature'.")
    _text_checked(metric, "metric", maximum=METRIC_MAX_LENGTH)
    source = data.get("source")
    if source is not None and (not isinstance(source, str) or not source.strip()):
        raise QuerySpecError("source", "must be a source slug (or '<organization>/<slug>').")
    if source is not None:
        _text_checked(source.strip(), "source", maximum=SOURCE_SLUG_MAX_LENGTH)
    aggregation = data.get("aggregation", "avg")
    allowed = (*AGGREGATIONS, *PERCENTILES, RAW)
    if not isinstance(aggregation, str) or aggregation not in allowed:
        raise QuerySpecError("aggregation", f"unknown aggregation; use one of {', '.join(allowed)}.")
    start = time_parse(data.get("start", "-1h"), field="start", now=now)
    end = time_parse(data.get("end", "now"), field="end", now=now)
    if end <= start:
        raise QuerySpecError("end", "must be after start.")
    exact_bucket = data.get("exact_bucket", False)
    if not isinstance(exact_bucket, bool):
        raise QuerySpecError("exact_bucket", "must be true or false.")
    max_points = _positive_int(
        data, "max_points", settings.STORAGE_DEFAULT_MAX_POINTS, settings.STORAGE_MAX_POINTS_PER_SERIES
    )
    bucket_seconds = None
    bucket = data.get("bucket")
    if bucket not in (None, "auto"):
        if not isinstance(bucket, str):
            raise QuerySpecError("bucket", "a duration such as '1m', '1h' or '1d', or 'auto'.")
        try:
            bucket_seconds = duration_parse(bucket)
        except ValueError as error:
            raise QuerySpecError("bucket", f"{error}; the smallest bucket is 1s.") from None
    if exact_bucket:
        if bucket_seconds is None:
            raise QuerySpecError("exact_bucket", "give a bucket such as '1m' to use it exactly.")
        # A bucket is a minimum interval that the engine widens to the point budget; an exact one is refused
        # instead when it exceeds the budget (max_points when given, else the most any query may ask for).
        budget = max_points if data.get("max_points") is not None else settings.STORAGE_MAX_POINTS_PER_SERIES
        buckets = (end - start).total_seconds() / bucket_seconds
        if buckets > budget:
            suggestion = duration_format(nice_bucket_at_least((end - start).total_seconds() / budget))
            raise QuerySpecError(
                "bucket",
                f"{bucket} over this range makes {buckets:,.0f} points per series; the most is {budget:,}. "
                f"Use a bucket of at least {suggestion}, a shorter range, or leave exact_bucket out to let the "
                "server widen it.",
            )
    group_by = data.get("group_by")
    if group_by is None:
        group_by = []
    if not isinstance(group_by, list) or any(
        not isinstance(label, str) or not _LABEL_NAME.match(label) for label in group_by
    ):
        raise QuerySpecError("group_by", 'a list of label names, e.g. ["facility"].')
    if len(group_by) > MAX_GROUP_BY:
        raise QuerySpecError("group_by", f"at most {MAX_GROUP_BY} labels.")
    if aggregation == RAW and group_by:
        raise QuerySpecError("group_by", "raw points cannot be grouped; choose an aggregation such as avg.")
    fill = data.get("fill", "null")
    if not isinstance(fill, str) or fill not in FILL_MODES:
        raise QuerySpecError("fill", f"use one of {', '.join(FILL_MODES)}.")
    return QuerySpec(
        # Taken exactly as given: a metric name may begin or end with a space (a line-protocol field key `f\ `).
        metric=metric,
        source=source.strip() if source else None,
        filters=_filters_parse(data.get("filters")),
        aggregation=aggregation,
        start=start,
        end=end,
        bucket_seconds=bucket_seconds,
        group_by=tuple(dict.fromkeys(group_by)),
        limit=_positive_int(data, "limit", DEFAULT_LIMIT, MAX_LIMIT),
        fill=fill,
        max_points=max_points,
        exact_bucket=exact_bucket,
        reduce=_reduce_parse(data.get("reduce")),
    )


def _reduce_parse(raw: Any) -> Reduce | None:
    if raw is None:
        return None
    if not isinstance(raw, Mapping):
        raise QuerySpecError("reduce", 'an object such as {"calculation": "last_not_null", "combination": "sum"}.')
    unknown = sorted(set(raw) - {"calculation", "combination"})
    if unknown:
        raise QuerySpecError(f"reduce.{_shown(unknown[0])}", "unknown field; the fields are calculation, combination.")
    calculation = raw.get("calculation")
    if not isinstance(calculation, str) or calculation not in CALCULATIONS:
        raise QuerySpecError("reduce.calculation", f"required; use one of {', '.join(CALCULATIONS)}.")
    combination = raw.get("combination", "none")
    if not isinstance(combination, str) or combination not in COMBINATIONS:
        raise QuerySpecError("reduce.combination", f"use one of {', '.join(COMBINATIONS)}.")
    return Reduce(calculation=calculation, combination=combination)
