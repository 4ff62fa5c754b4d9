from django.contrib import admin

from apps.alerts.models import AnomalyDetection, AnomalyEvent


@admin.register(AnomalyDetection)
class AnomalyDetectionAdmin(admin.ModelAdmin):
    list_display = ("id", "source", "metric", "label_filters", "detector", "sensitivity", "enabled", "updated_at")
    list_filter = ("detector", "enabled")
    search_fields = ("metric", "source__slug")
    readonly_fields = ("generation", "created_at", "updated_at")


@admin.register(AnomalyEvent)
class AnomalyEventAdmin(admin.ModelAdmin):
    list_display = ("id", "detection", "series", "time", "score", "value")
    list_filter = ("detection",)
    readonly_fields = ("detection", "series", "time", "score", "value", "created_at")
