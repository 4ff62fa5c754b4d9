"""What the HTTP benchmarks share: production settings for a throw-away database, and manage.py calls."""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent


def bench_database_url(database: str) -> str:
    """The benchmark's database: BENCH_DATABASE_URL (any server, port and user; the benchmark drops and recreates
    that database), else `database` on the local PostgreSQL."""
    return os.environ.get("BENCH_DATABASE_URL") or f"postgres://postgres@127.0.0.1:5432/{database}"


def storage_backend_wanted() -> str:
    """STORAGE_BACKEND for the benchmarks: BENCH_STORAGE_BACKEND, else STORAGE_BACKEND, else auto (TimescaleDB when
    the server offers it)."""
    return os.environ.get("BENCH_STORAGE_BACKEND") or os.environ.get("STORAGE_BACKEND") or "auto"


def prod_environment(*, database: str, redis_db: int, **extra: str) -> dict[str, str]:
    """Environment for daphne and manage.py with production settings on the benchmark's own database and Redis.

    BENCH_DATABASE_URL and BENCH_REDIS_URL override the defaults, BENCH_STORAGE_BACKEND the backend; `extra` adds or
    replaces variables.
    """
    return {
        **os.environ,
        "DJANGO_SETTINGS_MODULE": "analytics_platform.settings.prod",
        "DJANGO_SECRET_KEY": secrets.token_urlsafe(64),
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "DATABASE_URL": bench_database_url(database),
        "STORAGE_BACKEND": storage_backend_wanted(),
        "REDIS_URL": os.environ.get("BENCH_REDIS_URL", f"redis://127.0.0.1:6379/{redis_db}"),
        "SECURE_SSL_REDIRECT": "false",
        "SESSION_COOKIE_SECURE": "false",
        "CSRF_COOKIE_SECURE": "false",
        "LOG_LEVEL": "WARNING",
        "STATIC_ROOT": str(REPO_ROOT / "var" / "bench-static"),
        # The operator's bound on per-source raw retention (production default: the global 7 days): benchmark sources
        # keep history up to 400 days (the ingest backfill phase sends points 300 days old, the demo sources 35 days).
        "STORAGE_SOURCE_RETENTION_MAX_DAYS_RAW": "400",
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


def database_drop(url: str) -> None:
    """Drop the database `url` names, on the server, port and user it names (what `dropdb --if-exists` did for the
    local server only)."""
    import psycopg
    from psycopg import conninfo, sql

    name = conninfo.conninfo_to_dict(url)["dbname"]
    with psycopg.connect(conninfo.make_conninfo(url, dbname="postgres"), autocommit=True) as connection:
        connection.execute(sql.SQL("DROP DATABASE IF EXISTS {} WITH (FORCE)").format(sql.Identifier(name)))


def database_backend_pids(url: str) -> list[int]:
    """Process ids of the server backends connected to the database `url` names (but this one)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        rows = connection.execute(
            "SELECT pid FROM pg_stat_activity WHERE datname = current_database() AND pid <> pg_backend_pid()"
        ).fetchall()
    return [pid for (pid,) in rows]


def database_versions(url: str) -> dict:
    """What a result was measured on: the storage backend installed in the database, PostgreSQL's version and
    TimescaleDB's (None without the extension)."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as connection:
        postgres = connection.execute("SHOW server_version").fetchone()[0]
        row = connection.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'").fetchone()
        backend = None
        if connection.execute("SELECT to_regclass('storage_meta')").fetchone()[0] is not None:
            found = connection.execute("SELECT value FROM storage_meta WHERE key = 'backend'").fetchone()
            backend = found[0] if found else None
    return {"storage_backend": backend, "postgres": postgres, "timescaledb": row[0] if row else None}


def postgres_backend_cpu_seconds(pid: int) -> float:
    """CPU seconds of a PostgreSQL backend process, or 0.0 when it is not a process of this machine (a server
    elsewhere, or in a container, whose process ids mean other processes here)."""
    from bench.influx import process_cpu_seconds

    try:
        title = Path(f"/proc/{pid}/cmdline").read_bytes()
    except OSError:
        return 0.0
    if not title.startswith(b"postgres"):
        return 0.0
    try:
        return process_cpu_seconds(pid)
    except OSError:  # it exited meanwhile
        return 0.0
