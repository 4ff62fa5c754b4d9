"""`make demo`: check services, migrate, create the admin and demo data, then run every process."""

from __future__ import annotations

import os
import secrets
import shutil
import sys
from pathlib import Path

from django.conf import settings
from django.contrib.auth import get_user_model
from django.core.management import call_command
from django.core.management.base import BaseCommand, CommandError

from analytics_platform.management.commands.demo_data import simulator_write_keys
from analytics_platform.service_checks import postgres_problem, redis_problem


class Command(BaseCommand):
    help = "Prepare the demo (database, admin user, demo data) and run web, worker, beat and connectors."

    def add_arguments(self, parser) -> None:
        parser.add_argument("--port", type=int, default=int(os.environ.get("PORT", "8000")), help="Web port (PORT).")
        parser.add_argument("--host", default=os.environ.get("HOST", "127.0.0.1"), help="Address to listen on (HOST).")
        parser.add_argument("--prepare-only", action="store_true", help="Set everything up but start no processes.")

    def handle(self, *args, port: int, host: str, prepare_only: bool, **options) -> None:
        problems = [
            problem
            for problem in (
                postgres_problem(database=settings.DATABASES["default"], create_database=True),
                redis_problem(url=settings.REDIS_URL),
            )
            if problem
        ]
        if problems:
            raise CommandError("The demo needs these services:\n" + "\n".join(str(problem) for problem in problems))
        call_command("migrate", interactive=False, verbosity=0)
        call_command("collectstatic", interactive=False, verbosity=0)
        self.stdout.write("Database migrated, static files collected.")
        password = os.environ.get("DEMO_PASSWORD") or secrets.token_urlsafe(12)
        self._ensure_admin(password)
        call_command("demo_data", verbosity=0)
        if prepare_only:
            self.stdout.write(f"Prepared. Login: admin / {password}")
            return
        self._run_processes(host=host, port=port, password=password)

    def _ensure_admin(self, password: str) -> None:
        user, _ = get_user_model().objects.get_or_create(
            username="admin", defaults={"email": "admin@example.com", "is_staff": True, "is_superuser": True}
        )
        user.is_staff = user.is_superuser = user.is_active = True
        user.set_password(password)
        user.save()

    def _run_processes(self, *, host: str, port: int, password: str) -> None:
        bin_dir = str(Path(sys.executable).parent)
        honcho = shutil.which("honcho", path=bin_dir) or shutil.which("honcho")
        if honcho is None:
            raise CommandError("honcho is not installed; run `make install` (it is in requirements.txt).")
        smtp_port = os.environ.get("DEMO_SMTP_PORT", "8025")
        environment = {
            **os.environ,
            "PATH": bin_dir + os.pathsep + os.environ.get("PATH", ""),
            "PYTHONUNBUFFERED": "1",
            "DJANGO_SETTINGS_MODULE": os.environ.get("DJANGO_SETTINGS_MODULE", "analytics_platform.settings.dev"),
            # honcho overwrites PORT per process, so the web port travels under its own name.
            "WEB_PORT": str(port),
            "WEB_HOST": host,
            "DEMO_PASSWORD": password,
            # The live simulator goes on from the history (demo_history) with the same machines and event rate.
            "DEMO_SEED": os.environ.get("DEMO_SEED", "7"),
            "DEMO_DEVICES": os.environ.get("DEMO_DEVICES", "50"),
            "DEMO_EVENT_RATE": os.environ.get("DEMO_EVENT_RATE", "0.2"),
            # Report and alert mail goes to the demo's own SMTP server (the Procfile's `mail`, aiosmtpd), which keeps
            # every message in a Maildir instead of delivering it; EMAIL_HOST set by you sends real mail instead.
            **(
                {}
                if os.environ.get("EMAIL_HOST")
                else {
                    "EMAIL_HOST": "127.0.0.1",
                    "EMAIL_PORT": smtp_port,
                    "EMAIL_USE_TLS": "false",
                    "DEMO_MAIL_KEPT": "1",
                }
            ),
            "DEMO_SMTP_PORT": smtp_port,
            "DEMO_MAIL_DIR": str(settings.BASE_DIR / "var" / "demo-mail"),
            # The simulator writes through the real ingest API with keys made for this run.
            "SIMULATE_WRITE_KEYS": ",".join(f"{slug}={key}" for slug, key in simulator_write_keys().items()),
        }
        procfile = str(settings.BASE_DIR / "Procfile")
        self.stdout.write(f"Starting web, worker, beat, connectors and the simulator on http://{host}:{port}/ ...")
        sys.stdout.flush()
        os.execve(honcho, [honcho, "--procfile", procfile, "--app-root", str(settings.BASE_DIR), "start"], environment)  # noqa: S606 (replace this process with the process runner)
