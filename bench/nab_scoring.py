"""NAB's scoring of anomaly detectors, written from the papers (Lavin & Ahmad 2015; Ahmad et al. 2017).

A file has labelled anomaly windows. A detector's output is thresholded (a detection is a point whose score is at
or above the threshold) and each detection outside the probationary period is scored:

- inside a window: only the window's first detection counts, with A_TP * sigma(position) / sigma(-1), where
  position runs from -1 at the window's first point to about 0 at its last, and
  sigma(y) = 2 / (1 + e^(5y)) - 1 (the scaled sigmoid): 1 at the start, about 0 at the end; later detections in
  the same window neither add nor cost;
- outside every window: A_FP * sigma(position) (negative), where position is the distance after the end of
  the previous window in units of that window's length minus one, so a detection just after a window costs
  little and one far after costs the full A_FP; before the first window it costs the full A_FP;
- a window with no detection costs A_FN.

A file's raw score is the sum. The threshold is chosen per profile to maximise the raw score summed over all
files, and the normalised score is 100 * (raw - null) / (perfect - null), where the null detector never fires
(raw = -A_FN per window) and the perfect one fires at every window's first point (raw = A_TP per window).

The probationary period is the first min(floor(0.15 * n), 0.15 * 5000) points of a file of n points: NAB's
detectors learn there and nothing in it is scored (the windows of the labelled files all start after it; with
15 % of long files instead, windows of machine_temperature_system_failure.csv would fall inside it).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field

import numpy as np

PROBATION_FRACTION = 0.15
PROBATION_CAP_POINTS = 5_000  # the probation is at most 15 % of this many points (750)


@dataclass(frozen=True)
class Profile:
    """Weights of true positives, false positives and false negatives (all given as positive magnitudes)."""

    true_positive: float
    false_positive: float
    false_negative: float


PROFILES: dict[str, Profile] = {
    "standard": Profile(true_positive=1.0, false_positive=0.11, false_negative=1.0),
    "reward_low_FP": Profile(true_positive=1.0, false_positive=0.22, false_negative=1.0),
    "reward_low_FN": Profile(true_positive=1.0, false_positive=0.11, false_negative=2.0),
}


@dataclass(frozen=True)
class LabelledFile:
    """A scored file: its length and its anomaly windows as inclusive point indexes [first, last]."""

    name: str
    length: int
    windows: tuple[tuple[int, int], ...]
    probation: int = field(default=-1)

    def __post_init__(self) -> None:
        if self.probation < 0:
            object.__setattr__(self, "probation", probation_length(length=self.length))
        previous_last = -1
        for first, last in self.windows:
            if not 0 <= first <= last < self.length or first <= previous_last:
                raise ValueError(f"{self.name}: windows must be ordered, disjoint and inside the file")
            previous_last = last


def probation_length(*, length: int) -> int:
    """The number of leading points NAB leaves unscored."""
    return int(min(math.floor(PROBATION_FRACTION * length), PROBATION_FRACTION * PROBATION_CAP_POINTS))


def scaled_sigmoid(position: float) -> float:
    """NAB's sigma: 1 well before (y = -1: ~0.987), 0 at y = 0, -1 well after (y > 3 counts as -1 exactly)."""
    if position > 3.0:
        return -1.0
    return 2.0 / (1.0 + math.exp(5.0 * position)) - 1.0


MAX_TRUE_POSITIVE = scaled_sigmoid(-1.0)


def point_values(*, labelled: LabelledFile, profile: Profile) -> tuple[np.ndarray, np.ndarray]:
    """What a detection at each point would score, and the index of the window holding it (-1: none).

    Points of the probationary period get window -2 and are never counted.
    """
    values = np.zeros(labelled.length)
    window_of = np.full(labelled.length, -1, dtype=np.int64)
    window_index = 0
    previous: tuple[int, int] | None = None
    for index in range(labelled.length):
        while window_index < len(labelled.windows) and labelled.windows[window_index][1] < index:
            previous = labelled.windows[window_index]
            window_index += 1
        current = labelled.windows[window_index] if window_index < len(labelled.windows) else None
        if current is not None and current[0] <= index:
            width = current[1] - current[0] + 1
            position = -(current[1] - index + 1) / width
            values[index] = profile.true_positive * scaled_sigmoid(position) / MAX_TRUE_POSITIVE
            window_of[index] = window_index
        elif previous is None:
            values[index] = -profile.false_positive
        else:
            width = previous[1] - previous[0] + 1
            position = (index - previous[1]) / max(width - 1, 1)
            values[index] = profile.false_positive * scaled_sigmoid(position)
        if index < labelled.probation:
            window_of[index] = -2
    return values, window_of


@dataclass
class FileScore:
    """One file's outcome at a threshold."""

    name: str
    raw: float
    true_positives: int
    false_positives: int
    false_negatives: int
    windows: int


