"""InfluxDB 1.x's line-protocol scanner, ported rule for rule: how each part of a line reads.

This is the careful path of `line_protocol.py`: every line with a backslash or a double quote, and every line the
split-based fast path does not take, is read here, so every error is worded here. The rules are InfluxDB 1.x's
(models/points.go), checked against InfluxDB 1.6 by tests/ingestion/test_influx_differential.py:

- Where a line ends, and which lines are blank or comments: see line_protocol_lines.py. A CR is an ordinary
  character, so a CRLF line is usually malformed (`bad timestamp`, `invalid number`).
- The measurement runs to the first comma or space that does not follow a backslash; tag keys and values to
  the first `,`, `=` or space that does not follow a backslash ("the previous character" rule: `a\\\\ b` is
  one value, its space escaped). Names are then unescaped once: `\\,`, `\\ ` and `\\=` everywhere, and `\\"` in
  measurements and field keys; every other backslash is kept, so `\\\\host\\share` stays as written. A tag
  value may start with `=`.
- The field set is scanned with "a backslash skips the next character"; a value starting with a digit, `.`,
  `-`, `n` or `N` is a number (`1`, `-1.5e3`, `1i`, `1u`), one starting with `"` a string (running to its
  closing quote; text after that quote, before the next comma, is kept, as InfluxDB does), anything else a
  boolean (t, T, true, True, TRUE and the f forms). Only `\\"` and `\\\\` are escapes in strings.
- Sections are separated by a space and then any spaces, tabs or NULs; only spaces may follow a timestamp.
- Repeated tag keys are an error ("duplicate tags"); a repeated field key keeps its last value.

Where InfluxDB 1.x's own readers disagree with each other (a field key ending in a backslash: its checker
and its storage split the field set differently and it stores a garbled key), the line is refused.
"""

from __future__ import annotations

import re
from itertools import pairwise

from apps.ingestion.parsers.line_protocol_lines import WHITESPACE as _WHITESPACE

ERROR_CODE = "invalid_line_protocol"
RESERVED_KEY_CODE = "reserved_key"
TYPE_CONFLICT_CODE = "field_type_conflict"

# InfluxDB's MinNanoTime / MaxNanoTime: int64 minus the two values it reserves as sentinels.
TIME_NS_MIN = -(2**63) + 2
TIME_NS_MAX = 2**63 - 2
TIME_RANGE_MESSAGE = f"time outside range {TIME_NS_MIN} - {TIME_NS_MAX}"
MAX_KEY_BYTES = 65_535  # InfluxDB's MaxKeyLength for a series key (measurement, tags and a field key)

_INT_MAX = 2**63 - 1
_UINT_MAX = 2**64 - 1
_DIGITS = frozenset("0123456789")
_NUMBER_START = frozenset("0123456789.-Nn")
_BOOLEANS: dict[str, bool] = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip

_MEASUREMENT_END = re.compile(r"(?<!\\)[, ]")
_TAG_STOP = re.compile(r"(?<!\\)[ ,=]")
_FIELD_KEY_END = re.compile(r"(?<!\\)=")
_FIELDS_STOP = re.compile(r'[\\"=, ]')
_QUOTED_STOP = re.compile(r'[\\"]')
_VALUE_STOP = re.compile(r'[\\",]')
_TIME_END = re.compile(r"[ \n]")
_TIMESTAMP = re.compile(r"-?[0-9]*")
# Numbers valid as they stand (no check beyond the match): plain decimals short enough to be finite, and
# integers of at most 18 digits. Anything else takes the character-by-character scan.
_PLAIN_NUMBER = re.compile(r"(?:-?(?:[0-9]{1,300}(?:\.[0-9]*)?|\.[0-9]{1,300})|-?[0-9]{1,18}i|[0-9]{1,18}u)(?=[, ]|\Z)")
_MEASUREMENT_ESCAPE = re.compile(r'\\([, "=])')
_TAG_ESCAPE = re.compile(r"\\([, =])")
_FIELD_KEY_ESCAPE = re.compile(r'\\([, "=])')
_STRING_ESCAPE = re.compile(r'\\([\\"])')


