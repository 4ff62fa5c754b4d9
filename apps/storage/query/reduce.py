"""Reductions: each series' bucketed values to one number (a calculation over time), then across series (a
combination), as stat, gauge, bar gauge, bar and pie panels show them.

Semantics (docs/storage.md, "Reductions"):
- A calculation runs over the values the query would answer for one output series: its buckets after the
  aggregation, with `fill` applied (`previous` carries a value into empty buckets; `none` leaves them out), or
  its raw points for `aggregation: raw`. Empty buckets are null.
- `last` is the last bucket's value, null when that bucket is empty; `last_not_null` the last non-null value;
  `first` the first non-null value; `mean`, `sum`, `min`, `max` are over the non-null values; `count` is the
  number of non-null values (0, never null); `delta` is last non-null minus first non-null; `range` is max minus
  min. A calculation over no non-null value is null (but `count`, which is 0).
- A combination runs over the series' non-null results: `sum`, `mean`, `min`, `max` give one value with labels
  {} (null when every series is null or none matched); `none` gives one value per series with its labels (and its
  source when the query is not grouped).

So `sum` of a `sum` aggregation is the total over the range, and `sum` of `count` the number of points.
The values are computed here, in Python, from the columns the engine's one SQL statement produced: that
statement already cut each series to at most `max_points` buckets, so reducing them costs microseconds (6,100
values for 100 series by 61 buckets), and the points are never encoded or sent.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

from apps.storage.query.spec import Reduce

Values = Sequence[float | None]


def _present(values: Values) -> list[float]:
    return [value for value in values if value is not None]


def _last(values: Values) -> float | None:
    return values[-1] if values else None


def _last_not_null(values: Values) -> float | None:
    for value in reversed(values):
        if value is not None:
            return value
    return None


def _first(values: Values) -> float | None:
    for value in values:
        if value is not None:
            return value
    return None


def _mean(values: Values) -> float | None:
    present = _present(values)
    return math.fsum(present) / len(present) if present else None


def _sum(values: Values) -> float | None:
    present = _present(values)
    return math.fsum(present) if present else None


def _min(values: Values) -> float | None:
    present = _present(values)
    return min(present) if present else None


def _max(values: Values) -> float | None:
    present = _present(values)
    return max(present) if present else None


def _count(values: Values) -> float:
    return float(sum(1 for value in values if value is not None))


def _delta(values: Values) -> float | None:
    first, last = _first(values), _last_not_null(values)
    return None if first is None or last is None else last - first


def _range(values: Values) -> float | None:
    present = _present(values)
    return max(present) - min(present) if present else None


CALCULATION_FUNCTIONS: dict[str, Callable[[Values], float | None]] = {
    "last": _last,
    "last_not_null": _last_not_null,
    "first": _first,
    "mean": _mean,
    "sum": _sum,
    "min": _min,
    "max": _max,
    "count": _count,
    "delta": _delta,
    "range": _range,
}
COMBINATION_FUNCTIONS: dict[str, Callable[[Values], float | None]] = {
    "sum": _sum,
    "mean": _mean,
    "min": _min,
    "max": _max,
}


def reduced_values(reduce: Reduce, groups: Sequence[dict], values: Sequence[Values]) -> list[dict]:
    """The `reduced` answer: one {labels, value} per group for combination none, else one item with labels {}."""
    calculate = CALCULATION_FUNCTIONS[reduce.calculation]
    per_series = [calculate(series_values) for series_values in values]
    if reduce.combination == "none":
        return [{**header, "value": _finite(value)} for header, value in zip(groups, per_series, strict=True)]
    return [{"labels": {}, "value": _finite(COMBINATION_FUNCTIONS[reduce.combination](per_series))}]


def _finite(value: float | None) -> float | None:
    """JSON has no infinities or NaN: a sum that overflowed is answered as null rather than as invalid JSON."""
    return value if value is None or math.isfinite(value) else None
