"""TimescaleDB: a hypertable, hierarchical continuous aggregates with real-time aggregation,
compression and retention policies. Policies run in TimescaleDB's own job scheduler."""

from __future__ import annotations

from datetime import datetime, timedelta

from django.conf import settings
from django.db import transaction
from django.utils import timezone
from psycopg import sql

from apps.storage.backends.base import BACKEND_TIMESCALEDB, RetentionResult, StorageBackend
from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS_FINE_TO_COARSE, Tier, bucket_floor

# Refresh policy per tier: how far back to look for changes, how close to now, how often.
REFRESH_POLICIES = {
    TIER_1M: (timedelta(hours=6), timedelta(minutes=1), timedelta(minutes=1)),
    TIER_1H: (timedelta(days=3), timedelta(hours=1), timedelta(minutes=30)),
    TIER_1D: (timedelta(days=30), timedelta(days=1), timedelta(hours=1)),
}


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
                "value double precision NOT NULL, PRIMARY KEY (series_id, time))"
            )
            cursor.execute(
                "SELECT create_hypertable('points', 'time', chunk_time_interval => INTERVAL '1 day', "
                "if_not_exists => TRUE)"
            )
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

    # --- rollups ------------------------------------------------------------------------------
    def tier_materialized_until(self, tier: Tier) -> None:
        # Real-time aggregation answers every bucket: materialized rows plus raw rows past them.
        return None

    def rollup_refresh(self, *, now: datetime | None = None) -> dict:
        """Refresh each tier up to its last complete bucket, finest first (the coarser read the finer)."""
        now = now or timezone.now()
        refreshed = {}
        with self.connection.cursor() as cursor:
            for tier in TIERS_FINE_TO_COARSE:
                until = bucket_floor(now, tier.seconds)
                # NULL start: everything TimescaleDB recorded as invalidated, late points included.
                cursor.execute("CALL refresh_continuous_aggregate(%s, NULL, %s)", [tier.table, until])
                refreshed[tier.name] = until.isoformat()
        return {"refreshed_until": refreshed}

    # --- retention ----------------------------------------------------------------------------
    def retention_policies_sync(self) -> dict[str, int]:
        """Keep each table's retention policy at the longest retention any source asks for."""
        wanted = {table: self.max_retention_days(table) for table in ("points", "points_1m", "points_1h", "points_1d")}
        with self.connection.cursor() as cursor:
            for table, days in wanted.items():
                cursor.execute(
                    "SELECT config->>'drop_after' FROM timescaledb_information.jobs "
                    "WHERE proc_name = 'policy_retention' AND hypertable_name = %s",
                    [table],
                )
                row = cursor.fetchone()
                if row is not None and row[0] == _interval_text(days):
                    continue
                if row is not None:
                    cursor.execute("SELECT remove_retention_policy(%s)", [table])
                cursor.execute(
                    "SELECT add_retention_policy(%s, drop_after => make_interval(days => %s))", [table, days]
                )
        return wanted

    def retention_apply(self, *, now: datetime | None = None) -> RetentionResult:
        """Sync the policies (chunk drops happen in TimescaleDB's scheduler) and delete for shorter overrides."""
        now = now or timezone.now()
        result = RetentionResult()
        self.retention_policies_sync()
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            for table in ("points", "points_1m", "points_1h", "points_1d"):
                keep = self.max_retention_days(table)
                deleted = self._delete_expired_rows(cursor, table=table, now=now, shorter_than_days=keep)
                if deleted:
                    result.deleted_rows[table] = deleted
        return result

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
            (job_id,) = cursor.fetchone()
            cursor.execute(sql.SQL("CALL run_job({})").format(sql.Literal(job_id)))


def _interval_text(days: int) -> str:
    """How TimescaleDB prints a drop_after of `days` days in its job config."""
    return f"{days} days"
