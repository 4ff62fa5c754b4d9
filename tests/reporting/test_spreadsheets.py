"""The XLSX and CSV tables: rows read in chunks, written as openpyxl would write them."""

from __future__ import annotations

import csv
import io
import math
from datetime import timedelta
from pathlib import Path

import openpyxl
import pytest
from django.utils import timezone
from openpyxl.cell import WriteOnlyCell

from apps.dashboards.services import dashboard_create
from apps.reporting import content as content_module
from apps.reporting.renderers.spreadsheets import TIME_FORMAT, _finite, _local_naive, _value_format
from apps.reporting.runs import report_content, report_files_render
from apps.reporting.services import report_create
from apps.reporting.time_ranges import timezone_get
from tests.factories import organization_get


def _report(editor, *, fill: str):
    """One table panel of two queries at one row a minute: A reads d0 and d1, B reads d2 and d3."""
    query = {"source": "plant", "metric": "temperature", "aggregation": "avg", "bucket": "1m", "fill": fill,
             "group_by": ["device"]}  # fmt: skip
    dashboard = dashboard_create(organization=organization_get(), owner=editor, document={
        "schema_version": 1, "title": "Minutes", "time_range": {"start": "-6h", "end": "now"},
        "panels": [{"key": "minutes", "title": "Every minute", "type": "table",
                    "options": {"unit": "kW", "decimals": 3}, "grid": {"x": 0, "y": 0, "w": 12, "h": 8},
                    "queries": [{"ref": "A", "query": {**query, "filters": {"device": ["d0", "d1"]}}},
                                {"ref": "B", "query": {**query, "filters": {"device": ["d2", "d3"]}}}]}],
    })  # fmt: skip
    return report_create(organization=organization_get(), owner=editor, data={
        "name": "Minutes", "dashboard": dashboard.uid, "formats": ["xlsx", "csv"], "recipients": {"users": ["vic"]},
        "time_range": {"start": "-6h", "end": "now"}, "timezone": "Europe/London",
    })  # fmt: skip


def _render(report, viewer, directory: Path, *, start, end) -> tuple[dict, list[list[str]]]:
    """The table's sheet (cells as value and number format, from row 2) and its CSV rows, both rendered at once."""
    content = report_content(report=report, principal=viewer, start=start, end=end)
    files = report_files_render(report=report, content=content, directory=directory, formats=["xlsx", "csv"],
                                generated_at=timezone.now(), recipient_label="test")  # fmt: skip
    by_suffix = {Path(item["path"]).suffix: Path(item["path"]) for item in files}
    sheet = openpyxl.load_workbook(by_suffix[".xlsx"])["Every minute"]
    cells = [[(cell.value, cell.number_format if cell.value is not None else None) for cell in row]
             for row in sheet.iter_rows(min_row=2)]  # fmt: skip
    rows = list(csv.reader(io.StringIO(by_suffix[".csv"].read_text())))
    return {"cells": cells, "header": [cell.value for cell in sheet[1]], "content": content}, rows


def test_chunked_rows_are_the_rows_of_one_read_and_read_back_as_openpyxl_cells(
    plant, editor, viewer, tmp_path, monkeypatch
):
    """7 buckets a chunk (180 minutes: 26 chunks, the last one short) give the same files as one chunk; and the
    sheet's rows (written as XML here, not by openpyxl) read back cell for cell as the cells openpyxl writes."""
    report = _report(editor, fill="null")
    start, end = plant["start"], plant["end"]
    whole, whole_csv = _render(report, viewer, tmp_path / "whole", start=start, end=end)
    monkeypatch.setattr(content_module, "CHUNK_BUCKETS", 7)
    chunked, chunked_csv = _render(report, viewer, tmp_path / "chunked", start=start, end=end)
    assert len(chunked["cells"]) == len(whole["cells"]) == 180
    assert chunked["cells"] == whole["cells"]
    assert chunked_csv == whole_csv
    assert whole_csv[0] == ["time", "A: device=d0", "A: device=d1", "B: device=d2", "B: device=d3"]
    assert whole["header"] == ["Time (Europe/London)", *whole_csv[0][1:]]
    assert len(whole_csv) == 181

    # The same rows written cell by cell by openpyxl itself, read back the same way.
    zone = timezone_get("Europe/London")
    (section,) = chunked["content"].sections
    reference = openpyxl.Workbook(write_only=True)
    sheet = reference.create_sheet("Every minute")
    sheet.append(["header"])
    value_format = _value_format(3, "kW")
    for row in content_module.section_rows(section, principal=viewer, start=start, end=end):
        time_cell = WriteOnlyCell(sheet, value=_local_naive(row[0], zone))
        time_cell.number_format = TIME_FORMAT
        cells = [time_cell]
        for value in row[1:]:
            cell = WriteOnlyCell(sheet, value=value)
            cell.number_format = value_format
            cells.append(cell if value is not None else None)
        sheet.append(cells)
    reference.save(tmp_path / "reference.xlsx")
    written = openpyxl.load_workbook(tmp_path / "reference.xlsx")["Every minute"]
    expected = [[(cell.value, cell.number_format if cell.value is not None else None) for cell in row]
                for row in written.iter_rows(min_row=2)]  # fmt: skip
    assert chunked["cells"] == expected
    first_time, first_value = chunked["cells"][0][:2]
    assert first_time == (_local_naive(start, zone), TIME_FORMAT)
    assert first_value == (0.25, '#,##0.000" kW"')  # d0's first minute, as the plant fixture stored it
    assert chunked["cells"][0][4] == (300.25, '#,##0.000" kW"')  # d3's (query B)


@pytest.mark.parametrize(("fill", "rows"), [("null", 240), ("none", 180)])
def test_buckets_without_values_are_rows_unless_the_query_leaves_them_out(
    plant, editor, viewer, tmp_path, monkeypatch, fill, rows
):
    """An hour before the data: with fill=null those 60 minutes are rows of empty cells, with fill=none no rows,
    whether the chunk holding them is all empty or not."""
    monkeypatch.setattr(content_module, "CHUNK_BUCKETS", 45)
    report = _report(editor, fill=fill)
    tables, lines = _render(report, viewer, tmp_path, start=plant["start"] - timedelta(hours=1), end=plant["end"])
    assert len(tables["cells"]) == rows
    assert len(lines) == rows + 1
    empty = [line for line in lines[1:] if line[1:] == ["", "", "", ""]]
    assert len(empty) == rows - 180
    assert all(row[1][0] is None for row in tables["cells"][: rows - 180])


def test_values_that_are_not_finite_become_empty_cells():
    values = [1.5, None, 2.0]
    assert _finite(values) is values
    assert _finite([1.5, math.nan, None, math.inf, -math.inf]) == [1.5, None, None, None, None]
    assert _finite([1e308, 1e308, None]) == [1e308, 1e308, None]  # the sum overflows; the values are finite
    assert _finite([math.inf, -math.inf, 2.0]) == [None, None, 2.0]
