"""Late points as deltas (plain PostgreSQL): what a write below the watermark adds to the rollup tiers.

A point older than the watermark falls in buckets the tiers have already materialized. Re-aggregating those
buckets inside the write (as writes once did) cost a backfill about ten times what a live write costs. Instead, a
write that only inserted new points (its COPY succeeded, so it replaced nothing) adds, per tier whose bucket is
materialized, one row per (series, bucket) with the aggregates of its own late points: count, sum, min, max,
last and last_time. Aggregates of disjoint sets of points merge exactly (counts and sums add, min and max
combine, the last value is the one with the latest time), so a bucket's exact value is its tier row merged with
its deltas. The delta tables have no key and no index: writers only append, and never wait on one another.

Queries read every rollup segment's deltas beside its rows (apps/storage/query/engine.py); the refresh folds deltas
into the tier rows, oldest buckets first and a bounded number per transaction, and rebuilds the label rows of the
buckets it folded. A write that replaced points (a redelivery) cannot be expressed as a delta: it folds the deltas
of the series and days it touched and re-aggregates its buckets exactly, as before.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Sequence
from datetime import datetime

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from apps.storage.columns import PG_EPOCH_OFFSET_MICROS, PointColumns, time_micros
from apps.storage.tiers import BUCKET_ORIGIN, TIERS_FINE_TO_COARSE, Tier, bucket_floor

_ORIGIN_MICROS = time_micros(BUCKET_ORIGIN)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# (bucket, series_id, count, sum, min, max, last, last_time): each field's binary COPY width and struct code.
_DELTA_FIELDS = (("q", 8), ("i", 4), ("q", 8), ("d", 8), ("d", 8), ("d", 8), ("d", 8), ("q", 8))
DELTA_COLUMNS = "bucket, series_id, count, sum, min, max, last, last_time"


def delta_table(tier: Tier) -> str:
    """The table holding `tier`'s deltas."""
    return f"{tier.table}_delta"


def deltas_install(cursor) -> None:
    """The delta tables, one per tier, shaped like the tier without its key (idempotent)."""
    from apps.storage.backends.base import ROLLUP_COLUMNS

    for tier in TIERS_FINE_TO_COARSE:
        cursor.execute(
            sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(
                sql.Identifier(delta_table(tier)), sql.SQL(ROLLUP_COLUMNS)
            )
        )


def _columns_of(points: Sequence[tuple[int, datetime, float]] | PointColumns) -> PointColumns:
    if isinstance(points, PointColumns):
        return points
    return PointColumns.build(
        pa.array([point[0] for point in points], pa.int32()),
        pa.array([time_micros(point[1]) for point in points], pa.int64()),
        pa.array([float(point[2]) for point in points], pa.float64()),
    )


def deltas_copy(cursor, points: Sequence[tuple[int, datetime, float]] | PointColumns, watermark: datetime) -> int:
    """Append the deltas of a write's points that fall in materialized buckets; returns how many rows it added.

    A tier's buckets are materialized below the watermark floored to the tier (points in a younger hour or day
    are aggregated from the finer tier, deltas included, when the refresh builds it).
    """
    columns = _columns_of(points)
    late = pc.less(columns.micros, time_micros(watermark))
    table = pa.table({"s": columns.series_ids, "t": columns.micros, "v": columns.values}).filter(late)
    added = 0
    for tier in TIERS_FINE_TO_COARSE:
        limit = time_micros(bucket_floor(watermark, tier.seconds))
        table = table.filter(pc.less(table["t"], limit))
        if not table.num_rows:
            break
        width = tier.seconds * 1_000_000
        # floor((t - origin) / width) in float64: exact for any time PostgreSQL stores (|t| < 2^53 microseconds).
        index = pc.floor(pc.divide(pc.cast(pc.subtract(table["t"], _ORIGIN_MICROS), pa.float64()), float(width)))
        buckets = pc.add(pc.multiply(pc.cast(index, pa.int64()), width), _ORIGIN_MICROS)
        # Rows are in (series, time) order and group_by keeps input order without threads: "last" is the value at
        # the latest time of each group.
        grouped = (
            table.append_column("b", buckets)
            .group_by(["s", "b"], use_threads=False)
            .aggregate([("v", "count"), ("v", "sum"), ("v", "min"), ("v", "max"), ("v", "last"), ("t", "max")])
        )
        payload = _copy_rows([
            pc.subtract(grouped["b"], PG_EPOCH_OFFSET_MICROS), grouped["s"], pc.cast(grouped["v_count"], pa.int64()),
            grouped["v_sum"], grouped["v_min"], grouped["v_max"], grouped["v_last"],
            pc.subtract(grouped["t_max"], PG_EPOCH_OFFSET_MICROS),
        ])  # fmt: skip
        with (
            cursor.db.wrap_database_errors,
            cursor.copy(
                sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                    sql.Identifier(delta_table(tier)), sql.SQL(DELTA_COLUMNS)
                )
            ) as copy,
        ):
            copy.write(payload)
        added += grouped.num_rows
    return added


