"""The streaming detectors: no look-ahead, state that survives a restart, many series at once, sensible scores."""

from __future__ import annotations

import numpy as np
import pytest

from apps.alerts.detectors import DETECTORS, detector_create, score_in_rounds, series_score
from apps.alerts.detectors.calibration import sensitivity_level

FIVE_MINUTES = 300.0


def _noisy_daily(length: int, *, seed: int = 7) -> tuple[np.ndarray, np.ndarray]:
    """A daily cycle with noise, sampled every five minutes."""
    rng = np.random.default_rng(seed)
    times = 1_400_000_000 + FIVE_MINUTES * np.arange(length)
    values = 50 + 10 * np.sin(2 * np.pi * times / 86_400) + rng.normal(0, 1, length)
    return times, values


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_each_point_is_scored_from_the_past_alone(name):
    times, values = _noisy_daily(600)
    full = series_score(times=times, values=values, detector=name)
    changed = values.copy()
    changed[400:] += 1_000  # the future changes; scores before it must not
    prefix = series_score(times=times, values=changed, detector=name)
    assert np.array_equal(full[:400], prefix[:400])
    assert full.min() >= 0
    assert full.max() <= 1


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_a_level_never_seen_scores_high_at_its_first_point_and_the_warm_up_scores_zero(name):
    times, values = _noisy_daily(900)
    values[700:] += 80  # far outside anything before
    scores = series_score(times=times, values=values, detector=name)
    assert np.all(scores[:150] == 0)
    assert scores[700] >= sensitivity_level(0.5)
    assert scores[700] > np.max(scores[300:700])


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_state_packed_mid_stream_and_restored_in_a_new_bank_gives_the_same_scores(name):
    times, values = _noisy_daily(700)
    values[500:] += 40
    uninterrupted = series_score(times=times, values=values, detector=name)
    first = detector_create(name, capacity=1)
    row = np.zeros(1, dtype=np.int64)
    scores = [first.step(rows=row, times=times[i : i + 1], values=values[i : i + 1])[0] for i in range(350)]
    packed = first.row_pack(row=0)
    assert len(packed) < 8_000  # compact: a few kB at most
    second = detector_create(name, capacity=3)  # another process: the series lands on another row
    second.row_unpack(row=2, data=packed)
    other_row = np.array([2])
    for i in range(350, 700):
        scores.append(second.step(rows=other_row, times=times[i : i + 1], values=values[i : i + 1])[0])
    assert np.array_equal(np.array(scores), uninterrupted)


@pytest.mark.parametrize("name", sorted(DETECTORS))
def test_many_series_in_one_bank_score_as_each_would_alone(name):
    series = [_noisy_daily(400, seed=seed) for seed in range(5)]
    series[3][1][300:] -= 60
    alone = [series_score(times=times, values=values, detector=name) for times, values in series]
    bank = detector_create(name, capacity=5)
    rows = np.concatenate([np.full(400, index) for index in range(5)])
    times = np.concatenate([times for times, _ in series])
    values = np.concatenate([values for _, values in series])
    together = score_in_rounds(bank=bank, rows=rows, times=times, values=values)
    for index in range(5):
        assert np.array_equal(together[rows == index], alone[index])


def test_missing_values_score_zero_and_are_not_learnt():
    times, values = _noisy_daily(400)
    with_gaps = values.copy()
    with_gaps[[200, 250]] = np.nan
    scores = series_score(times=times, values=with_gaps, detector="novelty")
    assert scores[200] == 0
    assert scores[250] == 0
    without = series_score(times=np.delete(times, [200, 250]), values=np.delete(values, [200, 250]), detector="novelty")
    assert np.array_equal(np.delete(scores, [200, 250]), without)


def test_a_state_of_another_detector_is_refused():
    novelty = detector_create("novelty", capacity=1)
    seasonal = detector_create("seasonal", capacity=1)
    with pytest.raises(ValueError, match=r"does not fit|too short"):
        seasonal.row_unpack(row=0, data=novelty.row_pack(row=0))


def test_unknown_detector_names_the_known_ones():
    with pytest.raises(ValueError, match="choose from ensemble, novelty, seasonal"):
        detector_create("magic")


def test_higher_sensitivity_means_a_lower_level():
    levels = [sensitivity_level(value) for value in (0.0, 0.25, 0.5, 0.75, 1.0)]
    assert levels == sorted(levels, reverse=True)
    assert 0.9 <= levels[-1] < levels[0] < 1.0
    with pytest.raises(ValueError, match="between 0 and 1"):
        sensitivity_level(1.5)
