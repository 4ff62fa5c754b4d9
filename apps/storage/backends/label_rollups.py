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

from collections.abc import Sequence
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


# The pending per-series deltas of a history chunk's key and day, copied once per chunk: the delta table has no
# index, and each of the three tiers' statements scanned all of it (a second each during `make demo`'s backfill).
LABEL_HISTORY_DELTAS = "storage_label_history_deltas"


def label_history_deltas_collect(cursor, parameters: dict) -> None:
    """Copy the per-series deltas of the key's series (%(source)s, %(metric)s, %(key)s) in the day
    [%(day)s, %(day_end)s) to LABEL_HISTORY_DELTAS (emptied at commit), for label_history_aggregate."""
    from apps.storage.backends.deltas import DELTA_COLUMNS, SERIES_DELTA_TABLE

    cursor.execute(
        sql.SQL("CREATE TEMP TABLE IF NOT EXISTS {} (LIKE {}) ON COMMIT DELETE ROWS").format(
            sql.Identifier(LABEL_HISTORY_DELTAS), sql.Identifier(SERIES_DELTA_TABLE)
        )
    )
    # Emptied at commit, and here too: a caller's transaction (tests) may build several chunks before it commits.
    cursor.execute(sql.SQL("DELETE FROM {}").format(sql.Identifier(LABEL_HISTORY_DELTAS)))
    cursor.execute(
        sql.SQL(
            "INSERT INTO {copy} ({columns}) SELECT {columns} FROM {deltas} WHERE series_id IN (SELECT id FROM "
            "storage_series WHERE source_id = %(source)s AND metric = %(metric)s AND labels ? %(key)s) "
            "AND bucket >= %(day)s AND bucket < %(day_end)s"
        ).format(
            copy=sql.Identifier(LABEL_HISTORY_DELTAS),
            columns=sql.SQL(DELTA_COLUMNS),
            deltas=sql.Identifier(SERIES_DELTA_TABLE),
        ),
        parameters,
    )


def label_history_aggregate(tier: Tier, *, deltas: bool = True) -> sql.Composed:
    """(Re)build `tier`'s label rows of one key (%(source)s, %(metric)s, %(key)s) for buckets in [%(lower)s,
    %(upper)s), whole hours of one day, from its series' rows plus their pending per-series deltas (a minute's
    delta counts in its hour and day where those are materialized, as the drain folds it): exact, without folding
    anything. With `deltas`, label_history_deltas_collect has copied that day's deltas in this transaction
    (without: the per-series delta table is flagged empty, the rows alone). The caller deletes the key's rows and
    label deltas in that range first, in the same transaction (the rows now count what those deltas add).
    """
    from apps.storage.backends.deltas import DELTA_COLUMNS, series_delta_bucket, series_delta_materialized

    key_series = sql.SQL(
        "SELECT id FROM storage_series WHERE source_id = %(source)s AND metric = %(metric)s AND labels ? %(key)s"
    )
    union = sql.SQL("")
    if deltas:
        union = sql.SQL(
            " UNION ALL SELECT {delta_bucket}, series_id, count, sum, min, max, last, last_time FROM {deltas} "
            "WHERE series_id IN ({key_series}) AND {delta_bucket} >= %(lower)s "
            "AND {delta_bucket} < %(upper)s AND {materialized}"
        ).format(
            delta_bucket=series_delta_bucket(tier),
            deltas=sql.Identifier(LABEL_HISTORY_DELTAS),
            key_series=key_series,
            materialized=series_delta_materialized(tier),
        )
    rows = sql.SQL(
        "(SELECT {columns} FROM {table} WHERE series_id IN ({key_series}) "
        "AND bucket >= %(lower)s AND bucket < %(upper)s{union})"
    ).format(columns=sql.SQL(DELTA_COLUMNS), table=sql.Identifier(tier.table), key_series=key_series, union=union)
    return label_aggregate(
        tier, sql.SQL("s.source_id = %(source)s AND s.metric = %(metric)s AND r.label_key = %(key)s"), rows
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