def _copy_rows(columns: list[pa.Array]) -> bytes:
    """Binary COPY rows of fixed-width, null-free columns, filled lane by lane (no Python work per row)."""
    count = len(columns[0])
    template = struct.pack(">h", len(columns)) + b"".join(struct.pack(">i", size) + bytes(size) for _, size in
                                                          _DELTA_FIELDS)  # fmt: skip
    width = len(template)
    rows = bytearray(template * count)
    offset = 2
    for column, (code, size) in zip(columns, _DELTA_FIELDS, strict=True):
        offset += 4
        data = _big_endian(column, code)
        for lane in range(size):
            rows[offset + lane :: width] = data[lane::size]
        offset += size
    return b"".join((_COPY_SIGNATURE, bytes(rows), _COPY_TRAILER))


def _big_endian(column: pa.Array | pa.ChunkedArray, code: str) -> bytes:
    if isinstance(column, pa.ChunkedArray):
        column = column.combine_chunks()
    values = array.array(code)
    start = column.offset * values.itemsize
    values.frombytes(memoryview(column.buffers()[1])[start : start + len(column) * values.itemsize])
    if sys.byteorder == "little":
        values.byteswap()
    return values.tobytes()


# Fold deltas into the tier's rows: merged per (series, bucket) first, then added to the row (or inserted), in
# bucket order. Returns the label cells changed, (source, metric, bucket) with how many rows each.
_FOLD = """
WITH moved AS (
    DELETE FROM {delta} WHERE {condition}
    RETURNING bucket, series_id, count, sum, min, max, last, last_time
), merged AS (
    SELECT bucket, series_id, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
           (array_agg(last ORDER BY last_time DESC))[1] AS last, max(last_time) AS last_time
    FROM moved GROUP BY bucket, series_id
), written AS (
    INSERT INTO {table} AS t (bucket, series_id, count, sum, min, max, last, last_time)
    SELECT bucket, series_id, count, sum, min, max, last, last_time FROM merged ORDER BY bucket, series_id
    ON CONFLICT (series_id, bucket) DO UPDATE SET
        count = t.count + EXCLUDED.count, sum = t.sum + EXCLUDED.sum, min = least(t.min, EXCLUDED.min),
        max = greatest(t.max, EXCLUDED.max),
        last = CASE WHEN EXCLUDED.last_time >= t.last_time THEN EXCLUDED.last ELSE t.last END,
        last_time = greatest(t.last_time, EXCLUDED.last_time)
    RETURNING series_id, bucket
)
SELECT s.source_id, s.metric, w.bucket, count(*) FROM written w JOIN storage_series s ON s.id = w.series_id
GROUP BY 1, 2, 3
"""


def deltas_fold(cursor, tier: Tier, *, condition: sql.Composable, parameters: dict | Sequence) -> list[tuple]:
    """Fold the deltas of `tier` that match `condition` into its rows; the label cells changed, as
    (source_id, metric, bucket, rows changed).

    The caller holds the watermark row FOR UPDATE (no write adds deltas meanwhile; queries see the rows and deltas
    of one snapshot, either before the fold or after it) and rebuilds the cells' label rows.
    """
    cursor.execute(
        sql.SQL(_FOLD).format(
            delta=sql.Identifier(delta_table(tier)), table=sql.Identifier(tier.table), condition=condition
        ),
        parameters,
    )
    return cursor.fetchall()


def deltas_newest(cursor, tier: Tier, *, limit: int) -> sql.Composed:
    """A fold condition for the `limit` deltas of `tier` with the newest buckets: dashboards read recent time most,
    so it is clean first while an old backfill drains."""
    return sql.SQL("ctid = ANY(ARRAY(SELECT ctid FROM {} ORDER BY bucket DESC LIMIT {}))").format(
        sql.Identifier(delta_table(tier)), sql.Literal(limit)
    )
