"""InfluxDB line protocol (v1 and v2) into `Record`s, one per line, with InfluxDB's error wording.

Grammar, per line: `measurement[,tag=value...] field=value[,field=value...] [timestamp]`.

- Escapes: `\\,` and `\\ ` in measurements; `\\,`, `\\=` and `\\ ` in tag keys, tag values and field keys; `\\"` in
  string field values. Everywhere, `\\\\` is one backslash (InfluxDB 2's rule: of two contiguous backslashes the
  first escapes the second), and a backslash before any other character is kept literally.
- Field values: float (`1`, `-1.5e3`), integer (`1i`), unsigned (`1u`), boolean (t/T/true/True/TRUE and the f
  forms) and string (`"..."`). Integers become `int`, unsigned too; out-of-range int64/uint64 values are errors.
  Non-finite floats (`1e999`, `NaN`, `inf`) are errors, as in InfluxDB.
- A newline always ends a line, even inside a quoted string (InfluxDB 1's documented rule; senders such as
  Telegraf escape newlines in strings). A trailing `\\r` is dropped, so CRLF bodies parse.
- Blank lines and lines whose first non-blank character is `#` are skipped. Sections are separated by one or
  more spaces; leading spaces and tabs and trailing spaces are ignored.
- Repeated tag keys are an error ("duplicate tags"); a repeated field key keeps the last value, as InfluxDB does.

Two paths give identical results: a split-based fast path for lines without backslashes or double quotes, and a
character-level scanner for everything else and for every line the fast path does not accept, so that all error
messages come from one place.
"""

from __future__ import annotations

import re

from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError, payload_text

ERROR_CODE = "invalid_line_protocol"

# v2 names (ns, us, ms, s) and v1 names (n, u, ms, s, m, h), as nanoseconds per unit.
PRECISION_NS: dict[str, int] = {
    "ns": 1,
    "n": 1,
    "us": 1_000,
    "u": 1_000,
    "ms": 1_000_000,
    "s": 1_000_000_000,
    "m": 60_000_000_000,
    "h": 3_600_000_000_000,
}

# InfluxDB's MinNanoTime / MaxNanoTime: int64 minus the two values it reserves as sentinels.
TIME_NS_MIN = -(2**63) + 2
TIME_NS_MAX = 2**63 - 2
_TIME_RANGE_MESSAGE = f"time outside range {TIME_NS_MIN} - {TIME_NS_MAX}"

_INT_MIN = -(2**63)
_INT_MAX = 2**63 - 1
_UINT_MAX = 2**64 - 1

_MESSAGE_LINE_MAX_CHARS = 200  # the offending line is quoted in the message; the full text is in RecordError.raw

_BOOLEANS: dict[str, bool] = {
    "t": True,
    "T": True,
    "true": True,
    "True": True,
    "TRUE": True,
    "f": False,
    "F": False,
    "false": False,
    "False": False,
    "FALSE": False,
}
# Like InfluxDB, a value starting with one of these is a number (n/N so that NaN reads as "invalid number"); any
# other unquoted value must be a boolean. '+' is our addition: "+1" is a bad number rather than a bad boolean.
_NUMBER_FIRST = frozenset("0123456789.-+nN")
# Every character a float literal may hold; float() alone would also take "inf", "1_0", " 1" and non-ASCII digits.
_FLOAT_CHARS = "0123456789.-+eE"
_FLOAT_LAST = frozenset("0123456789.")

_MEASUREMENT_STOP = re.compile(r"[\\, ]")
_MEASUREMENT_ESCAPABLE = frozenset(", \\")
_KEY_STOP = re.compile(r"[\\,= ]")
_KEY_ESCAPABLE = frozenset(",= \\")
_VALUE_STOP = re.compile(r"[, ]")
_STRING_STOP = re.compile(r'[\\"]')


class _Careful(Exception):
    """Raised inside the fast path: this line needs the careful, character-level path."""


class _LineError(Exception):
    """One line is malformed: InfluxDB's reason text and the tag or field key at fault, if any."""

    def __init__(self, reason: str, field: str | None = None) -> None:
        super().__init__(reason)
        self.reason = reason
        self.field = field


