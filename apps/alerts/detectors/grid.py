"""A series' values as bins of a fixed grid that covers any range: fine near its usual level, coarser far away.

A value is first put on the series' own scale, z = (x - centre) / spread (both learnt in the warm-up), then
u = asinh(STRETCH * z) * BINS_PER_UNIT: about linear within the usual spread, logarithmic beyond, so 1,024 bins
reach a million spreads either side. Which bins a series has ever visited is a bitmap of 128 bytes; the distance from
a new value to the nearest visited bin tells how new the value is.
"""

from __future__ import annotations

import numpy as np

GRID_BINS = 1_024
BINS_PER_UNIT = 32.0
STRETCH = 4.0
SEARCH_RADIUS = 96  # bins searched either side; past that a value is as new as it gets
_MIDDLE = GRID_BINS // 2
# Offsets in the order they are searched: 0, -1, +1, -2, +2, ...
_OFFSETS = np.array([0] + [sign * step for step in range(1, SEARCH_RADIUS + 1) for sign in (-1, 1)], dtype=np.int64)


def grid_bin(z: np.ndarray) -> np.ndarray:
    """The grid bin of scaled values."""
    u = np.arcsinh(STRETCH * np.clip(z, -1e9, 1e9)) * BINS_PER_UNIT
    return np.clip(np.floor(u).astype(np.int64) + _MIDDLE, 0, GRID_BINS - 1)


def grid_centre(bins: np.ndarray) -> np.ndarray:
    """The scaled value at the middle of each bin."""
    return np.sinh((bins - _MIDDLE + 0.5) / BINS_PER_UNIT) / STRETCH


def nearest_visited_distance(*, visited: np.ndarray, z: np.ndarray) -> np.ndarray:
    """|z - nearest visited bin's centre| for each row of `visited` (rows x GRID_BINS booleans) and value.

    Nothing visited within SEARCH_RADIUS bins counts as the bin just past the radius (a lower bound).
    """
    bins = grid_bin(z)
    nearest = bins.copy()
    # Most values land in a bin the series has visited: only the others need the search either side.
    away = np.flatnonzero(~visited[np.arange(len(z)), bins])
    if len(away):
        nearest[away] = _nearest_visited_bin(visited=visited[away], bins=bins[away], z=z[away])
    return np.abs(z - grid_centre(nearest))


def _nearest_visited_bin(*, visited: np.ndarray, bins: np.ndarray, z: np.ndarray) -> np.ndarray:
    candidates = bins[:, None] + _OFFSETS[None, :]
    inside = (candidates >= 0) & (candidates < GRID_BINS)
    clipped = np.clip(candidates, 0, GRID_BINS - 1)
    hits = np.take_along_axis(visited, clipped, axis=1) & inside
    found = hits.any(axis=1)
    first = np.argmax(hits, axis=1)
    beyond = np.where(z >= grid_centre(bins), bins + SEARCH_RADIUS, bins - SEARCH_RADIUS)
    return np.where(found, clipped[np.arange(len(z)), first], beyond)


def robust_centre_and_spread(values: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per row: the median, and a spread that is never zero (5-95 % range, else a tenth of the full range)."""
    centre = np.median(values, axis=1)
    low, high = np.quantile(values, [0.05, 0.95], axis=1)
    full = values.max(axis=1) - values.min(axis=1)
    floor = np.maximum(1e-9, 1e-9 * np.abs(centre))
    return centre, np.maximum.reduce([high - low, 0.1 * full, floor])
