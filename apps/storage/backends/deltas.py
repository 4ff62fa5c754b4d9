"""Late points as deltas (plain PostgreSQL): what a write below the watermark adds to the rollup tiers.

A point older than the watermark falls in buckets the tiers have already materialized. Re-aggregating those
buckets inside the write (as writes once did) cost a backfill about ten times what a live write costs. Instead, a
write that only inserted new points (its COPY succeeded, so it replaced nothing) appends the aggregates of its own
late points (count, sum, min, max, last and last_time): one row per (series, minute) to `points_1m_delta`, and,
per tier whose bucket is materialized, one row per registered label cell (source, metric, label key, label value,
bucket) with the same aggregates over that cell's series. Aggregates of disjoint sets of points merge exactly
(counts and sums add, min and max combine, the last value is the one with the latest time), so a bucket's exact
value is its tier row merged with the deltas inside it (a minute's own, or an hour's or a day's minutes), and a
label cell's its label row merged with its label deltas. The delta tables have no key and no index: writers only
append, and never wait on one another.

Why per-series deltas are minutes only: a late 5,000-point batch wrote one row per series and bucket in each of
the three tiers, three COPYs that cost more than the batch's own COPY into points (the backfill ran at 0.6 of the
live rate). An hour's or a day's per-series delta is the merge of its minutes' deltas, so those are derived where
they are read: a query's hourly or daily segment reads the minutes' deltas with their bucket moved to the hour or
the day (rows merge per output bucket anyway), and the drain folds each minute's delta into its minute, hour and
day rows in one statement. Label deltas stay per tier: a few rows per batch, and what the dashboards of a large
backfill read while it drains (an hour's label deltas are 60 times fewer rows than its minutes').

Queries read every rollup segment's deltas beside its rows (per series, or per label cell when the segment reads
label rows: a few rows, however many series a backfill touched); the refresh folds both kinds into their rows,
additively, in bounded transactions. A write that replaced points (a redelivery) cannot be expressed as a delta: it
re-aggregates the buckets and label cells it touched exactly, and deletes the deltas those now count
(PostgresBackend._reaggregate).
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import numpy as np
import pyarrow as pa
from psycopg import sql

from apps.storage.columns import EPOCH, PG_EPOCH_OFFSET_MICROS, PointColumns, time_micros
from apps.storage.tiers import BUCKET_ORIGIN, TIER_1M, TIERS_FINE_TO_COARSE, Tier, bucket_floor

_ORIGIN_MICROS = time_micros(BUCKET_ORIGIN)
_COPY_SIGNATURE = b"PGCOPY\n\xff\r\n\x00" + struct.pack(">ii", 0, 0)
_COPY_TRAILER = struct.pack(">h", -1)
DELTA_COLUMNS = "bucket, series_id, count, sum, min, max, last, last_time"
LABEL_DELTA_COLUMNS = "source_id, metric, label_key, label_value, bucket, count, sum, min, max, last, last_time"
LabelCell = tuple[int, str, str, str]  # (source_id, metric, label key, label value)


SERIES_DELTA_TABLE = "points_1m_delta"  # per-series deltas: 1-minute rows, for every tier
# Per-series delta tables of hours and days, before those were derived from the minutes' (folded and dropped when
# the storage is installed again, by `deltas_install`).
_LEGACY_SERIES_DELTA_TABLES = ("points_1h_delta", "points_1d_delta")


def label_delta_table(tier: Tier) -> str:
    """The table holding `tier`'s label deltas."""
    return f"{tier.labels_table}_delta"


def delta_tables() -> list[str]:
    """Every delta table: the per-series one, then the label ones, finest tier first."""
    return [SERIES_DELTA_TABLE, *(label_delta_table(tier) for tier in TIERS_FINE_TO_COARSE)]


def _pending_key(table: str) -> str:
    return f"deltas_pending:{table}"


def deltas_pending_read(cursor) -> frozenset[str]:
    """The delta tables that may hold deltas, in the caller's snapshot: all but those the drain flagged empty.

    Why a flag and not EXISTS on the table: a drain leaves folded rows dead in the heap until VACUUM, and with
    writes going on they pile up where a scan starts; an EXISTS then walked them (100 to 500 ms a query during a
    10-million-point backfill). A writer sets its tables' flags in the transaction that appends the deltas, and
    only the drain clears one, when it finds the table empty while it holds the late-write advisory lock
    exclusively (no delta writer is open then: they append under it, shared), so a snapshot that holds a delta also
    holds its table's flag. No flag row: pending.
    """
    tables = delta_tables()
    cursor.execute(
        "SELECT key FROM storage_meta WHERE key = ANY(%s) AND value = 'f'", [[_pending_key(table) for table in tables]]
    )
    clean = {row[0] for row in cursor.fetchall()}
    return frozenset(table for table in tables if _pending_key(table) not in clean)


