"""Wait until the web process answers /healthz, print the URL and login, then idle until stopped."""

from __future__ import annotations

import json
import os
import signal
import threading
import time
import urllib.error
import urllib.request

from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError


class Command(BaseCommand):
    help = "Print the demo's URL and login once the site answers (used by make demo)."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--timeout", type=float, default=90.0, help="Seconds to wait for the site.")

    def handle(self, *args, timeout: float, **options) -> None:
        host = os.environ.get("WEB_HOST", "127.0.0.1")
        port = os.environ.get("WEB_PORT", "8000")
        display_host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 (only for display)
        url = f"http://{display_host}:{port}/"
        deadline = time.monotonic() + timeout
        status = None
        while time.monotonic() < deadline:
            try:
                with urllib.request.urlopen(url + "healthz", timeout=2) as response:  # noqa: S310 (our own URL)
                    status = json.load(response)
                    break
            except urllib.error.HTTPError as error:
                status = json.load(error)
                break
            except OSError:
                time.sleep(0.5)
        if status is None:
            raise CommandError(f"The site did not answer at {url} within {timeout:.0f} s; see the web process log.")
        # History goes in through the ingest API, so only now that the site answers; the banner waits for it.
        call_command("demo_history")
        password = os.environ.get("DEMO_PASSWORD", "(the DEMO_PASSWORD you set)")
        banner = [
            "",
            "=" * 64,
            f"  Analytics Platform demo is up: {url}",
            f"  Login: admin / {password}",
            f"  Health: {status.get('status')}   API docs: {url}api/docs/",
            *(
                [f"  Mail (reports, alert emails) is kept, not sent: {url}demo/mail/ (admin)"]
                if os.environ.get("DEMO_MAIL_KEPT")
                else []
            ),
            "  Press Ctrl-C once to stop every process.",
            "=" * 64,
            "",
        ]
        self.stdout.write("\n".join(banner))
        self.stdout.flush()
        stop = threading.Event()
        for signum in (signal.SIGINT, signal.SIGTERM):
            signal.signal(signum, lambda *_: stop.set())
        # honcho stops every process when one exits, so this one stays until the demo is stopped.
        stop.wait()
