"""Streaming anomaly detectors: each point is scored from its series' past alone, then learnt.

`detector_create(name)` gives a detector bank (bank.py) for any number of series; `series_score` runs one series
through it, as `manage.py anomaly_score` does. The platform's scoring service uses the same banks on live series.
"""

from __future__ import annotations

import numpy as np

from apps.alerts.detectors.bank import DetectorBank, score_in_rounds
from apps.alerts.detectors.ensemble import EnsembleDetector
from apps.alerts.detectors.novelty import NoveltyDetector
from apps.alerts.detectors.seasonal import SeasonalDetector


class NoveltySeasonalEnsemble(EnsembleDetector):
    """The novelty and seasonal detectors together."""

    members = (NoveltyDetector, SeasonalDetector)


DETECTORS: dict[str, type[DetectorBank]] = {
    NoveltyDetector.name: NoveltyDetector,
    SeasonalDetector.name: SeasonalDetector,
    NoveltySeasonalEnsemble.name: NoveltySeasonalEnsemble,
}
DEFAULT_DETECTOR = NoveltySeasonalEnsemble.name


def detector_create(name: str = DEFAULT_DETECTOR, *, capacity: int = 0) -> DetectorBank:
    """A detector bank by name, with room for `capacity` series; ValueError names the known detectors."""
    try:
        detector_class = DETECTORS[name]
    except KeyError:
        raise ValueError(f"unknown detector {name!r}; choose from {', '.join(sorted(DETECTORS))}") from None
    return detector_class(capacity=capacity)


def series_score(*, times: np.ndarray, values: np.ndarray, detector: str = DEFAULT_DETECTOR) -> np.ndarray:
    """Scores in [0, 1] for one series' points in time order (seconds since 1970, UTC), streaming."""
    bank = detector_create(detector, capacity=1)
    scores = np.zeros(len(values))
    rows = np.zeros(1, dtype=np.int64)
    for index in range(len(values)):
        scores[index] = bank.step(rows=rows, times=times[index : index + 1], values=values[index : index + 1])[0]
    return scores


__all__ = ["DEFAULT_DETECTOR", "DETECTORS", "DetectorBank", "detector_create", "score_in_rounds", "series_score"]
