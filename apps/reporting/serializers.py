"""Shapes of the reports API (validation of the content lives in services.py, which names the failing field)."""

from __future__ import annotations

from typing import Any

from drf_spectacular.utils import extend_schema_field
from rest_framework import serializers

from apps.reporting.models import DeliveryStatus, Report, ReportFormat, RunStatus, RunTrigger


class RecipientsSerializer(serializers.Serializer):
    users = serializers.ListField(child=serializers.CharField(), required=False, help_text="Usernames of members.")
    teams = serializers.ListField(
        child=serializers.CharField(), required=False, help_text="Team slugs: every member, at the time of each run."
    )
    emails = serializers.ListField(child=serializers.EmailField(), required=False, help_text="External addresses.")
    send_emails_as_me = serializers.BooleanField(
        required=False,
        default=False,
        help_text="Required (true) to send to external addresses: they receive what the report's owner may see.",
    )


class ScheduleSerializer(serializers.Serializer):
    cron = serializers.CharField(help_text="Five-field cron, e.g. '0 7 * * 1' (Mondays 07:00).")
    timezone = serializers.CharField(required=False, help_text="IANA zone the cron and calendar periods use.")


class ReportQuerySerializer(serializers.Serializer):
    title = serializers.CharField(required=False)
    query = serializers.DictField(help_text="A query spec as POST /api/v1/query takes it (without start/end).")
    unit = serializers.CharField(required=False, allow_blank=True)
    decimals = serializers.IntegerField(required=False, allow_null=True, min_value=0, max_value=10)


class ReportWriteSerializer(serializers.Serializer):
    """The body of POST /api/v1/reports/ (and, every field optional, PATCH)."""

    name = serializers.CharField(max_length=200)
    organization = serializers.CharField(required=False, help_text="Slug; optional when you belong to one.")
    dashboard = serializers.CharField(required=False, allow_null=True, help_text="The uid of a dashboard.")
    panels = serializers.ListField(child=serializers.CharField(), required=False, help_text="Panel keys; empty: all.")
    queries = ReportQuerySerializer(many=True, required=False)
    formats = serializers.ListField(child=serializers.ChoiceField(choices=ReportFormat.choices))
    recipients = RecipientsSerializer()
    time_range = serializers.DictField(
        required=False,
        help_text='{"start": "-7d", "end": "now"} (relative to the run) or {"preset": "last_calendar_month"}; '
        "presets: today, yesterday, last_7_days, last_calendar_week, last_calendar_month, month_to_date.",
    )
    schedule = ScheduleSerializer(required=False, allow_null=True)
    timezone = serializers.CharField(required=False)
    subject = serializers.CharField(required=False, help_text="Django template; variables listed in docs/reports.md.")
    message = serializers.CharField(required=False, allow_blank=True)
    enabled = serializers.BooleanField(required=False)


class LastRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    status = serializers.ChoiceField(choices=RunStatus.choices)
    created_at = serializers.DateTimeField()


class ReportSerializer(serializers.ModelSerializer):
    """A report as the API returns it."""

    organization = serializers.SlugRelatedField(slug_field="slug", read_only=True)
    owner = serializers.SlugRelatedField(slug_field="username", read_only=True)
    dashboard = serializers.SerializerMethodField()
    panels = serializers.ListField(source="panel_keys", child=serializers.CharField())
    recipients = serializers.SerializerMethodField()
    schedule = serializers.SerializerMethodField()
    subject = serializers.CharField(source="subject_template")
    message = serializers.CharField(source="message_template")
    last_run = serializers.SerializerMethodField()

    class Meta:
        model = Report
        fields = [
            "id", "name", "organization", "owner", "dashboard", "panels", "queries", "formats", "recipients",
            "time_range", "schedule", "timezone", "subject", "message", "enabled", "last_run", "created_at",
            "updated_at",
        ]  # fmt: skip

    @extend_schema_field(serializers.CharField(allow_null=True, help_text="The dashboard's uid."))
    def get_dashboard(self, report: Report) -> str | None:
        return report.dashboard.uid if report.dashboard_id else None

    @extend_schema_field(RecipientsSerializer)
    def get_recipients(self, report: Report) -> dict[str, Any]:
        return {
            "users": sorted(user.username for user in report.recipient_users.all()),
            "teams": sorted(team.slug for team in report.recipient_teams.all()),
            "emails": list(report.recipient_emails),
            "send_emails_as_me": report.send_emails_as_owner,
        }

    @extend_schema_field(ScheduleSerializer(allow_null=True))
    def get_schedule(self, report: Report) -> dict[str, str] | None:
        return {"cron": report.cron, "timezone": report.timezone} if report.cron else None

    @extend_schema_field(LastRunSerializer(allow_null=True))
    def get_last_run(self, report: Report) -> dict[str, Any] | None:
        if hasattr(report, "last_run_id"):  # annotated by report_list_for_user: no query per report
            if report.last_run_id is None:
                return None
            return LastRunSerializer(
                {"id": report.last_run_id, "status": report.last_run_status, "created_at": report.last_run_at}
            ).data
        run = report.runs.order_by("-created_at", "-id").first()
        return LastRunSerializer(run).data if run else None


class DeliveryFileSerializer(serializers.Serializer):
    name = serializers.CharField()
    bytes = serializers.IntegerField()


class ReportDeliverySerializer(serializers.Serializer):
    email = serializers.EmailField()
    user = serializers.CharField(source="user.username", allow_null=True, default=None)
    rendered_as = serializers.CharField(
        source="rendered_as.username", allow_null=True, default=None, help_text="Whose data scope the files show."
    )
    status = serializers.ChoiceField(choices=DeliveryStatus.choices)
    attempts = serializers.IntegerField()
    linked = serializers.BooleanField(help_text="The files were too large to attach; the mail carried links.")
    files = DeliveryFileSerializer(many=True)
    error = serializers.CharField()
    sent_at = serializers.DateTimeField(allow_null=True)


class ReportRunSerializer(serializers.Serializer):
    id = serializers.IntegerField()
    report = serializers.IntegerField(source="report_id")
    trigger = serializers.ChoiceField(choices=RunTrigger.choices)
    status = serializers.ChoiceField(choices=RunStatus.choices)
    requested_by = serializers.CharField(source="requested_by.username", allow_null=True, default=None)
    scheduled_for = serializers.DateTimeField(allow_null=True)
    period_start = serializers.DateTimeField()
    period_end = serializers.DateTimeField()
    created_at = serializers.DateTimeField()
    started_at = serializers.DateTimeField(allow_null=True)
    finished_at = serializers.DateTimeField(allow_null=True)
    render_seconds = serializers.FloatField(allow_null=True)
    error = serializers.CharField()
    deliveries = ReportDeliverySerializer(many=True)


class PreviewQuerySerializer(serializers.Serializer):
    recipient = serializers.CharField(help_text="'user:<username>' or 'email:<address>' (see docs/reports.md).")
    file_format = serializers.ChoiceField(choices=ReportFormat.choices, default="pdf")
