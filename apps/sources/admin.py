"""Source admin: settings and retention, live ingest figures, write keys (created and revoked here), schema versions."""

from __future__ import annotations

from django.contrib import admin, messages
from django.utils import timezone
from django.utils.html import format_html, format_html_join

from apps.sources.models import Source, SourceSchema, SourceWriteKey
from apps.sources.services import schema_version_create, write_key_create, write_key_revoke


class WriteKeyInline(admin.TabularInline):
    model = SourceWriteKey
    extra = 0
    fields = ["name", "key_prefix", "status", "created_at", "last_used_at", "revoked_at"]
    readonly_fields = fields
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        # Keys are created with the "Create a write key" action, which shows the secret once.
        return False


class SchemaInline(admin.TabularInline):
    model = SourceSchema
    extra = 0
    fields = ["version", "mode", "change", "note", "created_at", "definition"]
    readonly_fields = fields
    can_delete = False
    ordering = ["-version"]

    def has_add_permission(self, request, obj=None) -> bool:
        # New versions go through the API or the service, which checks compatibility.
        return False


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "organization", "kind", "enabled", "ingest_rate", "last_seen", "pending_errors"]
    list_filter = ["kind", "enabled", "organization"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    inlines = [SchemaInline, WriteKeyInline]
    actions = ["pause_sources", "resume_sources", "create_write_key"]
    readonly_fields = ["live_figures"]
    retention_fields = [
        "raw_retention_days",
        "rollup_1m_retention_days",
        "rollup_1h_retention_days",
        "rollup_1d_retention_days",
    ]

    def get_fieldsets(self, request, obj=None):
        from apps.storage.selectors import retention_defaults

        defaults = retention_defaults()
        description = (
            f"Empty fields use the global defaults ({defaults['backend']} backend): raw points "
            f"{defaults['points']} days, 1-minute rollups {defaults['points_1m']} days, hourly "
            f"{defaults['points_1h']} days, daily {defaults['points_1d']} days."
        )
        fieldsets = [
            (None, {"fields": ["name", "slug", "organization", "kind", "enabled", "config"]}),
            ("Limits", {"fields": ["rate_limit_points_per_second", "max_series"]}),
            ("Retention overrides", {"description": description, "fields": self.retention_fields}),
        ]
        if obj is not None:
            fieldsets.insert(1, ("Live ingest", {"fields": ["live_figures"]}))
        return fieldsets

    def get_prepopulated_fields(self, request, obj=None):
        return {} if obj is not None else self.prepopulated_fields

    def save_model(self, request, obj, form, change) -> None:
        super().save_model(request, obj, form, change)
        if change:
            from apps.ingestion.services import ingest_targets_forget

            ingest_targets_forget(source_id=obj.pk)
            return
        # A new source gets what the API gives it: schema version 1 (inferred) and a first write key.
        schema_version_create(source=obj, mode="infer", definition={}, created_by=request.user)
        _, raw_key = write_key_create(source=obj, name="default", created_by=request.user)
        self.message_user(
            request,
            format_html("Write key for {}: <code>{}</code> — copy it now; it is not shown again.", obj.slug, raw_key),
            level=messages.WARNING,
        )

    def get_readonly_fields(self, request, obj=None):
        # The slug names the source in agents' configuration and URLs, and the kind decides its connector.
        return [*self.readonly_fields, "slug", "kind"] if obj is not None else self.readonly_fields

    def _stats(self, obj):
        """Figures for a source, fetched once per object (the list shows three columns from them)."""
        from apps.ingestion.api import source_stats

        if not hasattr(obj, "_ingest_stats"):
            try:
                obj._ingest_stats = source_stats(obj)
            except Exception:
                obj._ingest_stats = None
        return obj._ingest_stats

    @admin.display(description="Points/s (1 min)")
    def ingest_rate(self, obj) -> str:
        stats = self._stats(obj)
        return "-" if stats is None else f"{stats['points_per_second']:,.1f}"

    @admin.display(description="Last seen")
    def last_seen(self, obj) -> str:
        stats = self._stats(obj)
        if not stats or not stats["last_seen"]:
            return "never"
        seconds = (timezone.now() - stats["last_seen"]).total_seconds()
        return f"{seconds:,.0f} s ago" if seconds < 3600 else stats["last_seen"].strftime("%Y-%m-%d %H:%M")

    @admin.display(description="Pending dead letters")
    def pending_errors(self, obj) -> str:
        stats = self._stats(obj)
        return "-" if stats is None else str(stats["dead_letters_pending"])

    @admin.display(description="Figures")
    def live_figures(self, obj) -> str:
        stats = self._stats(obj)
        if stats is None:
            return "Live figures are unavailable (is Redis running?)."
        links = [(obj.pk, code, code, count) for code, count in sorted(stats["dead_letters_by_code"].items())]
        by_code = format_html_join(
            "",
            "<li><a href='../../../ingestion/deadletter/?source__id__exact={}&error_code={}&status=pending'>"
            "{}</a>: {}</li>",
            links,
        )
        return format_html(
            "<p>{} points/s, {} records/s, {} refused/s over the last minute; last data {}; {} series.</p>"
            "<p>Pending dead letters by error:</p><ul>{}</ul>",
            f"{stats['points_per_second']:,.1f}",
            f"{stats['records_per_second']:,.1f}",
            f"{stats['rejected_per_second']:,.2f}",
            self.last_seen(obj),
            f"{stats['series']:,}",
            by_code or format_html("<li>none</li>"),
        )

    @admin.action(description="Pause selected sources")
    def pause_sources(self, request, queryset) -> None:
        self._set_enabled(request, queryset, enabled=False)

    @admin.action(description="Resume selected sources")
    def resume_sources(self, request, queryset) -> None:
        self._set_enabled(request, queryset, enabled=True)

    def _set_enabled(self, request, queryset, *, enabled: bool) -> None:
        from apps.ingestion.services import ingest_targets_forget
        from apps.sources.services import source_set_enabled

        for source in queryset:
            source_set_enabled(source=source, enabled=enabled)
            ingest_targets_forget(source_id=source.pk)
        self.message_user(request, f"{queryset.count()} source(s) {'resumed' if enabled else 'paused'}.")

    @admin.action(description="Create a write key (shown once)")
    def create_write_key(self, request, queryset) -> None:
        for source in queryset:
            _, raw_key = write_key_create(
                source=source, name=f"admin {timezone.now():%Y-%m-%d %H:%M}", created_by=request.user
            )
            self.message_user(
                request,
                format_html(
                    "Write key for {}: <code>{}</code> — copy it now; it is not shown again.", source.slug, raw_key
                ),
                level=messages.WARNING,
            )


@admin.register(SourceWriteKey)
class SourceWriteKeyAdmin(admin.ModelAdmin):
    list_display = ["name", "source", "key_prefix", "status", "created_at", "last_used_at"]
    list_filter = ["revoked_at", "source"]
    search_fields = ["name", "key_prefix", "source__slug"]
    readonly_fields = ["source", "key_prefix", "created_at", "created_by", "last_used_at", "revoked_at"]
    fields = ["name", *readonly_fields]
    actions = ["revoke_keys"]

    def has_add_permission(self, request) -> bool:
        return False

    @admin.action(description="Revoke selected keys")
    def revoke_keys(self, request, queryset) -> None:
        for key in queryset:
            write_key_revoke(key=key)
        self.message_user(request, f"{queryset.count()} key(s) revoked.")
