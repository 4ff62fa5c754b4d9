"""'What changed' messages: one per committed batch, for live dashboards and alert evaluators.

One PUBLISH per batch, whatever its size or the number of listeners: consumers (the live fan-out in each web
process) subscribe once per process and work out per client what to send. A batch of at most
CHANGES_MAX_POINTS points also carries its points, so live raw-point panels are answered from the message
without reading them back from the database.
"""

from __future__ import annotations

import json
import logging
from datetime import datetime

from analytics_platform.redis_client import redis_channel, redis_client
from apps.storage.backends.base import Points
from apps.storage.columns import PointColumns, time_micros

logger = logging.getLogger(__name__)

CHANGES_CHANNEL = redis_channel("ingest", "changes")
# Bigger batches publish only their series and time span (about 30 bytes a point otherwise: a 2,000-point
# message is ~60 kB, decoded once per web process).
CHANGES_MAX_POINTS = 2_000


def changes_message(*, source_id: int, rows: Points) -> dict:
    """The compact message for a batch: its source, the series touched, the time span, and small batches' points.

    `rows` (when present) holds the points column by column, in the batch's order (a later point for the same
    series and time replaces an earlier one): series ids, times in microseconds since 1970 (UTC), values.
    """
    if isinstance(rows, PointColumns):
        return _columns_message(source_id=source_id, columns=rows)
    series_ids = sorted({row[0] for row in rows})
    moments = {row[1] for row in rows}  # few distinct times per batch: one pass, then min and max over those
    start = min(moments)
    end = max(moments)
    message: dict = {
        "source": source_id,
        "series": series_ids,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "points": len(rows),
    }
    if len(rows) <= CHANGES_MAX_POINTS:
        micros: dict[datetime, int] = {}  # a batch's points mostly share a few times
        times = []
        for _, moment, _ in rows:
            value = micros.get(moment)
            if value is None:
                value = micros[moment] = time_micros(moment)
            times.append(value)
        message["rows"] = {
            "series": [row[0] for row in rows],
            "times": times,
            "values": [float(row[2]) for row in rows],
        }
    return message


def _columns_message(*, source_id: int, columns: PointColumns) -> dict:
    """changes_message for a columnar batch (sorted by series and time, which keeps a key's later point later)."""
    message: dict = {
        "source": source_id,
        "series": columns.series_distinct(),
        "start": min(columns.moments).isoformat(),
        "end": max(columns.moments).isoformat(),
        "points": len(columns),
    }
    if len(columns) <= CHANGES_MAX_POINTS:
        message["rows"] = {
            "series": columns.series_ids.to_pylist(),
            "times": columns.micros.to_pylist(),
            "values": columns.values.to_pylist(),
        }
    return message


def changes_publish(*, source_id: int, rows: Points) -> None:
    """Publish what a committed batch changed (called from transaction.on_commit)."""
    if not rows:
        return
    try:
        redis_client().publish(CHANGES_CHANNEL, json.dumps(changes_message(source_id=source_id, rows=rows)))
    except Exception:  # the batch is committed; live views catch up on their next refresh
        logger.warning("change message for source %s not published", source_id, exc_info=True)
