"""'What changed' messages: one per committed batch, for live dashboards and alert evaluators.

One PUBLISH per batch, whatever its size or the number of listeners: consumers (the live fan-out in each web
process) subscribe once per process and work out per client what to send.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from datetime import datetime

from analytics_platform.redis_client import redis_client, redis_key

logger = logging.getLogger(__name__)

CHANGES_CHANNEL = redis_key("ingest", "changes")


def changes_message(*, source_id: int, rows: Sequence[tuple[int, datetime, float]]) -> dict:
    """The compact message for a batch: its source, the series touched and the time span they cover."""
    series_ids = sorted({row[0] for row in rows})
    start = min(row[1] for row in rows)
    end = max(row[1] for row in rows)
    return {
        "source": source_id,
        "series": series_ids,
        "start": start.isoformat(),
        "end": end.isoformat(),
        "points": len(rows),
    }


def changes_publish(*, source_id: int, rows: Sequence[tuple[int, datetime, float]]) -> None:
    """Publish what a committed batch changed (called from transaction.on_commit)."""
    if not rows:
        return
    try:
        redis_client().publish(CHANGES_CHANNEL, json.dumps(changes_message(source_id=source_id, rows=rows)))
    except Exception:  # the batch is committed; live views catch up on their next refresh
        logger.warning("change message for source %s not published", source_id, exc_info=True)
