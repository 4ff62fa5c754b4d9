from django.apps import AppConfig


class ReportingConfig(AppConfig):
    """Scheduled PDF, Excel and CSV reports delivered by email."""

    name = "apps.reporting"
    label = "reporting"
    verbose_name = "Reporting"