def line_protocol_parse(body: bytes | str, *, precision: str = "ns", now_ns: int | None = None) -> ParseResult:
    """Parse a line-protocol payload into one record per line and one error per malformed line."""
    multiplier = PRECISION_NS.get(precision)
    if multiplier is None:
        raise PayloadError(
            "invalid_precision",
            f"invalid precision {precision!r}: use one of ns, us, ms, s (v2) or n, u, ms, s, m, h (v1).",
        )
    text = payload_text(body)
    # InfluxDB stamps untimed points with the server time truncated to the write precision.
    default_ns = None if now_ns is None else now_ns - now_ns % multiplier
    # Whole-body scans are memchr-fast and spare most lines their own checks.
    plain = "\\" not in text and '"' not in text
    crlf = "\r" in text
    # Series keys repeat line after line; each distinct one is split once (None: needs the careful path).
    key_cache: dict[str, tuple[str, dict[str, str]] | None] = {}

    records: list[Record] = []
    errors: list[RecordError] = []
    record_append = records.append
    float_last = _FLOAT_LAST
    float_chars = _FLOAT_CHARS
    field_value = _field_value
    time_max = TIME_NS_MAX
    for index, line in enumerate(text.split("\n")):
        if not line:
            continue
        if crlf and line[-1] == "\r":
            line = line[:-1]
            if not line:
                continue
        content = line
        if line[0] in " \t#":
            content = line.lstrip(" \t")
            if not content or content[0] == "#":
                continue
        elif plain or ("\\" not in line and '"' not in line):
            # Fast path, inlined for speed: anything unexpected (an exception included) hands the line to the
            # careful path, which alone words errors, so both paths agree by construction.
            try:
                parts = line.split(" ")
                if len(parts) == 3:
                    key, field_set, timestamp = parts
                    # isascii(): int() would take other scripts' digits; 19 digits bound int64.
                    if not (timestamp.isdigit() and timestamp.isascii() and len(timestamp) <= 19):
                        raise _Careful
                    time_ns = int(timestamp) * multiplier
                    if time_ns > time_max:
                        raise _Careful
                elif len(parts) == 2:
                    key, field_set = parts
                    time_ns = default_ns
                else:
                    raise _Careful
                if key in key_cache:
                    series = key_cache[key]
                else:
                    series = key_cache[key] = _key_parse_fast(key)
                if series is None:
                    raise _Careful
                fields: dict[str, object] = {}
                for item in field_set.split(","):
                    field_key, _, value = item.partition("=")
                    if not field_key:
                        raise _Careful
                    if value[-1] in float_last:  # IndexError for an empty value
                        number = float(value)  # ValueError for a non-number
                        # The common case inlined; these checks mirror _field_value so both paths agree.
                        if number - number or value[0] == "+" or value.strip(float_chars):
                            raise _Careful
                        fields[field_key] = number
                    else:
                        fields[field_key] = field_value(value, field_key)
                record_append(Record(index, fields, series[1].copy(), series[0], time_ns, line))
                continue
            except (_Careful, _LineError, ValueError, IndexError):
                pass
        try:
            measurement, tags, fields, time_ns = _line_parse_slow(content, multiplier)
        except _LineError as error:
            quoted = _clip(content, _MESSAGE_LINE_MAX_CHARS)
            errors.append(
                RecordError(index, ERROR_CODE, f"unable to parse '{quoted}': {error.reason}", error.field, line)
            )
            continue
        record_append(Record(index, fields, tags, measurement, default_ns if time_ns is None else time_ns, line))
    return ParseResult(records, errors)


def _key_parse_fast(key: str) -> tuple[str, dict[str, str]] | None:
    """Measurement and tags of a plain series key (no backslash); None if it is not plainly valid."""
    if "," not in key:
        return (key, {}) if key else None
    items = key.split(",")
    measurement = items[0]
    if not measurement:
        return None
    tags: dict[str, str] = {}
    for item in items[1:]:
        tag_key, _, tag_value = item.partition("=")
        if not tag_key or not tag_value or "=" in tag_value:
            return None
        tags[tag_key] = tag_value
    if len(tags) != len(items) - 1:  # a repeated key
        return None
    return measurement, tags


def _line_parse_slow(line: str, multiplier: int) -> tuple[str, dict[str, str], dict[str, object], int | None]:
    """Measurement, tags, fields and time (ns, None if absent) of one line without leading blanks; raises _LineError."""
    n = len(line)
    measurement, i = _escaped_scan(line, 0, _MEASUREMENT_STOP, _MEASUREMENT_ESCAPABLE)
    if not measurement:
        raise _LineError("missing measurement")
    if i >= n:
        raise _LineError("missing fields")

    tags: dict[str, str] = {}
    duplicate: str | None = None
    if line[i] == ",":
        while True:
            tag_key, i = _escaped_scan(line, i + 1, _KEY_STOP, _KEY_ESCAPABLE)
            if not tag_key:
                raise _LineError("missing tag key")
            if i >= n or line[i] != "=":
                raise _LineError("missing tag value", tag_key)
            tag_value, i = _escaped_scan(line, i + 1, _KEY_STOP, _KEY_ESCAPABLE)
            if not tag_value:
                raise _LineError("missing tag value", tag_key)
            if i >= n:
                raise _LineError("missing fields")
            if line[i] == "=":
                raise _LineError("invalid tag format", tag_key)
            if duplicate is None and tag_key in tags:
                duplicate = tag_key
            tags[tag_key] = tag_value
            if line[i] == " ":
                break
    if duplicate is not None:  # InfluxDB reports duplicates once the whole tag set has scanned cleanly
        raise _LineError("duplicate tags", duplicate)

    while i < n and line[i] == " ":
        i += 1
    if i >= n:
        raise _LineError("missing fields")

    fields: dict[str, object] = {}
    while True:
        field_key, i = _escaped_scan(line, i, _KEY_STOP, _KEY_ESCAPABLE)
        if i >= n or line[i] != "=":
            raise _LineError("invalid field format", field_key or None)
        if not field_key:
            raise _LineError("missing field key")
        i += 1
        if i >= n or line[i] in ", ":
            raise _LineError("missing field value", field_key)
        if line[i] == '"':
            value, i = _string_scan(line, i + 1, field_key)
            if i < n and line[i] not in ", ":
                raise _LineError("invalid field format", field_key)
            fields[field_key] = value
        else:
            match = _VALUE_STOP.search(line, i)
            end = match.start() if match else n
            fields[field_key] = _field_value(line[i:end], field_key)
            i = end
        if i >= n or line[i] == " ":
            break
        i += 1  # past the comma

    while i < n and line[i] == " ":
        i += 1
    if i >= n:
        return measurement, tags, fields, None
    end = line.find(" ", i)
    if end < 0:
        end = n
    time_ns = _timestamp_ns(line[i:end], multiplier)
    if line.count(" ", end) != n - end:
        raise _LineError("point is invalid: unexpected text after the timestamp")
    return measurement, tags, fields, time_ns


