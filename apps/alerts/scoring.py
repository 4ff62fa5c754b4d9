"""The scoring service: score newly committed points of every watched series, write the scores as series.

Runs in a Celery task every couple of seconds (`alerts.anomaly_scores_update`), never in an ingest request. Each
run, per enabled detection, under a PostgreSQL advisory lock (one scorer per detection at a time):

1. the detection's detector bank comes from this process's cache, or is loaded from `AnomalySeriesState` when the
   detection's generation says another process scored since (or this process never did);
2. series of the metric that appeared since (matching the label filters) get a row, and a score series
   `<metric>.anomaly_score` with the same source and labels;
3. the points committed after each series' cursor (bounded: ANOMALY_MAX_POINTS_PER_RUN in all, a tenth of that per
   series, so a long history is scored over several runs) are scored in time order, one step per time;
4. scores are written with `points_write` (idempotent: the same series and time again replaces the value), points
   whose score reaches the detection's level are recorded as AnomalyEvents (annotations), and the generation is
   bumped, all in one transaction;
5. at most every ANOMALY_CHECKPOINT_SECONDS (and on the first run after a load) the state and cursor of the series
   scored since are saved.

After a crash or restart the states come back from the last checkpoint and the points after its cursors are scored
again: the detectors are deterministic, so they learn each point once and the scores (and events) written again are
the same. A point committed later than its series' cursor's time (late data) is not scored.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Collection
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import connection, transaction
from django.db.models import F

from apps.alerts.detectors import DetectorBank, detector_create, score_in_rounds
from apps.alerts.detectors.calibration import sensitivity_level
from apps.alerts.models import SCORE_METRIC_SUFFIX, AnomalyDetection, AnomalyEvent, AnomalySeriesState
from apps.storage.derived import points_after
from apps.storage.models import Series
from apps.storage.services import points_write, series_key, series_resolve

logger = logging.getLogger(__name__)

_LOCK_NAMESPACE = 0x414E4F4D  # "ANOM": advisory locks (namespace, detection id)
# Series ids come from a sequence before their transaction commits, so a series can become visible after one with a
# higher id: every run looks past the newest id it knows, and this often at every matching series.
_FULL_RESCAN_SECONDS = 60.0


@dataclass
class _Loaded:
    """A detection's detector bank in this process, as of `generation`."""

    detector: str
    generation: int
    bank: DetectorBank
    rows: dict[int, int] = field(default_factory=dict)  # series id -> bank row
    state_ids: dict[int, int] = field(default_factory=dict)  # series id -> AnomalySeriesState id
    score_series: dict[int, int] = field(default_factory=dict)  # series id -> score series id
    cursors: dict[int, datetime | None] = field(default_factory=dict)
    scored: dict[int, int] = field(default_factory=dict)  # series id -> points scored
    newest_series_id: int = 0
    rescanned_at: float = float("-inf")
    dirty: set[int] = field(default_factory=set)
    checkpointed_at: float = 0.0


_cache: dict[int, _Loaded] = {}


def anomaly_cache_clear() -> None:
    """Forget every cached detector bank (tests; the next run loads the checkpoints)."""
    _cache.clear()


def anomaly_scores_update(*, series_ids: Collection[int] | None = None, max_points: int | None = None) -> dict:
    """Score what was committed since the last run, for every enabled detection (or those watching `series_ids`)."""
    limit = max_points or settings.ANOMALY_MAX_POINTS_PER_RUN
    detections = AnomalyDetection.objects.filter(enabled=True).order_by("id")
    if series_ids is not None:
        watched = Series.objects.filter(id__in=list(series_ids)).values_list("source_id", "metric")
        pairs = set(watched)
        detections = [item for item in detections if (item.source_id, item.metric) in pairs]
    totals = {"detections": 0, "points": 0, "events": 0, "skipped_locked": 0}
    for detection in detections:
        outcome = detection_score(detection_id=detection.id, max_points=limit)
        if outcome is None:
            totals["skipped_locked"] += 1
            continue
        totals["detections"] += 1
        totals["points"] += outcome["points"]
        totals["events"] += outcome["events"]
    return totals


def detection_score(*, detection_id: int, max_points: int) -> dict | None:
    """One scoring run of one detection; None if another process holds it."""
    try:
        with transaction.atomic():
            with connection.cursor() as cursor:
                cursor.execute("SELECT pg_try_advisory_xact_lock(%s, %s)", [_LOCK_NAMESPACE, detection_id])
                if not cursor.fetchone()[0]:
                    return None
            detection = AnomalyDetection.objects.filter(pk=detection_id, enabled=True).first()
            if detection is None:
                _cache.pop(detection_id, None)
                return {"points": 0, "events": 0}
            loaded = _cache.get(detection_id)
            if loaded is None or loaded.generation != detection.generation or loaded.detector != detection.detector:
                loaded = _load(detection)
            _series_sync(detection=detection, loaded=loaded)
            outcome = _score_new_points(detection=detection, loaded=loaded, max_points=max_points)
            if loaded.dirty and time.monotonic() - loaded.checkpointed_at >= settings.ANOMALY_CHECKPOINT_SECONDS:
                _checkpoint(loaded)
            AnomalyDetection.objects.filter(pk=detection_id).update(generation=F("generation") + 1)
            loaded.generation = detection.generation + 1
            _cache[detection_id] = loaded
            return outcome
    except Exception:
        _cache.pop(detection_id, None)  # the transaction rolled back: the cached bank is ahead of the database
        raise


