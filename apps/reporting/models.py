"""Reports, their runs, and one delivery per recipient of a run."""

from __future__ import annotations

from django.conf import settings
from django.db import models
from django.utils.timezone import now


def _default_time_range() -> dict[str, str]:
    return {"start": "-7d", "end": "now"}


def _default_formats() -> list[str]:
    return ["pdf"]


class ReportFormat(models.TextChoices):
    PDF = "pdf", "PDF"
    XLSX = "xlsx", "Excel (XLSX)"
    CSV = "csv", "CSV"


class Report(models.Model):
    """A report of an organisation: what it shows, over which period, to whom, when.

    Recipients are users, teams (each member, at the time of the run) and external addresses.
    The content is a dashboard (all its panels, or the chosen `panel_keys`) and/or `queries` shown as tables.
    Each user recipient gets the report rendered under their own data policies; external addresses get the
    owner's view only when `send_emails_as_owner` says so ("send as me").
    """

    organization = models.ForeignKey("access.Organization", on_delete=models.PROTECT, related_name="reports")
    owner = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.PROTECT, related_name="owned_reports")
    name = models.CharField(max_length=200)
    dashboard = models.ForeignKey(
        "dashboards.Dashboard", on_delete=models.SET_NULL, null=True, blank=True, related_name="reports"
    )
    panel_keys = models.JSONField(default=list, blank=True, help_text="Empty: every panel of the dashboard.")
    queries = models.JSONField(default=list, blank=True, help_text='[{"title": "...", "query": {...}, "unit": ""}]')
    time_range = models.JSONField(default=_default_time_range)
    formats = models.JSONField(default=_default_formats)
    recipient_users = models.ManyToManyField(settings.AUTH_USER_MODEL, blank=True, related_name="+")
    recipient_teams = models.ManyToManyField(
        "access.Team", blank=True, related_name="+", help_text="Each member gets the report under their own policies."
    )
    recipient_emails = models.JSONField(default=list, blank=True)
    send_emails_as_owner = models.BooleanField(
        default=False, help_text="External addresses receive what the owner sees; required to send to any."
    )
    subject_template = models.CharField(max_length=500, default="{{ report_name }}: {{ period }}")
    message_template = models.TextField(
        default="Hello {{ recipient_name }},\n\nattached is {{ report_name }} for {{ period }}.\n", blank=True
    )
    timezone = models.CharField(max_length=64, default="UTC")
    cron = models.CharField(
        max_length=120, blank=True, help_text="Five fields, e.g. '0 7 * * 1'; empty: not scheduled."
    )
    enabled = models.BooleanField(default=True)
    periodic_task = models.OneToOneField(
        "django_celery_beat.PeriodicTask", on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    created_at = models.DateTimeField(default=now)
    updated_at = models.DateTimeField(auto_now=True)

    class Meta:
        ordering = ["name", "id"]
        indexes = [models.Index(fields=["organization", "name"], name="reporting_org_name_idx")]

    def __str__(self) -> str:
        return self.name

    @property
    def schedule_words(self) -> str | None:
        """The schedule in words when it is one the editor's picker makes ("every Monday at 07:30"), else None."""
        from apps.reporting.schedules import schedule_words

        return schedule_words(self.cron) if self.cron else None


class RunTrigger(models.TextChoices):
    SCHEDULE = "schedule", "Schedule"
    MANUAL = "manual", "Send now"


class RunStatus(models.TextChoices):
    QUEUED = "queued", "Queued"
    RUNNING = "running", "Running"
    SUCCEEDED = "succeeded", "Succeeded"
    PARTIAL = "partial", "Partly delivered"
    FAILED = "failed", "Failed"


class ReportRun(models.Model):
    """One rendering and sending of a report; `scheduled_for` makes a scheduled tick run at most once."""

    report = models.ForeignKey(Report, on_delete=models.CASCADE, related_name="runs")
    trigger = models.CharField(max_length=16, choices=RunTrigger.choices)
    requested_by = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=RunStatus.choices, default=RunStatus.QUEUED)
    scheduled_for = models.DateTimeField(null=True, blank=True)
    period_start = models.DateTimeField(null=True, blank=True)
    period_end = models.DateTimeField(null=True, blank=True)
    created_at = models.DateTimeField(default=now)
    started_at = models.DateTimeField(null=True, blank=True)
    finished_at = models.DateTimeField(null=True, blank=True)
    render_seconds = models.FloatField(null=True, blank=True)
    error = models.TextField(blank=True)

    class Meta:
        ordering = ["-created_at", "-id"]
        constraints = [
            models.UniqueConstraint(
                fields=["report", "scheduled_for"],
                condition=models.Q(trigger="schedule"),
                name="reporting_run_scheduled_once",
            )
        ]

    def __str__(self) -> str:
        return f"{self.report} run {self.pk} ({self.status})"


class DeliveryStatus(models.TextChoices):
    PENDING = "pending", "Pending"
    SENT = "sent", "Sent"
    NO_DATA = "no_data", "Sent: nothing visible to the recipient"
    FAILED = "failed", "Failed"


class ReportDelivery(models.Model):
    """What one recipient of a run got: whose view it was rendered as, the files, and how sending went."""

    run = models.ForeignKey(ReportRun, on_delete=models.CASCADE, related_name="deliveries")
    user = models.ForeignKey(settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True)
    email = models.EmailField()
    rendered_as = models.ForeignKey(
        settings.AUTH_USER_MODEL, on_delete=models.SET_NULL, null=True, blank=True, related_name="+"
    )
    status = models.CharField(max_length=16, choices=DeliveryStatus.choices, default=DeliveryStatus.PENDING)
    attempts = models.PositiveIntegerField(default=0)
    files = models.JSONField(default=list, blank=True, help_text='[{"name": "...", "path": "...", "bytes": 1}]')
    linked = models.BooleanField(default=False, help_text="The files were too large to attach: the mail links them.")
    error = models.TextField(blank=True)
    sent_at = models.DateTimeField(null=True, blank=True)

    class Meta:
        ordering = ["run", "id"]

    def __str__(self) -> str:
        return f"{self.email} ({self.status})"
