"""What a report shows, read through the query engine under one principal's data scope.

A report's sections come from its dashboard's panels (all, or the chosen keys) and its own queries (shown as
tables). For one principal, each section gets:
- an overview: the engine's answer over the whole period at a chart's resolution (at most CHART_POINTS buckets),
  which the PDF charts and summarises and which fixes the section's columns (one per series);
- rows for the XLSX and CSV files at export resolution, streamed: the period is read in chunks of at most
  CHUNK_BUCKETS buckets, one engine query per chunk, so memory holds one chunk, never the whole table; a chunk is
  columns of values (the engine's columnar answer), not an object per point.
The engine applies the principal's row-level policies to every query; nothing here reads points around it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

from django.conf import settings

from apps.storage.policies import DataAccessDenied
from apps.storage.query.engine import QueryTimeout, query_execute
from apps.storage.query.spec import QuerySpecError, query_spec_parse
from apps.storage.tiers import bucket_ceil, duration_format, duration_parse, nice_bucket_at_least

logger = logging.getLogger(__name__)

CHART_POINTS = 600  # buckets per series in a PDF chart: finer than an A4 page can show
CHUNK_BUCKETS = 1_440  # buckets per series read per engine query when streaming rows (a day of minutes)
EXPORT_MAX_ROWS = 50_000  # rows per exported table: an automatic bucket is chosen to stay below it
MIN_EXPORT_BUCKET_SECONDS = 60
MAX_SERIES_PER_SECTION = 200  # columns of an exported table
CHART_PANEL_TYPES = ("timeseries", "heatmap", "state_timeline")
TABLE_PANEL_TYPES = ("table",)
# Panels that show the query API's reduced numbers; the PDF draws a pie's slices and a bar chart's bars from them.
REDUCED_PANEL_TYPES = ("stat", "gauge", "bargauge", "bar", "pie")
# One value per series unless the panel combines them (PER_SERIES_TYPES in static/js/dashboards/values.js).
PER_SERIES_PANEL_TYPES = ("bargauge", "bar", "pie", "table")
LEGACY_REDUCE = {"avg": "mean", "last": "last_not_null", "first": "first", "sum": "sum", "min": "min", "max": "max"}
REDUCED_MAX_SERIES = 1_000  # series a combined value is over: the query API's largest limit, as the page asks
CALCULATION_LABELS = {
    "last_not_null": "Last (not null)", "last": "Last", "first": "First", "mean": "Mean", "sum": "Total (sum)",
    "min": "Min", "max": "Max", "count": "Count of values", "delta": "Delta (last - first)",
    "range": "Range (max - min)",
}  # fmt: skip
COMBINATION_LABELS = {"sum": "sum of series", "mean": "mean of series", "min": "min of series",
                      "max": "max of series", "none": "per series"}  # fmt: skip
NOTHING_VISIBLE = (
    "None of this report's data is visible to you: your data access grants none of it (or there is none in this "
    "period). Ask an organisation admin if you expected to see it."
)


@dataclass(frozen=True)
class SectionQuery:
    """One query of a section: the dashboard's query object with its variables filled in."""

    ref: str
    legend: str
    query: Mapping[str, Any]
    axis: str = "left"  # the value axis its series are drawn against in a chart (`left` or `right`)


@dataclass(frozen=True)
class SectionDefinition:
    """A panel or a report query, independent of who reads it."""

    key: str
    title: str
    kind: str  # chart | table | summary | text
    unit: str = ""
    decimals: int | None = None
    queries: tuple[SectionQuery, ...] = ()
    text: str = ""
    reduce: tuple[str, str] | None = None  # (calculation, combination) of a stat, gauge, bar gauge, bar or pie panel
    panel_type: str = ""  # the dashboard panel's type ("" for a report query)
    options: Mapping[str, Any] = field(default_factory=dict, compare=False)  # the panel's options, as saved

    @property
    def reduce_label(self) -> str:
        """The reduction in words, e.g. "Last (not null), mean of series"."""
        if self.reduce is None:
            return ""
        calculation, combination = self.reduce
        return f"{CALCULATION_LABELS[calculation]}, {COMBINATION_LABELS[combination]}"


