"""TimescaleDB: a hypertable, hierarchical continuous aggregates with real-time aggregation,
compression and retention policies. Policies run in TimescaleDB's own job scheduler.

Retention and the aggregates: when data goes (a retention policy drops chunks, or retention_apply
deletes a source's rows), TimescaleDB logs the range as changed, and a refresh over it would recompute
those buckets from the data that is gone, losing rollups that have their own, longer retention. So:
- rollup_refresh never reaches further back than its source table keeps data (the retention horizon,
  see `_refresh_start`), as TimescaleDB's documentation on retention with continuous aggregates asks.
  Points written later than the refresh that covered their time and older than that horizon (e.g. a
  backfill of old history) are therefore never rolled up; raw queries still see them;
- when a retention policy moves further back, the range the old policy may have dropped stays out of
  refreshes (a floor kept in storage_meta): also a backfill there is not rolled up automatically;
- retention_apply's row deletes are not logged as changes (see `_invalidation_logging_off`).
"""

from __future__ import annotations

import logging
from datetime import datetime, timedelta

from django.conf import settings
from django.db import DatabaseError, transaction
from django.utils import timezone
from psycopg import sql

from apps.storage.backends.base import BACKEND_TIMESCALEDB, RetentionResult, StorageBackend
from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS_FINE_TO_COARSE, Tier, bucket_ceil, bucket_floor

logger = logging.getLogger(__name__)

TABLES = ("points", "points_1m", "points_1h", "points_1d")

# Refresh policy per tier: how far back to look for changes, how close to now, how often.
REFRESH_POLICIES = {
    TIER_1M: (timedelta(hours=6), timedelta(minutes=1), timedelta(minutes=1)),
    TIER_1H: (timedelta(days=3), timedelta(hours=1), timedelta(minutes=30)),
    TIER_1D: (timedelta(days=30), timedelta(days=1), timedelta(hours=1)),
}

