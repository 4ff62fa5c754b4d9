"""The XLSX workbook (openpyxl, write-only: rows stream to disk) and the CSV files of a report.

Both take their rows from `content.section_chunks`, a chunk of buckets at a time, so a month of minutes for a
hundred series never sits in memory whole; when both formats are wanted, each table's rows are read from the
engine once and written to both. Every text cell goes through `cell_text_safe` (formula injection);
numbers and times are written typed and untouched.

A data sheet's rows are numbers only (a time, then a value per series), millions of cells for a month of
minutes: openpyxl writes about 40,000 cells a second (an XML element object per cell), so those rows are written
here as the sheet XML openpyxl would write for them (the same cell elements, the same number formatting, the
style ids openpyxl registered for the two number formats) into a temporary file, and spliced into the sheet
openpyxl wrote (its header row, frozen panes, column width and chart) when the workbook is saved.
"""

from __future__ import annotations

import csv
import math
import re
import shutil
import tempfile
import zipfile
from datetime import datetime
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from django.utils.text import slugify
from openpyxl import Workbook
from openpyxl.cell import WriteOnlyCell
from openpyxl.cell.cell import Cell
from openpyxl.chart import BarChart, DoughnutChart, LineChart, PieChart, Reference
from openpyxl.chart.marker import DataPoint
from openpyxl.formatting.rule import ColorScaleRule, FormulaRule
from openpyxl.styles import Font, PatternFill
from openpyxl.utils import get_column_letter
from openpyxl.utils.datetime import to_excel
from openpyxl.worksheet.properties import PageSetupProperties
from PIL import ImageColor

from analytics_platform.spreadsheet_cells import cell_safe, cell_text_safe
from apps.reporting.charts import PALETTE, axis_bound, heatmap_scale, reduced_colors, scale_colors
from apps.reporting.content import NOTHING_VISIBLE, ReportContent, RowChunk, Section, section_chunks
from apps.reporting.time_ranges import period_label

