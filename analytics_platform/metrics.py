"""Prometheus metrics: request counts and latencies, served at GET /metrics.

Under `manage.py serve` several web processes answer requests, and a scrape reaches one of them: each writes
its counters to files in PROMETHEUS_MULTIPROC_DIR (prometheus_client's multiprocess mode, which the launcher
sets), and /metrics sums every process's files. Figures computed at scrape time (ingest rates and connector lag
from Redis) are collectors registered with `scrape_collector_register`, served in both modes.
"""

from __future__ import annotations

import hmac
import os
import time
from collections.abc import Callable

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    multiprocess,
)
from prometheus_client.registry import Collector

HTTP_REQUESTS = Counter(
    "analytics_http_requests_total",
    "HTTP requests answered, by method, view and status code.",
    ["method", "view", "status"],
)
HTTP_LATENCY = Histogram(
    "analytics_http_request_duration_seconds",
    "Time from request to response, by method and view.",
    ["method", "view"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
_KNOWN_METHODS = {"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"}
_scrape_collectors: list[Collector] = []
_multiprocess_registry: CollectorRegistry | None = None


def scrape_collector_register(collector: Collector) -> None:
    """Serve a collector that computes its figures at scrape time (not per process) on /metrics."""
    if collector not in _scrape_collectors:
        _scrape_collectors.append(collector)
        REGISTRY.register(collector)


def scrape_registry() -> CollectorRegistry:
    """What /metrics serves: this process's registry, or under `serve` every web process's counters summed."""
    global _multiprocess_registry
    directory = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not directory:
        return REGISTRY
    if _multiprocess_registry is None:
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry, path=directory)
        for collector in _scrape_collectors:
            registry.register(collector)
        _multiprocess_registry = registry
    return _multiprocess_registry


class RequestMetricsMiddleware:
    """Count and time every request, labelled by the resolved view name (bounded cardinality)."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        started = time.perf_counter()
        response = self.get_response(request)
        match = getattr(request, "resolver_match", None)
        view = match.view_name if match and match.view_name else "unmatched"
        method = request.method if request.method in _KNOWN_METHODS else "OTHER"
        HTTP_LATENCY.labels(method, view).observe(time.perf_counter() - started)
        HTTP_REQUESTS.labels(method, view, str(response.status_code)).inc()
        return response


@never_cache
@require_GET
def metrics_view(request: HttpRequest) -> HttpResponse:
    """Expose metrics; when METRICS_TOKEN is set, require it as a Bearer token (production always requires it)."""
    expected = settings.METRICS_TOKEN
    if not expected and settings.METRICS_REQUIRE_TOKEN:
        response = HttpResponse(
            "Metrics need a token: set METRICS_TOKEN and send it as 'Authorization: Bearer <token>'.\n",
            status=401,
            content_type="text/plain",
        )
        response["WWW-Authenticate"] = 'Bearer realm="metrics"'
        return response
    if expected:
        supplied = request.headers.get("Authorization", "").removeprefix("Bearer ").strip()
        if not hmac.compare_digest(supplied.encode(), expected.encode()):
            response = HttpResponse("Missing or wrong metrics token.\n", status=401, content_type="text/plain")
            response["WWW-Authenticate"] = 'Bearer realm="metrics"'
            return response
    return HttpResponse(generate_latest(scrape_registry()), content_type=CONTENT_TYPE_LATEST)
