"""Backtest a rule over the past (the rule editor's preview): where it would have fired, and how many
notifications it would have sent. Read-only.

One query engine call per query ref, bucketed by the step (the rule's interval, coarser when the range would
need more than MAX_STEPS), with the rule's reduction as the bucket aggregation (`mean` is the engine's `avg`;
`rate` is the change between consecutive buckets' last values per second). Each bucket is one evaluation: the
window is approximated by the step. The state machine is the one live evaluation uses (states.py), no data
included: a step without a value once the rule's `no data for` has passed since the group's last value (or the
range's start, as live evaluation counts from the rule's creation) moves it to NoData, which notifies as live
evaluation does; an ungrouped rule with no series at all in the range is one group without data.
"""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import datetime, timedelta

from apps.alerts.alerting.evaluation import EvaluationError, labels_fingerprint, rule_condition, rule_principal
from apps.alerts.alerting.expressions import expression_compute, expression_parse
from apps.alerts.alerting.rule_spec import iso
from apps.alerts.alerting.states import ALERTING_STATES, Step, state_next
from apps.alerts.models import SCORE_METRIC_SUFFIX, AlertRule, AlertState
from apps.storage.policies import DataAccessDenied
from apps.storage.query.engine import QueryTimeout, query_execute
from apps.storage.query.spec import QuerySpecError, query_spec_parse
from apps.storage.tiers import bucket_floor

MAX_STEPS = 2_000
MAX_RANGE = timedelta(days=7)
# The engine's bucket aggregation for each reduction (rate is computed from consecutive buckets' last values).
ENGINE_AGGREGATION = {
    "mean": "avg", "rate": "last", "p50": "p50", "p75": "p75", "p90": "p90", "p95": "p95", "p99": "p99",
    "last": "last", "min": "min", "max": "max", "sum": "sum", "count": "count",
}  # fmt: skip


def rule_backtest(*, rule: AlertRule, start: datetime, end: datetime) -> dict:
    """Per label set: the value and state at each step, the transitions, and the notifications it would send."""
    if end - start > MAX_RANGE:
        raise EvaluationError("a backtest covers at most 7 days.")
    step = max(rule.interval_seconds, math.ceil((end - start).total_seconds() / MAX_STEPS), 1)
    condition = rule_condition(rule)
    refs = [item["ref"] for item in rule.queries]
    per_ref: dict[str, dict[str, dict[str, float]]] = {}
    labels_of: dict[str, dict] = {}
    times: list[str] = []
    for item in rule.queries:
        series, times = _bucketed(rule=rule, query=item["query"], step=step, start=start, end=end)
        per_ref[item["ref"]] = {}
        for labels, values in series:
            fingerprint = labels_fingerprint(labels)
            labels_of[fingerprint] = labels
            per_ref[item["ref"]][fingerprint] = values
    tree = expression_parse(rule.expression, refs=set(refs)) if rule.expression else None
    if not labels_of and not rule.group_by and rule.no_data_seconds is not None:
        labels_of[labels_fingerprint({})] = {}  # the one instance of an ungrouped rule, even without any data
        times = times or _step_times(start=start, end=end, step=step)
    groups = []
    notifications = 0
    for fingerprint, labels in sorted(labels_of.items(), key=lambda item: sorted(item[1].items())):
        state, since, last_breach, last_data = AlertState.NORMAL, start, None, start
        timeline, transitions = [], []
        for moment_text in times:
            moment = datetime.fromisoformat(moment_text)
            values = {ref: per_ref[ref].get(fingerprint, {}).get(moment_text) for ref in refs}
            value = expression_compute(tree, values) if tree is not None else values[refs[0]]
            if value is not None:
                last_data = moment
            no_data = (
                value is None
                and rule.no_data_seconds is not None
                and (moment - last_data).total_seconds() >= rule.no_data_seconds
            )
            firing = state in (AlertState.FIRING, AlertState.RECOVERING)
            breach = None if value is None else condition.breaching(value, firing=firing)
            if breach:
                last_breach = moment
            nxt = state_next(
                state=state, state_since=since, last_breach_at=last_breach, step=Step(breach=breach, no_data=no_data),
                now=moment, for_seconds=rule.for_seconds, keep_firing_seconds=rule.keep_firing_seconds,
            )  # fmt: skip
            if nxt.changed:
                was_alerting, now_alerting = state in ALERTING_STATES, nxt.state in ALERTING_STATES
                notifications += was_alerting != now_alerting
                transitions.append({"at": moment_text, "from": state, "to": nxt.state, "value": value})
                state, since = nxt.state, moment
            timeline.append([moment_text, value, state])
        groups.append({"labels": labels, "timeline": timeline, "transitions": transitions})
    return {
        "start": iso(start), "end": iso(end), "step": f"{step}s", "groups": groups,
        "firings": sum(1 for group in groups for change in group["transitions"] if change["to"] == "firing"),
        "notifications": notifications,
    }  # fmt: skip


def _step_times(*, start: datetime, end: datetime, step: int) -> list[str]:
    """The times of the steps between `start` and `end`, as the engine's buckets of `step` seconds would be."""
    moment, times = bucket_floor(start, step), []
    while moment < end:
        times.append(iso(moment))
        moment += timedelta(seconds=step)
    return times


def _bucketed(
    *, rule: AlertRule, query: dict, step: int, start: datetime, end: datetime
) -> tuple[list[tuple[dict, dict[str, float]]], list[str]]:
    """(group labels, {bucket time: value}) per group, and every bucket time, read as the rule's owner."""
    condition = rule_condition(rule)
    reduction = "min" if condition.type == "anomaly" else rule.reduction
    body = {
        **query,
        "aggregation": ENGINE_AGGREGATION[reduction],
        "group_by": list(rule.group_by),
        "start": iso(start),
        "end": iso(end),
        "bucket": f"{step}s",
        "fill": "null",
    }
    if condition.type == "anomaly":
        body["metric"] = query["metric"] + SCORE_METRIC_SUFFIX
    if not rule.group_by:
        body.pop("group_by")
    try:
        result = query_execute(spec=query_spec_parse(body), principal=rule_principal(rule))
    except QuerySpecError as error:
        if error.field == "metric":
            return [], []
        raise EvaluationError(f"query {error.field}: {error.message}") from None
    except (QueryTimeout, DataAccessDenied) as error:
        raise EvaluationError(str(error)) from None
    merged: dict[str, dict[str, float]] = defaultdict(dict)
    labels_of: dict[str, dict] = {}
    times: list[str] = []
    for series in result.series:
        labels = {label: value for label, value in (series.get("labels") or {}).items() if label in rule.group_by}
        fingerprint = labels_fingerprint(labels)
        labels_of[fingerprint] = labels
        times = [moment for moment, _ in series["points"]] or times
        previous: tuple[float, float] | None = None
        for moment, value in series["points"]:
            if value is None:
                continue
            if reduction == "rate":
                seconds = datetime.fromisoformat(moment).timestamp()
                rate = None if previous is None else (value - previous[1]) / (seconds - previous[0])
                previous = (seconds, value)
                if rate is None:
                    continue
                value = rate
            merged[fingerprint][moment] = value
    return [(labels_of[fingerprint], merged[fingerprint]) for fingerprint in labels_of], times