class LineError(Exception):
    """One line is malformed: the reason (InfluxDB's words), the tag or field key at fault, and the error code."""

    def __init__(self, reason: str, field: str | None = None, code: str = ERROR_CODE) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field
        self.code = code


def line_scan(line: str, multiplier: int) -> tuple[str, dict[str, str], dict[str, object], dict[str, str], int | None]:
    """Measurement, tags, fields, field kinds and time (ns, None if absent) of one line; raises LineError.

    The reserved key `time` is not checked here: see `reserved_check`, which the caller runs on every line.
    """
    measurement, tags, key_end, key_bytes = _key_scan(line)
    i, fields, kinds = _fields_scan(line, key_end)
    if key_bytes + 4 + 4 * max(map(len, fields)) > MAX_KEY_BYTES:  # at most 4 bytes a character
        for name in fields:
            # InfluxDB's series key for a field: the key, a 4-byte separator and the field key.
            size = key_bytes + 4 + len(name.encode())
            if size > MAX_KEY_BYTES:
                raise LineError(f"max key length exceeded: {size} > {MAX_KEY_BYTES}")
    time_ns, i = _time_scan(line, i, multiplier)
    if time_ns is not None and line.count(" ", i) != len(line) - i:
        raise LineError("point is invalid: unexpected text after the timestamp")
    return measurement, tags, fields, kinds, time_ns


def reserved_check(measurement: str, tags: dict[str, str], fields: dict[str, object], kinds: dict[str, str]) -> bool:
    """`time` names the timestamp: a tag `time` refuses the line, a field `time` is dropped (InfluxDB's shard rules).

    Returns whether a field `time` was dropped; raises LineError when nothing else is left.
    """
    if "time" in tags:
        raise LineError(
            f'invalid tag key: input tag "time" on measurement "{measurement}" is invalid '
            "(time is reserved for the timestamp)",
            "time",
            RESERVED_KEY_CODE,
        )
    if "time" in fields:
        del fields["time"]
        del kinds["time"]
        if not fields:
            raise LineError(
                f'invalid field name: input field "time" on measurement "{measurement}" is invalid '
                "(time is reserved for the timestamp)",
                "time",
                RESERVED_KEY_CODE,
            )
        return True
    return False


def key_plain_read(key: str) -> tuple[str, dict[str, str]] | None:
    """Measurement and tags of a series key without backslashes; None if it is not plainly valid (the
    scanner then says why)."""
    if "," not in key:
        return (key, {}) if key else None
    items = key.split(",")
    measurement = items[0]
    if not measurement:
        return None
    tags: dict[str, str] = {}
    for item in items[1:]:
        tag_key, _, tag_value = item.partition("=")
        # A tag value may start with '=' (InfluxDB reads `t==v` as t: "=v"), but hold no other.
        if not tag_key or not tag_value or "=" in tag_value[1:]:
            return None
        tags[tag_key] = tag_value
    if len(tags) != len(items) - 1 or "time" in tags:  # a repeated key; the reserved key
        return None
    return measurement, tags


