"""Liveness of the platform's dependencies, for GET /healthz and the worker heartbeat."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime

import redis
from django.conf import settings
from django.db import connections
from django.http import HttpRequest, JsonResponse
from django.urls import resolve
from django.views.decorators.cache import never_cache
from django.views.decorators.http import require_GET

WORKER_HEARTBEAT_KEY = "analytics:worker:heartbeat"
WORKER_HEARTBEAT_TTL_SECONDS = 120


@dataclass(frozen=True)
class CheckResult:
    """One dependency's status."""

    ok: bool
    latency_ms: float
    error: str | None = None


def _redis_client() -> redis.Redis:
    timeout = settings.HEALTHCHECK_TIMEOUT_SECONDS
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=timeout, socket_connect_timeout=timeout)


def database_check() -> CheckResult:
    """Run SELECT 1 on the default database."""
    started = time.perf_counter()
    try:
        with connections["default"].cursor() as cursor:
            cursor.execute("SELECT 1")
            cursor.fetchone()
    except Exception as error:  # any failure means "down"; the message says why
        connections["default"].close_if_unusable_or_obsolete()
        return CheckResult(False, _elapsed_ms(started), f"{type(error).__name__}: {error}".strip())
    return CheckResult(True, _elapsed_ms(started))


def redis_check() -> CheckResult:
    """PING Redis with a short timeout."""
    started = time.perf_counter()
    client = _redis_client()
    try:
        client.ping()
    except Exception as error:
        return CheckResult(False, _elapsed_ms(started), f"{type(error).__name__}: {error}".strip())
    finally:
        client.close()
    return CheckResult(True, _elapsed_ms(started))


def worker_heartbeat_record() -> datetime:
    """Store the time a Celery worker last ran the heartbeat task."""
    now = datetime.now(UTC)
    client = _redis_client()
    try:
        client.set(WORKER_HEARTBEAT_KEY, now.isoformat(), ex=WORKER_HEARTBEAT_TTL_SECONDS)
    finally:
        client.close()
    return now


def worker_heartbeat_last() -> str | None:
    """When a worker last reported, or None if none did within the TTL (or Redis is down)."""
    client = _redis_client()
    try:
        value = client.get(WORKER_HEARTBEAT_KEY)
    except Exception:
        return None
    finally:
        client.close()
    return value.decode() if value else None


def _elapsed_ms(started: float) -> float:
    return round((time.perf_counter() - started) * 1000, 2)


@never_cache
@require_GET
def healthz(request: HttpRequest) -> JsonResponse:
    """200 when PostgreSQL and Redis answer, 503 otherwise; the worker heartbeat is informational."""
    checks = {"database": database_check(), "redis": redis_check()}
    healthy = all(check.ok for check in checks.values())
    body = {
        "status": "ok" if healthy else "unavailable",
        "checks": {name: asdict(check) for name, check in checks.items()},
        "worker": {"last_heartbeat": worker_heartbeat_last() if checks["redis"].ok else None},
        "time": datetime.now(UTC).isoformat(),
    }
    return JsonResponse(body, status=200 if healthy else 503)


class HealthCheckMiddleware:
    """Answer GET /healthz before host validation and HTTPS redirects.

    Container and load-balancer probes call the process directly (Host: its IP or localhost), which
    ALLOWED_HOSTS would refuse; health must not depend on how the probe addresses the process.
    """

    def __init__(self, get_response) -> None:
        self.get_response = get_response
        self.match = resolve("/healthz")

    def __call__(self, request: HttpRequest):
        if request.path == "/healthz":
            request.resolver_match = self.match  # so request metrics label it "healthz"
            return healthz(request)
        return self.get_response(request)
