"""Formula-injection neutralisation for cells of CSV and Excel files (OWASP's CSV injection advice).

A text cell that begins with = + - @ tab or carriage return is what spreadsheet programs read as a formula
(or DDE command); it gets a leading apostrophe so it shows as text. Numbers are written as numbers and are
never touched, so -3.5 stays a negative number; text that is exactly a plain number ("-3.5") cannot run
either, and stays as it is.
"""

from __future__ import annotations

import re

FORMULA_PREFIXES = ("=", "+", "-", "@", "\t", "\r")
_PLAIN_NUMBER = re.compile(r"^[+-]?(?:\d+\.?\d*|\.\d+)(?:[eE][+-]?\d+)?$")


def cell_text_safe(value: str) -> str:
    """The text as a spreadsheet shows it without evaluating it."""
    if value.startswith(FORMULA_PREFIXES) and not _PLAIN_NUMBER.match(value):
        return "'" + value
    return value


def cell_safe(value: object) -> object:
    """Numbers, dates and None unchanged; text neutralised."""
    if isinstance(value, str):
        return cell_text_safe(value)
    return value
