"""What the HTTP benchmarks share: production settings for a throw-away database, and manage.py calls."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def prod_environment(*, database: str, redis_db: int, **extra: str) -> dict[str, str]:
    """Environment for daphne and manage.py with production settings on the benchmark's own database and Redis.

    BENCH_DATABASE_URL and BENCH_REDIS_URL override the defaults; `extra` adds or replaces variables.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": os.environ.get("BENCH_DATABASE_URL", f"postgres://postgres@127.0.0.1:5432/{database}"),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(REPO_ROOT / "var" / "bench-static"),
        **extra,
    }


def manage(environment: dict[str, str], *args: str) -> str:
    """Run manage.py with `environment`; its stdout, or RuntimeError with its stderr."""
    result = subprocess.run(
        [sys.executable, "manage.py", *args], cwd=REPO_ROOT, env=environment, capture_output=True, text=True
    )
    if result.returncode != 0:
        raise RuntimeError(f"manage.py {' '.join(args)} failed:\n{result.stderr}")
    return result.stdout
