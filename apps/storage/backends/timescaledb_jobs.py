"""TimescaleDB maintenance: who runs each job, the one lock they all take first, and what the server can do.

One owner per job:
- refreshing every continuous aggregate: the application (`rollup_refresh`, the 10-second beat task). Its window
  reaches back to each aggregate's retention horizon, so it covers every late point TimescaleDB logged there; a
  refresh policy would be a second owner of the same work (and ran into the app's refresh on a real server);
- dropping old chunks and compressing: TimescaleDB's job scheduler, through jobs of ours (`storage_job_retention`,
  `storage_job_compression`) that call TimescaleDB's public functions (drop_chunks, compress_chunk);
- deleting the rows of sources with a shorter retention override: the application (`retention_apply`, hourly).

The lock order that cannot deadlock: every one of them takes the maintenance advisory lock before anything else
(the jobs as their first statement, per transaction; the application's refresh for the session, around its CALLs;
its deletes for their transaction), so maintenance runs one job at a time and never waits on a lock while holding
one another job needs. On TimescaleDB 2.28.3 the app's `CALL refresh_continuous_aggregate` deadlocked with
`policy_retention`, whose locks (chunks, invalidation logs, catalog rows) the application cannot order from outside.
Writes and queries take no such lock. Job definitions are never changed while the lock is held: a running job holds
its catalog row and would wait for the lock while `alter_job` waited for that row.

Retention deletes must not be logged as changes for the continuous aggregates (the next refresh would recompute
those buckets from the points that are gone). TimescaleDB 2.28+ has `timescaledb.skip_cagg_invalidation` for that;
before 2.23.0 an invalidation trigger did the logging, which `session_replication_role = replica` switches off; from
2.23.0 to 2.27 neither works, and the backend refuses to install (see `invalidation_skip_sql`).
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager

from django.core.exceptions import ImproperlyConfigured
from psycopg import sql

MAINTENANCE_LOCK_SQL = "hashtext('storage.timescaledb.maintenance')"
RETENTION_JOB = "storage_job_retention"
COMPRESSION_JOB = "storage_job_compression"
RETENTION_SCHEDULE = "1 hour"
COMPRESSION_SCHEDULE = "12 hours"
# TimescaleDB 2.28's batched manual refresh leaves the last changed bucket stale (timescale/timescaledb#10221, fixed
# in 2.29.0); one batch per call is how every version before 2.28 refreshed.
REFRESH_OPTIONS = '{"buckets_per_batch": 0}'
SKIP_SETTING = "timescaledb.skip_cagg_invalidation"
INVALIDATION_TRIGGER_FUNCTION = "continuous_agg_invalidation_trigger"


def maintenance_procedures_sql(extension_schema: str) -> list[sql.Composed]:
    """The jobs' procedures. Names of TimescaleDB's functions are qualified: a procedure with its own search_path
    (SET clause) may not COMMIT, and the compression job commits after each chunk to release its locks."""
    schema = sql.Identifier(extension_schema)
    lock = sql.SQL(f"PERFORM pg_advisory_xact_lock({MAINTENANCE_LOCK_SQL});")
    retention = sql.SQL(
        "CREATE OR REPLACE PROCEDURE {name}(job_id integer, config jsonb) LANGUAGE plpgsql AS $body$ "
        "BEGIN {lock} "
        "PERFORM {schema}.drop_chunks((config->>'relation')::regclass, "
        "older_than => (config->>'drop_after')::interval); "
        "END $body$"
    ).format(name=sql.Identifier(RETENTION_JOB), lock=lock, schema=schema)
    # Chunks are listed under the lock and each compressed in a transaction of its own, the lock taken again first;
    # a chunk dropped in between (by the retention job) is skipped.
    compression = sql.SQL(
        "CREATE OR REPLACE PROCEDURE {name}(job_id integer, config jsonb) LANGUAGE plpgsql AS $body$ "
        "DECLARE chunks regclass[]; chunk regclass; "
        "BEGIN {lock} "
        "chunks := ARRAY(SELECT {schema}.show_chunks((config->>'relation')::regclass, "
        "older_than => (config->>'compress_after')::interval)); "
        "COMMIT; "
        "FOREACH chunk IN ARRAY chunks LOOP "
        "{lock} "
        "IF EXISTS (SELECT 1 FROM pg_catalog.pg_class WHERE oid = chunk) THEN "
        "PERFORM {schema}.compress_chunk(chunk, if_not_compressed => true); "
        "END IF; "
        "COMMIT; "
        "END LOOP; "
        "END $body$"
    ).format(name=sql.Identifier(COMPRESSION_JOB), lock=lock, schema=schema)
    return [retention, compression]


@contextmanager
def maintenance_lock(cursor) -> Iterator[None]:
    """Hold the maintenance lock for this session (around CALLs, which cannot run inside a transaction)."""
    cursor.execute(f"SELECT pg_advisory_lock({MAINTENANCE_LOCK_SQL})")
    try:
        yield
    finally:
        cursor.execute(f"SELECT pg_advisory_unlock({MAINTENANCE_LOCK_SQL})")


def maintenance_lock_for_transaction(cursor) -> None:
    """Take the maintenance lock until the current transaction ends."""
    cursor.execute(f"SELECT pg_advisory_xact_lock({MAINTENANCE_LOCK_SQL})")


def jobs_of(cursor, proc_name: str) -> dict[str, tuple[int, dict, bool]]:
    """Our jobs running `proc_name`: {relation: (job id, config, scheduled)}."""
    cursor.execute(
        "SELECT job_id, config::text, scheduled FROM timescaledb_information.jobs "
        "WHERE proc_name = %s AND proc_schema = current_schema()",
        [proc_name],
    )
    found = {}
    for job_id, config, scheduled in cursor.fetchall():
        parsed = json.loads(config or "{}")
        found[parsed.get("relation", "")] = (job_id, parsed, scheduled)
    return found


def job_ensure(cursor, *, proc_name: str, relation: str, config: dict, schedule: str, scheduled: bool) -> int:
    """Add the job for `relation`, or bring its config and scheduling to these; returns its id."""
    wanted = {"relation": relation, **config}
    existing = jobs_of(cursor, proc_name).get(relation)
    if existing is None:
        cursor.execute(
            "SELECT add_job(%s::regproc, %s::interval, config => %s::jsonb, scheduled => %s)",
            [proc_name, schedule, json.dumps(wanted), scheduled],
        )
        return cursor.fetchone()[0]
    job_id, current, is_scheduled = existing
    if current != wanted or is_scheduled != scheduled:
        cursor.execute(
            "SELECT alter_job(%s, config => %s::jsonb, scheduled => %s)", [job_id, json.dumps(wanted), scheduled]
        )
    return job_id


def timescaledb_policies_remove(cursor, *, tables: tuple[str, ...], caggs: tuple[str, ...]) -> None:
    """Remove TimescaleDB's own refresh, compression and retention policies (installs before one owner per job)."""
    for cagg in caggs:
        cursor.execute("SELECT remove_continuous_aggregate_policy(%s, if_exists => TRUE)", [cagg])
    cursor.execute(
        "SELECT 1 FROM timescaledb_information.jobs WHERE proc_name = 'policy_compression' "
        "AND hypertable_schema = current_schema() AND hypertable_name = 'points'"
    )
    if cursor.fetchone():
        cursor.execute("SELECT remove_compression_policy('points', if_exists => TRUE)")
    for table in tables:
        cursor.execute("SELECT remove_retention_policy(%s, if_exists => TRUE)", [table])


