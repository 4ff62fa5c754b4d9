"""From a raw oddness to a score: rank among the series' own past, then one output per burst.

Raw oddness (a distance, a residual) means nothing across series: 3 is huge for a flat signal and nothing for a
noisy one. Each series keeps a histogram of its own past raw values (log-spaced bins, so a few hundred bytes) and a
point's surprise is -log10 of the share of past values at least as large, p = (k + 1) / (n + 1); the score is 1 - p.
So a score of 0.999 means "odder than all but about one in a thousand of this series' points", whatever the series.

A burst of odd points would otherwise raise an alert per point; a point is reported only when its surprise beats the
highest since the last report, or when `refractory` points have passed since it (zero otherwise). The first point of
a burst (the earliest warning) keeps its score; the rest of the burst only speaks if it gets odder.
"""

from __future__ import annotations

import numpy as np

from apps.alerts.detectors.fields import StateField

HISTOGRAM_BINS = 96
_DECADES_BELOW_ONE = 6  # raw values from 1e-6 up to about 1e6 get their own bins; 0 has bin 0
_BINS_PER_DECADE = 8


def calibration_fields(prefix: str) -> dict[str, StateField]:
    """The state one calibrated signal needs: the histogram of its past raw values."""
    return {f"{prefix}_histogram": StateField((HISTOGRAM_BINS,), "u4")}


REPORT_FIELDS = {"report_peak": StateField((), "f4"), "report_age": StateField((), "i4")}


def histogram_bin(raw: np.ndarray) -> np.ndarray:
    """The histogram bin of raw values >= 0 (bin 0 holds zeros, then 8 bins a decade)."""
    with np.errstate(divide="ignore"):
        scaled = np.floor((np.log10(np.maximum(raw, 1e-300)) + _DECADES_BELOW_ONE) * _BINS_PER_DECADE) + 1
    return np.where(raw > 0, np.clip(scaled, 1, HISTOGRAM_BINS - 1), 0).astype(np.int64)


def surprise(*, histogram: np.ndarray, bins: np.ndarray) -> np.ndarray:
    """-log10 of the share of past values at or above each new one (half the values of its own bin count)."""
    above = np.cumsum(histogram[:, ::-1], axis=1)[:, ::-1]  # above[:, b] = values in bins >= b
    rows = np.arange(len(bins))
    total = above[:, 0].astype(np.float64)
    same = histogram[rows, bins].astype(np.float64)
    at_least = above[rows, bins] - same / 2
    return -np.log10((at_least + 1.0) / (total + 1.0))


def calibration_learn(*, state: dict[str, np.ndarray], prefix: str, rows: np.ndarray, raw: np.ndarray) -> None:
    """Add raw values to their series' histograms without scoring them (the warm-up's own points)."""
    np.add.at(state[f"{prefix}_histogram"], (rows, histogram_bin(raw)), 1)


def calibrate(
    *, state: dict[str, np.ndarray], prefix: str, rows: np.ndarray, raw: np.ndarray, active: np.ndarray
) -> np.ndarray:
    """Surprise of each raw value against its series' past (0 where not active); learns the active ones."""
    histogram = state[f"{prefix}_histogram"]
    bins = histogram_bin(raw)
    surprises = surprise(histogram=histogram[rows], bins=bins)
    histogram[rows[active], bins[active]] += 1
    return np.where(active, surprises, 0.0)


def report_bursts(
    *, state: dict[str, np.ndarray], rows: np.ndarray, surprises: np.ndarray, refractory: int
) -> np.ndarray:
    """Surprises of the points reported (0 for the others): once per burst, again only when it gets odder."""
    peak = state["report_peak"][rows].astype(np.float64)
    age = state["report_age"][rows]
    peak = np.where(age >= refractory, 0.0, peak)
    report = surprises > peak
    state["report_peak"][rows] = np.where(report, surprises, peak)
    state["report_age"][rows] = np.where(report, 0, np.minimum(age + 1, refractory))
    return np.where(report, surprises, 0.0)


def score_from_surprise(surprises: np.ndarray) -> np.ndarray:
    """The [0, 1] score of a surprise: 1 - p."""
    return 1.0 - np.power(10.0, -surprises)


DEFAULT_SENSITIVITY = 0.41  # level 0.99830: about the best NAB standard-profile threshold of the ensemble
# Sensitivity 0..1 maps to the surprise a point needs to count as a detection: 4 (odder than 1 point in 10,000)
# at 0, down to 1 (1 in 10) at 1.
_LEAST_SENSITIVE_SURPRISE = 4.0
_MOST_SENSITIVE_SURPRISE = 1.0


def sensitivity_level(sensitivity: float) -> float:
    """The score a point must reach to be a detection at this sensitivity (0: fewest detections, 1: most)."""
    if not 0.0 <= sensitivity <= 1.0:
        raise ValueError("sensitivity must be between 0 and 1")
    needed = _LEAST_SENSITIVE_SURPRISE - (_LEAST_SENSITIVE_SURPRISE - _MOST_SENSITIVE_SURPRISE) * sensitivity
    return float(1.0 - 10.0 ** (-needed))
