"""Ingestion models: the dead-letter store (every refused record, replayable) and file uploads for backfills."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils import timezone


class Transport(models.TextChoices):
    HTTP = "http", "HTTP JSON"
    INFLUX_V1 = "influx_v1", "InfluxDB v1 write"
    INFLUX_V2 = "influx_v2", "InfluxDB v2 write"
    MQTT = "mqtt", "MQTT"
    KAFKA = "kafka", "Kafka"
    FILE = "file", "File upload"
    REPLAY = "replay", "Dead-letter replay"


class PayloadFormat(models.TextChoices):
    JSON = "json", "JSON"
    LINE = "line", "Line protocol"
    CSV = "csv", "CSV"
    PARQUET = "parquet", "Parquet"


class DeadLetterStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    REPLAYED = "replayed", "Replayed"
    DISCARDED = "discarded", "Discarded"


class DeadLetter(models.Model):
    """A record that was refused, with its raw text and the reason, kept until replayed or discarded.

    While pending, a letter is unique per source and `dedup_key` (see `services.dead_letter_key`): the same refused
    record delivered again (HTTP retry, MQTT or Kafka redelivery) bumps `occurrences` and `last_received_at` of the
    letter it already has instead of adding a row. Replayed and discarded letters are history; a later arrival of
    the same record is a new letter.
    """

    source = models.ForeignKey("sources.Source", on_delete=models.CASCADE, related_name="dead_letters")
    schema = models.ForeignKey("sources.SourceSchema", on_delete=models.SET_NULL, null=True, blank=True)
    schema_version = models.PositiveIntegerField(null=True, blank=True)
    transport = models.CharField(max_length=16, choices=Transport.choices)
    payload_format = models.CharField(max_length=8, choices=PayloadFormat.choices)
    raw = models.TextField(help_text="The record as received (a whole payload when it could not be split).")
    record_index = models.IntegerField(null=True, blank=True, help_text="Position of the record in its payload.")
    error_code = models.CharField(max_length=40, db_index=True)
    error_field = models.CharField(max_length=200, blank=True)
    error_message = models.TextField()
    context = models.JSONField(
        default=dict, blank=True, help_text="What replay needs: precision, MQTT topic, Kafka offset, file name."
    )
    received_at = models.DateTimeField(
        default=timezone.now,
        help_text="When the record first arrived; replay stores records without a time of their own at this time.",
    )
    last_received_at = models.DateTimeField(
        default=timezone.now, help_text="When the record last arrived (the latest redelivery, or the first arrival)."
    )
    occurrences = models.PositiveIntegerField(
        default=1, help_text="How many times this record arrived and was refused while the letter was pending."
    )
    dedup_key = models.CharField(
        max_length=64,
        null=True,
        blank=True,
        editable=False,
        help_text="SHA-256 of what identifies the record (services.dead_letter_key); a redelivery has the same one.",
    )
    status = models.CharField(max_length=16, choices=DeadLetterStatus.choices, default=DeadLetterStatus.PENDING)
    replay_attempts = models.PositiveIntegerField(default=0)
    resolved_at = models.DateTimeField(null=True, blank=True)
    resolved_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)

    class Meta:
        ordering = ["-last_received_at", "-id"]
        indexes = [
            models.Index(fields=["source", "status", "-last_received_at"], name="ingestion_dl_source_seen"),
            models.Index(fields=["source", "status", "error_code"], name="ingestion_dl_source_code"),
        ]
        constraints = [
            # A redelivered record finds its pending letter through this index (INSERT ... ON CONFLICT), so two
            # concurrent deliveries of one record cannot both add a row.
            models.UniqueConstraint(
                fields=["source", "dedup_key"],
                condition=models.Q(status=DeadLetterStatus.PENDING),
                name="ingestion_dl_pending_once",
            ),
        ]

    def __str__(self) -> str:
        return f"{self.source_id}: {self.error_code} at {self.received_at:%Y-%m-%d %H:%M:%S}"


class UploadStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    DONE = "done", "Done"
    FAILED = "failed", "Failed"
    CANCELLED = "cancelled", "Cancelled"


class FileUpload(models.Model):
    """A CSV or Parquet backfill, processed in Celery chunk by chunk; `rows_done` is committed with each chunk."""

    source = models.ForeignKey("sources.Source", on_delete=models.CASCADE, related_name="uploads")
    file = models.FileField(upload_to="uploads/%Y/%m/%d/")
    original_name = models.CharField(max_length=255)
    payload_format = models.CharField(max_length=8, choices=PayloadFormat.choices)
    size_bytes = models.BigIntegerField(default=0)
    status = models.CharField(max_length=16, choices=UploadStatus.choices, default=UploadStatus.QUEUED)
    rows_total = models.BigIntegerField(null=True, blank=True)
    rows_done = models.BigIntegerField(default=0, help_text="Rows committed; a resumed run starts after them.")
    points_written = models.BigIntegerField(default=0)
    rows_rejected = models.BigIntegerField(default=0)
    error = models.TextField(blank=True)
    created_at = models.DateTimeField(default=timezone.now)
    created_by = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["-created_at"]

    def __str__(self) -> str:
        return f"{self.original_name} → {self.source_id} ({self.status})"
