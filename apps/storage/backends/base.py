"""The storage backend interface and what both backends share (the COPY write path, backend choice)."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import connections, transaction
from psycopg import sql
from psycopg.errors import UniqueViolation

from apps.storage.tiers import TIERS_FINE_TO_COARSE, Tier

Point = tuple[int, datetime, float]  # (series_id, time, value)

BACKEND_POSTGRES = "postgres"
BACKEND_TIMESCALEDB = "timescaledb"
_BACKEND_CHOICES = {"auto", BACKEND_POSTGRES, BACKEND_TIMESCALEDB}

ROLLUP_COLUMNS = "bucket timestamptz NOT NULL, series_id integer NOT NULL, count bigint NOT NULL, " \
    "sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL, " \
    "last double precision NOT NULL, last_time timestamptz NOT NULL"  # fmt: skip


@dataclass
class WriteResult:
    """What a write did: rows written, whether the upsert path was needed, late buckets re-aggregated."""

    written: int = 0
    upserted: bool = False
    late_buckets: int = 0


@dataclass
class RetentionResult:
    """What retention removed, per table."""

    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rows: dict[str, int] = field(default_factory=dict)


class StorageBackend(ABC):
    """Schema, writes, rollup maintenance and retention for one database."""

    name: str
    # Whether the tiers also keep rows per label value (see PostgresBackend); the query engine uses them
    # only when this is true and `label_keys_registered` says so.
    label_rollups: bool = False

    def __init__(self, alias: str = "default") -> None:
        self.alias = alias

    def label_keys_registered(self, cursor, *, metric: str, key: str, source_ids: Sequence[int]) -> bool:
        """Whether every one of these sources keeps label rollups for (metric, key)."""
        return False

    @property
    def connection(self):
        return connections[self.alias]

    # --- schema -------------------------------------------------------------------------------
    @abstractmethod
    def install(self) -> None:
        """Create points, rollup tiers and policies (idempotent)."""

    # --- writes -------------------------------------------------------------------------------
    def points_write(self, points: Sequence[Point], *, schema_id: int | None = None) -> WriteResult:
        """Write points idempotently in one transaction: the same (series, time) again replaces the value.

        Fast path: binary COPY straight into points. A batch that hits the primary key (a redelivery)
        rolls back to a savepoint and goes through a staging table and INSERT ... ON CONFLICT DO UPDATE.
        `schema_id` records which source schema version accepted the batch (None for direct writes).
        """
        result = WriteResult(written=len(points))
        if not points:
            return result
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            watermark = self._write_begin(cursor, points)
            try:
                with transaction.atomic(using=self.alias):
                    _copy_points(cursor, points, schema_id)
            except UniqueViolation:
                result.upserted = True
                _upsert_points(cursor, points, schema_id)
            result.late_buckets = self._write_end(cursor, points, watermark)
        return result

    def _write_begin(self, cursor, points: Sequence[Point]) -> datetime | None:
        """Backend hook before COPY; returns the rollup watermark when the backend keeps one."""
        return None

    def _write_end(self, cursor, points: Sequence[Point], watermark: datetime | None) -> int:
        """Backend hook after COPY, in the same transaction; returns late buckets re-aggregated."""
        return 0

    # --- rollups ------------------------------------------------------------------------------
    @abstractmethod
    def rollup_refresh(self, *, now: datetime | None = None) -> dict:
        """Bring rollup tiers up to date; returns what was done."""

    @abstractmethod
    def tier_materialized_until(self, tier: Tier) -> datetime | None:
        """Rollup rows of this tier are exact for buckets that end at or before this time.

        None means the tier answers for any time (TimescaleDB real-time aggregation).
        """

    # --- retention ----------------------------------------------------------------------------
    @abstractmethod
    def retention_apply(self, *, now: datetime | None = None) -> RetentionResult:
        """Remove data older than each tier's retention, honouring per-source overrides."""

    def default_raw_retention_days(self) -> int:
        return settings.STORAGE_RAW_RETENTION_DAYS or 7

    def retention_days(self) -> dict[str, int]:
        """Global retention in days per table."""
        return {
            "points": self.default_raw_retention_days(),
            "points_1m": settings.STORAGE_ROLLUP_1M_RETENTION_DAYS,
            "points_1h": settings.STORAGE_ROLLUP_1H_RETENTION_DAYS,
            "points_1d": settings.STORAGE_ROLLUP_1D_RETENTION_DAYS,
        }

    def _delete_expired_rows(
        self,
        cursor,
        *,
        table: str,
        now: datetime,
        shorter_than_days: int | None = None,
        relation: sql.Composable | None = None,
    ) -> int:
        """Delete rows older than their source's retention (its override, else the global default).

        With `shorter_than_days`, only sources whose retention is shorter are touched: the rest is
        left to partition or chunk drops, which are much cheaper than DELETE. `relation` is where
        `table`'s rows are stored when that differs (a continuous aggregate's materialization).
        """
        field_name, time_column = RETENTION_FIELDS[table]
        default_days = self.retention_days()[table]
        condition = sql.SQL("")
        parameters: list = [now, default_days]
        if shorter_than_days is not None:
            condition = sql.SQL(" AND coalesce(src.{field}, %s) < %s").format(field=sql.Identifier(field_name))
            parameters += [default_days, shorter_than_days]
        cursor.execute(
            sql.SQL(
                "DELETE FROM {table} t USING storage_series s JOIN sources_source src ON src.id = s.source_id "
                "WHERE t.series_id = s.id "
                "AND t.{time} < %s::timestamptz - make_interval(days => coalesce(src.{field}, %s)){condition}"
            ).format(
                table=relation or sql.Identifier(table),
                time=sql.Identifier(time_column),
                field=sql.Identifier(field_name),
                condition=condition,
            ),
            parameters,
        )
        return cursor.rowcount or 0

    def max_retention_days(self, table: str) -> int:
        """The longest retention any source has on a table (partitions and chunks go only when all agree)."""
        field_name, _ = RETENTION_FIELDS[table]
        with self.connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT max({}) FROM sources_source").format(sql.Identifier(field_name)))
            longest = cursor.fetchone()[0]
        return max(self.retention_days()[table], longest or 0)


