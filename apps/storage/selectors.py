"""Reads of series metadata for pickers and browsing, under the principal's data scope."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime, timedelta

from django.db import connection
from django.db.models import CharField, F, Func, Q, QuerySet
from django.db.models.fields.json import KeyTextTransform

from apps.sources.references import source_reference_q, source_reference_resolve
from apps.storage.models import Series
from apps.storage.policies import DataScope, data_scope_for
from apps.storage.query.scope_sql import scope_q, source_scope_q


def _scoped(scope: DataScope) -> QuerySet[Series]:
    return Series.objects.select_related("source").filter(scope_q(scope))


def _scope(principal, scope: DataScope | None) -> DataScope:
    """The scope given (a live feed's, computed from its principals before), else the principal's."""
    return scope if scope is not None else data_scope_for(principal)


def _series_of(
    principal, scope: DataScope | None, *, metric: str | None = None, source: str | None = None
) -> QuerySet[Series]:
    """The series the principal (or the given scope) may see, of `metric` and `source` when given."""
    queryset = _scoped(_scope(principal, scope))
    if metric:
        queryset = queryset.filter(metric=metric)
    if source:
        queryset = queryset.filter(source_reference_q(source, path="source__"))
    return queryset


def series_list(
    *,
    principal=None,
    scope: DataScope | None = None,
    source: str | None = None,
    metric: str | None = None,
    labels: Mapping[str, str] | None = None,
) -> QuerySet[Series]:
    """Series the principal (or the given scope) may see, filtered by source slug, metric and exact label values.

    A bare slug lists the series of every source with that slug the scope reaches (lists are not ambiguous)."""
    queryset = _series_of(principal, scope, metric=metric, source=source)
    if labels:
        queryset = queryset.filter(labels__contains=dict(labels))
    return queryset.order_by("source__slug", "metric", "id")


def source_visible(*, principal=None, scope: DataScope | None = None, slug: str):
    """The source this slug (or '<organization>/<slug>') names if the principal's scope reaches it, else None (also
    when it does not exist); raises SourceAmbiguous when the slug names sources of several organisations in scope."""
    from apps.sources.models import Source

    candidates = Source.objects.filter(source_scope_q(_scope(principal, scope)))
    return source_reference_resolve(candidates=candidates, reference=slug)


@dataclass(frozen=True)
class Page:
    """One page of picker values, and whether more follow it."""

    items: list[str]
    truncated: bool


def _page(values: QuerySet, *, limit: int, offset: int) -> Page:
    items = list(values[offset : offset + limit + 1])
    return Page(items=items[:limit], truncated=len(items) > limit)


def series_metrics_list(
    *, principal=None, scope: DataScope | None = None, source: str | None = None, limit: int = 1_000, offset: int = 0
) -> Page:
    """Distinct metric names the principal may see, in order, `limit` from `offset`."""
    queryset = _series_of(principal, scope, source=source)
    return _page(queryset.order_by("metric").values_list("metric", flat=True).distinct(), limit=limit, offset=offset)


def series_label_keys_list(
    *,
    principal=None,
    scope: DataScope | None = None,
    metric: str | None = None,
    source: str | None = None,
    limit: int = 1_000,
    offset: int = 0,
) -> Page:
    """Distinct label names (e.g. device, facility) among the series the principal may see, in order: every series'
    names, not a sample's (a name only some series carry is listed too)."""
    queryset = _series_of(principal, scope, metric=metric, source=source)
    keys = (
        queryset.annotate(key=Func(F("labels"), function="jsonb_object_keys", output_field=CharField()))
        .order_by("key")
        .values_list("key", flat=True)
        .distinct()
    )
    return _page(keys, limit=limit, offset=offset)


def series_label_values_list(
    *,
    principal=None,
    scope: DataScope | None = None,
    label: str,
    metric: str | None = None,
    source: str | None = None,
    limit: int = 1_000,
    offset: int = 0,
) -> Page:
    """Distinct values of one label (e.g. every facility) among the series the principal may see, in order."""
    queryset = _series_of(principal, scope, metric=metric, source=source).filter(Q(**{"labels__has_key": label}))
    values = (
        queryset.annotate(value=KeyTextTransform(label, "labels"))
        .order_by("value")
        .values_list("value", flat=True)
        .distinct()
    )
    return _page(values, limit=limit, offset=offset)


