"""Plain PostgreSQL: daily range partitions, rollup tables maintained from a watermark, retention by drop.

Consistency rule: rollup rows exist exactly for buckets that end at or before the watermark (floored to
the tier), and always equal an aggregate of the raw points merged with the bucket's deltas. Two things keep it so:
- the refresh job takes the watermark row FOR UPDATE, aggregates [old, new) and moves it;
- every write takes the same row FOR SHARE, so it either commits before the job aggregates or sees
  the new watermark; a write below the watermark appends its late points' aggregates as deltas
  (backends/deltas.py), or, if it replaced points, re-aggregates the buckets it touched in the same transaction.
So a query can read rollups and their deltas below the watermark and raw points above it, and never be stale.

Provisional minutes: the grace window keeps a minute or two of raw points past the watermark, which every
dashboard query would aggregate again. So, once the watermark has caught up, the refresh also rolls up the
points in [watermark, provisional), provisional = now minus STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS to the
second: whole minutes, and the minute in progress as far as `provisional` (its row holds [minute, provisional)
until the next refresh rebuilds it whole or further). 1-minute tier and its label rows only; coarser tiers
stay built from exact minutes. A write with points in that range marks their minutes in `storage_rollup_dirty`
(in its transaction, under the same FOR SHARE lock), so the rule there is: a provisional 1-minute row is exact
unless its minute is marked. Queries read marked minutes from raw points (the watermark, `provisional` and the
marks in their one snapshot); the next refresh recomputes them and clears the marks. When the watermark moves
past a provisional minute, an unmarked one is already exact and is not aggregated again.

Partitions (backends/partitions.py) and label rollups (backends/label_rollups.py) live in modules of their own.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta

import numpy as np
from django.conf import settings
from django.db import OperationalError, transaction
from django.utils import timezone
from psycopg import sql
from psycopg.errors import LockNotAvailable

from apps.storage.backends.base import (
    BACKEND_POSTGRES,
    ROLLUP_COLUMNS,
    Point,
    Points,
    RetentionResult,
    StorageBackend,
)
from apps.storage.backends.deltas import (
    SERIES_DELTA_TABLE,
    SERIES_DELTAS_COPY,
    CellMapping,
    DeltasSweep,
    LabelCell,
    cell_mapping,
    deltas_copy,
    deltas_fold,
    deltas_install,
    deltas_pending_clear,
    deltas_pending_read,
    floor_micros,
    label_delta_table,
    series_deltas_collect,
)
from apps.storage.backends.label_rollups import (
    label_aggregate,
    label_cells_rebuild,
    label_cells_rebuild_run,
    label_history_aggregate,
    label_history_deltas_collect,
    label_keys_building,
    label_keys_registered,
    label_rollups_install,
    label_rollups_sync,
    label_rows_delete_expired,
)
from apps.storage.backends.partitions import DailyPartitions, partition_name
from apps.storage.columns import EPOCH, PointColumns, time_micros
from apps.storage.query.cache import generation_bump
from apps.storage.sql_arrays import int_array, time_array
from apps.storage.tiers import (
    BUCKET_ORIGIN,
    TIER_1D,
    TIER_1H,
    TIER_1M,
    TIERS_COARSE_TO_FINE,
    TIERS_FINE_TO_COARSE,
    Tier,
    bucket_floor,
)

logger = logging.getLogger(__name__)

# At most this much raw time is aggregated per refresh transaction (catch-up after downtime runs in steps).
MAX_REFRESH_STEP = timedelta(hours=1)
# Days from the watermark's whose partitions a refresh run summarizes (BRIN), besides today's: after a long
# downtime, the ones its first steps read.
MAX_BRIN_SUMMARIZE_DAYS = 3
# Deltas folded per tier per drain transaction (writers go on beside it: it holds the late-write lock shared).
DELTAS_FOLD_ROWS = 50_000
# Per-series 1-minute rows a chunk of a new label key's history reads, about (whole hours, at least one): late
# writers wait for each chunk.
LABEL_HISTORY_CHUNK_ROWS = 200_000
# The late-write advisory lock: delta writers and drain steps take it shared; re-aggregating writes, label history
# chunks and the drain's check that a delta table is empty, exclusively.
_LATE_WRITE_LOCK = sql.SQL("hashtext('storage.rollup.late')")
# Drain steps take this one exclusively: one drain at a time (two would update the same rows in any order).
_DRAIN_LOCK = sql.SQL("hashtext('storage.rollup.drain')")
_LABEL_CELLS_CACHE_LIMIT = 200_000
_LABEL_MAPPINGS_CACHED = 64  # sets of series (a batch's) whose label cell mapping is kept


def _watermark_shared_then(cursor, column: str, locks: sql.Composable):
    """The lock order of every transaction that excludes some writers: the watermark row FOR SHARE (as writes take
    it), then the advisory `locks` (a select list of pg_advisory_* calls), in one round trip. Returns `column` of
    the watermark row; the cursor is left on the locks' row."""
    cursor.execute(
        sql.SQL("SELECT {} FROM storage_rollup_watermark FOR SHARE; SELECT {}").format(sql.SQL(column), locks)
    )
    value = cursor.fetchone()[0]
    cursor.nextset()
    return value


def _aggregate_values(tier: Tier) -> sql.Composed:
    """SELECT of one `tier` row's aggregates over the source rows that a WHERE appended by the caller matches (no
    GROUP BY: one row, with a count of 0 or NULL when none match)."""
    if tier.source_table == "points":
        return sql.SQL(
            "SELECT count(*) AS count, sum(value) AS sum, min(value) AS min, max(value) AS max, "
            "(array_agg(value ORDER BY time DESC))[1] AS last, max(time) AS last_time FROM points"
        )
    return sql.SQL(
        "SELECT sum(count)::bigint AS count, sum(sum) AS sum, min(min) AS min, max(max) AS max, "
        "(array_agg(last ORDER BY last_time DESC))[1] AS last, max(last_time) AS last_time FROM {source}"
    ).format(source=sql.Identifier(tier.source_table))


