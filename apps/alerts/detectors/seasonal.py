"""Seasonal baseline: how far a value is from what this hour of the day (or of the week) usually brings.

Per series, for each hour of the week (168 bins), each hour of the day (24) and overall, a running median and a
running mean absolute deviation (robust: the median moves by a fixed fraction of the spread towards each new value,
so one wild value cannot drag it). A point is compared with the most specific baseline that has seen enough points
(the hour of the week once it has MIN_POINTS, else the hour of the day, else overall): raw oddness is
|value - median| / spread, calibrated against the series' own past (calibration.py). Hours are UTC.

About 4 KB of state per series. Warm-up: WARMUP points scored 0 while the overall baseline settles.
"""

from __future__ import annotations

import numpy as np

from apps.alerts.detectors.bank import DetectorBank
from apps.alerts.detectors.calibration import calibrate, calibration_fields
from apps.alerts.detectors.fields import StateField

WARMUP = 150
MIN_POINTS = 16  # observations a bin needs before its baseline is used
RATE = 0.05  # how far the median moves per observation, in units of the spread
SPREAD_RATE = 0.05  # weight of each new absolute deviation in the spread's running mean
SPREAD_FLOOR = 0.05  # a bin's spread is at least this share of the overall spread
_LEVELS = (("week", 168), ("day", 24), ("all", 1))


class SeasonalDetector(DetectorBank):
    """Robust hour-of-day / hour-of-week baseline; scores the calibrated distance from it."""

    name = "seasonal"
    description = "Distance from the running median of the same hour of the day or week, in robust spreads."

    def _fields(self) -> dict[str, StateField]:
        fields: dict[str, StateField] = {"seen": StateField((), "i8")}
        for level, size in _LEVELS:
            fields[f"{level}_median"] = StateField((size,), "f4")
            fields[f"{level}_spread"] = StateField((size,), "f4")
            fields[f"{level}_count"] = StateField((size,), "u4")
        fields.update(calibration_fields("residual"))
        return fields

    def _surprise(self, rows: np.ndarray, times: np.ndarray, values: np.ndarray) -> np.ndarray:
        state = self.state
        seen = state["seen"][rows]
        state["seen"][rows] = seen + 1
        hour = np.floor(times / 3600.0).astype(np.int64)
        # 1970-01-01 was a Thursday: shift so that bin 0 is Monday 00:00 UTC
        bins = {"week": (hour + 72) % 168, "day": hour % 24, "all": np.zeros(len(rows), dtype=np.int64)}

        overall_spread = state["all_spread"][rows, 0].astype(np.float64)
        floor = np.maximum(SPREAD_FLOOR * overall_spread, 1e-9 * np.abs(state["all_median"][rows, 0]) + 1e-12)
        median = state["all_median"][rows, 0].astype(np.float64)
        spread = overall_spread.copy()
        for level in ("day", "week"):  # the most specific baseline with enough points wins
            count = state[f"{level}_count"][rows, bins[level]]
            usable = count >= MIN_POINTS
            median = np.where(usable, state[f"{level}_median"][rows, bins[level]], median)
            spread = np.where(usable, state[f"{level}_spread"][rows, bins[level]], spread)
        raw = np.abs(values - median) / np.maximum(spread, floor)

        active = seen >= WARMUP
        surprises = calibrate(state=state, prefix="residual", rows=rows, raw=raw, active=active)
        for level, _ in _LEVELS:
            self._learn(level=level, rows=rows, bins=bins[level], values=values)
        return surprises

    def _learn(self, *, level: str, rows: np.ndarray, bins: np.ndarray, values: np.ndarray) -> None:
        state = self.state
        count = state[f"{level}_count"][rows, bins].astype(np.int64)
        median = state[f"{level}_median"][rows, bins].astype(np.float64)
        spread = state[f"{level}_spread"][rows, bins].astype(np.float64)
        early = count < MIN_POINTS  # the first points set the baseline by plain running averages
        weight = 1.0 / (count + 1)
        stepped = median + RATE * spread * np.sign(values - median)
        new_median = np.where(early, median + (values - median) * weight, stepped)
        deviation = np.abs(values - new_median)
        averaged = spread + SPREAD_RATE * (deviation - spread)
        new_spread = np.where(early, spread + (deviation - spread) * weight, averaged)
        state[f"{level}_median"][rows, bins] = new_median
        state[f"{level}_spread"][rows, bins] = new_spread
        state[f"{level}_count"][rows, bins] = np.minimum(count + 1, np.iinfo(np.uint32).max)
