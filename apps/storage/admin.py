from django.contrib import admin

from apps.storage.models import Series


@admin.register(Series)
class SeriesAdmin(admin.ModelAdmin):
    """Series are created by ingestion; the admin browses them."""

    list_display = ["id", "source", "metric", "labels", "created_at"]
    list_filter = ["source", "metric"]
    search_fields = ["metric", "labels"]
    readonly_fields = ["source", "metric", "labels", "created_at"]
    list_select_related = ["source"]
    show_full_result_count = False  # counting millions of series on every page is slow

    def has_add_permission(self, request) -> bool:
        return False

    def has_change_permission(self, request, obj=None) -> bool:
        return False
