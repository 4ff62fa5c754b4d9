from django.apps import AppConfig


class PlatformConfig(AppConfig):
    """Platform-wide pieces: health, metrics, housekeeping tasks and the demo commands."""

    name = "analytics_platform"
    label = "platform"
    verbose_name = "Platform"
