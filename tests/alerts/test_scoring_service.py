"""The scoring service on the real PostgreSQL: scores as series, detections as events, restarts without a trace."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pytest
from django.test import override_settings

from apps.alerts.detectors import series_score
from apps.alerts.models import AnomalyDetection, AnomalyEvent, AnomalySeriesState
from apps.alerts.scoring import anomaly_cache_clear, anomaly_scores_update
from apps.alerts.selectors import anomaly_event_list, anomaly_score_above, anomaly_score_series_ids
from apps.alerts.services import anomaly_detection_create, anomaly_detection_update
from apps.storage.models import Series
from apps.storage.query.engine import query_execute
from apps.storage.query.spec import query_spec_parse
from tests.storage.factories import points_store, series_create, source_create

pytestmark = pytest.mark.django_db

START = datetime(2026, 1, 5, tzinfo=UTC)
LENGTH = 600
JUMP = 450


@pytest.fixture(autouse=True)
def _fresh_cache():
    anomaly_cache_clear()
    yield
    anomaly_cache_clear()


def _values(seed: int = 1, jump: int | None = JUMP) -> np.ndarray:
    rng = np.random.default_rng(seed)
    values = 40 + 5 * np.sin(np.arange(LENGTH) / 30) + rng.normal(0, 0.5, LENGTH)
    if jump is not None:
        values[jump:] += 60
    return values


def _times() -> list[datetime]:
    return [START + timedelta(minutes=index) for index in range(LENGTH)]


def _stored_scores(score_series_id: int) -> np.ndarray:
    from django.db import connection

    with connection.cursor() as cursor:
        cursor.execute("SELECT value FROM points WHERE series_id = %s ORDER BY time", [score_series_id])
        return np.array([row[0] for row in cursor.fetchall()])


def _expected(values: np.ndarray, detector: str = "ensemble") -> np.ndarray:
    times = np.array([moment.timestamp() for moment in _times()])
    return series_score(times=times, values=values, detector=detector)


def test_scores_become_their_own_series_with_the_same_labels_and_the_jump_is_a_detection(user):
    source = source_create(slug="plant")
    press = series_create(source=source, metric="temperature", device="press-7", facility="f2")
    values = _values()
    points_store(press, list(zip(_times(), values, strict=True)))
    detection = anomaly_detection_create(source=source, metric="temperature", detector="ensemble", sensitivity=0.5)

    outcome = anomaly_scores_update()

    assert outcome["points"] == LENGTH
    score_series = Series.objects.get(id=anomaly_score_series_ids(series_ids=[press])[press])
    assert (score_series.source_id, score_series.metric) == (source.id, "temperature.anomaly_score")
    assert score_series.labels == {"device": "press-7", "facility": "f2"}
    assert np.array_equal(_stored_scores(score_series.id), _expected(values))
    events = anomaly_event_list(user=user, detection_id=detection.id)
    assert [event.time for event in events][-1] == _times()[JUMP]  # the first detection is the jump itself
    assert all(event.time >= _times()[JUMP] for event in events)
    # The query API reads the scores like any metric.
    spec = query_spec_parse(
        {"metric": "temperature.anomaly_score", "source": "plant", "start": "2026-01-05T00:00:00Z",
         "end": "2026-01-06T00:00:00Z", "aggregation": "raw", "max_points": 1000}
    )  # fmt: skip
    result = query_execute(spec=spec, principal=user).as_dict()
    assert len(result["series"][0]["points"]) == LENGTH


@override_settings(ANOMALY_CHECKPOINT_SECONDS=3600)
def test_a_restart_between_checkpoints_scores_the_points_since_again_to_the_same_scores():
    source = source_create(slug="plant")
    press = series_create(source=source, metric="temperature", device="press-7")
    values = _values()
    pairs = list(zip(_times(), values, strict=True))
    detection = anomaly_detection_create(source=source, metric="temperature", detector="ensemble", sensitivity=0.5)
    points_store(press, pairs[:200])
    anomaly_scores_update()  # first run after a load: checkpoints (cursor at point 199)
    points_store(press, pairs[200:400])
    anomaly_scores_update()  # no checkpoint due: the state in PostgreSQL still ends at point 199
    state = AnomalySeriesState.objects.get(detection=detection, series_id=press)
    assert state.points_scored == 200
    anomaly_cache_clear()  # the process dies
    points_store(press, pairs[400:])
    outcome = anomaly_scores_update()  # a new process: loads the checkpoint, scores points 200.. again
    assert outcome["points"] == LENGTH - 200
    state.refresh_from_db()
    assert (state.points_scored, state.scored_until) == (LENGTH, _times()[-1])  # each point learnt once
    score_series = anomaly_score_series_ids(series_ids=[press])[press]
    assert np.array_equal(_stored_scores(score_series), _expected(values))
    assert AnomalyEvent.objects.filter(detection=detection, time=_times()[JUMP]).count() == 1
    assert anomaly_scores_update()["points"] == 0  # nothing new: nothing scored twice


def test_a_long_history_is_scored_in_bounded_runs_and_new_series_join_later():
    source = source_create(slug="plant")
    first = series_create(source=source, metric="temperature", device="a", facility="f1")
    other_facility = series_create(source=source, metric="temperature", device="c", facility="f9")
    points_store(first, list(zip(_times(), _values(1), strict=True)))
    points_store(other_facility, list(zip(_times(), _values(3), strict=True)))
    anomaly_detection_create(
        source=source, metric="temperature", label_filters={"facility": "f1"}, detector="novelty", sensitivity=0.5
    )
    assert anomaly_scores_update(max_points=250)["points"] == 25  # a tenth of the run per series
    later = series_create(source=source, metric="temperature", device="b", facility="f1")
    points_store(later, list(zip(_times(), _values(2, jump=None), strict=True)))
    for _ in range(100):
        if anomaly_scores_update(max_points=2_000)["points"] == 0:
            break
    ids = anomaly_score_series_ids(series_ids=[first, later, other_facility])
    assert set(ids) == {first, later}  # the f9 series is not watched
    assert np.array_equal(_stored_scores(ids[first]), _expected(_values(1), "novelty"))
    assert np.array_equal(_stored_scores(ids[later]), _expected(_values(2, jump=None), "novelty"))


def test_a_new_detector_starts_learning_again():
    source = source_create(slug="plant")
    press = series_create(source=source, metric="temperature", device="press-7")
    values = _values()
    pairs = list(zip(_times(), values, strict=True))
    points_store(press, pairs)
    detection = anomaly_detection_create(source=source, metric="temperature", detector="novelty", sensitivity=0.5)
    anomaly_scores_update()
    anomaly_detection_update(detection=detection, detector="seasonal")
    assert anomaly_scores_update()["points"] == LENGTH
    score_series = anomaly_score_series_ids(series_ids=[press])[press]
    assert np.array_equal(_stored_scores(score_series), _expected(values, "seasonal"))


def test_score_above_a_level_for_n_points():
    source = source_create(slug="plant")
    scores = series_create(source=source, metric="temperature.anomaly_score", device="press-7")
    points_store(scores, [(START + timedelta(minutes=index), value) for index, value in
                          enumerate([0.1, 0.2, 0.9995, 0.9991, 0.9999])])  # fmt: skip
    assert anomaly_score_above(score_series_ids=[scores], level=0.999, points=3) == {scores: True}
    assert anomaly_score_above(score_series_ids=[scores], level=0.999, points=4) == {scores: False}
    assert anomaly_score_above(score_series_ids=[scores], level=0.9999, points=1) == {scores: True}
    assert anomaly_score_above(score_series_ids=[scores], level=0.99995, points=1) == {scores: False}


def test_disabled_detections_are_not_scored():
    source = source_create(slug="plant")
    press = series_create(source=source, metric="temperature", device="press-7")
    points_store(press, list(zip(_times(), _values(), strict=True)))
    detection = anomaly_detection_create(source=source, metric="temperature", detector="novelty", sensitivity=0.5)
    anomaly_detection_update(detection=detection, enabled=False)
    assert anomaly_scores_update()["points"] == 0
    assert not AnomalyDetection.objects.get(pk=detection.pk).series_states.exists()


def test_a_series_committed_after_a_newer_one_is_picked_up_by_the_periodic_rescan(monkeypatch):
    from apps.alerts import scoring

    source = source_create(slug="plant")
    newer = series_create(source=source, metric="temperature", device="b")
    points_store(newer, list(zip(_times(), _values(), strict=True)))
    anomaly_detection_create(source=source, metric="temperature", detector="seasonal", sensitivity=0.5)
    anomaly_scores_update()
    # A series whose id was drawn before `newer`'s but whose transaction committed after the run.
    older = Series.objects.create(id=newer - 1, source=source, metric="temperature", labels={"device": "a"}).id
    points_store(older, list(zip(_times(), _values(2), strict=True)))
    assert anomaly_scores_update()["points"] == 0  # within the rescan interval only newer ids are looked at
    monkeypatch.setattr(scoring, "_FULL_RESCAN_SECONDS", 0.0)
    assert anomaly_scores_update()["points"] == LENGTH
    assert older in anomaly_score_series_ids(series_ids=[older])
