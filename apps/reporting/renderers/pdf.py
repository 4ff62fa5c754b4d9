"""The PDF: a title page, each panel as a server-drawn SVG chart with its summary, tables with repeated headers.

WeasyPrint gets a URL fetcher that serves the project's own static files and nothing else: no file://, no
network, no data the template did not put there, and so no redirects. User text reaches the HTML only through
Django's autoescaping, so a panel title cannot add a URL.
"""

from __future__ import annotations

import logging
import mimetypes
import posixpath
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any
from urllib.parse import unquote, urlsplit
from zoneinfo import ZoneInfo

from django.contrib.staticfiles import finders
from django.template.loader import render_to_string
from django.utils.safestring import mark_safe
from weasyprint import HTML
from weasyprint.urls import URLFetcher, URLFetcherResponse

from apps.reporting.charts import (
    PALETTE,
    ChartSeries,
    axis_bound,
    bar_chart_svg,
    displayed,
    heatmap_scale,
    heatmap_svg,
    line_chart_svg,
    pie_chart_svg,
    reduced_colors,
    state_timeline_svg,
    threshold_lines,
)
from apps.reporting.content import NOTHING_VISIBLE, ReportContent, Section
from apps.reporting.time_ranges import period_label

logger = logging.getLogger(__name__)

STATIC_SCHEME = "report-static"
PDF_TABLE_MAX_COLUMNS = 8  # wider tables show their summary; the full table is in the XLSX and CSV files
STATIC_ALLOWED_SUFFIXES = (".css", ".svg", ".png", ".woff2", ".woff", ".ttf")


class StaticOnlyURLFetcher(URLFetcher):
    """Serves `report-static:/<path>` from the project's static files; refuses every other URL."""

    def __init__(self) -> None:
        super().__init__(allowed_protocols=(STATIC_SCHEME,), allow_redirects=False)
        self.refused: list[str] = []

    def fetch(self, url: str, headers=None) -> URLFetcherResponse:
        parts = urlsplit(url)
        relative = posixpath.normpath(unquote(parts.path).lstrip("/"))
        if (
            parts.scheme != STATIC_SCHEME
            or parts.netloc
            or relative.startswith("..")
            or not relative.endswith(STATIC_ALLOWED_SUFFIXES)
        ):
            return self._refuse(url)
        found = finders.find(relative)
        if not found:
            return self._refuse(url)
        mime_type = mimetypes.guess_type(relative)[0] or "application/octet-stream"
        return URLFetcherResponse(url, body=Path(found).read_bytes(), headers={"Content-Type": mime_type})

    def _refuse(self, url: str) -> URLFetcherResponse:
        self.refused.append(url)
        logger.warning("report PDF: refused to load %s (only the project's static files load)", url[:200])
        raise ValueError(f"refused: {url[:200]}")


@dataclass
class PdfMeta:
    """What the title page and footer say."""

    report_name: str
    organization_name: str
    recipient_label: str
    zone: ZoneInfo
    generated_at: datetime


def _decimals(value: Any, fallback: int | None = None) -> int | None:
    """A panel's decimals option (`fallback` when unset or not a whole number: the right axis takes the left's, as
    the page's valueAxis does)."""
    return value if isinstance(value, int) and not isinstance(value, bool) and 0 <= value <= 20 else fallback


def _number(value: float | None, decimals: int | None) -> str:
    if value is None:
        return "-"
    if decimals is not None:
        return f"{value:,.{decimals}f}"
    return f"{value:,.2f}" if abs(value) < 1e9 else f"{value:.4g}"


def chart_series(section: Section) -> list[ChartSeries]:
    """The section's lines as the dashboard draws them: each on its query's axis, in the palette's colour by
    position, then the panel's `overrides` (the first whose `match` is the series' name or its query's ref) may
    move it to the other axis, give it a colour, or hide it (applyOverrides in static/js/dashboards/panels.js)."""
    axes = {item.ref: item.axis for item in section.definition.queries}
    overrides = [item for item in section.definition.options.get("overrides") or () if isinstance(item, dict)]
    lines = []
    for index, (column, values) in enumerate(zip(section.columns, section.chart_values, strict=True)):
        override = next((item for item in overrides if item.get("match") in (column.name, column.ref)), {})
        if override.get("hide"):
            continue
        axis = override.get("axis") or axes.get(column.ref, "left")
        color = override.get("color") or PALETTE[index % len(PALETTE)]
        lines.append(ChartSeries(column.name, values, "right" if axis == "right" else "left", str(color)))
    return lines