def _key_scan(line: str) -> tuple[str, dict[str, str], int, int]:
    """Measurement and tags, where the key ends (at its space) and its length in bytes."""
    end = line.find(" ")
    if end > 0 and "\\" not in line[:end]:
        plain = key_plain_read(line[:end])
        if plain is not None:
            key_bytes = end if line.isascii() else len(line[:end].encode())
            if key_bytes <= MAX_KEY_BYTES:
                return plain[0], plain[1], end, key_bytes
    n = len(line)
    if not n or line[0] == ",":
        raise LineError("missing measurement")
    match = _MEASUREMENT_END.search(line, 1)
    if match is None:
        raise LineError("missing fields")
    i = match.start()
    measurement = _unescape(line[:i], _MEASUREMENT_ESCAPE)
    raw_tags: list[tuple[str, str]] = []
    if line[i] == ",":
        i += 1
        while True:
            if i >= n or line[i] in " ,=":
                raise LineError("missing tag key")
            match = _TAG_STOP.search(line, i + 1)
            if match is None or line[match.start()] != "=":
                raise LineError("missing tag value", _unescape(line[i : match.start() if match else n], _TAG_ESCAPE))
            key = line[i : match.start()]
            i = match.start() + 1
            if i >= n or line[i] in ", ":
                raise LineError("missing tag value", _unescape(key, _TAG_ESCAPE))
            match = _TAG_STOP.search(line, i + 1)  # the value's first character may be '='
            if match is None:
                raise LineError("missing fields")
            end = match.start()
            if line[end] == "=":
                raise LineError("invalid tag format", _unescape(key, _TAG_ESCAPE))
            raw_tags.append((key, line[i:end]))
            i = end + 1 if line[end] == "," else end
            if line[end] == " ":
                break
    tags: dict[str, str] = {}
    for key, value in raw_tags:
        name = _unescape(key, _TAG_ESCAPE)
        if name in tags:
            raise LineError("duplicate tags", name)
        tags[name] = _unescape(value, _TAG_ESCAPE)
    key_bytes = i if line.isascii() else len(line[:i].encode())
    if key_bytes > MAX_KEY_BYTES:
        raise LineError(f"max key length exceeded: {key_bytes} > {MAX_KEY_BYTES}")
    return measurement, tags, i, key_bytes


def _unescape(text: str, escapes: re.Pattern[str]) -> str:
    return escapes.sub(r"\1", text) if "\\" in text else text


def _fields_scan(line: str, i: int) -> tuple[int, dict[str, object], dict[str, str]]:
    """The field set from i (after the key): where it ends, the values and their kinds (InfluxDB's scanFields)."""
    n = len(line)
    while i < n and line[i] in _WHITESPACE:
        i += 1
    start = key_start = i
    key: str | None = None  # the raw key of the value being scanned, for error messages
    pieces: list[tuple[int, int]] = []  # (where the key starts, its '=') for each '=' counted
    quoted = False
    equals = commas = 0
    stop, quoted_stop = _FIELDS_STOP.search, _QUOTED_STOP.search
    while True:
        # Jump to the next character that matters (inside a string, only a backslash or a quote does).
        match = quoted_stop(line, i) if quoted else stop(line, i)
        if match is None:
            i = n
            break
        i = match.start()
        char = line[i]
        if char == "\\":
            i += 2 if i + 1 < n else 1
            continue
        if char == '"':
            if equals > commas:  # always so inside a string: '=' and ',' are not counted there
                quoted = not quoted
            i += 1
            continue
        if char == "=":
            equals += 1
            pieces.append((key_start, i))
            key = line[key_start:i]
            before = line[i - 1]
            if (before == " " or before == ",") and line[i - 2] != "\\":
                raise LineError("missing field key")
            if i + 1 >= n or line[i + 1] in ", ":
                raise LineError("missing field value", _field_name(key))
            following = line[i + 1]
            if following != '"':
                try:
                    i = _number_scan(line, i + 1) if following in _NUMBER_START else _boolean_scan(line, i + 1)
                except LineError as error:
                    error.field = _field_name(key)  # named only when it is needed
                    raise
                continue
        elif char == ",":
            commas += 1
            key_start = i + 1
        else:  # a space ends the field set
            break
        i += 1
    if quoted:
        raise LineError("unbalanced quotes", _field_name(key))
    if equals == 0 or commas != equals - 1:
        last = line[key_start:i]
        raise LineError("invalid field format", _field_name(last) if "=" not in last else None)
    if "\\" not in line[start:i] and all(a[0] < b[0] for a, b in pairwise(pieces)):
        # Without backslashes InfluxDB's storage splits the field set where this scan did (one '=' a piece).
        ends = [following[0] - 1 for following in pieces[1:]]
        ends.append(i)
        return i, *_fields_read(line, pieces, ends)
    fields, kinds = _fields_split(line[start:i], [eq - start for _, eq in pieces])
    return i, fields, kinds


