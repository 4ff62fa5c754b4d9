"""InfluxDB line protocol (v1 and v2) into `Record`s, one per line, with InfluxDB 1.x's rules and error wording.

Grammar, per line: `measurement[,tag=value...] field=value[,field=value...] [timestamp]`. How lines end, how
escapes, quotes, numbers, booleans and timestamps read, and what is an error follow InfluxDB 1.x rule for rule:
`line_protocol_lines.py` and `line_protocol_scan.py` are the port and list them.
tests/ingestion/test_influx_differential.py sends a corpus of bodies to a real InfluxDB 1.6 and to our endpoint
and fails on any difference that docs/ingestion.md ("Differences from InfluxDB") does not state.

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
from types import MappingProxyType

from apps.ingestion.parsers.line_protocol_lines import line_content, lines_numbered
from apps.ingestion.parsers.line_protocol_scan import (
    ERROR_CODE,
    TIME_NS_MAX,
    TIME_NS_MIN,
    TYPE_CONFLICT_CODE,
    LineError,
    key_plain_read,
    line_scan,
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
_NO_FIELDS: frozenset[str] = frozenset()
_NO_KINDS: MappingProxyType[str, str] = MappingProxyType({})


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
    field_kinds = _FieldKinds()
    floats_of, known_of = field_kinds.floats, field_kinds.known
    result = ParseResult()
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
                    series = key_cache[key] = key_plain_read(key)
                if series is None or field_set[:1] in "\t\x00":  # the scanner skips those as whitespace
                    raise _Careful
                fields: dict[str, object] = {}
                kinds: dict[str, str] | None = None  # None while every value is a float, the usual case
                for item in field_set.split(","):
                    field_key, _, value = item.partition("=")
                    if not field_key:
                        raise _Careful
                    if value[-1] in float_last:  # IndexError for an empty value
                        number = float(value)  # ValueError for a non-number
                        # These checks mirror the scanner's so both paths agree.
                        if number - number or value[0] == "+" or value.strip(float_chars):
                            raise _Careful
                        fields[field_key] = number
                        if kinds is not None and kinds.setdefault(field_key, "float") != "float":
                            raise _Careful  # the scanner words the conflict
                    else:
                        field_value, kind = _field_value(value)
                        if kinds is None:
                            kinds = dict.fromkeys(fields, "float")
                        if kinds.setdefault(field_key, kind) != kind:
                            raise _Careful
                        fields[field_key] = field_value
                measurement = series[0]
                # A line whose fields the body's earlier lines gave the same types (the usual case) is done.
                if "time" not in fields and (
                    floats_of.get(measurement, _NO_FIELDS).issuperset(fields)
                    if kinds is None
                    else kinds.items() <= known_of.get(measurement, _NO_KINDS).items()
                ):
                    record_append(
                        Record(index, fields, series[1].copy(), measurement,
                               default_ns if time_ns is None else time_ns, line)
                    )  # fmt: skip
                    continue
                parsed = (measurement, series[1].copy(), fields, kinds or dict.fromkeys(fields, "float"), time_ns)
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
            field_kinds.register(measurement, kinds)
        except LineError as error:
            errors.append(_line_error(index, line, content, error))
            continue
        record_append(Record(index, fields, tags, measurement, default_ns if time_ns is None else time_ns, line))
    result.field_kinds = field_kinds.as_dict()
    return result


class _FieldKinds:
    """Each measurement's field types as the body's first line of them gave them, and the set of its float fields
    (the usual type: a line of floats is checked with one set operation, without a dict of types)."""

    __slots__ = ("floats", "known")

    def __init__(self) -> None:
        self.floats: dict[str, set[str]] = {}
        self.known: dict[str, dict[str, str]] = {}

    def register(self, measurement: str, kinds: dict[str, str]) -> None:
        """Note a line's field types; raise InfluxDB's field type conflict (noting nothing) if one differs."""
        known = self.known.get(measurement)
        if known is None:
            known, floats = self.known[measurement], self.floats[measurement] = {}, set()
        else:
            floats = self.floats[measurement]
            for name, kind in kinds.items():
                first = known.get(name)
                if first is not None and first != kind:
                    raise LineError(
                        f'field type conflict: input field "{name}" on measurement "{measurement}" is type {kind}, '
                        f"already exists as type {first}",
                        name,
                        TYPE_CONFLICT_CODE,
                    )
        known.update(kinds)
        floats.update(name for name, kind in kinds.items() if kind == "float")

    def as_dict(self) -> dict[str, dict[str, str]]:
        """measurement -> field -> type."""
        return self.known


def _line_error(index: int, line: str, content: str, error: LineError) -> RecordError:
    """A refused line's RecordError: parse errors quote the line as InfluxDB does, shard errors speak alone."""
    if error.code != ERROR_CODE:
        return RecordError(index, error.code, error.reason, error.field, line)
    quoted = content if len(content) <= _MESSAGE_LINE_MAX_CHARS else content[:_MESSAGE_LINE_MAX_CHARS] + "…"
    hint = _CR_HINT if content.endswith("\r") else ""
    return RecordError(index, ERROR_CODE, f"unable to parse '{quoted}': {error.reason}{hint}", error.field, line)


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
