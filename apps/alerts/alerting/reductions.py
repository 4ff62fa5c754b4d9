"""Reductions of a window of points to one value: last, mean, min, max, sum, count, percentiles, rate of change."""

from __future__ import annotations

import math
from collections.abc import Sequence

PERCENTILES = {"p50": 0.5, "p75": 0.75, "p90": 0.9, "p95": 0.95, "p99": 0.99}
REDUCTIONS = ("last", "mean", "min", "max", "sum", "count", "rate", *PERCENTILES)
ALIASES = {"avg": "mean"}


def reduction_name(name: str) -> str:
    """The canonical name of a reduction (avg is mean); ValueError lists the known ones."""
    name = ALIASES.get(name, name)
    if name not in REDUCTIONS:
        raise ValueError(f"unknown reduction {name!r}; use one of {', '.join(REDUCTIONS)}.")
    return name


def reduce_points(name: str, points: Sequence[tuple[float, float]]) -> float | None:
    """Reduce (seconds since 1970, value) points in time order; None for an empty window.

    `rate` is the change per second between the window's first and last points (least effort, and what an
    operator means by "rising faster than 2 degrees a minute": set the threshold to 2/60).
    """
    if not points:
        return None if name != "count" else 0.0
    values = [value for _, value in points]
    if name == "last":
        return values[-1]
    if name == "mean":
        return math.fsum(values) / len(values)
    if name == "min":
        return min(values)
    if name == "max":
        return max(values)
    if name == "sum":
        return math.fsum(values)
    if name == "count":
        return float(len(values))
    if name == "rate":
        if len(points) < 2 or points[-1][0] == points[0][0]:
            return None
        return (points[-1][1] - points[0][1]) / (points[-1][0] - points[0][0])
    return _percentile(sorted(values), PERCENTILES[name])


def _percentile(ordered: list[float], fraction: float) -> float:
    """Linear interpolation between closest ranks (PostgreSQL's percentile_cont)."""
    position = fraction * (len(ordered) - 1)
    lower = math.floor(position)
    upper = min(lower + 1, len(ordered) - 1)
    return ordered[lower] + (ordered[upper] - ordered[lower]) * (position - lower)