@dataclass
class SeriesColumn:
    """One output series of a section: a column of its table."""

    ref: str
    name: str
    labels: dict[str, str]


@dataclass
class Section:
    """A section as one principal sees it."""

    definition: SectionDefinition
    columns: list[SeriesColumn] = field(default_factory=list)
    chart_times: list[datetime] = field(default_factory=list)
    chart_values: list[list[float | None]] = field(default_factory=list)  # per column
    chart_bucket_seconds: int | None = None
    export_bucket_seconds: int = MIN_EXPORT_BUCKET_SECONDS
    error: str = ""
    reduced: list[dict[str, Any]] = field(default_factory=list)  # [{"name", "value"}]: the panel's own numbers

    @property
    def title(self) -> str:
        return self.definition.title

    def summary(self) -> list[dict[str, Any]]:
        """Per column: last, minimum, maximum and mean of the chart's buckets (None when it has no values)."""
        rows = []
        for column, values in zip(self.columns, self.chart_values, strict=True):
            present = [value for value in values if value is not None]
            rows.append(
                {
                    "name": column.name,
                    "last": present[-1] if present else None,
                    "min": min(present) if present else None,
                    "max": max(present) if present else None,
                    "mean": sum(present) / len(present) if present else None,
                    "count": len(present),
                }
            )
        return rows


@dataclass
class ReportContent:
    """Every section of a report for one principal over one period."""

    principal: Any
    start: datetime
    end: datetime
    sections: list[Section]

    @property
    def data_sections(self) -> list[Section]:
        return [section for section in self.sections if section.definition.kind != "text"]

    @property
    def anything_visible(self) -> bool:
        """Whether any section has a series the principal may read."""
        return any(section.columns for section in self.data_sections)


def sections_define(
    *, dashboard_document: Mapping[str, Any] | None, panel_keys: list[str], queries: list[Mapping[str, Any]]
) -> list[SectionDefinition]:
    """The report's sections: the dashboard's panels (the chosen ones, in dashboard order), then its own queries."""
    sections: list[SectionDefinition] = []
    if dashboard_document is not None:
        defaults = _variable_defaults(dashboard_document.get("variables", []))
        chosen = set(panel_keys)
        for panel in dashboard_document.get("panels", []):
            if chosen and panel["key"] not in chosen:
                continue
            options = panel.get("options") or {}
            panel_type = panel.get("type", "timeseries")
            if panel_type == "alertlist":  # live alert instances, not data over the report's range
                continue
            if panel_type == "text":
                sections.append(
                    SectionDefinition(
                        key=panel["key"],
                        title=panel.get("title") or "",
                        kind="text",
                        text=str(options.get("markdown", "")),
                    )
                )
                continue
            kind = (
                "chart"
                if panel_type in CHART_PANEL_TYPES
                else "table"
                if panel_type in TABLE_PANEL_TYPES
                else "summary"
            )
            section_queries = tuple(
                SectionQuery(
                    ref=item.get("ref", "A"),
                    legend=item.get("legend", ""),
                    query=_variables_fill(item.get("query", {}), defaults),
                    axis="right" if item.get("axis") == "right" else "left",
                )
                for item in panel.get("queries", [])
                if not item.get("hidden")
            )
            sections.append(
                SectionDefinition(
                    key=panel["key"],
                    title=panel.get("title") or panel["key"],
                    kind=kind,
                    unit=str(options.get("unit", "")),
                    decimals=options.get("decimals"),
                    queries=section_queries,
                    reduce=panel_reduce(panel_type, options, section_queries[0].query if section_queries else {})
                    if panel_type in REDUCED_PANEL_TYPES
                    else None,
                    panel_type=panel_type,
                    options=options,
                )
            )
    for index, item in enumerate(queries):
        sections.append(
            SectionDefinition(
                key=f"query-{index + 1}",
                title=item.get("title") or f"Query {index + 1}",
                kind="table",
                unit=item.get("unit", ""),
                decimals=item.get("decimals"),
                queries=(SectionQuery(ref="A", legend="", query=item["query"]),),
            )
        )
    return sections


