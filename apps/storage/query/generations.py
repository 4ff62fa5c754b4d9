"""Data generations: counters that writes increment once committed, so shared query answers computed before a
write never match a query asked after it (apps/storage/query/shared.py explains how answers use them)."""

from __future__ import annotations

import logging
from collections.abc import Iterable
from datetime import UTC, datetime

from analytics_platform.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

GLOBAL = "global"  # retention, late-write refolds, source changes: every answer
ALL = "all"  # any source's points: answers of queries without a source


# Keep the largest future point time with an increment, atomically: a later, smaller one must not lower it.
_RAISE_TO_SCRIPT = """
local current = redis.call('GET', KEYS[1])
if (not current) or tonumber(current) < tonumber(ARGV[1]) then redis.call('SET', KEYS[1], ARGV[1]) end
return redis.call('INCR', KEYS[2])
"""


def generation_key(part: str | int) -> str:
    return redis_key("query", "generation", part)


def future_key(part: str | int) -> str:
    return redis_key("query", "future", part)


def data_written(*, source_ids: Iterable[int] | None, latest: datetime | None = None) -> None:
    """After a commit that wrote points of these sources (None: unknown, so any): answers computed before no longer
    match.

    `latest` is the batch's latest point time; when it lies in the future it is remembered (see shared.py).
    """
    parts = (GLOBAL, ALL) if source_ids is None else (*sorted(set(source_ids)), ALL)
    try:
        client = redis_client()
        pipe = client.pipeline(transaction=False)
        future = latest is not None and latest > datetime.now(UTC)
        for part in parts:
            if future:
                pipe.eval(_RAISE_TO_SCRIPT, 2, future_key(part), generation_key(part), latest.timestamp())
            else:
                pipe.incr(generation_key(part))
        pipe.execute()
    except Exception:
        # Cached answers expire on their own (STORAGE_RESULT_CACHE_SECONDS); say loudly that some may be stale.
        logger.error("storage: could not invalidate shared query answers", exc_info=True)


def global_generation_bump() -> None:
    """Every shared answer is out of date (retention deleted data, late points were refolded, a source changed)."""
    try:
        redis_client().incr(generation_key(GLOBAL))
    except Exception:
        logger.error("storage: could not invalidate shared query answers", exc_info=True)


def source_changed(sender, instance, **kwargs) -> None:
    """Signal receiver: a source was saved or deleted (its slug may now name another source, or none)."""
    from django.db import transaction

    transaction.on_commit(global_generation_bump)
