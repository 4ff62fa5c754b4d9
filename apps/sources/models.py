"""Data sources, their write keys and versioned schemas; storage reads the retention overrides."""

from __future__ import annotations

from django.conf import settings
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


class SchemaMode(models.TextChoices):
    INFER = "infer", "Infer fields (schemaless)"
    STRICT = "strict", "Strict (declared fields only)"


class Source(models.Model):
    """Where data comes from; series and points belong to a source, and a source to an organisation."""

    organization = models.ForeignKey("access.Organization", on_delete=models.PROTECT, related_name="sources")
    name = models.CharField(max_length=200)
    # Unique within the organisation only: a global rule would let anyone learn that another tenant uses a slug
    # (creating it answered 409). Resolution by slug always happens inside the caller's organisations.
    slug = models.SlugField(max_length=100, help_text="Used in URLs and queries, e.g. 'plant-sensors'.")
    kind = models.CharField(max_length=16, choices=SourceKind.choices, default=SourceKind.HTTP)
    enabled = models.BooleanField(default=True, help_text="Paused sources reject writes and stop their connectors.")
    config = models.JSONField(
        default=dict,
        blank=True,
        help_text='Connection settings for the kind, e.g. MQTT {"topic": "plant/+/telemetry", "format": "json"}.',
    )
    rate_limit_points_per_second = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Points per second this source may write; empty uses INGEST_SOURCE_RATE_LIMIT.",
    )
    max_series = models.PositiveIntegerField(
        null=True,
        blank=True,
        validators=[MinValueValidator(1)],
        help_text="Most distinct series this source may create; empty uses INGEST_MAX_SERIES_PER_SOURCE.",
    )
    created_at = models.DateTimeField(default=timezone.now)
    updated_at = models.DateTimeField(auto_now=True)
    raw_retention_days = _retention_field("raw points")
    rollup_1m_retention_days = _retention_field("1-minute rollups")
    rollup_1h_retention_days = _retention_field("hourly rollups")
    rollup_1d_retention_days = _retention_field("daily rollups")

    class Meta:
        ordering = ["name"]
        constraints = [
            models.UniqueConstraint(fields=["organization", "slug"], name="sources_source_organization_slug_unique")
        ]

    def __str__(self) -> str:
        return self.name


class SourceWriteKey(models.Model):
    """A key that lets an agent write to one source. Only its SHA-256 digest is stored; it is shown once."""

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="write_keys")
    name = models.CharField(max_length=100, help_text="Where the key is used, e.g. 'telegraf-plant-2'.")
    key_prefix = models.CharField(max_length=16, help_text="The first characters, to recognise a key in lists.")
    key_hash = models.CharField(max_length=64, unique=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    revoked_at = models.DateTimeField(null=True, blank=True)
    last_used_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.name} ({self.key_prefix}…)"

    @property
    def status(self) -> str:
        """active or revoked."""
        return "revoked" if self.revoked_at else "active"


class SchemaChange(models.TextChoices):
    INITIAL = "initial", "Initial version"
    COMPATIBLE = "compatible", "Compatible (adds optional fields or widens types)"
    BREAKING = "breaking", "Breaking (declared explicitly)"


class SourceSchema(models.Model):
    """One version of a source's schema. Versions are never edited; every point records the version that took it.

    `definition` is validated by `apps.sources.schemas.schema_definition_clean`; see docs/ingestion.md.
    """

    source = models.ForeignKey(Source, on_delete=models.CASCADE, related_name="schemas")
    version = models.PositiveIntegerField()
    mode = models.CharField(max_length=8, choices=SchemaMode.choices, default=SchemaMode.INFER)
    definition = models.JSONField(default=dict, blank=True)
    change = models.CharField(max_length=16, choices=SchemaChange.choices, default=SchemaChange.INITIAL)
    note = models.CharField(max_length=500, blank=True, help_text="Why this version exists.")
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["source", "-version"]
        constraints = [models.UniqueConstraint(fields=["source", "version"], name="sources_schema_version_unique")]

    def __str__(self) -> str:
        return f"{self.source} schema v{self.version} ({self.mode})"
