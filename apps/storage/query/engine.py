"""The query engine: select series under the principal's data scope, plan tiers, run one SQL query, fill gaps.

Which series a query reads, and how they group, is series_selection.py's job.

Planning: the range is cut into segments. The interior that whole buckets of the coarsest usable tier
cover (and that tier has materialized) is read from that tier; the edges are planned again with the
next finer tier, down to raw points. A tier is usable when the output bucket is a whole multiple of it.
Every segment yields rows (series, time, count, sum, min, max, last) that merge exactly, so the answer
equals one computed from raw points, and the newest bucket always includes points not yet rolled up.
On plain PostgreSQL the 1-minute tier also answers the provisional minutes past the watermark, except
those a write has marked dirty since, which are read from raw points (see backends/postgres.py).
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime, timedelta

from django.conf import settings
from django.db import DataError, OperationalError, connections, transaction
from psycopg import sql

from apps.storage.backends import backend_for
from apps.storage.backends.deltas import SERIES_DELTA_TABLE, label_delta_table, series_delta_bucket
from apps.storage.metrics import QUERY_DURATION, QUERY_REFUSED
from apps.storage.policies import DataScope, data_scope_for
from apps.storage.query.cache import (
    CachedBuckets,
    cache_key,
    cached_buckets_get,
    cached_buckets_set,
    generation_current,
)
from apps.storage.query.reduce import reduced_values
from apps.storage.query.series_selection import refused_filter, series_plan
from apps.storage.query.series_selection import series_plans_clear as series_plans_clear
from apps.storage.query.spec import RAW, QuerySpec, QuerySpecError
from apps.storage.sql_arrays import int_array
from apps.storage.tiers import (
    BUCKET_ORIGIN,
    TIER_1M,
    TIERS_COARSE_TO_FINE,
    TIERS_FINE_TO_COARSE,
    Tier,
    bucket_ceil,
    bucket_floor,
    duration_format,
    nice_bucket_at_least,
)

STATEMENT_TIMEOUT_MS = 15_000
QUERY_WORK_MEM = "64MB"

# Per aggregation: the columns a segment must provide, and how merged rows become one value.
AGGREGATE_SQL: dict[str, tuple[tuple[str, ...], str]] = {
    "count": (("c",), "sum(x.c)::float8"),
    "sum": (("s",), "sum(x.s)"),
    "avg": (("c", "s"), "sum(x.s) / nullif(sum(x.c), 0)"),
    "min": (("mn",), "min(x.mn)"),
    "max": (("mx",), "max(x.mx)"),
    "last": (("lv",), "(array_agg(x.lv ORDER BY x.t DESC))[1]"),
}
# Buckets come back as their index from the first bucket: cheaper to transfer and to place than timestamps.
# Computed once per output row from the grouped bucket start (not per input row: extract() is numeric).
BUCKET_INDEX_SQL = "((extract(epoch FROM {time} - %(first)s::timestamptz))::bigint / %(bucket_seconds)s)::int"
# Rows are grouped by the output bucket's start (a timestamp groups and hashes cheaply).
BUCKET_START_SQL = "date_bin(%(bucket)s::interval, {time}, %(origin)s::timestamptz)"
# Raw points' times as the API writes them (what _iso gives), formatted by PostgreSQL: loading 900 timestamps into
# datetimes and formatting them again cost a 15-minute raw panel more time than its SQL.
RAW_TIME_TEXT_SQL = (
    "to_char(p.time AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS') || CASE WHEN "
    "date_part('microseconds', p.time AT TIME ZONE 'UTC')::bigint %% 1000000 = 0 THEN 'Z' "
    "ELSE to_char(p.time AT TIME ZONE 'UTC', '.US\"Z\"') END"
)
# Series map to their group through an array indexed by series id (a constant lookup per row inside each
# scan) when the ids span at most this many slots; sparser selections join an (id, group) list instead.
GROUP_MAP_MAX_SLOTS = 200_000
# Raw segments are read by time (not by series id) when the selection holds at least 1/this of all series ids.
RAW_BY_TIME_MIN_SHARE = 4
# How raw points and rollup rows provide each column.
RAW_COLUMNS = {"c": "1::bigint", "s": "value", "mn": "value", "mx": "value", "lv": "value"}
ROLLUP_COLUMNS = {"c": "count", "s": "sum", "mn": "min", "mx": "max", "lv": "last"}


class QueryTimeout(Exception):
    """The database gave up on the query; the client should narrow it."""


@dataclass(frozen=True)
class Segment:
    """A half-open time range read from one relation: a rollup tier, or None for raw points."""

    tier: Tier | None
    start: datetime
    end: datetime


@dataclass
class QueryResult:
    """What the engine answers; `as_dict` is the public JSON shape."""

    spec: QuerySpec
    tier: str
    bucket_seconds: int | None
    series: list[dict] = field(default_factory=list)
    downsampled: bool = False
    truncated: bool = False
    cached_buckets: int = 0
    bucket_requested: int | None = None
    reduced: list[dict] | None = None  # with spec.reduce: the reduced values, and `series` is empty
    # With `columnar`: the bucket times (ISO, UTC) and one list of values per series (gaps per `fill` as None,
    # or carried forward), and `series` holds the headers without points (not part of the JSON answer).
    times: list[str] | None = None
    columns: list[list] | None = None
    label_rollups: bool = False  # rollup segments were read per label value (not part of the JSON answer)
    segments: list[Segment] = field(default_factory=list)  # what the statement read (not part of the JSON answer)
    sql: str = ""

    def as_dict(self) -> dict:
        answer = {
            "tier": self.tier,
            "bucket": duration_format(self.bucket_seconds) if self.bucket_seconds else None,
            "bucket_requested": duration_format(self.bucket_requested) if self.bucket_requested else None,
            "aggregation": self.spec.aggregation,
            "start": _iso(self.spec.start),
            "end": _iso(self.spec.end),
            "downsampled": self.downsampled,
            "truncated": self.truncated,
            "cached_buckets": self.cached_buckets,
            "series": self.series,
        }
        if self.reduced is not None:
            reduce = self.spec.reduce
            answer["reduce"] = {"calculation": reduce.calculation, "combination": reduce.combination}
            answer["reduced"] = self.reduced
        return answer


def segments_plan(
    *,
    start: datetime,
    end: datetime,
    bucket_seconds: int,
    materialized_until: Callable[[Tier], datetime | None],
    tiers: Sequence[Tier] = TIERS_COARSE_TO_FINE,
) -> list[Segment]:
    """Cover [start, end) with the coarsest usable tiers, finer tiers at the edges, raw points last."""
    if start >= end:
        return []
    usable = [tier for tier in tiers if bucket_seconds % tier.seconds == 0]
    if not usable:
        return [Segment(None, start, end)]
    tier, finer = usable[0], usable[1:]
    limit = materialized_until(tier)
    interior_end = bucket_floor(end if limit is None else min(end, limit), tier.seconds)
    interior_start = bucket_ceil(start, tier.seconds)
    if interior_start >= interior_end:
        return segments_plan(
            start=start, end=end, bucket_seconds=bucket_seconds, materialized_until=materialized_until, tiers=finer
        )
    return [
        *segments_plan(
            start=start, end=interior_start, bucket_seconds=bucket_seconds,
            materialized_until=materialized_until, tiers=finer,
        ),
        Segment(tier, interior_start, interior_end),
        *segments_plan(
            start=interior_end, end=end, bucket_seconds=bucket_seconds,
            materialized_until=materialized_until, tiers=finer,
        ),
    ]  # fmt: skip


def segments_partial_minute(segments: Sequence[Segment], until: datetime, dirty: Sequence[datetime]) -> list[Segment]:
    """`segments` with the rolled-up part of the minute holding `until` (the provisional bound, mid-minute) read
    from its 1-minute row: [minute, until) from the tier, the rest raw. Unless that minute is dirty.
    """
    minute = bucket_floor(until, TIER_1M.seconds)
    if until == minute or minute in dirty:
        return list(segments)
    result: list[Segment] = []
    for segment in segments:
        if segment.tier is None and segment.start <= minute and until <= segment.end:
            if segment.start < minute:
                result.append(Segment(None, segment.start, minute))
            result.append(Segment(TIER_1M, minute, until))
            if until < segment.end:
                result.append(Segment(None, until, segment.end))
        else:
            result.append(segment)
    return result


def segments_split_dirty(segments: Sequence[Segment], dirty: Sequence[datetime]) -> list[Segment]:
    """`segments` with the dirty minutes (sorted) of 1-minute segments read from raw points, adjacent raw merged."""
    split: list[Segment] = []
    for segment in segments:
        if segment.tier is not TIER_1M:
            split.append(segment)
            continue
        start = segment.start
        for minute in dirty:
            if segment.start <= minute < segment.end:
                if start < minute:
                    split.append(Segment(TIER_1M, start, minute))
                start = minute + TIER_1M.interval
                split.append(Segment(None, minute, start))
        if start < segment.end:
            split.append(Segment(TIER_1M, start, segment.end))
    merged: list[Segment] = []
    for segment in split:
        if merged and segment.tier is None and merged[-1].tier is None and merged[-1].end == segment.start:
            merged[-1] = Segment(None, merged[-1].start, segment.end)
        else:
            merged.append(segment)
    return merged


def query_execute(
    *,
    spec: QuerySpec,
    principal=None,
    scope: DataScope | None = None,
    alias: str = "default",
    columnar: bool = False,
) -> QueryResult:
    """Answer a query for a principal; the only way points are read.

    `scope` instead of a principal: a scope computed from a principal before (a live feed answers every
    subscriber whose scope has this very cache key with one query).
    `columnar`: the answer as `times` and `columns` instead of a [time, value] pair per point (an aggregate only):
    a report streaming 4.3 million buckets into a file spends a fifth of its reading time building those pairs.
    """
    if columnar and spec.aggregation == RAW:
        raise ValueError("a columnar answer is for aggregates; raw points have no shared times")
    if scope is None:
        scope = data_scope_for(principal)
    started = time.perf_counter()
    outermost = not connections[alias].in_atomic_block
    with transaction.atomic(using=alias), connections[alias].cursor() as cursor:
        # In one round trip:
        # - a statement timeout;
        # - work_mem: dashboard aggregates group up to millions of rows, let them hash in memory;
        # - no JIT: compiling cost ~950 ms of a ~1.25 s 24-hour dashboard query in the 100M-point benchmark
        #   (EXPLAIN ANALYZE), more than it ever saves on these short aggregates;
        # - no merge joins: the planner misjudges the (id, group) list joined to millions of rows and sorted them
        #   for a merge join (720 ms of the 24-hour dashboard query); a hash join costs a fraction of that.
        # - outside a caller's transaction, one snapshot for every statement: the watermark, the label rollup
        #   registry, rollup rows and raw points agree with each other even while the refresh job commits.
        snapshot = "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY; " if outermost else ""
        cursor.execute(
            f"{snapshot}SET LOCAL statement_timeout = {STATEMENT_TIMEOUT_MS}; SET LOCAL work_mem = '{QUERY_WORK_MEM}'; "
            "SET LOCAL jit = off; SET LOCAL enable_mergejoin = off"
        )
        try:
            result = _execute(cursor, spec, scope, alias, columnar=columnar)
        except QuerySpecError as error:
            QUERY_REFUSED.labels(error.field.split(".")[0]).inc()
            raise
        except OperationalError as error:
            if "statement timeout" in str(error):
                QUERY_REFUSED.labels("timeout").inc()
                raise QueryTimeout(
                    "The query took too long; use a shorter range, a coarser bucket, or fewer series."
                ) from None
            raise
    QUERY_DURATION.labels(result.tier).observe(time.perf_counter() - started)
    return result


def _execute(cursor, spec: QuerySpec, scope: DataScope, alias: str, *, columnar: bool = False) -> QueryResult:
    groups, series_groups, label_plan, newest_series = series_plan(cursor, spec, scope)
    truncated = len(groups) > spec.limit
    if truncated:
        groups = groups[: spec.limit]
        series_groups = [(series_id, index) for series_id, index in series_groups if index < spec.limit]
        if label_plan is not None:
            label_plan = replace(label_plan, values=label_plan.values[: spec.limit])
    result = QueryResult(
        spec=spec, tier="raw", bucket_seconds=None, truncated=truncated, bucket_requested=spec.bucket_seconds
    )
    if not series_groups:
        if spec.reduce is not None:
            result.reduced = reduced_values(spec.reduce, [], [])
        return result
    series_ids = [series_id for series_id, _ in series_groups]
    group_indexes = [index for _, index in series_groups]

    if spec.aggregation == RAW:
        rows = _raw_rows(cursor, spec, series_ids, group_indexes)
        if rows is not None:
            result.series = [
                {**groups[index], "points": [[moment, value] for moment, value in points]}
                for index, points in _by_group(rows, len(groups))
            ]
            if spec.reduce is not None:
                values = [[value for _, value in item["points"]] for item in result.series]
                result.reduced = reduced_values(spec.reduce, groups, values)
                result.series = []
            return result
        result.downsampled = True  # too many raw points for the budget: fall back to averages
        spec = replace(spec, aggregation="avg", bucket_seconds=None)

    bucket = query_bucket_seconds(spec)
    result.bucket_seconds = bucket
    result.downsampled = result.downsampled or (spec.bucket_seconds is not None and bucket != spec.bucket_seconds)
    aligned = aggregate_start(spec.start, bucket)
    if aligned != spec.start:
        spec = result.spec = replace(spec, start=aligned)
    first_bucket = bucket_floor(spec.start, bucket)
    parameters: dict = {
        "bucket": _interval(bucket),
        "bucket_seconds": bucket,
        "first": first_bucket,
        "origin": BUCKET_ORIGIN,
        "ids": int_array(series_ids),
        "groups": int_array(group_indexes),
    }
    group_map = _group_map(series_ids, group_indexes)
    if group_map is not None:
        parameters["group_base"], parameters["group_map"] = group_map[0], int_array(group_map[1])
    rows: list = []
    cached: tuple[CachedBuckets, datetime, datetime] | None = None
    if spec.percentile is not None:
        query = _percentile_sql()
        parameters.update(q=spec.percentile, start=spec.start, end=spec.end)
        rows = _run(cursor, query, parameters, result, spec)
    else:
        backend = backend_for(alias)
        materialized: dict[str, datetime | None] = {}

        def materialized_until(tier: Tier) -> datetime | None:
            if tier.name not in materialized:
                materialized[tier.name] = backend.tier_materialized_until(tier)
            return materialized[tier.name]

        # Buckets that end at or before the watermark change only with a generation bump (late writes,
        # retention); they may come from the cache. TimescaleDB has no such watermark: no cache there.
        watermark = materialized_until(TIERS_FINE_TO_COARSE[0])
        stable = None
        if watermark is not None and settings.STORAGE_QUERY_CACHE_SECONDS:
            generation = generation_current()
            if generation is not None:
                key = cache_key(
                    aggregation=spec.aggregation,
                    bucket_seconds=bucket,
                    series_ids=series_ids,
                    group_indexes=group_indexes,
                )
                stable = (
                    key,
                    generation,
                    bucket_ceil(spec.start, bucket),
                    min(bucket_floor(spec.end, bucket), bucket_floor(watermark, bucket)),
                )
                entry = cached_buckets_get(key)
                if entry is not None and entry.generation == generation and len(entry.values) == len(groups):
                    reuse_start, reuse_end = max(entry.first, stable[2]), min(entry.end, stable[3])
                    if reuse_start < reuse_end:
                        cached = (entry, reuse_start, reuse_end)
        # Complete minutes past the watermark that the refresh rolled up provisionally: the 1-minute tier may
        # answer them too (for planning only: the cache above keeps to the exact watermark), except the dirty
        # ones, which writes changed since and are read from raw points. Same snapshot as the watermark.
        provisional = backend.provisional_rollups(cursor) if bucket % TIER_1M.seconds == 0 else None

        def planned_until(tier: Tier) -> datetime | None:
            until = materialized_until(tier)
            return max(until, provisional[0]) if provisional is not None and tier is TIER_1M else until

        pieces = [(spec.start, spec.end)] if cached is None else [(spec.start, cached[1]), (cached[2], spec.end)]
        segments = [
            segment
            for piece_start, piece_end in pieces
            for segment in segments_plan(
                start=piece_start, end=piece_end, bucket_seconds=bucket, materialized_until=planned_until
            )
        ]
        if provisional is not None:
            if provisional[1]:
                segments = segments_split_dirty(segments, provisional[1])
            segments = segments_partial_minute(segments, *provisional)
        result.segments = segments
        used = [segment.tier for segment in segments if segment.tier is not None]
        result.tier = max(used, key=lambda tier: tier.seconds).name if used else "raw"
        labelled = (
            label_plan is not None
            and backend.label_rollups
            and any(segment.tier is not None for segment in segments)
            # Read after every watermark the plan used (one snapshot: see query_execute).
            and backend.label_keys_registered(
                cursor, metric=spec.metric, key=label_plan.key, source_ids=label_plan.source_ids
            )
        )
        if labelled:
            parameters.update(
                label_key=label_plan.key,
                label_metric=spec.metric,
                label_sources=list(label_plan.source_ids),
                label_values=list(label_plan.values),
                label_groups=_label_groups(label_plan.values),
            )
            result.label_rollups = True
        if segments:
            # Raw points of a selection that is a large share of every series are found by time (the BRIN index)
            # and filtered by the group map: the newest minute of 1,000 series is ~200 contiguous heap pages, which
            # 1,000 primary-key probes (3,000 buffer visits) cost far more to find.
            by_time = group_map is not None and len(series_ids) * RAW_BY_TIME_MIN_SHARE >= newest_series
            query = _aggregate_sql(
                spec.aggregation, segments, parameters, bucket_seconds=bucket, labelled=labelled, raw_by_time=by_time,
                delta_tables=backend.deltas_pending(cursor) if backend.deltas else frozenset(),
            )  # fmt: skip
            # An aggregate reads every row of its ranges in any order: a bitmap scan visits each heap page once,
            # where an index scan per series revisits them (the newest minute of 1,000 series: 30,000 buffer
            # visits and 20 ms, against 4,200 and 9 ms). The planner cannot see that for the newest rows, which
            # are past its statistics (it estimates one row), so plain index scans are off for this statement.
            # The same misestimate makes it sort the rows for a group aggregate (12 ms for 40,000 rows) where
            # hashing them costs a third of that; sorts inside aggregates (last, percentiles) are unaffected.
            cursor.execute("SET LOCAL enable_indexscan = off; SET LOCAL enable_sort = off")
            rows = _run(cursor, query, parameters, result, spec)
    times, columns = _columns(spec, bucket, len(groups), rows)
    if cached is not None:
        entry, reuse_start, reuse_end = cached
        offset = int((reuse_start - first_bucket).total_seconds()) // bucket
        source_offset = int((reuse_start - entry.first).total_seconds()) // bucket
        width = int((reuse_end - reuse_start).total_seconds()) // bucket
        for column, stored in zip(columns, entry.values, strict=True):
            column[offset : offset + width] = stored[source_offset : source_offset + width]
        result.cached_buckets = width
        if result.tier == "raw" and not segments:
            result.tier = "cache"
    if spec.percentile is None and stable is not None and stable[2] < stable[3]:
        key, generation, stable_start, stable_end = stable
        offset = int((stable_start - first_bucket).total_seconds()) // bucket
        width = int((stable_end - stable_start).total_seconds()) // bucket
        cached_buckets_set(
            key,
            CachedBuckets(
                generation, stable_start, stable_end, [column[offset : offset + width] for column in columns]
            ),
            timeout=settings.STORAGE_QUERY_CACHE_SECONDS,
        )
    if spec.reduce is not None:
        result.reduced = reduced_values(spec.reduce, groups, [_filled(spec.fill, column) for column in columns])
        return result
    if columnar:
        result.times = times
        result.columns = [_filled("null" if spec.fill == "none" else spec.fill, column) for column in columns]
        result.series = [dict(header) for header in groups]
        return result
    result.series = _series_output(spec, groups, times, columns)
    return result


def _run(cursor, query: sql.Composed, parameters: dict, result: QueryResult, spec: QuerySpec) -> list:
    try:
        cursor.execute(query, parameters)
    except DataError as error:
        raise refused_filter(error, spec) from None
    result.sql = query.as_string(cursor.connection)
    return cursor.fetchall()


# Aggregates start at a whole minute (or a whole bucket, for buckets under a minute), not at a whole bucket.
START_ALIGN_SECONDS = 60


def aggregate_start(start: datetime, bucket_seconds: int) -> datetime:
    """Where an aggregate over buckets of `bucket_seconds` starts reading for a range starting at `start`.

    The range is read from here on, so a first bucket cut by the range holds only what lies inside it (as
    Grafana's SQL sources filter the range, then group): "Orders" with daily buckets over the last hour counts
    that hour, not the day since midnight. The bucket still carries its start as its time. The start goes down
    to a whole minute (a whole bucket under a minute) so that `-1h` asked a few seconds later is the same answer,
    one that requests can share (shared.py) and rollup tiers can answer, with no raw-point edge at the start. It
    never goes into an earlier bucket: with 90 s buckets, 00:01:45 goes to 00:01:30 (its bucket's start), not to
    00:01:00, which would put half a minute before the range into the bucket before.
    """
    return max(bucket_floor(start, bucket_seconds), bucket_floor(start, min(bucket_seconds, START_ALIGN_SECONDS)))


def query_bucket_seconds(spec: QuerySpec) -> int:
    """The bucket an aggregate answers with: as asked (a minimum interval), widened to the smallest nice multiple
    that fits the point budget when it exceeds it; without a bucket, from the budget; an exact bucket as asked."""
    if spec.exact_bucket and spec.bucket_seconds is not None:
        return spec.bucket_seconds  # the parser refused it if it exceeds the budget
    per_point = spec.range_seconds / spec.max_points
    if spec.bucket_seconds is None:
        return nice_bucket_at_least(max(per_point, 1))
    if spec.range_seconds / spec.bucket_seconds > spec.max_points:
        return nice_bucket_at_least(per_point, multiple_of=spec.bucket_seconds)
    return spec.bucket_seconds


def _group_map(series_ids: list[int], group_indexes: list[int]) -> tuple[int, list[int]] | None:
    """(base, map) with map[series_id - base] the series' group in SQL (1-based arrays), or None if too sparse.

    Unselected ids inside the span map to -1 (never read: scans select only `ids`); no NULLs, so a lookup
    is a constant-time offset into the array.
    """
    low, high = min(series_ids), max(series_ids)
    if high - low + 1 > max(GROUP_MAP_MAX_SLOTS, 4 * len(series_ids)):
        return None
    slots = [-1] * (high - low + 1)
    for series_id, index in zip(series_ids, group_indexes, strict=True):
        slots[series_id - low] = index
    return low - 1, slots


# A label segment's group: its label value's index among the plan's values, looked up in a JSON object of them
# (a binary search of its keys) instead of array_position(values, label_value), a linear search of up to
# STORAGE_LABEL_ROLLUP_MAX_VALUES strings for each row (144,000 rows for a day of minutes of 100 values). Measured
# (docs/storage.md, Query engine): a day of 100 devices by minute 737 -> 405 ms, 5 facilities unchanged. A join
# with unnest(values) WITH ORDINALITY was as fast for 100 values but slower for 5 (the planner turned it into one
# index scan per value), and without `label_value = ANY(values)` beside it a parallel scan of the whole table.
LABEL_GROUP_SQL = "(%(label_groups)s::jsonb ->> label_value)::int"


def _label_groups(values: Sequence[str]) -> str:
    """The label values as a JSON object of their group indexes, for LABEL_GROUP_SQL (the values are distinct:
    one group each)."""
    return json.dumps({value: index for index, value in enumerate(values)})


def _aggregate_sql(
    aggregation: str,
    segments: list[Segment],
    parameters: dict,
    *,
    bucket_seconds: int,
    labelled: bool = False,
    raw_by_time: bool = False,
    delta_tables: frozenset[str] = frozenset(),
) -> sql.Composed:
    """One statement: every segment yields (group, bucket start, columns) rows; they merge per output bucket.

    With `labelled`, rollup segments read the tier's label rows (one per label value and bucket) instead of
    one row per series; raw segments always read points per series. With `raw_by_time` (needs the group map),
    raw segments select points by time and keep those whose series maps to a group, instead of by series id.
    A rollup segment also reads its tier's deltas when `delta_tables` names them as pending (late points not yet
    folded into its rows: see apps/storage/backends/deltas.py): per label cell when it reads label rows, per series
    otherwise. They merge like any other row.
    """
    columns, final = AGGREGATE_SQL[aggregation]
    mapped = "group_map" in parameters
    parts = []
    reads = [(segment, False) for segment in segments]
    for segment in segments:
        if segment.tier is not None:
            pending = label_delta_table(segment.tier) if labelled else SERIES_DELTA_TABLE
            if pending in delta_tables:
                reads.append((segment, True))
    for index, (segment, delta) in enumerate(reads):
        lower, upper = f"lo{index}", f"hi{index}"
        parameters[lower], parameters[upper] = segment.start, segment.end
        if segment.tier is None:
            table, time_column, order_column, mapping = "points", "time", "time", RAW_COLUMNS
        else:
            # A rollup row's last_time lies inside its bucket, so it orders "last" exactly across series
            # and segments.
            table, time_column, order_column, mapping = segment.tier.table, "bucket", "last_time", ROLLUP_COLUMNS
        relation_table: sql.Composable = sql.Identifier(table)
        if segment.tier is not None and delta and not labelled:
            # Per-series deltas are minutes: an hour's or a day's are its minutes' with the bucket moved to it.
            relation_table = sql.Identifier(SERIES_DELTA_TABLE)
            if segment.tier.seconds != 60:
                relation_table = sql.SQL(
                    "(SELECT series_id, {bucket} AS bucket, count, sum, min, max, last, last_time FROM {table}) AS d"
                ).format(bucket=series_delta_bucket(segment.tier), table=sql.Identifier(SERIES_DELTA_TABLE))
        if segment.tier is not None and segment.tier.seconds == bucket_seconds:
            bucket_start = sql.Identifier("bucket")  # already the output bucket: no per-row date_bin
        else:
            bucket_start = sql.SQL(BUCKET_START_SQL).format(time=sql.Identifier(time_column))
        by_label = labelled and segment.tier is not None
        if by_label:
            # Label plans number their groups in the order of their values: the position is the group (see
            # LABEL_GROUP_SQL).
            group = sql.SQL(LABEL_GROUP_SQL)
        elif mapped:
            group = sql.SQL("(%(group_map)s::int[])[series_id - %(group_base)s]")
        else:
            group = sql.SQL("g.gi")
        selected = [sql.SQL("{} AS gi").format(group), sql.SQL("{} AS b").format(bucket_start)]
        if aggregation == "last":
            selected.append(sql.SQL("{} AS t").format(sql.Identifier(order_column)))
        selected += [sql.SQL("{} AS {}").format(sql.SQL(mapping[column]), sql.Identifier(column)) for column in columns]
        if by_label:
            relation = sql.SQL(
                "{table} WHERE source_id = ANY(%(label_sources)s::int[]) "
                "AND metric = %(label_metric)s AND label_key = %(label_key)s "
                "AND label_value = ANY(%(label_values)s::text[])"
            ).format(table=sql.Identifier(label_delta_table(segment.tier) if delta else segment.tier.labels_table))
        elif mapped and raw_by_time and segment.tier is None:
            # Unselected ids inside the map are -1; ids outside it subscript to NULL: both are left out.
            relation = sql.SQL("{table} WHERE (%(group_map)s::int[])[series_id - %(group_base)s] >= 0").format(
                table=relation_table
            )
        elif mapped:
            relation = sql.SQL("{table} WHERE series_id = ANY(%(ids)s::int[])").format(table=relation_table)
        else:
            relation = sql.SQL(
                "{table} JOIN unnest(%(ids)s::int[], %(groups)s::int[]) AS g(sid, gi) ON g.sid = series_id "
                "WHERE series_id = ANY(%(ids)s::int[])"
            ).format(table=relation_table)
        parts.append(
            sql.SQL("SELECT {columns} FROM {relation} AND {time} >= %({lower})s AND {time} < %({upper})s").format(
                columns=sql.SQL(", ").join(selected),
                relation=relation,
                time=sql.Identifier(time_column),
                lower=sql.SQL(lower),
                upper=sql.SQL(upper),
            )
        )
    return sql.SQL("SELECT x.gi, {bucket_index} AS b, {final} AS v FROM ({segments}) AS x GROUP BY x.gi, x.b").format(
        bucket_index=sql.SQL(BUCKET_INDEX_SQL.format(time="x.b")),
        final=sql.SQL(final),
        segments=sql.SQL(" UNION ALL ").join(parts),
    )


def _percentile_sql() -> sql.Composed:
    bucket_start = BUCKET_START_SQL.format(time="p.time")
    return sql.SQL(
        "SELECT g.gi, " + BUCKET_INDEX_SQL.format(time=bucket_start) + " AS b, "
        "percentile_cont(%(q)s) WITHIN GROUP (ORDER BY p.value) AS v "
        "FROM points p JOIN unnest(%(ids)s::int[], %(groups)s::int[]) AS g(sid, gi) ON g.sid = p.series_id "
        "WHERE p.series_id = ANY(%(ids)s::int[]) AND p.time >= %(start)s AND p.time < %(end)s "
        "GROUP BY g.gi, " + bucket_start
    ).format()


def _raw_rows(cursor, spec: QuerySpec, series_ids: list[int], group_indexes: list[int]) -> list | None:
    """Raw points per series, or None when a series has more than the point budget."""
    cursor.execute(
        "SELECT g.gi, " + RAW_TIME_TEXT_SQL + ", p.value FROM unnest(%(ids)s::int[], %(groups)s::int[]) AS g(sid, gi) "  # noqa: S608 (constants)
        "CROSS JOIN LATERAL (SELECT time, value FROM points WHERE series_id = g.sid AND time >= %(start)s "
        "AND time < %(end)s ORDER BY time DESC LIMIT %(cap)s) AS p ORDER BY g.gi, p.time",
        {
            "ids": int_array(series_ids),
            "groups": int_array(group_indexes),
            "start": spec.start,
            "end": spec.end,
            "cap": spec.max_points + 1,
        },
    )
    rows = cursor.fetchall()
    counts: dict[int, int] = {}
    for index, _, _ in rows:
        counts[index] = counts.get(index, 0) + 1
    if any(count > spec.max_points for count in counts.values()):
        return None
    return rows


def _by_group(rows: list, group_count: int):
    points: list[list] = [[] for _ in range(group_count)]
    for index, moment, value in rows:
        points[index].append((moment, value))
    return enumerate(points)


def _columns(spec: QuerySpec, bucket: int, group_count: int, rows: list) -> tuple[list[str], list[list]]:
    """Bucket times (formatted once, shared by every group) and one column of values per group."""
    first = bucket_floor(spec.start, bucket).astimezone(UTC).replace(tzinfo=None)
    count = math.ceil((spec.end - first.replace(tzinfo=UTC)).total_seconds() / bucket)
    step = timedelta(seconds=bucket)
    # Naive UTC times format without the zone conversion each _iso call makes (1,441 of them for a day by minute).
    times = [(first + index * step).isoformat() + "Z" for index in range(count)]
    columns: list[list[float | None]] = [[None] * count for _ in range(group_count)]
    for group_index, bucket_index, value in rows:
        columns[group_index][bucket_index] = value
    return times, columns


def _series_output(spec: QuerySpec, groups: list[dict], times: list[str], columns: list[list]) -> list[dict]:
    """One output series per group, gaps per `fill`."""
    output = []
    for header, values in zip(groups, columns, strict=True):
        if spec.fill == "none":
            points = [[moment, value] for moment, value in zip(times, values, strict=True) if value is not None]
        else:
            values = _filled(spec.fill, values)
            # A list display per point: about twice as fast as list(pair) over 7,200 points of a dashboard.
            points = [[moment, value] for moment, value in zip(times, values, strict=True)]
        output.append({**header, "points": points})
    return output


def _filled(fill: str, values: list) -> list:
    """A group's bucket values as the answer gives them: gaps carried forward with fill=previous, left out with
    fill=none, else None."""
    if fill == "none":
        return [value for value in values if value is not None]
    if fill == "previous":
        values = list(values)
        previous = None
        for index, value in enumerate(values):
            if value is None:
                values[index] = previous
            else:
                previous = value
    return values


def _interval(seconds: int) -> str:
    return f"{seconds} seconds"


def _iso(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat().replace("+00:00", "Z")
