"""The storage backend interface and what both backends share (the COPY write path, backend choice)."""

from __future__ import annotations

import struct
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime

import numpy as np
from django.conf import settings
from django.core.exceptions import ImproperlyConfigured
from django.db import IntegrityError, connections, transaction
from psycopg import sql
from psycopg.errors import UniqueViolation

from apps.storage.columns import PG_EPOCH_OFFSET_MICROS, PointColumns, time_micros
from apps.storage.tiers import TIERS_FINE_TO_COARSE, Tier

Point = tuple[int, datetime, float]  # (series_id, time, value)
Points = Sequence[Point] | PointColumns  # what points_write takes: tuples, or columns from a columnar parser

BACKEND_POSTGRES = "postgres"
BACKEND_TIMESCALEDB = "timescaledb"
_BACKEND_CHOICES = {"auto", BACKEND_POSTGRES, BACKEND_TIMESCALEDB}

ROLLUP_COLUMNS = "bucket timestamptz NOT NULL, series_id integer NOT NULL, count bigint NOT NULL, " \
    "sum double precision NOT NULL, min double precision NOT NULL, max double precision NOT NULL, " \
    "last double precision NOT NULL, last_time timestamptz NOT NULL"  # fmt: skip


@dataclass
class WriteResult:
    """What a write did: rows written, whether the upsert path was needed, late buckets re-aggregated, and how
    many rows a later row of the same batch with the same series and time replaced."""

    written: int = 0
    upserted: bool = False
    late_buckets: int = 0
    overwritten: int = 0


@dataclass
class RetentionResult:
    """What retention removed, per table."""

    dropped_partitions: list[str] = field(default_factory=list)
    deleted_rows: dict[str, int] = field(default_factory=dict)


# _copy_points or _upsert_points: (cursor, points, schema_id, moments) -> rows replaced within the batch
_Store = Callable[..., int]


class StorageBackend(ABC):
    """Schema, writes, rollup maintenance and retention for one database."""

    name: str
    # Whether the tiers also keep rows per label value (see PostgresBackend); the query engine uses them
    # only when this is true and `label_keys_registered` says so.
    label_rollups: bool = False
    # Whether late points may wait in deltas that queries add to the tiers' rows (see backends/deltas.py).
    deltas: bool = False

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
    def points_write(self, points: Points, *, schema_id: int | None = None) -> WriteResult:
        """Write points idempotently in one transaction: the same (series, time) again replaces the value.

        Fast path: binary COPY straight into points. A batch that hits the primary key (a redelivery) is rolled
        back whole and written again through a staging table and INSERT ... ON CONFLICT DO UPDATE.
        `schema_id` records which source schema version accepted the batch (None for direct writes).
        """
        result = WriteResult(written=len(points))
        if not points:
            return result
        # A batch's points share few distinct times (a second's readings of every device): work per time, not point.
        moments = points.moments if isinstance(points, PointColumns) else {point[1] for point in points}
        try:
            result.late_buckets, _ = self._write(points, schema_id, moments, _copy_points)
        except IntegrityError as error:
            if not isinstance(error.__cause__, UniqueViolation):
                raise
            result.upserted = True
            result.late_buckets, result.overwritten = self._write(points, schema_id, moments, _upsert_points)
        return result

    def _write(self, points: Points, schema_id: int | None, moments: set[datetime], store: _Store) -> tuple[int, int]:
        """_write_begin, `store` and _write_end in one atomic block; returns the late buckets redone and the rows
        replaced within the batch.

        Inside a caller's transaction the block is the write's only savepoint; outside one it is the transaction
        and there is none. Each savepoint is a subtransaction and two more statements (about 0.05 ms of PostgreSQL
        CPU per batch), so the COPY gets no savepoint of its own: a failed COPY rolls back the whole block, lock
        included, leaving the caller's work intact, and the retry takes the lock and reads the bounds again.
        """
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            begun = self._write_begin(cursor, points, moments)
            overwritten = store(cursor, points, schema_id, moments)
            return self._write_end(cursor, points, begun, moments, replaced=store is _upsert_points), overwritten

    def _write_begin(self, cursor, points: Points, moments: set[datetime]) -> object:
        """Backend hook before COPY, given the batch's distinct times (partitions to create); returns what
        `_write_end` needs (the rollup bounds, where a backend keeps them)."""
        return None

    def _write_end(self, cursor, points: Points, begun: object, moments: set[datetime], *, replaced: bool) -> int:
        """Backend hook after COPY, in the same transaction, given _write_begin's value and whether the write may
        have replaced points (the upsert path) rather than only inserted new ones; late buckets handled."""
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

    def retention_override_max_days(self, table: str) -> int:
        """The longest retention a source's override may keep on a table: the operator's bound
        (STORAGE_SOURCE_RETENTION_MAX_DAYS_*), else the table's global retention (overrides may only shorten)."""
        configured = settings.STORAGE_SOURCE_RETENTION_MAX_DAYS.get(table, 0)
        return max(configured, self.retention_days()[table]) if configured else self.retention_days()[table]

    def max_retention_days(self, table: str) -> int:
        """The longest retention any source has on a table (partitions and chunks go only when all agree), never
        past the override bound: an override stored before the bound existed cannot hold everyone's data."""
        field_name, _ = RETENTION_FIELDS[table]
        with self.connection.cursor() as cursor:
            cursor.execute(sql.SQL("SELECT max({}) FROM sources_source").format(sql.Identifier(field_name)))
            longest = cursor.fetchone()[0]
        return max(self.retention_days()[table], min(longest or 0, self.retention_override_max_days(table)))


