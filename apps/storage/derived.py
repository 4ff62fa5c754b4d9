"""System reads of raw points for series the platform derives from others (anomaly scores), outside any principal.

Like the rollup refresh, these read points on the platform's own behalf to compute series of the same source;
nothing read here is returned to a user (what users read goes through the query engine and its data scope).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from django.db import connections

DerivedPoint = tuple[int, datetime, float]


def points_after(
    *, cursors: Mapping[int, datetime | None], per_series: int, limit: int, alias: str = "default"
) -> list[DerivedPoint]:
    """Points of each series later than its cursor (all, for None): at most `per_series` each, oldest first, and
    at most `limit` in all, ordered by time (then series)."""
    if not cursors:
        return []
    series_ids = list(cursors)
    after = [cursors[series_id] for series_id in series_ids]
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT p.series_id, p.time, p.value "
            "FROM unnest(%s::integer[], %s::timestamptz[]) AS c(series_id, after) "
            "CROSS JOIN LATERAL (SELECT q.series_id, q.time, q.value FROM points q "
            "  WHERE q.series_id = c.series_id AND q.time > coalesce(c.after, '-infinity'::timestamptz) "
            "  ORDER BY q.time LIMIT %s) AS p "
            "ORDER BY p.time, p.series_id LIMIT %s",
            [series_ids, after, per_series, limit],
        )
        return cursor.fetchall()


def points_latest(*, series_ids: Sequence[int], count: int, alias: str = "default") -> dict[int, list[float]]:
    """The values of each series' `count` newest points, newest first."""
    if not series_ids:
        return {}
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "SELECT c.series_id, p.value FROM unnest(%s::integer[]) AS c(series_id) "
            "CROSS JOIN LATERAL (SELECT q.time, q.value FROM points q WHERE q.series_id = c.series_id "
            "  ORDER BY q.time DESC LIMIT %s) AS p ORDER BY c.series_id, p.time DESC",
            [list(series_ids), count],
        )
        latest: dict[int, list[float]] = {series_id: [] for series_id in series_ids}
        for series_id, value in cursor.fetchall():
            latest[series_id].append(value)
        return latest