SHEET_TITLE_MAX = 31
CHART_SERIES_MAX = 50
# Panels Excel has no chart for: their data sheet's cells are coloured as the page colours them instead.
CELL_COLORED_PANELS = ("heatmap", "state_timeline")
REDUCED_CHART_ROWS = 16  # rows of the Summary sheet a pie or bar chart (7.5 cm high) covers, and a gap
_SHEET_FORBIDDEN = re.compile(r"[\[\]:*?/\\']")
TIME_FORMAT = "yyyy-mm-dd hh:mm"
SHEET_DATA_END = b"</sheetData>"
COPY_BUFFER_BYTES = 1 << 20


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
        rows = 0  # written so far (a write-only sheet does not count them)

        def append(row: list[Any]) -> None:
            nonlocal rows
            summary.append(row)
            rows += 1

        # Wide enough for a timestamp and a series' labels (openpyxl's default of 8.43 characters showed "###" for
        # the generation time and cut every series name); set before the first row, as a write-only sheet needs.
        for column, width in zip("ABCDEFG", (20, 48, 10, 14, 14, 14, 14), strict=True):
            summary.column_dimensions[column].width = width
        # Printed, the sheet's columns fit a landscape page's width (its rows run on over as many pages as they need).
        summary.sheet_properties.pageSetUpPr = PageSetupProperties(fitToPage=True)
        summary.page_setup.orientation = "landscape"
        summary.page_setup.fitToWidth, summary.page_setup.fitToHeight = 1, 0
        append([self.heading(summary, "Report"), cell_text_safe(report_name)])
        append([self.heading(summary, "Period"), period_label(content.start, content.end, zone)])
        generated = _styled_cell(summary, TIME_FORMAT)
        generated.value = _local_naive(generated_at, zone)
        append([self.heading(summary, "Generated"), generated])
        append([self.heading(summary, "Time zone"), zone.key])
        append([self.heading(summary, "Note"), "" if content.anything_visible else NOTHING_VISIBLE])
        append([])
        # The panels' own numbers first (what the dashboard's stats, gauges, bars and pies show), then every series'
        # last / min / max / mean: a stat over 700 series put its one number below 700 rows.
        reduced = [section for section in content.data_sections if section.reduced]
        if reduced:
            append([self.heading(summary, name) for name in ("Panel", "Series", "Unit", "Value", "Reduced as")])
            chart_row, charted = 0, False
            for section in reduced:
                value_format = _value_format(section.definition.decimals, section.definition.unit)
                first = rows + 1  # the sheet row of this section's first value
                for item in section.reduced:
                    cell = _styled_cell(summary, value_format)
                    cell.value = item["value"]
                    append([cell_text_safe(section.title), cell_text_safe(item["name"]),
                            cell_text_safe(section.definition.unit), cell,
                            section.definition.reduce_label])  # fmt: skip
                if section.definition.panel_type in ("pie", "bar"):
                    # Beside its values, below the previous chart (a chart is about 15 rows high).
                    chart_row = max(first, chart_row + REDUCED_CHART_ROWS) if charted else first
                    _reduced_chart_add(summary, section, first, rows, anchor=f"H{chart_row}")
                    charted = True
            append([])
        else:
            summary.freeze_panes = "A8"  # the series table's header stays in view
        append([self.heading(summary, name) for name in ("Panel", "Series", "Unit", "Last", "Min", "Max", "Mean")])
        for section in content.data_sections:
            value_format = _value_format(section.definition.decimals, section.definition.unit)
            for row in section.summary():
                cells: list[Any] = [cell_text_safe(section.title), cell_text_safe(row["name"]),
                                    cell_text_safe(section.definition.unit)]  # fmt: skip
                for key in ("last", "min", "max", "mean"):
                    cell = _styled_cell(summary, value_format)
                    cell.value = row[key]
                    cells.append(cell)
                append(cells)
        self.rows_written: dict[str, int] = {}
        self.sheet_rows: list[tuple[Any, _SheetRows]] = []

    def heading(self, sheet, value: Any) -> Cell:
        cell = WriteOnlyCell(sheet, value=cell_safe(value))
        cell.font = self.bold
        return cell

    def table(self, section: Section):
        """A sheet for the section; returns (append a chunk of rows, finish)."""
        title = _sheet_title(section.title, self.used)
        sheet = self.workbook.create_sheet(title)
        sheet.freeze_panes = "B2"
        sheet.column_dimensions["A"].width = 18
        header = [self.heading(sheet, f"Time ({self.zone.key})")]
        header += [self.heading(sheet, cell_text_safe(column.name)) for column in section.columns]
        sheet.append(header)
        value_format = _value_format(section.definition.decimals, section.definition.unit)
        rows = _SheetRows(
            time_style=_styled_cell(sheet, TIME_FORMAT).style_id,
            value_style=_styled_cell(sheet, value_format).style_id,
            width=len(section.columns),
            zone=self.zone,
            epoch=self.workbook.epoch,
        )
        self.sheet_rows.append((sheet, rows))

        def finish() -> None:
            self.rows_written[title] = rows.count
            if section.definition.kind == "chart" and rows.count:
                if section.definition.panel_type in CELL_COLORED_PANELS:
                    _cells_color(sheet, section, rows.count)
                else:
                    _chart_add(sheet, section, rows.count)

        return rows.append, finish

    def save(self, target: Path) -> dict[str, int]:
        """openpyxl writes the workbook (each data sheet with its header row only); the rows are spliced in."""
        try:
            self.workbook.save(target)
            _rows_splice(target, {sheet.path.lstrip("/"): rows for sheet, rows in self.sheet_rows})
        finally:
            for _, rows in self.sheet_rows:
                rows.close()
        return self.rows_written


