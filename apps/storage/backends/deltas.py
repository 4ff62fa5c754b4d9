"""Late points as deltas (plain PostgreSQL): what a write below the watermark adds to the rollup tiers.

A point older than the watermark falls in buckets the tiers have already materialized. Re-aggregating those
buckets inside the write (as writes once did) cost a backfill about ten times what a live write costs. Instead, a
write that only inserted new points (its COPY succeeded, so it replaced nothing) adds, per tier whose bucket is
materialized, one row per (series, bucket) with the aggregates of its own late points: count, sum, min, max,
last and last_time, and one row per registered label cell (source, metric, label key, label value, bucket) with the
same aggregates over that cell's series. Aggregates of disjoint sets of points merge exactly (counts and sums add,
min and max combine, the last value is the one with the latest time), so a bucket's exact value is its tier row
merged with its deltas, and a label cell's its label row merged with its label deltas. The delta tables have no key
and no index: writers only append, and never wait on one another.

Queries read every rollup segment's deltas beside its rows (per series, or per label cell when the segment reads
label rows: a few rows, however many series a backfill touched); the refresh folds both kinds into their rows,
additively, in bounded transactions. A write that replaced points (a redelivery) cannot be expressed as a delta: it
folds the deltas of the cells and days it touched and re-aggregates its buckets exactly, as before.
"""

from __future__ import annotations

import array
import struct
import sys
from collections.abc import Callable, Sequence
from datetime import datetime, timedelta

import pyarrow as pa
import pyarrow.compute as pc
from psycopg import sql

from apps.storage.columns import EPOCH, PG_EPOCH_OFFSET_MICROS, PointColumns, time_micros
from apps.storage.tiers import BUCKET_ORIGIN, TIERS_FINE_TO_COARSE, Tier, bucket_floor

_ORIGIN_MICROS = time_micros(BUCKET_ORIGIN)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
# (bucket, series_id, count, sum, min, max, last, last_time): each field's binary COPY width and struct code.
_DELTA_FIELDS = (("q", 8), ("i", 4), ("q", 8), ("d", 8), ("d", 8), ("d", 8), ("d", 8), ("q", 8))
DELTA_COLUMNS = "bucket, series_id, count, sum, min, max, last, last_time"
LABEL_DELTA_COLUMNS = "source_id, metric, label_key, label_value, bucket, count, sum, min, max, last, last_time"
LabelCell = tuple[int, str, str, str]  # (source_id, metric, label key, label value)


def delta_table(tier: Tier) -> str:
    """The table holding `tier`'s deltas."""
    return f"{tier.table}_delta"


def label_delta_table(tier: Tier) -> str:
    """The table holding `tier`'s label deltas."""
    return f"{tier.labels_table}_delta"


def delta_tables() -> list[str]:
    """Every delta table, finest tier first."""
    return [table for tier in TIERS_FINE_TO_COARSE for table in (delta_table(tier), label_delta_table(tier))]


def _pending_key(table: str) -> str:
    return f"deltas_pending:{table}"


def deltas_pending_read(cursor) -> frozenset[str]:
    """The delta tables that may hold deltas, in the caller's snapshot: all but those the drain flagged empty.

    Why a flag and not EXISTS on the table: a drain leaves folded rows dead in the heap until VACUUM, and with
    writes going on they pile up where a scan starts; an EXISTS then walked them (100 to 500 ms a query during a
    10-million-point backfill). A writer sets its tables' flags in the transaction that appends the deltas, and
    only the drain clears one, when it finds the table empty while it holds the watermark row FOR UPDATE (no writer
    is open then), so a snapshot that holds a delta also holds its table's flag. No flag row: pending.
    """
    tables = delta_tables()
    cursor.execute(
        "SELECT key FROM storage_meta WHERE key = ANY(%s) AND value = 'f'", [[_pending_key(table) for table in tables]]
    )
    clean = {row[0] for row in cursor.fetchall()}
    return frozenset(table for table in tables if _pending_key(table) not in clean)


def deltas_pending_set(cursor, tables: Sequence[str], *, pending: bool) -> None:
    """Flag `tables` as (maybe) holding deltas, or as empty. A writer changes a flag only when it is clear, so
    writers wait on one another at most once per table after each time the drain empties it."""
    keys = [_pending_key(table) for table in tables]
    if pending:
        cursor.execute("UPDATE storage_meta SET value = 't' WHERE key = ANY(%s) AND value <> 't'", [keys])
    else:
        cursor.execute(
            "INSERT INTO storage_meta (key, value) SELECT key, 'f' FROM unnest(%s::text[]) AS k(key) "
            "ON CONFLICT (key) DO UPDATE SET value = 'f'",
            [keys],
        )


