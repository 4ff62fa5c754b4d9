"""InfluxDB line protocol (v1 and v2) into `Record`s, one per line, with InfluxDB 1.x's rules and error wording.

Grammar, per line: `measurement[,tag=value...] field=value[,field=value...] [timestamp]`. How lines end, how
escapes, quotes, numbers, booleans and timestamps read, and what is an error follow InfluxDB 1.x rule for rule:
`line_protocol_scan.py` is the port and lists them. tests/ingestion/test_influx_differential.py sends a corpus
of bodies to a real InfluxDB 1.6 and to our endpoint and fails on any difference that docs/ingestion.md
("Differences from InfluxDB") does not state.

Across the lines of one body, as InfluxDB does:
- a field keeps the type of its first line in the body (float, integer, unsigned, boolean or string, per
  measurement); a later line giving it another type is refused (`field_type_conflict`) and the rest stored;
- `time` names the timestamp: a tag `time` refuses its line (`reserved_key`), a field `time` is dropped, and a
  line with no other field is refused.

Two paths give identical results: a split-based fast path for lines without backslashes or double quotes, and
the scanner for everything else and for every line the fast path does not accept, so that every error comes
from one place.
"""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from apps.ingestion.parsers.line_protocol_scan import (
    ERROR_CODE,
    TIME_NS_MAX,
    TIME_NS_MIN,
    TYPE_CONFLICT_CODE,
    LineError,
    line_content,
    line_scan,
    lines_numbered,
    reserved_check,
)
from apps.ingestion.records import ParseResult, PayloadError, Record, RecordError, payload_text

__all__ = [
    "ERROR_CODE",
    "PRECISION_NS",
    "TIME_NS_MAX",
    "TIME_NS_MIN",
    "line_protocol_lines",
    "line_protocol_parse",
    "line_protocol_parse_lines",
    "time_ns_of",
]

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

_MESSAGE_LINE_MAX_CHARS = 200  # the offending line is quoted in the message; the full text is in RecordError.raw
_CR_HINT = " (the line ends in a carriage return: line protocol lines end with LF alone)"
# Every character a float literal may hold; float() alone would also take "inf", "1_0", " 1" and non-ASCII digits.
_FLOAT_CHARS = "0123456789.-+eE"
_FLOAT_LAST = frozenset("0123456789.")
_BOOLEANS: dict[str, bool] = {
    "t": True, "T": True, "true": True, "True": True, "TRUE": True,
    "f": False, "F": False, "false": False, "False": False, "FALSE": False,
}  # fmt: skip


_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)


class _Careful(Exception):
    """Raised inside the fast path: this line needs the careful scanner."""


def time_ns_of(moment: datetime) -> int:
    """A time as nanoseconds since 1970: the `now_ns` that stamps lines without a timestamp."""
    delta = moment - _EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000_000 + delta.microseconds * 1_000


def line_protocol_lines(text: str) -> list[tuple[int, str]]:
    """The body's lines as InfluxDB splits them (a quoted or escaped newline does not end a line), numbered."""
    return lines_numbered(text)


def line_protocol_parse(body: bytes | str, *, precision: str = "ns", now_ns: int | None = None) -> ParseResult:
    """Parse a line-protocol payload into one record per line and one error per malformed line.

    `now_ns` stamps lines without a timestamp, truncated to the precision as InfluxDB does (None leaves their
    time unset: the validator then uses the batch's arrival time).
    """
    _multiplier(precision)
    text = payload_text(body)
    plain = "\\" not in text and '"' not in text
    lines = enumerate(text.split("\n")) if plain else lines_numbered(text)
    return line_protocol_parse_lines(lines, precision=precision, now_ns=now_ns, plain=plain)


def _multiplier(precision: str) -> int:
    multiplier = PRECISION_NS.get(precision)
    if multiplier is None:
        raise PayloadError(
            "invalid_precision",
            f"invalid precision {precision!r}: use one of ns, us, ms, s (v2) or n, u, ms, s, m, h (v1).",
        )
    return multiplier


