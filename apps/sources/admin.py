from django.contrib import admin

from apps.sources.models import Source


@admin.register(Source)
class SourceAdmin(admin.ModelAdmin):
    list_display = ["name", "slug", "kind", "enabled", "raw_retention_days", "rollup_1m_retention_days", "created_at"]
    list_filter = ["kind", "enabled"]
    search_fields = ["name", "slug"]
    prepopulated_fields = {"slug": ["name"]}
    fieldsets = [
        (None, {"fields": ["name", "slug", "kind", "enabled", "config"]}),
        (
            "Retention overrides",
            {
                "description": "Empty fields use the global defaults (STORAGE_* settings).",
                "fields": [
                    "raw_retention_days",
                    "rollup_1m_retention_days",
                    "rollup_1h_retention_days",
                    "rollup_1d_retention_days",
                ],
            },
        ),
    ]
