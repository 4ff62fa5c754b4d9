from django.contrib import admin

from apps.sources.models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "enabled", "raw_retention_days", "rollup_1m_retention_days", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
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
        return [
            (None, {"fields": ["name", "slug", "kind", "enabled", "config"]}),
            ("Retention overrides", {"description": description, "fields": self.retention_fields}),
        ]
