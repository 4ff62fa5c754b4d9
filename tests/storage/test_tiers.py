"""Time grains and the tier planner."""

from __future__ import annotations

import itertools
from datetime import UTC, datetime, timedelta

import pytest

from apps.storage.query.engine import segments_plan
from apps.storage.tiers import (
    TIER_1D,
    TIER_1H,
    TIER_1M,
    bucket_ceil,
    bucket_floor,
    duration_format,
    duration_parse,
    nice_bucket_at_least,
)

T0 = datetime(2026, 3, 10, 0, 0, tzinfo=UTC)


def test_durations_round_trip():
    assert duration_parse("90s") == 90
    assert duration_parse("5m") == 300
    assert duration_parse("2w") == 1_209_600
    assert duration_format(3600) == "1h"
    assert duration_format(90) == "90s"
    with pytest.raises(ValueError, match="not a duration"):
        duration_parse("5 minutes")
    with pytest.raises(ValueError, match="longer than zero"):
        duration_parse("0s")


def test_bucket_alignment():
    moment = T0 + timedelta(hours=5, minutes=17, seconds=3)
    assert bucket_floor(moment, 60) == T0 + timedelta(hours=5, minutes=17)
    assert bucket_ceil(moment, 3600) == T0 + timedelta(hours=6)
    assert bucket_ceil(T0, 86_400) == T0


def test_nice_buckets():
    assert nice_bucket_at_least(0.3) == 1
    assert nice_bucket_at_least(61) == 120
    assert nice_bucket_at_least(100, multiple_of=90) == 180
    assert nice_bucket_at_least(100, multiple_of=60) == 120
    assert nice_bucket_at_least(700_000) == 1_209_600


def _everything_materialized(tier):
    return None


def test_plan_uses_coarsest_tier_with_finer_edges():
    start = T0 + timedelta(hours=1, minutes=30, seconds=15)
    end = T0 + timedelta(days=3, hours=2, minutes=10)
    plan = segments_plan(start=start, end=end, bucket_seconds=86_400, materialized_until=_everything_materialized)
    assert [segment.tier for segment in plan] == [None, TIER_1M, TIER_1H, TIER_1D, TIER_1H, TIER_1M]
    # Contiguous and covering exactly [start, end).
    assert plan[0].start == start
    assert plan[-1].end == end
    assert all(left.end == right.start for left, right in itertools.pairwise(plan))


def test_plan_respects_materialization_and_bucket_divisibility():
    start, end = T0, T0 + timedelta(hours=5)
    watermark = T0 + timedelta(hours=3, minutes=20)

    def until(tier):
        return bucket_floor(watermark, tier.seconds)

    plan = segments_plan(start=start, end=end, bucket_seconds=3600, materialized_until=until)
    assert [(s.tier, s.start, s.end) for s in plan] == [
        (TIER_1H, T0, T0 + timedelta(hours=3)),
        (TIER_1M, T0 + timedelta(hours=3), watermark),
        (None, watermark, end),
    ]
    # A 90-second bucket is not a multiple of a minute: raw only.
    assert [s.tier for s in segments_plan(start=start, end=end, bucket_seconds=90, materialized_until=until)] == [None]