def invalidation_skip_sql(cursor) -> str:
    """The statement that keeps this transaction's deletes out of the continuous aggregates' invalidation logs.

    Raises ImproperlyConfigured where the server has no way to do that (TimescaleDB 2.23.0 to 2.27: invalidations
    recorded without a trigger, and no setting to skip them): retention would destroy the rollups it keeps.
    """
    cursor.execute("SELECT 1 FROM pg_settings WHERE name = %s", [SKIP_SETTING])
    if cursor.fetchone():
        return f"SET LOCAL {SKIP_SETTING} = on"
    cursor.execute(
        "SELECT 1 FROM pg_trigger t JOIN pg_proc p ON p.oid = t.tgfoid "
        "WHERE t.tgrelid = 'points'::regclass AND p.proname = %s",
        [INVALIDATION_TRIGGER_FUNCTION],
    )
    if cursor.fetchone():
        # Turns off the invalidation trigger (and every other ordinary trigger; points has none). Needs superuser,
        # or on PostgreSQL 15+: GRANT SET ON PARAMETER session_replication_role TO <the app's role>.
        return "SET LOCAL session_replication_role = replica"
    cursor.execute("SELECT extversion FROM pg_extension WHERE extname = 'timescaledb'")
    row = cursor.fetchone()
    raise ImproperlyConfigured(
        f"TimescaleDB {row[0] if row else '?'} records continuous-aggregate invalidations without a trigger and has "
        f"no {SKIP_SETTING} setting, so retention deletes would be logged as changes and the next refresh would "
        "destroy the rollups they must keep. Use TimescaleDB 2.29 or later (2.28 at the least); see docs/storage.md, "
        "'Supported versions'."
    )


def refresh_takes_options(cursor) -> bool:
    """Whether refresh_continuous_aggregate takes `options` (incremental refresh settings; 2.2x and later)."""
    cursor.execute(
        "SELECT 1 FROM pg_proc WHERE proname = 'refresh_continuous_aggregate' AND 'options' = ANY(proargnames)"
    )
    return cursor.fetchone() is not None


def extension_schema(cursor) -> str:
    cursor.execute(
        "SELECT n.nspname FROM pg_extension e JOIN pg_namespace n ON n.oid = e.extnamespace "
        "WHERE e.extname = 'timescaledb'"
    )
    return cursor.fetchone()[0]
