"""Where InfluxDB 1.x's line protocol ends a line (its scanLine), and which lines are blank or comments.

A line ends at a newline that is neither inside a double-quoted field value nor after a backslash: a
backslash followed by any character (a newline too) skips that character while the end is looked for. Leading
spaces, tabs and NULs are skipped; then a `#` makes the line a comment. line_protocol_scan.py reads each line.
"""

from __future__ import annotations

import re

WHITESPACE = " \t\x00"  # what InfluxDB's skipWhitespace skips

_SPECIAL = re.compile(r'[\\"]')
_LINE_KEY_STOP = re.compile(r"[\\ \n]")
_LINE_FIELDS_STOP = re.compile(r'[\\"\n]')
_LINE_QUOTED_STOP = re.compile(r'[\\"]')


def lines_numbered(text: str) -> list[tuple[int, str]]:
    """The body's lines as InfluxDB 1.x splits them, each with the 0-based number of the text line it starts on."""
    segments = text.split("\n")
    if _SPECIAL.search(text) is None:
        return list(enumerate(segments))
    lines: list[tuple[int, str]] = []
    count = len(segments)
    position = number = 0
    while number < count:
        segment = segments[number]
        if '"' in segment or "\\" in segment:
            end = _line_end(text, position)  # a quote or backslash may carry the line past this newline
            line = text[position:end]
            lines.append((number, line))
            number += line.count("\n") + 1
        else:
            end = position + len(segment)
            lines.append((number, segment))
            number += 1
        position = end + 1
    return lines


def _line_end(text: str, i: int) -> int:
    """Where the line starting at i ends (the newline's index, or len): InfluxDB's scanLine.

    A backslash skips the character after it. After the first space InfluxDB counts '=' and ',' outside
    strings, and a '"' opens or closes a string when it has seen more of the one than of the other; a newline
    inside a string does not end the line. The scan jumps from one character that matters to the next.
    """
    n = len(text)
    search = _LINE_KEY_STOP.search
    while True:  # before the first space only backslashes and newlines matter
        match = search(text, i)
        if match is None:
            return n
        i = match.start()
        char = text[i]
        if char == "\\":
            i += 2 if i + 2 < n else 1
            continue
        if char == "\n":
            return i
        i += 1
        break
    quoted = False
    equals = commas = 0
    while True:
        match = (_LINE_QUOTED_STOP if quoted else _LINE_FIELDS_STOP).search(text, i)
        if match is None:
            return n
        j = match.start()
        if not quoted:
            equals += text.count("=", i, j)
            commas += text.count(",", i, j)
        char = text[j]
        if char == "\\":
            i = j + 2 if j + 2 < n else j + 1
            continue
        if char == "\n":  # only looked for outside strings
            return j
        if equals > commas:
            quoted = not quoted
        i = j + 1


def line_content(line: str) -> str | None:
    """The line without leading whitespace, or None for a blank line or a comment."""
    start = 0
    n = len(line)
    while start < n and line[start] in WHITESPACE:
        start += 1
    if start >= n or line[start] == "#":
        return None
    content = line[start:]
    # A line carried to the end of the body by an unclosed quote keeps no final newline (InfluxDB drops it).
    return content[:-1] if content[-1] == "\n" else content
