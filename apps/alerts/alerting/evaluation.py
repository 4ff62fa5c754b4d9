"""Evaluate a rule: read its queries through the query engine as the rule's owner, reduce each label set's window,
combine the queries with the expression, and test the condition. No writes here (see services.py).
"""

from __future__ import annotations

import hashlib
import json
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
from apps.storage.policies import DataAccessDenied
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
            detections = detections.filter(source__slug=query["source"])
        detection = detections.order_by("id").first()
        if detection is not None:
            condition = replace(condition, value=sensitivity_level(detection.sensitivity))
    return condition


def rule_results(*, rule: AlertRule, now: datetime) -> dict[str, GroupResult]:
    """Per fingerprint, what the rule's queries say over its window ending now; EvaluationError when unreadable."""
    if rule.owner is None or not rule.owner.is_active:
        raise EvaluationError("the rule's owner is gone or inactive; assign the rule to an active owner.")
    condition = rule_condition(rule)
    groups: dict[str, GroupResult] = {}
    per_ref: dict[str, dict[str, float | None]] = defaultdict(dict)
    for item in rule.queries:
        ref = item["ref"]
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
    try:
        result = query_execute(spec=query_spec_parse(body, now=now), principal=rule.owner)
    except QuerySpecError as error:
        if error.field == "metric":
            return []  # a metric with no series (yet): no data, which `no data for` turns into an alert
        raise EvaluationError(f"query {error.field}: {error.message}") from None
    except QueryTimeout as error:
        raise EvaluationError(str(error)) from None
    except DataAccessDenied as error:
        raise EvaluationError(f"the owner may not read data: {error}") from None
    output = []
    for series in result.series:
        points = [
            (datetime.fromisoformat(moment).timestamp(), float(value))
            for moment, value in series["points"]
            if value is not None
        ]
        output.append((series.get("labels") or {}, points))
    return output