# A writer flags the tables it appends to, in the same statement as its label deltas (`_label_deltas_insert`). It
# changes a flag only when it is clear, so writers wait on one another at most once per table after each time the
# drain empties it.
_PENDING_SET = "UPDATE storage_meta SET value = 't' WHERE key = ANY(%(keys)s) AND value <> 't'"


def deltas_pending_clear(cursor, tables: Sequence[str]) -> None:
    """Flag `tables` as empty (the drain, which found them so while holding the late-write lock exclusively)."""
    cursor.execute(
        "INSERT INTO storage_meta (key, value) SELECT key, 'f' FROM unnest(%s::text[]) AS k(key) "
        "ON CONFLICT (key) DO UPDATE SET value = 'f'",
        [[_pending_key(table) for table in tables]],
    )


def deltas_install(cursor) -> None:
    """The delta tables (per series: 1-minute rows; per label cell: one per tier), shaped like their rows without a
    key, and their pending flags (idempotent). A database installed when hours and days had per-series delta tables
    of their own gets those folded into their tiers and dropped."""
    from apps.storage.backends.base import ROLLUP_COLUMNS

    label_columns = "source_id integer NOT NULL, metric text NOT NULL, label_key text NOT NULL, " \
        "label_value text NOT NULL, " + ROLLUP_COLUMNS.replace("series_id integer NOT NULL, ", "")  # fmt: skip
    tables = [(SERIES_DELTA_TABLE, ROLLUP_COLUMNS), *((label_delta_table(tier), label_columns)
                                                       for tier in TIERS_FINE_TO_COARSE)]  # fmt: skip
    for table, columns in tables:
        cursor.execute(sql.SQL("CREATE TABLE IF NOT EXISTS {} ({})").format(sql.Identifier(table), sql.SQL(columns)))
    cursor.execute(
        "INSERT INTO storage_meta (key, value) SELECT key, 't' FROM unnest(%s::text[]) AS k(key) "
        "ON CONFLICT (key) DO NOTHING",
        [[_pending_key(table) for table in delta_tables()]],
    )
    for legacy, tier in zip(_LEGACY_SERIES_DELTA_TABLES, TIERS_FINE_TO_COARSE[1:], strict=True):
        cursor.execute("SELECT to_regclass(%s) IS NOT NULL", [legacy])
        if not cursor.fetchone()[0]:
            continue
        merges = [_merge_into(tier.table, labels=False)]
        cursor.execute(_fold_statement(legacy, sql.SQL("TRUE"), labels=False, merges=merges, names=[""]))
        cursor.execute(sql.SQL("DROP TABLE {}").format(sql.Identifier(legacy)))
        cursor.execute("DELETE FROM storage_meta WHERE key = %s", [_pending_key(legacy)])


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
    label_mapping: Callable[[np.ndarray], CellMapping | None],
) -> int:
    """Append the deltas of a write's points that fall in materialized buckets; returns how many rows it added.

    Per series, one row per (series, minute) of the points below the watermark, in the 1-minute tier's delta
    table only: the hour and day rows they also change are derived from those rows when a query reads them and
    when the drain folds them (see `deltas_fold`). Per label cell, one row per (cell, bucket) in each tier whose
    bucket is materialized (below the watermark floored to the tier: points in a younger hour or day are
    aggregated from the finer tier, deltas included, when the refresh builds it). `label_mapping` gives, for the
    batch's series ids (sorted), the registered label cells they belong to (read in the write's transaction, which
    holds the watermark row FOR SHARE: the label rollup registry cannot change until it commits).

    The aggregation is vectorised (numpy over the batch's columns, which are in (series, time) order), and the
    work is two statements whatever the batch: a binary COPY of the minutes, then one INSERT of every tier's label
    rows that also sets the pending flags.
    """
    columns = _columns_of(points)
    micros = columns.micros.to_numpy()
    late = micros < time_micros(watermark)
    if not late.any():
        return 0
    series = columns.series_ids.to_numpy()[late]
    micros = micros[late]
    values = columns.values.to_numpy(zero_copy_only=False)[late]
    minutes = _minute_groups(series, micros, values)
    copied = _series_deltas_copy(cursor, minutes)
    mapping = label_mapping(np.unique(minutes.series))
    labelled: list[tuple[Tier, _Groups]] = []
    if mapping is not None:
        for tier in TIERS_FINE_TO_COARSE:
            rows = _label_deltas(minutes, mapping, tier, time_micros(bucket_floor(watermark, tier.seconds)))
            if rows is None:
                break  # no point is in a materialized bucket of this tier, nor of a coarser one
            if len(rows.series):
                labelled.append((tier, rows))
    copied += _label_deltas_insert(cursor, labelled, mapping.cells if mapping is not None else [])
    return copied