def panel_reduce(panel_type: str, options: Mapping[str, Any], query: Mapping[str, Any]) -> tuple[str, str]:
    """The (calculation, combination) a stat, gauge, bar gauge, bar or pie panel shows: the panel's options, else
    what its first query implies (sums and counts add up; bars, pies and bar gauges one value per series), exactly
    as the dashboard page decides (panelReduce in static/js/dashboards/values.js; docs/dashboards.md, "The value:
    calculation and combination")."""
    aggregation = query.get("aggregation")
    summing = aggregation in ("sum", "count") or re.search(r"(^|\.)count$", str(query.get("metric") or "")) is not None
    calculation = (
        options.get("calculation")
        or LEGACY_REDUCE.get(options.get("reduce"))
        or ("sum" if summing else "last_not_null")
    )
    combination = options.get("combination")
    if not combination:
        if panel_type in PER_SERIES_PANEL_TYPES:
            combination = "none"
        elif summing:
            combination = "sum"
        elif aggregation in ("max", "min"):
            combination = aggregation
        else:
            combination = "mean"
    return calculation, combination


def _variable_defaults(variables: list[Mapping[str, Any]]) -> dict[str, Any]:
    defaults = {}
    for variable in variables:
        default = variable.get("default") or []
        values = default if isinstance(default, list) else [default]
        defaults[variable["name"]] = values if variable.get("multi") else (values[:1] or [])
    return defaults


def _variables_fill(query: Mapping[str, Any], defaults: Mapping[str, Any]) -> dict[str, Any]:
    """Dashboard variables replaced by their defaults; a variable without a default drops its filter (all values)."""
    filled = dict(query)
    filters = {}
    for label, condition in (query.get("filters") or {}).items():
        if isinstance(condition, str) and condition.startswith("$"):
            values = defaults.get(condition[1:], [])
            if not values:
                continue
            filters[label] = list(values) if len(values) > 1 else values[0]
        else:
            filters[label] = condition
    if query.get("filters") is not None:
        filled["filters"] = filters
    return filled


def content_build(
    *, definitions: list[SectionDefinition], principal: Any, start: datetime, end: datetime
) -> ReportContent:
    """Read every section's overview as `principal` (the engine applies their data scope)."""
    sections = [Section(definition=definition) for definition in definitions]
    for section in sections:
        if section.definition.kind != "text":
            _overview_read(section, principal, start, end)
        if section.definition.reduce is not None and section.columns:
            _reduced_read(section, principal, start, end)
    return ReportContent(principal=principal, start=start, end=end, sections=sections)


def _spec(query: Mapping[str, Any], *, start: datetime, end: datetime, **overrides: Any):
    body = {key: value for key, value in query.items() if key not in ("start", "end", "max_points", "limit", "reduce")}
    body.update(start=start.isoformat(), end=end.isoformat(), limit=MAX_SERIES_PER_SECTION)
    body.update(overrides)
    return query_spec_parse(body, now=end)


def _overview_read(section: Section, principal: Any, start: datetime, end: datetime) -> None:
    times: list[str] | None = None
    bucket_seconds: list[int] = []
    for item in section.definition.queries:
        try:
            spec = _spec(
                _chart_query(item.query, start=start, end=end),
                start=start,
                end=end,
                max_points=CHART_POINTS,
                **({"aggregation": "avg"} if item.query.get("aggregation") == "raw" else {}),
            )
            result = query_execute(spec=spec, principal=principal)
        except DataAccessDenied:
            continue
        except QuerySpecError as error:
            if error.field in ("metric", "source"):
                continue  # what may not be read looks like what does not exist: no series here
            section.error = f"{error.field}: {error.message}"
            continue
        except QueryTimeout as error:
            section.error = str(error)
            continue
        if item.query.get("bucket") not in (None, "auto"):
            bucket_seconds.append(duration_parse(item.query["bucket"]))
        for series in result.series:
            if len(section.columns) >= MAX_SERIES_PER_SECTION:
                break
            points = series["points"]
            if times is None:
                times = [moment for moment, _ in points]
                section.chart_bucket_seconds = result.bucket_seconds
            by_time = dict(points) if [moment for moment, _ in points] != times else None
            values = [value for _, value in points] if by_time is None else [by_time.get(t) for t in times]
            section.columns.append(
                SeriesColumn(
                    ref=item.ref,
                    name=_series_name(item, series, len(section.definition.queries), len(result.series)),
                    labels=dict(series.get("labels", {})),
                )
            )
            section.chart_values.append(values)
    section.chart_times = [_parse_time(moment) for moment in times or []]
    range_seconds = (end - start).total_seconds()
    automatic = max(MIN_EXPORT_BUCKET_SECONDS, nice_bucket_at_least(range_seconds / EXPORT_MAX_ROWS))
    section.export_bucket_seconds = max([automatic, *bucket_seconds]) if bucket_seconds else automatic


