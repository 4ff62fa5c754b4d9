"""Writes for storage: resolve series ids (creating missing series in bulk) and write points."""

from __future__ import annotations

import json
from collections.abc import Iterable, Mapping
from operator import itemgetter

from django.db import connections, transaction
from django.utils import timezone

from apps.storage.backends import backend_for
from apps.storage.backends.base import Points, WriteResult
from apps.storage.columns import PointColumns
from apps.storage.metrics import POINTS_WRITTEN
from apps.storage.query.generations import data_written

SeriesKey = tuple[int, str, str]  # (source id, metric, canonical labels JSON)
# What a series key may hold: ingest refuses records beyond these, and the query API and pickers refuse parameters
# beyond them (nothing longer can be stored, so nothing longer can match).
METRIC_MAX_LENGTH = 200  # storage_series.metric is varchar(200)
LABEL_NAME_MAX_LENGTH = 100
LABEL_VALUE_MAX_LENGTH = 256
_SERIES_CACHE_LIMIT = 200_000
_series_cache: dict[SeriesKey, int] = {}


def series_key(*, source_id: int, metric: str, labels: Mapping[str, str]) -> SeriesKey:
    """The cache key of a series: labels as sorted, compact JSON."""
    return (source_id, metric, json.dumps(labels, sort_keys=True, separators=(",", ":")))


def series_resolve(*, keys: Iterable[SeriesKey], create: bool = True, alias: str = "default") -> dict[SeriesKey, int]:
    """Ids for series keys, from the in-process cache or the database; missing series are created in bulk.

    With `create=False` only existing series are returned (the caller checks guard rails before creating).
    """
    wanted = set(keys)
    found = {key: _series_cache[key] for key in wanted if key in _series_cache}
    missing = sorted(wanted - found.keys())
    if missing:
        source_ids, metrics, labels = (list(column) for column in zip(*missing, strict=True))
        with connections[alias].cursor() as cursor:
            if create:
                cursor.execute(
                    "INSERT INTO storage_series (source_id, metric, labels, created_at) "
                    "SELECT s, m, l::jsonb, now() FROM unnest(%s::bigint[], %s::text[], %s::text[]) AS k(s, m, l) "
                    "ON CONFLICT ON CONSTRAINT storage_series_unique_key DO NOTHING",
                    [source_ids, metrics, labels],
                )
                if cursor.rowcount:
                    # New series are in answers (empty) before their points are: shared answers no longer match.
                    _data_written_on_commit(tuple(set(source_ids)), None, alias)
            cursor.execute(
                "SELECT s.id, s.source_id, s.metric, s.labels::text FROM storage_series s "
                "JOIN unnest(%s::bigint[], %s::text[], %s::text[]) AS k(s, m, l) "
                "ON s.source_id = k.s AND s.metric = k.m AND s.labels = k.l::jsonb",
                [source_ids, metrics, labels],
            )
            rows = cursor.fetchall()
        resolved = {}
        for series_id, source_id, metric, labels_text in rows:
            key = series_key(source_id=source_id, metric=metric, labels=json.loads(labels_text))
            resolved[key] = series_id
        found.update(resolved)

        def remember() -> None:
            # Only once committed: the ids of series created by a write that then rolls back name nothing, and a
            # later write given them would store points no series points to (acknowledged, and never readable).
            if len(_series_cache) + len(resolved) > _SERIES_CACHE_LIMIT:
                _series_cache.clear()
            _series_cache.update(resolved)

        transaction.on_commit(remember, using=alias)
    return found


def series_count(*, source_id: int, alias: str = "default") -> int:
    """How many series a source has (for the per-source series limit)."""
    with connections[alias].cursor() as cursor:
        cursor.execute("SELECT count(*) FROM storage_series WHERE source_id = %s", [source_id])
        return cursor.fetchone()[0]


def series_cache_clear() -> None:
    """Forget cached series ids (after series are deleted)."""
    _series_cache.clear()


def points_write(
    *,
    points: Points,
    schema_id: int | None = None,
    source_ids: Iterable[int] | None = None,
    alias: str = "default",
) -> WriteResult:
    """Write (series_id, time, value) points; writing the same series and time again replaces the value.

    `schema_id` is the source schema version that accepted the points, kept per point for tracing. Once committed,
    shared query answers of `source_ids` (the sources the series belong to; every source when not given) that
    were computed before no longer match (apps/storage/query/shared.py): writers should name their sources.
    """
    result = backend_for(alias).points_write(points, schema_id=schema_id)
    POINTS_WRITTEN.inc(result.written)
    if len(points):
        latest = max(points.moments) if isinstance(points, PointColumns) else max(map(itemgetter(1), points))
        _data_written_on_commit(None if source_ids is None else tuple(source_ids), latest, alias)
    return result


def _data_written_on_commit(source_ids: tuple[int, ...] | None, latest, alias: str) -> None:
    """Tell shared query answers once the write commits, and, inside a transaction, at once as well: a read in the
    writer's own transaction (a service that writes then reads, a test) sees the points before they commit."""
    if connections[alias].in_atomic_block:
        data_written(source_ids=source_ids, latest=latest)
    transaction.on_commit(lambda: data_written(source_ids=source_ids, latest=latest), using=alias)


def rollups_refresh(*, alias: str = "default") -> dict:
    """Bring the rollup tiers up to date (periodic task)."""
    return backend_for(alias).rollup_refresh()


def retention_apply(*, alias: str = "default") -> dict:
    """Apply retention to raw points and every rollup tier (periodic task)."""
    result = backend_for(alias).retention_apply()
    return {"dropped_partitions": result.dropped_partitions, "deleted_rows": result.deleted_rows}


def partitions_prepare(*, alias: str = "default") -> list[str]:
    """Create the coming days' partitions ahead of time (plain PostgreSQL only)."""
    backend = backend_for(alias)
    if not hasattr(backend, "partitions_ensure"):
        return []
    return backend.partitions_ensure(start=timezone.now().date())