@dataclass(frozen=True)
class _Groups:
    """Aggregates of disjoint groups of points, one entry per group (numpy arrays of equal length)."""

    series: np.ndarray  # int32: the series (or, for label rows, the cell index)
    bucket: np.ndarray  # int64 microseconds since 1970
    count: np.ndarray  # int64
    sum: np.ndarray  # float64
    min: np.ndarray
    max: np.ndarray
    last: np.ndarray
    last_time: np.ndarray  # int64 microseconds since 1970


def floor_micros(micros: np.ndarray, seconds: int) -> np.ndarray:
    """Bucket starts (date_bin from BUCKET_ORIGIN): numpy's // floors, for times before the origin too."""
    width = seconds * 1_000_000
    return (micros - _ORIGIN_MICROS) // width * width + _ORIGIN_MICROS


def _boundaries(*keys: np.ndarray) -> np.ndarray:
    """Where each run of equal keys starts, in rows ordered by the keys."""
    changed = np.zeros(len(keys[0]), dtype=bool)
    changed[0] = True
    for key in keys:
        changed[1:] |= key[1:] != key[:-1]
    return np.flatnonzero(changed)


def _minute_groups(series: np.ndarray, micros: np.ndarray, values: np.ndarray) -> _Groups:
    """Per (series, minute) aggregates of points ordered by (series, time) (PointColumns' order)."""
    buckets = floor_micros(micros, TIER_1M.seconds)
    starts = _boundaries(series, buckets)
    ends = np.append(starts[1:], len(series)) - 1
    return _Groups(
        series=series[starts], bucket=buckets[starts], count=(ends - starts + 1).astype(np.int64),
        sum=np.add.reduceat(values, starts), min=np.minimum.reduceat(values, starts),
        max=np.maximum.reduceat(values, starts), last=values[ends], last_time=micros[ends],
    )  # fmt: skip


@dataclass(frozen=True)
class CellMapping:
    """The (series, cell index) pairs of a batch's series, ordered by series, and the cells by index."""

    series: np.ndarray
    cell: np.ndarray
    cells: list[LabelCell]


def cell_mapping(cells: dict[int, tuple[LabelCell, ...]]) -> CellMapping:
    cell_list = sorted({cell for series_cells in cells.values() for cell in series_cells})
    index = {cell: position for position, cell in enumerate(cell_list)}
    pairs = sorted((series_id, index[cell]) for series_id, series_cells in cells.items() for cell in series_cells)
    return CellMapping(
        series=np.array([pair[0] for pair in pairs], dtype=np.int32),
        cell=np.array([pair[1] for pair in pairs], dtype=np.int32),
        cells=cell_list,
    )


