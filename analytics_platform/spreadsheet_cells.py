"""Formula-injection neutralisation for cells of every CSV and Excel file the platform writes (OWASP's CSV
injection advice): query exports, audit log exports and reports use this one rule.

A text cell that begins with = + - @ is what spreadsheet programs read as a formula (or DDE command); one that
begins with tab, carriage return or line feed can become one once a program trims that leading whitespace. Such a
cell gets a leading apostrophe so it shows as text. Numbers are written as numbers and never touched, so -3.5
stays a negative number; text that is exactly a plain number ("-3.5", "+7", "-1e5") cannot run either, and stays
as it is, so a label or id such as "-5" is not damaged.
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r", "\n")
_PLAIN_NUMBER = re.compile(r"[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?")


def cell_text_safe(value: str) -> str:
    """The text as a spreadsheet shows it without evaluating it."""
    if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.fullmatch(value):
        return "'" + value
    return value


def cell_safe(value: object) -> object:
    """For typed cells (Excel): numbers, dates and None unchanged; text neutralised."""
    if isinstance(value, str):
        return cell_text_safe(value)
    return value


def csv_cell_safe(value: object) -> str:
    """For CSV, where every cell is text: None as an empty cell, anything else as its text, neutralised."""
    return cell_text_safe("" if value is None else str(value))
