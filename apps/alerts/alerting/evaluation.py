"""Evaluate a rule: read its queries through the query engine as the rule's owner, reduce each label set's window,
combine the queries with the expression, and test the condition. No writes here (see services.py).
"""

from __future__ import annotations

import hashlib
import json
import math
from collections import defaultdict
from dataclasses import dataclass, field, replace
from datetime import datetime, timedelta

from django.conf import settings

from apps.alerts.alerting.conditions import Condition, condition_parse
from apps.alerts.alerting.expressions import expression_compute, expression_parse
from apps.alerts.alerting.reductions import reduce_points
from apps.alerts.alerting.rule_spec import iso
from apps.alerts.detectors.calibration import sensitivity_level
from apps.alerts.models import SCORE_METRIC_SUFFIX, AlertRule, AnomalyDetection
from apps.sources.references import source_reference_q
from apps.storage.policies import DataAccessDenied, Principal
from apps.storage.query.engine import QueryTimeout, query_execute
from apps.storage.query.spec import QuerySpecError, query_spec_parse

# Points stamped slightly ahead of this host's clock (a device's clock runs fast) still count as the newest.
CLOCK_SKEW = timedelta(seconds=5)


class EvaluationError(Exception):
    """A rule's queries could not be read; every instance goes to Error with this message."""


@dataclass
class GroupResult:
    """One label set's outcome: the reduced value per ref, the rule's value, and the newest point's time."""

    labels: dict[str, str]
    values: dict[str, float | None] = field(default_factory=dict)
    value: float | None = None
    last_data_at: datetime | None = None


def labels_fingerprint(labels: dict[str, str]) -> str:
    """A stable id for a label set (the instance key)."""
    return hashlib.sha256(json.dumps(labels, sort_keys=True).encode()).hexdigest()[:32]


def rule_condition(rule: AlertRule) -> Condition:
    """The rule's parsed condition; an anomaly condition without a level takes its detection's level."""
    condition = condition_parse(rule.condition)
    if condition.type == "anomaly" and "level" not in rule.condition:
        query = rule.queries[0]["query"]
        detections = AnomalyDetection.objects.filter(metric=query["metric"], enabled=True)
        if query.get("source"):
            detections = detections.filter(
                source_reference_q(query["source"], path="source__"), source__organization_id=rule.organization_id
            )
        detection = detections.order_by("id").first()
        if detection is not None:
            condition = replace(condition, value=sensitivity_level(detection.sensitivity))
    return condition


# Reductions the engine computes in SQL (per 1-second-or-coarser bucket, combined here): far fewer rows than raw
# points (a 5-minute window of a 10 Hz series is 3,000 points, 300 buckets). Each maps to the bucket aggregations
# read and how buckets combine.
ENGINE_REDUCTIONS = {"last": ("last",), "min": ("min",), "max": ("max",), "sum": ("sum",), "count": ("count",),
                     "mean": ("sum", "count")}  # fmt: skip
MAX_BUCKETS = 1_000


def rule_results(*, rule: AlertRule, now: datetime) -> dict[str, GroupResult]:
    """Per fingerprint, what the rule's queries say over its window ending now; EvaluationError when unreadable."""
    if rule.owner is None or not rule.owner.is_active:
        raise EvaluationError("the rule's owner is gone or inactive; assign the rule to an active owner.")
    condition = rule_condition(rule)
    groups: dict[str, GroupResult] = {}
    per_ref: dict[str, dict[str, float | None]] = defaultdict(dict)
    # Rules that watch for missing data need the newest point's time: those read raw points.
    aggregated = condition.type != "anomaly" and rule.reduction in ENGINE_REDUCTIONS and rule.no_data_seconds is None
    for item in rule.queries:
        ref = item["ref"]
        if aggregated:
            for labels, reduced in _group_reductions(rule=rule, query=item["query"], now=now):
                fingerprint = labels_fingerprint(labels)
                groups.setdefault(fingerprint, GroupResult(labels=labels))
                per_ref[fingerprint][ref] = reduced
            continue
        series = _series_points(rule=rule, query=item["query"], condition=condition, now=now)
        by_group: dict[tuple, list[tuple[float, float]]] = defaultdict(list)
        group_labels: dict[tuple, dict[str, str]] = {}
        for labels, points in series:
            key = tuple(labels.get(label) for label in rule.group_by)
            group_labels[key] = {label: labels[label] for label in rule.group_by if labels.get(label) is not None}
            by_group[key].extend(points)
        for key, points in by_group.items():
            labels = group_labels[key]
            fingerprint = labels_fingerprint(labels)
            result = groups.setdefault(fingerprint, GroupResult(labels=labels))
            points.sort()
            if condition.type == "anomaly":
                # Scores of the last `points` points: the condition holds when even the lowest reaches the level.
                tail = points[-condition.points :]
                reduced = min(value for _, value in tail) if len(tail) == condition.points else None
            else:
                reduced = reduce_points(rule.reduction, points)
            per_ref[fingerprint][ref] = reduced
            if points:
                newest = datetime.fromtimestamp(points[-1][0], tz=now.tzinfo)
                if result.last_data_at is None or newest > result.last_data_at:
                    result.last_data_at = newest
    tree = expression_parse(rule.expression, refs={item["ref"] for item in rule.queries}) if rule.expression else None
    first_ref = rule.queries[0]["ref"]
    for fingerprint, result in groups.items():
        result.values = {item["ref"]: per_ref[fingerprint].get(item["ref"]) for item in rule.queries}
        result.value = expression_compute(tree, result.values) if tree is not None else result.values[first_ref]
    return groups


