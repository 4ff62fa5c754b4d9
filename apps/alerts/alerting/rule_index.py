"""Which rules a change message concerns, and whether its points could move an instance's state.

Built from the enabled rules: (source id, metric) -> rules reading that metric (a rule without a source reads
the metric of every source). A series id resolves once to its source, metric and labels, and then to the rules
whose label filters it passes with its instance fingerprint in each (cached until the index reloads), so a point
costs a dictionary look-up and a comparison per rule that reads it, however many rules there are.

A rule is *point-decidable* when one new point alone tells whether its state could change: one query, the `last`
reduction, a threshold or range condition. For those the index keeps the states the last evaluation left and asks
an evaluation at once only when a point breaches an instance that is not firing, or stops breaching one that is
(or the instance is without data or in error); while a pending or keep-firing period runs, within the minimum
interval. With 1,000 rules and 10,000 points a second that all stay in range, nothing is evaluated; a breaching
point costs one rule evaluation. The evaluation itself reads through the query engine under the owner's data
policies: the index only decides *when*.

Other rules (windows, expressions, anomaly scores) are evaluated after a change at most every
ALERTS_CHANGE_MIN_INTERVAL_SECONDS each.
"""

from __future__ import annotations

import re
import time
from collections import defaultdict
from dataclasses import dataclass, field

from django.conf import settings

from apps.alerts.alerting.conditions import Condition
from apps.alerts.alerting.evaluation import labels_fingerprint, rule_condition
from apps.alerts.models import SCORE_METRIC_SUFFIX, AlertInstance, AlertRule, AlertState
from apps.sources.models import Source
from apps.sources.references import source_reference_split
from apps.storage.models import Series
from apps.storage.query.spec import LabelFilter, QuerySpecError, query_spec_parse


@dataclass
class IndexedRule:
    """What the index knows of one rule."""

    id: int
    group_by: tuple[str, ...]
    condition: Condition
    decidable: bool
    filters: tuple[LabelFilter, ...] = ()
    states: dict[str, str] = field(default_factory=dict)  # fingerprint -> state after the last evaluation
    evaluated_at: float = float("-inf")  # monotonic

    def selects(self, labels: dict) -> bool:
        """Whether a series with these labels passes the rule's label filters (as the engine applies them; a
        regex PostgreSQL would read differently errs towards an evaluation, which the engine then decides)."""
        for label_filter in self.filters:
            value = labels.get(label_filter.label)
            value = None if value is None else str(value)
            operator, values = label_filter.operator, label_filter.values
            if operator in ("eq", "in") and value not in values:
                return False
            if operator in ("ne", "not_in") and value is not None and value in values:
                return False
            if operator == "regex":
                try:
                    if value is None or re.search(values[0], value) is None:
                        return False
                except re.error:
                    continue
        return True

    def decide(self, fingerprint: str, value: float) -> str:
        """Returns "now" when a new last value may move this instance's state at once, "later" when only time can (a
        pending or keep-firing period running: evaluated within the minimum interval), "" when nothing can."""
        state = self.states.get(fingerprint, AlertState.NORMAL)
        if state in (AlertState.NO_DATA, AlertState.ERROR):
            return "now"
        firing = state in (AlertState.FIRING, AlertState.RECOVERING)
        breach = self.condition.breaching(value, firing=firing)
        if state == AlertState.NORMAL:
            return "now" if breach else ""
        if state == AlertState.FIRING:
            return "" if breach else "now"
        if state == AlertState.PENDING:
            return "later" if breach else "now"
        return "now" if breach else "later"  # recovering


