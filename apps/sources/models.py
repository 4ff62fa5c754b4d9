"""Data sources. Ingestion adds write keys and versioned schemas; storage reads retention overrides."""

from __future__ import annotations

from django.core.validators import MinValueValidator
from django.db import models
from django.utils import timezone


class SourceKind(models.TextChoices):
    HTTP = "http", "HTTP push"
    MQTT = "mqtt", "MQTT subscription"
    KAFKA = "kafka", "Kafka consumer"
    FILE = "file", "File upload"


def _retention_field(label: str) -> models.PositiveIntegerField:
    return models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text=f"Days to keep {label} for this source; empty uses the global default.",
    )


class Source(models.Model):
    """Where data comes from; series and points belong to a source."""

    name = models.CharField(max_length=200)
    slug = models.SlugField(max_length=100, unique=True, help_text="Used in URLs and queries, e.g. 'plant-sensors'.")
    kind = models.CharField(max_length=16, choices=SourceKind.choices, default=SourceKind.HTTP)
    enabled = models.BooleanField(default=True, help_text="Paused sources reject writes and stop their connectors.")
    config = models.JSONField(default=dict, blank=True, help_text="Connection settings for the kind.")
    created_at = models.DateTimeField(default=timezone.now)
    raw_retention_days = _retention_field("raw points")
    rollup_1m_retention_days = _retention_field("1-minute rollups")
    rollup_1h_retention_days = _retention_field("hourly rollups")
    rollup_1d_retention_days = _retention_field("daily rollups")

    class Meta:
        ordering = ["name"]

    def __str__(self) -> str:
        return self.name
