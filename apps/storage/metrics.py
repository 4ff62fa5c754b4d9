"""Prometheus figures for storage: query latency by tier, refused queries, the backlog of late points' deltas
waiting to be folded into the rollups, and label keys whose history is being built (served at /metrics)."""

import logging

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily

from analytics_platform.metrics import scrape_collector_register

logger = logging.getLogger(__name__)

QUERY_DURATION = Histogram(
    "analytics_query_duration_seconds",
    "Query engine time per query, by the coarsest tier used.",
    ["tier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
QUERY_REFUSED = Counter("analytics_query_refused_total", "Queries refused, by the offending field.", ["field"])
POINTS_WRITTEN = Counter("analytics_points_written_total", "Points written to storage.")


class RollupBacklogCollector:
    """Late points' deltas not yet folded into the rollups, per tier, and how old the oldest bucket among them is,
    read from the database when /metrics is scraped (so every process reports the same figures)."""

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, GaugeMetricFamily]:
        pending = GaugeMetricFamily(
            "analytics_rollup_deltas_pending",
            "Late points' delta rows waiting to be folded into a rollup tier (queries add them meanwhile).",
            labels=["tier"],
        )
        oldest = GaugeMetricFamily(
            "analytics_rollup_deltas_oldest_bucket_age_seconds",
            "Age of the oldest bucket among a tier's pending deltas (the refresh folds oldest first).",
            labels=["tier"],
        )
        return pending, oldest

    @staticmethod
    def _building() -> GaugeMetricFamily:
        return GaugeMetricFamily(
            "analytics_label_rollup_keys_building",
            "Label keys whose history the refresh is still building (grouped queries read per-series rows meanwhile).",
        )

    def describe(self):
        return [*self._families(), self._building()]

    def collect(self):
        from apps.storage.selectors import label_keys_building, rollup_backlog

        pending, oldest = self._families()
        building = self._building()
        try:
            for tier, (count, age) in rollup_backlog().items():
                pending.add_metric([tier], count)
                if age is not None:
                    oldest.add_metric([tier], age)
            building.add_metric([], label_keys_building())
        except Exception:  # a scrape must not fail because the database blinked
            logger.warning("rollup backlog unavailable for /metrics", exc_info=True)
        yield from (pending, oldest, building)


_collector_registered = False


def collector_register() -> None:
    """Serve the rollup backlog on /metrics, once per process."""
    global _collector_registered
    if not _collector_registered:
        scrape_collector_register(RollupBacklogCollector())
        _collector_registered = True