def rule_principal(rule: AlertRule) -> Principal:
    """Who a rule reads as: its owner, under the policies of the rule's organisation only (a source slug names
    that organisation's source, even when the owner belongs to others with the same slug)."""
    return Principal(user=rule.owner, organization_id=rule.organization_id)


def _engine_read(rule: AlertRule, body: dict, now: datetime):
    try:
        return query_execute(spec=query_spec_parse(body, now=now), principal=rule_principal(rule))
    except QuerySpecError as error:
        if error.field == "metric":
            return None  # a metric with no series (yet): no data, which `no data for` turns into an alert
        raise EvaluationError(f"query {error.field}: {error.message}") from None
    except QueryTimeout as error:
        raise EvaluationError(str(error)) from None
    except DataAccessDenied as error:
        raise EvaluationError(f"the owner may not read data: {error}") from None


def _group_reductions(*, rule: AlertRule, query: dict, now: datetime) -> list[tuple[dict, float | None]]:
    """(group labels, reduced value) per group, the reduction computed by the engine per bucket and combined.

    The bucket is the window / 1,000 (at least 1 s) and the window's start is rounded down to it (so every bucket
    is whole), so the window read is at most 0.1% longer than the rule's.
    """
    bucket = max(1, math.ceil(rule.window_seconds / MAX_BUCKETS))
    end = now + CLOCK_SKEW
    start = datetime.fromtimestamp(math.floor((now.timestamp() - rule.window_seconds) / bucket) * bucket, tz=now.tzinfo)
    columns: dict[str, dict[tuple, tuple[dict, list]]] = {}
    for aggregation in ENGINE_REDUCTIONS[rule.reduction]:
        body = {
            **query, "aggregation": aggregation, "start": iso(start), "end": iso(end), "bucket": f"{bucket}s",
            "fill": "none", "max_points": settings.STORAGE_MAX_POINTS_PER_SERIES,
        }  # fmt: skip
        if rule.group_by:
            body["group_by"] = list(rule.group_by)
        result = _engine_read(rule, body, now)
        if result is None:
            return []
        columns[aggregation] = {}
        for series in result.series:
            labels = {k: v for k, v in (series.get("labels") or {}).items() if k in rule.group_by and v is not None}
            values = [value for _, value in series["points"] if value is not None]
            columns[aggregation][tuple(sorted(labels.items()))] = (labels, values)
    output = []
    first = columns[ENGINE_REDUCTIONS[rule.reduction][0]]
    for key, (labels, values) in first.items():
        reduction = rule.reduction
        if reduction == "last":
            reduced = values[-1] if values else None
        elif reduction == "min":
            reduced = min(values) if values else None
        elif reduction == "max":
            reduced = max(values) if values else None
        elif reduction in ("sum", "count"):
            reduced = math.fsum(values) if values else (0.0 if reduction == "count" else None)
        else:  # mean: the sum of the sums over the sum of the counts
            counts = columns["count"].get(key, ({}, []))[1]
            total = math.fsum(counts)
            reduced = math.fsum(values) / total if total else None
        output.append((labels, reduced))
    return output


def _series_points(
    *, rule: AlertRule, query: dict, condition: Condition, now: datetime
) -> list[tuple[dict, list[tuple[float, float]]]]:
    """(labels, [(seconds, value)]) of each series the query selects in the window, read as the rule's owner."""
    body = {
        **query,
        "aggregation": "raw",
        "start": iso(now - timedelta(seconds=rule.window_seconds)),
        "end": iso(now + CLOCK_SKEW),
        "max_points": settings.STORAGE_MAX_POINTS_PER_SERIES,
    }
    if condition.type == "anomaly":
        body["metric"] = query["metric"] + SCORE_METRIC_SUFFIX
    result = _engine_read(rule, body, now)
    if result is None:
        return []
    if result.downsampled:
        raise EvaluationError(
            f"the window holds more than {settings.STORAGE_MAX_POINTS_PER_SERIES:,} points of a series; "
            f"use a shorter window or a reduction computed in the database ({', '.join(ENGINE_REDUCTIONS)})."
        )
    output = []
    for series in result.series:
        points = [
            (datetime.fromisoformat(moment).timestamp(), float(value))
            for moment, value in series["points"]
            if value is not None
        ]
        output.append((series.get("labels") or {}, points))
    return output
