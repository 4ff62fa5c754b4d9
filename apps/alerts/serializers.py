"""Shapes of anomaly detection settings and detections in the API (no rules here: see services.py)."""

from __future__ import annotations

from rest_framework import serializers

from apps.alerts.detectors import DEFAULT_DETECTOR, DETECTORS
from apps.alerts.detectors.calibration import DEFAULT_SENSITIVITY, sensitivity_level
from apps.alerts.models import SCORE_METRIC_SUFFIX, AnomalyDetection, AnomalyEvent


class AnomalyDetectionSerializer(serializers.ModelSerializer):
    """A detection as the API shows it."""

    source = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    score_metric = serializers.SerializerMethodField(help_text="The metric the scores are written to.")
    level = serializers.SerializerMethodField(help_text="The score a point needs to count as a detection.")

    class Meta:
        model = AnomalyDetection
        fields = [
            "id", "source", "metric", "label_filters", "detector", "sensitivity", "level", "enabled",
            "score_metric", "created_at", "updated_at",
        ]  # fmt: skip
        read_only_fields = fields

    def get_score_metric(self, detection: AnomalyDetection) -> str:
        return detection.metric + SCORE_METRIC_SUFFIX

    def get_level(self, detection: AnomalyDetection) -> float:
        return sensitivity_level(detection.sensitivity)


class AnomalyDetectionCreateSerializer(serializers.Serializer):
    """Turn detection on for a metric of a source."""

    source = serializers.RegexField(
        r"^(?:[-a-zA-Z0-9_]{1,100}/)?[-a-zA-Z0-9_]{1,100}$",
        help_text="Slug of the source ('<organization>/<slug>' if you see that slug in several organisations).",
    )
    metric = serializers.CharField(max_length=200)
    label_filters = serializers.DictField(
        child=serializers.CharField(), required=False, default=dict, help_text="Empty: every series of the metric."
    )
    detector = serializers.ChoiceField(choices=sorted(DETECTORS), default=DEFAULT_DETECTOR)
    sensitivity = serializers.FloatField(min_value=0.0, max_value=1.0, default=DEFAULT_SENSITIVITY)
    enabled = serializers.BooleanField(default=True)


class AnomalyDetectionUpdateSerializer(serializers.Serializer):
    """Change a detection's detector, sensitivity or whether it runs."""

    detector = serializers.ChoiceField(choices=sorted(DETECTORS), required=False)
    sensitivity = serializers.FloatField(min_value=0.0, max_value=1.0, required=False)
    enabled = serializers.BooleanField(required=False)


class AnomalyEventSerializer(serializers.ModelSerializer):
    """A detection raised on one series: an annotation for charts."""

    labels = serializers.JSONField(source="series.labels", read_only=True)
    metric = serializers.CharField(source="series.metric", read_only=True)

    class Meta:
        model = AnomalyEvent
        fields = ["id", "detection", "series", "metric", "labels", "time", "score", "value"]
        read_only_fields = fields
