"""A query's answer as CSV (time, source, one column per label, value), for spreadsheets.

It is rendered from the engine's answer, so it holds exactly what the principal's data policies let the query
read. Text cells that a spreadsheet would run as a formula are prefixed with an apostrophe by the platform's one
rule (analytics_platform/spreadsheet_cells.py): label values come from whoever writes data.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Iterable

from analytics_platform.spreadsheet_cells import csv_cell_safe


def query_result_csv(series: Iterable[dict]) -> str:
    """The rows of every series' points, one point a row, with a header."""
    series = list(series)
    label_keys = sorted({key for item in series for key in item.get("labels", {})})
    with_source = any("source" in item for item in series)
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["time", *(["source"] if with_source else []), *label_keys, "value"])
    for item in series:
        labels = item.get("labels", {})
        prefix = [csv_cell_safe(item.get("source"))] if with_source else []
        cells = [csv_cell_safe(labels.get(key)) for key in label_keys]
        for moment, value in item["points"]:
            writer.writerow([moment, *prefix, *cells, "" if value is None else repr(float(value))])
    return buffer.getvalue()
