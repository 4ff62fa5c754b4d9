"""A reference answer computed in Python from raw points, to check the engine against."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime, timedelta

from apps.storage.tiers import bucket_floor


def oracle_answer(
    *,
    points: dict[tuple[int, datetime], float],
    series_labels: dict[int, dict[str, str]],
    selected: set[int],
    aggregation: str,
    start: datetime,
    end: datetime,
    bucket_seconds: int,
    group_by: tuple[str, ...],
) -> dict[tuple, dict[datetime, float]]:
    """{group key: {bucket start: value}} from the final raw points of the selected series.

    Aggregates read the range from `start` down to a whole minute (a whole bucket under a minute), but not into an
    earlier bucket; a first bucket the range cuts holds only the points inside it and keeps its bucket start as
    its time.
    """
    start = max(bucket_floor(start, bucket_seconds), bucket_floor(start, min(bucket_seconds, 60)))
    cells: dict[tuple, dict[datetime, list[tuple[datetime, float]]]] = defaultdict(lambda: defaultdict(list))
    for (series_id, moment), value in points.items():
        if series_id not in selected or not (start <= moment < end):
            continue
        labels = series_labels[series_id]
        key = tuple(labels.get(label) for label in group_by) if group_by else (series_id,)
        cells[key][bucket_floor(moment, bucket_seconds)].append((moment, value))
    answer: dict[tuple, dict[datetime, float]] = {}
    for key, buckets in cells.items():
        answer[key] = {}
        for bucket, items in buckets.items():
            values = [value for _, value in items]
            answer[key][bucket] = {
                "count": float(len(values)),
                "sum": math.fsum(values),
                "avg": math.fsum(values) / len(values),
                "min": min(values),
                "max": max(values),
                "last": max(items)[1],
            }[aggregation]
    return answer


def assert_grouped_answer(result, spec, truth, labels, ids, selected=None) -> None:
    """The engine's grouped `result` for `spec` equals the oracle's answer from the raw points in `truth`.

    `ids` maps a device index to its series id and `labels` the index to its labels; `selected` defaults to
    every series.
    """
    expected = oracle_answer(
        points=truth,
        series_labels={ids[index]: labels[index] for index in ids},
        selected=set(ids.values()) if selected is None else selected,
        aggregation=spec.aggregation,
        start=spec.start,
        end=spec.end,
        bucket_seconds=spec.bucket_seconds,
        group_by=spec.group_by,
    )
    got = {
        tuple(item["labels"][label] for label in spec.group_by): {
            parse_iso(moment): value for moment, value in item["points"]
        }
        for item in result.series
    }
    assert got.keys() == expected.keys()
    for key, buckets in got.items():
        assert buckets.keys() == expected[key].keys()
        for moment, value in buckets.items():
            assert close(value, expected[key][moment]), (key, moment, value, expected[key][moment])


def parse_iso(text: str) -> datetime:
    """The engine's ISO 8601 'Z' times back to datetimes."""
    return datetime.fromisoformat(text.replace("Z", "+00:00")).astimezone(UTC)


def close(left: float | None, right: float | None) -> bool:
    """Equal, allowing for floating-point summation order."""
    if left is None or right is None:
        return left is right
    return math.isclose(left, right, rel_tol=1e-9, abs_tol=1e-6)


__all__ = ["assert_grouped_answer", "close", "oracle_answer", "parse_iso", "timedelta"]
