"""Run the connector supervisor in the foreground until SIGINT/SIGTERM."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from worker.connectors import ConnectorSupervisor


class Command(BaseCommand):
    help = "Run every enabled pull connector (MQTT, Kafka, ...) and follow source changes without a restart."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--poll-seconds", type=float, default=5.0, help="How often to look for source changes.")

    def handle(self, *args, poll_seconds: float, **options) -> None:
        # Importing registers the MQTT and Kafka providers; only this process runs connectors.
        import apps.ingestion.connectors.providers  # noqa: F401

        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        supervisor = ConnectorSupervisor(poll_seconds=poll_seconds)
        self.stderr.write(f"run_connectors: supervising {len(supervisor.providers)} connector provider(s)")
        supervisor.serve(stop=stop)
