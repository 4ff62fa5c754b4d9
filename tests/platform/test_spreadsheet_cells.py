"""The one formula-injection rule every CSV and Excel export uses (query CSV, audit CSV, report XLSX and CSV)."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from analytics_platform.spreadsheet_cells import cell_safe, csv_cell_safe


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("=1+1", "'=1+1"), ("+cmd", "'+cmd"), ("-1+2", "'-1+2"), ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=1", "'\t=1"), ("\r=1", "'\r=1"), ("\n=1", "'\n=1"),  # whitespace a program may trim first
        ("-5", "-5"), ("+7", "+7"), ("-3.5", "-3.5"), ("-.5", "-.5"), ("-1e5", "-1e5"), ("+1.5E+10", "+1.5E+10"),
        ("-5\n", "'-5\n"), ("-5 ", "'-5 "), ("-0x1F", "'-0x1F"), ("-inf", "'-inf"), ("-", "'-"),
        ("ok", "ok"), ("a=b", "a=b"), ("", ""), (" =1", " =1"),
    ],
)  # fmt: skip
def test_text_starting_a_formula_is_quoted_unless_it_is_a_plain_number(text, expected):
    assert csv_cell_safe(text) == expected
    assert cell_safe(text) == expected


def test_csv_cells_are_text_and_typed_cells_keep_their_type():
    moment = datetime(2026, 1, 1, tzinfo=UTC)
    assert [csv_cell_safe(value) for value in (None, -5, -3.5, 0)] == ["", "-5", "-3.5", "0"]
    assert [cell_safe(value) for value in (None, -5, -3.5, moment)] == [None, -5, -3.5, moment]