RETENTION_FIELDS = {
    "points": ("raw_retention_days", "time"),
    "points_1m": ("rollup_1m_retention_days", "bucket"),
    "points_1h": ("rollup_1h_retention_days", "bucket"),
    "points_1d": ("rollup_1d_retention_days", "bucket"),
}


# PostgreSQL's binary COPY format: a signature and two empty header words, then per row the field count and each
# field as its byte length and big-endian value (timestamptz: microseconds since 2000-01-01 UTC; NULL: length -1),
# then -1. Packing whole rows with struct is several times cheaper than psycopg's per-row write_row.
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
_ROW_POINT = struct.Struct(">hiiiqid").pack  # field count, series_id, time, value; schema_id follows
_ROW_STAGING = struct.Struct(">hiiiiiqid").pack  # ord, series_id, time, value
# The same row as a numpy record: the field count, then each field's length and big-endian value.
_STAGING_ROW = np.dtype([
    ("fields", ">i2"), ("ord_length", ">i4"), ("ord", ">i4"), ("series_length", ">i4"), ("series", ">i4"),
    ("time_length", ">i4"), ("time", ">i8"), ("value_length", ">i4"), ("value", ">f8"),
])  # fmt: skip


def _pg_micros(moments: Iterable[datetime]) -> dict[datetime, int]:
    """Each time as PostgreSQL's binary timestamptz (microseconds since 2000-01-01 UTC); naive times are UTC."""
    return {moment: time_micros(moment) - PG_EPOCH_OFFSET_MICROS for moment in moments}


def copy_points_binary(points: Iterable[Point], schema_id: int | None, moments: Iterable[datetime]) -> bytes:
    """The binary COPY payload of `points` for (series_id, time, value, schema_id); `moments` covers their times."""
    micros = _pg_micros(moments)
    pack = _ROW_POINT
    rows = [pack(4, 4, series_id, 8, micros[moment], 8, value) for series_id, moment, value in points]
    # Every row ends with the same schema_id field (NULL is length -1): it goes between and after the rows.
    schema = struct.pack(">i", -1) if schema_id is None else struct.pack(">ii", 4, schema_id)
    return b"".join((_COPY_SIGNATURE, schema.join(rows), schema, _COPY_TRAILER))


def _copy_points(cursor, points: Points, schema_id: int | None, moments: Iterable[datetime]) -> int:
    if isinstance(points, PointColumns):
        payload = b"".join((_COPY_SIGNATURE, points.copy_binary(schema_id), _COPY_TRAILER))
    else:
        payload = copy_points_binary(points, schema_id, moments)
    # psycopg's COPY is reached around Django's cursor wrapper: wrap its errors as Django's, so callers see an
    # IntegrityError or OperationalError like any other statement's (a raw psycopg error escaped every handler).
    with (
        cursor.db.wrap_database_errors,
        cursor.copy("COPY points (series_id, time, value, schema_id) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(payload)
    return 0  # a batch with a key twice fails the primary key here and goes through _upsert_points


def _upsert_points(cursor, points: Points, schema_id: int | None, moments: Iterable[datetime]) -> int:
    """Replace-or-insert through a staging table; within a batch, the last point for a key wins (returns how many
    points a later one replaced)."""
    cursor.execute(
        "CREATE TEMP TABLE IF NOT EXISTS points_staging "
        "(ord integer, series_id integer, time timestamptz, value double precision) ON COMMIT DELETE ROWS"
    )
    if isinstance(points, PointColumns):
        # Filled column by column (no Python work per point, as for the fast path's COPY).
        rows = np.empty(len(points), dtype=_STAGING_ROW)
        lengths = {"fields": 4, "ord_length": 4, "series_length": 4, "time_length": 8, "value_length": 8}
        for name, value in lengths.items():
            rows[name] = value
        rows["ord"] = np.arange(len(points))
        rows["series"] = points.series_ids.to_numpy()
        rows["time"] = points.micros.to_numpy() - PG_EPOCH_OFFSET_MICROS
        rows["value"] = points.values.to_numpy(zero_copy_only=False)
        payload = rows.tobytes()
    else:
        micros = _pg_micros(moments)
        pack = _ROW_STAGING
        payload = b"".join(
            pack(4, 4, ordinal, 4, series_id, 8, micros[moment], 8, value)
            for ordinal, (series_id, moment, value) in enumerate(points)
        )
    with (
        cursor.db.wrap_database_errors,
        cursor.copy("COPY points_staging (ord, series_id, time, value) FROM STDIN (FORMAT BINARY)") as copy,
    ):
        copy.write(b"".join((_COPY_SIGNATURE, payload, _COPY_TRAILER)))
    cursor.execute(
        "INSERT INTO points (series_id, time, value, schema_id) "
        "SELECT DISTINCT ON (series_id, time) series_id, time, value, %s::integer FROM points_staging "
        "ORDER BY series_id, time, ord DESC "
        "ON CONFLICT (series_id, time) DO UPDATE SET value = EXCLUDED.value, schema_id = EXCLUDED.schema_id",
        [schema_id],
    )
    distinct = cursor.rowcount  # inserted or updated: one per distinct (series, time) of the batch
    cursor.execute("TRUNCATE points_staging")
    return len(points) - distinct


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
