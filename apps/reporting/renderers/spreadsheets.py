"""The XLSX workbook (openpyxl, write-only: rows stream to disk) and the CSV files of a report.

Both take their rows from `content.section_rows`, a chunk of buckets at a time, so a month of minutes for a
hundred series never sits in memory whole. Every text cell goes through `cell_text_safe` (formula injection);
numbers and times are written typed and untouched.
"""

from __future__ import annotations

import csv
import re
import zipfile
from collections.abc import Iterable
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Font

from apps.reporting.content import NOTHING_VISIBLE, ReportContent, Section, section_rows
from apps.reporting.spreadsheet_safety import cell_safe, cell_text_safe
from apps.reporting.time_ranges import period_label

SHEET_TITLE_MAX = 31
CHART_SERIES_MAX = 50
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\']")
TIME_FORMAT = "yyyy-mm-dd hh:mm"


def _sheet_title(title: str, used: set[str]) -> str:
    base = _SHEET_FORBIDDEN.sub(" ", title).strip().lstrip("=+-@") or "Sheet"
    base = base[:SHEET_TITLE_MAX]
    candidate, number = base, 2
    while candidate.lower() in used:
        suffix = f" ({number})"
        candidate, number = base[: SHEET_TITLE_MAX - len(suffix)] + suffix, number + 1
    used.add(candidate.lower())
    return candidate


def _value_format(decimals: Any, unit: str) -> str:
    places = decimals if isinstance(decimals, int) and 0 <= decimals <= 10 else 2
    number = "#,##0" + ("." + "0" * places if places else "")
    unit = unit.replace('"', "").replace("\\", "")
    return f'{number}" {unit}"' if unit else number


def _local_naive(moment: datetime, zone: ZoneInfo) -> datetime:
    """Excel has no time zones: times are written as the report zone's wall-clock time (named in the header)."""
    return moment.astimezone(zone).replace(tzinfo=None)


def xlsx_render(
    *, content: ReportContent, report_name: str, zone: ZoneInfo, generated_at: datetime, target: Path
) -> dict[str, int]:
    """Write the workbook; returns the rows written per sheet."""
    workbook = Workbook(write_only=True)
    bold = Font(bold=True)
    used: set[str] = {"summary"}
    summary = workbook.create_sheet("Summary")
    summary.freeze_panes = "A8"

    def heading(sheet, value: Any) -> WriteOnlyCell:
        cell = WriteOnlyCell(sheet, value=cell_safe(value))
        cell.font = bold
        return cell

    summary.append([heading(summary, "Report"), cell_text_safe(report_name)])
    summary.append([heading(summary, "Period"), period_label(content.start, content.end, zone)])
    generated = WriteOnlyCell(summary, value=_local_naive(generated_at, zone))
    generated.number_format = TIME_FORMAT
    summary.append([heading(summary, "Generated"), generated])
    summary.append([heading(summary, "Time zone"), zone.key])
    summary.append([heading(summary, "Note"), "" if content.anything_visible else NOTHING_VISIBLE])
    summary.append([])
    summary.append([heading(summary, name) for name in ("Panel", "Series", "Unit", "Last", "Min", "Max", "Mean")])
    plans = []
    for section in content.data_sections:
        value_format = _value_format(section.definition.decimals, section.definition.unit)
        for row in section.summary():
            cells = [
                cell_text_safe(section.title),
                cell_text_safe(row["name"]),
                cell_text_safe(section.definition.unit),
            ]
            for key in ("last", "min", "max", "mean"):
                cell = WriteOnlyCell(summary, value=row[key])
                cell.number_format = value_format
                cells.append(cell)
            summary.append(cells)
        if section.columns:
            plans.append((section, _sheet_title(section.title, used), value_format))
    rows_written: dict[str, int] = {}
    for section, title, value_format in plans:
        sheet = workbook.create_sheet(title)
        sheet.freeze_panes = "B2"
        sheet.column_dimensions["A"].width = 18
        header = [heading(sheet, f"Time ({zone.key})")]
        header += [heading(sheet, cell_text_safe(column.name)) for column in section.columns]
        sheet.append(header)
        time_cell = WriteOnlyCell(sheet)
        time_cell.number_format = TIME_FORMAT
        value_cells = []
        for _ in section.columns:
            cell = WriteOnlyCell(sheet)
            cell.number_format = value_format
            value_cells.append(cell)
        count = 0
        for row in section_rows(section, principal=content.principal, start=content.start, end=content.end):
            time_cell.value = _local_naive(row[0], zone)
            cells: list[Any] = [time_cell]
            for cell, value in zip(value_cells, row[1:], strict=True):
                if value is None:
                    cells.append(None)
                else:
                    cell.value = value
                    cells.append(cell)
            sheet.append(cells)
            count += 1
        rows_written[title] = count
        if section.definition.kind == "chart" and count:
            _chart_add(sheet, section, count)
    workbook.save(target)
    return rows_written


def _chart_add(sheet, section: Section, rows: int) -> None:
    chart = LineChart()
    chart.title = section.title[:200]
    chart.y_axis.title = section.definition.unit or None
    chart.x_axis.number_format = "dd mmm hh:mm"
    chart.height, chart.width = 9, 22
    columns = min(len(section.columns), CHART_SERIES_MAX)
    data = Reference(sheet, min_col=2, max_col=1 + columns, min_row=1, max_row=rows + 1)
    chart.add_data(data, titles_from_data=True)
    chart.set_categories(Reference(sheet, min_col=1, min_row=2, max_row=rows + 1))
    for series in chart.series:
        series.smooth = False
        series.graphicalProperties.line.width = 12_700  # 1 pt
    sheet.add_chart(chart, "B4")


def csv_render(*, content: ReportContent, zone: ZoneInfo, directory: Path, base_name: str) -> list[Path]:
    """One UTF-8 CSV per table (time first, ISO 8601 with the zone's offset); zipped into one file if several."""
    directory.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    used: set[str] = set()
    for section in content.data_sections:
        if not section.columns:
            continue
        stem = slugify(section.title)[:60] or section.definition.key
        name, number = stem, 2
        while name in used:
            name, number = f"{stem}-{number}", number + 1
        used.add(name)
        path = directory / f"{name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["time", *(cell_text_safe(column.name) for column in section.columns)])
            writer.writerows(_csv_rows(section, content, zone))
        files.append(path)
    if not files:
        path = directory / f"{base_name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            csv.writer(handle).writerow(["note"])
            csv.writer(handle).writerow([NOTHING_VISIBLE])
        return [path]
    if len(files) == 1:
        return files
    archive = directory / f"{base_name}-csv.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in files:
            zipped.write(path, arcname=path.name)
            path.unlink()
    return [archive]


def _csv_rows(section: Section, content: ReportContent, zone: ZoneInfo) -> Iterable[list[Any]]:
    for row in section_rows(section, principal=content.principal, start=content.start, end=content.end):
        yield [row[0].astimezone(zone).isoformat(), *("" if value is None else repr(value) for value in row[1:])]
