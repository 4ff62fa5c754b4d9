"""Operator retention of the append-only audit log: archive, then delete events older than a cutoff."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.utils import timezone

from apps.audit.csv_export import audit_events_csv_lines
from apps.audit.models import AuditEvent
from apps.audit.services import audit_record


class Command(BaseCommand):
    help = (
        "Delete audit events older than --older-than-days, after writing them to --archive (CSV). Run it as the "
        "role that owns audit_auditevent: it disables the append-only trigger inside its own transaction, so no "
        "other session ever sees the table writable."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--older-than-days", type=int, required=True, help="Keep this many days (at least 30).")
        parser.add_argument("--archive", type=Path, required=True, help="CSV file to write the pruned events to.")

    def handle(self, *args, older_than_days: int, archive: Path, **options) -> None:
        if older_than_days < 30:
            raise CommandError("--older-than-days: keep at least 30 days of audit log.")
        if archive.exists():
            raise CommandError(f"--archive: {archive} exists; choose a new file so no archive is overwritten.")
        cutoff = timezone.now() - timedelta(days=older_than_days)
        with transaction.atomic():
            # ALTER TABLE takes an ACCESS EXCLUSIVE lock until commit: writers wait, none sees the trigger off.
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE audit_auditevent DISABLE TRIGGER audit_event_append_only")
            old = AuditEvent.objects.filter(time__lt=cutoff).order_by("time", "id")
            with archive.open("w", encoding="utf-8", newline="") as file:
                for line in audit_events_csv_lines(old.iterator(chunk_size=2000)):
                    file.write(line)
            deleted, _ = old.delete()
            with connection.cursor() as cursor:
                cursor.execute("ALTER TABLE audit_auditevent ENABLE TRIGGER audit_event_append_only")
            audit_record(
                action="audit.pruned",
                actor_description="operator (manage.py audit_log_prune)",
                details={"before": cutoff.isoformat(), "deleted": deleted, "archive": str(archive)},
            )
        self.stdout.write(f"Archived and deleted {deleted} audit events older than {cutoff:%Y-%m-%d %H:%M} UTC.")
