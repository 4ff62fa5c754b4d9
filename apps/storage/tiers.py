"""Time grains in one place: rollup tiers, accepted bucket and duration syntax, and bucket alignment."""

from __future__ import annotations

import math
import re
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

# Buckets are aligned to this origin (a midnight UTC, so minutes, hours and days line up with it).
BUCKET_ORIGIN = datetime(2000, 1, 1, tzinfo=UTC)

UNIT_SECONDS = {"s": 1, "m": 60, "h": 3600, "d": 86_400, "w": 604_800}
_DURATION = re.compile(r"^(\d+)([smhdw])$")


@dataclass(frozen=True)
class Tier:
    """A rollup tier: its name, bucket width, table and the finer tier it is built from."""

    name: str
    seconds: int
    table: str
    source_table: str

    @property
    def interval(self) -> timedelta:
        return timedelta(seconds=self.seconds)

    @property
    def labels_table(self) -> str:
        """The tier's label rollup: the same aggregates per (source, metric, label key, label value)."""
        return f"{self.table}_labels"


TIER_1M = Tier("1m", 60, "points_1m", "points")
TIER_1H = Tier("1h", 3600, "points_1h", "points_1m")
TIER_1D = Tier("1d", 86_400, "points_1d", "points_1h")
TIERS_FINE_TO_COARSE = (TIER_1M, TIER_1H, TIER_1D)
TIERS_COARSE_TO_FINE = tuple(reversed(TIERS_FINE_TO_COARSE))
RAW = "raw"

# Bucket widths the engine picks when it must downsample to a point budget.
NICE_BUCKET_SECONDS = (
    1, 2, 5, 10, 15, 30, 60, 120, 300, 600, 900, 1800, 3600, 7200, 10_800, 21_600, 43_200, 86_400, 604_800,
)  # fmt: skip


def duration_parse(text: str) -> int:
    """Seconds in a duration like '30s', '5m', '1h', '7d', '2w'; ValueError otherwise."""
    match = _DURATION.match(text.strip())
    if not match:
        raise ValueError(f"{text!r} is not a duration; use a number and a unit s, m, h, d or w, e.g. '5m'")
    seconds = int(match.group(1)) * UNIT_SECONDS[match.group(2)]
    if seconds <= 0:
        raise ValueError(f"{text!r} must be longer than zero")
    return seconds


def duration_format(seconds: int) -> str:
    """The shortest exact spelling of a duration, e.g. 3600 -> '1h', 90 -> '90s'."""
    for unit in ("w", "d", "h", "m"):
        if seconds % UNIT_SECONDS[unit] == 0:
            return f"{seconds // UNIT_SECONDS[unit]}{unit}"
    return f"{seconds}s"


def bucket_floor(moment: datetime, seconds: int) -> datetime:
    """Start of the bucket of `seconds` width that contains `moment`."""
    offset = (moment - BUCKET_ORIGIN) // timedelta(seconds=seconds)
    return BUCKET_ORIGIN + offset * timedelta(seconds=seconds)


def bucket_ceil(moment: datetime, seconds: int) -> datetime:
    """The first bucket boundary at or after `moment`."""
    floor = bucket_floor(moment, seconds)
    return floor if floor == moment else floor + timedelta(seconds=seconds)


def nice_bucket_at_least(seconds: float, *, multiple_of: int = 1) -> int:
    """The smallest nice bucket width >= seconds that is a multiple of `multiple_of`.

    For an unusual `multiple_of` (say 90 s) the smallest whole multiple is used instead.
    """
    if multiple_of in NICE_BUCKET_SECONDS:
        for candidate in NICE_BUCKET_SECONDS:
            if candidate >= seconds and candidate % multiple_of == 0:
                return candidate
    unit = multiple_of if multiple_of > 1 else 604_800  # past a week: whole weeks
    return max(1, math.ceil(seconds / unit)) * unit