def _load(detection: AnomalyDetection) -> _Loaded:
    bank = detector_create(detection.detector)
    loaded = _Loaded(detector=detection.detector, generation=detection.generation, bank=bank)
    states = list(
        AnomalySeriesState.objects.filter(detection=detection).values_list(
            "id", "series_id", "score_series_id", "state", "scored_until", "points_scored"
        )
    )
    rows = bank.rows_add(count=len(states))
    for row, state in zip(rows, states, strict=True):
        state_id, series_id, score_series_id, packed, scored_until, points_scored = state
        packed = bytes(packed)
        if packed:
            try:
                bank.row_unpack(row=int(row), data=packed)
            except ValueError:  # a detector's state layout changed: that series starts learning again
                logger.warning("detector state of series %s dropped: it no longer fits", series_id)
                scored_until, points_scored = None, 0
        loaded.rows[series_id] = int(row)
        loaded.state_ids[series_id] = state_id
        loaded.score_series[series_id] = score_series_id
        loaded.cursors[series_id] = scored_until if packed else None
        loaded.scored[series_id] = points_scored if packed else 0
        loaded.newest_series_id = max(loaded.newest_series_id, series_id)
    loaded.checkpointed_at = float("-inf")  # checkpoint at the end of this run: the next process starts from here
    return loaded


def _series_sync(*, detection: AnomalyDetection, loaded: _Loaded) -> None:
    """Give series that appeared since (and match) a bank row, a state row and a score series."""
    candidates = Series.objects.filter(source_id=detection.source_id, metric=detection.metric)
    if time.monotonic() - loaded.rescanned_at >= _FULL_RESCAN_SECONDS:
        loaded.rescanned_at = time.monotonic()
    else:
        candidates = candidates.filter(id__gt=loaded.newest_series_id)
    if detection.label_filters:
        candidates = candidates.filter(labels__contains=detection.label_filters)
    new = [
        (series_id, labels)
        for series_id, labels in candidates.order_by("id").values_list("id", "labels")
        if series_id not in loaded.rows
    ]
    if not new:
        return
    score_metric = detection.metric + SCORE_METRIC_SUFFIX
    keys = {
        series_id: series_key(source_id=detection.source_id, metric=score_metric, labels=labels)
        for series_id, labels in new
    }
    score_ids = series_resolve(keys=keys.values())
    AnomalySeriesState.objects.bulk_create(
        [
            AnomalySeriesState(detection=detection, series_id=series_id, score_series_id=score_ids[keys[series_id]])
            for series_id, _ in new
        ],
        ignore_conflicts=True,
    )
    state_ids = dict(
        AnomalySeriesState.objects.filter(detection=detection, series_id__in=list(keys)).values_list("series_id", "id")
    )
    rows = loaded.bank.rows_add(count=len(new))
    for row, (series_id, _) in zip(rows, new, strict=True):
        loaded.rows[series_id] = int(row)
        loaded.state_ids[series_id] = state_ids[series_id]
        loaded.score_series[series_id] = score_ids[keys[series_id]]
        loaded.cursors[series_id] = None
        loaded.scored[series_id] = 0
        loaded.newest_series_id = max(loaded.newest_series_id, series_id)


def _score_new_points(*, detection: AnomalyDetection, loaded: _Loaded, max_points: int) -> dict:
    points = points_after(cursors=loaded.cursors, per_series=max(1, max_points // 10), limit=max_points)
    if not points:
        return {"points": 0, "events": 0}
    series_ids = np.array([point[0] for point in points], dtype=np.int64)
    moments = [point[1] for point in points]
    times = np.array([moment.timestamp() for moment in moments])
    values = np.array([point[2] for point in points], dtype=np.float64)
    rows = np.array([loaded.rows[series_id] for series_id in series_ids.tolist()], dtype=np.int64)
    scores = score_in_rounds(bank=loaded.bank, rows=rows, times=times, values=values)
    points_write(
        points=[
            (loaded.score_series[series_id], moment, float(score))
            for series_id, moment, score in zip(series_ids.tolist(), moments, scores.tolist(), strict=True)
        ]
    )
    level = sensitivity_level(detection.sensitivity)
    events = [
        AnomalyEvent(detection=detection, series_id=series_id, time=moment, score=float(score), value=float(value))
        for series_id, moment, score, value in zip(series_ids.tolist(), moments, scores, values, strict=True)
        if score >= level
    ]
    if events:
        AnomalyEvent.objects.bulk_create(events, ignore_conflicts=True)  # a replay after a restart finds them there
    for series_id, moment in zip(series_ids.tolist(), moments, strict=True):
        previous = loaded.cursors[series_id]
        if previous is None or moment > previous:
            loaded.cursors[series_id] = moment
        loaded.scored[series_id] += 1
        loaded.dirty.add(series_id)
    return {"points": len(points), "events": len(events)}


def _checkpoint(loaded: _Loaded) -> None:
    """Save the state and cursor of every series scored since the last checkpoint."""
    series_ids = sorted(loaded.dirty)
    with connection.cursor() as cursor:
        cursor.execute(
            "UPDATE alerts_anomalyseriesstate AS s SET state = u.state, scored_until = u.scored_until, "
            "points_scored = u.points_scored, updated_at = now() "
            "FROM unnest(%s::bigint[], %s::bytea[], %s::timestamptz[], %s::bigint[]) "
            "AS u(id, state, scored_until, points_scored) WHERE s.id = u.id",
            [
                [loaded.state_ids[series_id] for series_id in series_ids],
                [loaded.bank.row_pack(row=loaded.rows[series_id]) for series_id in series_ids],
                [loaded.cursors[series_id] for series_id in series_ids],
                [loaded.scored[series_id] for series_id in series_ids],
            ],
        )
    loaded.dirty.clear()
    loaded.checkpointed_at = time.monotonic()
