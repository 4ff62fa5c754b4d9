"""Prometheus figures for alerting: evaluations and their latency, notifications sent and failed (counted in the
process that did the work), and instances by state (read from the database at scrape time)."""

from __future__ import annotations

import logging

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from analytics_platform.metrics import scrape_collector_register

logger = logging.getLogger(__name__)

EVALUATIONS = Counter(
    "analytics_alert_evaluations_total", "Alert rule evaluations, by trigger and outcome.", ["trigger", "outcome"]
)
EVALUATION_DURATION = Histogram(
    "analytics_alert_evaluation_duration_seconds",
    "Time to evaluate one alert rule (queries, states, outbox), by trigger.",
    ["trigger"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)
INSTANCES_EVALUATED = Counter("analytics_alert_instances_evaluated_total", "Alert instances evaluated.")
TRANSITIONS = Counter("analytics_alert_transitions_total", "Alert instance state changes, by new state.", ["state"])
NOTIFICATIONS = Counter(
    "analytics_alert_notifications_total", "Notification deliveries, by contact point kind and outcome.",
    ["kind", "outcome"],
)  # fmt: skip


class InstancesByStateCollector:
    """Alert instances per state, counted in the database when /metrics is scraped."""

    @staticmethod
    def _family() -> GaugeMetricFamily:
        return GaugeMetricFamily("analytics_alert_instances", "Alert instances by state.", labels=["state"])

    def describe(self):
        return [self._family()]

    def collect(self):
        from apps.alerts.alerting.selectors import alert_instance_state_counts

        family = self._family()
        try:
            for state, count in alert_instance_state_counts().items():
                family.add_metric([state], count)
        except Exception:  # a scrape must not fail because the database blinked
            logger.warning("alert instance counts unavailable for /metrics", exc_info=True)
        yield family


_registered = False


def alerting_collectors_register() -> None:
    """Serve the instances-by-state gauge on /metrics (once per process; AlertsConfig.ready calls this)."""
    global _registered
    if not _registered:
        scrape_collector_register(InstancesByStateCollector())
        _registered = True
