"""Admin for dashboards: read-mostly, since edits belong in the builder where every save is versioned."""

from __future__ import annotations

from django.contrib import admin

from apps.dashboards.models import Dashboard, DashboardVersion, Panel


class PanelInline(admin.TabularInline):
    model = Panel
    fields = ["position", "key", "title", "type", "grid"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = False

    def has_add_permission(self, request, obj=None) -> bool:
        return False


class DashboardVersionInline(admin.TabularInline):
    model = DashboardVersion
    fields = ["version", "message", "created_by", "created_at"]
    readonly_fields = fields
    extra = 0
    can_delete = False
    show_change_link = True
    ordering = ["-version"]

    def has_add_permission(self, request, obj=None) -> bool:
        return False


@admin.register(Dashboard)
class DashboardAdmin(admin.ModelAdmin):
    list_display = ["title", "uid", "organization", "folder", "owner", "version", "refresh", "updated_at"]
    list_filter = ["organization", "refresh"]
    search_fields = ["title", "uid", "folder"]
    list_select_related = ["organization", "owner"]
    raw_id_fields = ["owner"]
    # Owner is the one thing worth changing here (e.g. when someone leaves); the rest is saved from the builder.
    readonly_fields = [
        "uid", "organization", "title", "folder", "tags", "variables", "time_range", "refresh", "version",
        "created_at", "updated_at",
    ]  # fmt: skip
    inlines = [PanelInline, DashboardVersionInline]

    def has_add_permission(self, request) -> bool:
        return False


@admin.register(DashboardVersion)
class DashboardVersionAdmin(admin.ModelAdmin):
    list_display = ["dashboard", "version", "message", "created_by", "created_at"]
    list_select_related = ["dashboard", "created_by"]
    search_fields = ["dashboard__title", "dashboard__uid", "message"]
    readonly_fields = ["dashboard", "version", "document", "message", "created_by", "created_at"]

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