RETENTION_FIELDS = {
    "points": ("raw_retention_days", "time"),
    "points_1m": ("rollup_1m_retention_days", "bucket"),
    "points_1h": ("rollup_1h_retention_days", "bucket"),
    "points_1d": ("rollup_1d_retention_days", "bucket"),
}


def _copy_points(cursor, points: Iterable[Point], schema_id: int | None) -> None:
    if schema_id is None:
        with cursor.copy("COPY points (series_id, time, value) FROM STDIN (FORMAT BINARY)") as copy:
            copy.set_types(["int4", "timestamptz", "float8"])
            for row in points:
                copy.write_row(row)
        return
    with cursor.copy("COPY points (series_id, time, value, schema_id) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "timestamptz", "float8", "int4"])
        for series_id, moment, value in points:
            copy.write_row((series_id, moment, value, schema_id))


def _upsert_points(cursor, points: Sequence[Point], schema_id: int | None) -> None:
    """Replace-or-insert through a staging table; within a batch, the last point for a key wins."""
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS points_staging "
        "(ord integer, series_id integer, time timestamptz, value double precision) ON COMMIT DELETE ROWS"
    )
    with cursor.copy("COPY points_staging (ord, series_id, time, value) FROM STDIN (FORMAT BINARY)") as copy:
        copy.set_types(["int4", "int4", "timestamptz", "float8"])
        for ordinal, (series_id, moment, value) in enumerate(points):
            copy.write_row((ordinal, series_id, moment, value))
    cursor.execute(
        "INSERT INTO points (series_id, time, value, schema_id) "
        "SELECT DISTINCT ON (series_id, time) series_id, time, value, %s::integer FROM points_staging "
        "ORDER BY series_id, time, ord DESC "
        "ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value, schema_id = EXCLUDED.schema_id",
        [schema_id],
    )
    cursor.execute("TRUNCATE points_staging")


def backend_name_choose(alias: str = "default") -> str:
    """Which backend to install: the STORAGE_BACKEND setting, or for 'auto' what the database offers."""
    wanted = settings.STORAGE_BACKEND
    if wanted not in _BACKEND_CHOICES:
        raise ImproperlyConfigured(f"STORAGE_BACKEND must be one of auto, postgres, timescaledb; got {wanted!r}.")
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_available_extensions WHERE name = 'timescaledb'")
        available = cursor.fetchone() is not None
    if wanted == BACKEND_TIMESCALEDB and not available:
        raise ImproperlyConfigured(
            "STORAGE_BACKEND=timescaledb but this PostgreSQL does not offer the timescaledb extension; "
            "install TimescaleDB or use STORAGE_BACKEND=auto."
        )
    if wanted == "auto":
        return BACKEND_TIMESCALEDB if available else BACKEND_POSTGRES
    return wanted


_backends: dict[str, StorageBackend] = {}


def _backend_class(name: str) -> type[StorageBackend]:
    from apps.storage.backends.postgres import PostgresBackend
    from apps.storage.backends.timescaledb import TimescaleBackend

    return {BACKEND_POSTGRES: PostgresBackend, BACKEND_TIMESCALEDB: TimescaleBackend}[name]


def backend_install(alias: str = "default") -> StorageBackend:
    """Choose, install and record the backend (called by the storage migration)."""
    name = backend_name_choose(alias)
    with connections[alias].cursor() as cursor:
        cursor.execute("CREATE TABLE IF NOT EXISTS storage_meta (key text PRIMARY KEY, value text NOT NULL)")
        cursor.execute("SELECT value FROM storage_meta WHERE key = 'backend'")
        row = cursor.fetchone()
        if row and row[0] != name:
            raise ImproperlyConfigured(
                f"This database was set up with the {row[0]} storage backend; STORAGE_BACKEND asks for {name}. "
                "Moving data between backends is not automatic."
            )
    backend = _backend_class(name)(alias)
    backend.install()
    with connections[alias].cursor() as cursor:
        cursor.execute(
            "INSERT INTO storage_meta (key, value) VALUES ('backend', %s) ON CONFLICT (key) DO NOTHING", [name]
        )
    _backends.pop(alias, None)
    return backend


def backend_for(alias: str = "default") -> StorageBackend:
    """The backend this database was installed with (looked up once per process)."""
    if alias not in _backends:
        with connections[alias].cursor() as cursor:
            cursor.execute("SELECT value FROM storage_meta WHERE key = 'backend'")
            row = cursor.fetchone()
        if row is None:
            raise ImproperlyConfigured("Storage is not installed in this database; run `python manage.py migrate`.")
        _backends[alias] = _backend_class(row[0])(alias)
    return _backends[alias]


__all__ = ["TIERS_FINE_TO_COARSE", "Point", "RetentionResult", "StorageBackend", "WriteResult"]