def _label_deltas(minutes: _Groups, mapping: CellMapping, tier: Tier, limit: int) -> _Groups | None:
    """The label cells' deltas of `tier`: the per-minute deltas below `limit` (the tier's materialized bound)
    merged per (cell, tier bucket); None when no minute is below it. A series in several cells (one per label key)
    counts in each."""
    below = minutes.bucket < limit
    if not below.any():
        return None
    rows = np.flatnonzero(below)
    first = np.searchsorted(mapping.series, minutes.series[rows], side="left")
    counts = np.searchsorted(mapping.series, minutes.series[rows], side="right") - first
    total = int(counts.sum())
    if not total:
        return _Groups(*(np.empty(0, dtype=np.int64) for _ in range(8)))
    # Each minute row once per cell of its series: row i's pairs are first[i] .. first[i] + counts[i] - 1.
    row = np.repeat(rows, counts)
    pair = np.arange(total) - np.repeat(np.cumsum(counts) - counts, counts) + np.repeat(first, counts)
    cell = mapping.cell[pair]
    bucket = minutes.bucket[row] if tier is TIER_1M else floor_micros(minutes.bucket[row], tier.seconds)
    last_time = minutes.last_time[row]
    # Ordered by (cell, bucket, last time), stably: a cell's "last" is the value at its latest time.
    order = np.lexsort((last_time, bucket, cell))
    cell, bucket, last_time, row = cell[order], bucket[order], last_time[order], row[order]
    starts = _boundaries(cell, bucket)
    ends = np.append(starts[1:], len(cell)) - 1
    return _Groups(
        series=cell[starts], bucket=bucket[starts], count=np.add.reduceat(minutes.count[row], starts),
        sum=np.add.reduceat(minutes.sum[row], starts), min=np.minimum.reduceat(minutes.min[row], starts),
        max=np.maximum.reduceat(minutes.max[row], starts), last=minutes.last[row][ends], last_time=last_time[ends],
    )  # fmt: skip


# One binary COPY row of a per-series delta: the field count, then each field's length and its big-endian value.
_DELTA_ROW = np.dtype([
    ("fields", ">i2"),
    ("bucket_length", ">i4"), ("bucket", ">i8"), ("series_length", ">i4"), ("series", ">i4"),
    ("count_length", ">i4"), ("count", ">i8"), ("sum_length", ">i4"), ("sum", ">f8"),
    ("min_length", ">i4"), ("min", ">f8"), ("max_length", ">i4"), ("max", ">f8"),
    ("last_length", ">i4"), ("last", ">f8"), ("last_time_length", ">i4"), ("last_time", ">i8"),
])  # fmt: skip


def _series_deltas_copy(cursor, groups: _Groups) -> int:
    """COPY per-series 1-minute deltas in binary, built as one numpy record array (no Python work per row)."""
    rows = np.empty(len(groups.series), dtype=_DELTA_ROW)
    rows["fields"] = 8
    for name in ("bucket", "count", "sum", "min", "max", "last", "last_time"):
        rows[f"{name}_length"] = 8
    rows["series_length"] = 4
    rows["bucket"] = groups.bucket - PG_EPOCH_OFFSET_MICROS
    rows["series"] = groups.series
    rows["count"], rows["sum"], rows["min"], rows["max"], rows["last"] = (
        groups.count, groups.sum, groups.min, groups.max, groups.last,
    )  # fmt: skip
    rows["last_time"] = groups.last_time - PG_EPOCH_OFFSET_MICROS
    with (
        cursor.db.wrap_database_errors,
        cursor.copy(
            sql.SQL("COPY {} ({}) FROM STDIN (FORMAT BINARY)").format(
                sql.Identifier(SERIES_DELTA_TABLE), sql.SQL(DELTA_COLUMNS)
            )
        ) as copy,
    ):
        copy.write(b"".join((_COPY_SIGNATURE, rows.tobytes(), _COPY_TRAILER)))
    return len(rows)


_LABEL_DELTA_TYPES = (
    ("source", "int"), ("metric", "text"), ("key", "text"), ("value", "text"), ("bucket", "timestamptz"),
    ("count", "bigint"), ("sum", "float8"), ("min", "float8"), ("max", "float8"), ("last", "float8"),
    ("last_time", "timestamptz"),
)  # fmt: skip


