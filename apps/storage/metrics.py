"""Prometheus figures for storage: query latency by tier and refused queries (served at /metrics)."""

from prometheus_client import Counter, Histogram

QUERY_DURATION = Histogram(
    "analytics_query_duration_seconds",
    "Query engine time per query, by the coarsest tier used.",
    ["tier"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 15.0),
)
QUERY_REFUSED = Counter("analytics_query_refused_total", "Queries refused, by the offending field.", ["field"])
POINTS_WRITTEN = Counter("analytics_points_written_total", "Points written to storage.")