def _section_context(section: Section, content: ReportContent, zone: ZoneInfo) -> dict:
    definition = section.definition
    options = definition.options
    decimals = _decimals(definition.decimals)
    context = {
        "title": definition.title,
        "kind": definition.kind,
        "unit": definition.unit,
        "text": definition.text,
        "error": section.error,
        "empty": not section.columns,
        "summary": [
            {**row, **{key: _number(row[key], decimals) for key in ("last", "min", "max", "mean")}}
            for row in section.summary()
        ],
        "reduce_label": definition.reduce_label,
        # The panel's numbers as the page shows them: a value mapping's text, and the mapping's or threshold's colour.
        "reduced": [
            {"name": item["name"], "value": text or _number(item["value"], decimals), "color": color}
            for item in section.reduced
            for text, color in [displayed(item["value"], options, "")]
        ],
    }
    if definition.panel_type == "heatmap" and section.columns:
        context["chart"] = mark_safe(  # noqa: S308 (built by charts.py, every text in it escaped)
            heatmap_svg(
                times=section.chart_times,
                series=chart_series(section),
                zone=zone,
                scale=heatmap_scale(options),
                low=axis_bound(options.get("min")),
                high=axis_bound(options.get("max")),
                unit=definition.unit,
                decimals=decimals,
            )
        )
    elif definition.panel_type == "state_timeline" and section.columns:
        context["chart"] = mark_safe(  # noqa: S308 (built by charts.py, every text in it escaped)
            state_timeline_svg(
                times=section.chart_times, series=chart_series(section), zone=zone, end=content.end, options=options
            )
        )
    elif definition.kind == "chart" and section.columns:
        context["chart"] = mark_safe(  # noqa: S308 (built by charts.py, every text in it escaped)
            line_chart_svg(
                times=section.chart_times,
                series=chart_series(section),
                zone=zone,
                unit=definition.unit,
                unit_right=str(options.get("unit_right") or ""),
                decimals=decimals,
                decimals_right=_decimals(options.get("decimals_right"), decimals),
                thresholds=threshold_lines(options.get("thresholds")) if options.get("threshold_lines") else (),
                bounds={
                    side: (axis_bound(options.get(f"min{suffix}")), axis_bound(options.get(f"max{suffix}")))
                    for side, suffix in (("left", ""), ("right", "_right"))
                },
            )
        )
    elif definition.panel_type == "pie" and section.reduced:
        context["chart"] = mark_safe(  # noqa: S308 (built by charts.py, every text in it escaped)
            pie_chart_svg(
                items=[(item["name"] or str(index + 1), item["value"]) for index, item in enumerate(section.reduced)],
                donut=options.get("donut") is not False,
            )
        )
    elif definition.panel_type == "bar" and section.reduced:
        # Coloured by the thresholds the value reaches, else the palette, as the dashboard page colours its bars.
        values = [item["value"] for item in section.reduced]
        context["chart"] = mark_safe(  # noqa: S308 (built by charts.py, every text in it escaped)
            bar_chart_svg(
                items=[
                    (item["name"] or str(index + 1), item["value"], color)
                    for index, (item, color) in enumerate(
                        zip(section.reduced, reduced_colors("bar", values, options), strict=True)
                    )
                ],
                horizontal=options.get("orientation") == "horizontal",
                unit=definition.unit,
                decimals=decimals,
            )
        )
    if definition.kind == "table" and section.columns and len(section.columns) <= PDF_TABLE_MAX_COLUMNS:
        context["table"] = {
            "columns": [column.name for column in section.columns],
            "rows": [
                [
                    moment.astimezone(zone).strftime("%Y-%m-%d %H:%M"),
                    *(_number(values[index], decimals) for values in section.chart_values),
                ]
                for index, moment in enumerate(section.chart_times)
            ],
        }
    return context


def pdf_render(*, content: ReportContent, meta: PdfMeta, target: Path) -> StaticOnlyURLFetcher:
    """Write the PDF of `content` to `target`; returns the fetcher (what it refused, for the logs and tests)."""
    html = render_to_string(
        "reporting/report_pdf.html",
        {
            "meta": meta,
            "period": period_label(content.start, content.end, meta.zone),
            "generated": meta.generated_at.astimezone(meta.zone).strftime("%Y-%m-%d %H:%M %Z"),
            "nothing_visible": NOTHING_VISIBLE if not content.anything_visible else "",
            "sections": [_section_context(section, content, meta.zone) for section in content.sections],
            "static_scheme": STATIC_SCHEME,
        },
    )
    return pdf_from_html(html, target)


def pdf_from_html(html: str, target: Path) -> StaticOnlyURLFetcher:
    """Render HTML to a PDF file with the static-only fetcher."""
    fetcher = StaticOnlyURLFetcher()
    HTML(string=html, base_url=f"{STATIC_SCHEME}:/", url_fetcher=fetcher).write_pdf(target)
    return fetcher