def storage_summary(*, principal) -> dict[str, int]:
    """Counts for the home page: the series and metrics the principal may read."""
    series = _scoped(data_scope_for(principal))
    return {"series": series.count(), "metrics": series.values("metric").distinct().count()}


def retention_raw(*, source) -> timedelta:
    """How long a source keeps raw points: its override, or the backend's default. The next retention run deletes
    anything older, and on TimescaleDB a refresh over raw chunks already dropped would wipe the rollups built from
    them, so no backend can roll up a point that old after the fact: ingest refuses it instead (the same on both)."""
    from apps.storage.backends import backend_for

    backend = backend_for()
    days = source.raw_retention_days or backend.retention_days()["points"]
    return timedelta(days=min(days, backend.retention_override_max_days("points")))


def rollup_backlog() -> dict[str, tuple[int, float | None]]:
    """Per tier (and "<tier>_labels" for label deltas): late points' deltas waiting to be folded and the age in
    seconds of the oldest bucket among them. Empty on backends without deltas (TimescaleDB invalidates its own
    aggregates).

    The delta tables have no index, so each count is a scan of its table, and a scrape during a backfill scanned
    millions of rows (twice: the count, then the oldest bucket), about half as much database time as the drain
    itself: CPU the dashboards' queries shared. So one pass per table, and none for a table whose pending flag is
    clear (the drain found it empty, and a writer sets the flag in the transaction that appends): 0 there.
    """
    from django.db import connection
    from psycopg import sql

    from apps.storage.backends import backend_for
    from apps.storage.backends.deltas import SERIES_DELTA_TABLE, label_delta_table
    from apps.storage.tiers import TIERS_FINE_TO_COARSE

    backend = backend_for()
    if not backend.deltas:
        return {}
    backlog: dict[str, tuple[int, float | None]] = {}
    with connection.cursor() as cursor:
        pending = backend.deltas_pending(cursor)
        # Per-series deltas are minutes (an hour's or a day's are derived from them): one table, named "1m".
        tables = [("1m", SERIES_DELTA_TABLE)]
        tables += [(f"{tier.name}_labels", label_delta_table(tier)) for tier in TIERS_FINE_TO_COARSE]
        for name, table in tables:
            if table not in pending:
                backlog[name] = (0, None)
                continue
            cursor.execute(
                sql.SQL("SELECT count(*), extract(epoch FROM now() - min(bucket)) FROM {table}").format(
                    table=sql.Identifier(table)
                )
            )
            count, age = cursor.fetchone()
            backlog[name] = (count, None if age is None else float(age))
    return backlog


def label_keys_building() -> int:
    """Label keys registered whose history the refresh is still building (plain PostgreSQL; 0 elsewhere): queries
    grouped by them read per-series rows meanwhile."""
    from django.db import connection

    from apps.storage.backends import backend_for
    from apps.storage.backends.base import BACKEND_POSTGRES
    from apps.storage.backends.label_rollups import label_keys_building as building

    if backend_for().name != BACKEND_POSTGRES:
        return 0
    with connection.cursor() as cursor:
        return building(cursor)


def retention_defaults() -> dict:
    """Global retention in days per table, and which backend applies it."""
    from apps.storage.backends import backend_for

    backend = backend_for()
    return {"backend": backend.name, **backend.retention_days()}


def points_exist_before(*, source_id: int, before: datetime) -> bool:
    """Whether a source has any point older than `before` (the demo asks so as not to write its history twice)."""
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT EXISTS (SELECT 1 FROM points p JOIN storage_series s ON s.id = p.series_id "
            "WHERE s.source_id = %s AND p.time < %s)",
            [source_id, before],
        )
        return bool(cursor.fetchone()[0])


def retention_override_limits() -> dict[str, int]:
    """The most days a source's retention override may ask for, per override field."""
    from apps.storage.backends import backend_for
    from apps.storage.backends.base import RETENTION_FIELDS

    backend = backend_for()
    return {
        field_name: backend.retention_override_max_days(table) for table, (field_name, _) in RETENTION_FIELDS.items()
    }
