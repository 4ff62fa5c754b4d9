"""TimescaleDB: a hypertable, hierarchical continuous aggregates with real-time aggregation (per series and per
label value, see timescaledb_labels.py), compression and retention. Who runs which job, and the lock they take
first, are in timescaledb_jobs.py.

Retention and the aggregates: when data goes (the retention job drops chunks, or retention_apply deletes a
source's rows), a refresh over that range would recompute those buckets from the data that is gone, losing rollups
that have their own, longer retention. So:
- rollup_refresh never reaches further back than its source table keeps data (the retention horizon, see
  `_refresh_starts`), as TimescaleDB's documentation on retention with continuous aggregates asks. Ingest refuses
  points older than their source's raw retention, so nothing is written there;
- when a retention moves further back, the range the old one may have dropped stays out of refreshes (a floor kept
  in storage_meta);
- retention_apply's row deletes are not logged as changes (`invalidation_skip_sql`; the backend refuses to install
  where TimescaleDB offers no way to do that).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from psycopg import sql

from apps.storage.backends import timescaledb_jobs as jobs
from apps.storage.backends.base import BACKEND_TIMESCALEDB, RETENTION_FIELDS, RetentionResult, StorageBackend
from apps.storage.backends.timescaledb_labels import (
    LABEL_SOURCES,
    LABEL_TABLES,
    label_keys_ready,
    label_repair_done,
    label_repair_pending,
    label_rollups_install,
    label_rollups_sync,
)
from apps.storage.tiers import TIERS_FINE_TO_COARSE, Tier, bucket_ceil, bucket_floor

logger = logging.getLogger(__name__)

TIER_TABLES = ("points", "points_1m", "points_1h", "points_1d")
TABLES = TIER_TABLES + LABEL_TABLES
# Label tiers keep what their per-series tier keeps (the same retention fields and overrides).
RETENTION_OF = {tier.labels_table: tier.table for tier in TIERS_FINE_TO_COARSE}


def _cagg_definition(tier: Tier) -> sql.Composed:
    if tier.source_table == "points":
        body = (
            "SELECT time_bucket({width}, time) AS bucket, series_id, count(*) AS count, sum(value) AS sum, "
            "min(value) AS min, max(value) AS max, last(value, time) AS last, max(time) AS last_time "
            "FROM points GROUP BY 1, 2"
        )
    else:
        body = (
            "SELECT time_bucket({width}, bucket) AS bucket, series_id, sum(count)::bigint AS count, sum(sum) AS sum, "
            "min(min) AS min, max(max) AS max, last(last, last_time) AS last, max(last_time) AS last_time "
            "FROM {source} GROUP BY 1, 2"
        )
    return sql.SQL(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {table} WITH (timescaledb.continuous, "
        "timescaledb.materialized_only = false) AS " + body + " WITH NO DATA"
    ).format(
        table=sql.Identifier(tier.table), width=sql.Literal(tier.interval), source=sql.Identifier(tier.source_table)
    )


class TimescaleBackend(StorageBackend):
    """Storage on TimescaleDB 2.x (see docs/storage.md for the supported versions)."""

    name = BACKEND_TIMESCALEDB
    label_rollups = True

    def __init__(self, alias: str = "default") -> None:
        super().__init__(alias)
        self._refresh_options: bool | None = None  # whether refresh_continuous_aggregate takes `options`

    def default_raw_retention_days(self) -> int:
        return settings.STORAGE_RAW_RETENTION_DAYS or 90

    def retention_days(self) -> dict[str, int]:
        days = super().retention_days()
        return {**days, **{labels: days[table] for labels, table in RETENTION_OF.items()}}

    def max_retention_days(self, table: str) -> int:
        return super().max_retention_days(RETENTION_OF.get(table, table))

    def label_keys_registered(self, cursor, *, metric: str, key: str, source_ids) -> bool:
        """Whether the label tiers answer for (metric, key) in these sources (see timescaledb_labels.py)."""
        return label_keys_ready(cursor, metric=metric, key=key, source_ids=source_ids)

    # --- schema -------------------------------------------------------------------------------
    def install(self) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS timescaledb")
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS points (time timestamptz NOT NULL, series_id integer NOT NULL, "
                "schema_id integer, value double precision NOT NULL, PRIMARY KEY (series_id, time))"
            )
            cursor.execute(
                "SELECT create_hypertable('points', 'time', chunk_time_interval => INTERVAL '1 day', "
                "if_not_exists => TRUE)"
            )
            cursor.execute(
                "SELECT compression_enabled FROM timescaledb_information.hypertables "
                "WHERE hypertable_schema = current_schema() AND hypertable_name = 'points'"
            )
            # Compression settings cannot change once chunks are compressed: set them once.
            if not cursor.fetchone()[0]:
                cursor.execute(
                    "ALTER TABLE points SET (timescaledb.compress, timescaledb.compress_segmentby = 'series_id', "
                    "timescaledb.compress_orderby = 'time DESC')"
                )
            for tier in TIERS_FINE_TO_COARSE:
                cursor.execute(_cagg_definition(tier))
            label_rollups_install(cursor)
            jobs.invalidation_skip_sql(cursor)  # refuses a server where retention would destroy rollups
            jobs.timescaledb_policies_remove(
                cursor, tables=TABLES, caggs=tuple(tier.table for tier in TIERS_FINE_TO_COARSE) + LABEL_TABLES
            )
            for statement in jobs.maintenance_procedures_sql(jobs.extension_schema(cursor)):
                cursor.execute(statement)
            jobs.job_ensure(
                cursor,
                proc_name=jobs.COMPRESSION_JOB,
                relation="points",
                config={"compress_after": f"{settings.STORAGE_COMPRESS_AFTER_DAYS} days"},
                schedule=jobs.COMPRESSION_SCHEDULE,
                scheduled=settings.STORAGE_TIMESCALEDB_JOBS_SCHEDULED,
            )
        self.retention_policies_sync()

    def label_rollups_install(self) -> None:
        """Nothing here: `install` creates the label tiers (continuous aggregates, which cannot be created inside
        the transaction of migration 0004; migration 0008 runs `install` for databases installed before them)."""

    def provisional_rollups_install(self) -> None:
        """Nothing to install: real-time aggregation already answers the minutes past the materialization."""

    # --- rollups ------------------------------------------------------------------------------
    def tier_materialized_until(self, tier: Tier) -> None:
        # Real-time aggregation answers every bucket: materialized rows plus raw rows past them.
        return None

    def provisional_rollups(self, cursor) -> None:
        """No provisional minutes: every bucket is answered by real-time aggregation."""
        return None

    def rollup_refresh(self, *, now: datetime | None = None) -> dict:
        """Refresh each tier up to its last complete bucket, finest first (the coarser read the finer), each label
        tier after its per-series tier, under the maintenance lock (the only owner of these refreshes).

        The window starts at the source table's retention horizon, so it covers every late point and redelivery
        TimescaleDB logged there, and never a range whose data retention has removed.
        """
        now = now or timezone.now()
        refreshed, starts = {}, {}
        with self.connection.cursor() as cursor, jobs.maintenance_lock(cursor):
            if self._refresh_options is None:
                self._refresh_options = jobs.refresh_takes_options(cursor)
            options = self._refresh_options
            with transaction.atomic(using=self.alias):
                label_rollups_sync(cursor, delete_rows=self._label_rows_delete)
            horizons = self._refresh_starts(cursor, now)
            for tier in TIERS_FINE_TO_COARSE:
                until = bucket_floor(now, tier.seconds)
                for table, source in ((tier.table, tier.source_table), (tier.labels_table, LABEL_SOURCES[tier])):
                    start = bucket_ceil(horizons[source], tier.seconds)
                    if start >= until:
                        continue  # a retention shorter than one bucket: nothing can be refreshed safely
                    self._refresh(cursor, table, start, until, options=options)
                    refreshed[table], starts[table] = until.isoformat(), start.isoformat()
            repair = label_repair_pending(cursor)
            if repair is not None:
                # Label rows added for series whose rollups were materialized before: those buckets again.
                for tier in TIERS_FINE_TO_COARSE:
                    horizon = bucket_ceil(horizons[LABEL_SOURCES[tier]], tier.seconds)
                    start = max(bucket_floor(repair, tier.seconds), horizon)
                    until = bucket_floor(now, tier.seconds)
                    if start < until:
                        self._refresh(cursor, tier.labels_table, start, until, options=options, force=True)
            with transaction.atomic(using=self.alias):
                label_repair_done(cursor)
        return {
            "refreshed_until": {name: refreshed[table] for name, table in _tier_names() if table in refreshed},
            "refreshed_from": {name: starts[table] for name, table in _tier_names() if table in starts},
            "labels_refreshed_until": {table: refreshed[table] for table in LABEL_TABLES if table in refreshed},
            "labels_repaired_from": repair.isoformat() if repair is not None else None,
        }

    def _refresh(self, cursor, table: str, start: datetime, until: datetime, *, options: bool, force: bool = False):
        statement = "CALL refresh_continuous_aggregate(%s, %s, %s"
        parameters: list = [table, start, until]
        if force:
            statement += ", force => true"
        if options:
            statement += ", options => %s::jsonb"
            parameters.append(jobs.REFRESH_OPTIONS)
        cursor.execute(statement + ")", parameters)

    def _refresh_starts(self, cursor, now: datetime) -> dict[str, datetime]:
        """Per table, the oldest time whose data no retention has removed (nor will before `now`)."""
        cursor.execute(
            "SELECT max(raw_retention_days), max(rollup_1m_retention_days), max(rollup_1h_retention_days), "
            "max(rollup_1d_retention_days) FROM sources_source"
        )
        longest = dict(zip(TIER_TABLES, cursor.fetchone(), strict=True))
        defaults = self.retention_days()
        policies = self._retention_policies(cursor)
        cursor.execute("SELECT key, value::timestamptz FROM storage_meta WHERE key LIKE 'timescaledb.refresh_floor.%'")
        floors = {key.rsplit(".", 1)[1]: moment for key, moment in cursor.fetchall()}
        starts = {}
        for table in TABLES:
            tier_table = RETENTION_OF.get(table, table)
            keep = timedelta(days=max(defaults[tier_table], longest[tier_table] or 0))
            policy = policies.get(table)
            start = now - (keep if policy is None else min(keep, policy))
            starts[table] = max(start, floors[table]) if table in floors else start
        return starts

    # --- retention ----------------------------------------------------------------------------
    def retention_policies_sync(self) -> dict[str, int]:
        """Keep each table's retention job at the longest retention any source asks for.

        Job definitions change outside the maintenance lock (see timescaledb_jobs.py).
        """
        wanted = {table: self.max_retention_days(table) for table in TABLES}
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            for table, days in wanted.items():
                current = self._retention_policy(cursor, table)
                if current is not None and timedelta(days=days) > current:
                    # What the shorter retention dropped stays dropped: refreshes must not reach back there.
                    self._meta_time_raise(cursor, _floor_key(table), timezone.now() - current)
                jobs.job_ensure(
                    cursor,
                    proc_name=jobs.RETENTION_JOB,
                    relation=table,
                    config={"drop_after": f"{days} days"},
                    schedule=jobs.RETENTION_SCHEDULE,
                    scheduled=settings.STORAGE_TIMESCALEDB_JOBS_SCHEDULED,
                )
        return wanted

    def retention_apply(self, *, now: datetime | None = None) -> RetentionResult:
        """Sync the retention jobs (chunk drops happen in TimescaleDB's scheduler) and delete for shorter overrides.

        Rollup rows are deleted from the aggregates' materialization hypertables (a continuous aggregate is a
        view), under the maintenance lock. The deletes are not logged as changes: each tier keeps its own retention.
        """
        now = now or timezone.now()
        result = RetentionResult()
        self.retention_policies_sync()
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            jobs.maintenance_lock_for_transaction(cursor)
            self._invalidation_logging_off(cursor)
            for table in TIER_TABLES:
                keep = self.max_retention_days(table)
                relation = self._storage_relation(cursor, table)
                deleted = self._delete_expired_rows(
                    cursor, table=table, relation=relation, now=now, shorter_than_days=keep
                )
                if deleted:
                    result.deleted_rows[table] = deleted
            for table in LABEL_TABLES:
                deleted = self._delete_expired_label_rows(cursor, table=table, now=now)
                if deleted:
                    result.deleted_rows[table] = deleted
        return result

    def _delete_expired_label_rows(self, cursor, *, table: str, now: datetime) -> int:
        """A label tier's rows go with the same per-source cutoff as its per-series tier's (shorter overrides)."""
        tier_table = RETENTION_OF[table]
        field_name, _ = RETENTION_FIELDS[tier_table]
        default_days, keep = self.retention_days()[tier_table], self.max_retention_days(tier_table)
        cursor.execute(
            sql.SQL(
                "DELETE FROM {relation} t USING sources_source src WHERE src.id = t.source_id "
                "AND coalesce(src.{field}, %(default)s) < %(keep)s "
                "AND t.bucket < %(now)s::timestamptz - make_interval(days => coalesce(src.{field}, %(default)s))"
            ).format(relation=self._storage_relation(cursor, table), field=sql.Identifier(field_name)),
            {"default": default_days, "keep": keep, "now": now},
        )
        return cursor.rowcount or 0

    def _label_rows_delete(self, cursor, table: str, condition: str, parameters: dict) -> None:
        """Delete a label tier's materialized rows (of a key no longer kept), not logged as changes."""
        self._invalidation_logging_off(cursor)
        cursor.execute(
            sql.SQL("DELETE FROM {} WHERE ").format(self._storage_relation(cursor, table)) + sql.SQL(condition),
            parameters,
        )

    def _invalidation_logging_off(self, cursor) -> None:
        statement = jobs.invalidation_skip_sql(cursor)
        try:
            with transaction.atomic(using=self.alias):
                cursor.execute(statement)
        except DatabaseError as error:
            logger.warning(
                "storage: cannot keep retention deletes out of TimescaleDB's invalidation logs (%s). Rollups of "
                "sources whose retention is shorter than the longest will be recomputed without their deleted "
                "points at the next refresh. Grant it with: GRANT SET ON PARAMETER session_replication_role TO "
                "<role> (PostgreSQL 15+), or use TimescaleDB 2.28+, whose %s needs no privilege.",
                str(error).strip(),
                jobs.SKIP_SETTING,
            )

    def compression_job_run(self) -> None:
        """Run the compression job now (it normally runs on TimescaleDB's schedule)."""
        self._job_run(jobs.COMPRESSION_JOB, "points")

    def retention_job_run(self, table: str) -> None:
        """Run a table's retention job now."""
        self._job_run(jobs.RETENTION_JOB, table)

    def jobs_ids(self) -> dict[tuple[str, str], int]:
        """Our maintenance jobs: {(procedure, relation): job id}."""
        with self.connection.cursor() as cursor:
            return {
                (proc_name, relation): job_id
                for proc_name in (jobs.RETENTION_JOB, jobs.COMPRESSION_JOB)
                for relation, (job_id, _, _) in jobs.jobs_of(cursor, proc_name).items()
            }

    def _job_run(self, proc_name: str, table: str) -> None:
        job_id = self.jobs_ids().get((proc_name, table))
        if job_id is None:
            raise LookupError(f"TimescaleDB has no {proc_name} job for {table}; is storage installed?")
        with self.connection.cursor() as cursor:
            cursor.execute("CALL run_job(%s)", [job_id])

    # --- catalog ------------------------------------------------------------------------------
    def _retention_policy(self, cursor, table: str) -> timedelta | None:
        """The drop_after of a table's retention job, if it has one."""
        return self._retention_policies(cursor).get(table)

    def _retention_policies(self, cursor) -> dict[str, timedelta]:
        """{table: drop_after} of the retention jobs."""
        cursor.execute(
            "SELECT config->>'relation', (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = %s AND proc_schema = current_schema()",
            [jobs.RETENTION_JOB],
        )
        return dict(cursor.fetchall())

    def _storage_relation(self, cursor, table: str) -> sql.Composable:
        """Where a table's rows are stored: points itself, or a continuous aggregate's materialization."""
        if table == "points":
            return sql.Identifier(table)
        cursor.execute(
            "SELECT materialization_hypertable_schema, materialization_hypertable_name "
            "FROM timescaledb_information.continuous_aggregates "
            "WHERE view_schema = current_schema() AND view_name = %s",
            [table],
        )
        schema, name = cursor.fetchone()
        return sql.Identifier(schema, name)

    def _meta_time(self, cursor, key: str) -> datetime | None:
        cursor.execute("SELECT value::timestamptz FROM storage_meta WHERE key = %s", [key])
        row = cursor.fetchone()
        return row[0] if row else None

    def _meta_time_raise(self, cursor, key: str, moment: datetime) -> None:
        cursor.execute(
            "INSERT INTO storage_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE "
            "SET value = greatest(storage_meta.value::timestamptz, EXCLUDED.value::timestamptz)::text",
            [key, moment.isoformat()],
        )


def _floor_key(table: str) -> str:
    return f"timescaledb.refresh_floor.{table}"


def _tier_names() -> list[tuple[str, str]]:
    return [(tier.name, tier.table) for tier in TIERS_FINE_TO_COARSE]