def file_score(*, labelled: LabelledFile, scores: Sequence[float], threshold: float, profile: Profile) -> FileScore:
    """Score one file's detector output at one threshold (detection: score >= threshold)."""
    if len(scores) != labelled.length:
        raise ValueError(f"{labelled.name}: {len(scores)} scores for {labelled.length} points")
    values, window_of = point_values(labelled=labelled, profile=profile)
    detected = np.asarray(scores, dtype=float) >= threshold
    raw = 0.0
    false_positives = 0
    found: set[int] = set()
    for index in np.flatnonzero(detected):
        window = int(window_of[index])
        if window == -2:
            continue
        if window == -1:
            raw += float(values[index])
            false_positives += 1
        elif window not in found:  # the first detection in a window is its best one; later ones are free
            found.add(window)
            raw += float(values[index])
    missed = len(labelled.windows) - len(found)
    raw -= profile.false_negative * missed
    return FileScore(labelled.name, raw, len(found), false_positives, missed, len(labelled.windows))


def null_and_perfect(*, files: Iterable[LabelledFile], profile: Profile) -> tuple[float, float]:
    """Raw scores of the detector that never fires and of the one that fires at every window's start."""
    windows = sum(len(labelled.windows) for labelled in files)
    return -profile.false_negative * windows, profile.true_positive * windows


def normalised(*, raw: float, null: float, perfect: float) -> float:
    """100 * (raw - null) / (perfect - null); 0 for a corpus without windows."""
    return 0.0 if perfect == null else 100.0 * (raw - null) / (perfect - null)


@dataclass
class SweepResult:
    """The best threshold for a profile over a set of files and the raw total it reaches."""

    threshold: float
    raw: float


def best_threshold(
    *, files: Sequence[LabelledFile], scores: Sequence[Sequence[float]], profile: Profile
) -> SweepResult:
    """The threshold maximising the summed raw score, trying every distinct score (and never firing).

    Exact: detections are added in order of decreasing score; each window contributes its best (earliest)
    detection so far, or -A_FN while it has none. Ties enter together (a threshold takes all equal scores).
    """
    all_scores: list[np.ndarray] = []
    all_values: list[np.ndarray] = []
    all_windows: list[np.ndarray] = []
    window_offset = 0
    for labelled, file_scores in zip(files, scores, strict=True):
        values, window_of = point_values(labelled=labelled, profile=profile)
        counted = window_of != -2
        shifted = np.where(window_of >= 0, window_of + window_offset, -1)
        all_scores.append(np.asarray(file_scores, dtype=float)[counted])
        all_values.append(values[counted])
        all_windows.append(shifted[counted])
        window_offset += len(labelled.windows)
    point_scores = np.concatenate(all_scores) if all_scores else np.zeros(0)
    point_values_ = np.concatenate(all_values) if all_values else np.zeros(0)
    point_windows = np.concatenate(all_windows) if all_windows else np.zeros(0, dtype=np.int64)
    order = np.argsort(-point_scores, kind="stable")
    best_in_window = np.full(window_offset, -np.inf)
    total = -profile.false_negative * window_offset
    best = SweepResult(threshold=math.inf, raw=total)  # never firing
    for position, index in enumerate(order):
        window = point_windows[index]
        value = point_values_[index]
        if window < 0:
            total += value
        elif value > best_in_window[window]:
            previous = best_in_window[window]
            total += value - (-profile.false_negative if previous == -np.inf else previous)
            best_in_window[window] = value
        is_last_of_tie = position + 1 == len(order) or point_scores[order[position + 1]] != point_scores[index]
        if is_last_of_tie and total > best.raw:
            best = SweepResult(threshold=float(point_scores[index]), raw=total)
    return best


@dataclass
class CorpusScore:
    """A detector's result under one profile: threshold, normalised score, and per-file outcomes."""

    profile: str
    threshold: float
    score: float
    raw: float
    files: list[FileScore]


def corpus_score(
    *,
    files: Sequence[LabelledFile],
    scores: Sequence[Sequence[float]],
    profile_name: str,
    threshold: float | None = None,
) -> CorpusScore:
    """Normalised NAB score over `files` at the given threshold, or at the best one for them."""
    profile = PROFILES[profile_name]
    if threshold is None:
        threshold = best_threshold(files=files, scores=scores, profile=profile).threshold
    outcomes = [
        file_score(labelled=labelled, scores=file_scores, threshold=threshold, profile=profile)
        for labelled, file_scores in zip(files, scores, strict=True)
    ]
    raw = sum(outcome.raw for outcome in outcomes)
    null, perfect = null_and_perfect(files=files, profile=profile)
    return CorpusScore(profile_name, threshold, normalised(raw=raw, null=null, perfect=perfect), raw, outcomes)


def subset_score(*, result: CorpusScore, files: Sequence[LabelledFile], names: set[str]) -> float:
    """Normalised score of some of a result's files (a category), at the result's threshold."""
    profile = PROFILES[result.profile]
    chosen = [labelled for labelled in files if labelled.name in names]
    raw = sum(outcome.raw for outcome in result.files if outcome.name in names)
    null, perfect = null_and_perfect(files=chosen, profile=profile)
    return normalised(raw=raw, null=null, perfect=perfect)
