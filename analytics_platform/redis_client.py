"""One Redis client per process for the platform's own keys (ingest stats, rate limits, change events)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis:
    """A pooled client on REDIS_URL; short timeouts so a Redis outage fails a request instead of hanging it."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def redis_key(*parts: object) -> str:
    """A namespaced key, so the platform's keys never collide with the cache's or Celery's.

    The prefix (REDIS_KEY_PREFIX) also names pub/sub channels, which Redis shares across its databases: two
    deployments (or a demo and a test run) on one Redis server keep apart by using different prefixes.
    """
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(part) for part in parts)])
