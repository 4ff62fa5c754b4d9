"""Reads for anomaly detection: detections a user may see, detections raised (annotations), score conditions."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from django.contrib.auth.models import AbstractBaseUser
from django.db.models import QuerySet

from apps.alerts.models import AnomalyDetection, AnomalyEvent, AnomalySeriesState
from apps.sources.selectors import source_ids_for_user
from apps.storage.derived import points_latest


def anomaly_detection_list_for_user(*, user: AbstractBaseUser) -> QuerySet[AnomalyDetection]:
    """Detections on the sources of the user's organisations (every one for superusers)."""
    detections = AnomalyDetection.objects.select_related("source").order_by("source__slug", "metric", "id")
    source_ids = source_ids_for_user(user=user)
    return detections if source_ids is None else detections.filter(source_id__in=source_ids)


def anomaly_event_list(
    *,
    user: AbstractBaseUser,
    detection_id: int | None = None,
    source_slug: str | None = None,
    series_ids: Sequence[int] | None = None,
    start: datetime | None = None,
    end: datetime | None = None,
    limit: int = 1_000,
) -> list[AnomalyEvent]:
    """Detections the user may see, newest first: the annotations of time-series panels.

    `series_ids` may name the watched series or their score series. The dashboards issue draws these on charts.
    """
    events = AnomalyEvent.objects.select_related("detection", "series").filter(
        detection__in=anomaly_detection_list_for_user(user=user)
    )
    if detection_id is not None:
        events = events.filter(detection_id=detection_id)
    if source_slug:
        events = events.filter(detection__source__slug=source_slug)
    if series_ids is not None:
        watched = set(series_ids) | set(
            AnomalySeriesState.objects.filter(score_series_id__in=list(series_ids)).values_list("series_id", flat=True)
        )
        events = events.filter(series_id__in=watched)
    if start is not None:
        events = events.filter(time__gte=start)
    if end is not None:
        events = events.filter(time__lt=end)
    return list(events.order_by("-time")[:limit])


def anomaly_score_series_ids(*, series_ids: Sequence[int]) -> dict[int, int]:
    """The score series of watched series (series id -> score series id), for those that have one."""
    return dict(
        AnomalySeriesState.objects.filter(series_id__in=list(series_ids)).values_list("series_id", "score_series_id")
    )


def anomaly_score_above(*, score_series_ids: Sequence[int], level: float, points: int) -> dict[int, bool]:
    """Per score series: whether its `points` newest scores are all at or above `level`.

    The alert condition "anomaly score above L for N points" (the alerting issue evaluates it for the series its
    rule selects under the rule owner's data scope). The detectors report a burst once (docs/anomaly.md), so N = 1
    fires at a burst's first point; a larger N fires only while an anomaly keeps getting odder.
    """
    if points < 1:
        raise ValueError("points must be at least 1")
    latest = points_latest(series_ids=score_series_ids, count=points)
    return {
        series_id: len(values) == points and all(value >= level for value in values)
        for series_id, values in latest.items()
    }