class _SheetRows:
    """A data sheet's rows from row 2 on, as sheet XML in a temporary file: per row a time cell (an Excel date
    serial with the time format) and a number cell per value present (with the value format). Numbers are
    written as openpyxl writes them ("%.16g"); a value that is not finite (which ingestion refuses) is left out,
    as openpyxl leaves it empty."""

    def __init__(self, *, time_style: int, value_style: int, width: int, zone: ZoneInfo, epoch: datetime) -> None:
        self.file = tempfile.TemporaryFile()  # noqa: SIM115 - closed by close(), after the splice read it
        self.count = 0
        self.zone, self.epoch = zone, epoch
        self.time_cell = f'" s="{time_style}" t="n"><v>'
        value_cell = f'" s="{value_style}" t="n"><v>'
        self.cell_prefixes = [(f'<c r="{get_column_letter(column)}', value_cell) for column in range(2, width + 2)]

    def append(self, chunk: RowChunk) -> None:
        columns = [_finite(column) for column in chunk.columns]
        parts: list[str] = []
        add = parts.append
        for offset, moment in enumerate(chunk.times):
            row = str(self.count + offset + 2)
            serial = to_excel(_local_naive(moment, self.zone), self.epoch)
            add(f'<row r="{row}"><c r="A{row}{self.time_cell}{serial:.16g}</v></c>')
            for (prefix, cell), column in zip(self.cell_prefixes, columns, strict=True):
                value = column[offset]
                if value is not None:
                    add(f"{prefix}{row}{cell}{value:.16g}</v></c>")
            add("</row>")
        self.file.write("".join(parts).encode("ascii"))
        self.count += len(chunk.times)

    def close(self) -> None:
        self.file.close()


def _finite(values: list[Any]) -> list[Any]:
    """The values with any that is not finite (NaN, infinity) as None; one C-speed sum tells when all are."""
    try:
        if math.isfinite(math.fsum(filter(None, values))):
            return values
    except (OverflowError, ValueError):  # an overflowing sum of finite values; inf and -inf together
        pass
    return [value if value is None or math.isfinite(value) else None for value in values]


def _rows_splice(target: Path, rows: dict[str, _SheetRows]) -> None:
    """Rewrite the saved workbook with each data sheet's rows inserted before its `</sheetData>`; every other
    part is copied as it is (streamed, so a sheet of millions of cells is never in memory whole)."""
    spliced = target.with_name(target.name + ".part")
    try:
        with zipfile.ZipFile(target) as source, zipfile.ZipFile(spliced, "w", zipfile.ZIP_DEFLATED) as output:
            for info in source.infolist():
                sheet_rows = rows.get(info.filename)
                if sheet_rows is None:
                    output.writestr(info, source.read(info))
                    continue
                head, tail = source.read(info).split(SHEET_DATA_END, 1)
                with output.open(info.filename, "w", force_zip64=True) as member:
                    member.write(head)
                    sheet_rows.file.seek(0)
                    shutil.copyfileobj(sheet_rows.file, member, COPY_BUFFER_BYTES)
                    member.write(SHEET_DATA_END + tail)
        spliced.replace(target)
    finally:
        spliced.unlink(missing_ok=True)


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
            for chunk in section_chunks(section, principal=content.principal, start=content.start, end=content.end):
                if append is not None:
                    append(chunk)
                if writer is not None:
                    # csv writes None as an empty cell and a number as its repr, as the values are wanted.
                    times = [moment.astimezone(zone).isoformat() for moment in chunk.times]
                    writer.writerows(zip(times, *chunk.columns, strict=True))
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


def _reduced_chart_add(sheet, section: Section, first: int, last: int, *, anchor: str) -> None:
    """A native pie or bar chart of a pie or bar panel's values (rows `first` to `last` of the Summary sheet: names
    in column B, values in D), beside them, as the PDF and the dashboard draw it."""
    if section.definition.panel_type == "pie":
        # A donut unless the panel says not (`donut`), with the dashboard's hole of 45 %.
        chart = PieChart() if section.definition.options.get("donut") is False else DoughnutChart(holeSize=45)
    else:
        chart = BarChart()
        chart.type = "bar" if section.definition.options.get("orientation") == "horizontal" else "col"
        chart.legend = None
        chart.y_axis.title = section.definition.unit or None
    chart.title = section.title[:200]
    chart.height, chart.width = 7.5, 12
    chart.add_data(Reference(sheet, min_col=4, min_row=first, max_row=last), titles_from_data=False)
    chart.set_categories(Reference(sheet, min_col=2, min_row=first, max_row=last))
    # The dashboard's colours (an office suite's own palette otherwise): a slice each in the palette's, a bar in its
    # mapping's or threshold's colour, else the palette's (as pdf.py draws them).
    values = [item["value"] for item in section.reduced]
    for index, color in enumerate(reduced_colors(section.definition.panel_type, values, section.definition.options)):
        rgb = _rgb_hex(color)
        if rgb:
            point = DataPoint(idx=index)
            point.graphicalProperties.solidFill = rgb
            chart.series[0].dPt.append(point)
    sheet.add_chart(chart, anchor)


