from django.apps import AppConfig


class AuditConfig(AppConfig):
    """Append-only audit log: who did what, when, from where."""

    name = "apps.audit"
    label = "audit"
    verbose_name = "Audit log"

    def ready(self) -> None:
        from apps.audit import signals  # noqa: F401  (sign-in, sign-out and failed sign-in receivers)
