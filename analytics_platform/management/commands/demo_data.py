"""Create the demo's objects. Each domain adds its part here as it lands (sources, dashboards, alerts)."""

from __future__ import annotations

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Create demo objects (idempotent)."

    def handle(self, *args, **options) -> None:
        # Nothing beyond the admin user exists yet; sources and dashboards add their demo objects here.
        self.stdout.write("Demo data is up to date.")