# Turns off TimescaleDB's invalidation trigger (and every other ordinary trigger; points has none) for the
# rest of the transaction. Needs superuser, or on PostgreSQL 15+: GRANT SET ON PARAMETER
# session_replication_role TO <the app's role>.
INVALIDATION_LOGGING_OFF = "SET LOCAL session_replication_role = replica"


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
    """Storage on TimescaleDB 2.x."""

    name = BACKEND_TIMESCALEDB

    def default_raw_retention_days(self) -> int:
        return settings.STORAGE_RAW_RETENTION_DAYS or 90

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
            cursor.execute(
                "SELECT add_compression_policy('points', make_interval(days => %s), if_not_exists => TRUE)",
                [settings.STORAGE_COMPRESS_AFTER_DAYS],
            )
            for tier in TIERS_FINE_TO_COARSE:
                cursor.execute(_cagg_definition(tier))
                start_offset, end_offset, schedule = REFRESH_POLICIES[tier]
                cursor.execute(
                    "SELECT add_continuous_aggregate_policy(%s, start_offset => %s, end_offset => %s, "
                    "schedule_interval => %s, if_not_exists => TRUE)",
                    [tier.table, start_offset, end_offset, schedule],
                )
        self.retention_policies_sync()

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
        """Refresh each tier up to its last complete bucket, finest first (the coarser read the finer).

        The window starts at the source table's retention horizon, so it covers every late point and
        redelivery TimescaleDB logged there, and never a range whose data retention has removed.
        """
        now = now or timezone.now()
        refreshed, starts = {}, {}
        with self.connection.cursor() as cursor:
            for tier in TIERS_FINE_TO_COARSE:
                start = bucket_ceil(self._refresh_start(cursor, tier.source_table, now), tier.seconds)
                until = bucket_floor(now, tier.seconds)
                if start >= until:
                    continue  # a retention shorter than one bucket: nothing can be refreshed safely
                cursor.execute("CALL refresh_continuous_aggregate(%s, %s, %s)", [tier.table, start, until])
                refreshed[tier.name], starts[tier.name] = until.isoformat(), start.isoformat()
        return {"refreshed_until": refreshed, "refreshed_from": starts}

    def _refresh_start(self, cursor, table: str, now: datetime) -> datetime:
        """The oldest time whose data in `table` no retention has removed (nor will before `now`)."""
        keep = timedelta(days=self.max_retention_days(table))
        policy = self._retention_policy(cursor, table)
        start = now - (keep if policy is None else min(keep, policy))
        floor = self._meta_time(cursor, _floor_key(table))
        return max(start, floor) if floor else start

    # --- retention ----------------------------------------------------------------------------
    def retention_policies_sync(self) -> dict[str, int]:
        """Keep each table's retention policy at the longest retention any source asks for."""
        wanted = {table: self.max_retention_days(table) for table in TABLES}
        with self.connection.cursor() as cursor:
            for table, days in wanted.items():
                current = self._retention_policy(cursor, table)
                if current == timedelta(days=days):
                    continue
                if current is not None:
                    if timedelta(days=days) > current:
                        # What the shorter policy dropped stays dropped: refreshes must not reach back there.
                        self._meta_time_raise(cursor, _floor_key(table), timezone.now() - current)
                    cursor.execute("SELECT remove_retention_policy(%s)", [table])
                cursor.execute(
                    "SELECT add_retention_policy(%s, drop_after => make_interval(days => %s))", [table, days]
                )
        return wanted

    def retention_apply(self, *, now: datetime | None = None) -> RetentionResult:
        """Sync the policies (chunk drops happen in TimescaleDB's scheduler) and delete for shorter overrides.

        Rollup rows are deleted from the aggregates' materialization hypertables (a continuous aggregate
        is a view). The deletes are not logged as changes: each tier keeps its own retention.
        """
        now = now or timezone.now()
        result = RetentionResult()
        self.retention_policies_sync()
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            self._invalidation_logging_off(cursor)
            for table in TABLES:
                keep = self.max_retention_days(table)
                relation = self._storage_relation(cursor, table)
                deleted = self._delete_expired_rows(
                    cursor, table=table, relation=relation, now=now, shorter_than_days=keep
                )
                if deleted:
                    result.deleted_rows[table] = deleted
        return result

    def _invalidation_logging_off(self, cursor) -> None:
        try:
            with transaction.atomic(using=self.alias):
                cursor.execute(INVALIDATION_LOGGING_OFF)
        except DatabaseError as error:
            logger.warning(
                "storage: cannot turn off TimescaleDB invalidation logging for retention deletes (%s). "
                "Rollups of sources whose retention is shorter than the longest will be recomputed without "
                "their deleted points at the next refresh. Grant it with: GRANT SET ON PARAMETER "
                "session_replication_role TO <role> (PostgreSQL 15+).",
                str(error).strip(),
            )

    def compression_job_run(self) -> None:
        """Run the compression policy now (it normally runs on TimescaleDB's schedule)."""
        self._run_policy_job("policy_compression", "points")

    def retention_job_run(self, table: str) -> None:
        """Run a table's retention policy now."""
        self._run_policy_job("policy_retention", table)

    def _run_policy_job(self, proc_name: str, table: str) -> None:
        with self.connection.cursor() as cursor:
            cursor.execute(
                "SELECT job_id FROM timescaledb_information.jobs WHERE proc_name = %s AND hypertable_name = %s",
                [proc_name, table],
            )
            row = cursor.fetchone()
            if row is None:
                raise LookupError(f"TimescaleDB has no {proc_name} job for {table}; is storage installed?")
            cursor.execute("CALL run_job(%s)", [row[0]])

    # --- catalog ------------------------------------------------------------------------------
    def _retention_policy(self, cursor, table: str) -> timedelta | None:
        """The drop_after of a table's retention policy, if it has one."""
        cursor.execute(
            "SELECT (config->>'drop_after')::interval FROM timescaledb_information.jobs "
            "WHERE proc_name = 'policy_retention' AND hypertable_schema = current_schema() "
            "AND hypertable_name = %s",
            [table],
        )
        row = cursor.fetchone()
        return row[0] if row else None

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
