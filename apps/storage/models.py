"""Series: one (source, metric, labels) combination. Points and rollups are plain SQL tables (see backends)."""

from __future__ import annotations

from django.contrib.postgres.indexes import GinIndex
from django.db import models
from django.utils import timezone


class Series(models.Model):
    """A time series; `points.series_id` refers to it (no foreign key, to keep COPY fast)."""

    id = models.AutoField(primary_key=True)  # int4 keeps every points row 4 bytes narrower
    source = models.ForeignKey("sources.Source", on_delete=models.CASCADE, related_name="series")
    metric = models.CharField(max_length=200, help_text="e.g. temperature, purchase.amount")
    labels = models.JSONField(default=dict, blank=True, help_text='e.g. {"device": "press-7", "facility": "f2"}')
    created_at = models.DateTimeField(default=timezone.now)

    class Meta:
        verbose_name_plural = "series"
        constraints = [
            models.UniqueConstraint(fields=["source", "metric", "labels"], name="storage_series_unique_key"),
        ]
        indexes = [
            models.Index(fields=["metric", "source"], name="storage_series_metric_idx"),
            GinIndex(fields=["labels"], name="storage_series_labels_gin", opclasses=["jsonb_path_ops"]),
        ]

    def __str__(self) -> str:
        labels = ",".join(f"{key}={value}" for key, value in sorted(self.labels.items()))
        return f"{self.metric}{{{labels}}}"
