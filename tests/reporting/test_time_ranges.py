"""Report periods: relative times and calendar presets in the report's time zone (DST included)."""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

import pytest

from analytics_platform.field_errors import FieldError
from apps.reporting.schedules import cron_clean
from apps.reporting.time_ranges import period_resolve, time_range_clean

LONDON = ZoneInfo("Europe/London")


@pytest.mark.parametrize(
    ("preset", "now", "start", "end"),
    [
        # 3 April 2026 (BST, UTC+1): last calendar month is March, which began in GMT.
        ("last_calendar_month", datetime(2026, 4, 3, 6, 0, tzinfo=UTC), datetime(2026, 3, 1, 0, 0, tzinfo=UTC),
         datetime(2026, 3, 31, 23, 0, tzinfo=UTC)),
        ("last_calendar_month", datetime(2026, 1, 15, 12, 0, tzinfo=UTC), datetime(2025, 12, 1, 0, 0, tzinfo=UTC),
         datetime(2026, 1, 1, 0, 0, tzinfo=UTC)),
        # Monday 6 April 2026 07:00 London: last calendar week is Mon 30 March to Mon 6 April.
        ("last_calendar_week", datetime(2026, 4, 6, 6, 0, tzinfo=UTC), datetime(2026, 3, 29, 23, 0, tzinfo=UTC),
         datetime(2026, 4, 5, 23, 0, tzinfo=UTC)),
        ("yesterday", datetime(2026, 3, 30, 6, 0, tzinfo=UTC), datetime(2026, 3, 29, 0, 0, tzinfo=UTC),
         datetime(2026, 3, 29, 23, 0, tzinfo=UTC)),  # the 23-hour day the clocks went forward
        ("month_to_date", datetime(2026, 4, 3, 6, 0, tzinfo=UTC), datetime(2026, 3, 31, 23, 0, tzinfo=UTC),
         datetime(2026, 4, 3, 6, 0, tzinfo=UTC)),
    ],
)  # fmt: skip
def test_calendar_presets_follow_the_report_zone(preset, now, start, end):
    assert period_resolve({"preset": preset}, now=now, zone=LONDON) == (start, end)


def test_relative_ranges_count_back_from_the_run():
    now = datetime(2026, 4, 3, 6, 30, tzinfo=UTC)
    assert period_resolve({"start": "-24h", "end": "now"}, now=now, zone=LONDON) == (
        datetime(2026, 4, 2, 6, 30, tzinfo=UTC), now,
    )  # fmt: skip


@pytest.mark.parametrize(
    ("value", "field"),
    [
        ({"start": "2026-01-01", "end": "now"}, "time_range.start"),
        ({"start": "-1h", "end": "-2h"}, "time_range.end"),
        ({"preset": "fortnight"}, "time_range.preset"),
        ({"preset": "yesterday", "start": "-1d"}, "time_range"),
        ("-7d", "time_range"),
    ],
)
def test_time_range_refusals_name_the_field(value, field):
    with pytest.raises(FieldError) as raised:
        time_range_clean(value)
    assert raised.value.field == field


def test_cron_expressions_are_checked_by_celerys_parser():
    assert cron_clean("0  7 * * 1") == "0 7 * * 1"
    for bad in ("0 7 * *", "61 7 * * 1", "0 25 * * *", "* * * * mon-funday", 7):
        with pytest.raises(FieldError):
            cron_clean(bad)