def _materialize_from(tier: Tier) -> sql.Composed:
    """SELECT that builds `tier` rows for buckets in [%(lower)s, %(upper)s) of its source table.

    `last` is read back by primary key from the source row holding max(time) (max(last_time) for rollup
    sources), instead of array_agg(... ORDER BY time DESC), which sorted every group and doubled the cost of
    aggregating raw points. LIMIT 1 keeps that lookup a nested-loop index probe per output row.
    """
    if tier.source_table == "points":
        return sql.SQL(
            "SELECT a.bucket, a.series_id, a.count, a.sum, a.min, a.max, l.value, a.last_time FROM ("
            "SELECT date_bin({width}, time, {origin}) AS bucket, series_id, count(*) AS count, sum(value) AS sum, "
            "min(value) AS min, max(value) AS max, max(time) AS last_time FROM points "
            "WHERE time >= %(lower)s AND time < %(upper)s GROUP BY 1, 2) AS a "
            "CROSS JOIN LATERAL (SELECT p.value FROM points p WHERE p.series_id = a.series_id "
            "AND p.time = a.last_time AND p.time >= %(lower)s AND p.time < %(upper)s LIMIT 1) AS l"
        ).format(width=sql.Literal(tier.interval), origin=sql.Literal(BUCKET_ORIGIN))
    source = next(candidate for candidate in TIERS_FINE_TO_COARSE if candidate.table == tier.source_table)
    # A source row's last_time lies inside its own bucket, so that bucket is where the group's last value is.
    return sql.SQL(
        "SELECT a.bucket, a.series_id, a.count, a.sum, a.min, a.max, l.last, a.last_time FROM ("
        "SELECT date_bin({width}, bucket, {origin}) AS bucket, series_id, sum(count)::bigint AS count, "
        "sum(sum) AS sum, min(min) AS min, max(max) AS max, max(last_time) AS last_time FROM {source} "
        "WHERE bucket >= %(lower)s AND bucket < %(upper)s GROUP BY 1, 2) AS a "
        "CROSS JOIN LATERAL (SELECT r.last FROM {source} r WHERE r.series_id = a.series_id "
        "AND r.bucket = date_bin({source_width}, a.last_time, {origin}) LIMIT 1) AS l"
    ).format(
        width=sql.Literal(tier.interval),
        origin=sql.Literal(BUCKET_ORIGIN),
        source=sql.Identifier(tier.source_table),
        source_width=sql.Literal(source.interval),
    )


def _table_has_rows(cursor, table: str) -> bool:
    cursor.execute(sql.SQL("SELECT EXISTS (SELECT 1 FROM {})").format(sql.Identifier(table)))
    return cursor.fetchone()[0]


def _upsert_suffix() -> sql.SQL:
    return sql.SQL(
        " ON CONFLICT (series_id, bucket) DO UPDATE SET count = EXCLUDED.count, sum = EXCLUDED.sum, "
        "min = EXCLUDED.min, max = EXCLUDED.max, last = EXCLUDED.last, last_time = EXCLUDED.last_time"
    )


def _consecutive_runs(starts: Sequence[datetime], width: timedelta) -> list[tuple[datetime, datetime]]:
    """Sorted bucket starts as half-open ranges of adjacent buckets: one statement per run, not per bucket."""
    runs: list[tuple[datetime, datetime]] = []
    for start in starts:
        if runs and runs[-1][1] == start:
            runs[-1] = (runs[-1][0], start + width)
        else:
            runs.append((start, start + width))
    return runs


def _late_minutes(points: Points, moments: set[datetime], watermark: datetime) -> set[tuple[int, datetime]]:
    """The (series, minute) pairs of the points below the watermark. Columns are grouped with numpy, and each
    distinct minute becomes a datetime once: per point in Python, a 5,000-point redelivery spent 13 ms in
    bucket_floor alone."""
    if not isinstance(points, PointColumns):
        floors = {moment: bucket_floor(moment, 60) for moment in moments if moment < watermark}
        return {(series_id, floors[moment]) for series_id, moment, _ in points if moment in floors}
    micros = points.micros.to_numpy()
    late = micros < time_micros(watermark)
    series = points.series_ids.to_numpy()[late]
    minutes = floor_micros(micros[late], 60)
    starts = {value: EPOCH + timedelta(microseconds=value) for value in np.unique(minutes).tolist()}
    return set(zip(series.tolist(), map(starts.__getitem__, minutes.tolist()), strict=True))


