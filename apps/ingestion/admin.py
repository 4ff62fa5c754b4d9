"""Dead letters (filter, inspect, replay, discard) and file uploads in the admin."""

from __future__ import annotations

from collections import defaultdict

from django.contrib import admin

from apps.ingestion.models import DeadLetter, FileUpload
from apps.ingestion.services import dead_letters_discard, dead_letters_replay


@admin.register(DeadLetter)
class DeadLetterAdmin(admin.ModelAdmin):
    list_display = [
        "last_received_at", "source", "transport", "error_code", "error_field", "short_message", "occurrences",
        "status",
    ]  # fmt: skip
    list_filter = ["status", "error_code", "transport", "source"]
    search_fields = ["error_message", "raw", "error_field"]
    list_select_related = ["source"]
    date_hierarchy = "last_received_at"
    show_full_result_count = False
    actions = ["replay", "discard"]
    readonly_fields = [
        "source", "schema_version", "transport", "payload_format", "record_index", "error_code", "error_field",
        "error_message", "raw", "context", "received_at", "last_received_at", "occurrences", "status",
        "replay_attempts", "resolved_at", "resolved_by",
    ]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Message")
    def short_message(self, obj: DeadLetter) -> str:
        return obj.error_message if len(obj.error_message) <= 90 else obj.error_message[:89] + "…"

    def _by_source(self, queryset):
        grouped = defaultdict(list)
        for letter in queryset.select_related("source"):
            grouped[letter.source].append(letter.pk)
        return grouped

    @admin.action(description="Replay selected (through the current schema)")
    def replay(self, request, queryset) -> None:
        replayed = failing = 0
        for source, ids in self._by_source(queryset).items():
            outcome = dead_letters_replay(source=source, ids=ids, user=request.user)
            replayed += outcome.replayed
            failing += outcome.still_failing
        self.message_user(request, f"{replayed} replayed and stored; {failing} still refused (see their new reason).")

    @admin.action(description="Discard selected")
    def discard(self, request, queryset) -> None:
        discarded = sum(
            dead_letters_discard(source=source, ids=ids, user=request.user)
            for source, ids in self._by_source(queryset).items()
        )
        self.message_user(request, f"{discarded} discarded.")


@admin.register(FileUpload)
class FileUploadAdmin(admin.ModelAdmin):
    list_display = ["original_name", "source", "status", "progress", "points_written", "rows_rejected", "created_at"]
    list_filter = ["status", "payload_format", "source"]
    readonly_fields = [
        "source", "file", "original_name", "payload_format", "size_bytes", "status", "rows_total", "rows_done",
        "points_written", "rows_rejected", "error", "created_at", "created_by", "started_at", "finished_at",
    ]  # fmt: skip

    def has_add_permission(self, request) -> bool:
        return False

    @admin.display(description="Progress")
    def progress(self, obj: FileUpload) -> str:
        if not obj.rows_total:
            return f"{obj.rows_done:,} rows"
        return f"{obj.rows_done:,} / {obj.rows_total:,} ({100 * obj.rows_done / obj.rows_total:.0f}%)"
