"""`make demo`: write the demo sources' history (30 days by default) through the ingest API, with a progress line.

Runs once the web process answers (demo_ready calls it). Skipped when the factory source already has points that
old, so a restarted demo does not write its history twice.
"""

from __future__ import annotations

import os
from datetime import UTC, datetime, timedelta

from django.core.management.base import BaseCommand, CommandError

from apps.ingestion.management.commands.simulate import WRITE_KEYS_ENVIRONMENT_VARIABLE, write_keys_parse
from apps.ingestion.simulator.history import demo_history_write
from apps.ingestion.simulator.sinks import HttpSink, HttpSinkError

DEFAULT_DAYS = 30.0
DEFAULT_SEED = 7
DEFAULT_DEVICES = 50
DEFAULT_EVENT_RATE = 0.2


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        return float(raw) if raw else default
    except ValueError:
        raise CommandError(f"{name} must be a number, got {raw!r}.") from None


class Command(BaseCommand):
    help = "Write the demo's history (DEMO_HISTORY_DAYS, default 30) through the HTTP ingest API."

    def add_arguments(self, parser) -> None:
        host = os.environ.get("WEB_HOST", "127.0.0.1")
        host = "127.0.0.1" if host in {"0.0.0.0", "::"} else host  # noqa: S104 (where to connect, not bind)
        parser.add_argument("--url", default=f"http://{host}:{os.environ.get('WEB_PORT', '8000')}")
        parser.add_argument("--days", type=float, default=_env_float("DEMO_HISTORY_DAYS", DEFAULT_DAYS))
        parser.add_argument("--seed", type=int, default=int(_env_float("DEMO_SEED", DEFAULT_SEED)))
        parser.add_argument("--devices", type=int, default=int(_env_float("DEMO_DEVICES", DEFAULT_DEVICES)))
        parser.add_argument("--event-rate", type=float, default=_env_float("DEMO_EVENT_RATE", DEFAULT_EVENT_RATE))
        parser.add_argument("--force", action="store_true", help="Write it even if history is already there.")

    def handle(self, *args, url: str, days: float, seed: int, devices: int, event_rate: float, force: bool,
               **options) -> None:  # fmt: skip
        from apps.sources.selectors import source_get_by_slug
        from apps.storage.selectors import points_exist_before

        if days <= 0:
            self.stdout.write("History: DEMO_HISTORY_DAYS is 0, none written.")
            return
        now = datetime.now(UTC).replace(microsecond=0)
        factory = source_get_by_slug(slug="demo-factory")
        if factory is None:
            raise CommandError("The demo sources do not exist; run `manage.py demo_data` first.")
        if not force and points_exist_before(source_id=factory.id, before=now - timedelta(days=days) / 2):
            self.stdout.write("History: already written (start with a fresh database, or --force, to write it again).")
            return
        keys = write_keys_parse(
            values=[os.environ.get(WRITE_KEYS_ENVIRONMENT_VARIABLE, "")], origin="SIMULATE_WRITE_KEYS"
        )
        if not keys:
            raise CommandError(f"Set {WRITE_KEYS_ENVIRONMENT_VARIABLE} (slug=key,...) for the demo sources.")
        self.stdout.write(f"History: writing {days:g} days for the demo sources to {url} ...")
        self.stdout.flush()

        def report(line: str) -> None:
            self.stdout.write(line)
            self.stdout.flush()

        try:
            progress = demo_history_write(
                sink_factory=lambda: HttpSink(base_url=url, write_keys=keys, timeout_seconds=120.0, max_attempts=8),
                now=now, days=days, seed=seed, devices=devices, event_rate=event_rate, report=report,
            )  # fmt: skip
        except HttpSinkError as error:
            raise CommandError(f"History stopped: {error}") from error
        self.stdout.write(f"History done. {progress.line().removeprefix('History: ')}")
