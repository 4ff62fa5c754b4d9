"""Prometheus figures for ingestion (served at /metrics).

Counters count what web processes did (summed over them under `manage.py serve`). Rates per source and
connector lag come from Redis at scrape time, so /metrics shows what the connector process did too.
"""

from __future__ import annotations

import json
import logging
import time

from prometheus_client import Counter, Histogram
from prometheus_client.core import GaugeMetricFamily
from prometheus_client.registry import Collector

from analytics_platform.metrics import scrape_collector_register
from analytics_platform.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

INGEST_POINTS = Counter(
    "analytics_ingest_points_total",
    "Points stored by ingestion in this process.",
    ["organization", "source", "transport"],
)
INGEST_RECORDS_REJECTED = Counter(
    "analytics_ingest_rejected_total",
    "Records refused into the dead-letter store, by error code.",
    ["organization", "source", "code"],
)
INGEST_FIELDS_IGNORED = Counter(
    "analytics_ingest_fields_ignored_total",
    "Fields of accepted line-protocol lines that were not stored: undeclared strings (reason=string) and fields "
    "named time (reason=time).",
    ["organization", "source", "reason"],
)
INGEST_POINTS_OVERWRITTEN = Counter(
    "analytics_ingest_points_overwritten_total",
    "Points replaced within their own batch by a later point of the same series and microsecond.",
    ["organization", "source"],
)
INGEST_REQUESTS_REFUSED = Counter(
    "analytics_ingest_requests_refused_total", "Ingest requests refused whole (401, 409, 413, 429 ...).", ["status"]
)
INGEST_BATCH_SECONDS = Histogram(
    "analytics_ingest_batch_seconds",
    "Time from validation to commit per batch.",
    ["transport"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0),
)

CONNECTOR_STATE_KEY = redis_key("connectors", "state")
CONNECTOR_STATE_MAX_AGE_SECONDS = 60.0


def connector_state_publish(*, connector: str, lag: float | None, lag_seconds: float | None, batches: int) -> None:
    """Record a connector's lag (messages behind, seconds behind) for /metrics and the source page."""
    state = {"lag": lag, "lag_seconds": lag_seconds, "batches": batches, "at": time.time()}
    redis_client().hset(CONNECTOR_STATE_KEY, connector, json.dumps(state))


def connector_states() -> dict[str, dict]:
    """Recently reported connector states, by connector key."""
    now = time.time()
    states = {}
    for name, payload in redis_client().hgetall(CONNECTOR_STATE_KEY).items():
        state = json.loads(payload)
        if now - state.get("at", 0) <= CONNECTOR_STATE_MAX_AGE_SECONDS:
            states[name.decode()] = state
    return states


class IngestRateCollector(Collector):
    """Per-source ingest rates and per-connector lag, read from Redis when /metrics is scraped."""

    @staticmethod
    def _families() -> tuple[GaugeMetricFamily, ...]:
        points = GaugeMetricFamily(
            "analytics_ingest_points_per_second", "Points per second over the last minute.", labels=["source"]
        )
        rejected = GaugeMetricFamily(
            "analytics_ingest_rejected_per_second",
            "Refused records per second over the last minute.",
            labels=["source"],
        )
        lag = GaugeMetricFamily("analytics_connector_lag", "Messages a connector is behind.", labels=["connector"])
        lag_seconds = GaugeMetricFamily(
            "analytics_connector_lag_seconds",
            "Age of the newest message a connector has not stored.",
            labels=["connector"],
        )
        return points, rejected, lag, lag_seconds

    def describe(self):
        # Registration asks what we export; answering from here keeps it from touching Redis or the database.
        return list(self._families())

    def collect(self):
        from apps.ingestion.stats import stats_get
        from apps.sources.models import Source

        points, rejected, lag, lag_seconds = self._families()
        try:
            sources = source_metric_labels(Source.objects.values_list("id", "organization__slug", "slug"))
            for source_id, stats in stats_get(source_ids=list(sources)).items():
                points.add_metric([sources[source_id]], stats.points_per_second)
                rejected.add_metric([sources[source_id]], stats.rejected_per_second)
            for connector, state in connector_states().items():
                if state.get("lag") is not None:
                    lag.add_metric([connector], float(state["lag"]))
                if state.get("lag_seconds") is not None:
                    lag_seconds.add_metric([connector], float(state["lag_seconds"]))
        except Exception:  # a scrape must not fail because Redis or the database blinked
            logger.warning("ingest figures unavailable for /metrics", exc_info=True)
        yield from (points, rejected, lag, lag_seconds)


def source_metric_labels(rows) -> dict[int, str]:
    """Each source's `source` label from (id, organisation slug, slug) rows: its slug, or '<organization>/<slug>'
    when sources of several organisations share it (slugs are unique per organisation only, and two samples with
    one label set would make Prometheus refuse the whole scrape)."""
    rows = list(rows)
    counts: dict[str, int] = {}
    for _, _, slug in rows:
        counts[slug] = counts.get(slug, 0) + 1
    return {
        source_id: slug if counts[slug] == 1 else f"{organization}/{slug}" for source_id, organization, slug in rows
    }


_collector_registered = False


def collector_register() -> None:
    """Serve the Redis-backed collector on /metrics, once per process."""
    global _collector_registered
    if not _collector_registered:
        scrape_collector_register(IngestRateCollector())
        _collector_registered = True