def _fields_read(line: str, pieces: list[tuple[int, int]], ends: list[int]) -> tuple[dict, dict[str, str]]:
    """Values and kinds of fields whose keys and values the checking scan delimited."""
    fields: dict[str, object] = {}
    kinds: dict[str, str] = {}
    for (key_start, eq), end in zip(pieces, ends, strict=True):
        value, kind = _value_read(line[eq + 1 : end])
        name = _unescape(line[key_start:eq], _FIELD_KEY_ESCAPE)
        if not name:
            raise LineError("missing field key")
        _kind_note(kinds, name, kind)
        fields[name] = value
    return fields, kinds


def _kind_note(kinds: dict[str, str], name: str, kind: str) -> None:
    """Note a field's type; a key given two types on one line is InfluxDB's field type conflict."""
    previous = kinds.setdefault(name, kind)
    if previous != kind:
        raise LineError(
            f'field type conflict: input field "{name}" is type {kind} and type {previous} on the same line',
            name,
            TYPE_CONFLICT_CODE,
        )


def _field_name(raw: str | None) -> str | None:
    """A raw field key unescaped, for error messages (None if empty)."""
    return _unescape(raw, _FIELD_KEY_ESCAPE) or None if raw else None


def _fields_split(text: str, key_ends: list[int]) -> tuple[dict[str, object], dict[str, str]]:
    """Split a checked field set as InfluxDB stores it (its FieldIterator) into values and kinds.

    `key_ends` are where the checking scan found each key's `=`. InfluxDB's storage splits again with other
    rules; where the two disagree (a key ending in a backslash, or a backslash before a comma after a string)
    it stores garbled keys, so the line is refused instead.
    """
    fields: dict[str, object] = {}
    kinds: dict[str, str] = {}
    n = len(text)
    i = 0
    escaped = "\\" in text
    for expected in key_ends:
        if escaped:
            match = _FIELD_KEY_END.search(text, i)
            found = -1 if match is None else match.start()
        else:
            found = text.find("=", i)
        if found != expected or i >= n:
            raise LineError(
                "invalid field format: a backslash before '=' or ',' here makes InfluxDB 1.x read the field set "
                "two ways (its checks and its storage split it differently)"
            )
        raw_key = text[i:expected]
        i = expected + 1
        if text[i] == '"':
            end = _string_end(text, i)
        else:  # a number or boolean the checking scan passed: no quote, backslash or comma in it
            end = text.find(",", i)
            if end < 0:
                end = n
        value, kind = _value_read(text[i:end])
        name = _unescape(raw_key, _FIELD_KEY_ESCAPE)
        if not name:
            raise LineError("missing field key")
        _kind_note(kinds, name, kind)
        fields[name] = value
        i = end + 1
    if i < n:
        raise LineError(
            "invalid field format: a backslash before '=' or ',' here makes InfluxDB 1.x read the field set "
            "two ways (its checks and its storage split it differently)"
        )
    return fields, kinds


def _string_end(text: str, i: int) -> int:
    """Where the string value starting at i ends as InfluxDB's storage reads it (scanFieldValue): only \\" and
    \\\\ are escapes, every quote opens or closes, and a comma outside quotes ends it."""
    n = len(text)
    quoted = False
    while True:
        match = _VALUE_STOP.search(text, i)
        if match is None:
            return n
        i = match.start()
        char = text[i]
        if char == "\\":
            i += 2 if i + 1 < n and text[i + 1] in '"\\' else 1
            continue
        if char == '"':
            quoted = not quoted
        elif not quoted:  # a comma
            return i
        i += 1


def _value_read(value: str) -> tuple[object, str]:
    """A checked field value as a Python value and InfluxDB's type name."""
    first = value[0]
    if first == '"':
        return _unescape(value[1:-1], _STRING_ESCAPE), "string"
    if first in _NUMBER_START:
        last = value[-1]
        if last == "i":
            return int(value[:-1]), "integer"
        if last == "u":
            return int(value[:-1]), "unsigned"
        return float(value), "float"
    return first in "tT", "boolean"


