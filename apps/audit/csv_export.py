"""Audit events as CSV, with every cell safe to open in a spreadsheet (no formula injection: the platform's one rule,
analytics_platform/spreadsheet_cells.py)."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Iterable, Iterator

from analytics_platform.spreadsheet_cells import csv_cell_safe
from apps.audit.models import AuditEvent

COLUMNS = [
    "time", "actor", "action", "object_type", "object_id", "object", "source_ip", "user_agent", "details",
]  # fmt: skip


def _row(event: AuditEvent) -> list[str]:
    return [
        csv_cell_safe(cell)
        for cell in (
            event.time.isoformat(),
            event.actor_description,
            event.action,
            event.object_type,
            event.object_id,
            event.object_repr,
            event.source_ip,
            event.user_agent,
            json.dumps(event.details, sort_keys=True, default=str) if event.details else "",
        )
    ]


def audit_events_csv_lines(events: Iterable[AuditEvent]) -> Iterator[str]:
    """The header, then one CSV line per event (a generator, for a streamed response)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow(COLUMNS)
    for event in events:
        writer.writerow(_row(event))
        yield buffer.getvalue()
        buffer.seek(0)
        buffer.truncate()
    if buffer.getvalue():
        yield buffer.getvalue()
