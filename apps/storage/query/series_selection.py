"""Which series a query reads: selected under the principal's data scope, grouped, and planned per label.

The selection is cached per process (see `series_plan`); the engine (engine.py) reads the points of what it
returns. A metric, source or label value with no series (not yet written, or outside the principal's data scope:
both look the same) selects nothing, and the query answers an empty result, as Grafana shows "No data". Errors a
client can fix (too many series, a filter the database refuses) are QuerySpecErrors naming the field; the
database's own text is logged, never sent.
"""

from __future__ import annotations

import json
import logging
import threading
from collections import OrderedDict
from dataclasses import dataclass

from django.conf import settings
from django.db import DataError
from psycopg import sql

from apps.sources.references import source_ambiguity_message, source_reference_split
from apps.storage.policies import DataScope
from apps.storage.query.scope_sql import scope_condition, source_ids_named
from apps.storage.query.spec import QuerySpec, QuerySpecError

logger = logging.getLogger(__name__)

# PostgreSQL's SQLSTATEs for what a query's values can make it refuse.
INVALID_REGULAR_EXPRESSION = "2201B"
NUMERIC_VALUE_OUT_OF_RANGE = "22003"


@dataclass(frozen=True)
class LabelPlan:
    """How a query grouped by one label can read the tiers' label rollups instead of per-series rows.

    Only when the selected series are exactly every series of `source_ids` and `metric` whose `key` is one of
    `values`: then each output group is one label value, summed over those sources.
    """

    key: str
    source_ids: tuple[int, ...]
    values: tuple[str, ...]  # the label value of each output group, in group order


SeriesPlan = tuple[list[dict], list[tuple[int, int]], LabelPlan | None, int]


def series_plan(cursor, spec: QuerySpec, scope: DataScope) -> SeriesPlan:
    """Output groups, the group each matching series feeds, the label plan, the newest series id; cached per process.

    Selecting and grouping thousands of series costs far more than a live panel's tail query, and dashboards
    repeat the same selections every second. The cache key includes the newest series id, so a series created
    anywhere (a new device) changes the key and is never missed; series are never renamed in place.
    """
    cursor.execute("SELECT coalesce(max(id), 0) FROM storage_series")
    newest_series = cursor.fetchone()[0]
    key = (
        newest_series,
        spec.metric,
        spec.source,
        tuple((item.label, item.operator, item.values) for item in spec.filters),
        spec.group_by,
        scope,
    )
    cached = _series_plans.get(key)
    if cached is not None:
        _series_plans.move_to_end(key)
        return cached
    series = _series_select(cursor, spec, scope)
    if len(series) > settings.STORAGE_MAX_SERIES_PER_QUERY:
        raise QuerySpecError(
            "filters",
            f"this query matches more than {settings.STORAGE_MAX_SERIES_PER_QUERY:,} series; "
            "add filters (e.g. a facility or device) or a source.",
        )
    groups, pairs = _groups(spec, series)
    plan = (groups, pairs, _label_plan(cursor, spec, series, groups, pairs), newest_series)
    with _series_plans_lock:
        _series_plans[key] = plan
        while len(_series_plans) > _SERIES_PLAN_CACHE_SIZE:
            _series_plans.popitem(last=False)
    return plan


_SERIES_PLAN_CACHE_SIZE = 256
_series_plans: OrderedDict[tuple, SeriesPlan] = OrderedDict()
_series_plans_lock = threading.Lock()


def _label_plan(cursor, spec: QuerySpec, series, groups: list[dict], pairs) -> LabelPlan | None:
    """A LabelPlan when the selection is whole label groups (say every series of facility f1), else None.

    Filters and data scopes may select any subset of series; label rollups answer only for whole groups,
    so the selection is checked against every series with the same sources, metric and label values.
    """
    if len(spec.group_by) != 1 or not series or spec.percentile is not None:
        return None
    key = spec.group_by[0]
    if not all(isinstance(labels.get(key), str) for _, labels, _, _ in series):
        return None
    source_ids = sorted({source_id for _, _, _, source_id in series})
    values = [group["labels"][key] for group in groups]
    cursor.execute(
        "SELECT count(*) FROM storage_series WHERE metric = %s AND source_id = ANY(%s::int[]) "
        "AND labels->>%s = ANY(%s::text[])",
        [spec.metric, source_ids, key, values],
    )
    if cursor.fetchone()[0] != len(pairs):
        return None
    return LabelPlan(key, tuple(source_ids), tuple(values))


def series_plans_clear() -> None:
    """Forget cached series selections (tests; after series are deleted)."""
    _series_plans.clear()


def refused_filter(error: DataError, spec: QuerySpec) -> QuerySpecError:
    """The client's error for a query PostgreSQL refused, naming what to change; the database's text (which may
    quote the statement) is logged, never sent."""
    logger.warning("query refused by the database: %s", error)
    cause = error.__cause__
    sqlstate = getattr(cause, "sqlstate", None)
    regexes = [item for item in spec.filters if item.operator == "regex"]
    if sqlstate == INVALID_REGULAR_EXPRESSION and regexes:
        primary = getattr(getattr(cause, "diag", None), "message_primary", None) or "invalid regular expression"
        return QuerySpecError(
            f"filters.{regexes[0].label}",
            f"PostgreSQL cannot use this regular expression ({primary}); it takes POSIX regular expressions.",
        )
    if sqlstate == NUMERIC_VALUE_OUT_OF_RANGE:
        return QuerySpecError(
            "aggregation", "the result overflows a double-precision number; use another aggregation or a shorter range."
        )
    return QuerySpecError("filters", "the database cannot compare a filter value; check the filters' values.")