def _number_scan(line: str, i: int) -> int:
    """Check a number from i; returns where it ends (InfluxDB's scanNumber, with unsigned values allowed)."""
    plain = _PLAIN_NUMBER.match(line, i)
    if plain is not None:
        return plain.end()
    n = len(line)
    start = i
    is_int = is_unsigned = decimal = scientific = False
    if line[i] == "-":
        i += 1
        if i == n:
            raise LineError("invalid number")
    while i < n:
        char = line[i]
        if char == "," or char == " ":
            break
        if char == "i" and i > start and not (is_int or is_unsigned):
            is_int = True
            i += 1
            continue
        if char == "u" and i > start and not (is_int or is_unsigned):
            is_unsigned = True
            i += 1
            continue
        if char == ".":
            if decimal:
                raise LineError("invalid number")
            decimal = True
        if i > start and (char == "e" or char == "E"):
            scientific = True
            i += 1
            continue
        if (char == "+" or char == "-") and line[i - 1] in "eE":
            i += 1
            continue
        if (char == "N" or char == "n") and i + 2 < n:
            raise LineError("invalid number")  # NaN is not a value
        if char not in _DIGITS and char != ".":
            raise LineError("invalid number")
        i += 1
    if (is_int or is_unsigned) and (decimal or scientific):
        raise LineError("invalid number")
    digits = i - start - is_int - is_unsigned - decimal - (line[start] == "-")
    if digits <= 0:
        raise LineError("invalid number")
    text = line[start:i]
    if is_int or is_unsigned:
        kind = "integer" if is_int else "unsigned"
        if text[-1] != ("i" if is_int else "u") or (is_unsigned and text[0] == "-"):
            raise LineError("invalid number")
        body = text[:-1]
        # int() refuses over 4,300 digits, and nothing over 20 significant digits fits anyway.
        significant = body.lstrip("-").lstrip("0")
        number = int(body) if len(significant) <= 20 else None
        if number is None or not (-_INT_MAX - 1 <= number <= _INT_MAX if is_int else number <= _UINT_MAX):
            raise LineError(f"unable to parse {kind} {_clip(body, 40)}: value out of range")
        return i
    try:
        number_float = float(text)
    except ValueError:
        raise LineError("invalid float") from None
    if number_float - number_float:  # inf - inf is NaN, which is truthy
        raise LineError(f"invalid float {_clip(text, 40)}: value out of range")
    return i


def _boolean_scan(line: str, i: int) -> int:
    """Check a boolean from i; returns where it ends (InfluxDB's scanBoolean)."""
    n = len(line)
    end = i
    while end < n and line[end] != "," and line[end] != " ":
        end += 1
    if line[i:end] not in _BOOLEANS:
        raise LineError("invalid boolean")
    return end


def _time_scan(line: str, i: int, multiplier: int) -> tuple[int | None, int]:
    """The timestamp after the field set, scaled to nanoseconds (None if absent), and where it ends."""
    n = len(line)
    while i < n and line[i] in _WHITESPACE:
        i += 1
    match = _TIME_END.search(line, i)
    end = match.start() if match else n
    if end == i:
        return None, i
    if _TIMESTAMP.fullmatch(line, i, end) is None:  # InfluxDB: only digits, after an optional leading '-'
        raise LineError("bad timestamp")
    return timestamp_ns(line[i:end], multiplier), end


def timestamp_ns(text: str, multiplier: int) -> int:
    """A checked timestamp token scaled to nanoseconds; raises LineError if it is out of range."""
    digits = text.lstrip("-")
    if not digits:
        raise LineError("bad timestamp")
    if len(digits.lstrip("0")) > 19:
        raise LineError(TIME_RANGE_MESSAGE)
    time_ns = int(text) * multiplier
    if not TIME_NS_MIN <= time_ns <= TIME_NS_MAX:
        raise LineError(TIME_RANGE_MESSAGE)
    return time_ns


def _clip(text: str, limit: int) -> str:
    """Text cut to a length fit for an error message."""
    return text if len(text) <= limit else text[:limit] + "…"
