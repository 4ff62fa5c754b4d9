from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Alert rules, their state and history, detectors and notifiers."""

    name = "apps.alerts"
    label = "alerts"
    verbose_name = "Alerts"