def deltas_install(cursor) -> None:
    """The delta tables, two per tier (per series, per label cell), shaped like their rows without a key, and their
    pending flags (idempotent)."""
    from apps.storage.backends.base import ROLLUP_COLUMNS

    label_columns = "source_id integer NOT NULL, metric text NOT NULL, label_key text NOT NULL, " \
        "label_value text NOT NULL, " + ROLLUP_COLUMNS.replace("series_id integer NOT NULL, ", "")  # fmt: skip
    for tier in TIERS_FINE_TO_COARSE:
        for table, columns in ((delta_table(tier), ROLLUP_COLUMNS), (label_delta_table(tier), label_columns)):
            cursor.execute(
                sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(table), sql.SQL(columns))
            )
    cursor.execute(
        "INSERT INTO storage_meta (key, value) SELECT key, 't' FROM unnest(%s::text[]) AS k(key) "
        "ON CONFLICT (key) DO NOTHING",
        [[_pending_key(table) for table in delta_tables()]],
    )


def _columns_of(points: Sequence[tuple[int, datetime, float]] | PointColumns) -> PointColumns:
    if isinstance(points, PointColumns):
        return points
    micros: dict[datetime, int] = {}  # a batch's points share few distinct times: convert each once
    times = []
    for point in points:
        value = micros.get(point[1])
        if value is None:
            value = micros[point[1]] = time_micros(point[1])
        times.append(value)
    return PointColumns.build(
        pa.array([point[0] for point in points], pa.int32()),
        pa.array(times, pa.int64()),
        pa.array([float(point[2]) for point in points], pa.float64()),
    )


def deltas_copy(
    cursor,
    points: Sequence[tuple[int, datetime, float]] | PointColumns,
    watermark: datetime,
    label_cells: Callable[[list[int]], dict[int, tuple[LabelCell, ...]]],
) -> int:
    """Append the deltas of a write's points that fall in materialized buckets; returns how many rows it added.

    A tier's buckets are materialized below the watermark floored to the tier (points in a younger hour or day
    are aggregated from the finer tier, deltas included, when the refresh builds it). `label_cells` gives, for
    series ids, the registered label cells each belongs to (read in the write's transaction, which holds the
    watermark row FOR SHARE: the label rollup registry cannot change until it commits).
    """
    columns = _columns_of(points)
    cells: dict[int, tuple[LabelCell, ...]] | None = None
    written: list[str] = []
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
        written.append(delta_table(tier))
        if cells is None:
            cells = label_cells(pc.unique(table["s"]).to_pylist())
        label_rows = _label_deltas_copy(cursor, tier, grouped, cells)
        added += label_rows
        if label_rows:
            written.append(label_delta_table(tier))
    if written:
        deltas_pending_set(cursor, written, pending=True)
    return added


def _label_deltas_copy(cursor, tier: Tier, grouped: pa.Table, cells: dict[int, tuple[LabelCell, ...]]) -> int:
    """The label cells' deltas of one tier: the per-series deltas of `grouped` merged per (cell, bucket)."""
    if not cells:
        return 0
    cell_list = sorted({cell for series_cells in cells.values() for cell in series_cells})
    index = {cell: position for position, cell in enumerate(cell_list)}
    pairs = [(series_id, index[cell]) for series_id, series_cells in cells.items() for cell in series_cells]
    mapping = pa.table({"s": pa.array([pair[0] for pair in pairs], pa.int32()),
                        "c": pa.array([pair[1] for pair in pairs], pa.int32())})  # fmt: skip
    joined = grouped.join(mapping, keys="s", join_type="inner")
    if not joined.num_rows:
        return 0
    # "last" of a cell is the value at its latest time: sort by time, then group without threads (input order).
    joined = joined.sort_by([("c", "ascending"), ("b", "ascending"), ("t_max", "ascending")])
    merged = joined.group_by(["c", "b"], use_threads=False).aggregate([
        ("v_count", "sum"), ("v_sum", "sum"), ("v_min", "min"), ("v_max", "max"), ("v_last", "last"),
        ("t_max", "max"),
    ])  # fmt: skip
    rows = merged.to_pylist()
    with (
        cursor.db.wrap_database_errors,
        cursor.copy(
            sql.SQL("COPY {} ({}) FROM STDIN").format(
                sql.Identifier(label_delta_table(tier)), sql.SQL(LABEL_DELTA_COLUMNS)
            )
        ) as copy,
    ):
        for row in rows:
            source_id, metric, key, value = cell_list[row["c"]]
            copy.write_row((
                source_id, metric, key, value, _from_micros(row["b"]), row["v_count_sum"], row["v_sum_sum"],
                row["v_min_min"], row["v_max_max"], row["v_last_last"], _from_micros(row["t_max_max"]),
            ))  # fmt: skip
    return len(rows)


def _from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


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


