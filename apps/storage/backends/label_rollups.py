"""Label rollups (plain PostgreSQL): each tier's rows also kept per (source, metric, label key, label value).

For every (source, metric, label key) in `storage_label_rollup` (keys with at most STORAGE_LABEL_ROLLUP_MAX_VALUES
values), each tier also has rows per label value (`points_1m_labels`, ...), built from the tier's own rows in the
same transactions that build, re-aggregate or fold deltas into them, so they follow the same rule. "Average by
facility over 24 hours by minute" then reads 5 rows per minute instead of one per device. A key is registered (and
its history built) by the refresh job when series appear, and dropped with its rows when it grows past the limit.
Queries read the watermark, the registry and the rows in one snapshot (REPEATABLE READ), so they see a key's rows
complete or not at all.

A key registered on a source that already has history is built online, not in the refresh transaction (which
holds the watermark row, so every write waited for the whole history: 15 to 40 s for the demo's 30 keys). The
registry row starts not `ready` (unless the series have no rows to build from yet); writers, the refresh,
retention and late-point re-aggregation maintain its rows like any key's, queries do not use them, and the
refresh builds its history a chunk at a time (see `PostgresBackend.label_history_build`), then marks it ready in
the chunk's transaction.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime

from django.conf import settings
from psycopg import sql

from apps.storage.backends.base import RETENTION_FIELDS, ROLLUP_COLUMNS
from apps.storage.tiers import TIERS_FINE_TO_COARSE, Tier

_LABEL_ROLLUP_SOURCE_COLUMNS = "source_id integer NOT NULL, metric text NOT NULL, label_key text NOT NULL, " \
    "label_value text NOT NULL, "  # fmt: skip


def label_aggregate(tier: Tier, condition: sql.Composable, rows: sql.Composable | None = None) -> sql.Composed:
    """(Re)build `tier`'s label rows from its per-series rows that match `condition`, for registered keys.

    Groups are whole (source, metric, key, value, bucket) cells: the condition must select every series row
    of a cell (conditions are on source, metric and bucket only), so an upsert replaces the cell exactly.
    `rows` replaces the tier's table as what is aggregated (a subquery shaped like it).
    """
    return sql.SQL(
        "INSERT INTO {labels} (source_id, metric, label_key, label_value, bucket, count, sum, min, max, last, "
        "last_time) SELECT s.source_id, s.metric, r.label_key, s.labels->>r.label_key, t.bucket, "
        "sum(t.count)::bigint, sum(t.sum), min(t.min), max(t.max), (array_agg(t.last ORDER BY t.last_time DESC))[1], "
        "max(t.last_time) FROM {table} t JOIN storage_series s ON s.id = t.series_id "
        "JOIN storage_label_rollup r ON r.source_id = s.source_id AND r.metric = s.metric AND s.labels ? r.label_key "
        "WHERE {condition} GROUP BY 1, 2, 3, 4, 5 ORDER BY 5 "
        "ON CONFLICT (source_id, metric, label_key, label_value, bucket) DO UPDATE SET count = EXCLUDED.count, "
        "sum = EXCLUDED.sum, min = EXCLUDED.min, max = EXCLUDED.max, last = EXCLUDED.last, "
        "last_time = EXCLUDED.last_time"
    ).format(labels=sql.Identifier(tier.labels_table), table=rows or sql.Identifier(tier.table), condition=condition)


def label_cells_rebuild(
    tier: Tier,
    *,
    series: sql.Composable,
    buckets: Callable[[sql.Composable], sql.Composable],
    cells: sql.Composable,
    deltas: bool,
) -> sql.Composed:
    """(Re)build `tier`'s label cells that `cells` selects (a condition on s.source_id, s.metric, r.label_key and
    t.bucket that takes whole cells) from the tier's rows whose series match `series` (a condition on series_id) in
    the buckets where `buckets(column)` holds, plus, with `deltas`, those series' pending per-series deltas that
    series_deltas_collect copied in this transaction (a minute's delta counts in its hour and day where those are
    materialized, as the drain folds it), merged per series and bucket first (a day's cells would otherwise join
    every minute's delta to its series). Exact without folding anything; without `deltas` (the per-series delta
    table is flagged empty) the rows alone. The caller deletes the cells' label deltas in the same transaction:
    the rebuilt rows count what those add.
    """
    from apps.storage.backends.deltas import (
        DELTA_COLUMNS,
        SERIES_DELTAS_COPY,
        series_delta_bucket,
        series_delta_materialized,
    )

    union = sql.SQL("")
    if deltas:
        delta_bucket = series_delta_bucket(tier)
        union = sql.SQL(
            " UNION ALL SELECT {delta_bucket}, series_id, sum(count)::bigint, sum(sum), min(min), max(max), "
            "(array_agg(last ORDER BY last_time DESC))[1], max(last_time) FROM {copy} "
            "WHERE {series} AND {in_buckets} AND {materialized} GROUP BY 1, 2"
        ).format(
            delta_bucket=delta_bucket,
            copy=sql.Identifier(SERIES_DELTAS_COPY),
            series=series,
            in_buckets=buckets(delta_bucket),
            materialized=series_delta_materialized(tier),
        )
    rows = sql.SQL("(SELECT {columns} FROM {table} WHERE {series} AND {in_buckets}{union})").format(
        columns=sql.SQL(DELTA_COLUMNS),
        table=sql.Identifier(tier.table),
        series=series,
        in_buckets=buckets(sql.Identifier("bucket")),
        union=union,
    )
    return label_aggregate(tier, cells, rows)


def label_cells_rebuild_run(cursor, statement: sql.Composed, parameters: dict) -> None:
    """Run a label_cells_rebuild statement with hash joins only. Its estimates (a label's share of the series, the
    delta table's statistics, which lag behind a backfill) said one series where a cell has a thousand, and the
    plan joined the cell's rows, re-aggregated once per series, in a nested loop: 98 s for one daily cell during
    a 10-million-point backfill. Hash joins read each input once, whatever the estimates. JIT stays off for the
    rest of the transaction: the one nested loop left (a cell's key, `labels ? label_key`) then costs the planner's
    penalty, which made it compile each of these few-row statements (200 ms)."""
    cursor.execute("SET LOCAL enable_nestloop = off; SET LOCAL jit = off")
    cursor.execute(statement, parameters)
    cursor.execute("SET LOCAL enable_nestloop TO DEFAULT")


# The key's series, as an array read once per chunk (%(key_series)s): a condition, not a subquery, so that no plan
# joins storage_series to every row of a delta table whose statistics lag behind a backfill.
_KEY_SERIES = sql.SQL("series_id = ANY(%(key_series)s::int[])")


def label_history_deltas_collect(cursor, parameters: dict) -> None:
    """Copy the per-series deltas of the key's series (%(key_series)s) in the day [%(day)s, %(day_end)s) for
    label_history_aggregate (series_deltas_collect)."""
    from apps.storage.backends.deltas import series_deltas_collect

    condition = sql.SQL("{} AND bucket >= %(day)s AND bucket < %(day_end)s").format(_KEY_SERIES)
    series_deltas_collect(cursor, condition, parameters)


def label_history_aggregate(tier: Tier, *, deltas: bool = True) -> sql.Composed:
    """(Re)build `tier`'s label rows of one key (%(source)s, %(metric)s, %(key)s; its series %(key_series)s) for
    buckets in [%(lower)s, %(upper)s), whole hours of one day, from its series' rows plus (with `deltas`, after
    label_history_deltas_collect) their pending per-series deltas: label_cells_rebuild. The caller deletes the
    key's rows and label deltas in that range first, in the same transaction.
    """
    return label_cells_rebuild(
        tier,
        series=_KEY_SERIES,
        buckets=lambda column: sql.SQL("{column} >= %(lower)s AND {column} < %(upper)s").format(column=column),
        cells=sql.SQL("s.source_id = %(source)s AND s.metric = %(metric)s AND r.label_key = %(key)s"),
        deltas=deltas,
    )


def label_rows_delete(cursor, tier: Tier, parameters: dict) -> None:
    """Delete `tier`'s label rows, and label deltas, of one (source, metric, label key)."""
    from apps.storage.backends.deltas import label_delta_table

    for table in (tier.labels_table, label_delta_table(tier)):
        cursor.execute(
            sql.SQL(
                "DELETE FROM {} WHERE source_id = %(source)s AND metric = %(metric)s AND label_key = %(key)s"
            ).format(sql.Identifier(table)),
            parameters,
        )


def label_rollups_install(cursor) -> None:
    """The label rollup tables and their registry (idempotent; databases installed before them get them too)."""
    for tier in TIERS_FINE_TO_COARSE:
        cursor.execute(
            sql.SQL(
                "CREATE TABLE IF NOT EXISTS {} ({}{}, PRIMARY KEY (source_id, metric, label_key, label_value, bucket))"
            ).format(
                sql.Identifier(tier.labels_table),
                sql.SQL(_LABEL_ROLLUP_SOURCE_COLUMNS),
                sql.SQL(ROLLUP_COLUMNS.replace("series_id integer NOT NULL, ", "")),
            )
        )
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS storage_label_rollup (source_id integer NOT NULL, metric text NOT NULL, "
        "label_key text NOT NULL, registered_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (source_id, metric, label_key))"
    )
    # ready: queries may read the key's rows (its history is built); built_until: the history is built below this
    # bucket (NULL: not started). Keys registered before these columns were built whole at registration.
    cursor.execute(
        "ALTER TABLE storage_label_rollup ADD COLUMN IF NOT EXISTS ready boolean NOT NULL DEFAULT true, "
        "ADD COLUMN IF NOT EXISTS built_until timestamptz"
    )


def label_keys_registered(cursor, *, metric: str, key: str, source_ids: Sequence[int]) -> bool:
    """Whether every one of these sources has label rollups for (metric, key), their history built."""
    cursor.execute(
        "SELECT count(*) FROM storage_label_rollup WHERE metric = %s AND label_key = %s AND source_id = ANY(%s::int[]) "
        "AND ready",
        [metric, key, list(source_ids)],
    )
    return cursor.fetchone()[0] == len(set(source_ids))


def label_keys_building(cursor) -> int:
    """How many registered keys still have their history to build (queries do not read them yet)."""
    cursor.execute("SELECT count(*) FROM storage_label_rollup WHERE NOT ready")
    return cursor.fetchone()[0]


def label_rollups_sync(cursor) -> None:
    """Register label keys with few values (not ready when their series have history to build, which is built
    later, see the module docstring), unregister keys that grew past the limit.

    Runs inside the refresh transaction (the watermark row is locked, so no write is open meanwhile). Only new
    series change the answer, so it is skipped while the newest series id and the limit are as at the last sync.
    """
    limit = settings.STORAGE_LABEL_ROLLUP_MAX_VALUES
    cursor.execute("SELECT coalesce(max(id), 0) FROM storage_series")
    state = f"{cursor.fetchone()[0]}:{limit}"
    cursor.execute("SELECT value FROM storage_meta WHERE key = 'label_rollup_sync'")
    row = cursor.fetchone()
    if row is not None and row[0] == state:
        return
    wanted: set[tuple[int, str, str]] = set()
    if limit:
        cursor.execute(
            "SELECT s.source_id, s.metric, k.key FROM storage_series s CROSS JOIN jsonb_object_keys(s.labels) "
            "AS k(key) GROUP BY 1, 2, 3 HAVING count(DISTINCT s.labels->>k.key) <= %s",
            [limit],
        )
        wanted = {tuple(item) for item in cursor.fetchall()}
    cursor.execute("SELECT source_id, metric, label_key FROM storage_label_rollup")
    registered = {tuple(item) for item in cursor.fetchall()}
    for source_id, metric, key in sorted(registered - wanted):
        # Queries read the registry and the rows in one snapshot, so both can go at once.
        parameters = {"source": source_id, "metric": metric, "key": key}
        cursor.execute(
            "DELETE FROM storage_label_rollup WHERE source_id = %(source)s AND metric = %(metric)s "
            "AND label_key = %(key)s",
            parameters,
        )
        for tier in TIERS_FINE_TO_COARSE:
            label_rows_delete(cursor, tier, parameters)
    history: dict[tuple[int, str], bool] = {}
    for source_id, metric, key in sorted(wanted - registered):
        # From now on every write, fold and build maintains the key's rows; a history, if there is one, is built
        # in chunks (ready at once when the series have no rollup rows yet and no delta can be waiting).
        if (source_id, metric) not in history:
            history[(source_id, metric)] = _has_history(cursor, source_id, metric)
        cursor.execute(
            "INSERT INTO storage_label_rollup (source_id, metric, label_key, ready) VALUES (%s, %s, %s, %s)",
            [source_id, metric, key, not history[(source_id, metric)]],
        )
    cursor.execute(
        "INSERT INTO storage_meta (key, value) VALUES ('label_rollup_sync', %s) "
        "ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        [state],
    )


def _has_history(cursor, source_id: int, metric: str) -> bool:
    """Whether a new key of (source, metric) may have rows to build: its series have rows in some tier, or
    per-series deltas may be waiting (the delta table's pending flag is set; it has no index to ask it per series).
    """
    from apps.storage.backends.deltas import SERIES_DELTA_TABLE, deltas_pending_read

    if SERIES_DELTA_TABLE in deltas_pending_read(cursor):
        return True
    rows = sql.SQL(" OR ").join(
        sql.SQL("EXISTS (SELECT 1 FROM {} WHERE series_id = s.id)").format(sql.Identifier(tier.table))
        for tier in TIERS_FINE_TO_COARSE
    )
    cursor.execute(
        sql.SQL(
            "SELECT EXISTS (SELECT 1 FROM storage_series s WHERE s.source_id = %s AND s.metric = %s AND ({}))"
        ).format(rows),
        [source_id, metric],
    )
    return cursor.fetchone()[0]


def label_rows_delete_expired(cursor, *, tier: Tier, now: datetime, default_days: int) -> int:
    """A tier's label rows go with the same per-source cutoff as its per-series rows; how many were deleted."""
    field_name, _ = RETENTION_FIELDS[tier.table]
    cursor.execute(
        sql.SQL(
            "DELETE FROM {labels} t USING sources_source src WHERE src.id = t.source_id "
            "AND t.bucket < %s::timestamptz - make_interval(days => coalesce(src.{field}, %s))"
        ).format(labels=sql.Identifier(tier.labels_table), field=sql.Identifier(field_name)),
        [now, default_days],
    )
    return cursor.rowcount or 0
