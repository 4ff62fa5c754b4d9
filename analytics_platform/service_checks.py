"""Pre-flight checks for `make demo`: is PostgreSQL up, does the database exist, is Redis up."""

from __future__ import annotations

from dataclasses import dataclass

import psycopg
import redis
from psycopg import sql

POSTGRES_START_HINT = (
    "Start it with `pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start` (Debian), "
    "`sudo systemctl start postgresql`, or point DATABASE_URL at a running server."
)
REDIS_START_HINT = (
    "Start it with `redis-server --daemonize yes --port 6379 --save '' --appendonly no`, "
    "`sudo systemctl start redis-server`, or point REDIS_URL at a running server."
)


@dataclass(frozen=True)
class ServiceProblem:
    """A dependency that is not usable, with what to do about it."""

    service: str
    detail: str
    hint: str

    def __str__(self) -> str:
        return f"{self.service} is not available: {self.detail}\n  {self.hint}"


def _connect_kwargs(database: dict) -> dict:
    return {
        "host": database["HOST"] or None,
        "port": database["PORT"] or None,
        "user": database["USER"] or None,
        "password": database["PASSWORD"] or None,
        "connect_timeout": 3,
    }


def postgres_problem(*, database: dict, create_database: bool) -> ServiceProblem | None:
    """None when the configured database is reachable (created first if asked and missing)."""
    where = f"{database['HOST'] or 'local socket'}:{database['PORT'] or 5432}"
    kwargs = _connect_kwargs(database)
    try:
        with psycopg.connect(dbname="postgres", autocommit=True, **kwargs) as connection:
            exists = connection.execute("SELECT 1 FROM pg_database WHERE datname = %s", [database["NAME"]]).fetchone()
            if not exists:
                if not create_database:
                    return ServiceProblem(
                        "PostgreSQL", f"database {database['NAME']!r} does not exist at {where}", "Create it."
                    )
                connection.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(database["NAME"])))
    except psycopg.OperationalError as error:
        message = str(error).strip().splitlines()[-1] if str(error).strip() else type(error).__name__
        return ServiceProblem("PostgreSQL", f"cannot connect to {where} ({message})", POSTGRES_START_HINT)
    return None


def redis_problem(*, url: str) -> ServiceProblem | None:
    """None when Redis answers PING."""
    client = redis.Redis.from_url(url, socket_timeout=3, socket_connect_timeout=3)
    try:
        client.ping()
    except redis.RedisError as error:
        return ServiceProblem("Redis", f"cannot connect to {url} ({error})", REDIS_START_HINT)
    finally:
        client.close()
    return None
