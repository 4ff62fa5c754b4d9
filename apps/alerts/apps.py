from django.apps import AppConfig


class AlertsConfig(AppConfig):
    """Alert rules, their state and history, detectors and notifiers."""

    name = "apps.alerts"
    label = "alerts"
    verbose_name = "Alerts"

    def ready(self) -> None:
        from apps.alerts.alerting.metrics import alerting_collectors_register

        alerting_collectors_register()
