"""Dashboards, their panels and saved versions; the JSON document format lives in `apps.dashboards.documents`."""

from __future__ import annotations

import secrets

from django.conf import settings
from django.db import models
from django.utils import timezone

UID_BYTES = 9  # 12 url-safe characters: short in links, far too many to guess.


def dashboard_uid_new() -> str:
    """A short random url-safe id for a dashboard."""
    return secrets.token_urlsafe(UID_BYTES)


def _default_time_range() -> dict[str, str]:
    return {"start": "-6h", "end": "now"}


class Refresh(models.TextChoices):
    LIVE = "live", "Live (pushed as data arrives)"
    OFF = "off", "Off"
    FIVE_SECONDS = "5s", "Every 5 seconds"
    TEN_SECONDS = "10s", "Every 10 seconds"
    THIRTY_SECONDS = "30s", "Every 30 seconds"
    ONE_MINUTE = "1m", "Every minute"
    FIVE_MINUTES = "5m", "Every 5 minutes"


class PanelType(models.TextChoices):
    TIMESERIES = "timeseries", "Time series"
    STAT = "stat", "Stat"
    GAUGE = "gauge", "Gauge"
    BAR_GAUGE = "bargauge", "Bar gauge"
    BAR = "bar", "Bar chart"
    PIE = "pie", "Pie chart"
    TABLE = "table", "Table"
    HEATMAP = "heatmap", "Heatmap"
    HISTOGRAM = "histogram", "Histogram"
    XY = "xy", "XY scatter"
    STATE_TIMELINE = "state_timeline", "State timeline"
    TEXT = "text", "Text (markdown)"
    ALERT_LIST = "alertlist", "Alert list"


class Dashboard(models.Model):
    """A dashboard of an organisation; `version` goes up by one on every save and each save keeps a snapshot."""

    uid = models.CharField(max_length=32, unique=True, default=dashboard_uid_new, editable=False)
    organization = models.ForeignKey("access.Organization", on_delete=models.PROTECT, related_name="dashboards")
    owner = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="dashboards"
    )
    title = models.CharField(max_length=200)
    folder = models.CharField(max_length=100, blank=True, help_text="Groups dashboards in lists, e.g. 'Plant 2'.")
    tags = models.JSONField(default=list, blank=True, help_text='Lower-case words, e.g. ["factory", "ops"].')
    variables = models.JSONField(default=list, blank=True, help_text="Template variables; see documents.py.")
    time_range = models.JSONField(default=_default_time_range, help_text='e.g. {"start": "-6h", "end": "now"}.')
    refresh = models.CharField(max_length=8, choices=Refresh.choices, default=Refresh.LIVE)
    version = models.PositiveIntegerField(default=1)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["title", "id"]
        indexes = [models.Index(fields=["organization", "title"], name="dashboards_org_title_idx")]

    def __str__(self) -> str:
        return self.title


class Panel(models.Model):
    """One panel on a dashboard; `key` is the builder's stable id for it, unique within the dashboard."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="panels")
    key = models.CharField(max_length=64)
    title = models.CharField(max_length=200, blank=True)
    type = models.CharField(max_length=16, choices=PanelType.choices)
    queries = models.JSONField(default=list, blank=True, help_text='[{"ref": "A", "query": {...}, "axis": "left"}]')
    options = models.JSONField(default=dict, blank=True)
    grid = models.JSONField(default=dict, help_text='{"x", "y", "w", "h"} on a 12-column grid.')
    position = models.PositiveIntegerField(default=0)

    class Meta:
        ordering = ["dashboard", "position", "id"]
        constraints = [models.UniqueConstraint(fields=["dashboard", "key"], name="dashboards_panel_key_unique")]

    def __str__(self) -> str:
        return f"{self.title or self.key} ({self.type})"


class DashboardVersion(models.Model):
    """The document of a dashboard as one save left it; never edited, restored by saving it again."""

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="versions")
    version = models.PositiveIntegerField()
    document = models.JSONField()
    message = models.CharField(max_length=500, blank=True)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        ordering = ["dashboard", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["dashboard", "version"], name="dashboards_version_unique"),
        ]

    def __str__(self) -> str:
        return f"{self.dashboard} v{self.version}"


class AnnotationKind(models.TextChoices):
    """Where an annotation came from: a person (UI or API) or, later, an alert rule's state change."""

    MANUAL = "manual", "Added by a person"
    ALERT = "alert", "Alert state change"


class Annotation(models.Model):
    """A note on a dashboard's time axis: an instant (`time_end` empty) or a range, on one panel or all of them.

    `kind` and `source_ref` let other apps (alert state changes) write annotations that are drawn the same way.
    """

    dashboard = models.ForeignKey(Dashboard, on_delete=models.CASCADE, related_name="annotations")
    panel_key = models.CharField(max_length=64, blank=True, help_text="The panel's key; empty means every panel.")
    time = models.DateTimeField()
    time_end = models.DateTimeField(null=True, blank=True, help_text="End of a range; empty for an instant.")
    text = models.CharField(max_length=1000)
    tags = models.JSONField(default=list, blank=True)
    kind = models.CharField(max_length=16, choices=AnnotationKind.choices, default=AnnotationKind.MANUAL)
    source_ref = models.CharField(
        max_length=200, blank=True, help_text="What wrote it, e.g. 'alert-rule:12' for an alert state change."
    )
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["dashboard", "time", "id"]
        indexes = [models.Index(fields=["dashboard", "time"], name="dashboards_annotation_time_idx")]
        constraints = [
            models.CheckConstraint(
                condition=models.Q(time_end__isnull=True) | models.Q(time_end__gte=models.F("time")),
                name="dashboards_annotation_range_ordered",
            )
        ]

    def __str__(self) -> str:
        return f"{self.dashboard_id}@{self.time:%Y-%m-%d %H:%M}: {self.text[:40]}"
