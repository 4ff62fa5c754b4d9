"""Anomaly detection settings, per-series detector state, and the detections they raise."""

from __future__ import annotations

from django.conf import settings
from django.core.validators import MaxValueValidator, MinValueValidator
from django.db import models
from django.utils import timezone

from apps.alerts.detectors import DEFAULT_DETECTOR, DETECTORS
from apps.alerts.detectors.calibration import DEFAULT_SENSITIVITY

SCORE_METRIC_SUFFIX = ".anomaly_score"


class AnomalyDetection(models.Model):
    """Detection turned on for a metric of a source: all its series, or those whose labels match."""

    source = models.ForeignKey("sources.Source", on_delete=models.CASCADE, related_name="anomaly_detections")
    metric = models.CharField(max_length=200, help_text="The metric watched, e.g. temperature.")
    label_filters = models.JSONField(
        default=dict,
        blank=True,
        help_text='Only series whose labels have these values, e.g. {"facility": "f2"}; empty: every series.',
    )
    detector = models.CharField(max_length=32, choices=[(name, name) for name in DETECTORS], default=DEFAULT_DETECTOR)
    sensitivity = models.FloatField(
        default=DEFAULT_SENSITIVITY,
        validators=[MinValueValidator(0.0), MaxValueValidator(1.0)],
        help_text="0 to 1: higher reports more detections (a lower score level).",
    )
    enabled = models.BooleanField(default=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    # Bumped by every scoring run that commits: a process whose cached detector state has another generation
    # reloads it from the database (another process scored since).
    generation = models.BigIntegerField(default=0)

    class Meta:
        ordering = ["source_id", "metric", "id"]
        constraints = [
            models.UniqueConstraint(fields=["source", "metric", "label_filters"], name="alerts_detection_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.metric} of {self.source_id} ({self.detector})"


class AnomalySeriesState(models.Model):
    """One watched series: its detector state as of `scored_until`, and the series its scores go to."""

    detection = models.ForeignKey(AnomalyDetection, on_delete=models.CASCADE, related_name="series_states")
    series = models.ForeignKey("storage.Series", on_delete=models.CASCADE, related_name="+")
    score_series = models.ForeignKey("storage.Series", on_delete=models.CASCADE, related_name="+")
    state = models.BinaryField(help_text="The detector's packed state (a few hundred bytes to a few kB).")
    scored_until = models.DateTimeField(null=True, blank=True, help_text="Time of the last point the state learnt.")
    points_scored = models.BigIntegerField(default=0)
    updated_at = models.DateTimeField(default=timezone.now)

    class Meta:
        constraints = [
            models.UniqueConstraint(fields=["detection", "series"], name="alerts_series_state_unique"),
        ]

    def __str__(self) -> str:
        return f"series {self.series_id} of detection {self.detection_id}"


class AnomalyEvent(models.Model):
    """A detection: a point whose score reached the detection's level (shown as an annotation on charts)."""

    detection = models.ForeignKey(AnomalyDetection, on_delete=models.CASCADE, related_name="events")
    series = models.ForeignKey("storage.Series", on_delete=models.CASCADE, related_name="+")
    time = models.DateTimeField()
    score = models.FloatField()
    value = models.FloatField()
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["-time"]
        constraints = [
            models.UniqueConstraint(fields=["detection", "series", "time"], name="alerts_event_unique"),
        ]
        indexes = [models.Index(fields=["detection", "time"], name="alerts_event_time_idx")]

    def __str__(self) -> str:
        return f"series {self.series_id} at {self.time:%Y-%m-%d %H:%M:%S} ({self.score:.4f})"