class PostgresBackend(DailyPartitions, StorageBackend):
    """Storage on any PostgreSQL 14+ without extensions."""

    name = BACKEND_POSTGRES
    label_rollups = True
    deltas = True

    def __init__(self, alias: str = "default") -> None:
        super().__init__(alias)
        # Series id -> the registered label cells it belongs to, valid for one state of the label rollup registry.
        self._label_cells_cache: dict[int, tuple[LabelCell, ...]] = {}
        self._label_cells_state: str | None = None
        self._label_mappings: dict[bytes, CellMapping | None] = {}
        self._deltas_sweep = DeltasSweep()

    # --- schema -------------------------------------------------------------------------------
    def install(self) -> None:
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS points (time timestamptz NOT NULL, series_id integer NOT NULL, "
                "schema_id integer, value double precision NOT NULL, PRIMARY KEY (series_id, time)) "
                "PARTITION BY RANGE (time)"
            )
            # Rows arrive roughly in time order, so a BRIN index finds a time range (the rollup refresh
            # reads the last minute or two of a day's partition) for a few kilobytes of index.
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS points_time_brin ON points USING brin (time) "
                "WITH (pages_per_range = 32, autosummarize = on)"
            )
            for tier in TIERS_FINE_TO_COARSE:
                cursor.execute(
                    sql.SQL("CREATE TABLE IF NOT EXISTS {} ({}, PRIMARY KEY (series_id, bucket))").format(
                        sql.Identifier(tier.table), sql.SQL(ROLLUP_COLUMNS)
                    )
                )
                cursor.execute(
                    sql.SQL("CREATE INDEX IF NOT EXISTS {} ON {} (bucket)").format(
                        sql.Identifier(f"{tier.table}_bucket_idx"), sql.Identifier(tier.table)
                    )
                )
            cursor.execute(
                "CREATE TABLE IF NOT EXISTS storage_rollup_watermark (singleton boolean PRIMARY KEY DEFAULT true "
                "CHECK (singleton), watermark timestamptz NOT NULL)"
            )
            cursor.execute(
                "INSERT INTO storage_rollup_watermark (singleton, watermark) "
                "VALUES (true, date_trunc('minute', now())) ON CONFLICT DO NOTHING"
            )
        self.label_rollups_install()
        self.provisional_rollups_install()
        self.partition_epoch_install()
        self.deltas_install()
        self.partitions_ensure(start=timezone.now().date() - timedelta(days=1))

    def label_rollups_install(self) -> None:
        """The label rollup tables and their registry (idempotent; databases installed before them get them too)."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            label_rollups_install(cursor)

    def label_keys_registered(self, cursor, *, metric: str, key: str, source_ids: Sequence[int]) -> bool:
        """Whether every one of these sources has label rollups for (metric, key)."""
        return label_keys_registered(cursor, metric=metric, key=key, source_ids=source_ids)

    def provisional_rollups_install(self) -> None:
        """The provisional bound and the dirty-minute marks (idempotent; databases installed before them get them)."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            cursor.execute("ALTER TABLE storage_rollup_watermark ADD COLUMN IF NOT EXISTS provisional timestamptz")
            # No unique key: writers only append marks and never wait on each other; readers take DISTINCT.
            cursor.execute("CREATE TABLE IF NOT EXISTS storage_rollup_dirty (minute timestamptz NOT NULL)")
            cursor.execute(
                "CREATE INDEX IF NOT EXISTS storage_rollup_dirty_minute_idx ON storage_rollup_dirty (minute)"
            )

    def deltas_install(self) -> None:
        """The late points' delta tables (idempotent; databases installed before them get them too)."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            deltas_install(cursor)

    # --- writes -------------------------------------------------------------------------------
    def _write_begin(self, cursor, points: Sequence[Point], moments: set[datetime]) -> tuple[datetime, datetime]:
        """(watermark, provisional bound), held FOR SHARE until commit so no refresh moves them meanwhile; then the
        write's partitions. The lock order, the same in every transaction that touches points, is what keeps writes,
        the refresh and retention free of deadlocks: the watermark row first (writes FOR SHARE, the refresh and
        retention FOR UPDATE), then partitions, then rows."""
        bounds = self._partition_epoch_read(cursor)
        self._partitions_create(cursor, self._partition_days(moments))
        return bounds

    def _write_end(
        self,
        cursor,
        points: Sequence[Point],
        bounds: tuple[datetime, datetime],
        moments: set[datetime],
        *,
        replaced: bool,
    ) -> int:
        watermark, provisional = bounds
        earliest = min(moments)
        if earliest >= provisional:
            return 0  # live data: nothing rolled up yet (the common case, decided per time, not per point)
        dirty = sorted({bucket_floor(moment, 60) for moment in moments if watermark <= moment < provisional})
        if dirty:
            # Queries read these minutes raw until the next refresh recomputes them; unlike late points below
            # the watermark, nothing cached depends on them, so the write neither re-aggregates nor bumps.
            cursor.execute("INSERT INTO storage_rollup_dirty (minute) SELECT unnest(%s::timestamptz[])", [dirty])
        if earliest >= watermark:
            return 0
        if replaced:
            late = _late_minutes(points, moments, watermark)
            self._reaggregate(cursor, late, watermark)
            count = len(late)
        else:
            # Only new points: their aggregates are appended as deltas (see backends/deltas.py). Shared with other
            # such writers, exclusive to a re-aggregating one, which must see deltas and raw points agree.
            # The label rollup registry's state in the same round trip: which label cells the deltas go to.
            cursor.execute(
                sql.SQL(
                    "SELECT pg_advisory_xact_lock_shared({}), "
                    "(SELECT value FROM storage_meta WHERE key = 'label_rollup_sync')"
                ).format(_LATE_WRITE_LOCK)
            )
            state = cursor.fetchone()[1] or ""
            count = deltas_copy(cursor, points, watermark, lambda ids: self._label_mapping(cursor, state, ids))
        # Stored buckets below the watermark changed: cached query buckets are stale once this commits.
        transaction.on_commit(generation_bump, using=self.alias)
        return count

    def _reaggregate(self, cursor, minutes: set[tuple[int, datetime]], watermark: datetime) -> None:
        """Recompute the materialized buckets that late points touched, tier by tier, and their whole label cells.

        Only writes that replaced points come here (the others append deltas). They serialise on the advisory lock
        (exclusive here, shared by delta writers): each statement then runs after every earlier late writer
        committed, and (READ COMMITTED) sees its points and deltas, so no rollup row misses or double counts one.

        Nothing is folded: the work follows what the write touched, not the backlog of deltas around it (folding
        every delta of the touched sources' metrics and days first took 10 s during `make demo`'s backfill, while
        every late writer waited on the lock). A touched minute is recomputed from raw points, which hold its
        pending per-series deltas' points, so those deltas are deleted; a touched hour or day from the finer tier's
        rows, which lack the pending deltas of its other minutes exactly as before (the drain adds those to both).
        A touched label cell is rebuilt from its series' rows plus their pending per-series deltas
        (label_cells_rebuild), and its label deltas deleted: it then counts every committed point once, whichever
        of the two kinds of deltas the drain had folded.
        """
        cursor.execute(sql.SQL("SELECT pg_advisory_xact_lock({})").format(_LATE_WRITE_LOCK))
        # A few rows each, planned from estimates that lag behind a backfill: compiling them (JIT) took longer
        # than running them.
        cursor.execute("SET LOCAL jit = off")
        pending = self.deltas_pending(cursor)
        cursor.execute(
            "SELECT id, source_id, metric FROM storage_series WHERE id = ANY(%s::int[])",
            [int_array(sorted({series_id for series_id, _ in minutes}))],
        )
        pair_of = {series_id: (source_id, metric) for series_id, source_id, metric in cursor.fetchall()}
        pairs = sorted(set(pair_of.values()))
        # Every series of the touched sources' metrics (a label cell's), as an array: a condition, not a subquery
        # (joined to each row of the delta table, whose statistics lag behind a backfill, it took 11 s).
        cursor.execute(
            "SELECT coalesce(array_agg(id), '{}')::text FROM storage_series WHERE (source_id, metric) IN "
            "(SELECT * FROM unnest(%s::int[], %s::text[]))",
            [[pair[0] for pair in pairs], [pair[1] for pair in pairs]],
        )
        parameters: dict = {"pair_series": cursor.fetchone()[0]}  # as the array's text: sent back as it came
        pair_series = sql.SQL("series_id = ANY(%(pair_series)s::int[])")
        series_deltas = SERIES_DELTA_TABLE in pending
        if series_deltas:
            # The pending per-series deltas the label cells may need (those of the touched sources' metrics in the
            # touched days), copied once; then those of the touched minutes, which their recomputation counts.
            series_deltas_collect(
                cursor,
                sql.SQL("{} AND date_bin('1 day', bucket, %(origin)s) = ANY(%(days)s)").format(pair_series),
                {**parameters, "origin": BUCKET_ORIGIN,
                 "days": sorted({bucket_floor(moment, TIER_1D.seconds) for _, moment in minutes})},
            )  # fmt: skip
            series_ids, buckets = zip(*sorted(minutes), strict=True)
            cursor.execute(
                sql.SQL(
                    "WITH gone AS (DELETE FROM {copy} WHERE bucket = ANY(%(minutes)s::timestamptz[]) "
                    "AND (series_id, bucket) IN (SELECT * FROM unnest(%(ids)s::int[], %(buckets)s::timestamptz[])) "
                    "RETURNING at) DELETE FROM {deltas} WHERE ctid = ANY(ARRAY(SELECT at FROM gone))"
                ).format(copy=sql.Identifier(SERIES_DELTAS_COPY), deltas=sql.Identifier(SERIES_DELTA_TABLE)),
                {"minutes": sorted(set(buckets)), "ids": int_array(series_ids), "buckets": time_array(buckets)},
            )
        touched = minutes
        for tier in TIERS_FINE_TO_COARSE:
            materialized_until = bucket_floor(watermark, tier.seconds)
            if tier is not TIER_1M:
                floors = {moment: bucket_floor(moment, tier.seconds) for moment in {moment for _, moment in touched}}
                touched = {(series_id, floors[moment]) for series_id, moment in touched}
            touched = {(series_id, bucket) for series_id, bucket in touched if bucket < materialized_until}
            if not touched:
                return
            time_column = "time" if tier.source_table == "points" else "bucket"
            series_ids, buckets = zip(*sorted(touched), strict=True)
            # One index probe per touched (series, bucket), LATERAL: as a join, with 100 million raw points the
            # planner hashed every partition for a 10,000-point redelivery (a sequential scan of them all).
            cursor.execute(
                sql.SQL(
                    "INSERT INTO {table} (bucket, series_id, count, sum, min, max, last, last_time) "
                    "SELECT d.d_bucket, d.d_series, a.count, a.sum, a.min, a.max, a.last, a.last_time "
                    "FROM unnest(%s::int[], %s::timestamptz[]) AS d(d_series, d_bucket) CROSS JOIN LATERAL "
                    "({values} WHERE series_id = d.d_series AND {time} >= d.d_bucket "
                    "AND {time} < d.d_bucket + {width}) AS a WHERE a.count > 0"
                ).format(
                    table=sql.Identifier(tier.table),
                    values=_aggregate_values(tier),
                    time=sql.Identifier(time_column),
                    width=sql.Literal(tier.interval),
                )
                + _upsert_suffix(),
                [int_array(series_ids), time_array(buckets)],
            )
            # Whole label cells (every series of the touched source, metric and bucket) are rebuilt.
            cells = sorted({(*pair_of[series_id], bucket) for series_id, bucket in touched})
            cell_parameters = {
                **parameters,
                "buckets": sorted({cell[2] for cell in cells}),
                "cell_sources": [cell[0] for cell in cells],
                "cell_metrics": [cell[1] for cell in cells],
                "cell_buckets": [cell[2] for cell in cells],
            }
            in_cells = sql.SQL(
                "(SELECT * FROM unnest(%(cell_sources)s::int[], %(cell_metrics)s::text[], "
                "%(cell_buckets)s::timestamptz[]))"
            )
            label_cells_rebuild_run(
                cursor,
                label_cells_rebuild(
                    tier,
                    series=pair_series,
                    buckets=lambda column: sql.SQL("{} = ANY(%(buckets)s::timestamptz[])").format(column),
                    cells=sql.SQL("(s.source_id, s.metric, t.bucket) IN {}").format(in_cells),
                    deltas=series_deltas,
                ),
                cell_parameters,
            )
            if label_delta_table(tier) in pending:
                cursor.execute(
                    sql.SQL(
                        "DELETE FROM {} WHERE bucket = ANY(%(buckets)s::timestamptz[]) "
                        "AND (source_id, metric, bucket) IN {}"
                    ).format(sql.Identifier(label_delta_table(tier)), in_cells),
                    cell_parameters,
                )

    def _deltas_fold(
        self, cursor, *, series: sql.Composable | None, labels: sql.Composable | None, parameters: dict
    ) -> int:
        """Fold the per-series deltas matching `series` (a condition on series_id and the minute's bucket: each goes
        into its minute, hour and day, see deltas_fold) and the label deltas matching `labels` (on source_id,
        metric, label_key, label_value and bucket) of every tier into their rows; None folds none of that kind. The
        number of rows changed."""
        changed = 0
        if series is not None:
            changed += deltas_fold(cursor, TIER_1M, labels=False, condition=series, parameters=parameters)
        if labels is not None:
            for tier in TIERS_FINE_TO_COARSE:
                changed += deltas_fold(cursor, tier, labels=True, condition=labels, parameters=parameters)
        return changed

    def _deltas_fold_all(self, cursor) -> int:
        """Fold every delta of every tier (before retention deletes rows, or a label key's history is built)."""
        return self._deltas_fold(cursor, series=sql.SQL("TRUE"), labels=sql.SQL("TRUE"), parameters={})

    def _label_mapping(self, cursor, state: str, series_ids: np.ndarray) -> CellMapping | None:
        """The registered label cells of `series_ids` (sorted) as deltas_copy wants them, None when they have none;
        cached per process while the registry stays in `state` (read in this transaction, which holds the watermark
        row FOR SHARE: it changes only under the watermark row FOR UPDATE). A backfill sends the same series batch
        after batch, so the mapping of a set of series is kept too, not only each series' cells."""
        if state != self._label_cells_state:
            self._label_cells_cache, self._label_mappings, self._label_cells_state = {}, {}, state
        key = series_ids.tobytes()
        if key in self._label_mappings:
            return self._label_mappings[key]
        cache = self._label_cells_cache
        missing = [series_id for series_id in series_ids.tolist() if series_id not in cache]
        if missing:
            found: dict[int, list[LabelCell]] = {series_id: [] for series_id in missing}
            cursor.execute(
                "SELECT s.id, s.source_id, s.metric, r.label_key, s.labels->>r.label_key FROM storage_series s "
                "JOIN storage_label_rollup r ON r.source_id = s.source_id AND r.metric = s.metric "
                "AND s.labels ? r.label_key WHERE s.id = ANY(%s::int[])",
                [missing],
            )
            for series_id, source_id, metric, label_key, value in cursor.fetchall():
                found[series_id].append((source_id, metric, label_key, value))
            if len(cache) > _LABEL_CELLS_CACHE_LIMIT:
                cache.clear()
            # Safe before the commit: the mapping is read, not written, and the registry is the one of `state`.
            cache.update({series_id: tuple(cells) for series_id, cells in found.items()})
        cells = {series_id: cache[series_id] for series_id in series_ids.tolist() if cache[series_id]}
        mapping = cell_mapping(cells) if cells else None
        if len(self._label_mappings) >= _LABEL_MAPPINGS_CACHED:
            self._label_mappings.clear()
        self._label_mappings[key] = mapping
        return mapping

    # --- rollups ------------------------------------------------------------------------------
    def watermark(self) -> datetime:
        """Raw points before this time are reflected in the rollup tables."""
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT watermark FROM storage_rollup_watermark")
            return cursor.fetchone()[0]

    def tier_materialized_until(self, tier: Tier) -> datetime:
        return bucket_floor(self.watermark(), tier.seconds)

    def deltas_pending(self, cursor) -> frozenset[str]:
        """The delta tables that may hold rows waiting to be folded, in the caller's snapshot (queries read only
        those): see deltas_pending_read."""
        return deltas_pending_read(cursor)

    def provisional_rollups(self, cursor) -> tuple[datetime, list[datetime]] | None:
        """(provisional bound, its dirty minutes in order): 1-minute rows in [watermark, bound) are exact except
        for those minutes. None when no minute is provisional. Read in the caller's snapshot, with the watermark.
        """
        cursor.execute(
            "SELECT w.provisional, ARRAY(SELECT DISTINCT d.minute FROM storage_rollup_dirty d "
            "WHERE d.minute >= w.watermark AND d.minute < w.provisional ORDER BY 1) "
            "FROM storage_rollup_watermark w WHERE w.provisional > w.watermark"
        )
        row = cursor.fetchone()
        return None if row is None else (row[0], row[1])

    def rollup_refresh(self, *, now: datetime | None = None) -> dict:
        """Advance the watermark to now minus the grace period, one bounded step per transaction; once it has
        caught up, roll up the points up to now minus the provisional grace (see the module docstring).
        """
        now = now or timezone.now()
        target = bucket_floor(now - timedelta(seconds=settings.STORAGE_ROLLUP_GRACE_SECONDS), 60)
        # To the second, not the minute: the current minute is rolled up too, as far as it has arrived.
        provisional_target = bucket_floor(now - timedelta(seconds=settings.STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS), 1)
        if settings.STORAGE_ROLLUP_PROVISIONAL_GRACE_SECONDS >= settings.STORAGE_ROLLUP_GRACE_SECONDS:
            provisional_target = target  # switched off
        steps = dirty_minutes = 0
        summarized = self._brin_summarize(now)
        while True:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                cursor.execute(
                    "SELECT watermark, greatest(watermark, provisional) FROM storage_rollup_watermark FOR UPDATE"
                )
                old, provisional = cursor.fetchone()
                if steps == 0:
                    label_rollups_sync(cursor)
                if old >= target:
                    # Caught up: only now, so a backlog is never rolled up provisionally and then again exactly.
                    new_provisional, built, recomputed = self._provisional_refresh(
                        cursor, old, provisional, provisional_target
                    )
                    result = {
                        "brin_ranges_summarized": summarized,
                        "watermark": old.isoformat(),
                        "provisional": new_provisional.isoformat(),
                        "steps": steps,
                        "provisional_minutes_built": built,
                        "dirty_minutes_recomputed": dirty_minutes + recomputed,
                    }
                    break
                new = min(target, old + MAX_REFRESH_STEP)
                dirty_minutes += self._materialize(cursor, old, new, provisional)
                cursor.execute("UPDATE storage_rollup_watermark SET watermark = %s", [new])
                steps += 1
        # Live data first, then the backlog of late points' deltas: in bounded transactions (writers wait for each),
        # for at most DELTAS_DRAIN_SECONDS a run, so a large backfill never holds up live refreshes.
        result["deltas_folded"], result["deltas_left"] = self.deltas_drain(
            seconds=settings.STORAGE_DELTAS_DRAIN_SECONDS
        )
        # Then the history of newly registered label keys, also in bounded transactions, once the drain has caught
        # up: while deltas are left, a chunk reads the whole per-series delta table and label delta tables (no
        # index, and bloated by the drain's deletes until it empties them), 4 to 8 s a chunk during `make demo`'s
        # backfill, writers waiting. Queries are exact either way; only keys being built are not used yet.
        if result["deltas_left"]:
            with self.connection.cursor() as cursor:
                result["label_history_chunks"], result["label_keys_building"] = 0, label_keys_building(cursor)
        else:
            result["label_history_chunks"], result["label_keys_building"] = self.label_history_build(
                seconds=settings.STORAGE_LABEL_HISTORY_BUILD_SECONDS
            )
        return result

    def _brin_summarize(self, now: datetime) -> int:
        """Summarize the BRIN ranges on `time` that writes have filled since the last run, in the partitions of the
        days from the watermark's to now's (where this run reads raw points, as do queries of the newest buckets);
        the ranges summarized.

        PostgreSQL's `autosummarize` only queues a request per filled range for autovacuum, in a queue of 256
        shared by the whole server, which keeps requests for databases since dropped; once full, requests are
        dropped ("request for BRIN range summarization ... was not recorded"), and an unsummarized range matches
        every condition. On this machine nearly every range of the day's partition was unsummarized after the
        storage benchmark's backfill (122 of 130), and each dashboard query that read the newest seconds raw read
        a third of the partition: 95 ms against 40 once summarized. Summarizing only reads the new ranges' pages.
        Skipped (logged) when a lock on a partition is not granted within a second: VACUUM holds the same lock,
        and summarizes too.
        """
        with self.connection.cursor() as cursor:
            cursor.execute("SELECT watermark FROM storage_rollup_watermark")
            row = cursor.fetchone()
        if row is None:
            return 0
        first, last = min(row[0], now).date(), now.date()
        days = {first + timedelta(days=offset) for offset in range(min((last - first).days, MAX_BRIN_SUMMARIZE_DAYS))}
        names = [partition_name(day) for day in sorted({*days, last})]
        try:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                cursor.execute("SET LOCAL lock_timeout = '1s'")
                cursor.execute(
                    "SELECT coalesce(sum(brin_summarize_new_values(i.indexrelid)), 0)::int "
                    "FROM unnest(%s::text[]) AS p(name) JOIN pg_index i ON i.indrelid = to_regclass(p.name) "
                    "JOIN pg_class c ON c.oid = i.indexrelid JOIN pg_am a ON a.oid = c.relam AND a.amname = 'brin'",
                    [names],
                )
                summarized = cursor.fetchone()[0]
                cursor.execute("SET LOCAL lock_timeout TO DEFAULT")  # inside a caller's transaction (tests)
                return summarized
        except OperationalError as error:
            # Only lock_timeout: any other error (a statement timeout, a lost connection) fails the run, as the
            # refresh's next statement would.
            if not isinstance(error.__cause__, LockNotAvailable):
                raise
            logger.warning("BRIN summarization skipped this run: %s", error)
            return 0

    def _late_writes_excluded(self, cursor, column: str) -> datetime:
        """Lock as a history chunk or a redelivery does, and return `column` of the watermark row: the
        row FOR SHARE, as writes take it (the refresh and retention, which take it FOR UPDATE, wait; live writes go
        on), then the late-write lock exclusively (no delta writer, drain step or re-aggregating write is open
        meanwhile). Under FOR UPDATE, every write waited for each history chunk (and drain step, which took this
        lock until 2026-12-07): a live source beside a 10-million-point backfill had a p95 of 360 ms."""
        return _watermark_shared_then(cursor, column, sql.SQL("pg_advisory_xact_lock({})").format(_LATE_WRITE_LOCK))

    def label_history_build(self, *, seconds: float) -> tuple[int, int]:
        """Build the history of label keys registered but not ready, a chunk per transaction, for up to `seconds`
        (at least one chunk); (chunks built, keys still building).

        A chunk is one key's label rows in [lower, upper), whole hours of one day, sized so it reads about
        LABEL_HISTORY_CHUNK_ROWS per-series rows: the transaction holds the watermark row FOR SHARE and the
        late-write lock exclusively, so late writers wait for it (live ones do not). In it,
        each tier's label rows of the key in [lower, upper) are rebuilt from the tier's per-series rows plus their
        pending per-series deltas (label_history_aggregate; folding those deltas instead took seconds a chunk
        while `make demo` loaded its history), and the key's label deltas there are deleted (the rows count what
        they add now). Everything else maintains the key's rows from its registration on: the refresh builds new
        buckets, writers append label deltas, the drain folds them, a redelivery re-aggregates whole cells. So once
        the chunks reach the watermark (and the provisional bound past it), every bucket below is exact and the key
        is marked ready (queries use it from the next snapshot on).
        """
        started = time.monotonic()
        chunks = 0
        while True:
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                # The provisional bound too: 1-minute rows below it were rolled up before the key was registered,
                # and are not built again when the watermark passes them.
                bound = self._late_writes_excluded(cursor, "greatest(watermark, provisional)")
                cursor.execute(
                    "SELECT source_id, metric, label_key, built_until FROM storage_label_rollup WHERE NOT ready "
                    "ORDER BY registered_at, source_id, metric, label_key"
                )
                building = cursor.fetchall()
                if not building:
                    return chunks, 0
                source_id, metric, key, built_until = building[0]
                if self._label_history_chunk(cursor, source_id, metric, key, built_until, bound):
                    building = building[1:]
                chunks += 1
            if not building or time.monotonic() - started >= seconds:
                return chunks, len(building)

    def _label_history_chunk(
        self, cursor, source_id: int, metric: str, key: str, built_until: datetime | None, bound: datetime
    ) -> bool:
        """Build one chunk of a key's history (see label_history_build) below `bound` (the watermark, or the
        provisional bound past it); whether the key is ready now."""
        parameters: dict = {"source": source_id, "metric": metric, "key": key, "origin": BUCKET_ORIGIN}
        cursor.execute(
            "SELECT coalesce(array_agg(id), '{}') FROM storage_series WHERE source_id = %(source)s "
            "AND metric = %(metric)s AND labels ? %(key)s",
            parameters,
        )
        parameters["key_series"] = cursor.fetchone()[0]
        pending = self.deltas_pending(cursor)
        lower = self._label_history_next(cursor, parameters, built_until, deltas=SERIES_DELTA_TABLE in pending)
        if lower is None or lower >= bound:
            cursor.execute(
                "UPDATE storage_label_rollup SET ready = true, built_until = %(until)s WHERE source_id = %(source)s "
                "AND metric = %(metric)s AND label_key = %(key)s",
                {**parameters, "until": bound},
            )
            return True
        cursor.execute("SELECT count(*) FROM storage_series WHERE source_id = %s AND metric = %s", [source_id, metric])
        hours = max(1, min(24, LABEL_HISTORY_CHUNK_ROWS // max(1, cursor.fetchone()[0] * 60)))
        day = bucket_floor(lower, TIER_1D.seconds)
        # Whole hours; from the day's start when the day is new (its daily bucket starts there), whatever hour
        # its first data is in.
        lower = day if built_until is None or built_until <= day else bucket_floor(lower, TIER_1H.seconds)
        upper = min(lower + timedelta(hours=hours), day + TIER_1D.interval)
        parameters.update(lower=lower, upper=upper, day=day, day_end=day + TIER_1D.interval)
        if SERIES_DELTA_TABLE in pending:
            label_history_deltas_collect(cursor, parameters)
        key_in_range = sql.SQL(
            "source_id = %(source)s AND metric = %(metric)s AND label_key = %(key)s "
            "AND bucket >= %(lower)s AND bucket < %(upper)s"
        )
        for tier in TIERS_FINE_TO_COARSE:
            tables = [tier.labels_table]
            if label_delta_table(tier) in pending:
                tables.append(label_delta_table(tier))
            for table in tables:
                delete = sql.SQL("DELETE FROM {} WHERE {}").format(sql.Identifier(table), key_in_range)
                cursor.execute(delete, parameters)
            label_cells_rebuild_run(
                cursor, label_history_aggregate(tier, deltas=SERIES_DELTA_TABLE in pending), parameters
            )
        cursor.execute(
            "UPDATE storage_label_rollup SET built_until = %(upper)s WHERE source_id = %(source)s "
            "AND metric = %(metric)s AND label_key = %(key)s",
            parameters,
        )
        return False

    def _label_history_next(self, cursor, parameters: dict, after: datetime | None, *, deltas: bool) -> datetime | None:
        """The earliest bucket at or after `after` (None: any) of any tier row or (with `deltas`: the per-series
        delta table is flagged pending) per-series delta of the key's series, None if there is none: where the next
        chunk starts, skipping time without data."""
        after_sql = sql.SQL("") if after is None else sql.SQL(" AND bucket >= %(after)s")
        firsts = [
            sql.SQL(
                "(SELECT min(f.bucket) FROM storage_series s CROSS JOIN LATERAL (SELECT bucket FROM {table} "
                "WHERE series_id = s.id{after} ORDER BY bucket LIMIT 1) f "
                "WHERE s.id = ANY(%(key_series)s::int[]))"
            ).format(table=sql.Identifier(tier.table), after=after_sql)
            for tier in TIERS_FINE_TO_COARSE
        ]
        if deltas:
            firsts.append(
                sql.SQL("(SELECT min(bucket) FROM {table} WHERE series_id = ANY(%(key_series)s::int[]){after})").format(
                    table=sql.Identifier(SERIES_DELTA_TABLE), after=after_sql
                )
            )
        cursor.execute(sql.SQL("SELECT least({})").format(sql.SQL(", ").join(firsts)), {**parameters, "after": after})
        return cursor.fetchone()[0]

    def deltas_drain(self, *, seconds: float, rows_per_transaction: int | None = None) -> tuple[int, bool]:
        """Fold deltas for up to `seconds` (at least one transaction's worth), about `rows_per_transaction` per table
        per transaction, most recently written first (see DeltasSweep); (rows changed, whether any deltas are left).
        Each delta table is VACUUMed as soon as the drain has emptied it.

        A step holds the watermark row FOR SHARE (no refresh or retention meanwhile), the drain lock exclusively
        (no other drain) and the late-write lock shared: writes, late ones included, go on beside it. Any subset
        of deltas folds exactly, and a delta a writer appends meanwhile is not in the step's snapshot, so it waits
        for a later step. Only the check that lets a table's pending flag be cleared excludes writers: a short
        transaction of its own, after the VACUUM, and only when no delta writer is open (`_deltas_pending_settle`).
        Until 2026-12-07 each step held the late-write lock exclusively, and late writers waited for every step
        (p95 about 0.5 s during a backfill). A step that folds nothing ends the run (the next one goes on).
        """
        rows_per_transaction = rows_per_transaction or DELTAS_FOLD_ROWS
        started = time.monotonic()
        folded = 0
        while True:
            before = folded
            with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
                _watermark_shared_then(
                    cursor,
                    "1",
                    sql.SQL("pg_advisory_xact_lock({}), pg_advisory_xact_lock_shared({})").format(
                        _DRAIN_LOCK, _LATE_WRITE_LOCK
                    ),
                )
                pending = self.deltas_pending(cursor)
                # Label deltas of coarse tiers first (they have the fewest rows, and long-range dashboards read
                # them), then the per-series minutes, each into its minute, hour and day.
                for tier in TIERS_COARSE_TO_FINE:
                    if label_delta_table(tier) in pending:
                        folded += self._deltas_sweep.fold_step(cursor, tier, labels=True, rows=rows_per_transaction)
                if SERIES_DELTA_TABLE in pending:
                    folded += self._deltas_sweep.fold_step(cursor, TIER_1M, labels=False, rows=rows_per_transaction)
                # Committed deltas only: an open writer's are not seen, so an empty table here is only a candidate.
                left = frozenset(table for table in pending if _table_has_rows(cursor, table))
            self._deltas_vacuum(self._deltas_sweep.emptied(left))
            if pending - left:
                left |= self._deltas_pending_settle(pending - left)
            if not left or folded == before or time.monotonic() - started >= seconds:
                return folded, bool(left)

    def _deltas_pending_settle(self, tables: frozenset[str]) -> frozenset[str]:
        """Clear the pending flags of those of `tables` that are empty, with no delta writer open (the late-write
        lock exclusively, so a snapshot holding a delta holds its table's flag: see deltas_pending_read); return
        the others, still pending: those writers appended to since the drain found them empty, or all of them
        when a delta writer is open now. The lock is only tried: waiting for it would hold up every late writer
        behind the open ones, at every step of a backfill's drain (its label delta tables empty at each), and a
        flag left set on an empty table costs a query one read of a few empty pages. Late writers wait for this
        transaction only when it has the lock: one cheap read per table, the drain having VACUUMed them first."""
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            _watermark_shared_then(cursor, "1", sql.SQL("pg_try_advisory_xact_lock({})").format(_LATE_WRITE_LOCK))
            if not cursor.fetchone()[0]:  # the lock's statement
                return tables
            refilled = frozenset(table for table in tables if _table_has_rows(cursor, table))
            if tables - refilled:
                deltas_pending_clear(cursor, sorted(tables - refilled))
        return refilled

    def _deltas_vacuum(self, tables: list[str]) -> None:
        """VACUUM delta tables a drain has emptied, at once: their folded rows are dead tuples that a query reading
        the table would walk (and the drain's own emptiness check) until autovacuum comes, and some servers run
        without it. VACUUM cannot run inside a transaction, so a caller's transaction (tests) leaves them to a
        later drain."""
        if not tables or self.connection.in_atomic_block:
            return
        with self.connection.cursor() as cursor:
            cursor.execute(sql.SQL("VACUUM {}").format(sql.SQL(", ").join(map(sql.Identifier, tables))))
        self._deltas_sweep.vacuumed(tables)

    def _materialize(self, cursor, old: datetime, new: datetime, provisional: datetime) -> int:
        """Make every tier exact below `new`; returns how many dirty provisional minutes were recomputed.

        Unmarked provisional minutes in [old, provisional) are exact already: only the marked ones and the
        minutes past `provisional` are aggregated from raw points.
        """
        # The minute holding `provisional` was rolled up only in part (up to `provisional`): built again whole.
        complete = bucket_floor(provisional, TIER_1M.seconds)
        dirty = self._dirty_minutes(cursor, old, min(new, complete))
        minute_ranges = _consecutive_runs(dirty, TIER_1M.interval)
        if max(old, complete) < new:
            minute_ranges.append((max(old, complete), new))
        for lower, upper in minute_ranges:
            self._tier_build(cursor, TIER_1M, lower, upper)
        for tier in TIERS_FINE_TO_COARSE[1:]:
            lower, upper = bucket_floor(old, tier.seconds), bucket_floor(new, tier.seconds)
            if lower >= upper:
                break  # coarser tiers cannot have completed either
            # The new buckets are built from the finer tier's rows: the minutes' deltas there (late points in an
            # hour or day not yet materialized) are folded into the finer tiers first (the watermark has not moved
            # yet: they go to their minutes, and to their hours where those are materialized).
            self._deltas_fold(
                cursor, series=sql.SQL("bucket >= %(lower)s AND bucket < %(upper)s"), labels=None,
                parameters={"lower": lower, "upper": upper},
            )  # fmt: skip
            self._tier_build(cursor, tier, lower, upper)
        cursor.execute("DELETE FROM storage_rollup_dirty WHERE minute < %s", [new])
        return len(dirty)

    def _provisional_refresh(
        self, cursor, watermark: datetime, provisional: datetime, target: datetime
    ) -> tuple[datetime, int, int]:
        """Recompute the dirty provisional minutes and roll up [provisional, target) provisionally (at most one
        refresh step of it); returns (the new provisional bound, minutes built, dirty minutes recomputed).

        Writers hold the watermark row FOR SHARE until they commit and this transaction holds it FOR UPDATE, so
        no mark or point arrives while it runs: clearing every mark at the end loses none.
        """
        # Every mark is in [watermark, provisional): writers mark only there, and advancing clears those below.
        # The minute holding `provisional` is rolled up only as far as `provisional`, and so is rebuilt.
        dirty = self._dirty_minutes(cursor, watermark, provisional)
        for lower, upper in _consecutive_runs(dirty, TIER_1M.interval):
            self._tier_build(cursor, TIER_1M, lower, min(upper, provisional))
        if dirty:
            cursor.execute("DELETE FROM storage_rollup_dirty")
        new = min(target, provisional + MAX_REFRESH_STEP)
        if new <= provisional:
            return provisional, 0, len(dirty)
        start = max(watermark, bucket_floor(provisional, TIER_1M.seconds))
        self._tier_build(cursor, TIER_1M, start, new)
        cursor.execute("UPDATE storage_rollup_watermark SET provisional = %s", [new])
        return new, -(-(new - start) // TIER_1M.interval), len(dirty)

    def _dirty_minutes(self, cursor, lower: datetime, upper: datetime) -> list[datetime]:
        """The distinct minutes in [lower, upper) that writes marked since their provisional rollup, in order."""
        if lower >= upper:
            return []
        cursor.execute(
            "SELECT DISTINCT minute FROM storage_rollup_dirty WHERE minute >= %s AND minute < %s ORDER BY 1",
            [lower, upper],
        )
        return [row[0] for row in cursor.fetchall()]

    def _tier_build(self, cursor, tier: Tier, lower: datetime, upper: datetime) -> None:
        """(Re)build `tier`'s per-series rows and label rows for buckets in [lower, upper) from its source."""
        # Inserted in bucket order, so a tier's heap stays ordered by time: a dashboard's range (say the
        # last 49 minutes of a 1-minute tier) reads a few contiguous pages instead of visiting each
        # page of the step many times (16k buffer visits for 49k rows in hash-aggregate order).
        cursor.execute(
            sql.SQL(
                "INSERT INTO {table} (bucket, series_id, count, sum, min, max, last, last_time) {select} ORDER BY 1, 2"
            ).format(table=sql.Identifier(tier.table), select=_materialize_from(tier))
            + _upsert_suffix(),
            {"lower": lower, "upper": upper},
        )
        cursor.execute(
            label_aggregate(tier, sql.SQL("t.bucket >= %(lower)s AND t.bucket < %(upper)s")),
            {"lower": lower, "upper": upper},
        )

    # --- retention ----------------------------------------------------------------------------
    def retention_apply(self, *, now: datetime | None = None) -> RetentionResult:
        """Drop raw partitions older than every source's retention; delete the rest row by row."""
        now = now or timezone.now()
        result = RetentionResult()
        keep_days = self.max_retention_days("points")
        cutoff = (now - timedelta(days=keep_days)).astimezone(UTC).date()
        with transaction.atomic(using=self.alias), self.connection.cursor() as cursor:
            # The watermark row first, FOR UPDATE: every write holds it FOR SHARE before it touches a partition, so
            # no write is between its partitions and its COPY while one is dropped (the lock order of _write_begin).
            cursor.execute("SELECT watermark FROM storage_rollup_watermark FOR UPDATE")
            # Rows are deleted by bucket below: every delta is folded into its row first, so none outlives it.
            self._deltas_fold_all(cursor)
            result.dropped_partitions = self.partitions_drop_before(cursor, cutoff)
            deleted = self._delete_expired_rows(cursor, table="points", now=now, shorter_than_days=keep_days)
            if deleted:
                result.deleted_rows["points"] = deleted
            for tier in (TIER_1M, TIER_1H, TIER_1D):
                deleted = self._delete_expired_rows(cursor, table=tier.table, now=now)
                if deleted:
                    result.deleted_rows[tier.table] = deleted
                deleted = label_rows_delete_expired(
                    cursor, tier=tier, now=now, default_days=self.retention_days()[tier.table]
                )
                if deleted:
                    result.deleted_rows[tier.labels_table] = deleted
            if result.dropped_partitions or result.deleted_rows:
                transaction.on_commit(generation_bump, using=self.alias)
        return result
