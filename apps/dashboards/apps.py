from django.apps import AppConfig


class DashboardsConfig(AppConfig):
    """Dashboards, panels, the builder and live WebSocket fan-out."""

    name = "apps.dashboards"
    label = "dashboards"
    verbose_name = "Dashboards"