def _rgb_hex(color: str) -> str | None:
    """A panel's colour ("#d62728", "green", "rgb(0, 128, 0)": what a browser takes) as DrawingML's "RRGGBB"; None
    for what is not a colour (that point keeps the suite's own)."""
    try:
        red, green, blue, *_ = ImageColor.getrgb(color)
    except ValueError:
        return None
    return f"{red:02X}{green:02X}{blue:02X}"


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


def _cells_color(sheet, section: Section, rows: int) -> None:
    """A heatmap's or state timeline's data cells coloured with conditional formatting, as the page colours the
    panel: a heatmap on its plotly.js scale between the panel's `min` and `max` (else the values' own; Excel's
    colour scales have at most three stops: the scale's ends and middle), a state timeline by state (each of
    `states` from its key up to the next, else each value mapping; the state's or mapping's colour, else the
    palette's in their order). The numbers stay as they are."""
    options = section.definition.options
    cells = f"B2:{get_column_letter(1 + len(section.columns))}{rows + 1}"
    if section.definition.panel_type == "heatmap":
        low, high = axis_bound(options.get("min")), axis_bound(options.get("max"))
        if low is not None and high is not None and high <= low:
            high = low + 1  # as the PDF's heatmap takes an empty range
        colors = [f"FF{_rgb_hex(color)}" for color in scale_colors(heatmap_scale(options), (0.0, 0.5, 1.0))]
        middle = ("num", (low + high) / 2) if low is not None and high is not None else ("percent", 50)
        rule = ColorScaleRule(
            start_type="min" if low is None else "num", start_value=low, start_color=colors[0],
            mid_type=middle[0], mid_value=middle[1], mid_color=colors[1],
            end_type="max" if high is None else "num", end_value=high, end_color=colors[2],
        )  # fmt: skip
        sheet.conditional_formatting.add(cells, rule)
        return
    for condition, color in _state_conditions(options):
        rgb = _rgb_hex(color)
        if rgb is None:
            continue
        fill = PatternFill(start_color=f"FF{rgb}", end_color=f"FF{rgb}", fill_type="solid")
        rule = FormulaRule(formula=[f"AND(ISNUMBER(B2),{condition})"], fill=fill, stopIfTrue=True)
        sheet.conditional_formatting.add(cells, rule)


def _state_conditions(options: dict[str, Any]) -> list[tuple[str, str]]:
    """(Excel condition on B2, colour) per state of a state timeline, first match first (charts.state_of's rule):
    `states` as ranges from each key to the next, else the value mappings (an exact value or a range)."""

    def number(value: Any) -> str | None:
        try:
            parsed = float(value)
        except (TypeError, ValueError):
            return None
        return f"{parsed:.17g}" if math.isfinite(parsed) else None

    states = options.get("states") if isinstance(options.get("states"), dict) else {}
    keys = sorted(
        (float(key), key) for key in states if number(key) is not None and isinstance(states[key], dict)
    )  # fmt: skip
    conditions = []
    if keys:
        for index, (low, key) in enumerate(keys):
            above = f",B2<{number(keys[index + 1][0])}" if index + 1 < len(keys) else ""
            color = states[key].get("color") or PALETTE[index % len(PALETTE)]
            conditions.append((f"B2>={number(low)}{above}", str(color)))
        return conditions
    mappings = [item for item in options.get("value_mappings") or () if isinstance(item, dict)]
    for index, mapping in enumerate(mappings):
        color = str(mapping.get("color") or PALETTE[index % len(PALETTE)])
        if mapping.get("type") == "range":
            ends = [f"B2>={number(mapping.get('from'))}" if number(mapping.get("from")) else None,
                    f"B2<={number(mapping.get('to'))}" if number(mapping.get("to")) else None]  # fmt: skip
            parts = [end for end in ends if end]
            if parts:
                conditions.append((",".join(parts), color))
        elif number(mapping.get("value")) is not None:
            conditions.append((f"B2={number(mapping.get('value'))}", color))
    return conditions