def _series_select(cursor, spec: QuerySpec, scope: DataScope) -> list[tuple[int, dict, str, int]]:
    conditions = [sql.SQL("s.metric = %(metric)s")]
    parameters: dict = {"metric": spec.metric}
    if spec.source:
        conditions.append(sql.SQL("s.source_id = ANY(%(source_ids)s::bigint[])"))
        parameters["source_ids"] = _source_ids(cursor, spec.source, scope)
    scope_conditions = _scope_conditions(scope, parameters)
    for index, label_filter in enumerate(spec.filters):
        key, value = f"fk{index}", f"fv{index}"
        parameters[key] = label_filter.label
        label = sql.SQL("s.labels->>%({})s").format(sql.SQL(key))
        if label_filter.operator == "eq":
            conditions.append(sql.SQL("s.labels @> %({})s::jsonb").format(sql.SQL(value)))
            parameters[value] = json.dumps({label_filter.label: label_filter.values[0]})
            continue
        placeholder = sql.SQL("%({})s").format(sql.SQL(value))
        if label_filter.operator == "ne":
            conditions.append(sql.SQL("{} IS DISTINCT FROM {}").format(label, placeholder))
            parameters[value] = label_filter.values[0]
        elif label_filter.operator == "in":
            conditions.append(sql.SQL("{} = ANY({}::text[])").format(label, placeholder))
            parameters[value] = list(label_filter.values)
        elif label_filter.operator == "not_in":
            conditions.append(sql.SQL("NOT coalesce({} = ANY({}::text[]), false)").format(label, placeholder))
            parameters[value] = list(label_filter.values)
        else:
            conditions.append(sql.SQL("{} ~ {}").format(label, placeholder))
            parameters[value] = label_filter.values[0]
    parameters["cap"] = settings.STORAGE_MAX_SERIES_PER_QUERY + 1
    if spec.group_by:
        # Grouped output needs only the grouping labels: read them as text rather than decode every label set
        # (1,000 json.loads for a fleet-wide dashboard query).
        labels = sql.SQL(", ").join(sql.SQL("s.labels->>{}").format(sql.Literal(label)) for label in spec.group_by)
    else:
        labels = sql.SQL("s.labels::text")
    query = sql.SQL(
        "SELECT s.id, src.slug, s.source_id, {labels} FROM storage_series s "
        "JOIN sources_source src ON src.id = s.source_id WHERE {conditions} ORDER BY s.id LIMIT %(cap)s"
    ).format(labels=labels, conditions=sql.SQL(" AND ").join([*conditions, *scope_conditions]))
    try:
        cursor.execute(query, parameters)
    except DataError as error:
        raise refused_filter(error, spec) from None
    if spec.group_by:
        # Labels are stored as strings, so ->> gives each one's value; a missing label is None, as .get() gives.
        return [(row[0], dict(zip(spec.group_by, row[3:], strict=True)), row[1], row[2]) for row in cursor.fetchall()]
    return [(row[0], json.loads(row[3]), row[1], row[2]) for row in cursor.fetchall()]


def _source_ids(cursor, reference: str, scope: DataScope) -> list[int]:
    """The source a query names, resolved among those the scope reaches (none: the query selects nothing); a bare
    slug naming sources of several organisations is refused (apps/sources/references.py)."""
    organization, slug = source_reference_split(reference)
    named = source_ids_named(cursor, slug=slug, organization=organization, scope=scope)
    if len(named) > 1:
        organizations = [organization_slug for _, organization_slug in named]
        how = f"name one as '<organization>/{slug}', e.g. '{organizations[0]}/{slug}'."
        raise QuerySpecError("source", source_ambiguity_message(slug=slug, organizations=organizations, how=how))
    return [source_id for source_id, _ in named]


def _scope_conditions(scope: DataScope, parameters: dict) -> list[sql.Composable]:
    """The row-level data policy as SQL conditions on the series (s) and their source (src)."""
    condition = scope_condition(scope, parameters)
    return [] if condition is None else [condition]


def _groups(spec: QuerySpec, series: list[tuple[int, dict, str, int]]) -> tuple[list[dict], list[tuple[int, int]]]:
    """Output series (labels, and the source when not grouped) and which group each input series feeds."""
    index_of: dict[tuple, int] = {}
    groups: list[dict] = []
    keyed = []
    for series_id, labels, slug, _ in series:
        if spec.group_by:
            key = tuple(labels.get(label) for label in spec.group_by)
            header = {"labels": dict(zip(spec.group_by, key, strict=True))}
        else:
            key = (slug, tuple(sorted(labels.items())), series_id)
            header = {"labels": labels, "source": slug}
        keyed.append((key, series_id, header))
    keyed.sort(key=lambda item: _sort_key(item[0]))
    pairs = []
    for key, series_id, header in keyed:
        if key not in index_of:
            index_of[key] = len(groups)
            groups.append(header)
        pairs.append((series_id, index_of[key]))
    return groups, pairs


def _sort_key(key: tuple) -> tuple:
    return tuple((value is None, "" if value is None else str(value)) for value in key)