def _reduced_read(section: Section, principal: Any, start: datetime, end: datetime) -> None:
    """The panel's numbers as the query API reduces them (the panel's query over the report's period at a chart's
    resolution, with its calculation and combination), one item per series or one per query when combined."""
    calculation, combination = section.definition.reduce or ("last_not_null", "mean")
    queries = section.definition.queries
    for item in queries:
        try:
            spec = _spec(
                _chart_query(item.query, start=start, end=end),
                start=start,
                end=end,
                max_points=CHART_POINTS,
                reduce={"calculation": calculation, "combination": combination},
                **({"limit": REDUCED_MAX_SERIES} if combination != "none" else {}),
            )
            result = query_execute(spec=spec, principal=principal)
        except (DataAccessDenied, QuerySpecError, QueryTimeout) as error:
            logger.info("report section %s: reduced value skipped: %s", section.definition.key, error)
            continue
        for reduced in result.reduced or []:
            # A combined value has no labels: a legend template's {label}s are left empty, as the dashboard shows it
            # (the metric names a value whose legend is nothing but labels).
            name = _series_name(item, reduced, len(queries), len(result.reduced))
            name = name or str(item.query.get("metric", "value"))
            section.reduced.append({"name": name, "value": reduced["value"]})


def _chart_query(query: Mapping[str, Any], *, start: datetime, end: datetime) -> Mapping[str, Any]:
    """The query for a chart of the whole period: a bucket finer than the engine answers over it is left to the
    engine's point budget (the exported rows keep the query's own bucket, read in chunks)."""
    bucket = query.get("bucket")
    if bucket in (None, "auto"):
        return query
    if (end - start).total_seconds() / duration_parse(bucket) <= settings.STORAGE_MAX_POINTS_PER_SERIES:
        return query
    return {key: value for key, value in query.items() if key != "bucket"}


_LEGEND_LABEL = re.compile(r"\{\{?\s*([A-Za-z_][A-Za-z0-9_.\-]*)\s*\}?\}")


def legend_text(template: str, labels: Mapping[str, Any]) -> str:
    """A legend like "pressure {facility}" with each {label} (or {{label}}) replaced by the series' value; unknown
    labels stay empty (legendText in static/js/dashboards/values.js)."""
    return _LEGEND_LABEL.sub(lambda match: str(labels.get(match.group(1), "")), template)


def _series_name(item: SectionQuery, series: Mapping[str, Any], query_count: int, series_count: int = 1) -> str:
    """A series' name as the dashboard page shows it (seriesDisplayName in static/js/dashboards/values.js): its
    query's legend, a template filled with its labels ("{segment}" names each slice by its segment), a plain legend
    followed by the labels when the query has several series; else its labels, else the metric, prefixed by the
    query's ref when the panel has several queries."""
    labels = series.get("labels") or {}
    labelled = ", ".join(f"{key}={value}" for key, value in sorted(labels.items()))
    if item.legend:
        text = legend_text(item.legend, labels).strip()
        return text if "{" in item.legend or not labelled or series_count <= 1 else f"{text} {labelled}"
    name = labelled or str(item.query.get("metric") or item.ref or "value")
    return f"{item.ref}: {name}" if query_count > 1 else name


def _parse_time(text: str) -> datetime:
    return datetime.fromisoformat(text.replace("Z", "+00:00"))


