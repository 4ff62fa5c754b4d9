"""One Redis client per process for the platform's own keys (ingest stats, rate limits, change events)."""

from __future__ import annotations

import functools

import redis
from django.conf import settings


@functools.cache
def redis_client() -> redis.Redis:
    """A pooled client on REDIS_URL; short timeouts so a Redis outage fails a request instead of hanging it."""
    return redis.Redis.from_url(settings.REDIS_URL, socket_timeout=2, socket_connect_timeout=2)


def redis_channel(*parts: object) -> str:
    """A pub/sub channel name: the prefix, the Redis database number of REDIS_URL, then `parts`.

    Redis keeps keys per database but shares pub/sub channels across all of them, so two deployments told apart
    only by their database number (redis://host/0 and redis://host/1, both with the default prefix) heard each
    other's channels: one's ingest changes (series ids and points) reached the other's live panels, and its
    WebSocket closes the other's users. The database number in the name keeps them apart by default.
    """
    database = redis.connection.parse_url(settings.REDIS_URL).get("db", 0)
    return redis_key(f"db{database}", *parts)


def redis_key(*parts: object) -> str:
    """A namespaced key, so the platform's keys never collide with the cache's or Celery's.

    The prefix (REDIS_KEY_PREFIX) also names pub/sub channels, which Redis shares across its databases: two
    deployments (or a demo and a test run) on one Redis server keep apart by using different prefixes.
    """
    return ":".join([settings.REDIS_KEY_PREFIX, *(str(part) for part in parts)])
