"""Label rollups on TimescaleDB: continuous aggregates grouped by label value, as the plain backend's label tables.

"Average by facility, last 24 hours by minute" would otherwise aggregate one rollup row per series and minute. For
every (source, metric, label key) with at most STORAGE_LABEL_ROLLUP_MAX_VALUES values (registered in
`storage_label_rollup`), `storage_series_labels` holds each series' value of that key, and:
- `points_1m_labels` is a continuous aggregate of `points_1m` joined to `storage_series_labels`, grouped by
  (bucket, source, metric, label key, label value); `points_1h_labels` and `points_1d_labels` aggregate the finer
  label tier, as the per-series tiers do. Same columns as the plain backend's label tables, so the query engine
  reads either the same way, real-time aggregation included;
- a continuous aggregate does not follow changes to the table it joins, so a series' label row must exist before
  its rollups are materialized into the label tiers. Rows are added by the refresh (under the maintenance lock)
  when series appear; points of a new series that an earlier refresh materialized without its row are
  re-materialized from its first point (a forced refresh, usually a minute or two), a new key's history from the
  retention horizon. Only then does `timescaledb.label_ready_through` (a series id) move past those series, and the
  engine reads label rows only for selections whose series are all at or below it (`label_keys_ready`), in the
  same snapshot as the rows.
"""

from __future__ import annotations

from datetime import UTC, datetime

from django.conf import settings
from psycopg import sql

from apps.storage.backends.base import ROLLUP_COLUMNS
from apps.storage.tiers import TIER_1D, TIER_1H, TIER_1M, TIERS_FINE_TO_COARSE, Tier

# What each label tier is built from (a continuous aggregate may read another one).
LABEL_SOURCES = {TIER_1M: "points_1m", TIER_1H: TIER_1M.labels_table, TIER_1D: TIER_1H.labels_table}
LABEL_TABLES = tuple(tier.labels_table for tier in TIERS_FINE_TO_COARSE)
SYNCED_KEY = "timescaledb.label_sync"  # "<newest series id>:<limit>" last synced
SYNCED_THROUGH_KEY = "timescaledb.label_synced_through"  # series id whose label rows exist
READY_KEY = "timescaledb.label_ready_through"  # series id whose label rows exist and are materialized
REPAIR_KEY = "timescaledb.label_repair_from"  # time from which the label tiers must be re-materialized
REBUILD_ALL = datetime(1, 1, 1, tzinfo=UTC)  # a repair from the retention horizon
_AGGREGATES = (
    "sum({t}count)::bigint AS count, sum({t}sum) AS sum, min({t}min) AS min, max({t}max) AS max, "
    "last({t}last, {t}last_time) AS last, max({t}last_time) AS last_time"
)


def label_cagg_sql(tier: Tier) -> sql.Composed:
    """The label tier's continuous aggregate (real-time, created empty)."""
    if tier is TIER_1M:
        body = (
            "SELECT time_bucket({width}, t.bucket) AS bucket, l.source_id, l.metric, l.label_key, l.label_value, "  # noqa: S608 (constants)
            + _AGGREGATES.format(t="t.")
            + " FROM {source} t JOIN storage_series_labels l ON l.series_id = t.series_id GROUP BY 1, 2, 3, 4, 5"
        )
    else:
        body = (
            "SELECT time_bucket({width}, bucket) AS bucket, source_id, metric, label_key, label_value, "  # noqa: S608 (constants)
            + _AGGREGATES.format(t="")
            + " FROM {source} GROUP BY 1, 2, 3, 4, 5"
        )
    return sql.SQL(
        "CREATE MATERIALIZED VIEW IF NOT EXISTS {table} WITH (timescaledb.continuous, "
        "timescaledb.materialized_only = false) AS " + body + " WITH NO DATA"
    ).format(
        table=sql.Identifier(tier.labels_table),
        width=sql.Literal(tier.interval),
        source=sql.Identifier(LABEL_SOURCES[tier]),
    )


def label_rollups_install(cursor) -> None:
    """The registry, the series' label values and the three label tiers (idempotent)."""
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS storage_label_rollup (source_id integer NOT NULL, metric text NOT NULL, "
        "label_key text NOT NULL, registered_at timestamptz NOT NULL DEFAULT now(), "
        "PRIMARY KEY (source_id, metric, label_key))"
    )
    cursor.execute(
        "CREATE TABLE IF NOT EXISTS storage_series_labels (series_id integer NOT NULL, label_key text NOT NULL, "
        "source_id integer NOT NULL, metric text NOT NULL, label_value text NOT NULL, "
        "PRIMARY KEY (series_id, label_key))"
    )
    for tier in TIERS_FINE_TO_COARSE:
        cursor.execute(label_cagg_sql(tier))
    assert "series_id" in ROLLUP_COLUMNS  # the label tiers' columns are ROLLUP_COLUMNS without it, plus the label


def label_keys_ready(cursor, *, metric: str, key: str, source_ids) -> bool:
    """Whether label rows answer for (metric, key) in these sources: every source registered, and every series of
    them materialized into the label tiers (series created since are not yet)."""
    source_ids = sorted(set(source_ids))
    cursor.execute(
        "SELECT (SELECT count(*) FROM storage_label_rollup WHERE metric = %(metric)s AND label_key = %(key)s "
        "AND source_id = ANY(%(sources)s::int[])) = %(count)s "
        "AND (SELECT coalesce(max(id), 0) FROM storage_series WHERE metric = %(metric)s "
        "AND source_id = ANY(%(sources)s::int[])) "
        "<= coalesce((SELECT value::bigint FROM storage_meta WHERE key = %(ready)s), 0)",
        {"metric": metric, "key": key, "sources": source_ids, "count": len(source_ids), "ready": READY_KEY},
    )
    return bool(cursor.fetchone()[0])