@dataclass
class RowChunk:
    """Consecutive rows of a section's table: the bucket times (UTC) and one list of values per column (None
    where the column has no value), in the section's column order."""

    times: list[datetime]
    columns: list[list[Any]]

    def rows(self) -> Iterator[tuple[Any, ...]]:
        """(time, value per column) per row."""
        return zip(self.times, *self.columns, strict=True)


def section_rows(section: Section, *, principal: Any, start: datetime, end: datetime) -> Iterator[list[Any]]:
    """The section's table at export resolution, a row per bucket: [time (UTC), value per column]; streamed."""
    for chunk in section_chunks(section, principal=principal, start=start, end=end):
        for row in chunk.rows():
            yield list(row)


def section_chunks(section: Section, *, principal: Any, start: datetime, end: datetime) -> Iterator[RowChunk]:
    """The section's table at export resolution, CHUNK_BUCKETS buckets at a time (one engine query per query of
    the section and chunk), as columns: the writers format a column or a row at a time, never a Python object
    per point (4.3 million of them for a month of minutes of 100 series)."""
    if not section.columns:
        return
    bucket = section.export_bucket_seconds
    chunk = timedelta(seconds=bucket * CHUNK_BUCKETS)
    chunk_start = start
    while chunk_start < end:
        chunk_end = min(end, bucket_ceil(chunk_start + chunk, bucket) if chunk_start == start else chunk_start + chunk)
        if chunk_end <= chunk_start:
            chunk_end = min(end, chunk_start + chunk)
        rows = _chunk_read(section, principal=principal, start=chunk_start, end=chunk_end)
        if rows is not None:
            yield rows
        chunk_start = chunk_end


def _chunk_read(section: Section, *, principal: Any, start: datetime, end: datetime) -> RowChunk | None:
    """One chunk of the section's rows: every query of the section over [start, end), merged by bucket time.

    A row is a bucket some query answered: every bucket of the chunk, except that a query with fill=none answers
    only the buckets its series have values in (so a chunk where only such queries answered keeps those rows).
    """
    index_of = {(column.ref, _labels_key(column.labels)): index for index, column in enumerate(section.columns)}
    answers: list[tuple[list[str], list[tuple[int, list[Any]]], bool]] = []
    for item in section.definition.queries:
        try:
            spec = _spec(
                item.query,
                start=start,
                end=end,
                bucket=duration_format(section.export_bucket_seconds),
                max_points=CHUNK_BUCKETS + 1,
                **({"aggregation": "avg"} if item.query.get("aggregation") == "raw" else {}),
            )
            result = query_execute(spec=spec, principal=principal, columnar=True)
        except (DataAccessDenied, QuerySpecError, QueryTimeout) as error:
            logger.info("report section %s chunk skipped: %s", section.definition.key, error)
            continue
        matched = []
        for series, values in zip(result.series, result.columns or [], strict=True):
            index = index_of.get((item.ref, _labels_key(series.get("labels", {}))))
            if index is not None:  # else a series that appeared after the overview was read: not a column
                matched.append((index, values))
        if matched:
            answers.append((result.times or [], matched, spec.fill != "none"))
    if not answers:
        return None
    times = answers[0][0]
    if any(answer[0] != times for answer in answers):
        times = sorted({moment for answer in answers for moment in answer[0]})
    width, empty = len(section.columns), [None] * len(times)
    columns: list[list[Any]] = [empty] * width
    for answer_times, matched, _ in answers:
        position = None if answer_times == times else {moment: offset for offset, moment in enumerate(answer_times)}
        for index, values in matched:
            columns[index] = values if position is None else [
                values[position[moment]] if moment in position else None for moment in times
            ]  # fmt: skip
    if not any(every_bucket for _, _, every_bucket in answers):
        kept = [offset for offset, row in enumerate(zip(*columns, strict=True)) if any(v is not None for v in row)]
        times = [times[offset] for offset in kept]
        columns = [[column[offset] for offset in kept] for column in columns]
    return RowChunk(times=[_parse_time(moment) for moment in times], columns=columns)


def _labels_key(labels: Mapping[str, Any]) -> tuple:
    return tuple(sorted((str(key), str(value)) for key, value in labels.items()))


def utc(moment: datetime) -> datetime:
    """An aware UTC datetime."""
    return moment.astimezone(UTC)