def _label_deltas_insert(cursor, labelled: list[tuple[Tier, _Groups]], cells: list[LabelCell]) -> int:
    """INSERT every tier's label deltas (a few rows each: one per label value and bucket) and set the pending flags
    of the tables written (the per-series one included), in one statement; the label rows added."""
    parameters: dict = {"keys": [_pending_key(SERIES_DELTA_TABLE)]}
    inserts = []
    for number, (tier, groups) in enumerate(labelled):
        parameters["keys"].append(_pending_key(label_delta_table(tier)))
        chosen = [cells[cell] for cell in groups.series.tolist()]
        arrays = {
            "source": [cell[0] for cell in chosen], "metric": [cell[1] for cell in chosen],
            "key": [cell[2] for cell in chosen], "value": [cell[3] for cell in chosen],
            "bucket": [_from_micros(micros) for micros in groups.bucket.tolist()], "count": groups.count.tolist(),
            "sum": groups.sum.tolist(), "min": groups.min.tolist(), "max": groups.max.tolist(),
            "last": groups.last.tolist(), "last_time": [_from_micros(micros) for micros in groups.last_time.tolist()],
        }  # fmt: skip
        parameters.update({f"l{number}_{name}": values for name, values in arrays.items()})
        arrays_sql = sql.SQL(", ").join(
            sql.SQL("{}::{}[]").format(sql.Placeholder(f"l{number}_{name}"), sql.SQL(kind))
            for name, kind in _LABEL_DELTA_TYPES
        )
        insert = sql.SQL("{cte} AS (INSERT INTO {table} ({columns}) SELECT * FROM unnest({arrays}))").format(
            cte=sql.Identifier(f"labels{number}"), table=sql.Identifier(label_delta_table(tier)),
            columns=sql.SQL(LABEL_DELTA_COLUMNS), arrays=arrays_sql,
        )  # fmt: skip
        inserts.append(insert)
    flags = sql.SQL(_PENDING_SET)
    if inserts:
        statement = sql.SQL("WITH {inserts} {flags}").format(inserts=sql.SQL(", ").join(inserts), flags=flags)
    else:
        statement = flags
    with cursor.db.wrap_database_errors:
        cursor.execute(statement, parameters)
    return sum(len(groups.series) for _, groups in labelled)


def _from_micros(micros: int) -> datetime:
    return EPOCH + timedelta(microseconds=micros)


# Fold deltas into their rows: merged per row key first, then added to the row (or inserted), in bucket order.
_MERGE_INTO = """
{merged} AS (
    SELECT {key_out}, sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max,
           (array_agg(last ORDER BY last_time DESC))[1] AS last, max(last_time) AS last_time
    FROM moved {where} GROUP BY {positions}
), {written} AS (
    INSERT INTO {table} AS t ({key}, count, sum, min, max, last, last_time)
    SELECT {key}, count, sum, min, max, last, last_time FROM {merged} ORDER BY bucket
    ON CONFLICT ({key}) DO UPDATE SET
        count = t.count + EXCLUDED.count, sum = t.sum + EXCLUDED.sum, min = least(t.min, EXCLUDED.min),
        max = greatest(t.max, EXCLUDED.max),
        last = CASE WHEN EXCLUDED.last_time >= t.last_time THEN EXCLUDED.last ELSE t.last END,
        last_time = greatest(t.last_time, EXCLUDED.last_time)
    RETURNING 1
)"""
_SERIES_KEY = "series_id, bucket"
_LABEL_KEY = "source_id, metric, label_key, label_value, bucket"


def _merge_into(
    table: str,
    *,
    labels: bool,
    name: str = "",
    bucket: sql.Composable | None = None,
    where: sql.Composable | None = None,
) -> sql.Composed:
    """The CTEs `merged<name>` and `written<name>`: the rows of `moved` (with `bucket` as their bucket) that match
    `where`, merged per row key and added to `table`."""
    key = _LABEL_KEY if labels else _SERIES_KEY
    key_out = sql.SQL(key) if bucket is None else sql.SQL("series_id, {} AS bucket").format(bucket)
    return sql.SQL(_MERGE_INTO).format(
        merged=sql.Identifier(f"merged{name}"),
        written=sql.Identifier(f"written{name}"),
        key=sql.SQL(key),
        key_out=key_out,
        where=where or sql.SQL(""),
        positions=sql.SQL("1, 2, 3, 4, 5" if labels else "1, 2"),
        table=sql.Identifier(table),
    )


def _fold_statement(
    delta: str, condition: sql.Composable, *, labels: bool, merges: list[sql.Composed], names: Sequence[str]
) -> sql.Composed:
    """DELETE `delta`'s rows matching `condition` as `moved`, run `merges` (from _merge_into) on them, and return
    the number of rows the `written<name>` CTEs of `names` changed."""
    return sql.SQL(
        "WITH moved AS (DELETE FROM {delta} WHERE {condition} RETURNING {key}, count, sum, min, max, last, "
        "last_time), {merges} SELECT {total}"
    ).format(
        delta=sql.Identifier(delta), condition=condition, key=sql.SQL(_LABEL_KEY if labels else _SERIES_KEY),
        merges=sql.SQL(", ").join(merges),
        total=sql.SQL(" + ").join(
            sql.SQL("(SELECT count(*) FROM {})").format(sql.Identifier(f"written{name}")) for name in names
        ),
    )  # fmt: skip


