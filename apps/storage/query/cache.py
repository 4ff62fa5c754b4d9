"""Cache of complete, stable buckets of aggregate queries (plain PostgreSQL backend).

A dashboard that shows the last 24 hours by minute re-asks for 1,440 buckets every few seconds, yet
only the newest ones change. Buckets that end at or before the rollup watermark change only when a
late point or a retention delete touches stored data, and both bump a generation counter after they
commit. So a cached bucket is reused while the generation is unchanged; everything else (the partial
first bucket, the buckets past the cache, the newest ones) is computed from storage every time.
The key is the exact set of series and their grouping, so two principals share an entry only when
their data scopes select the same series.
"""

from __future__ import annotations

import hashlib
import logging
from dataclasses import dataclass
from datetime import datetime

from django.core.cache import cache

from apps.storage.query.generations import global_generation_bump

logger = logging.getLogger(__name__)

GENERATION_KEY = "storage:query-cache:generation"
_KEY_PREFIX = "storage:query-cache:v1:"


@dataclass(frozen=True)
class CachedBuckets:
    """Values of complete buckets [first, end) per group, valid for one generation."""

    generation: int
    first: datetime
    end: datetime
    values: list[list[float | None]]


def generation_current() -> int | None:
    """The current generation, or None when the cache is unreachable (then nothing is cached)."""
    try:
        generation = cache.get(GENERATION_KEY)
        if generation is None:
            cache.add(GENERATION_KEY, 1, timeout=None)
            generation = cache.get(GENERATION_KEY)
    except Exception:
        logger.warning("storage: query cache unreachable; answering from storage", exc_info=True)
        return None
    return generation


def generation_bump() -> None:
    """Invalidate every cached bucket (stored data below the watermark changed), and every shared answer."""
    global_generation_bump()
    try:
        try:
            cache.incr(GENERATION_KEY)
        except ValueError:  # the key was evicted: any new value differs from what entries hold
            cache.set(GENERATION_KEY, 1_000_000 + int(datetime.now().timestamp()), timeout=None)
    except Exception:
        # Cached entries expire on their own (STORAGE_QUERY_CACHE_SECONDS); say loudly that some may be stale.
        logger.error("storage: could not invalidate the query cache", exc_info=True)


def cache_key(*, aggregation: str, bucket_seconds: int, series_ids: list[int], group_indexes: list[int]) -> str:
    """Identifies what a bucket's value depends on: the aggregation, the bucket and the series grouping."""
    digest = hashlib.sha256()
    digest.update(f"{aggregation}|{bucket_seconds}|".encode())
    digest.update(
        ",".join(f"{series_id}:{index}" for series_id, index in zip(series_ids, group_indexes, strict=True)).encode()
    )
    return _KEY_PREFIX + digest.hexdigest()


def cached_buckets_get(key: str) -> CachedBuckets | None:
    """The cached entry, if any (errors count as a miss)."""
    try:
        return cache.get(key)
    except Exception:
        logger.warning("storage: query cache read failed", exc_info=True)
        return None


def cached_buckets_set(key: str, entry: CachedBuckets, *, timeout: int) -> None:
    """Store an entry (errors are logged and ignored)."""
    try:
        cache.set(key, entry, timeout=timeout)
    except Exception:
        logger.warning("storage: query cache write failed", exc_info=True)
