"""NAB's scoring against cases worked by hand (bench/nab_scoring.py)."""

from __future__ import annotations

import math

import pytest

from bench.nab_scoring import (
    PROFILES,
    LabelledFile,
    best_threshold,
    corpus_score,
    file_score,
    probation_length,
    scaled_sigmoid,
)

STANDARD = PROFILES["standard"]
# 1,000 points: probation 150 (15 %); one window over points 400..499 (100 points).
FILE = LabelledFile(name="one.csv", length=1_000, windows=((400, 499),))


def _detections(*indexes: int, length: int = 1_000) -> list[float]:
    scores = [0.0] * length
    for index in indexes:
        scores[index] = 1.0
    return scores


def test_the_scaled_sigmoid_is_one_before_zero_at_and_minus_one_after():
    assert scaled_sigmoid(-1.0) == pytest.approx(2 / (1 + math.exp(-5)) - 1)  # 0.9866
    assert scaled_sigmoid(0.0) == 0.0
    assert scaled_sigmoid(3.5) == -1.0


def test_probation_is_fifteen_percent_capped_at_750_points():
    assert probation_length(length=1_000) == 150
    assert probation_length(length=4_032) == 604
    assert probation_length(length=22_695) == 750


def test_a_detection_at_the_start_of_a_window_scores_one_true_positive():
    outcome = file_score(labelled=FILE, scores=_detections(400), threshold=0.5, profile=STANDARD)
    assert outcome.raw == pytest.approx(1.0)
    assert (outcome.true_positives, outcome.false_positives, outcome.false_negatives) == (1, 0, 0)


def test_a_detection_in_the_middle_of_a_window_scores_less_and_one_at_its_end_about_nothing():
    middle = file_score(labelled=FILE, scores=_detections(449), threshold=0.5, profile=STANDARD).raw
    # position -(499 - 449 + 1) / 100 = -0.51: sigma(-0.51) / sigma(-1) = 0.855 / 0.987
    assert middle == pytest.approx((2 / (1 + math.exp(-2.55)) - 1) / (2 / (1 + math.exp(-5)) - 1))
    end = file_score(labelled=FILE, scores=_detections(499), threshold=0.5, profile=STANDARD).raw
    assert 0 < end < 0.03


def test_only_the_first_detection_in_a_window_counts():
    first_only = file_score(labelled=FILE, scores=_detections(420), threshold=0.5, profile=STANDARD).raw
    with_later = file_score(labelled=FILE, scores=_detections(420, 430, 498), threshold=0.5, profile=STANDARD)
    assert with_later.raw == pytest.approx(first_only)
    assert with_later.true_positives == 1


def test_a_detection_just_after_the_window_is_penalised_lightly_and_far_after_fully():
    just_after = file_score(labelled=FILE, scores=_detections(400, 500), threshold=0.5, profile=STANDARD)
    assert just_after.false_positives == 1
    # position (500 - 499) / 99: 0.11 * sigma(0.0101) = -0.11 * 0.0253
    assert just_after.raw == pytest.approx(1.0 + 0.11 * (2 / (1 + math.exp(5 / 99)) - 1))
    assert just_after.raw < 1.0
    far_after = file_score(labelled=FILE, scores=_detections(400, 900), threshold=0.5, profile=STANDARD)
    assert far_after.raw == pytest.approx(1.0 - 0.11)


def test_a_false_positive_before_any_window_costs_the_full_weight_and_probation_is_ignored():
    outcome = file_score(labelled=FILE, scores=_detections(100, 200), threshold=0.5, profile=STANDARD)
    assert outcome.false_positives == 1  # point 100 is inside the probation (first 150 points)
    assert outcome.raw == pytest.approx(-0.11 - 1.0)  # and the window is missed


def test_a_missed_window_costs_the_false_negative_weight_of_the_profile():
    assert file_score(labelled=FILE, scores=_detections(), threshold=0.5, profile=STANDARD).raw == -1.0
    low_fn = PROFILES["reward_low_FN"]
    assert file_score(labelled=FILE, scores=_detections(), threshold=0.5, profile=low_fn).raw == -2.0


def test_a_detector_that_never_fires_scores_zero_and_a_perfect_one_100():
    other = LabelledFile(name="two.csv", length=2_000, windows=((800, 899), (1500, 1599)))
    files = [FILE, other]
    for profile_name in PROFILES:
        never = corpus_score(files=files, scores=[[0.0] * 1_000, [0.0] * 2_000], profile_name=profile_name)
        assert never.score == 0.0
        perfect = corpus_score(
            files=files, scores=[_detections(400), _detections(800, 1500, length=2_000)], profile_name=profile_name
        )
        assert perfect.score == pytest.approx(100.0)


def test_the_threshold_sweep_finds_the_best_threshold_over_all_files():
    # One true detection scored 0.6 and one false positive scored 0.9: firing at 0.6 catches the window (+1)
    # and pays for the false positive (-0.11), better than firing at 0.9 (-1 - 0.11) or never (-1).
    scores = [0.0] * 1_000
    scores[400] = 0.6
    scores[900] = 0.9
    found = best_threshold(files=[FILE], scores=[scores], profile=STANDARD)
    assert found.threshold == 0.6
    assert found.raw == pytest.approx(1.0 - 0.11)
    # With many false positives above it the window is not worth catching: never firing wins.
    many = [0.0] * 1_000
    many[400] = 0.6
    for index in range(600, 630):
        many[index] = 0.9
    assert best_threshold(files=[FILE], scores=[many], profile=STANDARD).threshold == math.inf