# Fold deltas into their rows: merged per row key first, then added to the row (or inserted), in bucket order.
_FOLD = """
WITH moved AS (
    DELETE FROM {delta} WHERE {condition} RETURNING {key}, count, sum, min, max, last, last_time
), merged AS (
    SELECT {key}, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
           (array_agg(last ORDER BY last_time DESC))[1] AS last, max(last_time) AS last_time
    FROM moved GROUP BY {key}
), written AS (
    INSERT INTO {table} AS t ({key}, count, sum, min, max, last, last_time)
    SELECT {key}, count, sum, min, max, last, last_time FROM merged ORDER BY bucket
    ON CONFLICT ({key}) DO UPDATE SET
        count = t.count + EXCLUDED.count, sum = t.sum + EXCLUDED.sum, min = least(t.min, EXCLUDED.min),
        max = greatest(t.max, EXCLUDED.max),
        last = CASE WHEN EXCLUDED.last_time >= t.last_time THEN EXCLUDED.last ELSE t.last END,
        last_time = greatest(t.last_time, EXCLUDED.last_time)
    RETURNING 1
)
SELECT count(*) FROM written
"""
_SERIES_KEY = "series_id, bucket"
_LABEL_KEY = "source_id, metric, label_key, label_value, bucket"


def deltas_fold(cursor, tier: Tier, *, labels: bool, condition: sql.Composable, parameters: dict | Sequence) -> int:
    """Fold `tier`'s per-series deltas (or, with `labels`, its label deltas) that match `condition` into their
    rows, additively; the number of rows changed.

    The caller holds the watermark row FOR UPDATE (no write adds deltas meanwhile; queries see the rows and deltas
    of one snapshot, either before the fold or after it). A label row plus its label deltas stays equal to its
    series' rows plus their deltas whichever side is folded first, as both are folded by adding.
    """
    cursor.execute(
        sql.SQL(_FOLD).format(
            delta=sql.Identifier(label_delta_table(tier) if labels else delta_table(tier)),
            table=sql.Identifier(tier.labels_table if labels else tier.table),
            key=sql.SQL(_LABEL_KEY if labels else _SERIES_KEY),
            condition=condition,
        ),
        parameters,
    )
    return cursor.fetchone()[0]


# Rows of a delta table per heap page, about: a per-series delta row takes 88 bytes with its header and line pointer
# (label deltas are wider, so a chunk of them holds fewer rows: the count stays a bound).
_DELTA_ROWS_PER_PAGE = 90


class DeltasSweep:
    """Where the drain is in each delta table. It folds a table's heap from its end down, one range of pages per
    transaction, read by a TID range scan (those pages only).

    Why by heap position, not by bucket: the delta tables have no index (writers only append), so picking the
    newest buckets sorted the whole table in every drain transaction (1.3 s, with both parallel workers, for 5
    million rows): that sort, on a small machine's every core, is what dashboards waited for while a backfill
    drained. The heap's end holds the most recently written deltas (for a backfill written in time order, its
    newest buckets). A sweep reads each page once; pages appended meanwhile are the next sweep's. Any subset of
    deltas folds exactly, so the positions only save work: lost (a new process) or stale (a table emptied), the
    sweep starts from the end again.
    """

    def __init__(self) -> None:
        self._below: dict[str, int] = {}  # per table: the sweep folds the pages below this one next
        self._folded: set[str] = set()  # tables with rows folded (dead until VACUUM) since their last VACUUM

    def emptied(self, pending: frozenset[str]) -> list[str]:
        """The tables this sweep folded rows of that are now empty: their dead rows are for VACUUM."""
        return sorted(self._folded - pending)

    def vacuumed(self, tables: list[str]) -> None:
        """Forget `tables`' folded rows and positions: VACUUM removed the rows and truncated the emptied pages."""
        self._folded.difference_update(tables)
        for table in tables:
            self._below.pop(table, None)

    def fold_step(self, cursor, tier: Tier, *, labels: bool, rows: int) -> int:
        """Fold about `rows` deltas of `tier` (label deltas with `labels`), the next pages down; rows changed.

        Ranges folded already (dead until VACUUM) are skipped in the same step: reading them is cheap."""
        table = label_delta_table(tier) if labels else delta_table(tier)
        cursor.execute("SELECT pg_relation_size(%s::regclass) / current_setting('block_size')::int", [table])
        pages = cursor.fetchone()[0]
        below = min(self._below.get(table, 0), pages) or pages
        width = max(1, -(-rows // _DELTA_ROWS_PER_PAGE))
        changed = 0
        while below > 0 and not changed:
            lower = max(0, below - width)
            changed = deltas_fold(
                cursor, tier, labels=labels, condition=sql.SQL("ctid >= %(lower)s::tid AND ctid < %(upper)s::tid"),
                parameters={"lower": f"({lower},0)", "upper": f"({below},0)"},
            )  # fmt: skip
            below = lower
        self._below[table] = below
        if changed:
            self._folded.add(table)
        return changed