class RuleIndex:
    """(source, metric) -> rules, series id -> (source, metric, labels), and each rule's instance states."""

    def __init__(self) -> None:
        self.rules: dict[int, IndexedRule] = {}
        self.by_metric: dict[tuple[int | None, str], list[int]] = defaultdict(list)
        self.series: dict[int, tuple[int, str, dict] | None] = {}
        # series id -> (rule id, instance fingerprint) of every rule that reads it (cleared when the index reloads)
        self.series_rules: dict[int, list[tuple[int, str]]] = {}
        self.loaded_at = float("-inf")

    def load(self) -> None:
        """Read the enabled rules and their instances' states (at start, on a rules-changed message, every 30 s)."""
        # Slugs are unique per organisation: a rule's source is its own organisation's.
        slugs = {(organization, slug): source for source, organization, slug in Source.objects.values_list(
            "id", "organization_id", "slug")}  # fmt: skip
        rules: dict[int, IndexedRule] = {}
        by_metric: dict[tuple[int | None, str], list[int]] = defaultdict(list)
        for rule in AlertRule.objects.filter(enabled=True).order_by("id"):
            try:
                condition = rule_condition(rule)
            except ValueError:
                continue
            decidable = (
                len(rule.queries) == 1
                and not rule.expression
                and rule.reduction == "last"
                and condition.type != "anomaly"
            )
            filters: tuple[LabelFilter, ...] = ()
            if len(rule.queries) == 1 and rule.queries[0]["query"].get("filters"):
                try:
                    query = rule.queries[0]["query"]
                    filters = query_spec_parse({"metric": query["metric"], "filters": query["filters"]}).filters
                except QuerySpecError:
                    filters = ()
            rules[rule.id] = IndexedRule(rule.id, tuple(rule.group_by), condition, decidable, filters)
            for item in rule.queries:
                query = item["query"]
                metric = query["metric"] + (SCORE_METRIC_SUFFIX if condition.type == "anomaly" else "")
                source_id = (
                    slugs.get((rule.organization_id, source_reference_split(query["source"])[1]), -1)
                    if query.get("source")
                    else None
                )
                by_metric[(source_id, metric)].append(rule.id)
        for rule_id, fingerprint, state in AlertInstance.objects.filter(rule_id__in=list(rules)).values_list(
            "rule_id", "fingerprint", "state"
        ):
            rules[rule_id].states[fingerprint] = state
        previous = self.rules
        for rule_id, rule in rules.items():
            if rule_id in previous:
                rule.evaluated_at = previous[rule_id].evaluated_at
        self.rules, self.by_metric = rules, by_metric
        self.series_rules = {}
        self.loaded_at = time.monotonic()

    def states_update(self, rule_id: int, states: dict[str, str]) -> None:
        """Remember the states an evaluation left."""
        rule = self.rules.get(rule_id)
        if rule is not None:
            rule.states = dict(states)
            rule.evaluated_at = time.monotonic()

    def _series_resolve(self, series_ids: list[int]) -> None:
        unknown = [series_id for series_id in series_ids if series_id not in self.series]
        if not unknown:
            return
        for series_id, source_id, metric, labels in Series.objects.filter(id__in=unknown).values_list(
            "id", "source_id", "metric", "labels"
        ):
            self.series[series_id] = (source_id, metric, labels)

    def rules_touched(self, message: dict) -> tuple[set[int], set[int]]:
        """(rules to evaluate now, rules to evaluate once their minimum interval has passed) for a change message."""
        series_ids = message.get("series") or []
        self._series_resolve(series_ids)
        source = message.get("source")
        latest: dict[int, float] | None = None
        rows = message.get("rows")
        if rows:
            latest = {}
            newest: dict[int, int] = {}
            for series_id, micros, value in zip(rows["series"], rows["times"], rows["values"], strict=True):
                if micros >= newest.get(series_id, micros):
                    newest[series_id], latest[series_id] = micros, value
        now_rules: set[int] = set()
        later_rules: set[int] = set()
        for series_id in series_ids:
            resolved = self.series.get(series_id)
            if resolved is None or resolved[0] != source:
                continue  # not a series of this database (another deployment sharing the Redis channel)
            readers = self.series_rules.get(series_id)
            if readers is None:
                readers = self.series_rules[series_id] = self._readers(series_id)
            for rule_id, fingerprint in readers:
                rule = self.rules[rule_id]
                decision = (
                    "later"
                    if not rule.decidable or latest is None or series_id not in latest
                    else rule.decide(fingerprint, latest[series_id])
                )
                if decision == "now":
                    now_rules.add(rule_id)
                elif decision == "later":
                    later_rules.add(rule_id)
        return now_rules, later_rules - now_rules

    def _readers(self, series_id: int) -> list[tuple[int, str]]:
        """The rules that read a series, with the series' instance fingerprint in each."""
        resolved = self.series.get(series_id)
        if resolved is None:
            return []
        source_id, metric, labels = resolved
        readers = []
        for rule_id in (*self.by_metric.get((source_id, metric), ()), *self.by_metric.get((None, metric), ())):
            rule = self.rules[rule_id]
            if rule.selects(labels):
                group = {label: labels[label] for label in rule.group_by if labels.get(label) is not None}
                readers.append((rule_id, labels_fingerprint(group)))
        return readers

    def due(self, rule_ids: set[int]) -> tuple[set[int], set[int]]:
        """Split rules into those whose minimum interval since their last evaluation has passed and the rest."""
        now = time.monotonic()
        gap = settings.ALERTS_CHANGE_MIN_INTERVAL_SECONDS
        ready = {rule_id for rule_id in rule_ids if now - self.rules[rule_id].evaluated_at >= gap}
        return ready, rule_ids - ready