def line_protocol_parse_lines(
    lines: Iterable[tuple[int, str]], *, precision: str = "ns", now_ns: int | None = None, plain: bool = False
) -> ParseResult:
    """Parse numbered lines of one body (`line_protocol_lines`); `plain` says none holds a backslash or quote."""
    multiplier = _multiplier(precision)
    # InfluxDB stamps untimed points with the server time truncated to the write precision.
    default_ns = None if now_ns is None else now_ns - now_ns % multiplier
    # Series keys repeat line after line; each distinct one is split once (None: needs the careful path).
    key_cache: dict[str, tuple[str, dict[str, str]] | None] = {}
    # The type of each measurement's fields, from the first line in the body that has them.
    registry: dict[str, dict[str, str]] = {}
    result = ParseResult(field_kinds=registry)
    records, errors = result.records, result.errors
    record_append = records.append
    float_last = _FLOAT_LAST
    float_chars = _FLOAT_CHARS
    time_max = TIME_NS_MAX
    for index, line in lines:
        if not line:
            continue
        content: str | None = line
        parsed = None
        if line[0] in " \t\x00#":
            content = line_content(line)
            if content is None:
                continue
        elif plain or ("\\" not in line and '"' not in line):
            # Fast path, inlined for speed: anything unexpected (an exception included) hands the line to the
            # careful scanner, which alone words errors, so both paths agree by construction.
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
                    time_ns = None
                else:
                    raise _Careful
                if key in key_cache:
                    series = key_cache[key]
                else:
                    series = key_cache[key] = _key_parse_fast(key)
                if series is None or field_set[:1] in "\t\x00":  # the scanner skips those as whitespace
                    raise _Careful
                fields: dict[str, object] = {}
                kinds: dict[str, str] = {}
                for item in field_set.split(","):
                    field_key, _, value = item.partition("=")
                    if not field_key:
                        raise _Careful
                    if value[-1] in float_last:  # IndexError for an empty value
                        number = float(value)  # ValueError for a non-number
                        # These checks mirror the scanner's so both paths agree.
                        if number - number or value[0] == "+" or value.strip(float_chars):
                            raise _Careful
                        if kinds.get(field_key, "float") != "float":
                            raise _Careful
                        fields[field_key] = number
                        kinds[field_key] = "float"
                    else:
                        field_value, kind = _field_value(value)
                        if kinds.get(field_key, kind) != kind:
                            raise _Careful
                        fields[field_key] = field_value
                        kinds[field_key] = kind
                parsed = (series[0], series[1].copy(), fields, kinds, time_ns)
            except (_Careful, ValueError, IndexError):
                pass
        try:
            if parsed is None:
                if content[-1] == "\n":  # a line an unclosed quote carried to the end of the body
                    content = content[:-1]
                parsed = line_scan(content, multiplier)
            measurement, tags, fields, kinds, time_ns = parsed
            if "time" in fields or "time" in tags:
                result.dropped_time_fields += reserved_check(measurement, tags, fields, kinds)
            known = registry.get(measurement)
            if known is None:
                registry[measurement] = kinds
            elif not kinds.items() <= known.items():
                _kinds_check(measurement, kinds, known)
                known.update(kinds)
        except LineError as error:
            errors.append(_line_error(index, line, content, error))
            continue
        record_append(Record(index, fields, tags, measurement, default_ns if time_ns is None else time_ns, line))
    return result


def _kinds_check(measurement: str, kinds: dict[str, str], known: dict[str, str]) -> None:
    """Raise InfluxDB's field type conflict for the first field whose type differs from its body's first."""
    for name, kind in kinds.items():
        first = known.get(name)
        if first is not None and first != kind:
            raise LineError(
                f'field type conflict: input field "{name}" on measurement "{measurement}" is type {kind}, '
                f"already exists as type {first}",
                name,
                TYPE_CONFLICT_CODE,
            )


def _line_error(index: int, line: str, content: str, error: LineError) -> RecordError:
    """A refused line's RecordError: parse errors quote the line as InfluxDB does, shard errors speak alone."""
    if error.code != ERROR_CODE:
        return RecordError(index, error.code, error.reason, error.field, line)
    quoted = content if len(content) <= _MESSAGE_LINE_MAX_CHARS else content[:_MESSAGE_LINE_MAX_CHARS] + "…"
    hint = _CR_HINT if content.endswith("\r") else ""
    return RecordError(index, ERROR_CODE, f"unable to parse '{quoted}': {error.reason}{hint}", error.field, line)


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
        # A tag value may start with '=' (InfluxDB reads `t==v` as t: "=v"), but hold no other.
        if not tag_key or not tag_value or "=" in tag_value[1:]:
            return None
        tags[tag_key] = tag_value
    if len(tags) != len(items) - 1 or "time" in tags:  # a repeated key; the reserved key
        return None
    return measurement, tags


def _field_value(value: str) -> tuple[object, str]:
    """A plain unquoted integer, unsigned or boolean value and its type; ValueError for anything else."""
    boolean = _BOOLEANS.get(value)
    if boolean is not None:
        return boolean, "boolean"
    suffix = value[-1]
    body = value[:-1]
    digits = body[1:] if body[:1] == "-" else body
    if (suffix == "i" or (suffix == "u" and digits is body)) and digits.isdigit() and digits.isascii():
        number = int(body)
        if suffix == "i" and -(2**63) <= number < 2**63:
            return number, "integer"
        if suffix == "u" and number < 2**64:
            return number, "unsigned"
    raise ValueError(value)
