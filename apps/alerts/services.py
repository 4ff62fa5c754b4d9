"""Writes for anomaly detection settings: turn detection on for a metric of a source, change it, turn it off."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from django.contrib.auth.models import AbstractBaseUser
from django.db import IntegrityError, transaction

from analytics_platform.field_errors import FieldError
from apps.alerts.detectors import DETECTORS
from apps.alerts.models import SCORE_METRIC_SUFFIX, AnomalyDetection, AnomalySeriesState
from apps.sources.models import Source

_MAX_LABEL_FILTERS = 20


class DetectionError(FieldError):
    """A detection setting was refused; `field` names the input, `status` the HTTP status."""


def _label_filters_clean(label_filters: Any) -> dict[str, str]:
    if label_filters is None:
        return {}
    if not isinstance(label_filters, Mapping):
        raise DetectionError("label_filters", 'must be an object of label values, e.g. {"facility": "f2"}')
    if len(label_filters) > _MAX_LABEL_FILTERS:
        raise DetectionError("label_filters", f"at most {_MAX_LABEL_FILTERS} labels")
    cleaned = {}
    for key, value in label_filters.items():
        if not isinstance(key, str) or not key or not isinstance(value, str):
            raise DetectionError(f"label_filters.{key}", "label names and values must be non-empty text")
        cleaned[key] = value
    return cleaned


def _check(*, metric: str, detector: str, sensitivity: float) -> None:
    if not metric or not metric.strip():
        raise DetectionError("metric", "name the metric to watch")
    if metric.endswith(SCORE_METRIC_SUFFIX):
        raise DetectionError("metric", f"{metric!r} is itself an anomaly score series")
    if detector not in DETECTORS:
        raise DetectionError("detector", f"unknown detector {detector!r}; choose from {', '.join(sorted(DETECTORS))}")
    if not 0.0 <= sensitivity <= 1.0:
        raise DetectionError("sensitivity", "must be between 0 and 1")


def anomaly_detection_create(
    *,
    source: Source,
    metric: str,
    label_filters: Mapping[str, str] | None = None,
    detector: str,
    sensitivity: float,
    enabled: bool = True,
    created_by: AbstractBaseUser | None = None,
) -> AnomalyDetection:
    """Turn detection on for `metric` of `source` (every series, or those whose labels match `label_filters`)."""
    cleaned = _label_filters_clean(label_filters)
    _check(metric=metric, detector=detector, sensitivity=sensitivity)
    try:
        with transaction.atomic():
            return AnomalyDetection.objects.create(
                source=source,
                metric=metric.strip(),
                label_filters=cleaned,
                detector=detector,
                sensitivity=sensitivity,
                enabled=enabled,
                created_by=created_by,
            )
    except IntegrityError:
        raise DetectionError(
            "metric", "detection is already on for this metric and these label filters; change that one", status=409
        ) from None


def anomaly_detection_update(
    *,
    detection: AnomalyDetection,
    detector: str | None = None,
    sensitivity: float | None = None,
    enabled: bool | None = None,
) -> AnomalyDetection:
    """Change a detection. A new detector starts every series learning again (its state means nothing to another)."""
    new_detector = detection.detector if detector is None else detector
    new_sensitivity = detection.sensitivity if sensitivity is None else sensitivity
    _check(metric=detection.metric, detector=new_detector, sensitivity=new_sensitivity)
    with transaction.atomic():
        if new_detector != detection.detector:
            AnomalySeriesState.objects.filter(detection=detection).update(state=b"", scored_until=None, points_scored=0)
        detection.detector = new_detector
        detection.sensitivity = new_sensitivity
        if enabled is not None:
            detection.enabled = enabled
        detection.generation += 1  # any process's cached detector bank is stale now
        detection.save()
    return detection


def anomaly_detection_delete(*, detection: AnomalyDetection) -> None:
    """Turn detection off and forget its state and detections; the score series already written stay."""
    detection.delete()
