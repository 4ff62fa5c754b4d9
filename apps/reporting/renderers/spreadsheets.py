"""The XLSX workbook (openpyxl, write-only: rows stream to disk) and the CSV files of a report.

Both take their rows from `content.section_rows`, a chunk of buckets at a time, so a month of minutes for a
hundred series never sits in memory whole; when both formats are wanted, each table's rows are read from the
engine once and written to both. Every text cell goes through `cell_text_safe` (formula injection);
numbers and times are written typed and untouched.
"""

from __future__ import annotations

import csv
import re
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.chart import LineChart, Reference
from openpyxl.styles import Font

from analytics_platform.spreadsheet_cells import cell_safe, cell_text_safe
from apps.reporting.content import NOTHING_VISIBLE, ReportContent, Section, section_rows
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


class _StyledCell(Cell):
    """A cell whose repr is cheap: openpyxl's write-only sheet takes a styled cell through a ValueError whose
    message formats the cell's repr, which cost about 8% of a large sheet's writing (cProfile, 500k cells)."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "<cell>"


def _styled_cell(sheet, number_format: str) -> Cell:
    cell = _StyledCell(sheet, row=1, column=1)
    cell.number_format = number_format
    return cell


class _Workbook:
    """The XLSX being written: a summary sheet first, then a sheet per table as its rows stream in."""

    def __init__(self, *, content: ReportContent, report_name: str, zone: ZoneInfo, generated_at: datetime) -> None:
        self.workbook = Workbook(write_only=True)
        self.zone = zone
        self.bold = Font(bold=True)
        self.used: set[str] = {"summary"}
        summary = self.workbook.create_sheet("Summary")
        summary.freeze_panes = "A8"
        summary.append([self.heading(summary, "Report"), cell_text_safe(report_name)])
        summary.append([self.heading(summary, "Period"), period_label(content.start, content.end, zone)])
        generated = _styled_cell(summary, TIME_FORMAT)
        generated.value = _local_naive(generated_at, zone)
        summary.append([self.heading(summary, "Generated"), generated])
        summary.append([self.heading(summary, "Time zone"), zone.key])
        summary.append([self.heading(summary, "Note"), "" if content.anything_visible else NOTHING_VISIBLE])
        summary.append([])
        summary.append(
            [self.heading(summary, name) for name in ("Panel", "Series", "Unit", "Last", "Min", "Max", "Mean")]
        )
        for section in content.data_sections:
            value_format = _value_format(section.definition.decimals, section.definition.unit)
            for row in section.summary():
                cells: list[Any] = [cell_text_safe(section.title), cell_text_safe(row["name"]),
                                    cell_text_safe(section.definition.unit)]  # fmt: skip
                for key in ("last", "min", "max", "mean"):
                    cell = _styled_cell(summary, value_format)
                    cell.value = row[key]
                    cells.append(cell)
                summary.append(cells)
        self.rows_written: dict[str, int] = {}

    def heading(self, sheet, value: Any) -> Cell:
        cell = WriteOnlyCell(sheet, value=cell_safe(value))
        cell.font = self.bold
        return cell

    def table(self, section: Section):
        """A sheet for the section; returns (append a row, finish)."""
        title = _sheet_title(section.title, self.used)
        sheet = self.workbook.create_sheet(title)
        sheet.freeze_panes = "B2"
        sheet.column_dimensions["A"].width = 18
        header = [self.heading(sheet, f"Time ({self.zone.key})")]
        header += [self.heading(sheet, cell_text_safe(column.name)) for column in section.columns]
        sheet.append(header)
        time_cell = _styled_cell(sheet, TIME_FORMAT)
        value_format = _value_format(section.definition.decimals, section.definition.unit)
        value_cells = [_styled_cell(sheet, value_format) for _ in section.columns]
        count = 0

        def append(row: list[Any]) -> None:
            nonlocal count
            time_cell.value = _local_naive(row[0], self.zone)
            cells: list[Any] = [time_cell]
            for cell, value in zip(value_cells, row[1:], strict=True):
                if value is None:
                    cells.append(None)
                else:
                    cell.value = value
                    cells.append(cell)
            sheet.append(cells)
            count += 1

        def finish() -> None:
            self.rows_written[title] = count
            if section.definition.kind == "chart" and count:
                _chart_add(sheet, section, count)

        return append, finish

    def save(self, target: Path) -> dict[str, int]:
        self.workbook.save(target)
        return self.rows_written


def tables_render(
    *,
    content: ReportContent,
    report_name: str,
    zone: ZoneInfo,
    generated_at: datetime,
    xlsx_target: Path | None,
    csv_directory: Path | None,
    base_name: str,
) -> tuple[dict[str, int], list[Path]]:
    """The XLSX workbook and/or the CSV files, reading each table's rows from the engine once for both.

    Returns the rows written per sheet and the CSV file(s) (one per table; zipped into one when several).
    """
    workbook = _Workbook(content=content, report_name=report_name, zone=zone, generated_at=generated_at) if (
        xlsx_target is not None) else None  # fmt: skip
    csv_files: list[Path] = []
    used: set[str] = set()
    if csv_directory is not None:
        csv_directory.mkdir(parents=True, exist_ok=True)
    for section in content.data_sections:
        if not section.columns:
            continue
        append, finish = workbook.table(section) if workbook else (None, None)
        handle = writer = None
        if csv_directory is not None:
            path = csv_directory / f"{_csv_stem(section, used)}.csv"
            csv_files.append(path)
            handle = path.open("w", encoding="utf-8", newline="")
            writer = csv.writer(handle)
            writer.writerow(["time", *(cell_text_safe(column.name) for column in section.columns)])
        try:
            for row in section_rows(section, principal=content.principal, start=content.start, end=content.end):
                if append is not None:
                    append(row)
                if writer is not None:
                    writer.writerow([row[0].astimezone(zone).isoformat(),
                                     *("" if value is None else repr(value) for value in row[1:])])  # fmt: skip
        finally:
            if handle is not None:
                handle.close()
        if finish is not None:
            finish()
    rows_written = workbook.save(xlsx_target) if workbook else {}
    if csv_directory is None:
        return rows_written, []
    return rows_written, _csv_bundle(csv_files, content=content, directory=csv_directory, base_name=base_name)


def _csv_stem(section: Section, used: set[str]) -> str:
    stem = slugify(section.title)[:60] or section.definition.key
    name, number = stem, 2
    while name in used:
        name, number = f"{stem}-{number}", number + 1
    used.add(name)
    return name


def _csv_bundle(files: list[Path], *, content: ReportContent, directory: Path, base_name: str) -> list[Path]:
    """One CSV as it is, several zipped into one file, none (nothing visible) a CSV saying so."""
    if not files:
        path = directory / f"{base_name}.csv"
        with path.open("w", encoding="utf-8", newline="") as handle:
            writer = csv.writer(handle)
            writer.writerow(["note"])
            writer.writerow([NOTHING_VISIBLE])
        return [path]
    if len(files) == 1:
        return files
    archive = directory / f"{base_name}-csv.zip"
    with zipfile.ZipFile(archive, "w", compression=zipfile.ZIP_DEFLATED) as zipped:
        for path in files:
            zipped.write(path, arcname=path.name)
            path.unlink()
    return [archive]


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