def _escaped_scan(line: str, i: int, stop: re.Pattern[str], escapable: frozenset[str]) -> tuple[str, int]:
    """Unescaped text from i to the first unescaped stop character, and that character's position (len at end)."""
    n = len(line)
    parts: list[str] = []
    while True:
        match = stop.search(line, i)
        if match is None:
            parts.append(line[i:])
            return "".join(parts), n
        j = match.start()
        parts.append(line[i:j])
        if line[j] != "\\":
            return "".join(parts), j
        if j + 1 < n and line[j + 1] in escapable:
            parts.append(line[j + 1])
            i = j + 2
        else:
            parts.append("\\")
            i = j + 1


def _string_scan(line: str, i: int, field_key: str) -> tuple[str, int]:
    """A string field value from just after its opening quote: the text and the position after the closing quote."""
    n = len(line)
    parts: list[str] = []
    while True:
        match = _STRING_STOP.search(line, i)
        if match is None:
            raise _LineError("unbalanced quotes", field_key)
        j = match.start()
        parts.append(line[i:j])
        if line[j] == '"':
            return "".join(parts), j + 1
        following = line[j + 1] if j + 1 < n else ""
        if following == '"' or following == "\\":
            parts.append(following)
            i = j + 2
        else:
            parts.append("\\")
            i = j + 1


def _field_value(value: str, field_key: str) -> object:
    """An unquoted field value as float, int or bool; raises _LineError in InfluxDB's words."""
    if value[0] not in _NUMBER_FIRST:
        boolean = _BOOLEANS.get(value)
        if boolean is None:
            raise _LineError("invalid boolean", field_key)
        return boolean
    suffix = value[-1]
    if suffix == "i" or suffix == "u":
        body = value[:-1]
        negative = body[:1] == "-"
        digits = body[1:] if negative else body
        if not (digits.isascii() and digits.isdigit()) or (negative and suffix == "u"):
            raise _LineError("invalid number", field_key)
        kind = "integer" if suffix == "i" else "unsigned"
        # int() refuses over 4,300 digits, and nothing over 20 significant digits fits anyway.
        if len(digits.lstrip("0")) > 20:
            raise _LineError(f"unable to parse {kind} {_clip(body, 40)}: value out of range", field_key)
        number = int(body)
        if (suffix == "i" and not _INT_MIN <= number <= _INT_MAX) or (suffix == "u" and number > _UINT_MAX):
            raise _LineError(f"unable to parse {kind} {body}: value out of range", field_key)
        return number
    if value[0] == "+" or value.strip(_FLOAT_CHARS):
        raise _LineError("invalid number", field_key)
    try:
        number_float = float(value)
    except ValueError:
        raise _LineError("invalid number", field_key) from None
    if number_float - number_float:  # inf - inf is NaN, which is truthy
        raise _LineError(f"invalid float {_clip(value, 40)}: value out of range", field_key)
    return number_float


def _clip(text: str, limit: int) -> str:
    """Text cut to a length fit for an error message."""
    return text if len(text) <= limit else text[:limit] + "…"


def _timestamp_ns(text: str, multiplier: int) -> int:
    """A timestamp token scaled to nanoseconds; raises _LineError if it is not an in-range integer."""
    negative = text[0] == "-"
    digits = text[1:] if negative else text
    if not (digits.isascii() and digits.isdigit()):
        raise _LineError("bad timestamp")
    if len(digits.lstrip("0")) > 19:
        raise _LineError(_TIME_RANGE_MESSAGE)
    time_ns = int(text) * multiplier
    if not TIME_NS_MIN <= time_ns <= TIME_NS_MAX:
        raise _LineError(_TIME_RANGE_MESSAGE)
    return time_ns