def label_rollups_sync(cursor, *, delete_rows) -> None:
    """Register keys with few values and add label rows for new series; unregister keys that grew past the limit.

    Runs in a transaction under the maintenance lock, before the refresh; notes in storage_meta what the label tiers
    must re-materialize (`label_repair`). `delete_rows(cursor, table, condition, parameters)` deletes materialized
    label rows without logging them as changes. Skipped while the newest series id and the limit are unchanged.
    """
    limit = settings.STORAGE_LABEL_ROLLUP_MAX_VALUES
    cursor.execute("SELECT coalesce(max(id), 0) FROM storage_series")
    newest = cursor.fetchone()[0]
    state = f"{newest}:{limit}"
    if _meta(cursor, SYNCED_KEY) == state:
        return
    wanted: set[tuple[int, str, str]] = set()
    if limit:
        cursor.execute(
            "SELECT s.source_id, s.metric, k.key FROM storage_series s CROSS JOIN jsonb_object_keys(s.labels) "
            "AS k(key) WHERE s.id <= %s GROUP BY 1, 2, 3 HAVING count(DISTINCT s.labels->>k.key) <= %s",
            [newest, limit],
        )
        wanted = {tuple(item) for item in cursor.fetchall()}
    cursor.execute("SELECT source_id, metric, label_key FROM storage_label_rollup")
    registered = {tuple(item) for item in cursor.fetchall()}
    for source_id, metric, key in sorted(registered - wanted):
        parameters = {"source": source_id, "metric": metric, "key": key}
        condition = "source_id = %(source)s AND metric = %(metric)s AND label_key = %(key)s"
        cursor.execute(f"DELETE FROM storage_label_rollup WHERE {condition}", parameters)  # noqa: S608 (constant)
        cursor.execute(f"DELETE FROM storage_series_labels WHERE {condition}", parameters)  # noqa: S608 (constant)
        for table in LABEL_TABLES:
            delete_rows(cursor, table, condition, parameters)
    added = sorted(wanted - registered)
    synced_through = int(_meta(cursor, SYNCED_THROUGH_KEY) or 0)
    repair_from: datetime | None = None
    if added:
        cursor.executemany("INSERT INTO storage_label_rollup (source_id, metric, label_key) VALUES (%s, %s, %s)", added)
        # A new key's history: every series of it gets its row, and the label tiers are rebuilt from the horizon.
        cursor.execute(
            "INSERT INTO storage_series_labels (series_id, label_key, source_id, metric, label_value) "
            "SELECT s.id, k.key, s.source_id, s.metric, s.labels->>k.key FROM storage_series s "
            "JOIN unnest(%s::int[], %s::text[], %s::text[]) AS k(source_id, metric, key) "
            "ON s.source_id = k.source_id AND s.metric = k.metric AND s.labels ? k.key WHERE s.id <= %s "
            "ON CONFLICT DO NOTHING",
            [[item[0] for item in added], [item[1] for item in added], [item[2] for item in added], newest],
        )
        repair_from = REBUILD_ALL
    # New series of keys registered before: their rows, and their points re-materialized from the first one.
    cursor.execute(
        "WITH added AS (INSERT INTO storage_series_labels (series_id, label_key, source_id, metric, label_value) "
        "SELECT s.id, r.label_key, s.source_id, s.metric, s.labels->>r.label_key FROM storage_series s "
        "JOIN storage_label_rollup r ON r.source_id = s.source_id AND r.metric = s.metric AND s.labels ? r.label_key "
        "WHERE s.id > %s AND s.id <= %s ON CONFLICT DO NOTHING RETURNING series_id) "
        "SELECT min(first.time) FROM (SELECT DISTINCT series_id FROM added) AS a "
        "CROSS JOIN LATERAL (SELECT p.time FROM points p WHERE p.series_id = a.series_id ORDER BY p.time LIMIT 1) "
        "AS first",
        [synced_through, newest],
    )
    first_point = cursor.fetchone()[0]
    if first_point is not None and (repair_from is None or first_point < repair_from):
        repair_from = first_point
    if repair_from is not None:
        pending = label_repair_pending(cursor)
        if pending is None or repair_from < pending:
            _meta_set(cursor, REPAIR_KEY, repair_from.isoformat())
    _meta_set(cursor, SYNCED_THROUGH_KEY, str(newest))
    _meta_set(cursor, SYNCED_KEY, state)


def label_repair_pending(cursor) -> datetime | None:
    """The time from which the label tiers must be re-materialized, if any (see `label_rollups_sync`)."""
    value = _meta(cursor, REPAIR_KEY)
    if value is None:
        return None
    cursor.execute("SELECT %s::timestamptz", [value])
    return cursor.fetchone()[0]


def label_repair_done(cursor) -> None:
    """The label tiers are materialized for every synced series: queries may read them for those series."""
    cursor.execute("DELETE FROM storage_meta WHERE key = %s", [REPAIR_KEY])
    synced = _meta(cursor, SYNCED_THROUGH_KEY) or "0"
    if _meta(cursor, READY_KEY) != synced:
        _meta_set(cursor, READY_KEY, synced)


def _meta(cursor, key: str) -> str | None:
    cursor.execute("SELECT value FROM storage_meta WHERE key = %s", [key])
    row = cursor.fetchone()
    return row[0] if row else None


def _meta_set(cursor, key: str, value: str) -> None:
    cursor.execute(
        "INSERT INTO storage_meta (key, value) VALUES (%s, %s) ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        [key, value],
    )
