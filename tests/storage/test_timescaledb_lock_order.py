"""TimescaleDB's maintenance jobs and the app's refresh wait for one another at the maintenance lock, before they
touch anything: shown with two real PostgreSQL backends, which the TimescaleDB test server (PGlite, one session)
cannot have.

The jobs' procedures (apps/storage/backends/timescaledb_jobs.py) are created as they are on TimescaleDB, in a
schema of this test, naming a schema that has no TimescaleDB functions: a job that got past the lock fails on its
first call to TimescaleDB, which is how the test sees where it waited. Everything here is real PostgreSQL; only
TimescaleDB's functions are absent (no TimescaleDB package exists for these machines).
"""

from __future__ import annotations

import secrets
import threading
import time

import psycopg
import pytest
from django.db import connection
from psycopg import sql

from apps.storage.backends import timescaledb_jobs

pytestmark = pytest.mark.django_db(transaction=True)


def _connect(schema: str) -> psycopg.Connection:
    settings = connection.settings_dict
    conn = psycopg.connect(
        dbname=settings["NAME"], user=settings["USER"], host=settings["HOST"] or None,
        port=settings["PORT"] or None, password=settings["PASSWORD"] or None, autocommit=True,
    )  # fmt: skip
    conn.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(schema)))
    return conn


@pytest.fixture
def schema():
    name = f"ts_lock_{secrets.token_hex(4)}"
    with _connect("public") as setup:
        setup.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(name)))
        setup.execute(sql.SQL("SET search_path TO {}").format(sql.Identifier(name)))
        for statement in timescaledb_jobs.maintenance_procedures_sql("timescaledb_absent"):
            setup.execute(statement)
    yield name
    with _connect("public") as cleanup:
        cleanup.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(name)))


def _waiting_on_advisory_lock(observer: psycopg.Connection, pid: int) -> bool:
    row = observer.execute("SELECT wait_event_type, wait_event FROM pg_stat_activity WHERE pid = %s", [pid]).fetchone()
    return row == ("Lock", "advisory")


@pytest.mark.parametrize(
    ("procedure", "config"),
    [
        (timescaledb_jobs.RETENTION_JOB, '{"relation": "points", "drop_after": "90 days"}'),
        (timescaledb_jobs.COMPRESSION_JOB, '{"relation": "points", "compress_after": "7 days"}'),
    ],
)
def test_a_job_waits_for_the_apps_refresh_before_it_touches_anything(schema, procedure, config):
    app, job, observer = _connect(schema), _connect(schema), _connect(schema)
    job_pid = job.info.backend_pid
    outcome: list[BaseException] = []

    def run_job() -> None:
        try:
            job.execute(sql.SQL("CALL {}(0, %s::jsonb)").format(sql.Identifier(procedure)), [config])
        except psycopg.Error as error:
            outcome.append(error)

    with app.cursor() as cursor, timescaledb_jobs.maintenance_lock(cursor):  # what rollup_refresh holds
        thread = threading.Thread(target=run_job)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_advisory_lock(observer, job_pid):
            assert time.monotonic() < deadline, "the job did not wait for the lock"
            assert thread.is_alive(), outcome
            time.sleep(0.02)
        time.sleep(0.2)
        assert thread.is_alive()  # still waiting: nothing of TimescaleDB's was called
        assert not outcome
    thread.join(timeout=10)
    # Granted the lock, the job went on to TimescaleDB's functions (absent here).
    assert len(outcome) == 1, outcome
    assert "timescaledb_absent" in str(outcome[0]), outcome
    for conn in (app, job, observer):
        conn.close()


def test_the_apps_refresh_waits_for_a_running_job(schema):
    job, app, observer = _connect(schema), _connect(schema), _connect(schema)
    app_pid = app.info.backend_pid
    acquired = threading.Event()
    with job.transaction():
        job.execute(f"SELECT pg_advisory_xact_lock({timescaledb_jobs.MAINTENANCE_LOCK_SQL})")  # a job's first step

        def refresh() -> None:
            with app.cursor() as cursor, timescaledb_jobs.maintenance_lock(cursor):
                acquired.set()

        thread = threading.Thread(target=refresh)
        thread.start()
        deadline = time.monotonic() + 10
        while not _waiting_on_advisory_lock(observer, app_pid):
            assert time.monotonic() < deadline, "the refresh did not wait for the job"
            time.sleep(0.02)
        assert not acquired.is_set()
    thread.join(timeout=10)
    assert acquired.is_set()  # the job's transaction ended, and the refresh went on
    for conn in (app, job, observer):
        conn.close()
