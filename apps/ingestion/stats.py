"""Live ingest figures per source in Redis: rate over the last minute, last-seen time, refused records.

Every batch costs one pipelined round trip of a fixed number of commands, whatever its size.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from datetime import UTC, datetime

from analytics_platform.redis_client import redis_client, redis_key

WINDOW_SECONDS = 10
RATE_WINDOWS = 6  # the rate is averaged over the last minute
_KEEP_SECONDS = WINDOW_SECONDS * (RATE_WINDOWS + 2)


@dataclass(frozen=True)
class SourceStats:
    """What the source page shows: points and records per second over the last minute, and when data last came."""

    points_per_second: float
    records_per_second: float
    rejected_per_second: float
    last_seen: datetime | None
    last_error_at: datetime | None


def _window(now: float) -> int:
    return int(now // WINDOW_SECONDS)


def stats_record(*, source_id: int, points: int, records: int, rejected: int, now: float | None = None) -> None:
    """Count one batch (called after its commit)."""
    now = time.time() if now is None else now
    window_key = redis_key("ingest", "rate", source_id, _window(now))
    pipe = redis_client().pipeline(transaction=False)
    pipe.hincrby(window_key, "points", points)
    pipe.hincrby(window_key, "records", records)
    if rejected:
        pipe.hincrby(window_key, "rejected", rejected)
        pipe.hset(redis_key("ingest", "seen", source_id), "error", repr(now))
    pipe.expire(window_key, _KEEP_SECONDS)
    if records or points:
        pipe.hset(redis_key("ingest", "seen", source_id), "data", repr(now))
    pipe.execute()


def stats_get(*, source_ids: list[int], now: float | None = None) -> dict[int, SourceStats]:
    """Figures for several sources in one round trip."""
    now = time.time() if now is None else now
    current = _window(now)
    # Complete windows only, so the rate does not dip at the start of each window.
    windows = range(current - RATE_WINDOWS, current)
    pipe = redis_client().pipeline(transaction=False)
    for source_id in source_ids:
        for window in windows:
            pipe.hmget(redis_key("ingest", "rate", source_id, window), "points", "records", "rejected")
        pipe.hmget(redis_key("ingest", "seen", source_id), "data", "error")
    replies = pipe.execute()
    result: dict[int, SourceStats] = {}
    span = float(WINDOW_SECONDS * RATE_WINDOWS)
    per_source = RATE_WINDOWS + 1
    for position, source_id in enumerate(source_ids):
        chunk = replies[position * per_source : (position + 1) * per_source]
        totals = [0, 0, 0]
        for reply in chunk[:-1]:
            for slot, value in enumerate(reply):
                totals[slot] += int(value or 0)
        seen_data, seen_error = chunk[-1]
        result[source_id] = SourceStats(
            points_per_second=totals[0] / span,
            records_per_second=totals[1] / span,
            rejected_per_second=totals[2] / span,
            last_seen=datetime.fromtimestamp(float(seen_data), UTC) if seen_data else None,
            last_error_at=datetime.fromtimestamp(float(seen_error), UTC) if seen_error else None,
        )
    return result


@dataclass(frozen=True, slots=True)
class RateLimited:
    """A batch the source's rate limit refused: when to try again, or that it is larger than one window allows."""

    retry_after: float  # seconds until the next window, where a batch of at most `allowance` points fits
    allowance: int  # points the source may write in one window
    too_large: bool  # the batch alone is over `allowance`: waiting never helps, it must be split


def rate_limit_allowance(*, limit_per_second: int) -> int:
    """Points a source may write in one window (the largest batch that can ever pass its limit)."""
    return limit_per_second * WINDOW_SECONDS


def rate_limit_take(
    *, source_id: int, points: int, limit_per_second: int, now: float | None = None
) -> RateLimited | None:
    """Reserve `points` against the source's limit for the current window; None if they fit, else why not.

    The limit is enforced per 10-second window (so one large batch fits), and a refused batch gives back
    what it reserved. A batch larger than a whole window's allowance is refused as `too_large` straight away:
    retrying it as it is would never succeed, so the sender must split it (HTTP: 413; connectors split by themselves).
    """
    now = time.time() if now is None else now
    window = _window(now)
    allowance = rate_limit_allowance(limit_per_second=limit_per_second)
    next_window = max((window + 1) * WINDOW_SECONDS - now, 0.1)
    if points > allowance:
        return RateLimited(retry_after=next_window, allowance=allowance, too_large=True)
    key = redis_key("ingest", "quota", source_id, window)
    client = redis_client()
    pipe = client.pipeline(transaction=False)
    pipe.incrby(key, points)
    pipe.expire(key, WINDOW_SECONDS * 2)
    used, _ = pipe.execute()
    if used <= allowance:
        return None
    client.decrby(key, points)
    return RateLimited(retry_after=next_window, allowance=allowance, too_large=False)