# Per-series deltas copied for the statements of one transaction (with each row's ctid, `at`): the delta table
# has no index, and each of a transaction's statements over it scanned all of it (a second each while a backfill's
# backlog drains). Emptied at commit.
SERIES_DELTAS_COPY = "storage_series_deltas_copy"


def series_deltas_collect(cursor, condition: sql.Composable, parameters: dict) -> None:
    """Copy the per-series deltas matching `condition` into SERIES_DELTAS_COPY (emptied first: a caller's
    transaction, as in tests, may collect several times before it commits)."""
    copy = sql.Identifier(SERIES_DELTAS_COPY)
    cursor.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (at tid NOT NULL, LIKE {}) ON COMMIT DELETE ROWS").format(
            copy, sql.Identifier(SERIES_DELTA_TABLE)
        )
    )
    cursor.execute(sql.SQL("DELETE FROM {}").format(copy))
    cursor.execute(
        sql.SQL("INSERT INTO {copy} (at, {columns}) SELECT ctid, {columns} FROM {deltas} WHERE {condition}").format(
            copy=copy, columns=sql.SQL(DELTA_COLUMNS), deltas=sql.Identifier(SERIES_DELTA_TABLE), condition=condition
        ),
        parameters,
    )


def series_delta_bucket(tier: Tier) -> sql.Composable:
    """A 1-minute delta row's bucket in `tier` (the `bucket` column itself for the 1-minute tier)."""
    if tier is TIER_1M:
        return sql.Identifier("bucket")
    return sql.SQL("date_bin({}, bucket, {})").format(sql.Literal(tier.interval), sql.Literal(BUCKET_ORIGIN))


def series_delta_materialized(tier: Tier) -> sql.Composed:
    """A 1-minute delta row's bucket in `tier` is materialized: before the watermark floored to the tier."""
    return sql.SQL("{bucket} < (SELECT date_bin({width}, watermark, {origin}) FROM storage_rollup_watermark)").format(
        bucket=series_delta_bucket(tier), width=sql.Literal(tier.interval), origin=sql.Literal(BUCKET_ORIGIN)
    )


def deltas_fold(cursor, tier: Tier, *, labels: bool, condition: sql.Composable, parameters: dict | Sequence) -> int:
    """Fold the per-series deltas (or, with `labels`, `tier`'s label deltas) that match `condition` into their
    rows, additively; the number of rows changed.

    Per-series deltas are 1-minute rows (`tier` must be the 1-minute tier): each is added to its minute's row, and
    to its hour's and day's rows where those are materialized (below the watermark floored to the hour, the day).
    A delta in an hour or day not yet materialized changes only its minute: the refresh folds the deltas of an
    hour or day before it builds that bucket from the finer tier, so the bucket then holds them.

    The caller holds the watermark row FOR UPDATE (no write is open), or (a drain step) FOR SHARE, the drain lock
    and the late-write advisory lock shared: no refresh builds buckets and no redelivery re-aggregates meanwhile,
    while delta writers may append. The statement moves each delta it reads (deletes it and adds it to its rows)
    at once, so every snapshot sees each delta exactly once, in its table or in its rows; a delta appended by a
    transaction the statement does not see stays for a later fold. The refresh has not moved the watermark in this
    transaction yet when it folds before building buckets. A label row plus its label deltas stays equal to its
    series' rows plus their deltas whichever side is folded first, as both are folded by moving.
    """
    if labels:
        merges = [_merge_into(tier.labels_table, labels=True)]
        statement = _fold_statement(label_delta_table(tier), condition, labels=True, merges=merges, names=[""])
    else:
        if tier is not TIER_1M:
            raise ValueError("per-series deltas are 1-minute rows: fold them with the 1-minute tier")
        merges, names = [], [f"_{each.name}" for each in TIERS_FINE_TO_COARSE]
        for each, name in zip(TIERS_FINE_TO_COARSE, names, strict=True):
            bucket = series_delta_bucket(each)
            where = None if each is TIER_1M else sql.SQL("WHERE {}").format(series_delta_materialized(each))
            merges.append(_merge_into(each.table, labels=False, name=name, bucket=bucket, where=where))
        statement = _fold_statement(SERIES_DELTA_TABLE, condition, labels=False, merges=merges, names=names)
    cursor.execute(statement, parameters)
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
        table = label_delta_table(tier) if labels else SERIES_DELTA_TABLE
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
