from django.contrib import admin

from apps.audit.models import AuditEvent


@admin.register(AuditEvent)
class AuditEventAdmin(admin.ModelAdmin):
    """Read-only: the audit log is append-only (the database refuses updates and deletes too)."""

    list_display = ["time", "actor_description", "action", "object_type", "object_repr", "source_ip", "organization"]
    list_filter = ["action"]
    search_fields = ["actor_description", "action", "object_repr", "object_id"]
    date_hierarchy = "time"

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False

    def has_delete_permission(self, request, obj=None) -> bool:
        return False
