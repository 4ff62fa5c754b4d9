"""Which scheduled minute a beat tick is for: a run is keyed by the minute the cron names, not the minute the tick
happens to be handled in (a slow first run or a late redelivery must not start a second run)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from apps.reporting.schedules import cron_minute_due


@pytest.mark.parametrize(
    ("expression", "zone", "now", "due"),
    [
        # Handled 37 s and 2 min 5 s after Monday 07:00 London (GMT in December): both ticks are that minute's.
        (
            "0 7 * * 1",
            "Europe/London",
            datetime(2026, 12, 7, 7, 0, 37, tzinfo=UTC),
            datetime(2026, 12, 7, 7, 0, tzinfo=UTC),
        ),
        (
            "0 7 * * 1",
            "Europe/London",
            datetime(2026, 12, 7, 7, 2, 5, tzinfo=UTC),
            datetime(2026, 12, 7, 7, 0, tzinfo=UTC),
        ),
        # A Sunday: the latest Monday 07:00 is six days back.
        (
            "0 7 * * 1",
            "Europe/London",
            datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
            datetime(2026, 11, 30, 7, 0, tzinfo=UTC),
        ),
        # Summer time: 07:00 London is 06:00 UTC.
        (
            "0 7 * * 1",
            "Europe/London",
            datetime(2026, 7, 6, 6, 0, 59, tzinfo=UTC),
            datetime(2026, 7, 6, 6, 0, tzinfo=UTC),
        ),
        # Every 15 minutes; a step list; the first of the month at midnight in New York.
        (
            "*/15 * * * *",
            "UTC",
            datetime(2026, 12, 6, 10, 29, 59, tzinfo=UTC),
            datetime(2026, 12, 6, 10, 15, tzinfo=UTC),
        ),
        (
            "0 0 1 * *",
            "America/New_York",
            datetime(2026, 12, 6, 10, 0, tzinfo=UTC),
            datetime(2026, 12, 1, 5, 0, tzinfo=UTC),
        ),
        # Exactly on the minute.
        ("30 9 * * *", "UTC", datetime(2026, 12, 6, 9, 30, tzinfo=UTC), datetime(2026, 12, 6, 9, 30, tzinfo=UTC)),
    ],
)
def test_a_tick_is_for_the_latest_minute_the_cron_names(expression, zone, now, due):
    assert cron_minute_due(expression, zone=zone, now=now) == due
