"""Run the change-driven alert evaluator (evaluates rules right after the ingest commits that touch them)."""

from __future__ import annotations

import signal
import threading

from django.core.management.base import BaseCommand

from apps.alerts.alerting.change_evaluator import ChangeEvaluator


class Command(BaseCommand):
    help = "Evaluate alert rules as their input series change (one process is enough; more share nothing)."

    def handle(self, *args, **options) -> None:
        stop = threading.Event()
        signal.signal(signal.SIGTERM, lambda *_: stop.set())
        signal.signal(signal.SIGINT, lambda *_: stop.set())
        self.stdout.write("alerts evaluator: listening for changes")
        self.stdout.flush()
        ChangeEvaluator(stop=stop).run()
